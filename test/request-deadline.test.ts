import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveServices } from './support/services.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * The deadline of a whole request and the largest response: past its
 * deadline a request answers 504 REQUEST_TIMEOUT without data, writes
 * nothing and is on the audit trail; a response larger than the cap is
 * refused with 400 RESPONSE_TOO_LARGE before any of it leaves.
 */

const DEADLINE_MS = 2_000;
const RESPONSE_MAX_BYTES = 3_000;
let stack: TestStack;
let postgres = false;

beforeAll(async () => {
  postgres = !!(await resolveServices()).postgresUrl;
  // Lock and statement timeouts longer than the request deadline: the deadline is what must stop the request here.
  stack = await startTestStack({
    patients: 40,
    env: { REQUEST_DEADLINE_MS: String(DEADLINE_MS), RESPONSE_MAX_BYTES: String(RESPONSE_MAX_BYTES), DATABASE_LOCK_TIMEOUT_MS: '20000', DATABASE_STATEMENT_TIMEOUT_MS: '20000' },
  });
});

afterAll(async () => {
  await stack?.stop();
});

const OBSERVATIONS = 'query($id: ID!) { patient(id: $id) { id observations(first: 3) { edges { node { id value } } } } }';
const ADD_NOTE = 'mutation($input: AddClinicalNoteInput!) { addClinicalNote(input: $input) { ok error { code } note { id } } }';

async function withLock<T>(table: string, run: (release: () => Promise<void>) => Promise<T>): Promise<T> {
  const locker = new pg.Client({ connectionString: stack.config.database.url });
  await locker.connect();
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await locker.query('rollback').catch(() => undefined);
  };
  try {
    await locker.query('begin');
    await locker.query(`lock table ${table} in access exclusive mode`);
    return await run(release);
  } finally {
    await release();
    await locker.end();
  }
}

async function deadlineRefusals(requestId: string): Promise<{ fields: unknown }[]> {
  return stack.sql<{ fields: unknown }>(`select fields from audit_event where request_id = ? and fields::text like '%REQUEST_TIMEOUT%'`, [requestId]);
}

async function notesOf(patientId: string): Promise<number> {
  const [row] = await stack.sql<{ count: string }>('select count(*) as count from clinical_note where patient_id = ?', [patientId]);
  return Number(row?.count ?? 0);
}

describe('a request past its deadline', () => {
  it('answers 504 REQUEST_TIMEOUT at the gateway within the deadline, without data', async (context) => {
    context.skip(!postgres, 'needs PostgreSQL: a lock held by another connection (PGlite has one connection)');
    const token = await stack.token('clinician');
    const variables = { id: stack.principals.patient.patientId };
    await withLock('observation', async () => {
      const started = Date.now();
      const response = await post(stack.gatewayUrl, OBSERVATIONS, { token, variables });
      const elapsed = Date.now() - started;
      expect(response.status).toBe(504);
      expect(response.headers.get('retry-after')).toBe('5');
      expect(response.body.data ?? null).toBeNull();
      expect(response.body.errors?.map((error) => error.extensions?.['code'])).toEqual(['REQUEST_TIMEOUT']);
      expect(response.body.errors?.[0]?.extensions).toMatchObject({ limit: 'deadlineMs', max: DEADLINE_MS });
      expect(elapsed).toBeGreaterThanOrEqual(DEADLINE_MS - 100);
      expect(elapsed).toBeLessThan(DEADLINE_MS + 1_500);
    });
  });

  it('withholds a subgraph read that finished after the deadline the gateway gave it, and audits the refusal', async (context) => {
    context.skip(!postgres, 'needs PostgreSQL: a lock held by another connection');
    const token = await stack.token('clinician');
    const requestId = `deadline-read-${Date.now()}`;
    const response = await withLock('observation', async (release) => {
      const pending = post(stack.subgraphUrl('clinical'), 'query($r: [_Any!]!) { _entities(representations: $r) { ... on Patient { observations(first: 1) { edges { node { id value } } } } } }', {
        token,
        variables: { r: [{ __typename: 'Patient', id: stack.principals.patient.patientId }] },
        headers: { 'x-request-timeout-ms': '300', 'x-request-id': requestId },
      });
      // The lock goes after the deadline: the read then succeeds, too late.
      await new Promise((resolve) => setTimeout(resolve, 800));
      await release();
      return pending;
    });
    expect(response.status).toBe(504);
    expect(response.body.data ?? null).toBeNull();
    expect(response.body.errors?.[0]?.extensions?.['code']).toBe('REQUEST_TIMEOUT');
    expect(JSON.stringify(response.body)).not.toMatch(/"value"/);
    expect(await deadlineRefusals(requestId)).toHaveLength(1);
  });

  it('writes nothing when the write would start past the deadline, and audits the refusal', async () => {
    const token = await stack.token('clinician');
    const patientId = stack.principals.patient.patientId ?? '';
    const before = await notesOf(patientId);
    const requestId = `deadline-write-${Date.now()}`;
    const response = await post(stack.subgraphUrl('clinical'), ADD_NOTE, {
      token,
      variables: { input: { patientId, typeCode: '11506-3', text: 'Written too late.' } },
      // A caller with 1 ms left: the checks before the write use it up.
      headers: { 'x-request-timeout-ms': '1', 'x-request-id': requestId },
    });
    expect(response.status).toBe(504);
    expect(response.body.data ?? null).toBeNull();
    expect(response.body.errors?.[0]?.extensions?.['code']).toBe('REQUEST_TIMEOUT');
    expect(await notesOf(patientId)).toBe(before);
    expect(await deadlineRefusals(requestId)).toHaveLength(1);
  });

  it('cancels a write held past the deadline: 5xx with a code, nothing written, and the next write goes through', async (context) => {
    context.skip(!postgres, 'needs PostgreSQL: a lock held by another connection');
    const token = await stack.token('clinician');
    const patientId = stack.principals.patient.patientId ?? '';
    const before = await notesOf(patientId);
    const input = { patientId, typeCode: '11506-3', text: 'Held by a lock.' };
    const response = await withLock('clinical_note', () => post(stack.gatewayUrl, ADD_NOTE, { token, variables: { input } }));
    expect([503, 504]).toContain(response.status);
    expect(response.body.data ?? null).toBeNull();
    expect(['REQUEST_TIMEOUT', 'DATABASE_UNAVAILABLE']).toContain(response.body.errors?.[0]?.extensions?.['code']);
    // The gateway gave up; the subgraph's transaction had the same deadline and rolled back.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await notesOf(patientId)).toBe(before);
    const next = await post<{ addClinicalNote: { ok: boolean } }>(stack.gatewayUrl, ADD_NOTE, { token, variables: { input } });
    expect(next.body.data?.addClinicalNote.ok).toBe(true);
    expect(await notesOf(patientId)).toBe(before + 1);
  });
});

describe('the largest response', () => {
  const LARGE = '{ patients(first: 20) { edges { node { id name { text } observations(first: 20) { edges { node { id value unit effectiveAt } } } } } } }';

  it('refuses a response past the cap with 400 RESPONSE_TOO_LARGE, at the gateway and on a subgraph, without any of its data', async () => {
    const token = await stack.token('clinician');
    const small = await post<{ patients: { edges: { node: { name: { text: string } } }[] } }>(stack.gatewayUrl, '{ patients(first: 2) { edges { node { id name { text } } } } }', { token });
    expect(small.status).toBe(200);
    const someName = small.body.data?.patients.edges[0]?.node.name.text ?? '';
    expect(someName).not.toBe('');

    const ids = await post<{ patients: { edges: { node: { id: string } }[] } }>(stack.gatewayUrl, '{ patients(first: 20) { edges { node { id } } } }', { token });
    const representations = (ids.body.data?.patients.edges ?? []).map(({ node }) => ({ __typename: 'Patient', id: node.id }));
    const direct = 'query($r: [_Any!]!) { _entities(representations: $r) { ... on Patient { observations(first: 20) { edges { node { id value unit effectiveAt } } } } } }';
    for (const [url, query, variables] of [
      [stack.gatewayUrl, LARGE, {}],
      [stack.subgraphUrl('clinical'), direct, { r: representations }],
    ] as const) {
      const response = await post(url, query, { token, variables });
      expect(response.status).toBe(400);
      expect(response.body.data ?? null).toBeNull();
      const [error] = response.body.errors ?? [];
      expect(error?.extensions).toMatchObject({ code: 'RESPONSE_TOO_LARGE', limit: 'responseBytes', max: RESPONSE_MAX_BYTES });
      expect(Number(error?.extensions?.['measured'])).toBeGreaterThan(RESPONSE_MAX_BYTES);
      expect(JSON.stringify(response.body)).not.toContain(someName);
      expect(Number(response.headers.get('content-length'))).toBeLessThan(1_000);
    }
  });
});
