import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/sql';
import type { QueryResult } from '@mikro-orm/core';
import { isPurposeOfUse, type PurposeOfUse } from '../../auth/index.js';
import { Consent, NotificationOutbox, Organization, Patient } from '../../db/entities.js';
import {
  consentFromRow,
  fromFhirConsent,
  SCOPE_PURPOSES,
  SCOPE_ROLES,
  type ConsentProvision,
  type ConsentScope,
  type ConsentTerms,
} from '../../policy/consent.js';
import type { Sensitivity } from '../../policy/sensitivity.js';
import type { SubgraphContext } from '../context.js';
import { failed, InputCheck, invalidInput, type Failure, type InputError } from '../mutation-results.js';
import { isUuid, pageSize, toConnection, type Connection, type PageCursors } from '../pagination.js';
import { earlierWrite, writeWithRecord } from '../writes.js';
import type {
  ConsentActorRole,
  ConsentScope as ApiScope,
  GrantConsentInput,
  ImportConsentsInput,
  RecordPaperConsentInput,
  RevokeConsentInput,
} from './__generated__/resolvers-types.js';

/**
 * Consents through the API (src/policy/consent.ts says what they mean): a
 * patient reads, grants and revokes their own; a privacy officer reads those
 * of its organization's patients, records consents and revocations signed
 * on paper, and imports FHIR R4 Consent resources. Every change is written
 * with its audit record in one transaction, and holds on every instance
 * from the next request (consents are read per request, never cached).
 */

export const CONSENT_PAGE = { defaultSize: 20, maxSize: 100 } as const;
const MAX_IMPORTED = 50;
const MAX_IMPORT_CHARACTERS = 200_000;
/** How long after its signature staff may record a paper consent: older forms need the patient again. */
const PAPER_CONSENT_MAX_AGE_DAYS = 90;

const SCOPE_NAMES: Readonly<Record<ApiScope, ConsentScope>> = { partnerSharing: 'partner-sharing', research: 'research', treatment: 'treatment' };
export const API_SCOPES: Readonly<Record<ConsentScope, ApiScope>> = { 'partner-sharing': 'partnerSharing', research: 'research', treatment: 'treatment' };

type Raw = Record<string, unknown>;

/** A page of one patient's consents, newest first by (period start, id). */
export async function listConsents(
  em: EntityManager,
  cursors: PageCursors,
  list: string,
  patientId: string | null,
  first: number | null | undefined,
  after: string | null | undefined,
): Promise<Connection<ConsentProvision>> {
  const size = pageSize(first, CONSENT_PAGE);
  if (!patientId || !isUuid(patientId) || size === 0) return toConnection([], size, () => '');
  const [start, id] = cursors.read(list, patientId, null, after, 2) ?? [];
  const rows = await em.execute<Raw[]>(
    // Keyset on (period start to the millisecond, id): what a cursor holds.
    `select * from "consent" where "patient_id" = ? ${start !== undefined ? `and (date_trunc('milliseconds', "period_start"), "id") < (?::timestamptz, ?::uuid)` : ''} order by date_trunc('milliseconds', "period_start") desc, "id" desc limit ?`,
    [patientId, ...(start !== undefined ? [start, id] : []), size + 1],
  );
  return toConnection(rows.map(consentFromRow), size, (consent) => cursors.issue(list, patientId, null, [consent.periodStart.toISOString(), consent.id]));
}

/**
 * The patient of a privacy officer's organization, or null (another
 * organization's, no patient, and a caller who is not a privacy officer
 * all look the same). The role is checked here, not only by the policy:
 * a patient may read and write consents too (their own), and a patient's
 * token may name an organization.
 */
async function patientOfOrganization(context: SubgraphContext, patientId: string): Promise<string | null> {
  const organizationId = context.principal.organizationId;
  if (!context.principal.roles.includes('privacyOfficer') || !organizationId || !isUuid(patientId)) return null;
  const patient = await context.em.findOne(Patient, { id: patientId, managingOrganization: organizationId }, { fields: ['id'] });
  return patient?.id ?? null;
}

export async function patientConsents(context: SubgraphContext, patientId: string, first: number | null | undefined, after: string | null | undefined) {
  return listConsents(context.em, context.cursors, 'Query.patientConsents', await patientOfOrganization(context, patientId), first, after);
}

interface TermsInput {
  scope: ApiScope;
  decision?: 'permit' | 'deny' | null;
  organizationId?: string | null;
  actorRole?: ConsentActorRole | null;
  purposes?: readonly string[] | null;
  sensitiveData?: readonly Sensitivity[] | null;
  periodEnd?: string | null;
}

function termsOf(input: TermsInput): ConsentTerms & { unknownPurposes: string[] } {
  const purposes = [...new Set(input.purposes ?? [])];
  const scope = SCOPE_NAMES[input.scope];
  return {
    scope,
    decision: input.decision ?? 'permit',
    organizationId: input.organizationId ?? null,
    actorRole: input.actorRole ?? null,
    purposes: purposes.filter(isPurposeOfUse),
    unknownPurposes: purposes.filter((purpose) => !isPurposeOfUse(purpose)),
    // Stored as listed: none named means every purpose of the scope, written out (a deny covers them all whatever it lists).
    sensitivities: [...new Set(input.sensitiveData ?? [])],
    periodStart: null,
    periodEnd: input.periodEnd ? new Date(input.periodEnd) : null,
  };
}

/** What a consent of each scope may say, checked against the directory: the problems, by input path. */
async function checkTerms(em: EntityManager, terms: ConsentTerms & { unknownPurposes?: string[] }, start: Date, prefix: string): Promise<InputError[]> {
  const check = new InputCheck();
  const at = (field: string) => `${prefix}${field}`;
  const { scope } = terms;
  check.require((terms.unknownPurposes ?? []).length === 0, at('purposes'), 'Not a purpose of use this API knows.');
  check.require(
    terms.purposes.every((purpose: PurposeOfUse) => SCOPE_PURPOSES[scope].includes(purpose)),
    at('purposes'),
    `This kind of consent covers ${SCOPE_PURPOSES[scope].join(', ')}.`,
  );
  check.require(terms.actorRole === null || SCOPE_ROLES[scope].includes(terms.actorRole), at('actorRole'), `This kind of consent names ${SCOPE_ROLES[scope].join(', ')}.`);
  if (terms.decision === 'deny') {
    check.require(scope === 'treatment', at('decision'), 'Only a treatment consent denies: to stop sharing, revoke the consent.');
    check.require(terms.sensitivities.length > 0, at('sensitiveData'), 'Name the sensitive data it denies.');
    // A deny holds for every purpose, emergency treatment without a grant included: one limited to some would be read wider than it is.
    check.require(terms.purposes.length === 0, at('purposes'), 'A deny covers every purpose: name none.');
  }
  if (scope === 'treatment') check.require(terms.sensitivities.length > 0, at('sensitiveData'), 'Name the sensitive data it is about.');
  if (terms.periodEnd) {
    check.require(!Number.isNaN(terms.periodEnd.getTime()) && terms.periodEnd > start && terms.periodEnd > new Date(), at('periodEnd'), 'After the start, in the future.');
  }
  const wanted = scope === 'partner-sharing' ? 'partner' : scope === 'treatment' ? 'provider' : null;
  if (wanted === null) {
    check.require(terms.organizationId === null, at('organizationId'), 'A research consent names no organization.');
  } else if (!terms.organizationId || !isUuid(terms.organizationId)) {
    check.require(false, at('organizationId'), `Name the ${wanted} organization.`);
  } else {
    const organization = await em.findOne(Organization, { id: terms.organizationId }, { fields: ['type'] });
    check.require(organization?.type === wanted, at('organizationId'), `Not a ${wanted} organization.`);
  }
  return check.problems;
}

function row(terms: ConsentTerms, patientId: string, start: Date, source: ConsentProvision['source'], subject: string, documentReference: string | null = null) {
  return {
    id: randomUUID(),
    patient: patientId,
    organization: terms.organizationId,
    scope: terms.scope,
    status: 'active' as const,
    periodStart: start,
    periodEnd: terms.periodEnd,
    decision: terms.decision,
    actorRole: terms.actorRole,
    purposes: terms.purposes.length > 0 && terms.decision === 'permit' ? terms.purposes : [...SCOPE_PURPOSES[terms.scope]],
    sensitivities: terms.sensitivities,
    source,
    recordedBy: subject,
    recordedAt: new Date(),
    documentReference,
  };
}

/** The patient hears of a consent staff recorded, imported or revoked for them: ids and times only (src/subgraphs/emergency-access.ts has the outbox). */
export const CONSENT_NOTICE = 'consent-changed-by-staff';

async function noticeToPatient(em: EntityManager, patientId: string, change: 'recorded' | 'imported' | 'revoked', consentIds: readonly string[], organizationId: string | null): Promise<void> {
  await em.insert(NotificationOutbox, {
    id: randomUUID(),
    kind: CONSENT_NOTICE,
    patient: patientId,
    payload: { change, consentIds: [...consentIds], organizationId, at: new Date().toISOString() },
    createdAt: new Date(),
  });
}

async function consentById(em: EntityManager, id: string | null): Promise<ConsentProvision | null> {
  if (!id || !isUuid(id)) return null;
  const [found] = await em.execute<Raw[]>('select * from "consent" where "id" = ?', [id]);
  return found ? consentFromRow(found) : null;
}

type Answer = Failure | { ok: true; error: null; consent: ConsentProvision | null };

/** Writes one consent with its audit record; an Idempotency-Key's repeat answers what the first did. */
async function writeConsent(context: SubgraphContext, coordinate: string, input: object, values: ReturnType<typeof row>, byStaff: boolean): Promise<Answer> {
  const written = await writeWithRecord(context, {
    coordinate,
    input,
    resultId: () => values.id,
    work: async (em) => {
      await em.insert(Consent, values);
      if (byStaff) await noticeToPatient(em, values.patient, 'recorded', [values.id], context.principal.organizationId);
      return values.id;
    },
  });
  return { ok: true, error: null, consent: await consentById(context.em, written.replayed ? written.resultId : values.id) };
}

export async function grantConsent(input: GrantConsentInput, context: SubgraphContext): Promise<Answer> {
  const earlier = await earlierWrite(context, 'Mutation.grantConsent', input);
  if (earlier) return { ok: true, error: null, consent: await consentById(context.em, earlier.resultId) };
  const patientId = context.principal.patientId;
  if (!patientId || !context.principal.roles.includes('patient')) return failed('NOT_FOUND', 'Only a patient grants their own consents; a signed paper form is recorded with recordPaperConsent.');
  const terms = termsOf(input);
  const start = new Date();
  const problems = await checkTerms(context.em, terms, start, 'input.');
  if (problems.length > 0) return failed('INVALID_INPUT', 'The consent is not valid.', problems);
  return writeConsent(context, 'Mutation.grantConsent', input, row(terms, patientId, start, 'patient', context.principal.subject), false);
}

export async function recordPaperConsent(input: RecordPaperConsentInput, context: SubgraphContext): Promise<Answer> {
  const earlier = await earlierWrite(context, 'Mutation.recordPaperConsent', input);
  if (earlier) return { ok: true, error: null, consent: await consentById(context.em, earlier.resultId) };
  const signedAt = new Date(input.signedAt);
  const reference = input.documentReference.trim();
  const check = new InputCheck()
    .require(!Number.isNaN(signedAt.getTime()) && signedAt <= new Date() && Date.now() - signedAt.getTime() <= PAPER_CONSENT_MAX_AGE_DAYS * 86_400_000, 'input.signedAt', `When it was signed: not in the future, at most ${PAPER_CONSENT_MAX_AGE_DAYS} days ago.`)
    .require(reference.length >= 3 && reference.length <= 255, 'input.documentReference', 'Where the signed form is kept: 3 to 255 characters.');
  if (!check.ok) return invalidInput(check);
  const patientId = await patientOfOrganization(context, input.patientId);
  if (!patientId) return failed('NOT_FOUND', 'No such patient in your organization.');
  const terms = termsOf(input);
  const problems = await checkTerms(context.em, terms, signedAt, 'input.');
  if (problems.length > 0) return failed('INVALID_INPUT', 'The consent is not valid.', problems);
  return writeConsent(context, 'Mutation.recordPaperConsent', input, row(terms, patientId, signedAt, 'paper', context.principal.subject, reference), true);
}

export async function revokeConsent(input: RevokeConsentInput, context: SubgraphContext): Promise<Answer> {
  const earlier = await earlierWrite(context, 'Mutation.revokeConsent', input);
  if (earlier) return { ok: true, error: null, consent: await consentById(context.em, earlier.resultId) };
  const consent = await consentById(context.em, input.id);
  // The patient's own, or (a paper revocation) one of a patient of the officer's organization; any other looks like none.
  const mine = consent !== null && context.principal.roles.includes('patient') && consent.patientId === context.principal.patientId;
  const officer = consent !== null && !mine && context.principal.roles.includes('privacyOfficer') && (await patientOfOrganization(context, consent.patientId)) !== null;
  if (!consent || (!mine && !officer)) return failed('NOT_FOUND', 'No such consent.');
  // Staff revoke what staff recorded (a signed revocation of a paper or imported consent); what the patient granted, only the patient.
  if (officer && consent.source !== 'paper' && consent.source !== 'imported') {
    return failed('CONFLICT', 'The patient granted this consent through the API: only the patient revokes it.');
  }
  const reference = input.documentReference?.trim() ?? '';
  if (officer && (reference.length < 3 || reference.length > 255)) {
    return failed('INVALID_INPUT', 'Staff revoke with the patient\'s signed revocation.', [{ field: 'input.documentReference', message: 'Where the signed revocation is kept: 3 to 255 characters.' }]);
  }
  if (consent.storedStatus === 'revoked') return failed('CONFLICT', 'This consent is already revoked.');
  const written = await writeWithRecord(context, {
    coordinate: 'Mutation.revokeConsent',
    input,
    resultId: () => consent.id,
    work: async (em) => {
      // On the patient's audit trail too (the mutation's own record names the consent only).
      context.audit.group({ patientId: consent.patientId, entityType: 'Consent', entityId: consent.id, action: 'update' }).add('status', 'allowed');
      const result = await em.execute<QueryResult>(
        `update "consent" set "status" = 'revoked', "revoked_at" = now(), "revoked_by" = ?, "revocation_reference" = ? where "id" = ? and "status" = 'active'`,
        [context.principal.subject, officer ? reference : null, consent.id],
        'run',
      );
      if (officer && result.affectedRows === 1) await noticeToPatient(em, consent.patientId, 'revoked', [consent.id], context.principal.organizationId);
      return result;
    },
    wrote: (result) => result.affectedRows === 1,
  });
  if (written.replayed) return { ok: true, error: null, consent: await consentById(context.em, written.resultId) };
  // Two revocations at once: one wins, the other is told.
  if (written.result.affectedRows !== 1) return failed('CONFLICT', 'This consent is already revoked.');
  return { ok: true, error: null, consent: await consentById(context.em, consent.id) };
}

/** The Consent resources of an import: one, an array, or a Bundle's entries. */
function resourcesOf(parsed: unknown): unknown[] | null {
  if (Array.isArray(parsed)) return parsed as unknown[];
  const object = parsed !== null && typeof parsed === 'object' ? (parsed as Raw) : null;
  if (object?.['resourceType'] === 'Bundle') {
    const entries: unknown[] = Array.isArray(object['entry']) ? (object['entry'] as unknown[]) : [];
    return entries.map((entry) => (entry !== null && typeof entry === 'object' ? (entry as Raw)['resource'] : undefined));
  }
  return object ? [object] : null;
}

export async function importConsents(
  input: ImportConsentsInput,
  context: SubgraphContext,
): Promise<Failure | { ok: true; error: null; consents: ConsentProvision[] }> {
  const earlier = await earlierWrite(context, 'Mutation.importConsents', input);
  if (earlier) return { ok: true, error: null, consents: await importedTogether(context.em, earlier.resultId) };
  const patientId = await patientOfOrganization(context, input.patientId);
  if (!patientId) return failed('NOT_FOUND', 'No such patient in your organization.');
  const reference = input.documentReference.trim();
  if (reference.length < 3 || reference.length > 255) return failed('INVALID_INPUT', 'Say where the imported consents come from.', [{ field: 'input.documentReference', message: 'The source system or document they were exported from: 3 to 255 characters.' }]);
  if (input.resources.length > MAX_IMPORT_CHARACTERS) return failed('INVALID_INPUT', 'Too large.', [{ field: 'input.resources', message: `At most ${MAX_IMPORT_CHARACTERS} characters.` }]);
  let parsed: unknown;
  try {
    parsed = JSON.parse(input.resources);
  } catch {
    return failed('INVALID_INPUT', 'Not JSON.', [{ field: 'input.resources', message: 'Not JSON.' }]);
  }
  const resources = resourcesOf(parsed);
  if (!resources || resources.length === 0 || resources.length > MAX_IMPORTED) {
    return failed('INVALID_INPUT', 'Nothing to import.', [{ field: 'input.resources', message: `A Consent, an array or a Bundle of 1 to ${MAX_IMPORTED}.` }]);
  }
  const problems: InputError[] = [];
  const rows: ReturnType<typeof row>[] = [];
  const seen = new Set<string>();
  // One instant for every resource without a start: two of them alike are the same consent.
  const now = new Date();
  for (const [index, resource] of resources.entries()) {
    const path = `input.resources[${index}]`;
    const terms = fromFhirConsent(resource, patientId, path);
    if (!terms.ok) {
      problems.push(...terms.problems);
      continue;
    }
    const start = terms.value.periodStart ?? now;
    const found = await checkTerms(context.em, terms.value, start, `${path}.`);
    if (start > new Date()) found.push({ field: `${path}.provision.period.start`, message: 'Not in the future.' });
    // The same provision twice in one import is one consent (revoking it must not leave a copy in force).
    const value = terms.value;
    const same = JSON.stringify({ ...value, purposes: [...(value.decision === 'deny' || value.purposes.length === 0 ? SCOPE_PURPOSES[value.scope] : value.purposes)].sort(), sensitivities: [...value.sensitivities].sort(), periodStart: start.toISOString() });
    if (seen.has(same)) found.push({ field: path, message: 'The same consent as an earlier resource of this import.' });
    seen.add(same);
    problems.push(...found);
    if (found.length === 0) rows.push(row(terms.value, patientId, start, 'imported', context.principal.subject, reference));
  }
  // All of them or none.
  if (problems.length > 0) return failed('INVALID_INPUT', 'Some resources cannot be imported; nothing was.', problems);
  const batch = rows[0]?.id ?? null;
  const written = await writeWithRecord(context, {
    coordinate: 'Mutation.importConsents',
    input,
    resultId: () => batch,
    work: async (em) => {
      // Recorded at one instant: what a repeat of the same Idempotency-Key answers with.
      const recordedAt = new Date();
      for (const values of rows) await em.insert(Consent, { ...values, recordedAt });
      await noticeToPatient(em, patientId, 'imported', rows.map((values) => values.id), context.principal.organizationId);
      return batch;
    },
  });
  return { ok: true, error: null, consents: await importedTogether(context.em, written.replayed ? written.resultId : batch) };
}

/** The consents imported with the one of this id (same patient, same import instant). */
async function importedTogether(em: EntityManager, firstId: string | null): Promise<ConsentProvision[]> {
  const first = await consentById(em, firstId);
  if (!first || !first.recordedAt) return [];
  const rows = await em.execute<Raw[]>(`select * from "consent" where "patient_id" = ? and "source" = 'imported' and "recorded_at" = ? order by "id"`, [first.patientId, first.recordedAt]);
  return rows.map(consentFromRow);
}
