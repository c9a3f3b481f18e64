/**
 * From generated rows to the rows written to the database.
 *
 * The generator (generate.ts) produces domain rows: plain values, arrays for
 * multi-valued fields. The database stores the PHI columns as ciphertext
 * (db/encryption.ts), so each row is first brought to its stored plaintext
 * shape (every encrypted column a string: JSON for the patient's name and
 * address lines and for a claim's diagnosis codes) and then sealed:
 * encrypted, bound to its table, column and row id, with blind indexes and
 * crypto_version 1. Rows of tables without encrypted columns pass unchanged.
 */
import { ENCRYPTED_TABLES, sealRow, type Sealer } from '../encryption.js';
import { TABLE_NAMES, emptyRows, type ClaimRow, type PatientRow, type SeedRows, type TableName } from './generate.js';

/** A patient before encryption: the encrypted columns as the strings that are encrypted. */
export type PlaintextPatientRow = Omit<PatientRow, 'given_names' | 'family_name' | 'address_lines'> & {
  /** JSON {"given": [...], "family": "..."} */
  name: string;
  /** JSON array of street lines */
  address_lines: string | null;
};

/** A claim before encryption. */
export type PlaintextClaimRow = Omit<ClaimRow, 'diagnosis_codes'> & {
  /** JSON array of ICD-10-CM codes */
  diagnosis_codes: string;
};

export type PlaintextRow<T extends TableName> = T extends 'patient' ? PlaintextPatientRow : T extends 'claim' ? PlaintextClaimRow : SeedRows[T][number];

type EncryptedSeedTable = 'patient' | 'clinical_note' | 'condition' | 'observation' | 'coverage' | 'claim';
/** Columns that sealing adds: blind indexes and crypto_version. */
type SealingColumn<T extends TableName> = T extends 'patient'
  ? 'mrn_index' | 'ssn_index' | 'email_index' | 'crypto_version'
  : T extends EncryptedSeedTable
    ? 'crypto_version'
    : never;

/** Column lists for INSERT, as stored (after sealing), per table. */
export const STORED_COLUMNS: { readonly [T in TableName]: readonly ((keyof PlaintextRow<T> & string) | SealingColumn<T>)[] } = {
  organization: ['id', 'name', 'type', 'shared_categories'],
  practitioner: ['id', 'organization_id', 'given_names', 'family_name', 'npi', 'qualification'],
  care_team: ['id', 'organization_id', 'name'],
  care_team_member: ['care_team_id', 'practitioner_id'],
  patient: [
    'id', 'mrn', 'mrn_index', 'name', 'birth_date', 'gender', 'ssn', 'ssn_index', 'address_lines', 'city', 'state',
    'postal_code', 'phone', 'email', 'email_index', 'crypto_version', 'managing_organization_id', 'care_team_id',
  ],
  encounter: ['id', 'patient_id', 'status', 'class', 'type_code', 'type_display', 'period_start', 'period_end', 'practitioner_id'],
  condition: ['id', 'patient_id', 'encounter_id', 'code', 'display', 'crypto_version', 'clinical_status', 'onset_date', 'recorded_date', 'security_labels'],
  medication_request: ['id', 'patient_id', 'rxnorm_code', 'display', 'dosage_instruction', 'status', 'authored_on', 'requester_id', 'security_labels'],
  observation: ['id', 'patient_id', 'encounter_id', 'loinc_code', 'display', 'value', 'crypto_version', 'unit', 'effective_at'],
  allergy_intolerance: ['id', 'patient_id', 'snomed_code', 'display', 'criticality', 'reaction', 'recorded_date'],
  clinical_note: ['id', 'patient_id', 'encounter_id', 'author_id', 'type_code', 'type_display', 'text', 'crypto_version', 'created_at', 'security_labels'],
  coverage: ['id', 'patient_id', 'payer', 'member_id', 'crypto_version', 'plan', 'status', 'period_start', 'period_end'],
  claim: ['id', 'patient_id', 'coverage_id', 'encounter_id', 'status', 'total_cents', 'currency', 'diagnosis_codes', 'crypto_version', 'created_at', 'security_labels'],
  invoice: ['id', 'patient_id', 'claim_id', 'status', 'total_cents', 'balance_cents', 'currency', 'issued_at'],
  payment: ['id', 'patient_id', 'invoice_id', 'amount_cents', 'currency', 'method', 'received_at'],
  consent: [
    'id', 'patient_id', 'organization_id', 'scope', 'status', 'period_start', 'period_end', 'decision', 'actor_role', 'purposes', 'sensitivities', 'source',
    'recorded_by', 'recorded_at', 'revoked_at',
  ],
  app_user: ['id', 'subject', 'roles', 'organization_id', 'practitioner_id', 'patient_id'],
};

export function plaintextPatient(row: PatientRow): PlaintextPatientRow {
  return {
    id: row.id,
    mrn: row.mrn,
    name: JSON.stringify({ given: row.given_names, family: row.family_name }),
    birth_date: row.birth_date,
    gender: row.gender,
    ssn: row.ssn,
    address_lines: row.address_lines === null ? null : JSON.stringify(row.address_lines),
    city: row.city,
    state: row.state,
    postal_code: row.postal_code,
    phone: row.phone,
    email: row.email,
    managing_organization_id: row.managing_organization_id,
    care_team_id: row.care_team_id,
  };
}

export function plaintextClaim(row: ClaimRow): PlaintextClaimRow {
  return { ...row, diagnosis_codes: JSON.stringify(row.diagnosis_codes) };
}

/** A generated row in its stored plaintext shape (a new object for patients and claims, the row itself otherwise). */
export function toPlaintextRow<T extends TableName>(table: T, row: SeedRows[T][number]): PlaintextRow<T> {
  if (table === 'patient') return plaintextPatient(row as PatientRow) as PlaintextRow<T>;
  if (table === 'claim') return plaintextClaim(row as ClaimRow) as PlaintextRow<T>;
  return row as PlaintextRow<T>;
}

/** A row as written: Buffers of ciphertext and blind indexes in the encrypted tables. */
export type StoredRow = Readonly<Record<string, unknown>>;
export type StoredRows = { [T in TableName]: StoredRow[] };

/** Brings every row of a batch to its stored form (encrypting the PHI columns). */
export async function sealBatch(batch: SeedRows, sealer: Sealer): Promise<StoredRows> {
  const stored = emptyRows() as unknown as StoredRows;
  for (const table of TABLE_NAMES) {
    const rows = batch[table] as SeedRows[TableName][number][];
    if (!(table in ENCRYPTED_TABLES)) {
      stored[table] = rows;
      continue;
    }
    const sealed: StoredRow[] = [];
    for (const row of rows) sealed.push(await sealRow(table, toPlaintextRow(table, row), sealer));
    stored[table] = sealed;
  }
  return stored;
}
