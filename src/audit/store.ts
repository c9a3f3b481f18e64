import { sql } from 'kysely';
import type { Database } from '../db/index.js';
import { payloadDigest, type AuditEventRecord } from './events.js';

/**
 * Appends one request's events as one hash-chained batch, in ONE SQL
 * statement (one round trip): the chain head is locked, the batch row gets
 * sha256(previous hash || payload digest), the head moves, and the events
 * are inserted from one JSON parameter. Concurrent writers, in any number of
 * processes, queue on the head's row lock, so the chain stays a single line.
 */
export interface AuditStore {
  append(events: readonly AuditEventRecord[]): Promise<number>;
}

/** The one statement; its values are bound parameters (the events travel as one JSON parameter, never inlined into SQL text). */
function appendStatement(recordedAt: string, count: number, digest: Buffer, events: string) {
  return sql<{ batch_sequence: string }>`
with head as (
  select "sequence", "hash" from "audit_chain" where "id" = 1 for update
), batch as (
  insert into "audit_batch" ("sequence", "recorded_at", "event_count", "payload_digest", "previous_hash", "hash")
  select head."sequence" + 1, ${recordedAt}::timestamptz, ${count}::int, ${digest}::bytea, head."hash", sha256(head."hash" || ${digest}::bytea) from head
  returning "sequence", "hash"
), moved as (
  update "audit_chain" set "sequence" = batch."sequence", "hash" = batch."hash" from batch where "audit_chain"."id" = 1 returning 1
)
insert into "audit_event" ("batch_sequence", "recorded_at", "request_id", "subgraph", "subject", "roles", "organization_id", "client_name",
  "client_version", "ip", "operation_name", "operation_hash", "patient_id", "entity_type", "entity_id", "action", "fields", "emergency", "emergency_grant_id")
select batch."sequence", e."recordedAt", e."requestId", e."subgraph", e."subject", e."roles", e."organizationId", e."clientName",
  e."clientVersion", e."ip", e."operationName", e."operationHash", e."patientId", e."entityType", e."entityId", e."action", e."fields", e."emergency", e."emergencyGrantId"
from batch, jsonb_to_recordset(${events}::jsonb) as e("recordedAt" timestamptz, "requestId" text, "subgraph" text, "subject" text, "roles" text[],
  "organizationId" uuid, "clientName" text, "clientVersion" text, "ip" text, "operationName" text, "operationHash" text, "patientId" uuid,
  "entityType" text, "entityId" text, "action" text, "fields" jsonb, "emergency" boolean, "emergencyGrantId" uuid)
returning "batch_sequence"`;
}

export class DatabaseAuditStore implements AuditStore {
  constructor(private readonly db: Database) {}

  async append(events: readonly AuditEventRecord[]): Promise<number> {
    if (events.length === 0) return 0;
    const digest = payloadDigest(events);
    const recordedAt = events[0]?.recordedAt ?? new Date().toISOString();
    const { rows } = await appendStatement(recordedAt, events.length, digest, JSON.stringify(events)).execute(this.db.fork().getKysely());
    if (rows.length !== events.length) throw new Error(`the audit batch wrote ${rows.length} of ${events.length} events`);
    return Number(rows[0]?.batch_sequence);
  }
}
