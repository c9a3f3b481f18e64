import type { PurposeOfUse, Role } from '../auth/index.js';
import type { Category } from './categories.js';
import type { MaskerName } from './maskers.js';
import { SENSITIVITIES, type Sensitivity } from './sensitivity.js';

/**
 * THE ACCESS POLICY. Reviewed like a contract: for every role, a decision
 * per data category (allow, mask with a named masker, or deny), and the
 * rows it may see. Anything not listed is denied. The shield rules, the
 * per-role schema views and docs/access-matrix.md are generated from it.
 */

export type Decision = { kind: 'allow' } | { kind: 'mask'; masker: MaskerName } | { kind: 'deny' };

export const allow: Decision = { kind: 'allow' };
export const deny: Decision = { kind: 'deny' };
export const mask = (masker: MaskerName): Decision => ({ kind: 'mask', masker });

/** Which patients (and their clinical and billing rows) a role may see. */
export type PatientScope =
  /** The patient the token names (claim `patient`). */
  | 'self'
  /** Patients of the care teams the caller is a member of, plus emergency grants. */
  | 'careTeam'
  /** Patients whose record the caller's organization holds (claim `org`). */
  | 'organization'
  /** Patients with an active consent to share with the caller's organization. */
  | 'partnerConsent'
  /** Patients with an active research consent (de-identified views only). */
  | 'researchCohort'
  | 'none';

/** Directory rows (practitioners, organizations, care teams): everyone's or nobody's. */
export type DirectoryScope = 'all' | 'none';

export interface RateBudget {
  requestsPerMinute: number;
  inFlight: number;
  patientsPerHour: number;
}

/** What a purpose of use lets a role read: all of what the role may read, or only these categories of it (src/policy/purposes.ts). */
export type PurposeScope = 'all' | readonly Category[];

export interface RolePolicy {
  description: string;
  /**
   * The purposes of use (HL7 v3 PurposeOfUse) the role may read for, each
   * with what it lets the role read; a purpose not listed grants the role
   * nothing.
   */
  purposes: Partial<Record<PurposeOfUse, PurposeScope>>;
  /** The purpose a request of this role reads for when it names none; null: it must name one. */
  defaultPurpose: PurposeOfUse | null;
  /**
   * Per purpose, the sensitivity categories (src/policy/sensitivity.ts) the
   * role is cleared for: rows labelled with any other are withheld, as if
   * absent, unless a break-the-glass grant names it. A purpose not listed
   * clears nothing.
   */
  clearance: Partial<Record<PurposeOfUse, readonly Sensitivity[]>>;
  patients: PatientScope;
  directory: DirectoryScope;
  fields: Partial<Record<Category, Decision>>;
  /**
   * The most one operation may cost: every field counts 1, multiplied by the
   * sizes of the lists around it (`first`, or 10 for a list without one).
   * Dashboards need more than a partner's page; see policy/limits.ts.
   */
  maxCost: number;
  /**
   * What one principal of the role may ask for over time (rate.ts):
   * requests per minute, requests in flight at once, and distinct patients
   * whose data it received in the last hour (the exfiltration budget).
   */
  rate: RateBudget;
  /**
   * True for a role that acts for another organization under a sharing
   * agreement: its decisions hold only for the categories the caller's
   * organization is granted (organization.shared_categories, loaded per
   * request in src/subgraphs/access.ts); every other category is denied.
   * The fields above are what the role may read at most.
   */
  boundBySharingAgreement?: true;
}

const always = { self: allow, structure: allow } as const;
const records = { ...always, recordId: allow, recordLink: allow, patientLookup: allow } as const;
/** Who the patient is and how to reach them, with the SSN masked to its last four digits. */
const identifiedDemographics = {
  mrn: allow,
  ssn: mask('ssnLast4'),
  name: allow,
  birthDate: allow,
  ageGroup: allow,
  gender: allow,
  addressStreet: allow,
  addressRegion: allow,
  postalCode: allow,
  contact: allow,
} as const;
/** Structured clinical data (not notes, dates or who treated). */
const clinicalRecord = { encounter: allow, condition: allow, medication: allow, observation: allow, allergy: allow } as const;
/** What those who treat (and the patient) read beside it: dosage instructions and reactions as written. */
const clinicalText = { freeText: allow } as const;
/** What reading for payment (HPAYMT) shows those who treat or coordinate care: who the patient is and their coverage, not the clinical record. */
const forPayment: readonly Category[] = ['mrn', 'name', 'birthDate', 'gender', 'addressStreet', 'addressRegion', 'postalCode', 'contact', 'managingOrganization', 'coverage', 'memberId'];
/** Claims, their diagnosis codes, invoices and payments. */
const billingRecord = { claim: allow, diagnosisCodes: allow, invoice: allow, payment: allow } as const;

/**
 * What those who treat are cleared for: everything but substance use
 * disorder records, which 42 CFR Part 2 discloses only with the patient's
 * consent (or in an emergency, under a grant that names it).
 */
const treatingClearance: readonly Sensitivity[] = ['PSY', 'HIV', 'SEX', 'STD', 'SDV'];

export const ACCESS_POLICY: Record<Role, RolePolicy> = {
  clinician: {
    description: 'Treats the patients of their care teams: full clinical record, masked SSN, coverage for prescribing.',
    purposes: { TREAT: 'all', ETREAT: 'all', HPAYMT: forPayment },
    defaultPurpose: 'TREAT',
    clearance: { TREAT: treatingClearance, ETREAT: treatingClearance },
    rate: { requestsPerMinute: 600, inFlight: 20, patientsPerHour: 300 },
    maxCost: 10_000,
    patients: 'careTeam',
    directory: 'all',
    fields: {
      ...records,
      directory: allow,
      ...identifiedDemographics,
      careTeam: allow,
      managingOrganization: allow,
      ...clinicalRecord,
      ...clinicalText,
      clinicalNote: allow,
      clinicalDate: allow,
      careParticipant: allow,
      coverage: allow,
      memberId: mask('last4'),
      emergencyAccess: allow,
      writeClinicalNote: allow,
      writeCondition: allow,
    },
  },
  nurse: {
    description: 'Cares for the patients of their care teams: clinical data without clinical notes, masked SSN.',
    purposes: { TREAT: 'all', ETREAT: 'all', HPAYMT: forPayment },
    defaultPurpose: 'TREAT',
    // Not abuse and violence records: those stay with the treating clinician.
    clearance: { TREAT: ['PSY', 'HIV', 'SEX', 'STD'], ETREAT: ['PSY', 'HIV', 'SEX', 'STD'] },
    rate: { requestsPerMinute: 600, inFlight: 20, patientsPerHour: 300 },
    maxCost: 10_000,
    patients: 'careTeam',
    directory: 'all',
    fields: {
      ...records,
      directory: allow,
      ...identifiedDemographics,
      careTeam: allow,
      managingOrganization: allow,
      ...clinicalRecord,
      ...clinicalText,
      clinicalDate: allow,
      careParticipant: allow,
      coverage: allow,
      memberId: mask('last4'),
    },
  },
  billing: {
    description: 'Bills for the organization: what a claim needs, no clinical content beyond diagnosis codes on claims.',
    purposes: { HPAYMT: 'all' },
    defaultPurpose: 'HPAYMT',
    // Payment may use what HIPAA permits; substance use disorder claims need the patient's consent (42 CFR 2.33).
    clearance: { HPAYMT: treatingClearance },
    rate: { requestsPerMinute: 600, inFlight: 10, patientsPerHour: 20_000 },
    maxCost: 50_000,
    patients: 'organization',
    directory: 'all',
    fields: {
      ...records,
      directory: allow,
      ...identifiedDemographics,
      managingOrganization: allow,
      coverage: allow,
      memberId: allow,
      ...billingRecord,
      writePayment: allow,
    },
  },
  patient: {
    description: 'The patient: their own record only, SSN masked.',
    purposes: { PATRQT: 'all' },
    defaultPurpose: 'PATRQT',
    // A patient's own record, all of it (HIPAA right of access).
    clearance: { PATRQT: SENSITIVITIES },
    rate: { requestsPerMinute: 120, inFlight: 5, patientsPerHour: 1 },
    maxCost: 5_000,
    patients: 'self',
    directory: 'all',
    fields: {
      ...records,
      directory: allow,
      ...identifiedDemographics,
      careTeam: allow,
      managingOrganization: allow,
      ...clinicalRecord,
      ...clinicalText,
      clinicalNote: allow,
      clinicalDate: allow,
      careParticipant: allow,
      coverage: allow,
      memberId: allow,
      ...billingRecord,
      writeContact: allow,
      disclosures: allow,
      consents: allow,
      writeConsent: allow,
    },
  },
  researcher: {
    description: 'De-identified research cohort (HIPAA Safe Harbor): no names, contact, SSN, MRN, street or dates below the year.',
    purposes: { HRESCH: 'all' },
    defaultPurpose: 'HRESCH',
    // The research cohort's consent does not extend to sensitive records.
    clearance: {},
    rate: { requestsPerMinute: 300, inFlight: 5, patientsPerHour: 50_000 },
    maxCost: 50_000,
    patients: 'researchCohort',
    directory: 'none',
    fields: {
      ...records,
      // Record ids as pseudonyms of the study named in the token: a study can count and join its rows, never link them to another study or to a person.
      recordId: mask('studyPseudonym'),
      birthDate: mask('birthYear'),
      ageGroup: allow,
      gender: allow,
      addressRegion: allow,
      postalCode: mask('zip3'),
      ...clinicalRecord,
    },
  },
  partner: {
    description:
      'A partner organization (a pharmacy, a payer, a care-coordination service): at most this narrow set, of it only what its sharing agreement grants, only for patients who consented to share with it; never more than a treating clinician sees.',
    purposes: { TREAT: 'all', HPAYMT: forPayment },
    defaultPurpose: 'TREAT',
    // Nothing by role: only what the patient's own consent names (src/policy/consent.ts).
    clearance: {},
    rate: { requestsPerMinute: 300, inFlight: 10, patientsPerHour: 500 },
    maxCost: 5_000,
    patients: 'partnerConsent',
    directory: 'all',
    boundBySharingAgreement: true,
    fields: {
      ...records,
      directory: allow,
      name: allow,
      birthDate: allow,
      gender: allow,
      contact: allow,
      medication: allow,
      freeText: allow,
      careParticipant: allow,
      allergy: allow,
      coverage: allow,
      // As a treating clinician sees it: a partner never sees a field more fully (test/policy.test.ts).
      memberId: mask('last4'),
    },
  },
  auditor: {
    description: 'Reviews access: identifies records (MRN, name, organization), reads no clinical or billing content.',
    purposes: { HOPERAT: 'all' },
    defaultPurpose: 'HOPERAT',
    clearance: {},
    rate: { requestsPerMinute: 300, inFlight: 10, patientsPerHour: 5_000 },
    maxCost: 20_000,
    patients: 'organization',
    directory: 'all',
    fields: { ...records, directory: allow, mrn: allow, name: allow, managingOrganization: allow, auditLog: allow },
  },
  admin: {
    description:
      'Administers the care teams of its organization: identifies records, reads no clinical or billing content; cannot add its own practitioner, nor act while its token carries a care-team role; every change is audited and alerted.',
    purposes: { HOPERAT: 'all', HSYSADMIN: 'all' },
    defaultPurpose: 'HOPERAT',
    clearance: {},
    rate: { requestsPerMinute: 300, inFlight: 10, patientsPerHour: 5_000 },
    maxCost: 5_000,
    patients: 'organization',
    directory: 'all',
    fields: { ...records, directory: allow, mrn: allow, name: allow, careTeam: allow, managingOrganization: allow, writeCareTeam: allow },
  },
  privacyOfficer: {
    description:
      'Reviews break-the-glass access in its organization: who broke the glass, for which patient (MRN, name), the reason given, the kinds of data read and the audit of the access; never the clinical values. Closes each review with an outcome.',
    purposes: { HOPERAT: 'all' },
    defaultPurpose: 'HOPERAT',
    clearance: {},
    rate: { requestsPerMinute: 300, inFlight: 10, patientsPerHour: 1_000 },
    // A page of reviews, each with the audit events of its access.
    maxCost: 20_000,
    patients: 'organization',
    directory: 'all',
    fields: { ...records, directory: allow, mrn: allow, name: allow, managingOrganization: allow, emergencyReview: allow, consents: allow, writeConsent: allow },
  },
  integrator: {
    description: 'Builds integrations: introspects its schema view, reads no data.',
    purposes: { HSYSADMIN: 'all' },
    defaultPurpose: 'HSYSADMIN',
    clearance: {},
    rate: { requestsPerMinute: 120, inFlight: 5, patientsPerHour: 0 },
    maxCost: 1_000,
    patients: 'none',
    directory: 'none',
    fields: { ...always },
  },
};

/** Distinct patients one principal may read under break-the-glass grants per hour: stricter than any role's budget. */
export const EMERGENCY_PATIENTS_PER_HOUR = 10;

/** Roles that may introspect the schema (each sees its own view). */
export const INTROSPECTION_ROLES: readonly Role[] = ['integrator', 'admin'];
