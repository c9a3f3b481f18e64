import type { Database } from './index.js';

/** How long an Idempotency-Key is remembered (src/subgraphs/writes.ts ignores older ones). */
export const IDEMPOTENCY_KEY_HOURS = 24;

/**
 * Rows that have served their time: Idempotency-Keys past their 24 hours,
 * and revocations of tokens that have expired anyway (an expired token is
 * refused for its expiry). Run by the process that writes audit checkpoints,
 * on the same timer, so neither table grows without end.
 */
export async function purgeExpiredRows(db: Database): Promise<{ idempotencyKeys: number; revocations: number }> {
  const em = db.fork();
  const keys = await em.execute<{ count: string }[]>(
    `with gone as (delete from "idempotency_key" where "created_at" < now() - make_interval(hours => ?) returning 1) select count(*) as "count" from gone`,
    [IDEMPOTENCY_KEY_HOURS],
  );
  const revocations = await em.execute<{ count: string }[]>('with gone as (delete from "revoked_token" where "expires_at" < now() returning 1) select count(*) as "count" from gone');
  return { idempotencyKeys: Number(keys[0]?.count ?? 0), revocations: Number(revocations[0]?.count ?? 0) };
}
