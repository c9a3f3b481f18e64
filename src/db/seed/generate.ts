/**
 * Pure, deterministic generation of synthetic rows (no database access).
 *
 * `generateDirectory` builds the small, shared part (organizations,
 * practitioners, care teams, staff accounts). `generatePatient` builds one
 * patient with every child row from its own random stream, keyed by
 * (seed, patient index): the rows of patient i never depend on the batch size
 * or on the other patients, so any batch can be generated on its own and the
 * whole data set is reproducible byte for byte. Consents come from a second
 * per-patient stream, so they never shift the draws of the other tables.
 *
 * Rows use the database column names (snake_case) and plain domain values
 * (arrays, names in parts); stored.ts turns them into their stored form (PHI
 * columns as text or JSON, then encrypted) before they are written. Dates
 * are 'YYYY-MM-DD' strings; instants are ISO 8601 UTC strings derived from
 * SEED_EPOCH_MS, never from the clock. Encryption happens after generation,
 * so the generated plaintext stays byte for byte reproducible.
 */
import { ROLES, type Role } from '../../auth/index.js';
import { labelsOfCodes, noteLabels } from '../../policy/sensitivity.js';
import { CodeSystem } from '../../subgraphs/codes.js';
import { Permutation, Random, at, seedWords, type Weighted } from './random.js';
import {
  AGE_BANDS,
  ALLERGENS,
  ALLERGY_REACTIONS,
  ANAPHYLAXIS,
  CARE_TEAM_SERVICES,
  CONDITIONS,
  ENCOUNTER_CLASSES,
  ENCOUNTER_TYPES,
  FAMILY_NAMES,
  FEMALE_GIVEN_NAMES,
  GENDERS,
  HEALTH_PLANS,
  MALE_GIVEN_NAMES,
  NOTE_PHRASES,
  NOTE_TYPES,
  OBSERVATIONS,
  OVER_THE_COUNTER_MEDICATIONS,
  PARTNER_ORGANIZATIONS,
  PAYER_ORGANIZATIONS,
  PROVIDER_ORGANIZATIONS,
  SECONDARY_ADDRESS_UNITS,
  STREET_NAMES,
  STREET_SUFFIXES,
  type CareTeamServiceDefinition,
  type City,
  type Coding,
  type ConditionDefinition,
  type EncounterClass,
  type Measure,
  type MedicationDefinition,
  type PartnerKind,
} from './vocabulary.js';

// ---------------------------------------------------------------------------
// Rows, one type per table (column names as in the migration)
// ---------------------------------------------------------------------------

export type Gender = 'male' | 'female' | 'other' | 'unknown';
export type Qualification = 'physician' | 'nurse' | 'billing_specialist';
export type EncounterStatus = 'planned' | 'in_progress' | 'finished' | 'cancelled';
export type ClaimStatus = 'draft' | 'submitted' | 'accepted' | 'denied' | 'paid';
export type InvoiceStatus = 'issued' | 'partially_paid' | 'paid' | 'cancelled';
export type PaymentMethod = 'card' | 'ach' | 'check' | 'insurance';

export type OrganizationRow = {
  id: string;
  name: string;
  type: 'provider' | 'payer' | 'partner';
  /** A partner's sharing agreement (data categories); empty for providers and payers. */
  shared_categories: string[];
};
export type PractitionerRow = {
  id: string;
  organization_id: string;
  given_names: string[];
  family_name: string;
  npi: string;
  qualification: Qualification;
};
export type CareTeamRow = { id: string; organization_id: string; name: string };
export type CareTeamMemberRow = { care_team_id: string; practitioner_id: string };
export type PatientRow = {
  id: string;
  mrn: string;
  given_names: string[];
  family_name: string;
  birth_date: string | null;
  gender: Gender;
  ssn: string | null;
  address_lines: string[] | null;
  city: string | null;
  state: string | null;
  postal_code: string | null;
  phone: string | null;
  email: string | null;
  managing_organization_id: string;
  care_team_id: string | null;
};
export type EncounterRow = {
  id: string;
  patient_id: string;
  status: EncounterStatus;
  class: EncounterClass;
  type_code: string;
  type_display: string;
  period_start: string;
  period_end: string | null;
  practitioner_id: string | null;
};
export type ConditionRow = {
  id: string;
  patient_id: string;
  encounter_id: string | null;
  code: string;
  display: string;
  clinical_status: 'active' | 'recurrence' | 'inactive' | 'resolved';
  onset_date: string | null;
  recorded_date: string;
  /** Sensitivity labels (src/policy/sensitivity.ts), from the code. */
  security_labels: string[];
};
export type MedicationRequestRow = {
  id: string;
  patient_id: string;
  rxnorm_code: string;
  display: string;
  dosage_instruction: string;
  status: 'active' | 'completed' | 'stopped' | 'cancelled';
  authored_on: string;
  requester_id: string | null;
  security_labels: string[];
};
export type ObservationRow = {
  id: string;
  patient_id: string;
  encounter_id: string | null;
  loinc_code: string;
  display: string;
  value: string;
  unit: string;
  effective_at: string;
};
export type AllergyIntoleranceRow = {
  id: string;
  patient_id: string;
  snomed_code: string;
  display: string;
  criticality: 'low' | 'high' | 'unable_to_assess';
  reaction: string | null;
  recorded_date: string;
};
export type ClinicalNoteRow = {
  id: string;
  patient_id: string;
  encounter_id: string | null;
  author_id: string | null;
  type_code: string;
  type_display: string;
  text: string;
  created_at: string;
  /** Its encounter's diagnoses' labels and those of the codes it names. */
  security_labels: string[];
};
export type CoverageRow = {
  id: string;
  patient_id: string;
  payer: string;
  member_id: string;
  plan: string;
  status: 'active' | 'cancelled';
  period_start: string;
  period_end: string | null;
};
export type ClaimRow = {
  id: string;
  patient_id: string;
  coverage_id: string | null;
  encounter_id: string | null;
  status: ClaimStatus;
  total_cents: number;
  currency: string;
  diagnosis_codes: string[];
  created_at: string;
  /** The labels of its diagnosis codes. */
  security_labels: string[];
};
export type InvoiceRow = {
  id: string;
  patient_id: string;
  claim_id: string | null;
  status: InvoiceStatus;
  total_cents: number;
  balance_cents: number;
  currency: string;
  issued_at: string;
};
export type PaymentRow = {
  id: string;
  patient_id: string;
  invoice_id: string;
  amount_cents: number;
  currency: string;
  method: PaymentMethod;
  received_at: string;
};
export type ConsentScope = 'partner-sharing' | 'research' | 'treatment';
export type ConsentStatus = 'active' | 'revoked';
export type ConsentRow = {
  id: string;
  patient_id: string;
  /** The partner organization data may be shared with; null for research consents. */
  organization_id: string | null;
  scope: ConsentScope;
  status: ConsentStatus;
  period_start: string;
  period_end: string | null;
  /** A provision (src/policy/consent.ts): permit or deny, the actor role, purposes and sensitivity categories. */
  decision: 'permit' | 'deny';
  actor_role: string | null;
  purposes: string[];
  sensitivities: string[];
  source: 'patient' | 'paper';
  recorded_by: string | null;
  recorded_at: string | null;
  revoked_at: string | null;
};
export type AppUserRow = {
  id: string;
  subject: string;
  roles: string[];
  organization_id: string | null;
  practitioner_id: string | null;
  patient_id: string | null;
};

/** Rows by table, in an order that satisfies every foreign key. */
export interface SeedRows {
  organization: OrganizationRow[];
  practitioner: PractitionerRow[];
  care_team: CareTeamRow[];
  care_team_member: CareTeamMemberRow[];
  patient: PatientRow[];
  encounter: EncounterRow[];
  condition: ConditionRow[];
  medication_request: MedicationRequestRow[];
  observation: ObservationRow[];
  allergy_intolerance: AllergyIntoleranceRow[];
  clinical_note: ClinicalNoteRow[];
  coverage: CoverageRow[];
  claim: ClaimRow[];
  invoice: InvoiceRow[];
  payment: PaymentRow[];
  consent: ConsentRow[];
  app_user: AppUserRow[];
}
export type TableName = keyof SeedRows;
export type SeedRow = SeedRows[TableName][number];

/** Every table, in foreign-key order (the order of SeedRows). Stored column lists: stored.ts. */
export const TABLE_NAMES = Object.keys(emptyRows()) as TableName[];

export function emptyRows(): SeedRows {
  return {
    organization: [],
    practitioner: [],
    care_team: [],
    care_team_member: [],
    patient: [],
    encounter: [],
    condition: [],
    medication_request: [],
    observation: [],
    allergy_intolerance: [],
    clinical_note: [],
    coverage: [],
    claim: [],
    invoice: [],
    payment: [],
    consent: [],
    app_user: [],
  };
}

/** Appends every row of `source` to `target`, table by table. */
export function appendRows(target: SeedRows, source: Partial<SeedRows>): void {
  for (const table of TABLE_NAMES) {
    const rows = source[table];
    if (rows) (target[table] as SeedRow[]).push(...rows);
  }
}

// ---------------------------------------------------------------------------
// Limits and distributions
// ---------------------------------------------------------------------------

export const DEFAULT_SEED = 20261125;
/** "Now" for the generated data: every past event is before it, planned ones after. */
export const SEED_EPOCH_MS = Date.UTC(2026, 0, 1);
const SEED_EPOCH_YEAR = 2026;
const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
const CLINICAL_HISTORY_DAYS = 5 * 365;
/** Past encounters start at least this long before the epoch, so even long stays have ended. */
const LATEST_ENCOUNTER_DAYS_AGO = 10;
/** The patient-local clinic day, expressed in UTC hours (clinics are on US time). */
const CLINIC_FIRST_HOUR_UTC = 13;
const CLINIC_LAST_HOUR_UTC = 22;

const MRN_SPACE = 90_000_000;
const MRN_FIRST = 10_000_000;
const SSN_AREA_FIRST = 900; // 900-999 are never issued
const SSN_AREAS = 100;
const SSN_GROUPS = 99; // 01-99
const SSN_SERIALS = 9_999; // 0001-9999
const SSN_SPACE = SSN_AREAS * SSN_GROUPS * SSN_SERIALS;
const NPI_BODY_SPACE = 100_000_000;
/** Largest patient count the unique identifier spaces (MRN, SSN) allow comfortably. */
export const MAX_PATIENTS = 1_000_000;
export const NPI_PREFIX = '80840';

/** Patients per care team the directory aims for, and the bounds on teams per provider. */
const PATIENTS_PER_CARE_TEAM = 150;
const MIN_CARE_TEAMS_PER_PROVIDER = 2;
const MAX_CARE_TEAMS_PER_PROVIDER = 60;
const MIN_HOSPITALISTS_PER_PROVIDER = 2;
const CARE_TEAMS_PER_EXTRA_HOSPITALIST = 8;
const CARE_TEAMS_PER_EXTRA_BILLING_SPECIALIST = 10;
const SHARED_NURSE_SHARE = 0.3;

const NO_CARE_TEAM_SHARE = 0.04;
/** Every patient whose index is congruent to OVER_89_OFFSET modulo this is 90 or older (so small data sets have some). */
const OVER_89_EVERY = 50;
const OVER_89_OFFSET = 12;
const MISSING_SSN_SHARE = 0.04;
const MISSING_ADDRESS_SHARE = 0.02;
const MISSING_PHONE_SHARE = 0.03;
const MISSING_EMAIL_SHARE = 0.08;
const MIDDLE_NAME_SHARE = 0.3;
const SECOND_ADDRESS_LINE_SHARE = 0.15;
const NO_PRACTITIONER_SHARE = 0.02;
const NURSE_VISIT_SHARE = 0.2;
const ENCOUNTER_LINKED_SHARE = 0.75;
const MEDICATION_PER_CONDITION_SHARE = 0.9;
const OVER_THE_COUNTER_SHARE = 0.4;
const OBSERVATION_IN_ENCOUNTER_SHARE = 0.85;
const MISSING_ONSET_SHARE = 0.1;
const MISSING_REACTION_SHARE = 0.1;
const CLAIM_PER_ENCOUNTER_SHARE = 0.75;
const MAX_DIAGNOSIS_CODES = 4;
const MIN_PATIENT_SHARE_CENTS = 1_500;
/** Invoices issued more recently than this are still open. */
const INVOICE_GRACE_DAYS = 5;
const CURRENCY = 'USD';

const ENCOUNTER_COUNTS: Weighted<number> = [[1, 15], [2, 20], [3, 30], [4, 20], [5, 15]];
const CONDITION_COUNTS: Weighted<number> = [[1, 35], [2, 35], [3, 20], [4, 10]];
const OBSERVATION_COUNTS: Weighted<number> = [[3, 15], [4, 25], [5, 25], [6, 20], [7, 15]];
const ALLERGY_COUNTS: Weighted<number> = [[0, 30], [1, 45], [2, 20], [3, 5]];
const NOTE_COUNTS: Weighted<number> = [[1, 30], [2, 45], [3, 25]];
const INVOICE_COUNTS: Weighted<number> = [[1, 55], [2, 45]];
const COVERAGE_HISTORIES: Weighted<'none' | 'single' | 'switched'> = [['none', 4], ['single', 86], ['switched', 10]];

const LATEST_ENCOUNTER_STATUSES: Weighted<EncounterStatus> = [['finished', 84], ['planned', 10], ['in_progress', 2], ['cancelled', 4]];
const EARLIER_ENCOUNTER_STATUSES: Weighted<EncounterStatus> = [['finished', 95], ['cancelled', 5]];
const CHRONIC_CONDITION_STATUSES: Weighted<ConditionRow['clinical_status']> = [['active', 85], ['recurrence', 4], ['inactive', 6], ['resolved', 5]];
const ACUTE_CONDITION_STATUSES: Weighted<ConditionRow['clinical_status']> = [['resolved', 70], ['active', 22], ['recurrence', 8]];
const CHRONIC_MEDICATION_STATUSES: Weighted<MedicationRequestRow['status']> = [['active', 78], ['stopped', 9], ['completed', 8], ['cancelled', 5]];
const ACUTE_MEDICATION_STATUSES: Weighted<MedicationRequestRow['status']> = [['completed', 82], ['active', 12], ['cancelled', 6]];
const ALLERGY_CRITICALITIES: Weighted<AllergyIntoleranceRow['criticality']> = [['low', 70], ['high', 15], ['unable_to_assess', 15]];
const CLAIM_STATUSES: Weighted<ClaimStatus> = [['paid', 52], ['accepted', 20], ['submitted', 15], ['denied', 8], ['draft', 5]];
const INVOICE_OUTCOMES: Weighted<InvoiceStatus> = [['paid', 55], ['partially_paid', 20], ['issued', 20], ['cancelled', 5]];
const PAYMENT_METHODS: Weighted<PaymentMethod> = [['card', 45], ['insurance', 25], ['ach', 20], ['check', 10]];
const INSTALLMENT_SHARE = 0.2;
const MEDICAID_SHARE = 0.1;
const MEDICARE_AGE = 65;

/*
 * Consents. Unlike the other tables they are read against the real clock (the
 * partner and researcher row scopes compare their periods with now()), so
 * every period is unambiguous for any run from mid-2026 on: starts fall between
 * 2020-01-01 and 2026-06-30, except not-yet-valid ones (in FAR_FUTURE_YEAR);
 * ends are null, before the epoch (expired) or in FAR_FUTURE_YEAR.
 */
const RESEARCH_CONSENT_SHARE = 0.6;
const PARTNER_CONSENT_SHARE = 0.35;
/** Of patients with a substance use disorder diagnosis, those who signed a consent for their provider's treating roles to read it. */
const SUD_TREATMENT_CONSENT_SHARE = 0.4;
/** What a drawn consent turns out to be: valid now, expired, not yet valid, or revoked (period covering now). */
type ConsentOutcome = 'valid' | 'expired' | 'pending' | 'revoked';
const RESEARCH_CONSENT_OUTCOMES: Weighted<ConsentOutcome> = [['valid', 84], ['expired', 6], ['revoked', 10]];
const PARTNER_CONSENT_OUTCOMES: Weighted<ConsentOutcome> = [['valid', 80], ['expired', 5], ['pending', 5], ['revoked', 10]];
/** Share of valid consents that already carry an end date (far in the future). */
const BOUNDED_CONSENT_SHARE = 0.1;
const CONSENT_FIRST_START_MS = Date.UTC(SEED_EPOCH_YEAR - 6, 0, 1);
const CONSENT_LAST_START_MS = Date.UTC(SEED_EPOCH_YEAR, 5, 30);
/** Expired consents ran at least this long and ended before the epoch. */
const MIN_EXPIRED_CONSENT_DAYS = 30;
const FAR_FUTURE_YEAR = 2099;
const FAR_FUTURE_MS = Date.UTC(FAR_FUTURE_YEAR, 0, 1);

/** Claim totals in cents by encounter class: [minimum, maximum]. */
const CLAIM_TOTAL_CENTS: Record<EncounterClass, readonly [number, number]> = {
  ambulatory: [9_500, 32_000],
  virtual: [6_000, 15_000],
  emergency: [85_000, 450_000],
  inpatient: [850_000, 4_500_000],
};
/** Encounter length in minutes by class: [minimum, maximum]. */
const ENCOUNTER_MINUTES: Record<EncounterClass, readonly [number, number]> = {
  ambulatory: [15, 60],
  virtual: [10, 30],
  emergency: [120, 480],
  inpatient: [1 * 24 * 60, 7 * 24 * 60],
};

/** Independent random streams under one seed. */
const STREAM_DIRECTORY = 1;
const STREAM_IDENTIFIERS = 2;
const STREAM_PATIENT = 3;
/** Per patient, keyed by (seed, STREAM_CONSENT, index): consents never shift the draws of the other tables. */
const STREAM_CONSENT = 4;
/** Per patient, for the consents added to the sample patient (see sampleConsents). */
const STREAM_SAMPLE_CONSENT = 5;

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function isoInstant(ms: number): string {
  return new Date(ms).toISOString();
}

function startOfDay(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

function parseInstant(iso: string): number {
  return Date.parse(iso);
}

/** A time during clinic hours, at a quarter hour, on the day of `dayMs`. */
function clinicTime(random: Random, dayMs: number): number {
  return startOfDay(dayMs) + random.int(CLINIC_FIRST_HOUR_UTC, CLINIC_LAST_HOUR_UTC - 1) * HOUR_MS + random.int(0, 3) * 15 * MINUTE_MS;
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

function fitsAge(age: number, limits: { minAge?: number; maxAge?: number }): boolean {
  return age >= (limits.minAge ?? 0) && age <= (limits.maxAge ?? Infinity);
}

function asciiLower(text: string): string {
  return text.toLowerCase().replace(/[^a-z]/g, '');
}

/** Luhn check digit of a digit string (the digit that would be appended). */
export function luhnCheckDigit(payload: string): number {
  let sum = 0;
  for (let position = 0; position < payload.length; position++) {
    let digit = Number(payload[payload.length - 1 - position]);
    if (position % 2 === 0) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return (10 - (sum % 10)) % 10;
}

/** A 10-digit NPI from its first nine digits; the check digit covers the 80840 prefix, as CMS specifies. */
export function npiFromBody(nineDigits: string): string {
  return `${nineDigits}${luhnCheckDigit(`${NPI_PREFIX}${nineDigits}`)}`;
}

export function isValidNpi(npi: string): boolean {
  return /^[12]\d{9}$/.test(npi) && npiFromBody(npi.slice(0, 9)) === npi;
}

export function practitionerSubject(practitionerId: string): string {
  return `practitioner:${practitionerId}`;
}

export function patientSubject(patientId: string): string {
  return `patient:${patientId}`;
}

// ---------------------------------------------------------------------------
// Directory: organizations, practitioners, care teams, staff accounts
// ---------------------------------------------------------------------------

export interface CareTeamPlan {
  id: string;
  service: CareTeamServiceDefinition;
  physicianIds: string[];
  nurseIds: string[];
}

export interface ProviderDirectory {
  organization: OrganizationRow;
  weight: number;
  cities: readonly City[];
  careTeams: CareTeamPlan[];
  /** Every physician of the organization (care teams and hospitalists). */
  physicianIds: string[];
  /** Physicians for emergency and inpatient care. */
  hospitalistIds: string[];
  billingSpecialistIds: string[];
}

export const STAFF_ROLES = ['researcher', 'auditor', 'admin', 'integrator', 'privacyOfficer'] as const;
export type StaffRole = (typeof STAFF_ROLES)[number];

export interface Directory {
  seed: number;
  /** The directory's own rows, inserted with the first batch of patients. */
  rows: SeedRows;
  providers: ProviderDirectory[];
  payers: OrganizationRow[];
  /** In the order of PARTNER_ORGANIZATIONS. */
  partners: OrganizationRow[];
  staffAccounts: Record<StaffRole, AppUserRow>;
  /** One per partner organization, in the same order. */
  partnerAccounts: AppUserRow[];
  identifiers: { mrn: Permutation; ssn: Permutation };
}

class DirectoryBuilder {
  readonly rows = emptyRows();
  private readonly npi: Permutation;

  constructor(
    private readonly random: Random,
    identifiers: Random,
  ) {
    this.npi = new Permutation(NPI_BODY_SPACE, identifiers);
  }

  organization(name: string, type: OrganizationRow['type'], sharedCategories: readonly string[] = []): OrganizationRow {
    const row: OrganizationRow = { id: this.random.uuid(), name, type, shared_categories: [...sharedCategories] };
    this.rows.organization.push(row);
    return row;
  }

  practitioner(organization: OrganizationRow, qualification: Qualification): string {
    const random = this.random;
    const female = random.chance(0.5);
    const names = female ? FEMALE_GIVEN_NAMES : MALE_GIVEN_NAMES;
    const givenNames = random.chance(MIDDLE_NAME_SHARE) ? random.sample(names, 2) : [random.pick(names)];
    const body = `1${String(this.npi.at(this.rows.practitioner.length)).padStart(8, '0')}`;
    const row: PractitionerRow = {
      id: random.uuid(),
      organization_id: organization.id,
      given_names: givenNames,
      family_name: random.pick(FAMILY_NAMES),
      npi: npiFromBody(body),
      qualification,
    };
    this.rows.practitioner.push(row);
    this.account(practitionerSubject(row.id), [ROLE_BY_QUALIFICATION[qualification]], organization.id, row.id);
    return row.id;
  }

  careTeam(organization: OrganizationRow, position: number, previous: CareTeamPlan | undefined): CareTeamPlan {
    const random = this.random;
    const service = at(CARE_TEAM_SERVICES, position % CARE_TEAM_SERVICES.length);
    const number = Math.floor(position / CARE_TEAM_SERVICES.length) + 1;
    const row: CareTeamRow = { id: random.uuid(), organization_id: organization.id, name: `${service.name} Team ${number}` };
    this.rows.care_team.push(row);
    const physicianIds = Array.from({ length: random.int(1, 2) }, () => this.practitioner(organization, 'physician'));
    const nurseCount = random.int(1, 2);
    const nurseIds = [this.practitioner(organization, 'nurse')];
    if (nurseCount === 2) {
      const shared = previous && random.chance(SHARED_NURSE_SHARE) ? previous.nurseIds[0] : undefined;
      nurseIds.push(shared ?? this.practitioner(organization, 'nurse'));
    }
    for (const practitionerId of [...physicianIds, ...nurseIds]) {
      this.rows.care_team_member.push({ care_team_id: row.id, practitioner_id: practitionerId });
    }
    return { id: row.id, service, physicianIds, nurseIds };
  }

  account(subject: string, roles: string[], organizationId: string | null, practitionerId: string | null = null): AppUserRow {
    const row: AppUserRow = {
      id: this.random.uuid(),
      subject,
      roles,
      organization_id: organizationId,
      practitioner_id: practitionerId,
      patient_id: null,
    };
    this.rows.app_user.push(row);
    return row;
  }
}

const ROLE_BY_QUALIFICATION: Record<Qualification, DevelopmentRole> = {
  physician: 'clinician',
  nurse: 'nurse',
  billing_specialist: 'billing',
};

function careTeamCount(patientCount: number, share: number): number {
  return clamp(Math.ceil((patientCount * share) / PATIENTS_PER_CARE_TEAM), MIN_CARE_TEAMS_PER_PROVIDER, MAX_CARE_TEAMS_PER_PROVIDER);
}

function buildProvider(
  builder: DirectoryBuilder,
  definition: (typeof PROVIDER_ORGANIZATIONS)[number],
  share: number,
  patientCount: number,
): ProviderDirectory {
  const organization = builder.organization(definition.name, 'provider');
  const careTeams: CareTeamPlan[] = [];
  const teamCount = careTeamCount(patientCount, share);
  for (let position = 0; position < teamCount; position++) {
    careTeams.push(builder.careTeam(organization, position, careTeams.at(-1)));
  }
  const hospitalistCount = MIN_HOSPITALISTS_PER_PROVIDER + Math.floor(teamCount / CARE_TEAMS_PER_EXTRA_HOSPITALIST);
  const hospitalistIds = Array.from({ length: hospitalistCount }, () => builder.practitioner(organization, 'physician'));
  const billingCount = 1 + Math.ceil(teamCount / CARE_TEAMS_PER_EXTRA_BILLING_SPECIALIST);
  const billingSpecialistIds = Array.from({ length: billingCount }, () => builder.practitioner(organization, 'billing_specialist'));
  return {
    organization,
    weight: definition.weight,
    cities: definition.cities,
    careTeams,
    physicianIds: [...careTeams.flatMap((team) => team.physicianIds), ...hospitalistIds],
    hospitalistIds,
    billingSpecialistIds,
  };
}

/** The shared part of the data set; its size grows slowly with the number of patients. */
export function generateDirectory(seed: number, patientCount: number): Directory {
  const random = new Random(...seedWords(seed), STREAM_DIRECTORY);
  const identifiers = new Random(...seedWords(seed), STREAM_IDENTIFIERS);
  const builder = new DirectoryBuilder(random, identifiers);
  const totalWeight = PROVIDER_ORGANIZATIONS.reduce((sum, definition) => sum + definition.weight, 0);
  const providers = PROVIDER_ORGANIZATIONS.map((definition) =>
    buildProvider(builder, definition, definition.weight / totalWeight, patientCount),
  );
  const payers = PAYER_ORGANIZATIONS.map((payer) => builder.organization(payer.name, 'payer'));
  const partners = PARTNER_ORGANIZATIONS.map((partner) => builder.organization(partner.name, 'partner', partner.sharedCategories));
  const home = at(providers, 0).organization.id;
  const staffAccounts = {
    researcher: builder.account('staff:researcher-1', ['researcher'], home),
    auditor: builder.account('staff:auditor-1', ['auditor'], home),
    admin: builder.account('staff:admin-1', ['admin'], home),
    integrator: builder.account('staff:integrator-1', ['integrator'], home),
    privacyOfficer: builder.account('staff:privacy-officer-1', ['privacyOfficer'], home),
  } satisfies Record<StaffRole, AppUserRow>;
  const partnerAccounts = partners.map((partner) => builder.account(`partner:${partner.id}`, ['partner'], partner.id));
  return {
    seed,
    rows: builder.rows,
    providers,
    payers,
    partners,
    staffAccounts,
    partnerAccounts,
    identifiers: { mrn: new Permutation(MRN_SPACE, identifiers), ssn: new Permutation(SSN_SPACE, identifiers) },
  };
}

// ---------------------------------------------------------------------------
// Patients
// ---------------------------------------------------------------------------

/** The tables a patient has rows in. */
export const PATIENT_TABLES = [
  'patient',
  'encounter',
  'condition',
  'medication_request',
  'observation',
  'allergy_intolerance',
  'clinical_note',
  'coverage',
  'claim',
  'invoice',
  'payment',
  'consent',
  'app_user',
] as const satisfies readonly TableName[];
export type PatientRows = Pick<SeedRows, (typeof PATIENT_TABLES)[number]>;

interface BodyProfile {
  heightCm: number;
  weightKg: number;
}

interface PatientContext {
  random: Random;
  patientId: string;
  provider: ProviderDirectory;
  careTeam: CareTeamPlan | null;
  gender: Gender;
  ageYears: number;
  birthMs: number;
  /** First day clinical events may happen on. */
  historyStartMs: number;
  /** Last day past encounters may start on. */
  historyEndMs: number;
  body: BodyProfile;
  conditionCodes: Set<string>;
}

interface GeneratedCondition {
  row: ConditionRow;
  definition: ConditionDefinition;
}

function drawAge(random: Random, index: number): number {
  if (index % OVER_89_EVERY === OVER_89_OFFSET) return random.int(90, 100);
  const [youngest, oldest] = random.weighted(AGE_BANDS);
  return random.int(youngest, oldest);
}

/** Born so that the age on the epoch is `ageYears`, never on the epoch day itself. */
function drawBirth(random: Random, ageYears: number): number {
  return Date.UTC(SEED_EPOCH_YEAR - ageYears - 1, 0, 1) + random.int(1, 363) * DAY_MS;
}

function randomDay(random: Random, context: PatientContext): number {
  return context.historyStartMs + random.int(0, Math.max(0, (context.historyEndMs - context.historyStartMs) / DAY_MS)) * DAY_MS;
}

function drawBody(random: Random, gender: Gender, ageYears: number): BodyProfile {
  const femaleScale = gender === 'female' ? 0.95 : 1;
  let heightCm: number;
  let bmi: number;
  if (ageYears < 18) {
    const growth = 50 + 25 * Math.min(ageYears, 1) + 12 * clamp(ageYears - 1, 0, 1) + 5.8 * Math.max(0, ageYears - 2);
    heightCm = random.normal(growth * femaleScale, growth * 0.04, 45, 200);
    bmi = random.normal(17, 2, 12, 32);
  } else {
    const mean = gender === 'female' ? 162 : gender === 'male' ? 176 : 169;
    heightCm = random.normal(mean, 7, 140, 205);
    bmi = random.normal(27.5, 5, 16, 50);
  }
  const heightM = heightCm / 100;
  return { heightCm, weightKg: bmi * heightM * heightM };
}

function givenNamesFor(random: Random, gender: Gender): string[] {
  const names =
    gender === 'female' ? FEMALE_GIVEN_NAMES : gender === 'male' ? MALE_GIVEN_NAMES : random.pick([FEMALE_GIVEN_NAMES, MALE_GIVEN_NAMES]);
  return random.chance(MIDDLE_NAME_SHARE) ? random.sample(names, 2) : [random.pick(names)];
}

function formatSsn(ordinal: number): string {
  const area = SSN_AREA_FIRST + Math.floor(ordinal / (SSN_GROUPS * SSN_SERIALS));
  const rest = ordinal % (SSN_GROUPS * SSN_SERIALS);
  const group = 1 + Math.floor(rest / SSN_SERIALS);
  const serial = 1 + (rest % SSN_SERIALS);
  return `${area}-${String(group).padStart(2, '0')}-${String(serial).padStart(4, '0')}`;
}

function generateAddress(random: Random, cities: readonly City[]): Pick<PatientRow, 'address_lines' | 'city' | 'state' | 'postal_code'> {
  if (random.chance(MISSING_ADDRESS_SHARE)) return { address_lines: null, city: null, state: null, postal_code: null };
  const city = random.pick(cities);
  const lines = [`${random.int(1, 9899)} ${random.pick(STREET_NAMES)} ${random.pick(STREET_SUFFIXES)}`];
  if (random.chance(SECOND_ADDRESS_LINE_SHARE)) lines.push(`${random.pick(SECONDARY_ADDRESS_UNITS)} ${random.int(1, 40)}${random.pick(['', 'A', 'B', 'C'])}`);
  return { address_lines: lines, city: city.name, state: city.state, postal_code: `${city.zipPrefix}${random.digits(2)}` };
}

function chooseCareTeam(random: Random, provider: ProviderDirectory, ageYears: number): CareTeamPlan | null {
  if (random.chance(NO_CARE_TEAM_SHARE)) return null;
  const eligible = provider.careTeams.filter((team) => fitsAge(ageYears, team.service));
  return random.pick(eligible.length > 0 ? eligible : provider.careTeams);
}

function createContext(directory: Directory, index: number): PatientContext {
  const random = new Random(...seedWords(directory.seed), STREAM_PATIENT, index);
  const provider = random.weighted(directory.providers.map((candidate) => [candidate, candidate.weight] as const));
  const gender = random.weighted(GENDERS);
  const ageYears = drawAge(random, index);
  const birthMs = drawBirth(random, ageYears);
  const historyEndMs = SEED_EPOCH_MS - LATEST_ENCOUNTER_DAYS_AGO * DAY_MS;
  const historyStartMs = Math.min(
    Math.max(startOfDay(birthMs) + DAY_MS, SEED_EPOCH_MS - CLINICAL_HISTORY_DAYS * DAY_MS),
    historyEndMs - DAY_MS,
  );
  return {
    random,
    patientId: random.uuid(),
    provider,
    careTeam: chooseCareTeam(random, provider, ageYears),
    gender,
    ageYears,
    birthMs,
    historyStartMs,
    historyEndMs,
    body: drawBody(random, gender, ageYears),
    conditionCodes: new Set(),
  };
}

function generateDemographics(context: PatientContext, directory: Directory, index: number): PatientRow {
  const { random } = context;
  const givenNames = givenNamesFor(random, context.gender);
  const familyName = random.pick(FAMILY_NAMES);
  return {
    id: context.patientId,
    mrn: `MRN${MRN_FIRST + directory.identifiers.mrn.at(index)}`,
    given_names: givenNames,
    family_name: familyName,
    birth_date: isoDate(context.birthMs),
    gender: context.gender,
    ssn: random.chance(MISSING_SSN_SHARE) ? null : formatSsn(directory.identifiers.ssn.at(index)),
    ...generateAddress(random, context.provider.cities),
    phone: random.chance(MISSING_PHONE_SHARE) ? null : `+1-555-${random.int(200, 999)}-${random.digits(4)}`,
    email: random.chance(MISSING_EMAIL_SHARE)
      ? null
      : `${asciiLower(at(givenNames, 0))}.${asciiLower(familyName)}.${index + 1}@example.test`,
    managing_organization_id: context.provider.organization.id,
    care_team_id: context.careTeam?.id ?? null,
  };
}

// --- encounters -------------------------------------------------------------

function encounterPractitioner(context: PatientContext, encounterClass: EncounterClass): string | null {
  const { random, careTeam, provider } = context;
  if (random.chance(NO_PRACTITIONER_SHARE)) return null;
  if (encounterClass === 'emergency' || encounterClass === 'inpatient') return random.pick(provider.hospitalistIds);
  if (!careTeam) return random.pick(provider.physicianIds);
  return random.chance(NURSE_VISIT_SHARE) ? random.pick(careTeam.nurseIds) : random.pick(careTeam.physicianIds);
}

function encounterStart(random: Random, dayMs: number, encounterClass: EncounterClass): number {
  if (encounterClass === 'emergency' || encounterClass === 'inpatient') {
    return startOfDay(dayMs) + random.int(0, 23) * HOUR_MS + random.int(0, 59) * MINUTE_MS;
  }
  return clinicTime(random, dayMs);
}

function generateEncounter(context: PatientContext, dayMs: number, isLatest: boolean): EncounterRow {
  const { random } = context;
  const encounterClass = random.weighted(ENCOUNTER_CLASSES);
  const type = random.weighted(ENCOUNTER_TYPES[encounterClass]);
  let status = random.weighted(isLatest ? LATEST_ENCOUNTER_STATUSES : EARLIER_ENCOUNTER_STATUSES);
  if (status === 'in_progress' && encounterClass !== 'inpatient' && encounterClass !== 'emergency') status = 'finished';
  let startMs = encounterStart(random, dayMs, encounterClass);
  const [shortest, longest] = ENCOUNTER_MINUTES[encounterClass];
  let endMs: number | null = startMs + random.int(shortest, longest) * MINUTE_MS;
  if (status === 'planned') {
    startMs = clinicTime(random, SEED_EPOCH_MS + random.int(1, 60) * DAY_MS);
    endMs = null;
  } else if (status === 'in_progress') {
    startMs = SEED_EPOCH_MS - random.int(2, encounterClass === 'inpatient' ? 72 : 6) * HOUR_MS;
    endMs = null;
  } else if (status === 'cancelled') {
    endMs = null;
  }
  return {
    id: random.uuid(),
    patient_id: context.patientId,
    status,
    class: encounterClass,
    type_code: type.code,
    type_display: type.display,
    period_start: isoInstant(startMs),
    period_end: endMs === null ? null : isoInstant(endMs),
    practitioner_id: encounterPractitioner(context, encounterClass),
  };
}

function generateEncounters(context: PatientContext): EncounterRow[] {
  const { random } = context;
  const count = random.weighted(ENCOUNTER_COUNTS);
  const days = Array.from({ length: count }, () => randomDay(random, context)).sort((left, right) => left - right);
  return days.map((dayMs, position) => generateEncounter(context, dayMs, position === count - 1));
}

/** Encounters that took place (finished or still in progress). */
function attendedEncounters(encounters: readonly EncounterRow[]): EncounterRow[] {
  return encounters.filter((encounter) => encounter.status === 'finished' || encounter.status === 'in_progress');
}

// --- conditions and medications ---------------------------------------------

function generateCondition(context: PatientContext, definition: ConditionDefinition, attended: readonly EncounterRow[]): ConditionRow {
  const { random } = context;
  const encounter = attended.length > 0 && random.chance(ENCOUNTER_LINKED_SHARE) ? random.pick(attended) : null;
  const recordedMs = encounter ? startOfDay(parseInstant(encounter.period_start)) : randomDay(random, context);
  const onsetLeadDays = definition.chronic ? random.int(0, 3 * 365) : random.int(0, 7);
  const onsetMs = Math.max(startOfDay(context.birthMs), recordedMs - onsetLeadDays * DAY_MS);
  return {
    id: random.uuid(),
    patient_id: context.patientId,
    encounter_id: encounter?.id ?? null,
    code: definition.code,
    display: definition.display,
    clinical_status: random.weighted(definition.chronic ? CHRONIC_CONDITION_STATUSES : ACUTE_CONDITION_STATUSES),
    onset_date: random.chance(MISSING_ONSET_SHARE) ? null : isoDate(onsetMs),
    recorded_date: isoDate(recordedMs),
    security_labels: labelsOfCodes([{ system: CodeSystem.icd10cm, code: definition.code }]),
  };
}

function generateConditions(context: PatientContext, encounters: readonly EncounterRow[]): GeneratedCondition[] {
  const { random } = context;
  const eligible = CONDITIONS.filter((definition) => fitsAge(context.ageYears, definition));
  const definitions = random.weightedSample(
    eligible.map((definition) => [definition, definition.weight] as const),
    random.weighted(CONDITION_COUNTS),
  );
  const attended = attendedEncounters(encounters);
  return definitions.map((definition) => {
    context.conditionCodes.add(definition.code);
    return { row: generateCondition(context, definition, attended), definition };
  });
}

function prescriber(context: PatientContext): string | null {
  const { random, careTeam, provider } = context;
  if (random.chance(NO_PRACTITIONER_SHARE)) return null;
  return random.pick(careTeam?.physicianIds ?? provider.physicianIds);
}

function medicationRequest(
  context: PatientContext,
  medication: MedicationDefinition,
  authoredOn: string,
  chronic: boolean,
): MedicationRequestRow {
  const { random } = context;
  return {
    id: random.uuid(),
    patient_id: context.patientId,
    rxnorm_code: medication.code,
    display: medication.display,
    dosage_instruction: medication.dosage,
    status: random.weighted(chronic ? CHRONIC_MEDICATION_STATUSES : ACUTE_MEDICATION_STATUSES),
    authored_on: authoredOn,
    requester_id: prescriber(context),
    security_labels: labelsOfCodes([{ system: CodeSystem.rxnorm, code: medication.code }]),
  };
}

function generateMedicationRequests(context: PatientContext, conditions: readonly GeneratedCondition[]): MedicationRequestRow[] {
  const { random } = context;
  const prescribed = new Set<string>();
  const requests: MedicationRequestRow[] = [];
  for (const { row, definition } of conditions) {
    const candidates = definition.medications.filter((medication) => !prescribed.has(medication.code));
    if (candidates.length === 0 || !random.chance(MEDICATION_PER_CONDITION_SHARE)) continue;
    const medication = random.pick(candidates);
    prescribed.add(medication.code);
    requests.push(medicationRequest(context, medication, row.recorded_date, definition.chronic));
  }
  const overTheCounter = OVER_THE_COUNTER_MEDICATIONS.filter((medication) => !prescribed.has(medication.code));
  if (overTheCounter.length > 0 && random.chance(OVER_THE_COUNTER_SHARE)) {
    requests.push(medicationRequest(context, random.pick(overTheCounter), isoDate(randomDay(random, context)), false));
  }
  return requests;
}

// --- observations and allergies ---------------------------------------------

function hasCondition(context: PatientContext, ...codes: string[]): boolean {
  return codes.some((code) => context.conditionCodes.has(code));
}

/** A plausible value for the measure, given the patient's age, sex and conditions. */
function measureObservation(measure: Measure, context: PatientContext): number {
  const { random, ageYears, body } = context;
  const child = ageYears < 18;
  switch (measure) {
    case 'systolic':
      return random.normal(child ? 104 : 122 + (hasCondition(context, 'I10') ? 14 : 0), child ? 8 : 13, 80, 200);
    case 'diastolic':
      return random.normal(child ? 64 : 78 + (hasCondition(context, 'I10') ? 8 : 0), child ? 7 : 9, 40, 120);
    case 'heartRate':
      return random.normal(ageYears < 2 ? 125 : child ? 95 : 74, child ? 14 : 10, 40, 190);
    case 'respiratoryRate':
      return random.normal(ageYears < 2 ? 32 : child ? 22 : 16, child ? 4 : 2, 10, 60);
    case 'temperature':
      return random.normal(36.8, 0.35, 35.5, 40.5);
    case 'oxygenSaturation':
      return random.normal(hasCondition(context, 'J44.9') ? 93 : 97.5, 1.3, 85, 100);
    case 'weight':
      return body.weightKg * random.real(0.97, 1.03);
    case 'height':
      return body.heightCm;
    case 'bmi':
      return body.weightKg / ((body.heightCm / 100) * (body.heightCm / 100));
    case 'hemoglobinA1c':
      return hasCondition(context, 'E11.9') ? random.normal(7.6, 1.1, 5.7, 13) : random.normal(5.4, 0.3, 4.2, 6.4);
    case 'glucose':
      return hasCondition(context, 'E11.9') ? random.normal(155, 35, 70, 400) : random.normal(94, 11, 65, 140);
    case 'cholesterol':
      return hasCondition(context, 'E78.5') ? random.normal(238, 30, 160, 350) : random.normal(188, 28, 110, 280);
    case 'hdl':
      return random.normal(context.gender === 'female' ? 58 : 48, 12, 20, 100);
    case 'ldl':
      return hasCondition(context, 'E78.5') ? random.normal(155, 28, 80, 260) : random.normal(108, 28, 40, 200);
    case 'triglycerides':
      return random.normal(hasCondition(context, 'E11.9', 'E78.5') ? 190 : 125, 45, 40, 600);
    case 'creatinine':
      return hasCondition(context, 'N18.30') ? random.normal(1.8, 0.35, 1.2, 3.5) : random.normal(child ? 0.5 : 0.95, 0.16, 0.3, 1.4);
    case 'hemoglobin':
      return hasCondition(context, 'D64.9')
        ? random.normal(10.4, 0.9, 7, 12)
        : random.normal(context.gender === 'female' ? 13.6 : 15.1, 1, 11, 18);
  }
}

function generateObservations(context: PatientContext, encounters: readonly EncounterRow[]): ObservationRow[] {
  const { random } = context;
  const eligible = OBSERVATIONS.filter((definition) => fitsAge(context.ageYears, definition));
  const definitions = eligible.map((definition) => [definition, definition.weight] as const);
  // Measured in person: never during a telephone or video visit.
  const attended = attendedEncounters(encounters).filter((encounter) => encounter.class !== 'virtual');
  return Array.from({ length: random.weighted(OBSERVATION_COUNTS) }, () => {
    const definition = random.weighted(definitions);
    const encounter = attended.length > 0 && random.chance(OBSERVATION_IN_ENCOUNTER_SHARE) ? random.pick(attended) : null;
    const effectiveMs = encounter
      ? parseInstant(encounter.period_start) + random.int(5, 30) * MINUTE_MS
      : clinicTime(random, randomDay(random, context));
    return {
      id: random.uuid(),
      patient_id: context.patientId,
      encounter_id: encounter?.id ?? null,
      loinc_code: definition.code,
      display: definition.display,
      value: measureObservation(definition.measure, context).toFixed(definition.decimals),
      unit: definition.unit,
      effective_at: isoInstant(effectiveMs),
    };
  });
}

function generateAllergies(context: PatientContext): AllergyIntoleranceRow[] {
  const { random } = context;
  const substances = random.weightedSample(
    ALLERGENS.map((allergen) => [allergen, allergen.weight] as const),
    random.weighted(ALLERGY_COUNTS),
  );
  return substances.map((substance) => {
    const reaction = random.chance(MISSING_REACTION_SHARE) ? null : random.weighted(ALLERGY_REACTIONS);
    return {
      id: random.uuid(),
      patient_id: context.patientId,
      snomed_code: substance.code,
      display: substance.display,
      criticality: reaction === ANAPHYLAXIS ? 'high' : random.weighted(ALLERGY_CRITICALITIES),
      reaction,
      recorded_date: isoDate(randomDay(random, context)),
    };
  });
}

// --- clinical notes -----------------------------------------------------------

function noteType(random: Random, encounter: EncounterRow | null): Coding {
  if (!encounter) return NOTE_TYPES.progress;
  switch (encounter.class) {
    case 'inpatient':
      return encounter.status === 'finished' ? NOTE_TYPES.discharge : NOTE_TYPES.historyAndPhysical;
    case 'emergency':
      return NOTE_TYPES.emergency;
    case 'ambulatory':
      return random.chance(0.25) ? NOTE_TYPES.consult : NOTE_TYPES.progress;
    case 'virtual':
      return NOTE_TYPES.progress;
  }
}

function planSentence(medication: MedicationRequestRow | undefined, random: Random): string {
  if (!medication) return random.pick(NOTE_PHRASES.lifestyle);
  return `Continue ${medication.display}: ${medication.dosage_instruction.charAt(0).toLowerCase()}${medication.dosage_instruction.slice(1)}.`;
}

/** A few sentences of synthetic narrative that name the condition. */
function noteText(
  random: Random,
  type: Coding,
  condition: GeneratedCondition,
  medication: MedicationRequestRow | undefined,
): string {
  const { term, display, code } = condition.definition;
  const control = random.pick(NOTE_PHRASES.control);
  const examination = random.pick(NOTE_PHRASES.examination);
  const plan = planSentence(medication, random);
  switch (type.code) {
    case NOTE_TYPES.discharge.code:
      return `Admitted for management of ${term}. Hospital course was uncomplicated and symptoms improved with treatment. Discharge diagnosis: ${display} (${code}). ${plan} Follow up with the care team within 7 days.`;
    case NOTE_TYPES.historyAndPhysical.code:
      return `Admitted for evaluation of ${term}. History and medication list reviewed with the patient. ${examination} Assessment: ${display} (${code}). ${plan}`;
    case NOTE_TYPES.emergency.code:
      return `Presented to the emergency department with symptoms related to ${term}. ${examination} Assessment: ${display} (${code}), ${control}. ${plan} Return precautions discussed.`;
    case NOTE_TYPES.consult.code:
      return `Consultation requested for ${term}. Patient reports ${random.pick(NOTE_PHRASES.symptomStatus)}. ${examination} Impression: ${display} (${code}). ${plan}`;
    default:
      return `Follow-up visit for ${term}. Patient reports ${random.pick(NOTE_PHRASES.symptomStatus)}. ${examination} Assessment: ${display} (${code}), ${control}. ${plan} Return to clinic in ${random.int(2, 12)} weeks.`;
  }
}

function generateClinicalNotes(
  context: PatientContext,
  encounters: readonly EncounterRow[],
  conditions: readonly GeneratedCondition[],
  medications: readonly MedicationRequestRow[],
): ClinicalNoteRow[] {
  const { random } = context;
  const count = random.weighted(NOTE_COUNTS);
  const linked: (EncounterRow | null)[] = random.sample(attendedEncounters(encounters), count);
  while (linked.length < count) linked.push(null);
  return linked.map((encounter) => {
    const condition = conditions.find((candidate) => encounter && candidate.row.encounter_id === encounter.id) ?? random.pick(conditions);
    const medication = medications.find((candidate) => condition.definition.medications.some((known) => known.code === candidate.rxnorm_code));
    const type = noteType(random, encounter);
    const writtenAfterMs = encounter
      ? (encounter.period_end ? parseInstant(encounter.period_end) : parseInstant(encounter.period_start) + HOUR_MS)
      : clinicTime(random, randomDay(random, context));
    const createdMs = Math.min(writtenAfterMs + random.int(10, 240) * MINUTE_MS, SEED_EPOCH_MS - MINUTE_MS);
    const text = noteText(random, type, condition, medication);
    const diagnoses = encounter ? conditions.filter((candidate) => candidate.row.encounter_id === encounter.id) : [];
    return {
      id: random.uuid(),
      patient_id: context.patientId,
      encounter_id: encounter?.id ?? null,
      author_id: encounter?.practitioner_id ?? prescriber(context),
      type_code: type.code,
      type_display: type.display,
      text,
      created_at: isoInstant(Math.max(createdMs, writtenAfterMs)),
      security_labels: noteLabels(text, diagnoses.map((diagnosis) => diagnosis.row.security_labels)),
    };
  });
}

// --- billing ------------------------------------------------------------------

function planFor(random: Random, ageAtStart: number): string {
  if (ageAtStart >= MEDICARE_AGE) return random.pick(HEALTH_PLANS.medicare);
  if (random.chance(MEDICAID_SHARE)) return random.pick(HEALTH_PLANS.medicaid);
  return random.pick(HEALTH_PLANS.commercial);
}

function coverage(
  context: PatientContext,
  payer: OrganizationRow,
  status: CoverageRow['status'],
  startMs: number,
  endMs: number | null,
): CoverageRow {
  const { random } = context;
  const ageAtStart = new Date(startMs).getUTCFullYear() - new Date(context.birthMs).getUTCFullYear();
  return {
    id: random.uuid(),
    patient_id: context.patientId,
    payer: payer.name,
    member_id: `${random.letters(3)}${random.digits(9)}`,
    plan: planFor(random, ageAtStart),
    status,
    period_start: isoInstant(startMs),
    period_end: endMs === null ? null : isoInstant(endMs),
  };
}

function generateCoverages(context: PatientContext, directory: Directory): CoverageRow[] {
  const { random } = context;
  const history = random.weighted(COVERAGE_HISTORIES);
  if (history === 'none') return [];
  const payerWeights = directory.payers.map((payer, position) => [payer, at(PAYER_ORGANIZATIONS, position).weight] as const);
  const birthYear = new Date(context.birthMs).getUTCFullYear();
  const startYear = random.int(Math.max(birthYear, SEED_EPOCH_YEAR - 6), SEED_EPOCH_YEAR - 1);
  const activeStartMs = Math.max(Date.UTC(startYear, 0, 1), startOfDay(context.birthMs));
  const activePayer = random.weighted(payerWeights);
  const activeEndMs = random.chance(0.5) ? null : Date.UTC(SEED_EPOCH_YEAR, 11, 31);
  const active = coverage(context, activePayer, 'active', activeStartMs, activeEndMs);
  const previousStartMs = Date.UTC(startYear - random.int(1, 3), 0, 1);
  if (history === 'single' || previousStartMs < context.birthMs) return [active];
  const previousPayer = directory.payers.find((payer) => payer !== activePayer) ?? activePayer;
  return [coverage(context, previousPayer, 'cancelled', previousStartMs, activeStartMs - DAY_MS), active];
}

function coverageAt(coverages: readonly CoverageRow[], instant: string): CoverageRow | null {
  const ms = parseInstant(instant);
  return (
    coverages.find(
      (candidate) =>
        parseInstant(candidate.period_start) <= ms && (candidate.period_end === null || ms <= parseInstant(candidate.period_end)),
    ) ?? null
  );
}

function diagnosisCodes(random: Random, encounter: EncounterRow, conditions: readonly GeneratedCondition[]): string[] {
  const linked = conditions.filter((condition) => condition.row.encounter_id === encounter.id).map((condition) => condition.row.code);
  const codes = linked.length > 0 ? linked : random.sample(conditions.map((condition) => condition.row.code), random.int(1, 2));
  return [...new Set(codes)].slice(0, MAX_DIAGNOSIS_CODES);
}

function generateClaims(
  context: PatientContext,
  encounters: readonly EncounterRow[],
  coverages: readonly CoverageRow[],
  conditions: readonly GeneratedCondition[],
): ClaimRow[] {
  const { random } = context;
  const claims: ClaimRow[] = [];
  for (const encounter of encounters) {
    if (encounter.status !== 'finished' || !random.chance(CLAIM_PER_ENCOUNTER_SHARE)) continue;
    const [lowest, highest] = CLAIM_TOTAL_CENTS[encounter.class];
    const endMs = parseInstant(encounter.period_end ?? encounter.period_start);
    const createdMs = Math.min(clinicTime(random, endMs + random.int(1, 14) * DAY_MS), SEED_EPOCH_MS - HOUR_MS);
    const claim = {
      id: random.uuid(),
      patient_id: context.patientId,
      coverage_id: coverageAt(coverages, encounter.period_start)?.id ?? null,
      encounter_id: encounter.id,
      status: random.weighted(CLAIM_STATUSES),
      total_cents: random.int(lowest, highest),
      currency: CURRENCY,
      diagnosis_codes: diagnosisCodes(random, encounter, conditions),
      created_at: isoInstant(Math.max(createdMs, endMs)),
    };
    claims.push({ ...claim, security_labels: labelsOfCodes(claim.diagnosis_codes.map((code) => ({ system: CodeSystem.icd10cm, code }))) });
  }
  return claims;
}

/** Splits `total` into the amounts actually paid for an invoice with this outcome (never more than `total`). */
function paymentAmounts(random: Random, outcome: InvoiceStatus, total: number): number[] {
  switch (outcome) {
    case 'paid': {
      if (!random.chance(INSTALLMENT_SHARE)) return [total];
      const first = Math.round(total * random.real(0.3, 0.7));
      return [first, total - first];
    }
    case 'partially_paid':
      return [clamp(Math.round(total * random.real(0.2, 0.8)), 1, total - 1)];
    case 'issued':
    case 'cancelled':
      return [];
  }
}

function generateInvoice(context: PatientContext, claim: ClaimRow): { invoice: InvoiceRow; payments: PaymentRow[] } {
  const { random } = context;
  const patientShare = Math.max(MIN_PATIENT_SHARE_CENTS, Math.round(claim.total_cents * random.real(0.08, 0.3)));
  const total = claim.status === 'denied' ? claim.total_cents : Math.min(claim.total_cents, patientShare);
  const issuedMs = Math.min(parseInstant(claim.created_at) + random.int(5, 30) * DAY_MS, SEED_EPOCH_MS - HOUR_MS);
  const recent = issuedMs > SEED_EPOCH_MS - INVOICE_GRACE_DAYS * DAY_MS;
  const outcome = recent ? 'issued' : random.weighted(INVOICE_OUTCOMES);
  const invoiceId = random.uuid();
  let receivedMs = issuedMs;
  const payments = paymentAmounts(random, outcome, total).map((amount): PaymentRow => {
    receivedMs = Math.min(receivedMs + random.int(1, 30) * DAY_MS, SEED_EPOCH_MS - MINUTE_MS);
    return {
      id: random.uuid(),
      patient_id: context.patientId,
      invoice_id: invoiceId,
      amount_cents: amount,
      currency: CURRENCY,
      method: random.weighted(PAYMENT_METHODS),
      received_at: isoInstant(receivedMs),
    };
  });
  const paid = payments.reduce((sum, payment) => sum + payment.amount_cents, 0);
  const invoice: InvoiceRow = {
    id: invoiceId,
    patient_id: context.patientId,
    claim_id: claim.id,
    status: outcome,
    total_cents: total,
    balance_cents: outcome === 'cancelled' ? 0 : total - paid,
    currency: CURRENCY,
    issued_at: isoInstant(issuedMs),
  };
  return { invoice, payments };
}

function generateInvoices(context: PatientContext, claims: readonly ClaimRow[]): { invoices: InvoiceRow[]; payments: PaymentRow[] } {
  const { random } = context;
  const billable = claims.filter((claim) => claim.status === 'accepted' || claim.status === 'paid' || claim.status === 'denied');
  const chosen = random.sample(billable, random.weighted(INVOICE_COUNTS));
  const generated = chosen.map((claim) => generateInvoice(context, claim));
  return { invoices: generated.map((item) => item.invoice), payments: generated.flatMap((item) => item.payments) };
}

// --- consents -------------------------------------------------------------------

/** What consents need to know about their patient (read from the patient's context, never drawn from its stream). */
interface ConsentSubject {
  patientId: string;
  birthMs: number;
}

/** The first day a consent of the patient may start on: after birth and after `afterMs`, within the usual window. */
function consentEarliestDay(subject: ConsentSubject, afterMs: number | null): number {
  const earliest = Math.max(CONSENT_FIRST_START_MS, startOfDay(subject.birthMs) + DAY_MS, afterMs === null ? 0 : startOfDay(afterMs) + DAY_MS);
  return Math.min(earliest, CONSENT_LAST_START_MS);
}

/** An instant in clinic hours on a day from `firstDayMs` to `lastDayMs` (day-aligned, first <= last). */
function consentInstant(random: Random, firstDayMs: number, lastDayMs: number): number {
  return clinicTime(random, firstDayMs + random.int(0, Math.floor((lastDayMs - firstDayMs) / DAY_MS)) * DAY_MS);
}

function consentPeriod(random: Random, outcome: ConsentOutcome, earliestDayMs: number): { startMs: number; endMs: number | null } {
  if (outcome === 'pending') return { startMs: consentInstant(random, FAR_FUTURE_MS, FAR_FUTURE_MS + 364 * DAY_MS), endMs: null };
  if (outcome === 'expired') {
    const lastEndDayMs = SEED_EPOCH_MS - DAY_MS;
    const lastStartDayMs = lastEndDayMs - MIN_EXPIRED_CONSENT_DAYS * DAY_MS;
    if (earliestDayMs <= lastStartDayMs) {
      const startMs = consentInstant(random, earliestDayMs, lastStartDayMs);
      return { startMs, endMs: consentInstant(random, startOfDay(startMs) + MIN_EXPIRED_CONSENT_DAYS * DAY_MS, lastEndDayMs) };
    }
    // Born too recently for a consent that has already run out: it is still in force.
  }
  const startMs = consentInstant(random, earliestDayMs, CONSENT_LAST_START_MS);
  const bounded = outcome === 'valid' && random.chance(BOUNDED_CONSENT_SHARE);
  return { startMs, endMs: bounded ? consentInstant(random, FAR_FUTURE_MS, FAR_FUTURE_MS + 364 * DAY_MS) : null };
}

function consent(
  random: Random,
  subject: ConsentSubject,
  scope: ConsentScope,
  organizationId: string | null,
  outcome: ConsentOutcome,
  afterMs: number | null = null,
): ConsentRow {
  const id = random.uuid();
  const { startMs, endMs } = consentPeriod(random, outcome, consentEarliestDay(subject, afterMs));
  return {
    id,
    patient_id: subject.patientId,
    organization_id: organizationId,
    scope,
    // A revoked consent keeps a period that covers now: only its status takes it out of force.
    status: outcome === 'revoked' ? 'revoked' : 'active',
    period_start: isoInstant(startMs),
    period_end: endMs === null ? null : isoInstant(endMs),
    decision: 'permit',
    actor_role: scope === 'research' ? 'researcher' : scope === 'partner-sharing' ? 'partner' : null,
    purposes: scope === 'research' ? ['HRESCH'] : ['TREAT', 'HPAYMT'],
    sensitivities: [],
    source: 'patient',
    recorded_by: patientSubject(subject.patientId),
    // A consent that starts later was recorded now (the seed's epoch), not in the future.
    recorded_at: isoInstant(Math.min(startMs, SEED_EPOCH_MS)),
    revoked_at: outcome === 'revoked' ? isoInstant(Math.min(Math.max(startMs, SEED_EPOCH_MS - DAY_MS), SEED_EPOCH_MS)) : null,
  };
}

/**
 * A signed paper consent (42 CFR 2.31) that lets the patient's provider
 * organization's treating roles read their substance use disorder records.
 */
function treatmentConsent(random: Random, subject: ConsentSubject, organizationId: string): ConsentRow {
  return { ...consent(random, subject, 'treatment', organizationId, 'valid'), actor_role: 'clinician', purposes: ['TREAT'], sensitivities: ['SUD'], source: 'paper', recorded_by: null };
}

/**
 * The patient's consents, from the patient's own consent stream (seed,
 * STREAM_CONSENT, index): at most one for research and one for sharing with a
 * partner organization.
 */
function generateConsents(directory: Directory, index: number, subject: ConsentSubject, treatment: { organizationId: string; substanceUse: boolean }): ConsentRow[] {
  const random = new Random(...seedWords(directory.seed), STREAM_CONSENT, index);
  const consents: ConsentRow[] = [];
  if (random.chance(RESEARCH_CONSENT_SHARE)) {
    consents.push(consent(random, subject, 'research', null, random.weighted(RESEARCH_CONSENT_OUTCOMES)));
  }
  if (random.chance(PARTNER_CONSENT_SHARE)) {
    const partner = random.pick(directory.partners);
    consents.push(consent(random, subject, 'partner-sharing', partner.id, random.weighted(PARTNER_CONSENT_OUTCOMES)));
  }
  // Drawn after the others, so adding it changed none of them.
  if (treatment.substanceUse && random.chance(SUD_TREATMENT_CONSENT_SHARE)) consents.push(treatmentConsent(random, subject, treatment.organizationId));
  return consents;
}

/**
 * Whether a generated consent is in force for any clock from mid-2026 until
 * FAR_FUTURE_YEAR: active, started (not a far-future start) and not ended
 * (no end, or a far-future one). The row scopes test the same with now().
 */
export function isConsentInForce(row: ConsentRow): boolean {
  return (
    row.status === 'active' &&
    parseInstant(row.period_start) < FAR_FUTURE_MS &&
    (row.period_end === null || parseInstant(row.period_end) >= FAR_FUTURE_MS)
  );
}

function patientAccount(context: PatientContext): AppUserRow {
  return {
    id: context.random.uuid(),
    subject: patientSubject(context.patientId),
    roles: ['patient'],
    organization_id: context.provider.organization.id,
    practitioner_id: null,
    patient_id: context.patientId,
  };
}

/** Patient number `index` (0-based) with all of their rows; depends only on the directory and the index. */
export function generatePatient(directory: Directory, index: number): PatientRows {
  const context = createContext(directory, index);
  const patient = generateDemographics(context, directory, index);
  const encounters = generateEncounters(context);
  const conditions = generateConditions(context, encounters);
  const medications = generateMedicationRequests(context, conditions);
  const observations = generateObservations(context, encounters);
  const allergies = generateAllergies(context);
  const notes = generateClinicalNotes(context, encounters, conditions, medications);
  const coverages = generateCoverages(context, directory);
  const claims = generateClaims(context, encounters, coverages, conditions);
  const { invoices, payments } = generateInvoices(context, claims);
  const consents = generateConsents(
    directory,
    index,
    { patientId: context.patientId, birthMs: context.birthMs },
    { organizationId: context.provider.organization.id, substanceUse: conditions.some((condition) => condition.row.security_labels.includes('SUD')) },
  );
  return {
    patient: [patient],
    encounter: encounters,
    condition: conditions.map((condition) => condition.row),
    medication_request: medications,
    observation: observations,
    allergy_intolerance: allergies,
    clinical_note: notes,
    coverage: coverages,
    claim: claims,
    invoice: invoices,
    payment: payments,
    consent: consents,
    app_user: [patientAccount(context)],
  };
}

// ---------------------------------------------------------------------------
// Development principals: one sample account per role
// ---------------------------------------------------------------------------

/** Every role gets a sample account; the list is the auth module's, the public contract. */
export const DEVELOPMENT_ROLES = ROLES;
export type DevelopmentRole = Role;

export interface DevelopmentPrincipal {
  subject: string;
  organizationId: string | null;
  patientId: string | null;
  practitionerId: string | null;
}

/**
 * One sample account per role, for minting development tokens, and one per
 * partner organization (the `partner` principal is the pharmacy's). Ids
 * only, never PHI.
 */
export type DevelopmentPrincipals = Record<DevelopmentRole, DevelopmentPrincipal> & { partners: Record<PartnerKind, DevelopmentPrincipal> };

/** What the principal picker needs to know about a patient; kept instead of the rows. */
export interface PatientHighlights {
  index: number;
  patientId: string;
  organizationId: string;
  careTeamId: string | null;
  /** How many kinds of data the patient has (care team, clinical and billing tables). */
  richness: number;
  /** Midnight UTC of the birth date, for consents added to the sample patient. */
  birthMs: number;
  /** The patient's generated consents (at most two), to see which the sample patient still needs. */
  consents: ConsentRow[];
}

const RICHNESS_TABLES = [
  'encounter',
  'condition',
  'medication_request',
  'observation',
  'allergy_intolerance',
  'clinical_note',
  'coverage',
  'claim',
  'invoice',
  'payment',
] as const satisfies readonly (typeof PATIENT_TABLES)[number][];

export function highlightPatient(index: number, rows: PatientRows): PatientHighlights {
  const patient = at(rows.patient, 0);
  const filledTables = RICHNESS_TABLES.filter((table) => rows[table].length > 0).length;
  return {
    index,
    patientId: patient.id,
    organizationId: patient.managing_organization_id,
    careTeamId: patient.care_team_id,
    richness: filledTables + (patient.care_team_id ? 1 : 0),
    birthMs: patient.birth_date === null ? CONSENT_FIRST_START_MS : parseInstant(patient.birth_date),
    consents: rows.consent,
  };
}

/** The better sample patient: richer data first, then the lower index. */
export function betterHighlights(current: PatientHighlights | undefined, candidate: PatientHighlights): PatientHighlights {
  if (!current) return candidate;
  if (candidate.richness !== current.richness) return candidate.richness > current.richness ? candidate : current;
  return candidate.index < current.index ? candidate : current;
}

function practitionerPrincipal(organizationId: string, practitionerId: string): DevelopmentPrincipal {
  return { subject: practitionerSubject(practitionerId), organizationId, patientId: null, practitionerId };
}

function accountPrincipal(account: AppUserRow): DevelopmentPrincipal {
  return {
    subject: account.subject,
    organizationId: account.organization_id,
    patientId: account.patient_id,
    practitionerId: account.practitioner_id,
  };
}

/** The partner account that is the sample `partner` principal. */
function samplePartnerAccount(directory: Directory): AppUserRow {
  return at(directory.partnerAccounts, 0);
}

/**
 * The consents the sample patient still needs so that the sample researcher
 * and every partner account see them: one in force for research and one in
 * force for sharing with each partner organization (the sample partner's
 * first). Those the draw did not give
 * are added as a renewed consent (starting after any earlier one of the same
 * kind; the drawn rows are kept, they may already be written), drawn from the
 * patient's own (seed, STREAM_SAMPLE_CONSENT, index) stream: the result
 * depends only on the seed and the sample patient, never on the batch size.
 */
export function sampleConsents(directory: Directory, sample: PatientHighlights): ConsentRow[] {
  const random = new Random(...seedWords(directory.seed), STREAM_SAMPLE_CONSENT, sample.index);
  const subject: ConsentSubject = { patientId: sample.patientId, birthMs: sample.birthMs };
  const needed: readonly (readonly [ConsentScope, string | null])[] = [
    ['research', null],
    ...directory.partners.map((partner) => ['partner-sharing', partner.id] as const),
  ];
  const added: ConsentRow[] = [];
  for (const [scope, organizationId] of needed) {
    const earlier = sample.consents.filter((row) => row.scope === scope && row.organization_id === organizationId);
    if (earlier.some(isConsentInForce)) continue;
    const pastInstants = earlier
      .flatMap((row) => [row.period_start, row.period_end])
      .flatMap((instant) => (instant === null ? [] : [parseInstant(instant)]))
      .filter((ms) => ms < FAR_FUTURE_MS);
    const afterMs = pastInstants.length > 0 ? Math.max(...pastInstants) : null;
    added.push(consent(random, subject, scope, organizationId, 'valid', afterMs));
  }
  return added;
}

/**
 * Sample accounts that see data: the patient is the richest one (and has
 * consents in force for the sample researcher and partner, see
 * sampleConsents); the clinician and the nurse are on that patient's care
 * team; the billing specialist works for that patient's organization.
 */
export function choosePrincipals(directory: Directory, sample: PatientHighlights): DevelopmentPrincipals {
  const provider = directory.providers.find((candidate) => candidate.organization.id === sample.organizationId) ?? at(directory.providers, 0);
  const team = provider.careTeams.find((candidate) => candidate.id === sample.careTeamId) ?? at(provider.careTeams, 0);
  const organizationId = provider.organization.id;
  return {
    clinician: practitionerPrincipal(organizationId, at(team.physicianIds, 0)),
    nurse: practitionerPrincipal(organizationId, at(team.nurseIds, 0)),
    billing: practitionerPrincipal(organizationId, at(provider.billingSpecialistIds, 0)),
    patient: { subject: patientSubject(sample.patientId), organizationId, patientId: sample.patientId, practitionerId: null },
    researcher: accountPrincipal(directory.staffAccounts.researcher),
    partner: accountPrincipal(samplePartnerAccount(directory)),
    auditor: accountPrincipal(directory.staffAccounts.auditor),
    admin: accountPrincipal(directory.staffAccounts.admin),
    integrator: accountPrincipal(directory.staffAccounts.integrator),
    privacyOfficer: accountPrincipal(directory.staffAccounts.privacyOfficer),
    partners: partnerPrincipals(directory),
  };
}

/** The account of each partner organization, by the kind of partner it is. */
function partnerPrincipals(directory: Directory): Record<PartnerKind, DevelopmentPrincipal> {
  const byKind = new Map(PARTNER_ORGANIZATIONS.map((partner, index) => [partner.kind, accountPrincipal(at(directory.partnerAccounts, index))]));
  const principal = (kind: PartnerKind): DevelopmentPrincipal => {
    const found = byKind.get(kind);
    if (!found) throw new Error(`no partner organization of kind ${kind}`);
    return found;
  };
  return { pharmacy: principal('pharmacy'), payer: principal('payer'), careCoordination: principal('careCoordination') };
}
