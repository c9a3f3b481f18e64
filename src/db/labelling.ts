import type { EntityManager } from '@mikro-orm/sql';
import { CryptoError } from '../crypto/errors.js';
import { toBuffer } from '../crypto/index.js';
import { CodeSystem } from '../subgraphs/codes.js';
import { labelsOfCodes, noteLabels, textArrayLiteral, type SecurityLabelCode } from '../policy/sensitivity.js';
import { CRYPTO_VERSION_ENCRYPTED, ENCRYPTED_TABLES, type Sealer, sealRow } from './encryption.js';
import type { Database } from './orm.js';

/**
 * The labelling step: rows written before sensitivity labels existed (null
 * `security_labels`) get their labels from their codes, and their encrypted
 * values are sealed again with the labels bound. Batch by batch, each row
 * once, locked and skipped by a second worker; safe to stop and run again.
 * Runs at start outside production (after the encryption step), and as
 * `npm run data:label`.
 * Until it has run, null-labelled rows are withheld from any request not
 * cleared for every category (src/subgraphs/sensitive-rows.ts).
 */
type Row = Record<string, unknown>;

export interface LabellingResult {
  labelled: number;
  /** Rows whose values did not decrypt (tampered): left unlabelled, so withheld; named for the operator, never their values. */
  unreadable: { table: string; rowId: string; reason: string }[];
}

const BATCH = 500;
const FIRST_ID = '00000000-0000-0000-0000-000000000000';

/** How one table's rows are labelled: what to read, and the labels of a row (null: unreadable). */
interface Labeller {
  table: string;
  /** Plaintext columns read besides the encrypted ones. */
  extra: readonly string[];
  /** The row's labels; null: not yet (what they depend on is not labelled yet). */
  labels(row: Row, plaintext: Row, em: EntityManager): Promise<SecurityLabelCode[] | null>;
}

const LABELLERS: readonly Labeller[] = [
  {
    table: 'condition',
    extra: [],
    labels: (_row, plain) => Promise.resolve(labelsOfCodes([{ system: CodeSystem.icd10cm, code: text(plain['code']) }])),
  },
  {
    table: 'medication_request',
    extra: ['rxnorm_code'],
    labels: (row) => Promise.resolve(labelsOfCodes([{ system: CodeSystem.rxnorm, code: text(row['rxnorm_code']) }])),
  },
  {
    table: 'claim',
    extra: [],
    labels: (_row, plain) => Promise.resolve(labelsOfCodes(claimCodes(plain['diagnosis_codes']).map((code) => ({ system: CodeSystem.icd10cm, code })))),
  },
  {
    // After conditions: a note takes the labels of its encounter's diagnoses.
    table: 'clinical_note',
    extra: ['encounter_id'],
    labels: async (row, plain, em) => {
      const encounterId = row['encounter_id'];
      const diagnoses = encounterId
        ? await em.execute<{ security_labels: string[] | null }[]>('select "security_labels" from "condition" where "encounter_id" = ?', [encounterId])
        : [];
      if (diagnoses.some((diagnosis) => diagnosis.security_labels === null)) return null;
      return noteLabels(text(plain['text']), diagnoses.map((diagnosis) => diagnosis.security_labels));
    },
  },
];

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function claimCodes(json: unknown): string[] {
  try {
    const parsed = JSON.parse(typeof json === 'string' ? json : '[]') as unknown;
    return Array.isArray(parsed) ? parsed.filter((code): code is string => typeof code === 'string') : [];
  } catch {
    return [];
  }
}

export async function labelUnlabelledRows(db: Database, sealer: Sealer, options: { batchSize?: number } = {}): Promise<LabellingResult> {
  const result: LabellingResult = { labelled: 0, unreadable: [] };
  const batchSize = options.batchSize ?? BATCH;
  for (const labeller of LABELLERS) {
    const spec = ENCRYPTED_TABLES[labeller.table];
    const encrypted = spec?.columns ?? [];
    const columns = ['id', ...encrypted, ...labeller.extra, ...(spec ? ['crypto_version'] : [])].map((column) => `"${column}"`).join(', ');
    // Plaintext rows (crypto_version 0) are the encryption step's: labelled once it has encrypted them.
    const where = `"security_labels" is null${spec ? ` and "crypto_version" = ${CRYPTO_VERSION_ENCRYPTED}` : ''}`;
    let after = FIRST_ID;
    for (;;) {
      const { taken, last } = await db.fork().transactional(async (em) => {
        const rows = await em.execute<Row[]>(`select ${columns} from "${labeller.table}" where ${where} and "id" > ? order by "id" limit ? for update skip locked`, [after, batchSize]);
        for (const row of rows) {
          const id = String(row['id']);
          const plain: Row = { id };
          try {
            // Unlabelled values are bound to the row id alone.
            for (const column of encrypted) {
              const value = row[column] as Uint8Array | null;
              plain[column] = value === null ? null : await sealer.cipher.decrypt(toBuffer(value), { table: labeller.table, column, rowId: id });
            }
          } catch (error) {
            if (!(error instanceof CryptoError)) throw error;
            result.unreadable.push({ table: labeller.table, rowId: id, reason: error.failure });
            continue;
          }
          const labels = await labeller.labels(row, plain, em);
          // A note whose encounter's diagnoses are not all labelled yet waits for the next run (it stays withheld meanwhile).
          if (labels === null) continue;
          // Sealed again even with no labels: a labelled row (`{}` included) is bound differently from one never labelled.
          if (spec) {
            const sealed = await sealRow(labeller.table, { ...plain, security_labels: labels }, sealer);
            await em.execute(
              `update "${labeller.table}" set ${encrypted.map((column) => `"${column}" = ?`).join(', ')}, "security_labels" = ?::text[] where "id" = ?`,
              [...encrypted.map((column) => sealed[column] ?? null), textArrayLiteral(labels), id],
              'run',
            );
          } else {
            await em.execute(`update "${labeller.table}" set "security_labels" = ?::text[] where "id" = ?`, [textArrayLiteral(labels), id], 'run');
          }
          result.labelled += 1;
        }
        return { taken: rows.length, last: rows.at(-1)?.['id'] };
      });
      if (taken < batchSize || typeof last !== 'string') break;
      after = last;
    }
  }
  return result;
}
