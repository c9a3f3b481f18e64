import { SENSITIVITIES, isSensitivity, type Sensitivity } from '../../policy/sensitivity.js';
import { SENSITIVE_FIELD } from '../access.js';
import { NOT_WITHHELD, apiAuditEvent } from './audit-queries.js';
import type { EntityManager, QueryResult } from '@mikro-orm/sql';
import type { Principal } from '../../auth/index.js';
import { PATIENT_ROWS_FILTER, auditEntries, type StoredAuditEvent } from '../../audit/index.js';
import { ACCESS_POLICY } from '../../policy/index.js';
import { isUuid, pageSize, toConnection, type Connection, type PageCursors } from '../pagination.js';
import { failed, invalidInput, InputCheck, type Failure } from '../mutation-results.js';
import type { SubgraphContext } from '../context.js';
import { earlierWrite, writeWithRecord } from '../writes.js';
import { dataKinds } from './audit-queries.js';
import type { EmergencyReviewOutcome, EmergencyReviewStatus } from './__generated__/resolvers-types.js';

/**
 * Break-the-glass review. Every emergency grant opens a review in its own
 * transaction (openReview in ../emergency-access.ts), with a
 * notification for the patient in the outbox; a privacy officer of the
 * patient's organization lists them (emergencyReviews), reads who broke the
 * glass, why, which kinds of data were read and the audit of it (never the
 * values), and closes each with an outcome and a note. Open reviews past
 * their due time raise an alert once (alertOverdueReviews, on the
 * housekeeping timer).
 */

export const REVIEW_PAGE = { defaultSize: 20, maxSize: 100 } as const;
/** The most audit events a review lists (accessEventCount gives them all; dataKinds covers them all). */
const MAX_ACCESS_EVENTS = 500;
const NOTE_LENGTH = { min: 10, max: 2_000 } as const;
const REVIEW_LIST = 'Query.emergencyReviews';

const OUTCOMES: Record<EmergencyReviewOutcome, 'justified' | 'not-justified' | 'follow-up'> = { justified: 'justified', notJustified: 'not-justified', followUp: 'follow-up' };
const OUTCOME_NAMES = Object.fromEntries(Object.entries(OUTCOMES).map(([name, stored]) => [stored, name])) as Record<string, EmergencyReviewOutcome>;

/** A review as the API serves it (EmergencyReview's mapper). */
export interface EmergencyReviewModel {
  id: string;
  grantId: string;
  patientId: string;
  accessedBy: string;
  reason: string;
  openedAt: string;
  accessEndsAt: string;
  dueAt: string;
  status: EmergencyReviewStatus;
  outcome: EmergencyReviewOutcome | null;
  note: string | null;
  reviewer: string | null;
  closedAt: string | null;
  sensitiveDataRequested: Sensitivity[];
}

type Raw = Record<string, unknown>;

const REVIEW_COLUMNS = `r."id", r."grant_id", g."patient_id", g."subject", g."reason", g."sensitive_categories", r."opened_at", g."expires_at", r."due_at", r."status", r."outcome", r."note", r."reviewer", r."closed_at"`;

function iso(value: unknown): string {
  return (value instanceof Date ? value : new Date(String(value))).toISOString();
}

function reviewFromRow(row: Raw): EmergencyReviewModel {
  const text = (key: string): string | null => {
    const value = row[key];
    return typeof value === 'string' ? value : null;
  };
  return {
    id: text('id') ?? '',
    grantId: text('grant_id') ?? '',
    patientId: text('patient_id') ?? '',
    accessedBy: text('subject') ?? '',
    reason: text('reason') ?? '',
    sensitiveDataRequested: Array.isArray(row['sensitive_categories']) ? (row['sensitive_categories'] as unknown[]).filter(isSensitivity) : [],
    openedAt: iso(row['opened_at']),
    accessEndsAt: iso(row['expires_at']),
    dueAt: iso(row['due_at']),
    status: row['status'] === 'closed' ? 'closed' : 'open',
    outcome: OUTCOME_NAMES[text('outcome') ?? ''] ?? null,
    note: text('note'),
    reviewer: text('reviewer'),
    closedAt: row['closed_at'] ? iso(row['closed_at']) : null,
  };
}

/** The reviews of the caller's organization with one status, oldest first, keyset-paginated by (opened_at, id). */
export async function listEmergencyReviews(
  em: EntityManager,
  principal: Principal,
  cursors: PageCursors,
  status: EmergencyReviewStatus | null | undefined,
  first: number | null | undefined,
  after: string | null | undefined,
): Promise<Connection<EmergencyReviewModel>> {
  const size = pageSize(first, REVIEW_PAGE);
  const wanted: EmergencyReviewStatus = status ?? 'open';
  const filter = { status: wanted };
  const [openedAt, id] = cursors.read(REVIEW_LIST, '', filter, after, 2) ?? [];
  if (!principal.organizationId || size === 0) return toConnection([], size, () => '');
  const rows = await em.execute<Raw[]>(
    `select ${REVIEW_COLUMNS} from "emergency_review" r join "emergency_access" g on g."id" = r."grant_id"
     where r."organization_id" = ? and r."status" = ? ${openedAt !== undefined ? 'and (r."opened_at", r."id") > (?::timestamptz, ?::uuid)' : ''}
     order by r."opened_at", r."id" limit ?`,
    [principal.organizationId, wanted, ...(openedAt !== undefined ? [openedAt, id] : []), size + 1],
  );
  return toConnection(rows.map(reviewFromRow), size, (review) => cursors.issue(REVIEW_LIST, '', filter, [review.openedAt, review.id]));
}

/**
 * The audit of the access: the opening of the grant (an EmergencyAccess
 * event of the patient, naming the grant) and every event recorded under
 * it. Rows are found by the grant's index and the patient's; `entries`
 * selects from them.
 */
function underGrant(review: EmergencyReviewModel): { entries: string; where: string; params: unknown[] } {
  const rows = `(e."emergency_grant_id" = ?::uuid or (e."entity_type" = 'EmergencyAccess' and ${PATIENT_ROWS_FILTER}))`;
  return {
    entries: auditEntries(rows),
    where: `(entry."emergency_grant_id" = ?::uuid or (entry."entity_type" = 'EmergencyAccess' and entry."entity_id" = ?)) and ${NOT_WITHHELD}`,
    params: [review.grantId, review.patientId, review.patientId, review.grantId, review.grantId],
  };
}

/** The first MAX_ACCESS_EVENTS events of the access, oldest first (accessEventCount says how many there are in all). */
export async function accessEventsOf(em: EntityManager, review: EmergencyReviewModel): Promise<StoredAuditEvent[]> {
  const { entries, where, params } = underGrant(review);
  const rows = await em.execute<Raw[]>(`select * from ${entries} as entry where ${where} order by "id", "position" limit ?`, [...params, MAX_ACCESS_EVENTS]);
  return rows.map(apiAuditEvent);
}

export async function accessEventCountOf(em: EntityManager, review: EmergencyReviewModel): Promise<number> {
  const { entries, where, params } = underGrant(review);
  const [row] = await em.execute<{ count: string }[]>(`select count(*) as "count" from ${entries} as entry where ${where}`, params);
  return Number(row?.count ?? 0);
}

/** Kinds of data read under the grant (the access policy's categories of every field allowed or masked), over all its events. */
export async function dataKindsOf(em: EntityManager, review: EmergencyReviewModel): Promise<string[]> {
  const { entries, where, params } = underGrant(review);
  const rows = await em.execute<{ field: string }[]>(
    `select distinct f->>'field' as "field" from ${entries} as entry, jsonb_array_elements(entry."fields") as f where ${where} and f->>'outcome' in ('allowed', 'masked')`,
    params,
  );
  return dataKinds(rows.map(({ field }) => ({ field, outcome: 'allowed' as const })));
}

/** The categories of labelled rows read under the grant: the reasons of the audit trail's break-the-glass flags (never the rows). */
export async function sensitiveDataReadOf(em: EntityManager, review: EmergencyReviewModel): Promise<Sensitivity[]> {
  const { entries, where, params } = underGrant(review);
  const rows = await em.execute<{ reason: string | null }[]>(
    `select distinct f->>'reason' as "reason" from ${entries} as entry, jsonb_array_elements(entry."fields") as f where ${where} and f->>'field' = ?`,
    [...params, SENSITIVE_FIELD],
  );
  const found = new Set(rows.flatMap(({ reason }) => (reason ?? '').replace(/^EMERGENCY:/, '').split(',')));
  return SENSITIVITIES.filter((category) => found.has(category));
}

async function reviewById(em: EntityManager, organizationId: string, id: string): Promise<EmergencyReviewModel | null> {
  const [row] = await em.execute<Raw[]>(
    `select ${REVIEW_COLUMNS} from "emergency_review" r join "emergency_access" g on g."id" = r."grant_id" where r."id" = ? and r."organization_id" = ?`,
    [id, organizationId],
  );
  return row ? reviewFromRow(row) : null;
}

/** Closes a review of the caller's organization with an outcome and a note, with its audit record in the same transaction. */
export async function closeEmergencyReview(
  { input }: { input: { id: string; outcome: EmergencyReviewOutcome; note: string } },
  context: SubgraphContext,
): Promise<Failure | { ok: true; error: null; review: EmergencyReviewModel | null }> {
  const organizationId = context.principal.organizationId;
  const earlier = await earlierWrite(context, 'Mutation.closeEmergencyReview', input);
  if (earlier) return { ok: true, error: null, review: earlier.resultId && organizationId ? await reviewById(context.em, organizationId, earlier.resultId) : null };
  const note = input.note.trim();
  const check = new InputCheck()
    .require(isUuid(input.id), 'input.id', 'Not an id.')
    .require(note.length >= NOTE_LENGTH.min && note.length <= NOTE_LENGTH.max, 'input.note', `Between ${NOTE_LENGTH.min} and ${NOTE_LENGTH.max} characters.`);
  if (!check.ok) return invalidInput(check);
  // Another organization's review and no review look the same.
  const review = organizationId ? await reviewById(context.em, organizationId, input.id) : null;
  if (!review) return failed('NOT_FOUND', 'No such review in your organization.');
  if (review.status === 'closed') return failed('CONFLICT', 'This review is already closed.');
  // Separation of duties: nobody reviews their own emergency access, nor reviews while their token can break the glass.
  const breaksGlass = context.principal.tokenRoles.filter((role) => ACCESS_POLICY[role].fields.emergencyAccess !== undefined);
  if (review.accessedBy === context.principal.subject || breaksGlass.length > 0) {
    return failed('CONFLICT', 'Break-the-glass access is reviewed by a privacy officer who did not break the glass, from an account without a role that can.');
  }
  // The whole access is reviewed: not while the grant can still be used.
  if (Date.parse(review.accessEndsAt) > Date.now()) return failed('CONFLICT', `The emergency grant is in force until ${review.accessEndsAt}: review it once it has ended.`);
  const written = await writeWithRecord(context, {
    coordinate: 'Mutation.closeEmergencyReview',
    input,
    resultId: () => review.id,
    work: async (em) =>
      // Only an open review closes: two officers closing the same one at once, one wins and the other is told.
      em.execute<QueryResult>(
        `update "emergency_review" set "status" = 'closed', "outcome" = ?, "note" = ?, "reviewer" = ?, "closed_at" = now() where "id" = ? and "organization_id" = ? and "status" = 'open'`,
        [OUTCOMES[input.outcome], note, context.principal.subject, review.id, organizationId],
        'run',
      ),
    wrote: (result) => result.affectedRows === 1,
  });
  if (!written.replayed && written.result.affectedRows !== 1) return failed('CONFLICT', 'This review is already closed.');
  return { ok: true, error: null, review: organizationId ? await reviewById(context.em, organizationId, review.id) : null };
}
