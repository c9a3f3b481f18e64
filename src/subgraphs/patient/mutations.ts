import { grantConsent, importConsents, recordPaperConsent, revokeConsent } from './consents.js';
import type { MutationResolvers, UpdateContactInput, AddCareTeamMemberInput, OpenEmergencyAccessInput } from './__generated__/resolvers-types.js';
import { earlierWrite, writeWithRecord } from '../writes.js';
import { ROLES, type Role } from '../../auth/index.js';
import { recordCareTeamChange } from '../../audit/index.js';
import { CareTeam, CareTeamMember, EmergencyAccess, Patient, Practitioner } from '../../db/entities.js';
import { ACCESS_POLICY } from '../../policy/index.js';
import { invalidateCareTeamMembership } from '../access.js';
import { sealColumnsForUpdate } from '../../db/encryption.js';
import { EMERGENCY_ACCESS_MINUTES, grantEmergencyAccess, MINIMUM_REASON_LENGTH } from '../emergency-access.js';
import { isSensitivity, type Sensitivity } from '../../policy/sensitivity.js';
import { failed, InputCheck, invalidInput, type Failure } from '../mutation-results.js';
import { isUuid } from '../pagination.js';
import { careTeamById, patientById } from './repository.js';
import { closeEmergencyReview } from './emergency-reviews.js';
import type { SubgraphContext } from '../context.js';

const PHONE = /^\+?[0-9][0-9 ().-]{6,19}$/;
const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,255}\.[A-Za-z]{2,}$/;
const ZIP = /^\d{5}(-\d{4})?$/;
const MAX_ADDRESS_LINES = 3;
const MAX_LINE_LENGTH = 120;
const US_STATES = new Set(
  'AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI AS MP'.split(' '),
);

function checkContact(input: UpdateContactInput): InputCheck {
  const check = new InputCheck();
  check.require(input.phone !== undefined || input.email !== undefined || input.address !== undefined, 'input', 'Give at least one of phone, email, address.');
  if (input.phone !== undefined && input.phone !== null) check.require(PHONE.test(input.phone), 'input.phone', 'Use digits with an optional leading +, e.g. +1-617-555-0142.');
  if (input.email !== undefined && input.email !== null) check.require(EMAIL.test(input.email), 'input.email', 'Not an email address.');
  const address = input.address;
  if (address) {
    check.require(address.line.length >= 1 && address.line.length <= MAX_ADDRESS_LINES, 'input.address.line', `Give 1 to ${MAX_ADDRESS_LINES} lines.`);
    check.require(address.line.every((line) => line.trim().length > 0 && line.length <= MAX_LINE_LENGTH), 'input.address.line', `Each line must be 1 to ${MAX_LINE_LENGTH} characters.`);
    check.require(address.city.trim().length > 0 && address.city.length <= MAX_LINE_LENGTH, 'input.address.city', 'A city is required.');
    check.require(US_STATES.has(address.state), 'input.address.state', 'Use a two-letter US state code, e.g. MA.');
    check.require(ZIP.test(address.postalCode), 'input.address.postalCode', 'Use a five-digit ZIP or ZIP+4.');
  }
  return check;
}

async function updateMyContact({ input }: { input: UpdateContactInput }, context: SubgraphContext): Promise<Failure | { ok: true; error: null; patient: Patient | null }> {
  const patientId = context.principal.patientId;
  if (!patientId) return failed('NOT_FOUND', 'Your token names no patient record.');
  // Setting the same contact again is harmless; a retried one with the same Idempotency-Key answers the record as it is.
  if (await earlierWrite(context, 'Mutation.updateMyContact', input)) return { ok: true, error: null, patient: await context.em.fork().findOne(Patient, patientId) };
  const check = checkContact(input);
  if (!check.ok) return invalidInput(check);
  const changes: Record<string, string> = {};
  if (input.phone) changes['phone'] = input.phone;
  if (input.email) changes['email'] = input.email.toLowerCase();
  if (input.address) {
    Object.assign(changes, {
      address_lines: JSON.stringify(input.address.line),
      city: input.address.city,
      state: input.address.state,
      postal_code: input.address.postalCode,
    });
  }
  const written = await writeWithRecord(context, {
    coordinate: 'Mutation.updateMyContact',
    input,
    resultId: () => patientId,
    wrote: (found: boolean) => found,
    work: async (em) => {
      const stored = await sealColumnsForUpdate(em, 'patient', patientId, changes, context.sealer);
      if (!stored) return false;
      const columns = Object.keys(stored);
      await em.execute(`update "patient" set ${columns.map((column) => `"${column}" = ?`).join(', ')} where "id" = ?`, [...columns.map((column) => stored[column]), patientId], 'run');
      return true;
    },
  });
  if (!written.replayed && !written.result) return failed('NOT_FOUND', 'Your patient record was not found.');
  const patient = await context.em.fork().findOne(Patient, patientId);
  return { ok: true, error: null, patient };
}

/** Roles whose row scope is care-team membership: a token carrying one may not change who is on a care team. */
const CARE_TEAM_ROLES: readonly Role[] = ROLES.filter((role) => ACCESS_POLICY[role].patients === 'careTeam');

/**
 * Adds a practitioner of the caller's organization to one of its care teams,
 * which gives the practitioner's accounts the team's patients. Refused, and
 * nothing written, when it would let the caller grant access to itself:
 * - the practitioner is the caller's own (app_user.subject = the token's
 *   subject, linked to that practitioner): SELF_GRANT;
 * - the caller's token also carries a role that sees patients through care
 *   teams (clinician, nurse), whoever is added: SEPARATION_OF_DUTIES. One
 *   account does not both administer care teams and treat their patients.
 * Every attempt that gets this far (the ids are valid) is on the record:
 * the change or the refusal, with both ids as entities, and an access alert.
 */
async function addCareTeamMember({ input }: { input: AddCareTeamMemberInput }, context: SubgraphContext): Promise<Failure | { ok: true; error: null; careTeam: CareTeam | null }> {
  const earlier = await earlierWrite(context, 'Mutation.addCareTeamMember', input);
  if (earlier) return { ok: true, error: null, careTeam: earlier.resultId ? await context.loader(careTeamById).load(earlier.resultId) : null };
  const check = new InputCheck()
    .require(isUuid(input.careTeamId), 'input.careTeamId', 'Not an id.')
    .require(isUuid(input.practitionerId), 'input.practitionerId', 'Not an id.');
  if (!check.ok) return invalidInput(check);
  const change = { careTeamId: input.careTeamId, practitionerId: input.practitionerId };
  // Every role of the token, not only those acting for this request's purpose: the rule is about the account.
  const clinicalRoles = context.principal.tokenRoles.filter((role) => CARE_TEAM_ROLES.includes(role));
  if (clinicalRoles.length > 0) {
    recordCareTeamChange(context.audit, { ...change, refusal: 'SEPARATION_OF_DUTIES' });
    return failed(
      'CONFLICT',
      `Your token also carries the ${clinicalRoles.join(' and ')} role, which sees patients through care teams: care teams are changed from an administrator account without clinical roles.`,
    );
  }
  const organizationId = context.principal.organizationId;
  const [team, practitioner] = await Promise.all([
    context.em.findOne(CareTeam, { id: input.careTeamId, organization: organizationId }),
    context.em.findOne(Practitioner, { id: input.practitionerId, organization: organizationId }),
  ]);
  if (!team || !practitioner) return failed('NOT_FOUND', 'No such care team and practitioner in your organization.');
  if ((await context.access.practitionerId()) === practitioner.id) {
    recordCareTeamChange(context.audit, { ...change, refusal: 'SELF_GRANT' });
    return failed('INVALID_INPUT', 'You cannot add yourself to a care team: another administrator must make this change.', [
      { field: 'input.practitionerId', message: 'This practitioner is linked to your own account.' },
    ]);
  }
  if (practitioner.qualification === 'billing_specialist') {
    return failed('INVALID_INPUT', 'Only physicians and nurses join care teams.', [{ field: 'input.practitionerId', message: 'Not a clinical practitioner.' }]);
  }
  const existing = await context.em.count(CareTeamMember, { careTeam: team.id, practitioner: practitioner.id });
  if (existing > 0) return failed('CONFLICT', 'The practitioner is already a member of this care team.');
  await writeWithRecord(context, {
    coordinate: 'Mutation.addCareTeamMember',
    input,
    resultId: () => team.id,
    work: async (em) => {
      await em.insert(CareTeamMember, { careTeam: team.id, practitioner: practitioner.id });
      // On record with the change itself, in its transaction.
      recordCareTeamChange(context.audit, { ...change, refusal: null });
    },
  });
  // The practitioner's next request sees the team's patients: drop the cached membership now.
  await invalidateCareTeamMembership(context.em, context.cache, practitioner.id);
  return { ok: true, error: null, careTeam: await context.loader(careTeamById).load(team.id) };
}

async function openEmergencyAccess(
  { input }: { input: OpenEmergencyAccessInput },
  context: SubgraphContext,
): Promise<Failure | { ok: true; error: null; grant: GrantAnswer | null }> {
  const earlier = await earlierWrite(context, 'Mutation.openEmergencyAccess', input);
  if (earlier) return emergencyGrantAnswer(earlier.resultId, context);
  const minutes = input.minutes ?? EMERGENCY_ACCESS_MINUTES.default;
  const check = new InputCheck()
    .require(isUuid(input.patientId), 'input.patientId', 'Not an id.')
    .require(input.reason.trim().length >= MINIMUM_REASON_LENGTH, 'input.reason', `Say why, in at least ${MINIMUM_REASON_LENGTH} characters.`)
    .require(
      Number.isInteger(minutes) && minutes >= EMERGENCY_ACCESS_MINUTES.min && minutes <= EMERGENCY_ACCESS_MINUTES.max,
      'input.minutes',
      `Between ${EMERGENCY_ACCESS_MINUTES.min} and ${EMERGENCY_ACCESS_MINUTES.max} minutes.`,
    );
  if (!check.ok) return invalidInput(check);
  const organizationId = context.principal.organizationId;
  const exists = organizationId ? await context.em.count(Patient, { id: input.patientId, managingOrganization: organizationId }) : 0;
  if (!organizationId || exists === 0) return failed('NOT_FOUND', 'No such patient in your organization.');
  // Sensitive data the request is not cleared for needs a grant even for a patient of one's own care teams; it is opened, and used,
  // only by a request that reads for emergency treatment (ETREAT).
  const sensitiveData = [...new Set(input.sensitiveData ?? [])];
  if (sensitiveData.length > 0 && context.principal.purpose !== 'ETREAT') {
    return failed('INVALID_INPUT', 'Sensitive data is opened only for emergency treatment: send the request with X-Purpose-Of-Use: ETREAT.', [
      { field: 'input.sensitiveData', message: 'Needs the purpose of use ETREAT.' },
    ]);
  }
  const withheld = await context.access.labels.withheldByRolesFor(input.patientId);
  const beyondClearance = sensitiveData.filter((category) => withheld.includes(category));
  if (beyondClearance.length === 0 && (await context.loader(patientById).load(input.patientId))) {
    return failed('CONFLICT', 'You can already see this patient; no emergency access is needed.');
  }
  let replayedId: string | null | undefined;
  const reason = input.reason.trim();
  const grant = await grantEmergencyAccess(context.principal.subject, input.patientId, organizationId, reason, sensitiveData, minutes, context.em, context.cache, async (work) => {
    const written = await writeWithRecord(context, { coordinate: 'Mutation.openEmergencyAccess', input, work, resultId: (id) => id });
    if (written.replayed) replayedId = written.resultId;
    return !written.replayed;
  });
  if (replayedId !== undefined || !grant) return emergencyGrantAnswer(replayedId ?? null, context);
  context.logger.warn(
    { event: 'emergency-access-granted', subject: context.principal.subject, grantId: grant.id, minutes, sensitiveData, requestId: context.requestId },
    'break-the-glass access opened',
  );
  return { ok: true, error: null, grant: grantAnswer(grant) };
}

type GrantAnswer = { id: string; patientId: string; expiresAt: string; sensitiveData: Sensitivity[] };

export function grantAnswer(grant: { id: string; patientId: string; expiresAt: Date; sensitiveCategories: readonly string[] }): GrantAnswer {
  return { id: grant.id, patientId: grant.patientId, expiresAt: grant.expiresAt.toISOString(), sensitiveData: grant.sensitiveCategories.filter(isSensitivity) };
}

/** A grant opened by the first request of an Idempotency-Key, as that one answered it. */
async function emergencyGrantAnswer(grantId: string | null, context: SubgraphContext): Promise<{ ok: true; error: null; grant: GrantAnswer | null }> {
  const row = grantId ? await context.em.fork().findOne(EmergencyAccess, { id: grantId, subject: context.principal.subject }) : null;
  return { ok: true, error: null, grant: row ? grantAnswer({ ...row, patientId: row.patient.id, sensitiveCategories: row.sensitiveCategories }) : null };
}

export const mutations: MutationResolvers = {
  updateMyContact: (_parent, args, context) => updateMyContact(args, context),
  addCareTeamMember: (_parent, args, context) => addCareTeamMember(args, context),
  openEmergencyAccess: async (_parent, args, context) => ({ grant: null, ...(await openEmergencyAccess(args, context)) }),
  closeEmergencyReview: async (_parent, args, context) => ({ review: null, ...(await closeEmergencyReview(args, context)) }),
  grantConsent: async (_parent, { input }, context) => ({ consent: null, ...(await grantConsent(input, context)) }),
  revokeConsent: async (_parent, { input }, context) => ({ consent: null, ...(await revokeConsent(input, context)) }),
  recordPaperConsent: async (_parent, { input }, context) => ({ consent: null, ...(await recordPaperConsent(input, context)) }),
  importConsents: async (_parent, { input }, context) => ({ consents: [], ...(await importConsents(input, context)) }),
};
