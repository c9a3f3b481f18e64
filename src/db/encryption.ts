import { randomBytes } from 'node:crypto';
import { CryptoError } from '../crypto/errors.js';
import type { EntityManager } from '@mikro-orm/sql';
import {
  FieldCipher,
  SecretIndexKeys,
  dataKeyContext,
  blindIndex,
  envelopeHeader,
  legacyEnvelopeHeader,
  toBuffer,
  type DataKeyStore,
  type IndexKeys,
  type KeyScopes,
  type StoredDataKey,
} from '../crypto/index.js';
import { defaultGcm } from '../crypto/aes-gcm.js';
import { openKeyService, type KeySettings } from '../crypto/key-service.js';
import type { KeyManagementService } from '../crypto/key-management.js';
import type { Logger } from '../logger.js';
import type { Category } from '../policy/categories.js';
import { labelBinding } from '../policy/sensitivity.js';
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
  /** The data category of each column (the policy's, of the API field that shows it): its data keys serve (table, category). */
  categories: Readonly<Record<string, Category>>;
  /** The rows carry sensitivity labels (`security_labels`), bound with the row id into each value's associated data. */
  labelled?: true;
}

export const ENCRYPTED_TABLES: Readonly<Record<string, EncryptedTable>> = {
  patient: {
    columns: ['mrn', 'name', 'birth_date', 'ssn', 'address_lines', 'city', 'state', 'postal_code', 'phone', 'email'],
    blindIndexes: { mrn: 'mrn', ssn: 'ssn', email: 'email' },
    categories: {
      mrn: 'mrn',
      name: 'name',
      birth_date: 'birthDate',
      ssn: 'ssn',
      address_lines: 'addressStreet',
      city: 'addressStreet',
      state: 'addressRegion',
      postal_code: 'postalCode',
      phone: 'contact',
      email: 'contact',
    },
  },
  clinical_note: { columns: ['text'], blindIndexes: {}, categories: { text: 'clinicalNote' }, labelled: true },
  condition: { columns: ['code', 'display'], blindIndexes: {}, categories: { code: 'condition', display: 'condition' }, labelled: true },
  observation: { columns: ['value'], blindIndexes: {}, categories: { value: 'observation' } },
  coverage: { columns: ['member_id'], blindIndexes: {}, categories: { member_id: 'memberId' } },
  claim: { columns: ['diagnosis_codes'], blindIndexes: {}, categories: { diagnosis_codes: 'diagnosisCodes' }, labelled: true },
};

/** The scope of each encrypted column's data keys: `table/category`. */
export const DATA_KEY_SCOPES: KeyScopes = (() => {
  // Two lookups by the strings already at hand: this runs for every value read, so no string is made per value.
  const byTable = new Map<string, Map<string, string>>();
  for (const [table, spec] of Object.entries(ENCRYPTED_TABLES)) {
    byTable.set(table, new Map(spec.columns.map((column) => [column, `${table}/${spec.categories[column] ?? column}`])));
  }
  const all = [...new Set([...byTable.values()].flatMap((columns) => [...columns.values()]))].sort();
  return {
    of: (table, column) => {
      const scope = byTable.get(table)?.get(column);
      // A value presented as another table's or column's (moved there) has no key to be read with.
      if (!scope) throw new CryptoError('DECRYPTION_FAILED', `${table}.${column} is not an encrypted column`);
      return scope;
    },
    all: () => all,
  };
})();

/** The scope of the data key that holds the blind-index key when the KEKs are in an HSM (not a ring). */
export const INDEX_KEY_SCOPE = 'index-keys';

export const CRYPTO_VERSION_ENCRYPTED = 1;

/** What the write paths need: the cipher and the blind-index key (and the keys derived from it). */
export interface Sealer {
  cipher: FieldCipher;
  indexKeys: IndexKeys;
}

type Row = Record<string, unknown>;

/**
 * Turns a row of plaintext (strings in the encrypted columns) into its
 * stored form: ciphertext bound to (table, column, row id), blind indexes,
 * crypto_version 1. Rows of tables without encrypted columns pass as they are.
 */
export async function sealRow(table: string, row: Row, { cipher, indexKeys }: Sealer): Promise<Row> {
  const spec = ENCRYPTED_TABLES[table];
  if (!spec) return row;
  const id = row['id'];
  if (typeof id !== 'string') throw new Error(`a ${table} row to encrypt has no id`);
  const rowId = boundRowId(spec, row);
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
    if (purpose) sealed[`${column}_index`] = blindIndex(indexKeys.blindIndexKey(), purpose, value);
  }
  return sealed;
}

/** What a row's values are bound to besides table and column: its id, and in labelled tables its labels (sensitivity.ts). */
export function boundRowId(spec: EncryptedTable, row: Row): string {
  const id = String(row['id']);
  return spec.labelled ? labelBinding(id, row['security_labels'] as readonly string[] | null | undefined) : id;
}

export function blindIndexOf(ring: IndexKeys, purpose: BlindIndexPurpose, value: string): Buffer {
  return blindIndex(ring.blindIndexKey(), purpose, value);
}

type DataKeyRow = { id: number; kek_version: number; wrapped: Uint8Array; scope: string | null };
const DATA_KEY_COLUMNS = '"id", "kek_version", "wrapped", "scope"';

/** Data keys in the data_key table; immutable once written, so kept in memory once read. */
const MISSING_KEY_RECHECK_MS = 5_000;
const MAX_MISSING_REMEMBERED = 1_000;

export class DatabaseDataKeyStore implements DataKeyStore {
  readonly #byId = new Map<number, StoredDataKey>();
  readonly #missing = new Map<number, number>();

  constructor(private readonly db: Database) {}

  async preload(): Promise<void> {
    const rows = await this.db.fork().execute<DataKeyRow[]>(`select ${DATA_KEY_COLUMNS} from "data_key"`);
    for (const row of rows) this.#remember(row);
  }

  async keysFor(kekVersion: number, scope: string): Promise<StoredDataKey[]> {
    const rows = await this.db
      .fork()
      .execute<DataKeyRow[]>(`select ${DATA_KEY_COLUMNS} from "data_key" where "kek_version" = ? and "scope" = ? order by "id" desc`, [kekVersion, scope]);
    return rows.map((row) => this.#remember(row));
  }

  async byId(id: number): Promise<StoredDataKey | null> {
    const known = this.#byId.get(id);
    if (known) return known;
    // A key id nobody has (a header rewritten to point at it) is asked for at most once per interval, not once per value.
    const missed = this.#missing.get(id);
    if (missed !== undefined && Date.now() - missed < MISSING_KEY_RECHECK_MS) return null;
    const [row] = await this.db.fork().execute<DataKeyRow[]>(`select ${DATA_KEY_COLUMNS} from "data_key" where "id" = ?`, [id]);
    if (!row) {
      if (this.#missing.size >= MAX_MISSING_REMEMBERED) this.#missing.clear();
      this.#missing.set(id, Date.now());
      return null;
    }
    this.#missing.delete(id);
    return this.#remember(row);
  }

  reserveId(): Promise<number> {
    return reserveDataKeyId(this.db.fork());
  }

  async create(id: number, kekVersion: number, scope: string, wrapped: Buffer): Promise<StoredDataKey> {
    return this.#remember(await insertDataKey(this.db.fork(), id, kekVersion, scope, wrapped));
  }

  #remember(row: DataKeyRow): StoredDataKey {
    const key = { id: Number(row.id), kekVersion: Number(row.kek_version), wrapped: toBuffer(row.wrapped), scope: row.scope ?? null };
    this.#byId.set(key.id, key);
    return key;
  }
}

export interface BatchProgress {
  table: string;
  done: number;
}

const DEFAULT_BATCH = 500;

const FIRST_ID = '00000000-0000-0000-0000-000000000000';

/**
 * Rewrites rows in batches, in id order, each row visited once per call:
 * each batch takes the next rows (locked, skipping rows another worker
 * holds), computes their new stored form and writes it back in the same
 * transaction. A row `rewrite` answers null for is left as it is (a value
 * that does not decrypt: reported, never a reason to stop). Safe to stop and
 * run again at any point. Returns the rows rewritten.
 */
async function rewriteInBatches(
  db: Database,
  table: string,
  where: string,
  whereParams: unknown[],
  rewrite: (row: Row, em: EntityManager) => Promise<Row | null>,
  options: { batchSize?: number; onProgress?: (progress: BatchProgress) => void },
): Promise<number> {
  const spec = ENCRYPTED_TABLES[table] as EncryptedTable;
  const columns = [...spec.columns, ...Object.keys(spec.blindIndexes).map((column) => `${column}_index`), 'crypto_version'];
  const batchSize = options.batchSize ?? DEFAULT_BATCH;
  let done = 0;
  let after = FIRST_ID;
  for (;;) {
    const { taken, rewritten, last } = await db.fork().transactional(async (em) => {
      const rows = await em.execute<Row[]>(
        `select "id", ${spec.columns.map((column) => `"${column}"`).join(', ')}, "crypto_version"${spec.labelled ? ', "security_labels"' : ''} from "${table}" where (${where}) and "id" > ? order by "id" limit ? for update skip locked`,
        [...whereParams, after, batchSize],
      );
      let count = 0;
      for (const row of rows) {
        const next = await rewrite(row, em);
        if (!next) continue;
        await em.execute(
          `update "${table}" set ${columns.map((column) => `"${column}" = ?`).join(', ')} where "id" = ?`,
          [...columns.map((column) => next[column] ?? null), row['id']],
          'run',
        );
        count += 1;
      }
      return { taken: rows.length, rewritten: count, last: rows.at(-1)?.['id'] };
    });
    done += rewritten;
    if (rewritten > 0) options.onProgress?.({ table, done });
    if (taken < batchSize || typeof last !== 'string') return done;
    after = last;
  }
}

function plaintextOf(row: Row, spec: EncryptedTable): Row {
  const plain: Row = { id: row['id'], security_labels: row['security_labels'] };
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

const LEGACY_FORMAT_BYTE = Buffer.of(1);

/** SQL true when any encrypted column of a row is under one of the data keys, in either envelope format. */
function underDataKeys(spec: EncryptedTable, ids: readonly number[], alsoLegacyFormat: boolean): { sql: string; params: Buffer[] } {
  const v2 = ids.map((id) => envelopeHeader(id));
  const v1 = ids.map((id) => legacyEnvelopeHeader(id));
  const params: Buffer[] = [];
  const conditions = spec.columns.map((column) => {
    const tests: string[] = [];
    if (alsoLegacyFormat) {
      tests.push(`substring("${column}" from 1 for 1) = ?`);
      params.push(LEGACY_FORMAT_BYTE);
    }
    if (ids.length > 0) {
      tests.push(`substring("${column}" from 1 for 6) in (${v2.map(() => '?').join(', ')})`, `substring("${column}" from 1 for 5) in (${v1.map(() => '?').join(', ')})`);
      params.push(...v2, ...v1);
    }
    return tests.length > 0 ? `(${tests.join(' or ')})` : 'false';
  });
  return { sql: `"crypto_version" = 1 and (${conditions.join(' or ')})`, params };
}

/** Data keys whose values re-encryption moves: every key but the ones the cipher writes with now (index keys aside). */
async function oldDataKeyIds(db: Database, current: ReadonlySet<number>): Promise<number[]> {
  const keys = await db.fork().execute<{ id: number; scope: string | null }[]>('select "id", "scope" from "data_key"');
  return keys.filter((key) => key.scope !== INDEX_KEY_SCOPE && !current.has(Number(key.id))).map((key) => Number(key.id));
}

/** A value re-encryption could not read (tampered, or under a key that does not unwrap): left as it is, named for the operator (never its value). */
export interface UnreadableValue {
  table: string;
  column: string;
  rowId: string;
  reason: string;
}

export interface ReencryptResult {
  rows: number;
  unreadable: UnreadableValue[];
}

/**
 * Re-encryption after a rotation (`keys:rotate`, a new KEK version, or
 * `keys:rotate-data`, new data keys): rows with a value under any data key
 * other than its scope's current one (older KEK versions, older data keys,
 * keys from before scopes, keys that do not unwrap) or in the older
 * envelope format are decrypted and encrypted under the current keys, batch
 * by batch, while the API keeps serving (each row changes atomically). A
 * row with a value that does not decrypt is left as it is and reported, and
 * the rest goes on (its KEK version then cannot be retired). With an HSM,
 * the blind-index key is wrapped again under the current KEK too.
 */
export async function reencryptOldRows(
  db: Database,
  sealer: Sealer,
  options: { batchSize?: number; onProgress?: (progress: BatchProgress) => void } = {},
): Promise<ReencryptResult> {
  await sealer.cipher.prepare();
  if (sealer.indexKeys instanceof SecretIndexKeys) await rewrapIndexKey(db, sealer.cipher.keyService, sealer.indexKeys);
  const current = new Set((await sealer.cipher.currentDataKeyIds()).values());
  const old = await oldDataKeyIds(db, current);
  const unreadable = new Map<string, UnreadableValue>();
  let rows = 0;
  for (const [table, spec] of Object.entries(ENCRYPTED_TABLES)) {
    const { sql, params } = underDataKeys(spec, old, true);
    rows += await rewriteInBatches(
      db,
      table,
      sql,
      params,
      async (row) => {
        const rowId = String(row['id']);
        const bound = boundRowId(spec, row);
        const plain: Row = { id: row['id'], security_labels: row['security_labels'] };
        for (const column of spec.columns) {
          const value = row[column] as Uint8Array | null;
          try {
            plain[column] = value === null ? null : await sealer.cipher.decrypt(toBuffer(value), { table, column, rowId: bound });
          } catch (error) {
            if (!(error instanceof CryptoError)) throw error;
            unreadable.set(`${table}.${column}.${rowId}`, { table, column, rowId, reason: error.failure });
            return null;
          }
        }
        return sealRow(table, plain, sealer);
      },
      options,
    );
  }
  return { rows, unreadable: [...unreadable.values()] };
}

/** Rows whose values are still under data keys of a key version, plus the blind-index key if its newest wrapping is (0 means it can be retired). */
export async function countRowsUnderKeyVersion(db: Database, kekVersion: number): Promise<number> {
  const keys = await db.fork().execute<{ id: number; scope: string | null }[]>('select "id", "scope" from "data_key" where "kek_version" = ?', [kekVersion]);
  const ids = keys.filter((key) => key.scope !== INDEX_KEY_SCOPE).map((key) => Number(key.id));
  let total = 0;
  if (ids.length > 0) {
    for (const [table, spec] of Object.entries(ENCRYPTED_TABLES)) {
      const { sql, params } = underDataKeys(spec, ids, false);
      const [row] = await db.fork().execute<{ count: string }[]>(`select count(*) as "count" from "${table}" where ${sql}`, params);
      total += Number(row?.count ?? 0);
    }
  }
  const [indexKey] = await db
    .fork()
    .execute<{ kek_version: number }[]>('select "kek_version" from "data_key" where "scope" = ? order by "id" desc limit 1', [INDEX_KEY_SCOPE]);
  if (indexKey && Number(indexKey.kek_version) === kekVersion) total += 1;
  return total;
}

/** The data key rows per scope with their KEK versions and how many values use them: the report of key use per category. */
export async function dataKeyReport(db: Database): Promise<{ id: number; scope: string | null; kekVersion: number; values: number }[]> {
  const keys = await db.fork().execute<{ id: number; kek_version: number; scope: string | null }[]>('select "id", "kek_version", "scope" from "data_key" order by "id"');
  const report = [];
  for (const key of keys) {
    let values = 0;
    if (key.scope !== INDEX_KEY_SCOPE) {
      const v2 = envelopeHeader(Number(key.id));
      const v1 = legacyEnvelopeHeader(Number(key.id));
      for (const [table, spec] of Object.entries(ENCRYPTED_TABLES)) {
        if (key.scope !== null && !key.scope.startsWith(`${table}/`)) continue;
        for (const column of spec.columns) {
          if (key.scope !== null && DATA_KEY_SCOPES.of(table, column) !== key.scope) continue;
          const [row] = await db
            .fork()
            .execute<{ count: string }[]>(`select count(*) as "count" from "${table}" where substring("${column}" from 1 for 6) = ? or substring("${column}" from 1 for 5) = ?`, [v2, v1]);
          values += Number(row?.count ?? 0);
        }
      }
    }
    report.push({ id: Number(key.id), scope: key.scope, kekVersion: Number(key.kek_version), values });
  }
  return report;
}

/**
 * The cipher and the blind-index key for a database, from the configured
 * key service (README, "Security: encryption at rest"). With a key ring,
 * the blind-index key is the ring's; with an HSM, it is a data key of its
 * own scope, wrapped by the HSM's KEK like the others.
 */
export async function openSealer(db: Database, settings: KeySettings, logger?: Logger): Promise<Sealer> {
  const { kms, ring } = await openKeyService(settings, logger);
  try {
    const store = new DatabaseDataKeyStore(db);
    await store.preload();
    const gcm = defaultGcm(settings.nativeCrypto);
    const cipher = new FieldCipher(kms, store, DATA_KEY_SCOPES, undefined, gcm.decryptor);
    if (gcm.fallbackReason) logger?.info({ event: 'decryption-backend', backend: gcm.decryptor.kind, reason: gcm.fallbackReason }, 'stored values are decrypted with node:crypto (the native AES-GCM addon is not in use)');
    else logger?.debug({ event: 'decryption-backend', backend: gcm.decryptor.kind }, 'stored values are decrypted with the native AES-GCM addon');
    await cipher.prepare();
    for (const key of cipher.takeUnusableKeys()) {
      logger?.error({ event: 'data-key-unusable', dataKeyId: key.id, scope: key.scope, reason: key.failure }, 'a current data key does not unwrap (its row was edited?); new values go under a new key');
    }
    return { cipher, indexKeys: ring ?? (await indexKeysInDatabase(db, kms, logger)) };
  } catch (error) {
    await kms.close?.();
    throw error;
  }
}

function indexKeyContext(id: number, kekVersion: number): string {
  return dataKeyContext(id, kekVersion, INDEX_KEY_SCOPE);
}

/** A data key's id comes first: it is bound into the key's wrapping before the row is written (dataKeyContext). */
async function reserveDataKeyId(em: Pick<EntityManager, 'execute'>): Promise<number> {
  const [row] = await em.execute<{ id: number }[]>(`select nextval(pg_get_serial_sequence('data_key', 'id'))::int as "id"`);
  if (!row) throw new Error('no data key id was reserved');
  return Number(row.id);
}

async function insertDataKey(em: Pick<EntityManager, 'execute'>, id: number, kekVersion: number, scope: string, wrapped: Buffer): Promise<DataKeyRow> {
  const [row] = await em.execute<DataKeyRow[]>(`insert into "data_key" ("id", "kek_version", "scope", "wrapped", "created_at") values (?, ?, ?, ?, now()) returning ${DATA_KEY_COLUMNS}`, [
    id,
    kekVersion,
    scope,
    wrapped,
  ]);
  if (!row) throw new Error('the data key was not stored');
  return row;
}

/**
 * The blind-index key kept in the data_key table (KEKs in an HSM): the
 * newest wrapping; made once, under a lock, so two first starts agree.
 */
async function indexKeysInDatabase(db: Database, kms: KeyManagementService, logger?: Logger): Promise<SecretIndexKeys> {
  return db.fork().transactional(async (em) => {
    await em.execute(`select pg_advisory_xact_lock(hashtext('phi-graph/index-keys'))`);
    const rows = await em.execute<DataKeyRow[]>(`select ${DATA_KEY_COLUMNS} from "data_key" where "scope" = ? order by "id" desc`, [INDEX_KEY_SCOPE]);
    let failure: CryptoError | undefined;
    for (const row of rows) {
      // The newest wrapping that unwraps: a planted or altered row must not stop the service (it is logged).
      try {
        return new SecretIndexKeys(await kms.unwrapDataKey(Number(row.kek_version), toBuffer(row.wrapped), indexKeyContext(Number(row.id), Number(row.kek_version))));
      } catch (error) {
        if (!(error instanceof CryptoError)) throw error;
        failure ??= error;
        logger?.error({ event: 'data-key-unusable', dataKeyId: Number(row.id), scope: INDEX_KEY_SCOPE, reason: error.failure }, 'a blind-index key wrapping does not unwrap (its row was edited?)');
      }
    }
    // Wrappings exist but none unwraps: making a new key would silently break every blind index, so refuse.
    if (failure) throw failure;
    const key = randomBytes(32);
    const version = kms.currentVersion();
    const id = await reserveDataKeyId(em);
    const { wrapped } = await kms.wrapDataKey(key, indexKeyContext(id, version));
    await insertDataKey(em, id, version, INDEX_KEY_SCOPE, wrapped);
    return new SecretIndexKeys(key);
  });
}

/** After a KEK rotation: the same blind-index key, wrapped under the current KEK (the older wrapping stays until its KEK is retired). */
async function rewrapIndexKey(db: Database, kms: KeyManagementService, indexKeys: SecretIndexKeys): Promise<void> {
  const version = kms.currentVersion();
  const [row] = await db.fork().execute<{ kek_version: number }[]>('select "kek_version" from "data_key" where "scope" = ? order by "id" desc limit 1', [INDEX_KEY_SCOPE]);
  if (row && Number(row.kek_version) === version) return;
  const em = db.fork();
  const id = await reserveDataKeyId(em);
  const { wrapped } = await kms.wrapDataKey(indexKeys.blindIndexKey(), indexKeyContext(id, version));
  await insertDataKey(em, id, version, INDEX_KEY_SCOPE, wrapped);
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
    `select "id", ${spec.columns.map((column) => `"${column}"`).join(', ')}, "crypto_version"${spec.labelled ? ', "security_labels"' : ''} from "${table}" where "id" = ? for update`,
    [rowId],
  );
  if (!current) return null;
  const bound = boundRowId(spec, current);
  // A row marked as not encrypted is never taken as plaintext here either: encrypting it along with the change
  // would make a value planted beside the mark readable. Only data:encrypt turns such rows into ciphertext.
  if (Number(current['crypto_version']) !== CRYPTO_VERSION_ENCRYPTED) throw new CryptoError('NOT_ENCRYPTED', `${table} row marked as not encrypted`);
  const sealed: Row = {};
  for (const [column, value] of Object.entries(changes)) {
    if (!spec.columns.includes(column)) throw new Error(`${table}.${column} is not an encrypted column`);
    sealed[column] = value === null ? null : await sealer.cipher.encrypt(value, { table, column, rowId: bound });
    const purpose = spec.blindIndexes[column];
    if (purpose) sealed[`${column}_index`] = value === null ? null : blindIndex(sealer.indexKeys.blindIndexKey(), purpose, value);
  }
  return sealed;
}
