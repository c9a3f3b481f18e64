import { toBuffer } from '../crypto/index.js';
import type { Database } from '../db/index.js';
import { auditEntries, auditEventFromRow, chainHash, payloadDigest, type AuditEventRecord } from './events.js';

/**
 * Walks the hash chain from the last checkpoint to the head, recomputing
 * every batch's digest from its stored events: an edited, deleted, added or
 * reordered row breaks it, and the report says which batch.
 */
export interface ChainProblem {
  sequence: number;
  problem: string;
}

export interface ChainReport {
  ok: boolean;
  batches: number;
  events: number;
  problems: ChainProblem[];
}

const PAGE = 500;

interface BatchRow {
  sequence: string | number;
  event_count: number;
  payload_digest: Uint8Array;
  previous_hash: Uint8Array;
  hash: Uint8Array;
}

export async function verifyAuditChain(db: Database): Promise<ChainReport> {
  const em = db.fork();
  const [head] = await em.execute<{ sequence: string; hash: Uint8Array; checkpoint_sequence: string; checkpoint_previous_hash: Uint8Array }[]>(
    'select "sequence", "hash", "checkpoint_sequence", "checkpoint_previous_hash" from "audit_chain" where "id" = 1',
  );
  if (!head) return { ok: false, batches: 0, events: 0, problems: [{ sequence: 0, problem: 'the chain head is missing' }] };
  const problems: ChainProblem[] = [];
  let expectedSequence = Number(head.checkpoint_sequence);
  let previous = toBuffer(head.checkpoint_previous_hash);
  let batches = 0;
  let events = 0;
  for (;;) {
    const page = await em.execute<BatchRow[]>(
      'select "sequence", "event_count", "payload_digest", "previous_hash", "hash" from "audit_batch" where "sequence" >= ? order by "sequence" limit ?',
      [expectedSequence, PAGE],
    );
    if (page.length === 0) break;
    const first = Number(page[0]?.sequence);
    const last = Number(page[page.length - 1]?.sequence);
    const rows = await em.execute<Record<string, unknown>[]>(`select * from ${auditEntries('e."batch_sequence" between ? and ?')} as "entry"`, [first, last]);
    const byBatch = new Map<number, AuditEventRecord[]>();
    for (const row of rows) {
      const event = auditEventFromRow(row);
      const batchEvents = byBatch.get(event.batchSequence);
      if (batchEvents) batchEvents.push(event);
      else byBatch.set(event.batchSequence, [event]);
    }
    for (const batch of page) {
      const sequence = Number(batch.sequence);
      if (sequence !== expectedSequence) problems.push({ sequence: expectedSequence, problem: `batches ${expectedSequence} to ${sequence - 1} are missing` });
      const stored = byBatch.get(sequence) ?? [];
      if (!toBuffer(batch.previous_hash).equals(previous)) problems.push({ sequence, problem: 'does not follow the batch before it (deleted, inserted or reordered batches)' });
      if (stored.length !== batch.event_count) problems.push({ sequence, problem: `holds ${stored.length} events, ${batch.event_count} were written (rows deleted or added)` });
      const digest = payloadDigest(stored);
      if (!digest.equals(toBuffer(batch.payload_digest))) problems.push({ sequence, problem: 'its events differ from what was written (rows edited, deleted or added)' });
      const hash = chainHash(toBuffer(batch.previous_hash), toBuffer(batch.payload_digest));
      if (!hash.equals(toBuffer(batch.hash))) problems.push({ sequence, problem: 'its hash does not match its contents' });
      previous = toBuffer(batch.hash);
      expectedSequence = sequence + 1;
      batches += 1;
      events += stored.length;
    }
  }
  if (expectedSequence - 1 !== Number(head.sequence) || !previous.equals(toBuffer(head.hash))) {
    problems.push({ sequence: Number(head.sequence), problem: 'the chain head does not match the last batch (batches removed from the end?)' });
  }
  return { ok: problems.length === 0, batches, events, problems };
}
