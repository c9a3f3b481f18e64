import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintDevelopmentToken } from '../src/auth/mint.js';
import type { Role } from '../src/auth/index.js';
import { loadConfig } from '../src/config.js';
import { documentId } from '../src/gateway/trusted-documents.js';
import { readDevelopmentPrincipals, type DevelopmentPrincipals } from '../src/db/seed/index.js';
import { createScratchDatabase, resolveServices } from './support/services.js';
import { createTestPki, handshake, type TestPki } from './support/tls.js';

/**
 * The committed supergraph under Hive Gateway, as the README says: the
 * three subgraphs as separate processes on PostgreSQL, Hive Gateway with
 * deploy/hive-gateway.config.mjs in front. The subgraphs enforce everything
 * themselves: no token is refused, a denied field is null with FORBIDDEN,
 * masking holds, and each subgraph audits the request under the caller's
 * request id. The subgraphs serve HTTPS and require the gateway's client
 * certificate (mutual TLS, README "Transport security"): Hive Gateway
 * presents it from the same variables as our gateway, through the config's
 * HTTPS agent. CI installs Hive Gateway (scripts/hive-gateway.sh) and sets
 * REQUIRE_HIVE=1; elsewhere the test runs when HIVE_GATEWAY_BIN names it.
 */
const services = await resolveServices();
const hive = process.env['HIVE_GATEWAY_BIN'] ?? '';
const missing = [...(hive && existsSync(hive) ? [] : ['HIVE_GATEWAY_BIN (scripts/hive-gateway.sh installs Hive Gateway)']), ...(services.postgresUrl ? [] : ['PostgreSQL'])];
if (missing.length > 0 && process.env['REQUIRE_HIVE'] === '1') {
  describe('Hive Gateway prerequisites', () => {
    it('are there, since REQUIRE_HIVE=1', () => {
      throw new Error(`REQUIRE_HIVE=1 but missing: ${missing.join(', ')}`);
    });
  });
} else if (missing.length > 0) {
  // eslint-disable-next-line no-console -- say why a whole feature's test did not run
  console.warn(`Hive Gateway test skipped: missing ${missing.join(', ')}`);
}

const TRUSTED = 'query BillingPage { patients(first: 3) { edges { node { id ssn } } } }';
// Below Linux's ephemeral range (32768-60999): the ports other tests' listeners and clients get from the system never collide with these.
const BASE = 20_000 + Math.floor(Math.random() * 900) * 8;
const PORTS = { gateway: BASE, patient: BASE + 1, clinical: BASE + 2, billing: BASE + 3 };
/** Plain-HTTP probe ports (HEALTH_PORT): a subgraph that requires client certificates cannot be probed on its own port without one. */
const HEALTH_PORTS = { patient: BASE + 4, clinical: BASE + 5, billing: BASE + 6 };
const children: ChildProcess[] = [];
let dataDir = '';
let scratch: { url: string; drop: () => Promise<void> } | null = null;
let principals: DevelopmentPrincipals;
let pki: TestPki;

function start(command: string, args: string[], env: Record<string, string>, cwd?: string): ChildProcess {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'], ...(cwd && { cwd }) });
  children.push(child);
  return child;
}

async function ready(url: string, timeoutMs = 90_000): Promise<void> {
  const started = Date.now();
  for (;;) {
    try {
      if ((await fetch(url)).status < 500) return;
    } catch {
      // not listening yet
    }
    if (Date.now() - started > timeoutMs) throw new Error(`${url} did not answer`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

const serverEnv = () => ({
  NODE_ENV: 'development',
  DATA_DIR: dataDir,
  DATABASE_URL: scratch?.url ?? '',
  REDIS_URL: services.redisUrl ?? '',
  REDIS_KEY_PREFIX: `phi-hive-test-${BASE}:`,
  LOG_LEVEL: 'warn',
  PATIENT_SUBGRAPH_PORT: String(PORTS.patient),
  CLINICAL_SUBGRAPH_PORT: String(PORTS.clinical),
  BILLING_SUBGRAPH_PORT: String(PORTS.billing),
  TLS_CERT_FILE: pki.server.certFile,
  TLS_KEY_FILE: pki.server.keyFile,
  SUBGRAPH_CLIENT_CA_FILE: pki.ca.certFile,
  SUBGRAPH_CLIENT_NAMES: 'phi-graph-gateway',
});

beforeAll(async () => {
  if (missing.length > 0) return;
  dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-hive-'));
  scratch = await createScratchDatabase(services.postgresUrl ?? '');
  pki = createTestPki(join(dataDir, 'tls'));
  const seeded = start('node_modules/.bin/tsx', ['src/db/seed-cli.ts', '--patients', '12'], serverEnv());
  expect(await new Promise((resolve) => seeded.once('exit', resolve))).toBe(0);
  principals = (await readDevelopmentPrincipals(dataDir)) as DevelopmentPrincipals;
  for (const name of ['patient', 'clinical', 'billing'] as const) start('node_modules/.bin/tsx', ['src/main.ts', '--subgraph', name], { ...serverEnv(), HEALTH_PORT: String(HEALTH_PORTS[name]) });
  for (const name of ['patient', 'clinical', 'billing'] as const) await ready(`http://127.0.0.1:${HEALTH_PORTS[name]}/readyz`);
  await writeFile(
    join(dataDir, 'trusted-documents.json'),
    JSON.stringify({ version: 1, documents: [{ id: documentId(TRUSTED), client: 'portal', roles: ['billing'], operationName: 'BillingPage', document: TRUSTED, registeredAt: new Date().toISOString() }] }),
  );
  start(hive, ['supergraph', '--config-path', join(process.cwd(), 'deploy/hive-gateway.config.mjs'), '--host', '127.0.0.1', '--port', String(PORTS.gateway)], {
    PATIENT_SUBGRAPH_URL: `https://127.0.0.1:${PORTS.patient}/graphql`,
    CLINICAL_SUBGRAPH_URL: `https://127.0.0.1:${PORTS.clinical}/graphql`,
    BILLING_SUBGRAPH_URL: `https://127.0.0.1:${PORTS.billing}/graphql`,
    TLS_CA_FILE: pki.ca.certFile,
    GATEWAY_CLIENT_CERT_FILE: pki.gatewayClient.certFile,
    GATEWAY_CLIENT_KEY_FILE: pki.gatewayClient.keyFile,
    TRUSTED_DOCUMENTS_FILE: join(dataDir, 'trusted-documents.json'),
  });
  await ready(`http://127.0.0.1:${PORTS.gateway}/healthcheck`);
}, 180_000);

afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }
  await scratch?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
}, 60_000);

async function token(role: Role): Promise<string> {
  const sample = principals[role];
  return mintDevelopmentToken(loadConfig({ DATA_DIR: dataDir }).auth, dataDir, {
    subject: sample.subject,
    roles: [role],
    organizationId: sample.organizationId,
    patientId: sample.patientId,
    study: null,
    mfa: true,
    ttl: '5m',
  });
}

async function ask(query: string | Record<string, unknown>, bearer?: string, requestId?: string) {
  const response = await fetch(`http://127.0.0.1:${PORTS.gateway}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(bearer && { authorization: `Bearer ${bearer}` }), ...(requestId && { 'x-request-id': requestId }) },
    body: JSON.stringify(typeof query === 'string' ? { query } : query),
  });
  return (await response.json()) as { data?: Record<string, unknown> | null; errors?: { path?: (string | number)[]; extensions?: Record<string, unknown> }[] };
}

describe.skipIf(missing.length > 0)('the supergraph under Hive Gateway', () => {
  it('reaches subgraphs that serve HTTPS and refuse any caller without the gateway\'s client certificate', async () => {
    const ca = readFileSync(pki.ca.certFile, 'utf8');
    for (const name of ['patient', 'clinical', 'billing'] as const) {
      await expect(handshake(PORTS[name], { ca })).rejects.toThrow();
      await expect(handshake(PORTS[name], { ca, cert: readFileSync(pki.gatewayClient.certFile, 'utf8'), key: readFileSync(pki.gatewayClient.keyFile, 'utf8') })).resolves.toMatchObject({ protocol: 'TLSv1.3' });
    }
  });

  it('refuses a request without a token: the subgraphs verify it themselves', async () => {
    const answer = await ask('{ patients(first: 2) { edges { node { id name { text } } } } }');
    // Hive Gateway answers {"patients": null} where Apollo Gateway answers no data at all: nothing of the record either way.
    expect(answer.data?.['patients'] ?? null).toBeNull();
    expect(answer.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
  });

  it('answers a denied field null with FORBIDDEN, and masks what the role sees masked', async () => {
    const partner = await ask('{ patients(first: 2) { edges { node { id ssn } } } }', await token('partner'));
    const denied = partner.errors?.find((error) => error.path?.at(-1) === 'ssn');
    expect(denied?.extensions?.['code']).toBe('FORBIDDEN');
    const billing = await ask('{ patients(first: 5) { edges { node { ssn } } } }', await token('billing'));
    const ssns = ((billing.data?.['patients'] as { edges: { node: { ssn: string | null } }[] }).edges ?? []).map(({ node }) => node.ssn).filter(Boolean);
    expect(ssns.length).toBeGreaterThan(0);
    for (const ssn of ssns) expect(ssn).toMatch(/^\*\*\*-\*\*-\d{4}$/);
  });

  it('is audited by each subgraph it reaches, under the caller request id', async () => {
    const requestId = `hive-${Date.now()}`;
    const id = principals.patient.patientId;
    const chart = await ask(
      `{ patient(id: "${id}") { name { text } conditions(first: 3) { edges { node { code { code } } } } claims(first: 3) { edges { node { status } } } } }`,
      await token('clinician'),
      requestId,
    );
    expect(chart.data?.['patient']).toBeTruthy();
    const client = new pg.Client({ connectionString: scratch?.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ subgraph: string }>('select distinct subgraph from audit_event where request_id = $1 order by subgraph', [requestId]);
      expect(rows.map((row) => row.subgraph)).toEqual(['billing', 'clinical', 'patient']);
    } finally {
      await client.end();
    }
  });

  it('serves a trusted document by its documentId or persisted-query hash, as deploy/hive-gateway.config.mjs reads the manifest', async () => {
    const billing = await token('billing');
    const byId = await ask({ documentId: documentId(TRUSTED) }, billing);
    const edges = (byId.data?.['patients'] as { edges: { node: { ssn: string | null } }[] } | undefined)?.edges ?? [];
    expect(edges.length).toBeGreaterThan(0);
    const byHash = await ask({ extensions: { persistedQuery: { version: 1, sha256Hash: documentId(TRUSTED).slice('sha256:'.length) } } }, billing);
    expect(byHash.data).toEqual(byId.data);
    const unknown = await ask({ documentId: documentId('{ viewer { subject } }') }, billing);
    expect(unknown.data ?? null).toBeNull();
    expect(unknown.errors?.length ?? 0).toBeGreaterThan(0);
  });
});
