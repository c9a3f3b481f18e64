import type { EntityManager } from '@mikro-orm/sql';
import type { Principal } from '../../auth/index.js';
import { categoryOf } from '../../policy/index.js';
import { auditEventFromRow, type StoredAuditEvent } from '../../audit/index.js';
import { decodeCursor, encodeCursor, isUuid, pageSize, toConnection, type Connection } from '../pagination.js';
import type { AuditEventFilter } from './__generated__/resolvers-types.js';

/**
 * Reading the audit trail: for auditors, the events of their organization
 * (reads by its people, and reads of its patients); for a patient, the
 * accounting of disclosures of their own record. Both newest first, keyset
 * paginated by event id.
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
}

type Raw = Record<string, unknown>;

const ID_CURSOR_PARTS = 1;

function afterId(after: string | null | undefined): number | null {
  const [id] = decodeCursor(after, ID_CURSOR_PARTS) ?? [];
  return id === undefined ? null : Number(id);
}

export async function listAuditEvents(
  em: EntityManager,
  principal: Principal,
  filter: AuditEventFilter | null | undefined,
  first: number | null | undefined,
  after: string | null | undefined,
): Promise<Connection<AuditEventRow>> {
  const size = pageSize(first, AUDIT_PAGE);
  if (!principal.organizationId) return toConnection([], size, () => '');
  const where: string[] = [`("organization_id" = ? or "patient_id" in (select "id" from "patient" where "managing_organization_id" = ?))`];
  const params: unknown[] = [principal.organizationId, principal.organizationId];
  const add = (clause: string, value: unknown) => {
    where.push(clause);
    params.push(value);
  };
  const cursor = afterId(after);
  if (cursor !== null && Number.isFinite(cursor)) add('"id" < ?', cursor);
  if (filter?.patientId) {
    if (!isUuid(filter.patientId)) return toConnection([], size, () => '');
    add('"patient_id" = ?::uuid', filter.patientId);
  }
  if (filter?.subject) add('"subject" = ?', filter.subject);
  if (filter?.field) add('"fields" @> ?::jsonb', JSON.stringify([{ field: filter.field }]));
  if (filter?.outcome) add('"fields" @> ?::jsonb', JSON.stringify([{ outcome: filter.outcome }]));
  if (filter?.from) add('"recorded_at" >= ?::timestamptz', filter.from);
  if (filter?.to) add('"recorded_at" < ?::timestamptz', filter.to);
  if (filter?.emergency !== undefined && filter.emergency !== null) add('"emergency" = ?', filter.emergency);
  const rows = size === 0 ? [] : await em.execute<Raw[]>(`select * from "audit_event" where ${where.join(' and ')} order by "id" desc limit ?`, [...params, size + 1]);
  return toConnection(rows.map(auditEventFromRow), size, (row) => encodeCursor([String(row.id)]));
}

/** Kinds of data, by the access policy's categories: "name", "ssn", "clinicalNote"... never ids. */
function dataKinds(fields: AuditEventRow['fields']): string[] {
  const kinds = new Set<string>();
  for (const { field, outcome } of fields) {
    if (outcome === 'denied') continue;
    const [coordinate] = field.split(':');
    const [type, name] = (coordinate ?? '').split('.');
    kinds.add(type && name ? (categoryOf(type, name) ?? 'other') : 'other');
  }
  return [...kinds].sort();
}

export async function listDisclosures(
  em: EntityManager,
  principal: Principal,
  first: number | null | undefined,
  after: string | null | undefined,
): Promise<Connection<DisclosureModel & { id: string }>> {
  const size = pageSize(first, AUDIT_PAGE);
  if (!principal.patientId || size === 0) return toConnection([], size, () => '');
  const cursor = afterId(after);
  const rows = await em.execute<Raw[]>(
    `select e.*, o."name" as "organization_name" from "audit_event" e left join "organization" o on o."id" = e."organization_id"
     where e."patient_id" = ? and e."subject" <> ? ${cursor !== null && Number.isFinite(cursor) ? 'and e."id" < ?' : ''}
     order by e."id" desc limit ?`,
    [principal.patientId, principal.subject, ...(cursor !== null && Number.isFinite(cursor) ? [cursor] : []), size + 1],
  );
  const disclosures = rows
    .map((raw) => ({ row: auditEventFromRow(raw), organization: typeof raw['organization_name'] === 'string' ? raw['organization_name'] : null }))
    .map(({ row, organization }) => ({
      id: String(row.id),
      recordedAt: row.recordedAt,
      roles: row.roles,
      organization,
      dataKinds: dataKinds(row.fields),
      action: row.action,
      emergency: row.emergency,
    }));
  return toConnection(disclosures, size, (disclosure) => encodeCursor([disclosure.id]));
}
