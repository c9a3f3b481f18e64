import { decodeJwt } from 'jose';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { patientOutsideCareTeams } from './support/fixtures.js';
import { CacheUnavailableError, MemoryCache, revocationList } from '../src/cache/index.js';
import { resolveServices } from './support/services.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * Revocations and emergency grants are kept in the database; the cache
 * (Redis) holds a copy. Emptying the cache (a flush, a restart) brings no
 * revoked token back and loses no grant; a token revoked while its request
 * runs gets no data.
 */

let stack: TestStack;
let postgres = false;

beforeAll(async () => {
  postgres = !!(await resolveServices()).postgresUrl;
  stack = await startTestStack({ patients: 20 });
});

afterAll(async () => {
  await stack?.stop();
});

/** What a Redis restart or FLUSHALL does to this deployment: every key of its prefix gone (an in-process cache: the process restarted). */
async function emptyTheCache(): Promise<void> {
  if (!stack.config.redisUrl) {
    await stack.restart();
    return;
  }
  const redis = new Redis(stack.config.redisUrl);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${stack.config.redisKeyPrefix}*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

const PATIENT = 'query($id: ID!) { patient(id: $id) { id name { text } } }';

describe('a revoked token', () => {
  it('stays revoked when the cache is emptied, at the gateway and at every subgraph', async () => {
    const token = await stack.token('clinician');
    const variables = { id: stack.principals.patient.patientId };
    expect((await post(stack.gatewayUrl, PATIENT, { token, variables })).status).toBe(200);
    await stack.api.revocations.revoke(decodeJwt(token).jti ?? '', new Date(Date.now() + 300_000));
    expect((await post(stack.gatewayUrl, PATIENT, { token, variables })).status).toBe(401);

    await emptyTheCache();
    for (const url of [stack.gatewayUrl, stack.subgraphUrl('patient'), stack.subgraphUrl('clinical'), stack.subgraphUrl('billing')]) {
      const response = await post(url, '{ viewer { subject } }', { token });
      expect(response.status, url).toBe(401);
      expect(response.body.errors?.[0]?.extensions, url).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'REVOKED_TOKEN' });
      expect(response.body.data ?? null).toBeNull();
    }
    // Another token of the same account is unaffected.
    expect((await post(stack.gatewayUrl, PATIENT, { token: await stack.token('clinician'), variables })).status).toBe(200);
  });

  it('gets no data when it is revoked while its request runs', async (context) => {
    context.skip(!postgres, 'needs PostgreSQL: a lock held by another connection keeps the request running');
    const token = await stack.token('clinician');
    const variables = { id: stack.principals.patient.patientId };
    const locker = new pg.Client({ connectionString: stack.config.database.url });
    await locker.connect();
    let response;
    try {
      await locker.query('begin');
      await locker.query('lock table observation in access exclusive mode');
      const pending = post(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { id name { text } observations(first: 2) { edges { node { id value } } } } }', { token, variables });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await stack.api.revocations.revoke(decodeJwt(token).jti ?? '', new Date(Date.now() + 300_000));
      await locker.query('rollback');
      response = await pending;
    } finally {
      await locker.end();
    }
    expect(response.status).toBe(401);
    expect(response.body.data ?? null).toBeNull();
    expect(response.body.errors?.map((error) => error.extensions?.['reason'])).toEqual(['REVOKED_TOKEN']);
  });
});

describe('the revocation list when the database does not answer', () => {
  it('refuses (cache unavailable, 503 at the door) instead of taking an emptied cache as "nothing revoked"', async () => {
    const list = revocationList(new MemoryCache(), {
      record: () => Promise.resolve(),
      inForce: () => Promise.reject(new Error('connection refused')),
    });
    await expect(list.isRevoked('any-token-id')).rejects.toBeInstanceOf(CacheUnavailableError);
  });
});

describe('an emergency grant', () => {
  it('stays in force when the cache is emptied', async () => {
    const token = await stack.token('clinician');
    const id = await patientOutsideCareTeams(stack.api.db!, stack.principals.clinician);
    const before = await post<{ patient: { id: string } | null }>(stack.gatewayUrl, PATIENT, { token, variables: { id } });
    expect(before.body.data?.patient ?? null).toBeNull();
    const opened = await post<{ openEmergencyAccess: { ok: boolean } }>(
      stack.gatewayUrl,
      'mutation($id: ID!) { openEmergencyAccess(input: { patientId: $id, reason: "Patient arrived unconscious, history needed" }) { ok } }',
      { token, variables: { id } },
    );
    expect(opened.body.data?.openEmergencyAccess.ok).toBe(true);
    expect((await post<{ patient: { id: string } | null }>(stack.gatewayUrl, PATIENT, { token, variables: { id } })).body.data?.patient?.id).toBe(id);

    await emptyTheCache();
    const after = await post<{ patient: { id: string } | null }>(stack.gatewayUrl, PATIENT, { token: await stack.token('clinician'), variables: { id } });
    expect(after.status).toBe(200);
    expect(after.body.data?.patient?.id).toBe(id);
  });
});
