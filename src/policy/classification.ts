import type { Category } from './categories.js';

/**
 * Which category each field of the API belongs to, type by type. A field
 * missing here is denied to everyone (and a test fails on it), so a new
 * field is readable only after someone classifies it.
 */
export const CLASSIFICATION: Record<string, Record<string, Category>> = {
  Query: { viewer: 'self', patient: 'patientLookup', patients: 'patientLookup', patientByMrn: 'patientLookup' },
  Viewer: {
    subject: 'self',
    roles: 'self',
    organizationId: 'self',
    patientId: 'self',
    mfa: 'self',
    tokenExpiresAt: 'self',
    requestId: 'self',
  },
  Patient: {
    id: 'recordId',
    mrn: 'mrn',
    name: 'name',
    birthDate: 'birthDate',
    ageGroup: 'ageGroup',
    gender: 'gender',
    ssn: 'ssn',
    address: 'addressRegion',
    phone: 'contact',
    email: 'contact',
    careTeam: 'careTeam',
    managingOrganization: 'managingOrganization',
    encounters: 'encounter',
    conditions: 'condition',
    medicationRequests: 'medication',
    observations: 'observation',
    allergyIntolerances: 'allergy',
    clinicalNotes: 'clinicalNote',
    coverages: 'coverage',
    claims: 'claim',
    invoices: 'invoice',
    payments: 'payment',
  },
  Address: { line: 'addressStreet', city: 'addressStreet', state: 'addressRegion', postalCode: 'postalCode' },
  CareTeam: { id: 'recordId', name: 'directory', managingOrganization: 'directory', members: 'directory' },
  Practitioner: { id: 'recordId', name: 'directory', npi: 'directory', qualification: 'directory' },
  Organization: { id: 'recordId', name: 'directory', type: 'directory' },
  Encounter: {
    id: 'recordId',
    patient: 'recordId',
    status: 'encounter',
    class: 'encounter',
    type: 'encounter',
    period: 'clinicalDate',
    practitioner: 'careParticipant',
  },
  Condition: {
    id: 'recordId',
    patient: 'recordId',
    code: 'condition',
    clinicalStatus: 'condition',
    onsetDate: 'clinicalDate',
    recordedDate: 'clinicalDate',
    encounter: 'encounter',
  },
  MedicationRequest: {
    id: 'recordId',
    patient: 'recordId',
    medication: 'medication',
    dosageInstruction: 'medication',
    status: 'medication',
    authoredOn: 'clinicalDate',
    requester: 'careParticipant',
  },
  Observation: {
    id: 'recordId',
    patient: 'recordId',
    code: 'observation',
    value: 'observation',
    unit: 'observation',
    effectiveAt: 'clinicalDate',
    encounter: 'encounter',
  },
  AllergyIntolerance: {
    id: 'recordId',
    patient: 'recordId',
    code: 'allergy',
    criticality: 'allergy',
    reaction: 'allergy',
    recordedDate: 'clinicalDate',
  },
  ClinicalNote: {
    id: 'recordId',
    patient: 'recordId',
    type: 'clinicalNote',
    text: 'clinicalNote',
    author: 'careParticipant',
    encounter: 'encounter',
    createdAt: 'clinicalDate',
  },
  Coverage: { id: 'recordId', patient: 'recordId', payer: 'coverage', memberId: 'memberId', plan: 'coverage', status: 'coverage', period: 'coverage' },
  Claim: {
    id: 'recordId',
    patient: 'recordId',
    coverage: 'claim',
    status: 'claim',
    total: 'claim',
    diagnosisCodes: 'diagnosisCodes',
    createdAt: 'claim',
  },
  Invoice: { id: 'recordId', patient: 'recordId', claim: 'invoice', status: 'invoice', total: 'invoice', balance: 'invoice', issuedAt: 'invoice' },
  Payment: { id: 'recordId', patient: 'recordId', invoice: 'payment', amount: 'payment', method: 'payment', receivedAt: 'payment' },
  // Value shapes and pagination: reachable only through a field decided above.
  HumanName: { given: 'structure', family: 'structure', text: 'structure' },
  Coding: { system: 'structure', code: 'structure', display: 'structure' },
  Period: { start: 'structure', end: 'structure' },
  Money: { cents: 'structure', currency: 'structure', decimal: 'structure' },
  PageInfo: { hasNextPage: 'structure', endCursor: 'structure' },
  ...connection('Patient'),
  ...connection('Encounter'),
  ...connection('Condition'),
  ...connection('MedicationRequest'),
  ...connection('Observation'),
  ...connection('AllergyIntolerance'),
  ...connection('ClinicalNote'),
  ...connection('Coverage'),
  ...connection('Claim'),
  ...connection('Invoice'),
  ...connection('Payment'),
};

function connection(node: string): Record<string, Record<string, Category>> {
  return {
    [`${node}Connection`]: { edges: 'structure', pageInfo: 'structure' },
    [`${node}Edge`]: { cursor: 'structure', node: 'structure' },
  };
}

export function categoryOf(type: string, field: string): Category | undefined {
  return CLASSIFICATION[type]?.[field];
}
