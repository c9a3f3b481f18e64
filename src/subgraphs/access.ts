import DataLoader from 'dataloader';
import type { FilterQuery } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/sql';
import type { Principal, PurposeOfUse, Role } from '../auth/index.js';
import type { Cache } from '../cache/index.js';
import { AppUser, CareTeamMember, Organization, Patient } from '../db/entities.js';
import { databaseUnavailable, internalError, isDatabaseUnavailable } from '../errors.js';
import {
  ACCESS_POLICY,
  type Category,
  NO_AGREEMENT,
  boundBySharingAgreement,
  decisionTable,
  sharingAgreement,
  type DecisionTable,
  type PatientScope,
  type SharingAgreement,
} from '../policy/index.js';
import { activeEmergencyGrants, type EmergencyGrant } from './emergency-access.js';
import { AuditCollector } from '../audit/collector.js';
import { sensitivitiesOf, type Sensitivity } from '../policy/sensitivity.js';
import { consentFromRow, type ConsentProvision } from '../policy/consent.js';
import { labelScope, withheldReason, type LabelScope } from './sensitive-rows.js';
import { isUuid } from './pagination.js';

/**
 * Row scope, in the data layer: which patients (and so which clinical and
 * billing rows) this request may load. Every query that loads patient rows
 * adds `patientFilter()` to its SQL; nothing is fetched and then discarded.
 * Field scope (which fields of a visible row) is the shield's job.
 */
export interface AccessControl {
  principal: Principal;
  /** Decisions for the token's roles (row-independent), a partner's limited to its organization's sharing agreement. */
  decisions: DecisionTable;
  /** Decisions for some of the token's roles (those that reach one row), under the same agreement as `decisions`. */
  decisionsFor(roles: readonly Role[]): DecisionTable;
  /** True when several roles with different row scopes are combined, so decisions depend on the row. */
  rowDependent: boolean;
  /** The SQL filter on Patient for the union of the roles' scopes. */
  patientFilter(): Promise<FilterQuery<Patient>>;
  /** The roles of this token that reach the given patient (batched). */
  rolesForPatient(patientId: string): Promise<readonly Role[]>;
  /** Whether directory rows (practitioners, organizations, care teams) are visible. */
  directoryVisible: boolean;
  /** Break-the-glass grants of the caller in force now (only roles with the careTeam scope have any effect). */
  emergencyGrants(): Promise<EmergencyGrant[]>;
  /** True when this patient is visible only through an emergency grant: reads of it are emergency access. */
  isEmergencyRead(patientId: string): Promise<boolean>;
  /** The practitioner behind the caller's account, if any. */
  practitionerId(): Promise<string | null>;
  /** Notes patients whose rows this request loaded; those reached only by an emergency grant are marked. */
  recordReads(patientIds: readonly string[]): Promise<void>;
  /** Grants under which this request read something (break the glass): the mark the audit trail records. */
  readonly emergencyReads: ReadonlyMap<string, string>;
  /** Which labelled rows this request may load (src/subgraphs/sensitive-rows.ts). */
  labels: LabelScope;
  /** Records, on the audit trail, rows of one patient withheld for their labels (`labels`: each row's, null if unlabelled). */
  recordWithheld(entityType: string, patientId: string, labels: readonly (readonly string[] | null)[]): void;
  /** Flags labelled rows read under a break-the-glass grant: on the audit trail (per row) and in the response's mark. */
  recordSensitiveReads(entityType: string, rows: readonly { id: string; patientId: string; labels: readonly string[] | null }[]): Promise<void>;
  /** Per grant, the categories of labelled rows read under it (the response's mark). */
  readonly emergencySensitive: ReadonlyMap<string, ReadonlySet<Sensitivity>>;
}

/** How long a practitioner's care-team membership is cached; changes invalidate it at once. */
export const MEMBERSHIP_TTL_SECONDS = 300;
const MEMBERSHIP_KEY = 'care-team-membership:';
/**
 * How long an organization's sharing agreement is cached. Agreements change
 * only by migration or seeding (no API writes them), so nothing invalidates
 * the entry: a change made by hand in the database holds within this time.
 */
export const AGREEMENT_TTL_SECONDS = 300;
const AGREEMENT_KEY = 'sharing-agreement:';

/**
 * The caller's row scope and decisions. For a token with a role bound by a
 * sharing agreement (partner), the organization's agreement is read first
 * (the cache, the database on a miss): the guard reads decisions
 * synchronously, so they must be complete before the request runs.
 */
export async function createAccessControl(principal: Principal, em: EntityManager, cache: Cache, audit: AuditCollector = new AuditCollector()): Promise<AccessControl> {
  const agreement = boundBySharingAgreement(principal.roles) ? await agreementOf(principal.organizationId, em, cache) : NO_AGREEMENT;
  const scopes = new Map<Role, PatientScope>(principal.roles.map((role) => [role, ACCESS_POLICY[role].patients]));
  const distinctScopes = new Set(scopes.values());
  let filter: Promise<FilterQuery<Patient>> | undefined;
  let teams: Promise<string[]> | undefined;
  let grants: Promise<EmergencyGrant[]> | undefined;
  let practitioner: Promise<string | null> | undefined;
  const practitionerId = () => (practitioner ??= practitionerOf(principal.subject, em));
  const careTeams = () => (teams ??= careTeamsOf(principal.subject, practitionerId, em, cache));
  // Break-the-glass grants reach their patients only when the request reads to treat: a grant opened in an emergency is not used for payment.
  const treating = principal.purpose === 'TREAT' || principal.purpose === 'ETREAT';
  const emergencyGrants = () => (grants ??= distinctScopes.has('careTeam') && treating ? activeEmergencyGrants(principal.subject, em, cache) : Promise.resolve([]));
  const reach: Reach = { careTeams, emergencyPatients: async () => (await emergencyGrants()).map((grant) => grant.patientId) };
  const patientFilter = () => (filter ??= buildPatientFilter(principal, [...distinctScopes], reach));
  const emergencyReads = new Map<string, string>();
  const recordReads = async (patientIds: readonly string[]): Promise<void> => {
    if (!distinctScopes.has('careTeam')) return;
    const granted = new Map((await emergencyGrants()).map((grant) => [grant.patientId, grant.id]));
    for (const patientId of new Set(patientIds)) {
      const grantId = granted.get(patientId);
      if (grantId && !emergencyReads.has(patientId) && (await isEmergencyRead(patientId))) emergencyReads.set(patientId, grantId);
    }
  };
  const isEmergencyRead = async (patientId: string): Promise<boolean> => {
    if (!(await reach.emergencyPatients()).includes(patientId)) return false;
    const viaOtherScopes = await buildPatientFilter(principal, [...distinctScopes], { careTeams, emergencyPatients: () => Promise.resolve([]) });
    return (await em.count(Patient, { $and: [{ id: patientId }, viaOtherScopes] })) === 0;
  };
  const rowRoles = new DataLoader<string, readonly Role[]>((ids) => rolesForPatients(ids, principal, scopes, em, reach));
  // The categories a grant names clear them only when the request reads for emergency treatment (42 CFR 2.51: a medical emergency).
  const grantedCategories = async () =>
    principal.purpose === 'ETREAT' ? new Map((await emergencyGrants()).map((grant) => [grant.patientId, grant.sensitiveCategories] as const)) : new Map<string, readonly Sensitivity[]>();
  const rolesForPatient = (patientId: string) => (distinctScopes.size > 1 ? rowRoles.load(patientId) : Promise.resolve(principal.roles));
  const consents = new DataLoader<string, readonly ConsentProvision[]>((ids) => consentProvisionsOf(ids, em));
  const labels = labelScope(principal.purpose, principal.organizationId, rolesForPatient, grantedCategories, (patientId) => consents.load(patientId));
  const emergencySensitive = new Map<string, Set<Sensitivity>>();
  const withheldLabels = new Map<string, (readonly string[] | null)[]>();
  return {
    principal,
    decisions: decisionTable(principal.roles, principal.purpose, agreement),
    decisionsFor: (roles) => decisionTable(roles, principal.purpose, agreement),
    rowDependent: distinctScopes.size > 1,
    patientFilter,
    rolesForPatient,
    directoryVisible: principal.roles.some((role) => ACCESS_POLICY[role].directory === 'all'),
    emergencyGrants,
    isEmergencyRead,
    practitionerId,
    recordReads,
    emergencyReads,
    labels,
    recordWithheld(entityType, patientId, labels) {
      if (labels.length === 0) return;
      // Every withholding of the request for this patient and entity type, in one record: the categories of all of them.
      const key = `${entityType}\u0000${patientId}`;
      const all = [...(withheldLabels.get(key) ?? []), ...labels];
      withheldLabels.set(key, all);
      audit.group({ patientId, entityType, entityId: null, action: 'read' }).fields.set(WITHHELD_FIELD, { field: WITHHELD_FIELD, outcome: 'withheld', reason: withheldReason(all) });
    },
    async recordSensitiveReads(entityType, rows) {
      const labelled = rows.filter((row) => row.labels !== null && row.labels.length > 0);
      if (labelled.length === 0) return;
      if (principal.purpose !== 'ETREAT') return;
      const grants = new Map((await emergencyGrants()).map((grant) => [grant.patientId, grant.id]));
      const granted = labelled.filter((row) => grants.has(row.patientId));
      const withheld = await Promise.all(granted.map((row) => labels.withheldByRolesFor(row.patientId)));
      for (const [index, row] of granted.entries()) {
        const grantId = grants.get(row.patientId);
        if (!grantId) continue;
        // Shown only because the grant names them: the categories the roles are not otherwise cleared for.
        const byRoles = withheld[index] ?? [];
        const categories = sensitivitiesOf(row.labels ?? []).filter((category) => byRoles.includes(category));
        if (categories.length === 0) continue;
        // A read under the grant, even of a patient the caller's care team reaches: marked as break-the-glass.
        emergencyReads.set(row.patientId, grantId);
        const flagged = emergencySensitive.get(grantId) ?? new Set<Sensitivity>();
        for (const category of categories) flagged.add(category);
        emergencySensitive.set(grantId, flagged);
        audit.group({ patientId: row.patientId, entityType, entityId: row.id, action: 'read' }).add(SENSITIVE_FIELD, 'allowed', `EMERGENCY:${categories.join(',')}`);
      }
    },
    emergencySensitive,
  };
}

/** The audit field of rows withheld for their labels (outcome `withheld`, the reason names their categories). */
export const WITHHELD_FIELD = 'rows:withheld';
/** The audit field that flags a labelled row read under break-the-glass (the reason names its categories). */
export const SENSITIVE_FIELD = 'row:sensitive';

/**
 * The consent provisions in force that name sensitive data, of a batch of
 * patients: one statement. Read on every request that needs them (no
 * cache), so a grant or a revocation holds on every instance at once.
 */
async function consentProvisionsOf(ids: readonly string[], em: EntityManager): Promise<(readonly ConsentProvision[])[]> {
  const valid = ids.filter(isUuid);
  const rows =
    valid.length === 0
      ? []
      : await em.execute<Record<string, unknown>[]>(
          `select * from "consent" where "patient_id" in (${valid.map(() => '?::uuid').join(', ')}) and "status" = 'active' and cardinality("sensitivities") > 0
             and "period_start" <= now() and ("period_end" is null or "period_end" > now())`,
          valid,
        );
  const byPatient = new Map<string, ConsentProvision[]>();
  for (const row of rows) {
    const provision = consentFromRow(row);
    byPatient.set(provision.patientId, [...(byPatient.get(provision.patientId) ?? []), provision]);
  }
  return ids.map((id) => byPatient.get(id) ?? []);
}

/** Matches no row: an empty IN list becomes a false condition in SQL. */
const NOTHING: FilterQuery<Patient> = { id: { $in: [] } };

/** What the care-team scope reaches: the caller's teams, and patients under an emergency grant. */
interface Reach {
  careTeams(): Promise<string[]>;
  emergencyPatients(): Promise<string[]>;
}

async function buildPatientFilter(principal: Principal, scopes: PatientScope[], reach: Reach): Promise<FilterQuery<Patient>> {
  const filters: FilterQuery<Patient>[] = [];
  for (const scope of scopes) filters.push(await scopeFilter(scope, principal, reach));
  const effective = filters.filter((filter) => filter !== NOTHING);
  if (effective.length === 0) return NOTHING;
  return effective.length === 1 ? (effective[0] as FilterQuery<Patient>) : { $or: effective };
}

/**
 * Patients with a consent in force that permits this actor (its
 * organization, and its role or every role) for the request's purpose: the
 * partner and research row scopes.
 */
function activeConsent(scope: 'partner-sharing' | 'research', organizationId: string | null, role: Role, purpose: PurposeOfUse | null): FilterQuery<Patient> {
  if (purpose === null) return NOTHING;
  const now = new Date();
  return {
    consents: {
      $some: {
        scope,
        organization: organizationId,
        status: 'active' as const,
        decision: 'permit' as const,
        purposes: { $contains: [purpose] },
        periodStart: { $lte: now },
        $and: [{ $or: [{ periodEnd: null }, { periodEnd: { $gt: now } }] }, { $or: [{ actorRole: null }, { actorRole: role }] }],
      },
    },
  };
}

async function scopeFilter(scope: PatientScope, principal: Principal, reach: Reach): Promise<FilterQuery<Patient>> {
  switch (scope) {
    case 'self':
      return principal.patientId ? { id: principal.patientId } : NOTHING;
    case 'careTeam': {
      const [teamIds, emergency] = await Promise.all([reach.careTeams(), reach.emergencyPatients()]);
      const reached: FilterQuery<Patient>[] = [];
      if (teamIds.length > 0) reached.push({ careTeam: { $in: teamIds } });
      // Break the glass reaches only patients of the caller's own organization.
      if (emergency.length > 0 && principal.organizationId) reached.push({ id: { $in: emergency }, managingOrganization: principal.organizationId });
      if (reached.length === 0) return NOTHING;
      return reached.length === 1 ? (reached[0] as FilterQuery<Patient>) : { $or: reached };
    }
    case 'organization':
      return principal.organizationId ? { managingOrganization: principal.organizationId } : NOTHING;
    case 'partnerConsent':
      return principal.organizationId ? activeConsent('partner-sharing', principal.organizationId, 'partner', principal.purpose) : NOTHING;
    case 'researchCohort':
      return activeConsent('research', null, 'researcher', principal.purpose);
    case 'none':
      return NOTHING;
  }
}

/**
 * The sharing agreement of the caller's organization: no organization, or
 * one without an agreement, grants nothing. A failure refuses the request
 * (never "allowed because the check could not run"), without the driver's
 * message.
 */
async function agreementOf(organizationId: string | null, em: EntityManager, cache: Cache): Promise<SharingAgreement> {
  if (!organizationId || !isUuid(organizationId)) return NO_AGREEMENT;
  const key = `${AGREEMENT_KEY}${organizationId}`;
  // The database holds the agreement: without the cache it is read from there (safe), and the cache is filled when it answers again.
  const cached = await cache.get(key).catch(() => null);
  if (cached !== null) return sharingAgreement(JSON.parse(cached) as string[]);
  try {
    const organization = await em.findOne(Organization, { id: organizationId }, { fields: ['sharedCategories'] });
    const categories = organization?.sharedCategories ?? [];
    await cache.set(key, JSON.stringify(categories), AGREEMENT_TTL_SECONDS).catch(() => undefined);
    return sharingAgreement(categories);
  } catch (error) {
    throw isDatabaseUnavailable(error) ? databaseUnavailable() : internalError();
  }
}

async function practitionerOf(subject: string, em: EntityManager): Promise<string | null> {
  const user = await em.findOne(AppUser, { subject }, { fields: ['practitioner'] });
  return user?.practitioner?.id ?? null;
}

/** Care teams the caller is a member of: Redis (or in-process) first, the database on a miss. */
async function careTeamsOf(subject: string, practitionerOfCaller: () => Promise<string | null>, em: EntityManager, cache: Cache): Promise<string[]> {
  const key = `${MEMBERSHIP_KEY}${subject}`;
  // The database holds the memberships: without the cache they are read from there (safe).
  const cached = await cache.get(key).catch(() => null);
  if (cached !== null) return JSON.parse(cached) as string[];
  const practitionerId = await practitionerOfCaller();
  const teamIds = practitionerId
    ? (await em.find(CareTeamMember, { practitioner: practitionerId })).map((member) => member.careTeam.id).sort()
    : [];
  await cache.set(key, JSON.stringify(teamIds), MEMBERSHIP_TTL_SECONDS).catch(() => undefined);
  return teamIds;
}

/** Drops cached memberships of a practitioner's accounts, so the next request sees a change at once. */
export async function invalidateCareTeamMembership(em: EntityManager, cache: Cache, practitionerId: string): Promise<void> {
  const users = await em.find(AppUser, { practitioner: practitionerId }, { fields: ['subject'] });
  // Without the cache there is nothing to drop now; what it holds when it comes back only lacks the new team (less access, for at most the TTL).
  await Promise.all(users.map((user) => cache.delete(`${MEMBERSHIP_KEY}${user.subject}`).catch(() => undefined)));
}

/** For tokens with several roles: which of them reach each patient, one statement per batch. */
async function rolesForPatients(
  ids: readonly string[],
  principal: Principal,
  scopes: Map<Role, PatientScope>,
  em: EntityManager,
  reach: Reach,
): Promise<(readonly Role[])[]> {
  const byScope = new Map<PatientScope, Set<string>>();
  for (const scope of new Set(scopes.values())) {
    const filter = await scopeFilter(scope, principal, reach);
    const rows = await em.find(Patient, { $and: [{ id: { $in: [...ids] } }, filter] }, { fields: ['id'] });
    byScope.set(scope, new Set(rows.map((row) => row.id)));
  }
  return ids.map((id) => principal.roles.filter((role) => byScope.get(scopes.get(role) ?? 'none')?.has(id)));
}

/**
 * Whether the roles of this token that reach a patient may write `category`
 * for that patient. A mutation's entry point is decided for the token's
 * roles together; a token whose roles see different patients (clinician
 * and billing, say) must not write, under one role's permission, for a
 * patient only another role reaches.
 */
export async function mayWriteFor(access: AccessControl, patientId: string, category: Category): Promise<boolean> {
  const roles = await access.rolesForPatient(patientId);
  return access.decisionsFor(roles).category(category).kind === 'allow';
}
