import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatabaseAuditStore, ensureAuditRetention, purgeExpiredAudit, verifyAuditChain } from '../src/audit/index.js';
import { testAuditEvent } from './support/fixtures.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

let stack: TestStack;
const SEVEN_YEARS_MS = 7 * 366 * 24 * 3600 * 1000;

beforeAll(async () => {
  stack = await startTestStack({ patients: 10 });
});

afterAll(async () => {
  await stack?.stop();
});

function oldEvent(requestId: string) {
  return testAuditEvent(requestId, {
    recordedAt: new Date(Date.now() - SEVEN_YEARS_MS).toISOString(),
    subgraph: 'patient',
    subject: 'retired-user',
    roles: ['clinician'],
    operationHash: 'old',
    entityType: 'Patient',
    fields: [{ field: 'Patient.name', outcome: 'allowed' }],
  });
}

describe('audit retention', () => {
  it('purges only batches past retention, keeps the chain verifiable from its checkpoint, and refuses to purge anything newer', async () => {
    const store = new DatabaseAuditStore(stack.api.db!);
    for (const id of ['old-1', 'old-2', 'old-3']) await store.append([oldEvent(id), oldEvent(`${id}-b`)]);
    await post(stack.gatewayUrl, '{ patients(first: 3) { edges { node { mrn } } } }', { token: await stack.token('billing') });
    const [recent] = await stack.sql<{ sequence: string }>('select max(sequence) as sequence from audit_batch');
    expect((await verifyAuditChain(stack.api.db!)).ok).toBe(true);

    const purged = await purgeExpiredAudit(stack.api.db!);
    expect(purged).toMatchObject({ batches: 3, events: 6, checkpoint: 4 });
    const report = await verifyAuditChain(stack.api.db!);
    expect(report.problems).toEqual([]);
    expect(report.batches).toBe(Number(recent?.sequence) - 3);
    expect(await stack.sql("select 1 from audit_event where request_id like 'old-%'")).toEqual([]);

    await expect(stack.sql('delete from audit_batch where sequence = ?', [recent?.sequence])).rejects.toThrow(/retention/);
    expect((await purgeExpiredAudit(stack.api.db!)).batches).toBe(0);
  });

  it('can be made longer, never shorter', async () => {
    expect(await ensureAuditRetention(stack.api.db!, 3000)).toEqual({ retentionDays: 3000, raised: true });
    expect(await ensureAuditRetention(stack.api.db!, 10)).toEqual({ retentionDays: 3000, raised: false });
    await expect(stack.sql('update audit_chain set retention_days = 10 where id = 1')).rejects.toThrow(/retention only grows/);
  });
});
