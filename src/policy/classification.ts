import type { Category } from './categories.js';

/**
 * Which category each field of the API belongs to, type by type. A field
 * missing here is denied to everyone (and a test fails on it), so a new
 * field is readable only after someone classifies it.
 */
export const CLASSIFICATION: Record<string, Record<string, Category>> = {
  Query: {
    viewer: 'self',
    patient: 'patientLookup',
    patients: 'patientLookup',
    patientByMrn: 'patientLookup',
    auditEvents: 'auditLog',
    myDisclosures: 'disclosures',
    emergencyReviews: 'emergencyReview',
  },
  // Audit records and disclosures: decided at the query field that leads to them.
  AuditEvent: Object.fromEntries(
    ['id', 'recordedAt', 'requestId', 'subgraph', 'subject', 'roles', 'organizationId', 'clientName', 'clientVersion', 'ip', 'operationName', 'operationHash', 'patientId', 'entityType', 'entityId', 'action', 'fields', 'emergency', 'emergencyGrantId', 'purpose'].map(
      (field) => [field, 'structure'],
    ),
  ),
  AuditedField: { field: 'structure', outcome: 'structure', reason: 'structure' },
  // Decided at the query field and mutation that lead to them; the patient follows its own rules.
  EmergencyReview: {
    ...Object.fromEntries(
      ['id', 'accessedBy', 'reason', 'openedAt', 'accessEndsAt', 'dueAt', 'overdue', 'status', 'outcome', 'note', 'reviewer', 'closedAt', 'dataKinds', 'accessEvents', 'accessEventCount', 'sensitiveDataRequested', 'sensitiveDataRead'].map((field) => [field, 'structure']),
    ),
    patient: 'recordLink',
  },
  CloseEmergencyReviewPayload: { ok: 'structure', error: 'structure', review: 'structure' },
  Disclosure: { recordedAt: 'structure', roles: 'structure', organization: 'structure', dataKinds: 'structure', action: 'structure', emergency: 'structure', purpose: 'structure', purposeText: 'structure' },
  Mutation: {
    updateMyContact: 'writeContact',
    addCareTeamMember: 'writeCareTeam',
    openEmergencyAccess: 'emergencyAccess',
    closeEmergencyReview: 'emergencyReview',
    addClinicalNote: 'writeClinicalNote',
    addCondition: 'writeCondition',
    recordPayment: 'writePayment',
  },
  // Mutation payloads: what they lead to (a Patient, a ClinicalNote...) is guarded by its own fields.
  UpdateContactPayload: { ok: 'structure', error: 'structure', patient: 'structure' },
  AddCareTeamMemberPayload: { ok: 'structure', error: 'structure', careTeam: 'structure' },
  OpenEmergencyAccessPayload: { ok: 'structure', error: 'structure', grant: 'structure' },
  AddClinicalNotePayload: { ok: 'structure', error: 'structure', note: 'structure' },
  AddConditionPayload: { ok: 'structure', error: 'structure', condition: 'structure' },
  RecordPaymentPayload: { ok: 'structure', error: 'structure', payment: 'structure' },
  MutationError: { code: 'structure', message: 'structure', inputErrors: 'structure' },
  InputError: { field: 'structure', message: 'structure' },
  EmergencyAccessGrant: { id: 'self', patientId: 'self', expiresAt: 'self', sensitiveData: 'self' },
  Viewer: {
    emergencyAccess: 'self',
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
    patient: 'recordLink',
    status: 'encounter',
    class: 'encounter',
    type: 'encounter',
    period: 'clinicalDate',
    practitioner: 'careParticipant',
  },
  Condition: {
    id: 'recordId',
    patient: 'recordLink',
    code: 'condition',
    clinicalStatus: 'condition',
    onsetDate: 'clinicalDate',
    recordedDate: 'clinicalDate',
    encounter: 'encounter',
    // A label tells what the diagnosis is about: decided as the diagnosis.
    securityLabels: 'condition',
  },
  MedicationRequest: {
    id: 'recordId',
    patient: 'recordLink',
    medication: 'medication',
    dosageInstruction: 'freeText',
    status: 'medication',
    authoredOn: 'clinicalDate',
    requester: 'careParticipant',
    securityLabels: 'medication',
  },
  Observation: {
    id: 'recordId',
    patient: 'recordLink',
    code: 'observation',
    value: 'observation',
    unit: 'observation',
    effectiveAt: 'clinicalDate',
    encounter: 'encounter',
  },
  AllergyIntolerance: {
    id: 'recordId',
    patient: 'recordLink',
    code: 'allergy',
    criticality: 'allergy',
    reaction: 'freeText',
    recordedDate: 'clinicalDate',
  },
  ClinicalNote: {
    id: 'recordId',
    patient: 'recordLink',
    type: 'clinicalNote',
    text: 'clinicalNote',
    author: 'careParticipant',
    encounter: 'encounter',
    createdAt: 'clinicalDate',
    securityLabels: 'clinicalNote',
  },
  Coverage: { id: 'recordId', patient: 'recordLink', payer: 'coverage', memberId: 'memberId', plan: 'coverage', status: 'coverage', period: 'coverage' },
  Claim: {
    id: 'recordId',
    patient: 'recordLink',
    coverage: 'claim',
    status: 'claim',
    total: 'claim',
    diagnosisCodes: 'diagnosisCodes',
    createdAt: 'claim',
    securityLabels: 'diagnosisCodes',
  },
  Invoice: { id: 'recordId', patient: 'recordLink', claim: 'invoice', status: 'invoice', total: 'invoice', balance: 'invoice', issuedAt: 'invoice' },
  Payment: { id: 'recordId', patient: 'recordLink', invoice: 'payment', amount: 'payment', method: 'payment', receivedAt: 'payment' },
  // Value shapes and pagination: reachable only through a field decided above.
  HumanName: { given: 'structure', family: 'structure', text: 'structure' },
  Coding: { system: 'structure', code: 'structure', display: 'structure' },
  Period: { start: 'structure', end: 'structure' },
  Money: { cents: 'structure', currency: 'structure', decimal: 'structure' },
  PageInfo: { hasNextPage: 'structure', endCursor: 'structure' },
  ...connection('Patient'),
  ...connection('AuditEvent'),
  ...connection('Disclosure'),
  ...connection('EmergencyReview'),
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
