import { copyFileSync, readFileSync, renameSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent } from 'node:https';
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { loadConfig } from '../src/config.js';
import { startApi, type Api } from '../src/runtime.js';
import { registry } from '../src/metrics.js';
import { reloadCertificates } from '../src/transport/index.js';
import { issueCertificate, LOOPBACK_NAMES } from '../src/transport/development-certificates.js';
import { startTestStack, type TestStack } from './support/stack.js';
import { createTestPki, fingerprintOf, handshake, httpsCall, postTls, until, type TestPki } from './support/tls.js';

/**
 * TLS on the API's own listeners: the gateway over HTTPS with HSTS, TLS 1.2
 * at least with forward-secret suites, mutual TLS between the gateway and
 * the subgraphs (a caller without the gateway's certificate is refused in
 * the handshake, before any token is read), and certificates renewed on a
 * running API without a restart.
 */

const PATIENTS = 12;
const PATIENTS_WITH_CONDITIONS = '{ patients(first: 2) { edges { node { id conditions(first: 2) { edges { node { id } } } } } } }';

let stack: TestStack;
let pki: TestPki;
/** Where the stack reads its certificate (copies, so that renewals can replace them). */
let live: { certFile: string; keyFile: string; clientCaFile: string };
const logged: Record<string, unknown>[] = [];

const portOf = (url: string) => Number(new URL(url).port);
const read = (path: string) => readFileSync(path, 'utf8');

async function counted(metricName: string, labels: Record<string, string>): Promise<number> {
  const metric = await registry.getSingleMetric(metricName)?.get();
  return (metric?.values ?? []).filter((value) => Object.entries(labels).every(([label, wanted]) => value.labels[label] === wanted)).reduce((sum, value) => sum + value.value, 0);
}

const handshakeFailures = (listener: string, reason?: string) => counted('phi_graph_tls_handshake_failures_total', { listener, ...(reason && { reason }) });
/** Requests that reached a server's GraphQL route (counted before the token is checked). */
const requestsServed = (server: string) => counted('phi_graph_requests_total', { server });

beforeAll(async () => {
  const folder = await mkdtemp(join(tmpdir(), 'phi-graph-tls-'));
  pki = createTestPki(folder);
  live = { certFile: join(folder, 'live.pem'), keyFile: join(folder, 'live.key'), clientCaFile: join(folder, 'live-client-ca.pem') };
  copyFileSync(pki.server.certFile, live.certFile);
  copyFileSync(pki.server.keyFile, live.keyFile);
  copyFileSync(pki.ca.certFile, live.clientCaFile);
  stack = await startTestStack({
    patients: PATIENTS,
    env: {
      TLS_CERT_FILE: live.certFile,
      TLS_KEY_FILE: live.keyFile,
      TLS_CA_FILE: pki.ca.certFile,
      SUBGRAPH_CLIENT_CA_FILE: live.clientCaFile,
      SUBGRAPH_CLIENT_NAMES: 'phi-graph-gateway',
      GATEWAY_CLIENT_CERT_FILE: pki.gatewayClient.certFile,
      GATEWAY_CLIENT_KEY_FILE: pki.gatewayClient.keyFile,
      TLS_FILE_POLL_SECONDS: '0.2',
    },
    logger: createLogger('info', { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) }),
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  if (pki) await rm(pki.folder, { recursive: true, force: true });
});

describe('the gateway over HTTPS', () => {
  it('answers a query over HTTPS with Strict-Transport-Security, through subgraphs that require its client certificate', async () => {
    expect(stack.gatewayUrl).toMatch(/^https:\/\//);
    const response = await postTls<{ patients: { edges: { node: { id: string; conditions: { edges: unknown[] } } }[] } }>(stack.gatewayUrl, PATIENTS_WITH_CONDITIONS, {
      ca: read(pki.ca.certFile),
      token: await stack.token('clinician'),
    });
    expect(response.status).toBe(200);
    expect(response.json.errors).toBeUndefined();
    expect(response.json.data?.patients.edges).toHaveLength(2);
    expect(response.headers['strict-transport-security']).toBe('max-age=31536000');
    for (const name of ['patient', 'clinical', 'billing'] as const) expect(stack.subgraphUrl(name)).toMatch(/^https:\/\//);
  });

  it('keeps /healthz and /readyz answering for probes over HTTPS, without a token', async () => {
    const base = stack.gatewayUrl.replace(/\/graphql$/, '');
    const ca = read(pki.ca.certFile);
    expect((await httpsCall(`${base}/healthz`, { ca })).status).toBe(200);
    const ready = await httpsCall(`${base}/readyz`, { ca });
    expect(ready.status).toBe(200);
    expect(ready.headers['strict-transport-security']).toBe('max-age=31536000');
  });

  it('does not answer plain HTTP on its port', async () => {
    const plain = stack.gatewayUrl.replace(/^https:/, 'http:');
    await expect(fetch(plain, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ __typename }"}' })).rejects.toThrow();
  });

  it('refuses TLS 1.1 and the TLS 1.2 suites that are not AEAD (CBC), and speaks TLS 1.3 and TLS 1.2 with ECDHE and GCM', async () => {
    const port = portOf(stack.gatewayUrl);
    const ca = read(pki.ca.certFile);
    await expect(handshake(port, { ca, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })).rejects.toThrow();
    // Node's own defaults would take these (ECDHE, but CBC with SHA-1 or SHA-256 MACs).
    await expect(handshake(port, { ca, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384' })).rejects.toThrow();
    expect(await handshake(port, { ca })).toMatchObject({ protocol: 'TLSv1.3' });
    const twelve = await handshake(port, { ca, maxVersion: 'TLSv1.2' });
    expect(twelve.protocol).toBe('TLSv1.2');
    expect(twelve.cipher).toMatch(/^ECDHE-ECDSA-(AES\d+-GCM|CHACHA20-POLY1305)/);
  });
});

describe('mutual TLS between the gateway and the subgraphs', () => {
  it('refuses a caller without a client certificate in the handshake, with a valid token it never reads', async () => {
    const token = await stack.token('clinician');
    for (const name of ['patient', 'clinical', 'billing'] as const) {
      const [failures, served] = [await handshakeFailures(name), await requestsServed(name)];
      const error = await postTls(stack.subgraphUrl(name), '{ __typename }', { ca: read(pki.ca.certFile), token }).then(
        () => null,
        (caught: unknown) => caught as NodeJS.ErrnoException,
      );
      // A TLS alert or a reset: no HTTP status ever came back.
      expect(error?.code ?? error?.message).toMatch(/ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED|ECONNRESET|EPIPE|socket hang up/);
      expect(await handshakeFailures(name)).toBe(failures + 1);
      expect(await requestsServed(name)).toBe(served);
    }
  });

  it('refuses a client certificate from another CA, a server certificate of its own CA, and a client certificate of its CA issued to another service', async () => {
    const token = await stack.token('clinician');
    const ca = read(pki.ca.certFile);
    const reporting = issueCertificate(pki.ca, pki.folder, { name: 'reporting-client', commonName: 'phi-graph-reporting', usage: 'client' });
    const namesRefused = await handshakeFailures('billing', 'CLIENT_NAME_NOT_ALLOWED');
    const served = await requestsServed('billing');
    for (const certificate of [pki.strangerClient, pki.server, reporting]) {
      await expect(postTls(stack.subgraphUrl('billing'), '{ __typename }', { ca, token, cert: read(certificate.certFile), key: read(certificate.keyFile) })).rejects.toThrow(/ECONNRESET|socket hang up|ERR_SSL|EPIPE/);
    }
    expect(await handshakeFailures('billing', 'CLIENT_NAME_NOT_ALLOWED')).toBe(namesRefused + 1);
    expect(await requestsServed('billing')).toBe(served);
    expect(logged.some((line) => line['event'] === 'tls-client-refused' && JSON.stringify(line['clientNames']).includes('phi-graph-reporting'))).toBe(true);
  });

  it('with the gateway\'s certificate, still requires the token: mTLS says who calls, the token who the user is', async () => {
    const ca = read(pki.ca.certFile);
    const client = { ca, cert: read(pki.gatewayClient.certFile), key: read(pki.gatewayClient.keyFile) };
    const anonymous = await postTls(stack.subgraphUrl('patient'), '{ __typename }', client);
    expect(anonymous.status).toBe(401);
    expect(anonymous.json.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
    const signedIn = await postTls(stack.subgraphUrl('patient'), '{ __typename }', { ...client, token: await stack.token('clinician') });
    expect(signedIn.status).toBe(200);
  });
});

describe('certificate renewal on a running API', () => {
  it('serves a renewed certificate to new connections without a restart, while a connection opened before keeps working', async () => {
    const ca = read(pki.ca.certFile);
    const port = portOf(stack.gatewayUrl);
    const token = await stack.token('clinician');
    const kept = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await postTls(stack.gatewayUrl, PATIENTS_WITH_CONDITIONS, { ca, token, agent: kept });
      const original = fingerprintOf(read(pki.server.certFile));
      expect(first.fingerprint).toBe(original);

      // A renewal as cert-manager or certbot does it: new files written beside, then renamed over the old ones.
      const renewed = issueCertificate(pki.ca, pki.folder, { name: 'renewed', ...LOOPBACK_NAMES, usage: 'server' });
      renameSync(renewed.keyFile, live.keyFile);
      renameSync(renewed.certFile, live.certFile);
      const renewedFingerprint = fingerprintOf(read(live.certFile));
      await until('the renewed certificate', async () => ((await handshake(port, { ca })).fingerprint === renewedFingerprint ? true : undefined));
      // Every subgraph renewed too (they share the files), and the gateway still reaches them over mutual TLS.
      for (const name of ['patient', 'clinical', 'billing'] as const) {
        const subgraph = await handshake(portOf(stack.subgraphUrl(name)), { ca, cert: read(pki.gatewayClient.certFile), key: read(pki.gatewayClient.keyFile) });
        expect(subgraph.fingerprint).toBe(renewedFingerprint);
      }
      const fresh = await postTls(stack.gatewayUrl, PATIENTS_WITH_CONDITIONS, { ca, token });
      expect(fresh.status).toBe(200);
      expect(fresh.fingerprint).toBe(renewedFingerprint);

      // The connection opened before the renewal is still served, on the certificate it started with.
      const again = await postTls(stack.gatewayUrl, PATIENTS_WITH_CONDITIONS, { ca, token, agent: kept });
      expect(again.status).toBe(200);
      expect(again.fingerprint).toBe(original);
      expect(logged.some((line) => line['event'] === 'tls-certificate-loaded' && line['listener'] === 'gateway' && line['fingerprint'] === renewedFingerprint)).toBe(true);
    } finally {
      kept.destroy();
    }
  }, 30_000);

  it('keeps serving the certificate in use when a renewal is half written, and says so', async () => {
    const ca = read(pki.ca.certFile);
    const port = portOf(stack.gatewayUrl);
    const inUse = (await handshake(port, { ca })).fingerprint;
    const next = issueCertificate(pki.ca, pki.folder, { name: 'next', ...LOOPBACK_NAMES, usage: 'server' });
    // The certificate is replaced, its key not yet: they do not belong together.
    renameSync(next.certFile, live.certFile);
    expect(reloadCertificates('test')).toBe(false);
    expect((await handshake(port, { ca })).fingerprint).toBe(inUse);
    expect(logged.some((line) => line['event'] === 'tls-certificate-reload-failed' && line['reason'] === 'KEY_MISMATCH')).toBe(true);
    // Still answering queries meanwhile.
    expect((await postTls(stack.gatewayUrl, '{ __typename }', { ca, token: await stack.token('clinician') })).status).toBe(200);
    // The key arrives: the next reload takes the pair.
    renameSync(next.keyFile, live.keyFile);
    expect(reloadCertificates('test')).toBe(true);
    expect((await handshake(port, { ca })).fingerprint).toBe(fingerprintOf(read(live.certFile)));
  }, 30_000);

  it('reads the subgraphs\' client CA again: a CA swapped in takes effect without a restart, and a kept-alive connection verified under the old one carries no further request', async () => {
    const ca = read(pki.ca.certFile);
    const port = portOf(stack.subgraphUrl('patient'));
    const gatewayCertificate = { ca, cert: read(pki.gatewayClient.certFile), key: read(pki.gatewayClient.keyFile) };
    const stranger = { ca, cert: read(pki.strangerClient.certFile), key: read(pki.strangerClient.keyFile) };
    await expect(handshake(port, stranger)).rejects.toThrow();
    // A connection the gateway's certificate opened under the old CA, kept alive.
    const kept = new Agent({ keepAlive: true, maxSockets: 1, ...gatewayCertificate });
    const token = await stack.token('clinician');
    try {
      expect((await postTls(stack.subgraphUrl('patient'), '{ __typename }', { ca, token, agent: kept })).status).toBe(200);
      copyFileSync(pki.otherCa.certFile, `${live.clientCaFile}.next`);
      renameSync(`${live.clientCaFile}.next`, live.clientCaFile);
      await until('the other CA to be trusted', async () => ((await handshake(port, stranger)).fingerprint ? true : undefined));
      await expect(handshake(port, gatewayCertificate)).rejects.toThrow();
      // The CA it was verified under is gone: the kept connection carries no further request.
      await expect(postTls(stack.subgraphUrl('patient'), '{ __typename }', { ca, token, agent: kept })).rejects.toThrow();
    } finally {
      kept.destroy();
      copyFileSync(pki.ca.certFile, `${live.clientCaFile}.next`);
      renameSync(`${live.clientCaFile}.next`, live.clientCaFile);
      await until('the CA to be trusted again', async () => ((await handshake(port, gatewayCertificate)).fingerprint ? true : undefined));
    }
    expect((await postTls(stack.gatewayUrl, PATIENTS_WITH_CONDITIONS, { ca, token: await stack.token('clinician') })).status).toBe(200);
  }, 30_000);

  it('does not log certificate or key contents', () => {
    const text = JSON.stringify(logged);
    expect(text).not.toContain('PRIVATE KEY');
    expect(text).not.toContain('BEGIN CERTIFICATE');
  });
});

/** A gateway alone in this process, calling the stack's subgraphs, with its own transport settings. */
async function startGatewayAlone(env: Record<string, string>, lines: Record<string, unknown>[] = []): Promise<Api> {
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    DATA_DIR: stack.config.database.dataDir,
    ...(stack.config.redisUrl && { REDIS_URL: stack.config.redisUrl, REDIS_KEY_PREFIX: stack.config.redisKeyPrefix }),
    PATIENT_SUBGRAPH_URL: stack.subgraphUrl('patient'),
    CLINICAL_SUBGRAPH_URL: stack.subgraphUrl('clinical'),
    BILLING_SUBGRAPH_URL: stack.subgraphUrl('billing'),
    RATE_LIMIT_REQUESTS_PER_MINUTE: '1000000',
    ...env,
  });
  return startApi(config, createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }), { mode: { kind: 'gateway' } });
}

/** Sets process environment variables for the length of `run` (what an operator's shell or a hospital's proxy settings put there). */
async function withEnvironment<T>(variables: Record<string, string>, run: () => Promise<T>): Promise<T> {
  const before = Object.fromEntries(Object.keys(variables).map((name) => [name, process.env[name]]));
  Object.assign(process.env, variables);
  try {
    return await run();
  } finally {
    for (const [name, value] of Object.entries(before)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

describe('a gateway calling subgraphs over mutual TLS', () => {
  const client = () => ({ TLS_CA_FILE: pki.ca.certFile, GATEWAY_CLIENT_CERT_FILE: pki.gatewayClient.certFile, GATEWAY_CLIENT_KEY_FILE: pki.gatewayClient.keyFile });

  it('never sends a subgraph call through a proxy named in the environment it started with (HTTPS_PROXY, HTTP_PROXY)', async () => {
    const connections: string[] = [];
    const proxy = createServer((socket) => {
      connections.push(socket.remoteAddress ?? '');
      socket.destroy();
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    // A process of its own: the fetch library reads the proxy variables once, when it is loaded.
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NODE_ENV: 'development',
      LOG_LEVEL: 'warn',
      PORT: '0',
      DATA_DIR: stack.config.database.dataDir,
      REDIS_URL: stack.config.redisUrl ?? '',
      REDIS_KEY_PREFIX: stack.config.redisKeyPrefix,
      PATIENT_SUBGRAPH_URL: stack.subgraphUrl('patient'),
      CLINICAL_SUBGRAPH_URL: stack.subgraphUrl('clinical'),
      BILLING_SUBGRAPH_URL: stack.subgraphUrl('billing'),
      ...client(),
      HTTPS_PROXY: proxyUrl,
      HTTP_PROXY: proxyUrl,
      https_proxy: proxyUrl,
      http_proxy: proxyUrl,
      NO_PROXY: '',
      no_proxy: '',
    };
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--gateway'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      const url = await until('the gateway alone', () => Promise.resolve(/Gateway:\s+(http:\/\/\S+)/.exec(output)?.[1]), 60_000).catch(() => {
        throw new Error(`the gateway did not start:\n${output}`);
      });
      const response = await fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${await stack.token('clinician')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ query: PATIENTS_WITH_CONDITIONS }),
      });
      expect(response.status).toBe(200);
      expect(connections).toEqual([]);
    } finally {
      child.kill('SIGKILL');
      proxy.close();
    }
  }, 90_000);
});

/** A query through a gateway alone whose TLS with the subgraphs fails: 503 SUBGRAPH_UNAVAILABLE and no data. */
async function expectUnavailable(gateway: Api): Promise<void> {
  const response = await fetch(gateway.gateway?.url ?? '', {
    method: 'POST',
    headers: { authorization: `Bearer ${await stack.token('clinician')}`, 'content-type': 'application/json' },
    body: JSON.stringify({ query: PATIENTS_WITH_CONDITIONS }),
  });
  const body = (await response.json()) as { data?: unknown; errors?: { extensions?: Record<string, unknown> }[] };
  expect(response.status).toBe(503);
  expect(body.data ?? null).toBeNull();
  expect(body.errors?.[0]?.extensions?.['code']).toBe('SUBGRAPH_UNAVAILABLE');
}

describe('a gateway whose TLS with the subgraphs fails', () => {
  it('answers 503 SUBGRAPH_UNAVAILABLE, without data, and tells the operator why, when a subgraph\'s certificate is not from its CA', async () => {
    const lines: Record<string, unknown>[] = [];
    const gateway = await startGatewayAlone({ TLS_CA_FILE: pki.otherCa.certFile, GATEWAY_CLIENT_CERT_FILE: pki.gatewayClient.certFile, GATEWAY_CLIENT_KEY_FILE: pki.gatewayClient.keyFile }, lines);
    try {
      // Node's switch that turns certificate checks off does not reach the gateway's calls to its subgraphs.
      await withEnvironment({ NODE_TLS_REJECT_UNAUTHORIZED: '0' }, () => expectUnavailable(gateway));
      expect(lines.find((line) => line['event'] === 'subgraph-tls-failed')).toMatchObject({ reason: expect.stringMatching(/CERT|SIGNED|ISSUER/) as unknown });
    } finally {
      await gateway.stop();
    }
  });

  it('is refused by subgraphs that require a client certificate when it presents none: 503, no data', async () => {
    const gateway = await startGatewayAlone({ TLS_CA_FILE: pki.ca.certFile });
    try {
      await expectUnavailable(gateway);
    } finally {
      await gateway.stop();
    }
  });
});

describe('the start', () => {
  it('says how each hop goes, and warns of a hop that crosses a network without verified TLS', async () => {
    const lines: Record<string, unknown>[] = [];
    // A subgraph URL on another host over http:// (never called here: nothing is queried).
    const gateway = await startGatewayAlone({ TLS_CA_FILE: pki.ca.certFile, BILLING_SUBGRAPH_URL: 'http://billing.hospital.internal:4003/graphql' }, lines);
    await gateway.stop();
    expect(lines.find((line) => line['event'] === 'transport')).toMatchObject({ 'gateway-listener': 'http', 'subgraph-calls': expect.stringContaining('billing: http') as unknown });
    expect(lines.find((line) => line['event'] === 'transport-insecure')).toMatchObject({ hop: 'subgraph-calls' });
  });
});

describe('behind a proxy that terminates TLS (TLS_TERMINATED_UPSTREAM=true)', () => {
  const ask = (url: string, headers: Record<string, string>) =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query: '{ __typename }' }) });

  it('serves what the proxy forwarded over HTTPS, with HSTS, and refuses a request that came around it, before its token', async () => {
    const gateway = await startGatewayAlone({ TLS_TERMINATED_UPSTREAM: 'true', TLS_CA_FILE: pki.ca.certFile, GATEWAY_CLIENT_CERT_FILE: pki.gatewayClient.certFile, GATEWAY_CLIENT_KEY_FILE: pki.gatewayClient.keyFile });
    try {
      const url = gateway.gateway?.url ?? '';
      expect(url).toMatch(/^http:\/\//);
      const token = await stack.token('clinician');
      const forwarded = await ask(url, { authorization: `Bearer ${token}`, 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.9' });
      expect(forwarded.status).toBe(200);
      expect(forwarded.headers.get('strict-transport-security')).toBe('max-age=31536000');
      const around = await ask(url, { authorization: `Bearer ${token}` });
      expect(around.status).toBe(403);
      expect(((await around.json()) as { errors: { extensions: { code: string } }[] }).errors[0]?.extensions.code).toBe('HTTPS_REQUIRED');
      // Not even an invalid token is looked at.
      expect((await ask(url, { authorization: 'Bearer not-a-token' })).status).toBe(403);
      // Probes and the metrics scraper on this host answer over plain HTTP.
      expect((await fetch(url.replace(/\/graphql$/, '/healthz'))).status).toBe(200);
      expect((await fetch(url.replace(/\/graphql$/, '/metrics'))).status).toBe(200);
    } finally {
      await gateway.stop();
    }
  });

  it('does not believe X-Forwarded-Proto from an address outside TRUST_PROXY', async () => {
    const gateway = await startGatewayAlone({ TLS_TERMINATED_UPSTREAM: 'true', TRUST_PROXY: '10.0.0.0/8' });
    try {
      const forged = await ask(gateway.gateway?.url ?? '', { authorization: `Bearer ${await stack.token('clinician')}`, 'x-forwarded-proto': 'https' });
      expect(forged.status).toBe(403);
      expect(forged.headers.get('strict-transport-security')).toBeNull();
    } finally {
      await gateway.stop();
    }
  });
});
