/**
 * Which stored columns each @encrypted field of the API reads. The SDL
 * marks, this map, db/encryption.ts and the ORM's bytea columns are kept in
 * step by a test: a field marked in the SDL but stored in plaintext, or
 * the reverse, fails it.
 */
export const ENCRYPTED_FIELDS: Readonly<Record<string, readonly string[]>> = {
  'Patient.mrn': ['patient.mrn'],
  'Patient.name': ['patient.name'],
  'Patient.birthDate': ['patient.birth_date'],
  'Patient.ageGroup': ['patient.birth_date'],
  'Patient.ssn': ['patient.ssn'],
  'Patient.phone': ['patient.phone'],
  'Patient.email': ['patient.email'],
  'Address.line': ['patient.address_lines'],
  'Address.city': ['patient.city'],
  'Address.state': ['patient.state'],
  'Address.postalCode': ['patient.postal_code'],
  'ClinicalNote.text': ['clinical_note.text'],
  'Condition.code': ['condition.code', 'condition.display'],
  'Observation.value': ['observation.value'],
  'Coverage.memberId': ['coverage.member_id'],
  'Claim.diagnosisCodes': ['claim.diagnosis_codes'],
};
