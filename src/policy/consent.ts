import { isPurposeOfUse, ROLES, type PurposeOfUse, type Role } from '../auth/index.js';
import { ACT_CODE_SYSTEM, isSensitivity, SENSITIVITIES, SENSITIVITY_TEXT, type Sensitivity } from './sensitivity.js';

/**
 * Patient consent, aligned with FHIR R4 Consent: each stored consent is one
 * Consent resource with one provision, which permits or denies an actor (an
 * organization, a role, or both) for some purposes of use, some sensitive
 * data (by sensitivity category) and a period. Enforced in the same row
 * scopes and label checks as the role policy (src/subgraphs/access.ts,
 * src/subgraphs/sensitive-rows.ts):
 *
 * - `partner-sharing` (FHIR scope patient-privacy): the partner organization
 *   may read the patient's record (its row scope), within its sharing
 *   agreement; its sensitive categories, if any, are cleared for it too.
 * - `research` (FHIR scope research): the patient is in the de-identified
 *   research cohort; its categories, if any, are cleared for researchers.
 * - `treatment` (FHIR scope treatment): the provider organization's
 *   clinicians, nurses or billing (one role, or all) are cleared for the
 *   named categories (permit: e.g. substance use disorder records for the
 *   patient's primary care, 42 CFR 2.31), or kept from them (deny: e.g. the
 *   patient's mental health records from an organization's billing).
 *
 * A deny wins over the role policy and over permits; only a break-the-glass
 * grant (emergency treatment) overrides it. Nothing here restricts the
 * patient's own access.
 */

export const CONSENT_SCOPES = ['partner-sharing', 'research', 'treatment'] as const;
export type ConsentScope = (typeof CONSENT_SCOPES)[number];
export type ConsentDecision = 'permit' | 'deny';
/** Who recorded it: the patient through the API, staff from a signed paper form, the migration from the earlier consents, or an import. */
export type ConsentSource = 'patient' | 'paper' | 'migrated' | 'imported';

/** The roles a consent of each scope may name as its actor (null: every role of the actor organization that the scope concerns). */
export const SCOPE_ROLES: Readonly<Record<ConsentScope, readonly Role[]>> = {
  'partner-sharing': ['partner'],
  research: ['researcher'],
  treatment: ['clinician', 'nurse', 'billing'],
};

/** The purposes a consent of each scope may name. */
export const SCOPE_PURPOSES: Readonly<Record<ConsentScope, readonly PurposeOfUse[]>> = {
  'partner-sharing': ['TREAT', 'HPAYMT'],
  research: ['HRESCH'],
  treatment: ['TREAT', 'ETREAT', 'HPAYMT'],
};

export interface ConsentProvision {
  id: string;
  patientId: string;
  scope: ConsentScope;
  decision: ConsentDecision;
  /** Whether it is in force at all: active as stored, and nothing in it this API cannot read (a damaged permit is in force for nobody). */
  status: 'active' | 'revoked';
  /** The status as stored: what a revocation changes, and what the API shows. */
  storedStatus: 'active' | 'revoked';
  /** The actor organization; null: any (research). */
  organizationId: string | null;
  /** The actor role; null: every role the scope concerns. */
  actorRole: Role | null;
  /** The purposes of use a permit covers (stored explicitly: never "any"); a deny covers every purpose. */
  purposes: PurposeOfUse[];
  /** The sensitive data it covers, by category; empty: the record without sensitive data. */
  sensitivities: Sensitivity[];
  periodStart: Date;
  periodEnd: Date | null;
  source: ConsentSource;
  recordedBy: string | null;
  recordedAt: Date | null;
  revokedAt: Date | null;
}

const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);
const texts = (value: unknown): string[] => (Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : []);
const instant = (value: unknown): Date | null => (value instanceof Date ? value : typeof value === 'string' || typeof value === 'number' ? new Date(value) : null);

/** A provision from a `consent` row as the driver returns it (unknown codes in its arrays left out: they grant nothing). */
export function consentFromRow(row: Readonly<Record<string, unknown>>): ConsentProvision {
  const knownScope = CONSENT_SCOPES.find((candidate) => candidate === row['scope']);
  const scope = knownScope ?? 'treatment';
  const role = text(row['actor_role']);
  const knownRole = role === null || (ROLES as readonly string[]).includes(role);
  const knownPurposes = texts(row['purposes']).every(isPurposeOfUse);
  // Anything but an explicit permit is read as a deny: a damaged row withholds, it never clears.
  const decision = row['decision'] === 'permit' ? 'permit' : 'deny';
  // A permit naming a role or purpose this API does not know would read as "every role" or "every purpose": it permits nothing instead.
  // So would a partner or treatment permit without its organization (the organization deleted): in force for nobody.
  const placed = scope === 'research' || text(row['organization_id']) !== null;
  const inForce = row['status'] === 'active' && (decision === 'deny' || (knownScope !== undefined && knownRole && knownPurposes && placed));
  return {
    id: text(row['id']) ?? '',
    patientId: text(row['patient_id']) ?? '',
    scope,
    decision,
    status: inForce ? 'active' : 'revoked',
    storedStatus: row['status'] === 'active' ? 'active' : 'revoked',
    organizationId: text(row['organization_id']),
    actorRole: role !== null && knownRole ? (role as Role) : null,
    purposes: texts(row['purposes']).filter(isPurposeOfUse),
    sensitivities: texts(row['sensitivities']).filter(isSensitivity),
    periodStart: instant(row['period_start']) ?? new Date(0),
    periodEnd: instant(row['period_end']),
    source: (['patient', 'paper', 'migrated', 'imported'] as const).find((candidate) => candidate === row['source']) ?? 'patient',
    recordedBy: text(row['recorded_by']),
    recordedAt: instant(row['recorded_at']),
    revokedAt: instant(row['revoked_at']),
  };
}

/** What a request is, for matching provisions: the caller's organization, the roles of the token that reach the patient, its purpose. */
export interface ConsentRequest {
  organizationId: string | null;
  roles: readonly Role[];
  purpose: PurposeOfUse | null;
}

/**
 * Whether a provision applies to a request now: in force, and naming the
 * request's organization, a role of it and its purpose. Where in doubt a
 * permit does not apply and a deny does: a request without an organization
 * is not the organization a permit names, but is kept from what a deny
 * names; a deny covers every purpose (emergency treatment without a grant
 * included); a permit covers only the purposes it lists.
 */
export function provisionApplies(provision: ConsentProvision, request: ConsentRequest, now: Date): boolean {
  if (provision.status !== 'active' || provision.periodStart > now || (provision.periodEnd !== null && provision.periodEnd <= now)) return false;
  const deny = provision.decision === 'deny';
  const requestOrganization = request.organizationId?.toLowerCase() ?? null;
  if (provision.organizationId !== null && provision.organizationId.toLowerCase() !== requestOrganization && !(deny && requestOrganization === null)) return false;
  const concerned = SCOPE_ROLES[provision.scope];
  const roles = request.roles.filter((role) => concerned.includes(role) && (provision.actorRole === null || provision.actorRole === role));
  if (roles.length === 0) return false;
  if (deny) return true;
  return request.purpose !== null && provision.purposes.includes(request.purpose);
}

/** The categories the patient's provisions clear for a request, and those they keep from it. */
export function consentEffect(provisions: readonly ConsentProvision[], request: ConsentRequest, now: Date): { permitted: Sensitivity[]; denied: Sensitivity[] } {
  const permitted = new Set<Sensitivity>();
  const denied = new Set<Sensitivity>();
  for (const provision of provisions) {
    if (!provisionApplies(provision, request, now)) continue;
    for (const category of provision.sensitivities) (provision.decision === 'permit' ? permitted : denied).add(category);
  }
  return { permitted: SENSITIVITIES.filter((category) => permitted.has(category)), denied: SENSITIVITIES.filter((category) => denied.has(category)) };
}

// --- FHIR R4 Consent ---------------------------------------------------------

const CONSENT_SCOPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/consentscope';
const CONSENT_CATEGORY_SYSTEM = 'http://loinc.org';
const ACT_REASON_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
const PARTICIPATION_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType';
const POLICY_SYSTEM = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
/** The API's own roles, as the code system of a provision actor's role. */
export const ROLE_SYSTEM = 'urn:phi-graph:role';
/** Where a consent came from, as an identifier system of the resource (its `source`). */
const SOURCE_SYSTEM = 'urn:phi-graph:consent-source';

const FHIR_SCOPE: Readonly<Record<ConsentScope, { code: string; display: string }>> = {
  'partner-sharing': { code: 'patient-privacy', display: 'Privacy Consent' },
  research: { code: 'research', display: 'Research' },
  treatment: { code: 'treatment', display: 'Treatment' },
};

export interface FhirConsent {
  resourceType: 'Consent';
  id: string;
  status: 'active' | 'inactive';
  scope: { coding: { system: string; code: string; display: string }[] };
  category: { coding: { system: string; code: string; display: string }[] }[];
  patient: { reference: string };
  dateTime?: string;
  organization?: { reference: string }[];
  identifier?: { system: string; value: string }[];
  policyRule: { coding: { system: string; code: string }[] };
  provision: {
    type: ConsentDecision;
    period: { start: string; end?: string };
    actor?: { role: { coding: { system: string; code: string }[] }; reference: { reference?: string; display?: string } }[];
    purpose?: { system: string; code: string }[];
    securityLabel?: { system: string; code: string; display: string }[];
  };
}

/** A provision as a FHIR R4 Consent resource (one provision; the actor's role under ROLE_SYSTEM). */
export function toFhirConsent(provision: ConsentProvision): FhirConsent {
  const actorRole = { coding: [{ system: PARTICIPATION_SYSTEM, code: 'IRCP' }, ...(provision.actorRole ? [{ system: ROLE_SYSTEM, code: provision.actorRole }] : [])] };
  return {
    resourceType: 'Consent',
    id: provision.id,
    status: provision.storedStatus === 'active' ? 'active' : 'inactive',
    scope: { coding: [{ system: CONSENT_SCOPE_SYSTEM, ...FHIR_SCOPE[provision.scope] }] },
    category: [{ coding: [{ system: CONSENT_CATEGORY_SYSTEM, code: '59284-0', display: 'Patient Consent' }] }],
    patient: { reference: `Patient/${provision.patientId}` },
    ...(provision.recordedAt && { dateTime: provision.recordedAt.toISOString() }),
    identifier: [{ system: SOURCE_SYSTEM, value: provision.source }],
    policyRule: { coding: [{ system: POLICY_SYSTEM, code: provision.decision === 'permit' ? 'OPTIN' : 'OPTOUT' }] },
    provision: {
      type: provision.decision,
      period: { start: provision.periodStart.toISOString(), ...(provision.periodEnd && { end: provision.periodEnd.toISOString() }) },
      actor: [{ role: actorRole, reference: provision.organizationId ? { reference: `Organization/${provision.organizationId}` } : { display: 'any organization' } }],
      ...(provision.purposes.length > 0 && { purpose: provision.purposes.map((code) => ({ system: ACT_REASON_SYSTEM, code })) }),
      ...(provision.sensitivities.length > 0 && {
        securityLabel: provision.sensitivities.map((code) => ({ system: ACT_CODE_SYSTEM, code, display: SENSITIVITY_TEXT[code] })),
      }),
    },
  };
}

/** What an imported Consent asks for, before it is checked against the patient and the directory like any other (consent-writes.ts). */
export interface ConsentTerms {
  scope: ConsentScope;
  decision: ConsentDecision;
  organizationId: string | null;
  actorRole: Role | null;
  purposes: PurposeOfUse[];
  sensitivities: Sensitivity[];
  periodStart: Date | null;
  periodEnd: Date | null;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; problems: { field: string; message: string }[] };

type Json = Record<string, unknown>;
const asObject = (value: unknown): Json | null => (value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : null);
const asArray = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
const codings = (value: unknown): Json[] => asArray(asObject(value)?.['coding']).flatMap((item) => (asObject(item) ? [asObject(item) as Json] : []));
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Reads one FHIR R4 Consent resource of `patientId`, as `toFhirConsent`
 * writes it (one provision, one actor). Anything it cannot place exactly
 * is a problem named by its path, never guessed: an unknown scope,
 * purpose, label or role, another patient, nested provisions.
 */
export function fromFhirConsent(resource: unknown, patientId: string, path: string): Parsed<ConsentTerms> {
  const problems: { field: string; message: string }[] = [];
  const problem = (field: string, message: string) => problems.push({ field: `${path}.${field}`, message });
  const consent = asObject(resource);
  if (!consent || consent['resourceType'] !== 'Consent') return { ok: false, problems: [{ field: path, message: 'Not a FHIR Consent resource.' }] };
  if (consent['status'] !== 'active') problem('status', 'Only an active consent can be imported.');
  const patient = asObject(consent['patient'])?.['reference'];
  if (patient !== `Patient/${patientId}`) problem('patient', 'Not a consent of this patient.');
  const scopeCode = codings(consent['scope']).find((coding) => coding['system'] === CONSENT_SCOPE_SYSTEM)?.['code'];
  const scope = CONSENT_SCOPES.find((candidate) => FHIR_SCOPE[candidate].code === scopeCode);
  if (!scope) problem('scope', `Use a consentscope code: ${CONSENT_SCOPES.map((candidate) => FHIR_SCOPE[candidate].code).join(', ')}.`);
  const provision = asObject(consent['provision']);
  if (!provision) return { ok: false, problems: [...problems, { field: `${path}.provision`, message: 'A provision is required.' }] };
  // What this API cannot enforce is refused, never dropped: a consent narrowed to some data or actions would be imported wider.
  for (const key of Object.keys(provision)) {
    if (!PROVISION_KEYS.has(key)) problem(`provision.${key}`, `Not supported (${[...PROVISION_KEYS].join(', ')}): import one provision, about sensitive data by category.`);
  }
  const decision = provision['type'];
  if (decision !== 'permit' && decision !== 'deny') problem('provision.type', 'Use permit or deny.');
  const period = provision['period'] === undefined ? {} : asObject(provision['period']);
  if (!period) problem('provision.period', 'Not a Period.');
  const date = (value: unknown, field: string): Date | null => {
    if (value === undefined) return null;
    if (typeof value !== 'string' || !FHIR_DATE_TIME.test(value) || Number.isNaN(Date.parse(value))) {
      problem(field, 'A FHIR dateTime with a time zone, e.g. 2026-12-01T09:30:00Z.');
      return null;
    }
    return new Date(value);
  };
  const periodStart = date(period?.['start'], 'provision.period.start');
  const periodEnd = date(period?.['end'], 'provision.period.end');
  const list = (key: string): unknown[] => {
    const value = provision[key];
    if (value === undefined) return [];
    if (!Array.isArray(value)) problem(`provision.${key}`, 'An array.');
    return asArray(value);
  };
  const actors = list('actor');
  if (actors.length > 1) problem('provision.actor', 'One actor per provision.');
  const actor = actors.length > 0 ? asObject(actors[0]) : null;
  if (actors.length > 0 && !actor) problem('provision.actor[0]', 'Not an actor.');
  const reference = asObject(actor?.['reference'])?.['reference'];
  let organizationId: string | null = null;
  if (reference !== undefined) {
    const [type, id] = typeof reference === 'string' ? reference.split('/') : [];
    if (type !== 'Organization' || !id || !UUID.test(id)) problem('provision.actor[0].reference', 'Reference an Organization by id.');
    else organizationId = id.toLowerCase();
  }
  let actorRole: Role | null = null;
  for (const coding of codings(actor?.['role'])) {
    if (coding['system'] === PARTICIPATION_SYSTEM && coding['code'] === 'IRCP') continue;
    const code = coding['code'];
    if (coding['system'] === ROLE_SYSTEM && typeof code === 'string' && (ROLES as readonly string[]).includes(code) && actorRole === null) actorRole = code as Role;
    else problem('provision.actor[0].role', `Name the role with ${ROLE_SYSTEM} (one of this API's roles); another role code cannot be enforced.`);
  }
  const purposes: PurposeOfUse[] = [];
  list('purpose').forEach((item, index) => {
    const coding = asObject(item);
    if (coding?.['system'] === ACT_REASON_SYSTEM && isPurposeOfUse(coding['code'])) purposes.push(coding['code']);
    else problem(`provision.purpose[${index}]`, `A purpose of use this API knows, system ${ACT_REASON_SYSTEM}.`);
  });
  const sensitivities: Sensitivity[] = [];
  list('securityLabel').forEach((item, index) => {
    const coding = asObject(item);
    if (coding?.['system'] === ACT_CODE_SYSTEM && isSensitivity(coding['code'])) sensitivities.push(coding['code']);
    else problem(`provision.securityLabel[${index}]`, `Use a sensitivity category (${SENSITIVITIES.join(', ')}), system ${ACT_CODE_SYSTEM}.`);
  });
  if (problems.length > 0 || !scope || (decision !== 'permit' && decision !== 'deny')) return { ok: false, problems };
  return { ok: true, value: { scope, decision, organizationId, actorRole, purposes: [...new Set(purposes)], sensitivities: [...new Set(sensitivities)], periodStart, periodEnd } };
}

/** The provision keys this API enforces. */
const PROVISION_KEYS: ReadonlySet<string> = new Set(['type', 'period', 'actor', 'purpose', 'securityLabel']);
/** FHIR dateTime to the second or finer, with a time zone (a date alone would be read in the server's zone). */
const FHIR_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
