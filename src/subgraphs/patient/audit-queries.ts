import { SENSITIVE_FIELD } from '../access.js';
import type { EntityManager } from '@mikro-orm/sql';
import { isPurposeOfUse, PURPOSES_OF_USE, type Principal } from '../../auth/index.js';
import { categoryOf } from '../../policy/index.js';
import { PATIENT_ROWS_FILTER, auditEntries, auditEventFromRow, auditEventId, type StoredAuditEvent } from '../../audit/index.js';
import { isUuid, pageSize, toConnection, type Connection, type PageCursors } from '../pagination.js';
import type { AuditEventFilter } from './__generated__/resolvers-types.js';

/**
 * Reading the audit trail: for auditors, the events of their organization
 * (reads by its people, and reads of its patients); for a patient, the
 * accounting of disclosures of their own record. Both newest first, keyset
 * paginated by (row id, position): a stored row can group several events
 * (auditEntries), each listed on its own.
 */
export const AUDIT_PAGE = { defaultSize: 50, maxSize: 500 } as const;

/** What an AuditEvent of the API is: the event as stored. */
export type AuditEventRow = StoredAuditEvent;

export interface DisclosureModel {
  recordedAt: string;
  roles: string[];
  organization: string | null;
  dataKinds: string[];
  action: AuditEventRow['action'];
  emergency: boolean;
  purpose: string | null;
  purposeText: string | null;
}

type Raw = Record<string, unknown>;

/** A cursor holds the last event's (row id, position). */
const CURSOR_PARTS = 2;
const AUDIT_LIST = 'Query.auditEvents';
const DISCLOSURE_LIST = 'Query.myDisclosures';

interface Position {
  id: number;
  position: number;
}

function afterPosition(cursors: PageCursors, list: string, filter: AuditEventFilter | null | undefined, after: string | null | undefined): Position | null {
  const [id, position] = cursors.read(list, '', filter, after, CURSOR_PARTS) ?? [];
  if (id === undefined) return null;
  return { id: Number(id), position: Number(position) };
}

function cursorOf(cursors: PageCursors, list: string, filter: AuditEventFilter | null | undefined) {
  return (event: Position): string => cursors.issue(list, '', filter, [String(event.id), String(event.position)]);
}

/** Rows older than the cursor (the row filter uses the primary key), then events before it in (id, position) order. */
const BEFORE_ROW = 'e."id" <= ?';
const BEFORE_EVENT = '(entry."id", entry."position") < (?, ?)';

export async function listAuditEvents(
  em: EntityManager,
  principal: Principal,
  cursors: PageCursors,
  filter: AuditEventFilter | null | undefined,
  first: number | null | undefined,
  after: string | null | undefined,
): Promise<Connection<AuditEventRow>> {
  const size = pageSize(first, AUDIT_PAGE);
  const cursor = afterPosition(cursors, AUDIT_LIST, filter, after);
  if (!principal.organizationId) return toConnection([], size, () => '');
  const rowWhere: string[] = [];
  const rowParams: unknown[] = [];
  const where: string[] = [`("organization_id" = ? or "patient_id" in (select "id" from "patient" where "managing_organization_id" = ?))`];
  const params: unknown[] = [principal.organizationId, principal.organizationId];
  const add = (clause: string, ...values: unknown[]) => {
    where.push(clause);
    params.push(...values);
  };
  if (cursor) {
    rowWhere.push(BEFORE_ROW);
    rowParams.push(cursor.id);
    add(BEFORE_EVENT, cursor.id, cursor.position);
  }
  if (filter?.patientId) {
    if (!isUuid(filter.patientId)) return toConnection([], size, () => '');
    rowWhere.push(PATIENT_ROWS_FILTER);
    rowParams.push(filter.patientId, filter.patientId);
    add('"patient_id" = ?::uuid', filter.patientId);
  }
  if (filter?.subject) add('"subject" = ?', filter.subject);
  if (filter?.field) add('"fields" @> ?::jsonb', JSON.stringify([{ field: filter.field }]));
  if (filter?.outcome) add('"fields" @> ?::jsonb', JSON.stringify([{ outcome: filter.outcome }]));
  if (filter?.from) add('"recorded_at" >= ?::timestamptz', filter.from);
  if (filter?.to) add('"recorded_at" < ?::timestamptz', filter.to);
  if (filter?.emergency !== undefined && filter.emergency !== null) add('"emergency" = ?', filter.emergency);
  add(NOT_WITHHELD);
  const entries = auditEntries(rowWhere.length > 0 ? rowWhere.join(' and ') : undefined);
  const rows =
    size === 0 ? [] : await em.execute<Raw[]>(`select * from ${entries} as entry where ${where.join(' and ')} order by "id" desc, "position" desc limit ?`, [...rowParams, ...params, size + 1]);
  return toConnection(rows.map(apiAuditEvent), size, cursorOf(cursors, AUDIT_LIST, filter));
}

/**
 * Withholdings for sensitivity labels are on the audit trail (and in its
 * export) but never listed by the API: an event saying rows of a patient
 * were withheld would tell an auditor, who is cleared for no category, that
 * the patient has sensitive records.
 */
export const NOT_WITHHELD = `not ("fields" @> '[{"outcome": "withheld"}]'::jsonb)`;

/** An event as the API lists it: without the break-the-glass flags of labelled rows (the same reason as NOT_WITHHELD). */
export function apiAuditEvent(row: Raw): AuditEventRow {
  const event = auditEventFromRow(row);
  return event.fields.some((field) => field.field === SENSITIVE_FIELD) ? { ...event, fields: event.fields.filter((field) => field.field !== SENSITIVE_FIELD) } : event;
}

/** Kinds of data, by the access policy's categories: "name", "ssn", "clinicalNote"... never ids. */
export function dataKinds(fields: AuditEventRow['fields']): string[] {
  const kinds = new Set<string>();
  for (const { field, outcome } of fields) {
    // Refused and failed reads showed nothing of the record: not disclosures.
    if (outcome === 'denied' || outcome === 'failed' || outcome === 'withheld' || field === SENSITIVE_FIELD) continue;
    const [coordinate] = field.split(':');
    const [type, name] = (coordinate ?? '').split('.');
    kinds.add(type && name ? (categoryOf(type, name) ?? 'other') : 'other');
  }
  return [...kinds].sort();
}

export async function listDisclosures(
  em: EntityManager,
  principal: Principal,
  cursors: PageCursors,
  first: number | null | undefined,
  after: string | null | undefined,
): Promise<Connection<DisclosureModel & { id: string; rowId: number; position: number }>> {
  const size = pageSize(first, AUDIT_PAGE);
  const cursor = afterPosition(cursors, DISCLOSURE_LIST, null, after);
  if (!principal.patientId || size === 0) return toConnection([], size, () => '');
  const entries = auditEntries([PATIENT_ROWS_FILTER, ...(cursor ? [BEFORE_ROW] : [])].join(' and '));
  const rows = await em.execute<Raw[]>(
    `select entry.*, o."name" as "organization_name" from ${entries} as entry left join "organization" o on o."id" = entry."organization_id"
     where entry."patient_id" = ? and entry."subject" <> ? and entry."entity_type" <> 'AccessAlert' ${cursor ? `and ${BEFORE_EVENT}` : ''}
     order by entry."id" desc, entry."position" desc limit ?`,
    [principal.patientId, principal.patientId, ...(cursor ? [cursor.id] : []), principal.patientId, principal.subject, ...(cursor ? [cursor.id, cursor.position] : []), size + 1],
  );
  const disclosures = rows
    .map((raw) => ({ row: auditEventFromRow(raw), organization: typeof raw['organization_name'] === 'string' ? raw['organization_name'] : null }))
    .map(({ row, organization }) => ({
      id: auditEventId(row),
      position: row.position,
      rowId: row.id,
      recordedAt: row.recordedAt,
      roles: row.roles,
      organization,
      dataKinds: dataKinds(row.fields),
      action: row.action,
      emergency: row.emergency,
      purpose: row.purpose ?? null,
      purposeText: isPurposeOfUse(row.purpose) ? PURPOSES_OF_USE[row.purpose] : null,
    }));
  const issue = cursorOf(cursors, DISCLOSURE_LIST, null);
  return toConnection(disclosures, size, (disclosure) => issue({ id: disclosure.rowId, position: disclosure.position }));
}
