import { sql } from 'kysely';
import type { EntityManager } from '@mikro-orm/sql';
import type { Database } from '../db/index.js';
import { fieldsKey, payloadDigest, sameFacts, type AuditEventRecord } from './events.js';

/**
 * Appends one request's events as one hash-chained batch, in ONE SQL
 * statement (one round trip): the chain head is locked, the batch row gets
 * sha256(previous hash || payload digest), the head moves, and the events
 * are inserted from one JSON parameter. Concurrent writers, in any number of
 * processes, queue on the head's row lock, so the chain stays a single line.
 *
 * Events that differ only in their patient and entity (a list's rows read
 * with the same fields and outcomes) share one audit_event row, their
 * patients and entities in two parallel arrays: a thousand-row page is a
 * handful of rows, so the insert, and the time the head stays locked, no
 * longer grow with the page. The digest covers the events one by one, as
 * before; readers unnest the rows (auditEntries).
 */
export interface AuditStore {
  /** `em`: a transaction to append in (a mutation's, so its rows and its record commit together); a connection of its own otherwise. */
  append(events: readonly AuditEventRecord[], em?: EntityManager): Promise<number>;
}

/**
 * The one statement; its values are bound parameters, never inlined into
 * SQL text. The request facts travel once per distinct set (a batch
 * usually has one), the events as their own columns plus the index of
 * their facts: a thousand-event batch sends and parses a third of the JSON
 * it would with the facts repeated in every event.
 */
function appendStatement(recordedAt: string, count: number, digest: Buffer, facts: string, events: string) {
  return sql<{ batch_sequence: string; written: number }>`
with head as (
  select "sequence", "hash" from "audit_chain" where "id" = 1 for update
), batch as (
  insert into "audit_batch" ("sequence", "recorded_at", "event_count", "payload_digest", "previous_hash", "hash")
  select head."sequence" + 1, ${recordedAt}::timestamptz, ${count}::int, ${digest}::bytea, head."hash", sha256(head."hash" || ${digest}::bytea) from head
  returning "sequence", "hash"
), moved as (
  update "audit_chain" set "sequence" = batch."sequence", "hash" = batch."hash" from batch where "audit_chain"."id" = 1 returning 1
), facts as (
  select * from rows from (jsonb_to_recordset(${facts}::jsonb) as ("recordedAt" timestamptz, "requestId" text, "subgraph" text, "subject" text, "roles" text[],
    "organizationId" uuid, "clientName" text, "clientVersion" text, "ip" text, "operationName" text, "operationHash" text, "purpose" text, "tokenRoles" text[])) with ordinality as f("recordedAt",
    "requestId", "subgraph", "subject", "roles", "organizationId", "clientName", "clientVersion", "ip", "operationName", "operationHash", "purpose", "tokenRoles", "index")
), written as (
  insert into "audit_event" ("batch_sequence", "recorded_at", "request_id", "subgraph", "subject", "roles", "organization_id", "client_name",
    "client_version", "ip", "operation_name", "operation_hash", "purpose", "token_roles", "patient_ids", "entity_type", "entity_ids", "action", "fields", "emergency", "emergency_grant_id")
  select batch."sequence", f."recordedAt", f."requestId", f."subgraph", f."subject", f."roles", f."organizationId", f."clientName",
    f."clientVersion", f."ip", f."operationName", f."operationHash", f."purpose", f."tokenRoles", e."patientIds", e."entityType", e."entityIds", e."action", e."fields", e."emergency", e."emergencyGrantId"
  from batch, jsonb_to_recordset(${events}::jsonb) as e("facts" int, "patientIds" uuid[], "entityType" text, "entityIds" text[], "action" text, "fields" jsonb,
    "emergency" boolean, "emergencyGrantId" uuid)
  join facts f on f."index" = e."facts"
  returning cardinality("patient_ids") as "events"
)
select batch."sequence" as "batch_sequence", (select coalesce(sum("events"), 0) from written)::int as "written" from batch`;
}

const FACT_COLUMNS = ['recordedAt', 'requestId', 'subgraph', 'subject', 'roles', 'organizationId', 'clientName', 'clientVersion', 'ip', 'operationName', 'operationHash', 'purpose', 'tokenRoles'] as const;

interface GroupRow {
  facts: number;
  patientIds: (string | null)[];
  entityType: string;
  entityIds: (string | null)[];
  action: string;
  fields: AuditEventRecord['fields'];
  emergency: boolean;
  emergencyGrantId: string | null;
}

/**
 * The distinct request facts of a batch (numbered from 1, as SQL's
 * ordinality), and the rows to insert: events with the same facts, entity
 * type, action, fields (with outcomes and reasons), emergency mark and grant
 * share a row, in the order of their first event.
 */
function groupEvents(events: readonly AuditEventRecord[]): { facts: unknown[]; rows: GroupRow[] } {
  const facts: unknown[] = [];
  // By field list first (its canonical text, made once per list object: rows read alike share one, collector.ts), then the rest.
  const byFields = new Map<string, Map<string, GroupRow>>();
  const rows: GroupRow[] = [];
  let previous: AuditEventRecord | undefined;
  for (const event of events) {
    if (!previous || !sameFacts(previous, event)) facts.push(Object.fromEntries(FACT_COLUMNS.map((column) => [column, event[column] ?? null])));
    previous = event;
    const { patientId, entityType, entityId, action, fields, emergency, emergencyGrantId } = event;
    const canonical = fieldsKey(fields);
    let groups = byFields.get(canonical);
    if (!groups) {
      groups = new Map();
      byFields.set(canonical, groups);
    }
    const key = `${facts.length}|${entityType}|${action}|${emergency}|${emergencyGrantId ?? ''}`;
    const group = groups.get(key);
    if (group) {
      group.patientIds.push(patientId);
      group.entityIds.push(entityId);
    } else {
      const row = { facts: facts.length, patientIds: [patientId], entityType, entityIds: [entityId], action, fields, emergency, emergencyGrantId };
      groups.set(key, row);
      rows.push(row);
    }
  }
  return { facts, rows };
}

export class DatabaseAuditStore implements AuditStore {
  constructor(private readonly db: Database) {}

  async append(events: readonly AuditEventRecord[], em?: EntityManager): Promise<number> {
    if (events.length === 0) return 0;
    const digest = payloadDigest(events);
    const recordedAt = events[0]?.recordedAt ?? new Date().toISOString();
    const { facts, rows } = groupEvents(events);
    const statement = appendStatement(recordedAt, events.length, digest, JSON.stringify(facts), JSON.stringify(rows));
    // Inside em.transactional, the Kysely of that EntityManager runs in its transaction (MikroORM 7.1+).
    const [result] = (await statement.execute((em ?? this.db.fork()).getKysely())).rows;
    if (result?.written !== events.length) throw new Error(`the audit batch wrote ${result?.written ?? 0} of ${events.length} events`);
    return Number(result.batch_sequence);
  }
}
