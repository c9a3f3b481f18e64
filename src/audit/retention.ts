import { toBuffer } from '../crypto/index.js';
import type { Database } from '../db/index.js';

/**
 * Retention: audit rows are kept at least as long as the chain head says
 * (six years by default, AUDIT_RETENTION_DAYS may only make it longer). A
 * purge removes the oldest batches whole, only those past retention (the
 * database refuses anything else), and moves the chain's checkpoint to the
 * first batch kept, so the rest stays verifiable.
 */
export interface PurgeResult {
  batches: number;
  events: number;
  checkpoint: number;
}

export async function purgeExpiredAudit(db: Database): Promise<PurgeResult> {
  return db.fork().transactional(async (em) => {
    const [chain] = await em.execute<{ sequence: string; hash: Uint8Array; checkpoint_sequence: string; retention_days: number }[]>(
      'select "sequence", "hash", "checkpoint_sequence", "retention_days" from "audit_chain" where "id" = 1 for update',
    );
    if (!chain) throw new Error('the audit chain head is missing');
    const [keep] = await em.execute<{ sequence: string; previous_hash: Uint8Array }[]>(
      `select "sequence", "previous_hash" from "audit_batch" where "sequence" >= ? and "recorded_at" >= now() - make_interval(days => ?)
       order by "sequence" limit 1`,
      [chain.checkpoint_sequence, chain.retention_days],
    );
    const keepFrom = keep ? Number(keep.sequence) : Number(chain.sequence) + 1;
    const checkpointPrevious = toBuffer(keep ? keep.previous_hash : chain.hash);
    const events = await em.execute<{ count: string }[]>(
      'with gone as (delete from "audit_event" where "batch_sequence" < ? returning 1) select count(*) as "count" from gone',
      [keepFrom],
    );
    const batches = await em.execute<{ count: string }[]>('with gone as (delete from "audit_batch" where "sequence" < ? returning 1) select count(*) as "count" from gone', [keepFrom]);
    await em.execute('update "audit_chain" set "checkpoint_sequence" = ?, "checkpoint_previous_hash" = ? where "id" = 1', [keepFrom, checkpointPrevious]);
    return { batches: Number(batches[0]?.count ?? 0), events: Number(events[0]?.count ?? 0), checkpoint: keepFrom };
  });
}

/** Raises the retention to `days` if that is longer; a shorter setting is ignored (the database refuses it) and reported. */
export async function ensureAuditRetention(db: Database, days: number): Promise<{ retentionDays: number; raised: boolean }> {
  const em = db.fork();
  const [chain] = await em.execute<{ retention_days: number }[]>('select "retention_days" from "audit_chain" where "id" = 1');
  const current = Number(chain?.retention_days ?? 0);
  if (days <= current) return { retentionDays: current, raised: false };
  await em.execute('update "audit_chain" set "retention_days" = ? where "id" = 1', [days]);
  return { retentionDays: days, raised: true };
}
