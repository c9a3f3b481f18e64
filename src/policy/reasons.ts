import type { Role } from '../auth/index.js';
import type { Category } from './categories.js';

/**
 * Why each role gets what it gets: one line per decision, for compliance
 * review (docs/access-matrix.md prints them beside the decisions). Every
 * decision that is not a denial must have its reason here (a test checks
 * it); a denial without one is explained by DEFAULT_DENIAL. Reasons for
 * denials are given where the denial is not obvious.
 */
export const DEFAULT_DENIAL = 'Not needed for this role\'s work: denied by default (minimum necessary).';

type Reasons = Partial<Record<Category, string>>;

const plumbing: Reasons = {
  self: 'Its own token facts, to show who it is signed in as.',
  structure: 'Connections and value shapes carry nothing of their own; the field that leads to them decides.',
  recordId: 'Opaque ids to navigate and refer to the records it may see.',
  recordLink: 'Links from a record to its patient, so lists can be joined; the patient\'s own fields decide what is shown.',
  patientLookup: 'Entry points to find the patients of its row scope (the row scope decides which).',
  directory: 'Practitioners, organizations and care teams: a directory, not PHI.',
};

/** Identifying and contact data for those who treat, bill or are the patient. */
const identified = (who: string): Reasons => ({
  mrn: `Matches the record to the patient in front of ${who}.`,
  ssn: 'Last four digits suffice to confirm identity; the full number is never needed to treat or bill.',
  name: `Addresses and identifies the patient ${who} serves.`,
  birthDate: 'Identity check and age-dependent decisions.',
  ageGroup: 'Derived from the birth date it already reads.',
  gender: 'Clinical and administrative relevance (dosing, screening, forms).',
  addressStreet: 'Correspondence, home care and billing addresses.',
  addressRegion: 'State drives licensure, coverage and reporting rules.',
  postalCode: 'Part of the postal address.',
  contact: 'Reaching the patient about care, appointments and bills.',
});

const treating: Reasons = {
  careTeam: 'Knows who else treats the patient.',
  managingOrganization: 'Knows which organization holds the record.',
  encounter: 'Treatment needs the history of visits.',
  condition: 'Treatment needs the diagnoses.',
  medication: 'Prescribing and reconciliation need current medications.',
  observation: 'Results drive treatment decisions.',
  allergy: 'Safety: allergies are checked before any order.',
  freeText: 'Dosage instructions and reactions as written are part of safe treatment.',
  clinicalDate: 'When things happened matters clinically.',
  careParticipant: 'Who saw, prescribed for or wrote about the patient, to coordinate care.',
  coverage: 'Prescribing and referrals depend on coverage.',
  memberId: 'Last four characters identify the card on file; the full id is billing\'s.',
};

export const REASONS: Record<Role, Reasons> = {
  clinician: {
    ...plumbing,
    ...identified('the clinician'),
    ...treating,
    clinicalNote: 'Clinicians write and read the notes of the patients they treat.',
    emergencyAccess: 'Break the glass for a patient outside its care teams in an emergency, with a reason, time-boxed and audited.',
    writeClinicalNote: 'Documents the care it gives.',
    writeCondition: 'Records the diagnoses it makes.',
  },
  nurse: {
    ...plumbing,
    ...identified('the nurse'),
    ...treating,
    clinicalNote: 'Not needed for nursing care beyond the structured record: notes stay with physicians (minimum necessary).',
  },
  billing: {
    ...plumbing,
    ...identified('billing'),
    managingOrganization: 'Bills on behalf of the organization that holds the record.',
    coverage: 'Claims go to the payer on the coverage.',
    memberId: 'Claims must carry the full member id.',
    claim: 'Prepares and follows claims.',
    diagnosisCodes: 'Claims must carry diagnosis codes; billing sees them only as billed, never the clinical record.',
    invoice: 'Issues and follows invoices.',
    payment: 'Records and reconciles payments.',
    writePayment: 'Records payments against invoices.',
    encounter: 'No clinical content: what a claim needs is on the claim (minimum necessary).',
  },
  patient: {
    ...plumbing,
    ...identified('the patient'),
    ...treating,
    ssn: 'Masked even to its own subject: the full number is never shown by this API.',
    memberId: 'Its own insurance card.',
    clinicalNote: 'A patient has the right to access its own record (HIPAA right of access).',
    claim: 'Its own claims (right of access).',
    diagnosisCodes: 'The diagnoses billed for its own care.',
    invoice: 'Its own bills.',
    payment: 'Its own payments.',
    writeContact: 'Keeps its own phone, email and address current.',
    disclosures: 'Accounting of disclosures: who read its record (HIPAA).',
    consents: 'Its own consents: who may read its record and its sensitive data.',
    writeConsent: 'Grants and revokes its own consents (42 CFR Part 2, HIPAA authorizations).',
  },
  researcher: {
    ...plumbing,
    recordId: 'Pseudonyms of its study: a study can count and join its rows, never link them to a person or to another study.',
    patientLookup: 'Entry points into the research cohort; no lookup by identifier.',
    directory: 'Practitioners and organizations would identify where and by whom the patient was seen.',
    birthDate: 'Safe Harbor allows the year of birth, and nothing for ages over 89.',
    ageGroup: 'Age bands, 90+ grouped, as Safe Harbor allows.',
    gender: 'Not an identifier under Safe Harbor; needed for analysis.',
    addressRegion: 'Safe Harbor allows the state.',
    postalCode: 'Safe Harbor allows the first three ZIP digits, 000 for sparse areas.',
    encounter: 'Coded clinical data is what research analyses.',
    condition: 'Coded clinical data is what research analyses.',
    medication: 'Coded clinical data is what research analyses.',
    observation: 'Coded clinical data is what research analyses.',
    allergy: 'Coded clinical data is what research analyses.',
    name: 'A Safe Harbor identifier.',
    mrn: 'A Safe Harbor identifier; no lookup by it either.',
    contact: 'A Safe Harbor identifier.',
    addressStreet: 'A Safe Harbor identifier.',
    clinicalDate: 'Dates below the year are Safe Harbor identifiers.',
    freeText: 'Free text can name people, places and dates that no de-identification has removed.',
    clinicalNote: 'Free text can name people, places and dates that no de-identification has removed.',
  },
  partner: {
    ...plumbing,
    name: 'Identifies the patient it serves (and only within its sharing agreement).',
    birthDate: 'Identity check before dispensing or enrolling.',
    gender: 'Dosing and eligibility.',
    contact: 'Reaching the patient about the service it provides.',
    medication: 'What was prescribed: dispensing and medication reconciliation.',
    freeText: 'Dosage instructions and reactions as written, to dispense safely.',
    careParticipant: 'Who prescribed, to contact them.',
    allergy: 'Allergies are checked before dispensing.',
    coverage: 'Eligibility and billing of the service it provides.',
    memberId: 'As a treating clinician sees it (last four): a partner never sees a field more fully.',
    mrn: 'The provider\'s internal identifier is not the partner\'s to hold.',
    ssn: 'Never needed by a partner.',
  },
  auditor: {
    ...plumbing,
    mrn: 'Names the record an audit event is about.',
    name: 'Names the patient an audit event is about.',
    managingOrganization: 'Audits are scoped to its organization.',
    auditLog: 'Reviews who read or was refused what.',
    clinicalNote: 'An auditor reviews access, not content.',
  },
  admin: {
    ...plumbing,
    mrn: 'Identifies the records of its organization for administration.',
    name: 'Identifies the patients of its organization for administration.',
    careTeam: 'Manages which care team treats whom.',
    managingOrganization: 'Administers its own organization\'s records only.',
    writeCareTeam: 'Adds practitioners to care teams: never itself, never while its token carries a care-team role; audited and alerted.',
    clinicalNote: 'Administration needs no clinical or billing content.',
  },
  privacyOfficer: {
    ...plumbing,
    mrn: 'Names the record a break-the-glass access was about.',
    name: 'Names the patient a break-the-glass access was about.',
    managingOrganization: 'Reviews are scoped to its organization.',
    emergencyReview: 'Reviews each break-the-glass access (who, why, which kinds of data) and closes it with an outcome.',
    consents: 'Keeps the consents of its organization\'s patients: what they permit and deny, never the records.',
    writeConsent: 'Records consents and revocations patients signed on paper, and imports FHIR Consents.',
    condition: 'Reviews access, never the clinical values read under it.',
    clinicalNote: 'Reviews access, never the clinical values read under it.',
  },
  integrator: {
    self: 'Its own token facts.',
    structure: 'Value shapes; nothing of their own.',
    recordId: 'Builds integrations against its schema view: reads no data, not even ids.',
  },
};

export function reasonFor(role: Role, category: Category): string | undefined {
  return REASONS[role][category];
}
