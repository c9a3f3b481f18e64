import type { KeyObject } from 'node:crypto';
import { toBuffer } from '../crypto/index.js';
import type { Database } from '../db/index.js';
import { readCheckpoints, type SigningKey } from './checkpoints.js';
import { chainHash, payloadDigest, type StoredAuditEvent } from './events.js';

/**
 * What an outside auditor needs, besides an NDJSON export of events, to
 * verify it without this project's database: the batches the events belong
 * to (their links in the chain), the signed checkpoints, and the public key
 * that signed them. `npm run audit:export -- --out FILE` writes it beside
 * the events as FILE.verification.json; `npm run audit:verify -- --export
 * FILE [--public-key PEM]` checks it offline. The auditor should hold the
 * public key from us by another path and pass it: the one in the bundle is
 * only compared with it.
 */
export interface VerificationBundle {
  version: 1;
  publicKey: string;
  keyId: string;
  /** The checkpoint sink's lines, as written. */
  checkpoints: string[];
  batches: { sequence: number; previousHash: string; payloadDigest: string; hash: string; eventCount: number }[];
}

export async function verificationBundle(db: Database, sequences: ReadonlySet<number>, key: SigningKey, checkpointLines: readonly string[]): Promise<VerificationBundle> {
  const batches: VerificationBundle['batches'] = [];
  const wanted = [...sequences].sort((a, b) => a - b);
  const em = db.fork();
  for (let start = 0; start < wanted.length; start += 500) {
    const slice = wanted.slice(start, start + 500);
    const rows = await em.execute<{ sequence: string; previous_hash: Uint8Array; payload_digest: Uint8Array; hash: Uint8Array; event_count: number }[]>(
      'select "sequence", "previous_hash", "payload_digest", "hash", "event_count" from "audit_batch" where "sequence" in (?) order by "sequence"',
      [slice],
    );
    for (const row of rows) {
      batches.push({
        sequence: Number(row.sequence),
        previousHash: toBuffer(row.previous_hash).toString('hex'),
        payloadDigest: toBuffer(row.payload_digest).toString('hex'),
        hash: toBuffer(row.hash).toString('hex'),
        eventCount: Number(row.event_count),
      });
    }
  }
  return { version: 1, publicKey: key.publicKeyPem, keyId: key.keyId, checkpoints: [...checkpointLines], batches };
}

export interface OfflineReport {
  ok: boolean;
  events: number;
  batches: number;
  /** Checkpoints whose signed head falls inside the export and matched it. */
  checkpointsMatched: number;
  problems: string[];
}

/** Recomputes every batch of the export from its events, follows the chain's links, and holds it against the signed checkpoints. */
export function verifyExport(events: readonly StoredAuditEvent[], bundle: VerificationBundle, publicKey: KeyObject): OfflineReport {
  const problems: string[] = [];
  const { checkpoints, problems: checkpointProblems } = readCheckpoints(bundle.checkpoints, publicKey);
  for (const problem of checkpointProblems) problems.push(`checkpoint ${problem.line} ${problem.problem}`);
  const byBatch = new Map<number, StoredAuditEvent[]>();
  for (const event of events) {
    const batch = byBatch.get(event.batchSequence);
    if (batch) batch.push(event);
    else byBatch.set(event.batchSequence, [event]);
  }
  const batches = new Map(bundle.batches.map((batch) => [batch.sequence, batch]));
  for (const sequence of byBatch.keys()) if (!batches.has(sequence)) problems.push(`batch ${sequence}: events without their batch in the bundle`);
  let previous: VerificationBundle['batches'][number] | undefined;
  for (const batch of [...batches.values()].sort((a, b) => a.sequence - b.sequence)) {
    const stored = byBatch.get(batch.sequence) ?? [];
    if (stored.length !== batch.eventCount) problems.push(`batch ${batch.sequence}: holds ${stored.length} events in the export, ${batch.eventCount} were written`);
    if (payloadDigest(stored).toString('hex') !== batch.payloadDigest) problems.push(`batch ${batch.sequence}: its events differ from what was written`);
    if (chainHash(Buffer.from(batch.previousHash, 'hex'), Buffer.from(batch.payloadDigest, 'hex')).toString('hex') !== batch.hash) problems.push(`batch ${batch.sequence}: its hash does not match its contents`);
    if (previous && previous.sequence + 1 === batch.sequence && previous.hash !== batch.previousHash) problems.push(`batch ${batch.sequence}: does not follow batch ${previous.sequence}`);
    previous = batch;
  }
  let checkpointsMatched = 0;
  for (const checkpoint of checkpoints) {
    const batch = batches.get(checkpoint.size);
    if (!batch) continue; // signed a batch outside the export's range
    if (batch.hash !== checkpoint.head) problems.push(`checkpoint ${checkpoint.line}: signed batch ${checkpoint.size} with another hash than the export's (rewritten and re-chained)`);
    else checkpointsMatched += 1;
  }
  if (checkpointsMatched === 0 && problems.length === 0) problems.push('no signed checkpoint falls inside the export: export a range that ends after a checkpoint (one is written every minute)');
  return { ok: problems.length === 0, events: events.length, batches: batches.size, checkpointsMatched, problems };
}
