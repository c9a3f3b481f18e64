import { CryptoError } from '../crypto/errors.js';
import type { EntityManager } from '@mikro-orm/sql';
import {
  FieldCipher,
  KeyRing,
  LocalKeyManagement,
  blindIndex,
  envelopeHeader,
  loadOrCreateDevelopmentKeyRing,
  toBuffer,
  type DataKeyStore,
  type StoredDataKey,
} from '../crypto/index.js';
import type { Database } from './orm.js';

/**
 * Which columns hold ciphertext, and which have a blind index. The SDL
 * marks the same data with @encrypted (a test keeps the two in step).
 *
 * Why these: identifiers (MRN, SSN, member id), everything that names or
 * locates a person (name, birth date, address, phone, email), and the
 * clinical content most damaging if disclosed (note text, diagnoses on
 * conditions and claims, observation values). Gender stays plaintext (a
 * filter, not identifying alone), as do coded clinical metadata that carry
 * no value (LOINC code of an observation, encounter class, statuses),
 * medication and allergy codes (not identifying without the patient, kept
 * queryable), and money amounts.
 */
export type BlindIndexPurpose = 'mrn' | 'ssn' | 'email';

export interface EncryptedTable {
  columns: readonly string[];
  /** column -> purpose; the index is stored in `<column>_index`. */
  blindIndexes: Readonly<Record<string, BlindIndexPurpose>>;
  /** A column that is never null: its header tells which data key a row is under. */
  marker: string;
}

export const ENCRYPTED_TABLES: Readonly<Record<string, EncryptedTable>> = {
  patient: {
    columns: ['mrn', 'name', 'birth_date', 'ssn', 'address_lines', 'city', 'state', 'postal_code', 'phone', 'email'],
    blindIndexes: { mrn: 'mrn', ssn: 'ssn', email: 'email' },
    marker: 'name',
  },
  clinical_note: { columns: ['text'], blindIndexes: {}, marker: 'text' },
  condition: { columns: ['code', 'display'], blindIndexes: {}, marker: 'code' },
  observation: { columns: ['value'], blindIndexes: {}, marker: 'value' },
  coverage: { columns: ['member_id'], blindIndexes: {}, marker: 'member_id' },
  claim: { columns: ['diagnosis_codes'], blindIndexes: {}, marker: 'diagnosis_codes' },
};

export const CRYPTO_VERSION_ENCRYPTED = 1;

/** What the write paths need: the cipher and the blind-index key. */
export interface Sealer {
  cipher: FieldCipher;
  ring: KeyRing;
}

type Row = Record<string, unknown>;

/**
 * Turns a row of plaintext (strings in the encrypted columns) into its
 * stored form: ciphertext bound to (table, column, row id), blind indexes,
 * crypto_version 1. Rows of tables without encrypted columns pass as they are.
 */
export async function sealRow(table: string, row: Row, { cipher, ring }: Sealer): Promise<Row> {
  const spec = ENCRYPTED_TABLES[table];
  if (!spec) return row;
  const rowId = row['id'];
  if (typeof rowId !== 'string') throw new Error(`a ${table} row to encrypt has no id`);
  const sealed: Row = { ...row, crypto_version: CRYPTO_VERSION_ENCRYPTED };
  for (const column of spec.columns) {
    const value = row[column];
    if (value === null || value === undefined) {
      sealed[column] = null;
      if (spec.blindIndexes[column]) sealed[`${column}_index`] = null;
      continue;
    }
    if (typeof value !== 'string') throw new Error(`${table}.${column} must be given as a string to encrypt`);
    sealed[column] = await cipher.encrypt(value, { table, column, rowId });
    const purpose = spec.blindIndexes[column];
    if (purpose) sealed[`${column}_index`] = blindIndex(ring.blindIndexKey(), purpose, value);
  }
  return sealed;
}

export function blindIndexOf(ring: KeyRing, purpose: BlindIndexPurpose, value: string): Buffer {
  return blindIndex(ring.blindIndexKey(), purpose, value);
}

/** Data keys in the data_key table; immutable once written, so kept in memory once read. */
export class DatabaseDataKeyStore implements DataKeyStore {
  readonly #byId = new Map<number, StoredDataKey>();

  constructor(private readonly db: Database) {}

  async preload(): Promise<void> {
    const rows = await this.db.fork().execute<{ id: number; kek_version: number; wrapped: Uint8Array }[]>('select "id", "kek_version", "wrapped" from "data_key"');
    for (const row of rows) this.#remember(row);
  }

  async currentFor(kekVersion: number): Promise<StoredDataKey | null> {
    const [row] = await this.db
      .fork()
      .execute<{ id: number; kek_version: number; wrapped: Uint8Array }[]>(
        'select "id", "kek_version", "wrapped" from "data_key" where "kek_version" = ? order by "id" desc limit 1',
        [kekVersion],
      );
    return row ? this.#remember(row) : null;
  }

  async byId(id: number): Promise<StoredDataKey | null> {
    const known = this.#byId.get(id);
    if (known) return known;
    const [row] = await this.db
      .fork()
      .execute<{ id: number; kek_version: number; wrapped: Uint8Array }[]>('select "id", "kek_version", "wrapped" from "data_key" where "id" = ?', [id]);
    return row ? this.#remember(row) : null;
  }

  async create(kekVersion: number, wrapped: Buffer): Promise<StoredDataKey> {
    const [row] = await this.db
      .fork()
      .execute<{ id: number; kek_version: number; wrapped: Uint8Array }[]>(
        'insert into "data_key" ("kek_version", "wrapped", "created_at") values (?, ?, now()) returning "id", "kek_version", "wrapped"',
        [kekVersion, wrapped],
      );
    if (!row) throw new Error('the data key was not stored');
    return this.#remember(row);
  }

  #remember(row: { id: number; kek_version: number; wrapped: Uint8Array }): StoredDataKey {
    const key = { id: Number(row.id), kekVersion: Number(row.kek_version), wrapped: toBuffer(row.wrapped) };
    this.#byId.set(key.id, key);
    return key;
  }
}

export interface BatchProgress {
  table: string;
  done: number;
}

const DEFAULT_BATCH = 500;

/**
 * Rewrites rows in batches: each batch takes rows (locked, skipping rows
 * another worker holds), computes their new stored form and writes it back
 * in the same transaction. Safe to stop and run again at any point.
 */
async function rewriteInBatches(
  db: Database,
  table: string,
  where: string,
  whereParams: unknown[],
  rewrite: (row: Row, em: EntityManager) => Promise<Row>,
  options: { batchSize?: number; onProgress?: (progress: BatchProgress) => void },
): Promise<number> {
  const spec = ENCRYPTED_TABLES[table] as EncryptedTable;
  const columns = [...spec.columns, ...Object.keys(spec.blindIndexes).map((column) => `${column}_index`), 'crypto_version'];
  const batchSize = options.batchSize ?? DEFAULT_BATCH;
  let done = 0;
  for (;;) {
    const count = await db.fork().transactional(async (em) => {
      const rows = await em.execute<Row[]>(
        `select "id", ${spec.columns.map((column) => `"${column}"`).join(', ')}, "crypto_version" from "${table}" where ${where} order by "id" limit ? for update skip locked`,
        [...whereParams, batchSize],
      );
      for (const row of rows) {
        const next = await rewrite(row, em);
        await em.execute(
          `update "${table}" set ${columns.map((column) => `"${column}" = ?`).join(', ')} where "id" = ?`,
          [...columns.map((column) => next[column] ?? null), row['id']],
          'run',
        );
      }
      return rows.length;
    });
    done += count;
    if (count > 0) options.onProgress?.({ table, done });
    if (count < batchSize) return done;
  }
}

function plaintextOf(row: Row, spec: EncryptedTable): Row {
  const plain: Row = { id: row['id'] };
  for (const column of spec.columns) {
    const value = row[column];
    plain[column] = value === null || value === undefined ? null : toBuffer(value as Uint8Array).toString('utf8');
  }
  return plain;
}

/** Step 2 of the encryption migration: rows still in plaintext (crypto_version 0) are encrypted. */
export async function encryptPlaintextRows(
  db: Database,
  sealer: Sealer,
  options: { batchSize?: number; onProgress?: (progress: BatchProgress) => void } = {},
): Promise<number> {
  let total = 0;
  for (const [table, spec] of Object.entries(ENCRYPTED_TABLES)) {
    total += await rewriteInBatches(db, table, '"crypto_version" = 0', [], (row) => sealRow(table, plaintextOf(row, spec), sealer), options);
  }
  return total;
}

/**
 * Re-encryption after a rotation: rows whose values are under data keys of
 * older key versions are decrypted and encrypted under the current one,
 * batch by batch, while the API keeps serving (each row changes atomically).
 */
export async function reencryptOldRows(
  db: Database,
  sealer: Sealer,
  options: { batchSize?: number; onProgress?: (progress: BatchProgress) => void } = {},
): Promise<number> {
  const current = sealer.cipher.currentKekVersion();
  const old = await db.fork().execute<{ id: number }[]>('select "id" from "data_key" where "kek_version" <> ?', [current]);
  if (old.length === 0) return 0;
  const headers = old.map((key) => envelopeHeader(Number(key.id)));
  let total = 0;
  for (const [table, spec] of Object.entries(ENCRYPTED_TABLES)) {
    const where = `"crypto_version" = 1 and substring("${spec.marker}" from 1 for 5) in (${headers.map(() => '?').join(', ')})`;
    total += await rewriteInBatches(
      db,
      table,
      where,
      headers,
      async (row) => {
        const plain: Row = { id: row['id'] };
        for (const column of spec.columns) {
          const value = row[column] as Uint8Array | null;
          plain[column] = value === null ? null : await sealer.cipher.decrypt(toBuffer(value), { table, column, rowId: String(row['id']) });
        }
        return sealRow(table, plain, sealer);
      },
      options,
    );
  }
  return total;
}

/** Rows whose values are still under data keys of a key version (0 means it can be retired). */
export async function countRowsUnderKeyVersion(db: Database, kekVersion: number): Promise<number> {
  const keys = await db.fork().execute<{ id: number }[]>('select "id" from "data_key" where "kek_version" = ?', [kekVersion]);
  if (keys.length === 0) return 0;
  const headers = keys.map((key) => envelopeHeader(Number(key.id)));
  let total = 0;
  for (const [table, spec] of Object.entries(ENCRYPTED_TABLES)) {
    const [row] = await db
      .fork()
      .execute<{ count: string }[]>(
        `select count(*) as "count" from "${table}" where "crypto_version" = 1 and substring("${spec.marker}" from 1 for 5) in (${headers.map(() => '?').join(', ')})`,
        headers,
      );
    total += Number(row?.count ?? 0);
  }
  return total;
}


/**
 * The key ring, the local key management and the field cipher for a
 * database: from PHI_KEY_RING when given, else (outside production only)
 * the development key ring in the data folder.
 */
export async function openSealer(
  db: Database,
  options: { keyRingJson: string | undefined; dataDir: string; allowDevelopmentKeyRing: boolean },
): Promise<Sealer> {
  let document: unknown;
  if (options.keyRingJson) {
    try {
      document = JSON.parse(options.keyRingJson);
    } catch {
      throw new Error('PHI_KEY_RING is not valid JSON');
    }
  } else if (options.allowDevelopmentKeyRing) {
    document = await loadOrCreateDevelopmentKeyRing(options.dataDir);
  } else {
    throw new Error('No key ring: set PHI_KEY_RING');
  }
  const ring = KeyRing.fromDocument(document);
  if (ring.isDevelopment && !options.allowDevelopmentKeyRing) throw new Error('The development key ring is refused in production');
  const store = new DatabaseDataKeyStore(db);
  await store.preload();
  const cipher = new FieldCipher(new LocalKeyManagement(ring), store);
  await cipher.prepare();
  return { ring, cipher };
}

/**
 * Encrypts some columns of one existing row for an UPDATE. If the row is
 * still plaintext (crypto_version 0), the whole row is encrypted at once,
 * so a row is never half plaintext, half ciphertext.
 */
export async function sealColumnsForUpdate(
  em: EntityManager,
  table: string,
  rowId: string,
  changes: Readonly<Record<string, string | null>>,
  sealer: Sealer,
): Promise<Row | null> {
  const spec = ENCRYPTED_TABLES[table];
  if (!spec) throw new Error(`${table} has no encrypted columns`);
  const [current] = await em.execute<Row[]>(
    `select "id", ${spec.columns.map((column) => `"${column}"`).join(', ')}, "crypto_version" from "${table}" where "id" = ? for update`,
    [rowId],
  );
  if (!current) return null;
  // A row marked as not encrypted is never taken as plaintext here either: encrypting it along with the change
  // would make a value planted beside the mark readable. Only data:encrypt turns such rows into ciphertext.
  if (Number(current['crypto_version']) !== CRYPTO_VERSION_ENCRYPTED) throw new CryptoError('NOT_ENCRYPTED', `${table} row marked as not encrypted`);
  const sealed: Row = {};
  for (const [column, value] of Object.entries(changes)) {
    if (!spec.columns.includes(column)) throw new Error(`${table}.${column} is not an encrypted column`);
    sealed[column] = value === null ? null : await sealer.cipher.encrypt(value, { table, column, rowId });
    const purpose = spec.blindIndexes[column];
    if (purpose) sealed[`${column}_index`] = value === null ? null : blindIndex(sealer.ring.blindIndexKey(), purpose, value);
  }
  return sealed;
}
