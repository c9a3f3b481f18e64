/**
 * Data categories: every field of the API belongs to exactly one. The
 * access policy decides per role and category; the classification
 * (classification.ts) says which category each Type.field is in.
 *
 * `phi: true` marks protected health information: reading it needs a token
 * whose `amr` says MFA was used, and (later) every read is audited.
 */
export const CATEGORIES = {
  self: { phi: false, description: 'The caller\'s own token facts (Viewer)' },
  structure: { phi: false, description: 'Connections, edges, page info and value shapes (Coding, Period, Money, HumanName); decided at the field that leads to them' },
  recordId: { phi: false, description: 'Opaque record ids (a researcher sees its study\'s pseudonyms instead)' },
  recordLink: { phi: false, description: 'Links from a record to the patient it belongs to (the linked record\'s id follows its own rule)' },
  patientLookup: { phi: false, description: 'Entry points that find patients (Query.patient, patients, patientByMrn)' },
  directory: { phi: false, description: 'Practitioners, organizations and care teams as a directory' },
  mrn: { phi: true, description: 'Medical record number' },
  ssn: { phi: true, description: 'Social security number' },
  name: { phi: true, description: 'Patient name' },
  birthDate: { phi: true, description: 'Date of birth' },
  ageGroup: { phi: true, description: 'Age band (0-17 ... 90+)' },
  gender: { phi: true, description: 'Administrative gender' },
  addressStreet: { phi: true, description: 'Street lines and city' },
  addressRegion: { phi: true, description: 'State (and access to the address object)' },
  postalCode: { phi: true, description: 'ZIP code' },
  contact: { phi: true, description: 'Phone and email' },
  careTeam: { phi: true, description: 'Which care team treats the patient' },
  managingOrganization: { phi: true, description: 'Which organization holds the record' },
  encounter: { phi: true, description: 'Encounters: class, type, status, practitioner' },
  condition: { phi: true, description: 'Diagnoses (ICD-10-CM) and their status' },
  medication: { phi: true, description: 'Medication requests (RxNorm) and dosage' },
  observation: { phi: true, description: 'Observations (LOINC) and values' },
  allergy: { phi: true, description: 'Allergies and intolerances' },
  clinicalNote: { phi: true, description: 'Free-text clinical notes' },
  freeText: { phi: true, description: 'Free text beside coded data: dosage instructions, allergic reactions (can name people, places and dates)' },
  careParticipant: { phi: true, description: 'Which practitioner saw, prescribed for or wrote about the patient' },
  clinicalDate: { phi: true, description: 'Dates of clinical events (a Safe Harbor identifier)' },
  coverage: { phi: true, description: 'Insurance coverage: payer, plan, status, period' },
  memberId: { phi: true, description: 'Insurance member id' },
  claim: { phi: true, description: 'Claims: status, totals, dates' },
  diagnosisCodes: { phi: true, description: 'Diagnosis codes billed on claims' },
  invoice: { phi: true, description: 'Invoices: totals, balances, dates' },
  payment: { phi: true, description: 'Payments: amounts, methods, dates' },
  auditLog: { phi: true, description: 'The audit trail: who read or was refused which field of which patient' },
  disclosures: { phi: true, description: 'Accounting of disclosures of one\'s own record' },
  writeContact: { phi: true, description: 'Change phone, email and address of one\'s own record' },
  writeCareTeam: { phi: true, description: 'Add practitioners to care teams (changes who sees which patients)' },
  emergencyAccess: { phi: true, description: 'Break the glass: open time-boxed access to a patient outside one\'s care teams' },
  emergencyReview: { phi: true, description: 'Review of break-the-glass access: who, which patient, the reason given, the kinds of data read and the audit of it (never the values); closing a review with an outcome' },
  consents: { phi: true, description: 'A patient\'s consents: who may read the record and which sensitive data, for which purposes, for how long' },
  writeConsent: { phi: true, description: 'Grant, revoke, record (signed on paper) and import consents' },
  writeClinicalNote: { phi: true, description: 'Add clinical notes' },
  writeCondition: { phi: true, description: 'Record diagnoses' },
  writePayment: { phi: true, description: 'Record payments against invoices' },
} as const satisfies Record<string, { phi: boolean; description: string }>;

export type Category = keyof typeof CATEGORIES;

export const CATEGORY_NAMES = Object.keys(CATEGORIES) as Category[];

export function isPhi(category: Category): boolean {
  return CATEGORIES[category].phi;
}
