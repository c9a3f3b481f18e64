import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { ROLES, mintDevelopmentToken, type Role } from '../src/auth/index.js';
import { toBuffer } from '../src/crypto/index.js';
import { readDevelopmentPrincipals, type DevelopmentPrincipals } from '../src/db/seed/index.js';
import { ACCESS_POLICY } from '../src/policy/index.js';
import { startApi, type Api } from '../src/runtime.js';
import { printSelection, selectEverything } from './support/operations.js';
import { apiSchema } from './support/supergraph.js';
import { createScratchDatabase, resolveServices } from './support/services.js';
import { post } from './support/stack.js';
import { patientOutsideCareTeams, sqlOn } from './support/fixtures.js';

/**
 * Logs never carry PHI or credentials. One API whose logger writes
 * everything, at trace, to a file; the API is exercised broadly (every
 * role reading everything, refusals, bad tokens, bad and good mutations,
 * break the glass, a tampered ciphertext, an audit failure, syntax errors
 * quoting PHI); then the whole file is searched for every seeded patient's
 * identifiers and every token that was sent.
 *
 * startTestStack cannot take a logger, so the stack is assembled here.
 */

const PATIENTS = 40;
const NEW_PHONE = '+1-617-555-0187';
const NOTE_SENTENCE = 'Patient reports the zebra-striped umbrella fell on the lighthouse keeper';

let api: Api;
let config: Config;
let principals: DevelopmentPrincipals;
let dataDir: string;
let logDir: string;
let logFile: string;
let dropScratch: (() => Promise<void>) | null = null;
let gatewayUrl: string;
/** Every PHI value whose appearance in the log would be a leak. */
const secrets: { label: string; value: string }[] = [];
/** Every token sent, valid or not. */
const tokens: string[] = [];
let log = '';

interface TokenOptions {
  subject?: string;
  roles?: Role[];
  organizationId?: string | null;
  patientId?: string | null;
  study?: string | null;
  mfa?: boolean;
  ttl?: string;
}

async function token(role: Role, overrides: TokenOptions = {}): Promise<string> {
  const sample = principals[role];
  const minted = await mintDevelopmentToken(config.auth, dataDir, {
    subject: overrides.subject ?? sample.subject,
    roles: overrides.roles ?? [role],
    organizationId: overrides.organizationId === undefined ? sample.organizationId : overrides.organizationId,
    patientId: overrides.patientId === undefined ? sample.patientId : overrides.patientId,
    study: overrides.study === undefined ? ((overrides.roles ?? [role]).includes('researcher') ? 'logging-study' : null) : overrides.study,
    mfa: overrides.mfa ?? true,
    ttl: overrides.ttl ?? '5m',
  });
  tokens.push(minted);
  return minted;
}

const sql = <T>(text: string, params: unknown[] = []): Promise<T[]> => sqlOn(api.db!)<T>(text, params);

interface PatientRow {
  id: string;
  mrn: Uint8Array | null;
  ssn: Uint8Array | null;
  name: Uint8Array | null;
  phone: Uint8Array | null;
  email: Uint8Array | null;
  address_lines: Uint8Array | null;
}

async function open(bytes: Uint8Array | null, column: string, rowId: string): Promise<string | null> {
  return bytes ? api.sealer!.cipher.decrypt(toBuffer(bytes), { table: 'patient', column, rowId }) : null;
}

/** Every seeded patient's identifiers, decrypted from the rows (before anything is tampered with). */
async function collectSecrets(): Promise<Map<string, { given: string[]; family: string }>> {
  const names = new Map<string, { given: string[]; family: string }>();
  for (const row of await sql<PatientRow>('select id, mrn, ssn, name, phone, email, address_lines from patient')) {
    const add = (label: string, value: string | null) => {
      if (value) secrets.push({ label: `${label} of patient ${row.id}`, value });
    };
    add('MRN', await open(row.mrn, 'mrn', row.id));
    const ssn = await open(row.ssn, 'ssn', row.id);
    add('SSN', ssn);
    add('SSN digits', ssn?.replace(/\D/g, '') ?? null);
    add('phone', await open(row.phone, 'phone', row.id));
    add('email', await open(row.email, 'email', row.id));
    const name = JSON.parse((await open(row.name, 'name', row.id)) ?? '{"given":[],"family":""}') as { given: string[]; family: string };
    names.set(row.id, name);
    for (const given of name.given) add('given name', given);
    add('family name', name.family);
    add('name', [...name.given, name.family].join(' '));
    for (const line of JSON.parse((await open(row.address_lines, 'address_lines', row.id)) ?? '[]') as string[]) add('address line', line);
  }
  secrets.push({ label: 'the new phone', value: NEW_PHONE }, { label: 'the note sentence', value: NOTE_SENTENCE });
  return names;
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A value is found as a whole word (a family name "Lee" is not a leak inside "sleep"), case-insensitively. */
function occurrences(haystack: string, value: string): number {
  const pattern = new RegExp(`(?<![A-Za-z0-9])${escape(value)}(?![A-Za-z0-9])`, 'gi');
  return haystack.match(pattern)?.length ?? 0;
}

function leaksIn(text: string): string[] {
  const found = secrets.filter(({ value }) => occurrences(text, value) > 0).map(({ label, value }) => `${label}: ${value}`);
  for (const sent of tokens) if (text.includes(sent) || text.includes(sent.split('.')[2] ?? sent)) found.push(`a token that was sent: ${sent.slice(0, 16)}…`);
  if (/eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/.test(text)) found.push('something shaped like a JWT');
  return [...new Set(found)];
}

beforeAll(async () => {
  const services = await resolveServices();
  dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-logging-'));
  logDir = await mkdtemp(join(tmpdir(), 'phi-graph-log-'));
  logFile = join(logDir, 'api.log');
  const scratch = services.postgresUrl ? await createScratchDatabase(services.postgresUrl) : null;
  dropScratch = scratch ? scratch.drop : null;
  config = loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    PATIENT_SUBGRAPH_PORT: '0',
    CLINICAL_SUBGRAPH_PORT: '0',
    BILLING_SUBGRAPH_PORT: '0',
    DATA_DIR: dataDir,
    ...(scratch && { DATABASE_URL: scratch.url }),
    ...(services.redisUrl && { REDIS_URL: services.redisUrl }),
    LOG_LEVEL: 'trace',
    REDIS_KEY_PREFIX: `phi-graph-test:${randomBytes(6).toString('hex')}:`,
    // Each role reads everything it can reach in one query: deeper and costlier than any operation of the product (README, "Limits").
    OPERATION_MAX_DEPTH: '12',
    OPERATION_MAX_COST: '10000000',
    // One account reads under every role here (see test/support/stack.ts): budgets over time are tested on their own.
    RATE_LIMIT_REQUESTS_PER_MINUTE: '1000000',
    RATE_LIMIT_IN_FLIGHT: '10000',
    RATE_LIMIT_PATIENTS_PER_HOUR: '1000000',
  });
  api = await startApi(config, createLogger('trace', pino.destination({ dest: logFile, sync: true })), { seedPatients: PATIENTS });
  const read = await readDevelopmentPrincipals(dataDir);
  if (!read) throw new Error('the seeder wrote no development principals');
  principals = read;
  gatewayUrl = api.gateway?.url ?? '';
  const names = await collectSecrets();
  expect(secrets.length).toBeGreaterThan(PATIENTS * 5);
  try {
    await exercise(names);
  } finally {
    await api.stop();
  }
  log = await readFile(logFile, 'utf8');
}, 300_000);

afterAll(async () => {
  await dropScratch?.();
  await rm(dataDir, { recursive: true, force: true });
  await rm(logDir, { recursive: true, force: true });
});

const schema = apiSchema();
const EVERYTHING = printSelection(schema, 'Patient', selectEverything(schema, 'Patient'));

async function exercise(names: Map<string, { given: string[]; family: string }>): Promise<void> {
  const patientId = principals.patient.patientId ?? '';
  const own = names.get(patientId) ?? { given: ['Nobody'], family: 'Known' };
  const [ownRow] = await sql<PatientRow>('select id, mrn, ssn from patient where id = ?', [patientId]);
  const ownMrn = (await open(ownRow?.mrn ?? null, 'mrn', patientId)) ?? '';
  const ownSsn = (await open(ownRow?.ssn ?? null, 'ssn', patientId)) ?? '';
  const [patientOrganization] = await sql<{ managing_organization_id: string }>('select managing_organization_id from patient where id = ?', [patientId]);
  const organizationId = patientOrganization?.managing_organization_id ?? null;

  // Every role reads everything it can reach, in one big query each (with and without MFA), plus one token holding every role.
  for (const role of ROLES) {
    const organizationScoped = ACCESS_POLICY[role].patients === 'organization';
    for (const mfa of [true, false]) {
      const response = await post(gatewayUrl, `query Everything { patients(first: ${PATIENTS}) { edges { node { ${EVERYTHING} } } } }`, {
        token: await token(role, { mfa, ...(organizationScoped && { organizationId }) }),
      });
      expect(response.status, role).toBe(200);
    }
    await post(gatewayUrl, `query One($id: ID!) { patient(id: $id) { ${EVERYTHING} } }`, { token: await token(role), variables: { id: patientId } });
  }
  const all = await post(gatewayUrl, `query All($id: ID!) { patient(id: $id) { ${EVERYTHING} } }`, {
    // Every role that reads data (a researcher's de-identified access never shares a token; an integrator's or an unagreed partner's would refuse
    // the lookup by id); the patient's own purpose (PATRQT, the first role's default) is the one under which this token reads every field.
    token: await token('patient', { roles: ['patient', ...ROLES.filter((role) => role !== 'researcher' && role !== 'integrator' && role !== 'partner' && role !== 'patient')], organizationId }),
    variables: { id: patientId },
  });
  expect(all.body.errors).toBeUndefined();
  // Lookups by identifier, the identifier in the query text and in variables.
  await post(gatewayUrl, `{ patientByMrn(mrn: "${ownMrn}") { id mrn ssn } }`, { token: await token('clinician') });
  await post(gatewayUrl, 'query($mrn: String!) { patientByMrn(mrn: $mrn) { id name { text } } }', { token: await token('billing'), variables: { mrn: ownMrn } });

  // Invalid tokens: garbage, a forged signature, a tampered payload, an expired one, an unknown role, a missing scheme; to the gateway and a subgraph.
  const valid = await token('clinician');
  const [header, payload, signature] = valid.split('.') as [string, string, string];
  const forgedPayload = Buffer.from(JSON.stringify({ sub: own.family, roles: ['admin'], ssn: ownSsn })).toString('base64url');
  const invalid = [
    'not-a-token',
    `${header}.${payload}.${signature.slice(0, -4)}AAAA`,
    `${header}.${forgedPayload}.${signature}`,
    await token('clinician', { ttl: '-1m' }),
    await token('clinician', { roles: ['superuser' as Role] }),
    await token('patient', { patientId: null }),
  ];
  tokens.push(...invalid);
  for (const bad of invalid) {
    for (const url of [gatewayUrl, api.subgraphs.patient?.url ?? '']) {
      const response = await post(url, `{ patientByMrn(mrn: "${ownMrn}") { id } }`, { token: bad });
      expect(response.status).toBe(401);
    }
  }
  const schemeless = await fetch(gatewayUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: valid }, body: '{"query":"{ viewer { subject } }"}' });
  expect(schemeless.status).toBe(401);

  // Invalid mutation inputs quoting PHI: an email made of the patient's name, a phone made of their SSN; inline and in variables.
  const patientToken = await token('patient');
  const badEmail = `${own.given[0] ?? 'x'} ${own.family} at home`;
  await post(gatewayUrl, 'mutation($input: UpdateContactInput!) { updateMyContact(input: $input) { ok error { code message inputErrors { field message } } } }', {
    token: patientToken,
    variables: { input: { email: badEmail, phone: ownSsn, address: { line: [own.family], city: own.given[0] ?? 'x', state: 'ZZ', postalCode: ownSsn } } },
  });
  await post(gatewayUrl, `mutation { updateMyContact(input: { email: "${badEmail}", phone: "${ownSsn}" }) { ok error { code inputErrors { field message } } } }`, { token: patientToken });
  // A variable of the wrong type whose value is PHI (coercion errors quote values).
  await post(gatewayUrl, 'mutation($input: UpdateContactInput!) { updateMyContact(input: $input) { ok } }', {
    token: patientToken,
    variables: { input: { email: { ssn: ownSsn }, phone: [ownMrn] } },
  });
  const clinician = await token('clinician');
  await post(gatewayUrl, 'mutation($input: AddClinicalNoteInput!) { addClinicalNote(input: $input) { ok error { code inputErrors { field message } } } }', {
    token: clinician,
    variables: { input: { patientId, typeCode: ownSsn, text: '' } },
  });

  // Valid mutations.
  const updated = await post<{ updateMyContact: { ok: boolean } }>(gatewayUrl, 'mutation($phone: String!) { updateMyContact(input: { phone: $phone }) { ok patient { phone } } }', {
    token: patientToken,
    variables: { phone: NEW_PHONE },
  });
  expect(updated.body.data?.updateMyContact.ok).toBe(true);
  const noted = await post<{ addClinicalNote: { ok: boolean } }>(
    gatewayUrl,
    'mutation($input: AddClinicalNoteInput!) { addClinicalNote(input: $input) { ok note { id text } } }',
    { token: clinician, variables: { input: { patientId, typeCode: '11506-3', text: `${NOTE_SENTENCE}.` } } },
  );
  expect(noted.body.data?.addClinicalNote.ok).toBe(true);
  await post(gatewayUrl, `query($id: ID!) { patient(id: $id) { clinicalNotes(first: 5) { edges { node { text } } } phone } }`, { token: clinician, variables: { id: patientId } });

  // Break the glass, and a read under it.
  const outside = await patientOutsideCareTeams(api.db!, principals.clinician);
  const opened = await post<{ openEmergencyAccess: { ok: boolean } }>(
    gatewayUrl,
    'mutation($id: ID!, $reason: String!) { openEmergencyAccess(input: { patientId: $id, reason: $reason }) { ok grant { id } } }',
    { token: clinician, variables: { id: outside, reason: `Unresponsive in the ED, brought in as ${own.given[0] ?? ''} ${own.family}` } },
  );
  expect(opened.body.data?.openEmergencyAccess.ok).toBe(true);
  await post(gatewayUrl, `query($id: ID!) { patient(id: $id) { ${EVERYTHING} } }`, { token: clinician, variables: { id: outside } });

  // A tampered ciphertext: that field fails with DECRYPTION_FAILED.
  const [victim] = await sql<{ id: string }>('select id from patient where ssn is not null and id <> ? order by id limit 1', [patientId]);
  await sql('update patient set ssn = set_byte(ssn, 20, get_byte(ssn, 20) # 1) where id = ?', [victim!.id]);
  const tampered = await post(gatewayUrl, 'query($id: ID!) { patient(id: $id) { id ssn name { text } } }', {
    token: await token('patient', { patientId: victim!.id, subject: `patient:${victim!.id}` }),
    variables: { id: victim!.id },
  });
  expect(tampered.body.errors?.[0]?.extensions?.['code']).toBe('DECRYPTION_FAILED');

  // The audit store fails: the response is withheld (503).
  await sql(`create or replace function phi_graph_test_break_audit() returns trigger language plpgsql as $$ begin raise exception 'audit store down'; end $$`);
  await sql('create trigger phi_graph_test_break_audit before insert on audit_event for each statement execute function phi_graph_test_break_audit()');
  try {
    const withheld = await post(gatewayUrl, `query($id: ID!) { patient(id: $id) { ${EVERYTHING} } }`, { token: clinician, variables: { id: patientId } });
    expect(withheld.status).toBe(503);
    const direct = await post(api.subgraphs.patient?.url ?? '', '{ patients(first: 5) { edges { node { id mrn ssn name { text } } } } }', { token: await token('billing') });
    expect(direct.status).toBe(503);
  } finally {
    await sql('drop trigger phi_graph_test_break_audit on audit_event');
  }

  // Syntax and validation errors whose text quotes PHI.
  const errors = [
    `{ patientByMrn(mrn: "${ownMrn}" { id } }`,
    `{ patient(id: "${ownSsn}") { id ssn(format: "${ownSsn}") } }`,
    `{ patientByMrn(mrn: "${ownMrn}") { id ${own.family} } }`,
    `query ${own.family.replace(/\W/g, '')} { patients(filter: { name: "${own.given[0] ?? ''} ${own.family}" }) { edges { node { id } } } }`,
    `{ patients(first: "${ownSsn}") { edges { node { id } } } }`,
    `${own.given[0] ?? ''} ${own.family} ${ownSsn}`,
  ];
  for (const query of errors) {
    const response = await post(gatewayUrl, query, { token: clinician });
    expect(response.status).toBeGreaterThanOrEqual(400);
    await post(api.subgraphs.clinical?.url ?? '', query, { token: clinician });
  }
  // A body that is not JSON, quoting PHI.
  const malformed = await fetch(gatewayUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${clinician}` },
    body: `{"query": "{ patientByMrn(mrn: \\"${ownMrn}\\") { id } }", ${ownSsn}`,
  });
  expect(malformed.status).toBe(400);
}

describe('the log', () => {
  it('was written, at every level up to trace', () => {
    expect(log.length).toBeGreaterThan(0);
    const lines = log.split('\n').filter((line) => line !== '');
    for (const line of lines) expect(() => JSON.parse(line) as unknown, line.slice(0, 200)).not.toThrow();
    expect(lines.length).toBeGreaterThan(10);
  });

  it('recorded the expected warnings and errors', () => {
    const events = log
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as { event?: string; level: number; msg?: string });
    const named = (event: string) => events.filter((entry) => entry.event === event);
    expect(named('emergency-access-granted').length).toBeGreaterThan(0);
    expect(named('emergency-access-granted').every((entry) => entry.level === 40)).toBe(true);
    expect(named('emergency-access-read').length).toBeGreaterThan(0);
    expect(named('audit-write-failed').length).toBeGreaterThan(0);
    expect(named('audit-write-failed').every((entry) => entry.level === 50)).toBe(true);
    expect(events.filter((entry) => entry.msg === 'token refused').length).toBeGreaterThanOrEqual(12);
  });

  it('holds no PHI: no seeded identifier, name, phone, email or address, nor the new phone or the note', () => {
    expect(secrets.length).toBeGreaterThan(0);
    const leaks = leaksIn(log);
    const where = leaks.length === 0 ? [] : log.split('\n').filter((line) => leaksIn(line).length > 0).map((line) => line.slice(0, 500));
    expect({ leaks, where }).toEqual({ leaks: [], where: [] });
  });

  it('holds no bearer token, valid or not', () => {
    expect(tokens.length).toBeGreaterThan(10);
    for (const sent of tokens) {
      expect(log.includes(sent)).toBe(false);
      const signature = sent.split('.')[2];
      if (signature) expect(log.includes(signature)).toBe(false);
    }
    expect(log).not.toMatch(/eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/);
    expect(log).not.toMatch(/Bearer\s+\S{8,}/i);
  });

  it('the search would find a leak (the checker itself works)', () => {
    const [sample] = secrets;
    expect(leaksIn(`{"msg":"oops ${sample?.value ?? ''}"}`).length).toBeGreaterThan(0);
    expect(leaksIn(`{"token":"${tokens[0] ?? ''}"}`).length).toBeGreaterThan(0);
  });
});
