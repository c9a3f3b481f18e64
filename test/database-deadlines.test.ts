import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveServices } from './support/services.js';
import { post, startTestStack, type GraphQLResponse, type TestStack } from './support/stack.js';

/**
 * A lock held on a table must not hang the API: every statement has a lock
 * and a statement deadline and every wait for a pooled connection has one
 * too, so a request that needs the locked table answers 503
 * DATABASE_UNAVAILABLE (with Retry-After, no data, no driver text) within
 * its deadline, the requests that do not need it keep being served, and
 * everything recovers when the lock goes, without a restart.
 */

const LOCK_TIMEOUT_MS = 500;
let stack: TestStack;
let postgres = false;

beforeAll(async () => {
  postgres = !!(await resolveServices()).postgresUrl;
  stack = await startTestStack({ patients: 10, env: { DATABASE_LOCK_TIMEOUT_MS: String(LOCK_TIMEOUT_MS), DATABASE_ACQUIRE_TIMEOUT_MS: '1000' } });
});

afterAll(async () => {
  await stack?.stop();
});

const OBSERVATIONS = 'query($id: ID!) { patient(id: $id) { id observations(first: 3) { edges { node { id value } } } } }';

function observations(body: GraphQLResponse['body']): unknown[] | undefined {
  return (body.data as { patient?: { observations?: { edges: unknown[] } | null } | null } | null)?.patient?.observations?.edges;
}

describe('a table locked by someone else', () => {
  it('answers 503 DATABASE_UNAVAILABLE within the lock deadline, keeps serving everything else, and recovers when the lock goes', async (context) => {
    context.skip(!postgres, 'needs PostgreSQL (DATABASE_URL or 127.0.0.1:5432): PGlite has one connection, held by the API itself');
    const token = await stack.token('clinician');
    const variables = { id: stack.principals.patient.patientId };
    expect(observations((await post(stack.gatewayUrl, OBSERVATIONS, { token, variables })).body)?.length).toBeGreaterThan(0);

    const locker = new pg.Client({ connectionString: stack.config.database.url });
    await locker.connect();
    try {
      await locker.query('begin');
      await locker.query('lock table observation in access exclusive mode');
      const started = Date.now();
      // More requests at once than the pool has connections: none of them may hang.
      const blocked = await Promise.all(Array.from({ length: 14 }, () => post(stack.gatewayUrl, OBSERVATIONS, { token, variables })));
      const elapsed = Date.now() - started;
      expect(elapsed).toBeLessThan(15_000);
      for (const response of blocked) {
        expect(response.status).toBe(503);
        expect(response.headers.get('retry-after')).toBe('5');
        expect(response.body.data ?? null).toBeNull();
        expect(response.body.errors?.map((error) => error.extensions?.['code'])).toEqual(['DATABASE_UNAVAILABLE']);
        expect(JSON.stringify(response.body)).not.toMatch(/lock|observation|SQLSTATE|55P03|57014|canceling/i);
      }
      // Straight to the clinical subgraph: the same answer.
      const direct = await post(stack.subgraphUrl('clinical'), 'query($r: [_Any!]!) { _entities(representations: $r) { ... on Patient { observations(first: 1) { edges { node { id } } } } } }', {
        token,
        variables: { r: [{ __typename: 'Patient', id: variables.id }] },
      });
      expect(direct.status).toBe(503);
      expect(direct.body.errors?.[0]?.extensions?.['code']).toBe('DATABASE_UNAVAILABLE');
      // What does not need the locked table is served meanwhile, and readiness answers.
      const other = await post<{ patient: { name: { family: string } } | null }>(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { name { family } } }', { token, variables });
      expect(other.status).toBe(200);
      expect(other.body.data?.patient?.name.family).toBeTruthy();
      const ready = await fetch(new URL('/readyz', stack.gatewayUrl));
      expect(ready.status).toBe(200);
    } finally {
      await locker.query('rollback').catch(() => undefined);
      await locker.end();
    }
    const after = await post(stack.gatewayUrl, OBSERVATIONS, { token, variables });
    expect(after.body.errors ?? []).toEqual([]);
    expect(observations(after.body)?.length).toBeGreaterThan(0);
  });
});

describe('readiness', () => {
  it('answers /readyz 503 within its deadline while PostgreSQL refuses connections, on the gateway and every subgraph, and 200 again after', async (context) => {
    context.skip(!postgres, 'needs PostgreSQL (DATABASE_URL or 127.0.0.1:5432)');
    const url = new URL(stack.config.database.url ?? '');
    const database = url.pathname.slice(1);
    const adminUrl = new URL(url);
    adminUrl.pathname = '/postgres';
    const admin = new pg.Client({ connectionString: adminUrl.toString() });
    await admin.connect();
    const probes = () => [new URL('/readyz', stack.gatewayUrl), ...(['patient', 'clinical', 'billing'] as const).map((name) => new URL('/readyz', stack.subgraphUrl(name)))];
    try {
      await admin.query(`alter database "${database}" allow_connections false`);
      await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1', [database]);
      for (const probe of probes()) {
        const started = Date.now();
        const response = await fetch(probe);
        expect(response.status, probe.toString()).toBe(503);
        expect(Date.now() - started, probe.toString()).toBeLessThan(3_000);
      }
    } finally {
      await admin.query(`alter database "${database}" allow_connections true`);
      await admin.end();
    }
    for (const probe of probes()) {
      const deadline = Date.now() + 10_000;
      let status = 0;
      while (status !== 200 && Date.now() < deadline) {
        status = (await fetch(probe)).status;
        if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(status, probe.toString()).toBe(200);
    }
  });
});
