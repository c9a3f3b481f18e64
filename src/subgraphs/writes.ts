import { createHash } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/sql';
import { GraphQLError } from 'graphql';
import type { AuditEventRecord, AuditGroup } from '../audit/index.js';
import { auditUnavailable, decryptionFailed, ErrorCode, requestTimeout } from '../errors.js';
import { CryptoError } from '../crypto/index.js';
import { IDEMPOTENCY_KEY_HOURS } from '../db/housekeeping.js';
import type { SubgraphContext } from './context.js';
import { recordDeadlineRefusal } from './deadline.js';

/**
 * Every write of a mutation goes through here: ONE transaction holds
 * - the write itself, which commits whole or not at all;
 * - its audit records (the events of the mutation's writes: a create with
 *   the new entity's id, an update with the changed field names, never
 *   values), so a write never commits without its record, and a record of
 *   a write that did not commit is never left (503 AUDIT_UNAVAILABLE when
 *   the record cannot be written: nothing is);
 * - the caller's Idempotency-Key, when it sent one: a mutation sent again
 *   with the same key (a retry after a dropped connection) is not applied
 *   again, and answers with what the first one wrote;
 * and it neither starts past the request's deadline nor runs past it (its
 * statements get what is left as their statement timeout, never more than
 * the connection's own).
 */

/** What a write came to: applied now, or applied before under the same Idempotency-Key (its result's id). */
export type Written<T> = { replayed: false; result: T } | { replayed: true; resultId: string | null };

export interface Write<T> {
  /** The mutation field, e.g. `Mutation.recordPayment`. */
  coordinate: string;
  /** The mutation's input, as coerced: what an Idempotency-Key is bound to (its digest is stored, never its values). */
  input: unknown;
  work: (em: EntityManager) => Promise<T>;
  /** The id of what was written (a create's new entity), for its audit event and for a replay. */
  resultId?: (result: T) => string | null;
  /** False when the work found nothing to write (a lost race, say): then nothing is recorded and the key is not spent. */
  wrote?: (result: T) => boolean;
}

/** A statement cancelled by its timeout comes back a little before the deadline it was given (the round trip). */
const DEADLINE_SLACK_MS = 50;
/** How long an Idempotency-Key is remembered; a key older than this is a new request (and is purged: db/housekeeping.ts). */
const IDEMPOTENCY_HOURS = IDEMPOTENCY_KEY_HOURS;

/** Thrown inside the transaction only to roll it back (the key claim with it); never leaves writeWithRecord. */
class NothingWritten<T> extends Error {
  constructor(readonly result: T) {
    super('nothing to write');
  }
}

class AuditWriteFailed extends Error {
  constructor(override readonly cause: unknown) {
    super('the audit records of a write could not be written');
  }
}

export async function writeWithRecord<T>(context: SubgraphContext, write: Write<T>): Promise<Written<T>> {
  const left = Math.floor(context.deadline - Date.now());
  if (left <= 0) {
    recordDeadlineRefusal(context, write.coordinate, 'update');
    throw requestTimeout(context.deadlineMs);
  }
  const key = context.idempotencyKey;
  const digest = key ? requestDigest(write.coordinate, write.input) : null;
  let taken: AuditGroup[] = [];
  let recorded: AuditEventRecord[] = [];
  try {
    const written = await context.em.transactional(async (em): Promise<Written<T>> => {
      // least() ignores the NULL of a connection without a statement timeout (0 turns it off).
      await em.execute(
        `select set_config('statement_timeout', least(?::bigint, nullif(extract(epoch from current_setting('statement_timeout')::interval) * 1000, 0))::bigint::text, true)`,
        [left],
      );
      if (key && digest) {
        const earlier = await claimKey(em, context.principal.subject, key, write.coordinate, digest);
        if (earlier) return earlier;
      }
      const result = await write.work(em);
      if (write.wrote && !write.wrote(result)) throw new NothingWritten(result);
      const resultId = write.resultId?.(result) ?? null;
      taken = context.audit.takeWrites();
      recorded = await recordWrites(em, context, taken, resultId);
      if (key) await em.execute('update "idempotency_key" set "result_id" = ? where "subject" = ? and "key" = ?', [resultId, context.principal.subject, key], 'run');
      return { replayed: false, result };
    });
    // Committed: the access watch (alerts, budgets) counts these events with the request's reads.
    context.audit.recordWritten(recorded);
    return written;
  } catch (error) {
    if (error instanceof NothingWritten) return { replayed: false, result: (error as NothingWritten<T>).result };
    // Rolled back: what was taken to be written with it is back, and recorded as an attempt (markUnwritten).
    context.audit.restore(taken);
    if (error instanceof GraphQLError) throw error;
    // A row marked as not encrypted is not written around either (sealColumnsForUpdate): said with its reason.
    if (error instanceof CryptoError) throw decryptionFailed(error.failure, write.coordinate);
    if (error instanceof AuditWriteFailed) {
      const code = (error.cause as { code?: unknown } | null)?.code;
      context.logger.error(
        { event: 'audit-write-failed', requestId: context.requestId, coordinate: write.coordinate, err: { name: (error.cause as Error | null)?.name, code: typeof code === 'string' ? code : undefined } },
        'audit write of a mutation failed: nothing written',
      );
      throw auditUnavailable();
    }
    // When the deadline has come meanwhile, it is what cancelled the write: say so.
    if (Date.now() < context.deadline - DEADLINE_SLACK_MS) throw error;
    recordDeadlineRefusal(context, write.coordinate, 'update');
    throw requestTimeout(context.deadlineMs);
  }
}

/**
 * A mutation sent again with an Idempotency-Key whose first request has
 * committed: the id of what that one wrote, looked up before the mutation
 * checks anything (a retried payment of a whole balance would otherwise
 * find the invoice paid and say so, instead of answering the first result).
 * Null when the key is new, or its first request has not committed (then
 * writeWithRecord waits for it).
 */
export async function earlierWrite(context: SubgraphContext, coordinate: string, input: unknown): Promise<{ resultId: string | null } | null> {
  const key = context.idempotencyKey;
  if (!key) return null;
  const [earlier] = await context.em.execute<{ coordinate: string; request_digest: Buffer; result_id: string | null }[]>(
    `select "coordinate", "request_digest", "result_id" from "idempotency_key" where "subject" = ? and "key" = ? and "created_at" >= now() - interval '${IDEMPOTENCY_HOURS} hours'`,
    [context.principal.subject, key],
  );
  if (!earlier) return null;
  if (earlier.coordinate !== coordinate || !Buffer.from(earlier.request_digest).equals(requestDigest(coordinate, input))) throw keyReused();
  return { resultId: earlier.result_id };
}

function keyReused(): GraphQLError {
  return new GraphQLError('This Idempotency-Key was used for another request: use a new key for a new request.', {
    extensions: { code: ErrorCode.BadUserInput, reason: 'IDEMPOTENCY_KEY_REUSED' },
  });
}

/** The events of the mutation's writes, in its transaction: a create names the entity it made. */
async function recordWrites(em: EntityManager, context: SubgraphContext, groups: readonly AuditGroup[], resultId: string | null): Promise<AuditEventRecord[]> {
  if (groups.length === 0 || !context.auditStore) return [];
  const events = context.audit
    .events(context.auditFacts, new Date(), context.access.emergencyReads, groups)
    .map((event) => (event.action === 'create' && event.entityId === null ? { ...event, entityId: resultId } : event));
  try {
    await context.auditStore.append(events, em);
  } catch (error) {
    throw new AuditWriteFailed(error);
  }
  return events;
}

/** What the key is bound to: the mutation and its input (a digest, never the values). */
function requestDigest(coordinate: string, input: unknown): Buffer {
  return createHash('sha256').update(coordinate).update('\0').update(JSON.stringify(input ?? null)).digest();
}

/**
 * Claims the key for this request, in its transaction. A key claimed by a
 * request still running makes this one wait (the primary key's lock) until
 * that one commits (then this answers with its result) or rolls back (then
 * this one goes on). The same key for another mutation or another input is
 * refused.
 */
async function claimKey(em: EntityManager, subject: string, key: string, coordinate: string, digest: Buffer): Promise<Written<never> | null> {
  const claimed = await em.execute<{ claimed: number }[]>(
    `insert into "idempotency_key" ("subject", "key", "coordinate", "request_digest") values (?, ?, ?, ?)
     on conflict ("subject", "key") do update set "coordinate" = excluded."coordinate", "request_digest" = excluded."request_digest", "result_id" = null, "created_at" = now()
       where "idempotency_key"."created_at" < now() - interval '${IDEMPOTENCY_HOURS} hours'
     returning 1 as "claimed"`,
    [subject, key, coordinate, digest],
  );
  if (claimed.length > 0) return null;
  const [earlier] = await em.execute<{ coordinate: string; request_digest: Buffer; result_id: string | null }[]>(
    'select "coordinate", "request_digest", "result_id" from "idempotency_key" where "subject" = ? and "key" = ?',
    [subject, key],
  );
  if (!earlier || earlier.coordinate !== coordinate || !Buffer.from(earlier.request_digest).equals(digest)) throw keyReused();
  return { replayed: true, resultId: earlier.result_id };
}
