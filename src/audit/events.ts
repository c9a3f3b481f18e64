import { createHash } from 'node:crypto';

/**
 * An audit event: one (request, subgraph, patient, entity, action) with the
 * fields read or refused and their outcomes. It never holds a value: field
 * names, ids, codes and request facts only.
 */
/** `failed`: the field was allowed but its stored value failed to decrypt, so nothing was shown (the reason says why). */
/** `withheld`: rows left out for their sensitivity labels (src/subgraphs/sensitive-rows.ts); the reason names the categories. */
export type FieldOutcome = 'allowed' | 'masked' | 'failed' | 'denied' | 'withheld';
export type AuditAction = 'read' | 'create' | 'update' | 'delete';

export interface FieldRecord {
  field: string;
  outcome: FieldOutcome;
  reason?: string;
}

export interface RequestFacts {
  requestId: string;
  subgraph: string;
  subject: string;
  roles: string[];
  organizationId: string | null;
  clientName: string | null;
  clientVersion: string | null;
  ip: string | null;
  operationName: string | null;
  /** SHA-256 of the operation document; the document and its variables are not stored. */
  operationHash: string;
  /**
   * The purpose of use the request read for (HL7 v3 PurposeOfUse code).
   * Absent or null only in events recorded before purposes existed.
   */
  purpose?: string | null;
  /**
   * Every role the token carried, when the request acted with fewer of them
   * (`roles`: those that may read for the purpose); absent or null when they
   * are the same.
   */
  tokenRoles?: string[] | null;
}

export interface AuditEventRecord extends RequestFacts {
  recordedAt: string;
  patientId: string | null;
  entityType: string;
  entityId: string | null;
  action: AuditAction;
  fields: FieldRecord[];
  emergency: boolean;
  emergencyGrantId: string | null;
}

/** An event as stored: its row id, its position in that row (1 unless the row groups several events), its batch, then the event itself. */
export interface StoredAuditEvent extends AuditEventRecord {
  id: number;
  position: number;
  batchSequence: number;
}

/** The event's identifier: its row id, and its position when it is not the row's first (rows written before grouping hold one). */
export function auditEventId(event: Pick<StoredAuditEvent, 'id' | 'position'>): string {
  return event.position === 1 ? String(event.id) : `${event.id}.${event.position}`;
}

/**
 * The stored events, one row per event, as SQL (a subquery to select from):
 * an audit_event row that groups events (patient_ids, entity_ids) gives one
 * row per position; a row of one event (written before grouping) gives
 * itself, as position 1. The columns are audit_event's, with patient_id and
 * entity_id the event's and "position" added. `where` filters audit_event
 * rows (alias e) before they are unnested; a filter on a patient must be
 * there to use the indexes (PATIENT_ROWS_FILTER).
 */
export function auditEntries(where = 'true'): string {
  return `(select e."id", entry."position", e."batch_sequence", e."recorded_at", e."request_id", e."subgraph", e."subject", e."roles", e."organization_id",
    e."client_name", e."client_version", e."ip", e."operation_name", e."operation_hash", entry."patient_id", e."entity_type", entry."entity_id",
    e."action", e."fields", e."emergency", e."emergency_grant_id", e."purpose", e."token_roles"
  from "audit_event" e
  cross join lateral (
    select u."patient_id", u."entity_id", u."position" from unnest(e."patient_ids", e."entity_ids") with ordinality as u("patient_id", "entity_id", "position")
    union all
    select e."patient_id", e."entity_id", 1::bigint where e."patient_ids" is null
  ) as entry
  where ${where})`;
}

/** The audit_event rows holding events of one patient (one uuid parameter, given twice): the GIN index for grouped rows, the btree index for the others. */
export const PATIENT_ROWS_FILTER = '(e."patient_ids" @> array[?::uuid] or e."patient_id" = ?::uuid)';

type Row = Record<string, unknown>;

const ACTIONS: ReadonlySet<string> = new Set<AuditAction>(['read', 'create', 'update', 'delete']);

function nullableText(row: Row, key: string): string | null {
  const value = row[key];
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return value.toString();
  throw new Error(`audit_event row ${String(row['id'])} has a non-text ${key}`);
}

function requiredText(row: Row, key: string): string {
  const value = nullableText(row, key);
  if (value === null) throw new Error(`audit_event row ${String(row['id'])} has no ${key}`);
  return value;
}

function rolesOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.map((role) => String(role));
  // A driver that does not parse text[] hands back the literal, e.g. {billing,auditor}.
  if (typeof value === 'string') return value.replace(/^\{|\}$/g, '').split(',').filter(Boolean).map((role) => role.replace(/^"|"$/g, ''));
  return [];
}

function fieldsOf(value: unknown): FieldRecord[] {
  const parsed: unknown = typeof value === 'string' ? JSON.parse(value) : value;
  if (!Array.isArray(parsed)) return [];
  return parsed.map((item) => {
    const field = item as FieldRecord;
    return { field: String(field.field), outcome: field.outcome, ...(typeof field.reason === 'string' && { reason: field.reason }) };
  });
}

/** One row of auditEntries() (snake_case, as any driver returns it) as a stored event. */
export function auditEventFromRow(row: Row): StoredAuditEvent {
  const recorded = row['recorded_at'];
  const action = requiredText(row, 'action');
  if (!ACTIONS.has(action)) throw new Error(`audit_event row ${String(row['id'])} has an unknown action`);
  return {
    id: Number(row['id']),
    position: Number(requiredText(row, 'position')),
    batchSequence: Number(row['batch_sequence']),
    recordedAt: (recorded instanceof Date ? recorded : new Date(requiredText(row, 'recorded_at'))).toISOString(),
    requestId: requiredText(row, 'request_id'),
    subgraph: requiredText(row, 'subgraph'),
    subject: requiredText(row, 'subject'),
    roles: rolesOf(row['roles']),
    organizationId: nullableText(row, 'organization_id'),
    clientName: nullableText(row, 'client_name'),
    clientVersion: nullableText(row, 'client_version'),
    ip: nullableText(row, 'ip'),
    operationName: nullableText(row, 'operation_name'),
    operationHash: requiredText(row, 'operation_hash'),
    patientId: nullableText(row, 'patient_id'),
    entityType: requiredText(row, 'entity_type'),
    entityId: nullableText(row, 'entity_id'),
    action: action as AuditAction,
    fields: fieldsOf(row['fields']),
    emergency: row['emergency'] === true || row['emergency'] === 't',
    emergencyGrantId: nullableText(row, 'emergency_grant_id'),
    purpose: nullableText(row, 'purpose'),
    tokenRoles: row['token_roles'] === null || row['token_roles'] === undefined ? null : rolesOf(row['token_roles']),
  };
}

/**
 * The canonical form hashed into the chain: fixed order, no optional keys,
 * one JSON array per event. Built in two parts: the request's facts, the
 * same for every event of a batch, are serialized once per run of events
 * sharing them (a dashboard's thousand events share one), then each
 * event's own part. The joined text is exactly the JSON array.
 *
 * The purpose of use follows the operation hash, as a 12th fact, in events
 * that have one; events recorded before purposes existed have none, and
 * their canonical form is what it was. Removing a stored purpose, or adding
 * one, changes the form, so the chain no longer verifies.
 */
function factsPart(event: AuditEventRecord): string {
  const purpose = event.purpose ?? null;
  const tokenRoles = event.tokenRoles ?? null;
  const facts = [
    new Date(event.recordedAt).toISOString(),
    event.requestId,
    event.subgraph,
    event.subject,
    event.roles,
    event.organizationId,
    event.clientName,
    event.clientVersion,
    event.ip,
    event.operationName,
    event.operationHash,
  ];
  // The token's roles, when the request acted with fewer of them, follow the purpose (null if none) as a 13th fact.
  return JSON.stringify(tokenRoles !== null ? [...facts, purpose, tokenRoles] : purpose !== null ? [...facts, purpose] : facts).slice(0, -1);
}

/** Canonical forms of shared field records (the collector shares them across a batch's events). */
const canonicalFields = new WeakMap<FieldRecord, string>();

function fieldPart(field: FieldRecord): string {
  let text = canonicalFields.get(field);
  if (text === undefined) {
    text = JSON.stringify([field.field, field.outcome, field.reason ?? null]);
    canonicalFields.set(field, text);
  }
  return text;
}

/** Canonical forms of events' field lists: the store groups by it and the digest hashes it, once per list. */
const canonicalFieldLists = new WeakMap<readonly FieldRecord[], string>();

/** The field list's canonical form (without brackets): equal for two lists exactly when they hold the same records in the same order. */
export function fieldsKey(fields: readonly FieldRecord[]): string {
  let text = canonicalFieldLists.get(fields);
  if (text === undefined) {
    text = fields.map(fieldPart).join(',');
    canonicalFieldLists.set(fields, text);
  }
  return text;
}

/** The event's own part: `patientId,entityType,entityId,action,[fields...],emergency,grant]`, the JSON array's tail. */
function eventPart(event: AuditEventRecord): string {
  // The same text as JSON.stringify([patientId, entityType, entityId, action]).slice(1, -1), without the array.
  const head = `${jsonText(event.patientId)},${jsonText(event.entityType)},${jsonText(event.entityId)},${jsonText(event.action)}`;
  return `${head},[${fieldsKey(event.fields)}],${JSON.stringify(event.emergency ?? null)},${JSON.stringify(event.emergencyGrantId ?? null)}]`;
}

function jsonText(value: string | null | undefined): string {
  return value === null || value === undefined ? 'null' : JSON.stringify(value);
}

const FACT_KEYS = ['recordedAt', 'requestId', 'subgraph', 'subject', 'organizationId', 'clientName', 'clientVersion', 'ip', 'operationName', 'operationHash'] as const;

/** True when two events carry the same request facts (and so the same facts part). */
export function sameFacts(a: AuditEventRecord, b: AuditEventRecord): boolean {
  return FACT_KEYS.every((key) => a[key] === b[key]) && (a.purpose ?? null) === (b.purpose ?? null) && (a.tokenRoles ?? null)?.join(',') === (b.tokenRoles ?? null)?.join(',') && a.roles.length === b.roles.length && a.roles.every((role, index) => role === b.roles[index]);
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const DIGEST_CHUNK_CHARS = 64 * 1024;

/**
 * SHA-256 over a batch's events; order-independent: the canonical lines
 * (facts part, comma, event part), sorted, each followed by a newline.
 * Lines that share their facts part (the same string) compare by their
 * event parts, and are hashed in chunks of lines (never one string of the whole batch).
 */
export function payloadDigest(events: readonly AuditEventRecord[]): Buffer {
  let previous: AuditEventRecord | undefined;
  let facts = '';
  const lines = events.map((event) => {
    if (!previous || !sameFacts(previous, event)) facts = factsPart(event);
    previous = event;
    return { facts, event: eventPart(event) };
  });
  lines.sort((a, b) => (a.facts === b.facts ? compareText(a.event, b.event) : compareText(`${a.facts},${a.event}`, `${b.facts},${b.event}`)));
  // The same bytes in chunks of about 64 KiB: a call into the hash per line part cost more than the hashing.
  const hash = createHash('sha256');
  let chunk = '';
  for (const line of lines) {
    chunk += `${line.facts},${line.event}\n`;
    if (chunk.length >= DIGEST_CHUNK_CHARS) {
      hash.update(chunk);
      chunk = '';
    }
  }
  if (chunk.length > 0) hash.update(chunk);
  return hash.digest();
}

export function chainHash(previous: Buffer, digest: Buffer): Buffer {
  return createHash('sha256').update(Buffer.concat([previous, digest])).digest();
}

export function operationHash(document: string): string {
  return createHash('sha256').update(document).digest('hex');
}
