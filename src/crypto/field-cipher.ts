import { createCipheriv, randomBytes } from 'node:crypto';
import { associatedData, defaultGcm, type GcmDecryptor } from './aes-gcm.js';
import { encodeEnvelope, header, NONCE_BYTES, readEnvelopeHead } from './envelope.js';
import { CryptoError } from './errors.js';
import type { KeyManagementService } from './key-management.js';
import { KEY_BYTES } from './key-ring.js';

/**
 * Field encryption: AES-256-GCM with a fresh random 96-bit nonce per value,
 * under a data key (DEK) that is stored wrapped by a key-encryption key
 * (KEK). The associated data binds each ciphertext to its envelope header
 * (format, algorithm, data key id) and to its table, column and row id, so
 * a value copied to another row or column, or relabelled, does not decrypt.
 *
 * Each data key serves one scope, a (table, data category) pair such as
 * `patient/ssn` or `clinical_note/clinicalNote`: a key serves one kind of
 * data, key use can be counted per category, and the scope is bound into
 * the key's wrapping (a data key relabelled in the database does not
 * unwrap). A value is read only with a key of its own column's scope.
 */

/** Where data keys are kept (wrapped); the database implements it. */
export interface DataKeyStore {
  /** Loads every data key at once, so later lookups need no round trip. */
  preload?(): Promise<void>;
  /** The data keys of a scope under a KEK version, newest first (the first that unwraps is the scope's current key). */
  keysFor(kekVersion: number, scope: string): Promise<StoredDataKey[]>;
  /** A data key by id; asks the store again for an id it has not seen (a key made by another process). */
  byId(id: number): Promise<StoredDataKey | null>;
  /** An id for a new data key: it is bound into the key's wrapping before the row is written. */
  reserveId(): Promise<number>;
  create(id: number, kekVersion: number, scope: string, wrapped: Buffer): Promise<StoredDataKey>;
}

export interface StoredDataKey {
  id: number;
  kekVersion: number;
  wrapped: Buffer;
  /** `table/category`; null for a data key made before scopes (one key for everything), readable until re-encryption moves its values. */
  scope: string | null;
}

/** What a ciphertext is bound to. */
export interface FieldLocation {
  table: string;
  column: string;
  rowId: string;
}

/** Which scope (table/category) each encrypted column's data keys serve. */
export interface KeyScopes {
  of(table: string, column: string): string;
  all(): readonly string[];
}

/** A scope per column: for tests and tools that have no classification. */
export const COLUMN_SCOPES: KeyScopes = { of: (table, column) => `${table}/${column}`, all: () => [] };

export interface DataKeyCacheOptions {
  /** At most this many unwrapped data keys are kept in memory. */
  maxKeys: number;
  /** An unwrapped data key is dropped after this long. */
  ttlMs: number;
  /** A KEK version this process does not know makes it ask the key service again: for that version at most this often. */
  refreshMinIntervalMs?: number;
}

export const DEFAULT_DATA_KEY_CACHE: DataKeyCacheOptions = { maxKeys: 64, ttlMs: 15 * 60 * 1000, refreshMinIntervalMs: 5_000 };
const ALGORITHM = 'aes-256-gcm';
/** However many unknown KEK versions a process meets, it asks the key service on demand at most this often. */
const ON_DEMAND_REFRESH_GAP_MS = 250;

/**
 * What a wrapped data key is bound to: its own id, what it serves and the
 * KEK version that wrapped it. A row copied to a new id (to make an old key
 * current again), relabelled or moved to another version does not unwrap.
 */
export function dataKeyContext(id: number, kekVersion: number, scope: string): string {
  return `phi-graph/data-key/v2;id=${id};kek=${kekVersion};scope=${scope}`;
}

/** The context of a data key made before scopes (scope null): nothing was bound (only the key ring's legacy unwrap reads these). */
export const LEGACY_DATA_KEY_CONTEXT = '';

/** What the associated data binds after the envelope header: `\0table\0column\0rowId`. */
function boundLocation(table: string, column: string, rowId: string): string {
  return `\u0000${table}\u0000${column}\u0000${rowId}`;
}

interface CachedKey {
  key: Buffer;
  scope: string | null;
  expiresAt: number;
}

/** Per scope: key uses of this process since start (encryptions and decryptions), for the report of key use per category. */
export type KeyUse = Map<string, { encryptions: number; decryptions: number }>;

export class FieldCipher {
  readonly #keys = new Map<number, CachedKey>();
  #mostRecent: number | undefined;
  /** The data key new values of each scope are written with (under the KEK version in #currentVersion). */
  #current = new Map<string, Promise<StoredDataKey>>();
  #currentVersion = 0;
  /** When each unknown KEK version last made this process ask the key service, and when any did. */
  readonly #askedFor = new Map<number, number>();
  #lastAsked = 0;
  #refreshing: Promise<boolean> | undefined;
  /** Counts for tests and metrics: decryptions performed by this process, data key lookups found in memory or not. */
  decryptions = 0;
  keyHits = 0;
  keyMisses = 0;
  readonly use: KeyUse = new Map();
  /** Data keys found unusable since start (skipped; never written with): signs of tampering. Each once. */
  readonly unusableKeys: { id: number; scope: string; failure: string }[] = [];
  #unreported = 0;
  readonly #unusable = new Set<number>();

  constructor(
    private readonly kms: KeyManagementService,
    private readonly store: DataKeyStore,
    private readonly scopes: KeyScopes = COLUMN_SCOPES,
    private readonly cacheOptions: DataKeyCacheOptions = DEFAULT_DATA_KEY_CACHE,
    /** Who decrypts: the native addon when it was built, else node:crypto (aes-gcm.ts); the same answers. */
    readonly gcm: GcmDecryptor = defaultGcm().decryptor,
  ) {}

  get keyService(): KeyManagementService {
    return this.kms;
  }

  async encrypt(plaintext: string, location: FieldLocation): Promise<Buffer> {
    const scope = this.scopes.of(location.table, location.column);
    const dataKey = await this.#currentDataKey(scope);
    const key = await this.#unwrapped(dataKey);
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv(ALGORITHM, key, nonce);
    cipher.setAAD(associatedData(header(dataKey.id), boundLocation(location.table, location.column, location.rowId)));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    this.#count(scope, 'encryptions');
    return encodeEnvelope({ dataKeyId: dataKey.id, nonce, ciphertext, tag: cipher.getAuthTag() });
  }

  async decrypt(stored: Buffer, location: FieldLocation): Promise<string> {
    const envelope = readEnvelopeHead(stored);
    const scope = this.scopes.of(location.table, location.column);
    const key = this.#unwrappedInMemory(envelope.dataKeyId, scope) ?? (await this.#dataKeyById(envelope.dataKeyId, scope));
    return this.#open(stored, envelope.headerBytes, key, location, scope);
  }

  /**
   * `decrypt` without waiting, for the common case where the value's data
   * key is already unwrapped in memory: the plaintext, or undefined when the
   * key has to be fetched or unwrapped first (then call `decrypt`). Throws
   * the same CryptoErrors, synchronously. Lists of thousands of values are
   * read through here, so no promise is made per value.
   */
  decryptIfKeyReady(stored: Buffer, location: FieldLocation): string | undefined {
    return this.decryptColumnIfKeyReady(stored, location.table, location.column, location.rowId);
  }

  /** `decryptIfKeyReady` with the location's parts as they are (no object per value). */
  decryptColumnIfKeyReady(stored: Buffer, table: string, column: string, rowId: string): string | undefined {
    const envelope = readEnvelopeHead(stored);
    const scope = this.scopes.of(table, column);
    const key = this.#unwrappedInMemory(envelope.dataKeyId, scope);
    return key ? this.#openAt(stored, envelope.headerBytes, key, table, column, rowId, scope) : undefined;
  }

  /** `stored` is the envelope's own bytes: its first `headerBytes` are the header the associated data starts with (readEnvelopeHead checked them). */
  #open(stored: Buffer, headerBytes: number, key: Buffer, location: FieldLocation, scope: string): string {
    return this.#openAt(stored, headerBytes, key, location.table, location.column, location.rowId, scope);
  }

  #openAt(stored: Buffer, headerBytes: number, key: Buffer, table: string, column: string, rowId: string, scope: string): string {
    const plaintext = this.gcm.open(key, stored, headerBytes, boundLocation(table, column, rowId));
    if (plaintext === null) throw new CryptoError('DECRYPTION_FAILED', `${table}.${column} of one row did not authenticate`);
    this.decryptions += 1;
    this.#count(scope, 'decryptions');
    return plaintext;
  }

  #count(scope: string, what: 'encryptions' | 'decryptions'): void {
    let counts = this.use.get(scope);
    if (!counts) {
      counts = { encryptions: 0, decryptions: 0 };
      this.use.set(scope, counts);
    }
    counts[what] += 1;
  }

  async #dataKeyById(id: number, scope: string): Promise<Buffer> {
    const dataKey = await this.store.byId(id);
    if (!dataKey) throw new CryptoError('KEY_UNKNOWN', `no data key ${id}`);
    // A key of another scope never opens this column's values (they would not authenticate anyway: this says why).
    if (dataKey.scope !== null && dataKey.scope !== scope) throw new CryptoError('DECRYPTION_FAILED', `data key ${id} serves another scope`);
    return this.#unwrapped(dataKey);
  }

  /** The KEK version a stored value is (indirectly) under; for re-encryption. */
  async kekVersionOf(stored: Buffer): Promise<number> {
    const dataKey = await this.store.byId(readEnvelopeHead(stored).dataKeyId);
    if (!dataKey) throw new CryptoError('KEY_UNKNOWN', 'unknown data key');
    return dataKey.kekVersion;
  }

  currentKekVersion(): number {
    return this.kms.currentVersion();
  }

  /**
   * Makes sure the current data key of every scope exists and is
   * unwrapped. Called at start and after each refresh: afterwards
   * encryption needs no database round trip, so it can run inside a
   * transaction (on a one-connection database too).
   */
  async prepare(): Promise<void> {
    const version = this.kms.currentVersion();
    const next = new Map<string, Promise<StoredDataKey>>();
    const inUse = this.#currentVersion === version ? this.#current : new Map<string, Promise<StoredDataKey>>();
    for (const scope of this.scopes.all()) {
      let dataKey = await this.#newestUsable(version, scope);
      // Never back to an older key than the one in use (a newer row deleted to make an old key current again).
      const current = await inUse.get(scope)?.catch(() => undefined);
      if (current && (!dataKey || dataKey.id < current.id)) dataKey = current;
      dataKey ??= await this.#create(version, scope);
      await this.#unwrapped(dataKey);
      next.set(scope, Promise.resolve(dataKey));
    }
    // Swapped whole: a write running meanwhile uses either the old or the new key of its scope, both valid.
    this.#current = next;
    this.#currentVersion = version;
  }

  /** The ids of the data keys new values are written with, per scope (after prepare). */
  async currentDataKeyIds(): Promise<Map<string, number>> {
    const ids = new Map<string, number>();
    for (const [scope, key] of this.#current) ids.set(scope, (await key).id);
    return ids;
  }

  /**
   * The newest data key of a scope that unwraps. A key that does not (its
   * row edited, relabelled, copied, or junk) is skipped, remembered and
   * reported once: it must not stop the service, nor make it write under
   * anything but a key it made itself. Values under it fail on their own
   * fields, audited.
   */
  async #newestUsable(version: number, scope: string): Promise<StoredDataKey | undefined> {
    for (const candidate of await this.store.keysFor(version, scope)) {
      if (this.#unusable.has(candidate.id)) continue;
      try {
        await this.#unwrapped(candidate);
        return candidate;
      } catch (error) {
        if (!(error instanceof CryptoError) || error.failure === 'KEY_UNKNOWN' || error.failure === 'KEY_RETIRED') throw error;
        this.#unusable.add(candidate.id);
        this.unusableKeys.push({ id: candidate.id, scope, failure: error.failure });
      }
    }
    return undefined;
  }

  /** Unusable keys found since the last call (each once), for the log. */
  takeUnusableKeys(): { id: number; scope: string; failure: string }[] {
    const fresh = this.unusableKeys.slice(this.#unreported);
    this.#unreported = this.unusableKeys.length;
    return fresh;
  }

  /**
   * Learns what changed in the key service and the data keys since start:
   * a new KEK version (keys:rotate), new data keys (keys:rotate-data), a
   * retirement. Run on a timer by the servers, and at once (rate-limited)
   * when a value names a KEK version this process does not know.
   */
  async refresh(): Promise<boolean> {
    this.#refreshing ??= (async () => {
      try {
        const changed = await this.kms.refresh();
        await this.store.preload?.();
        await this.prepare();
        return changed;
      } finally {
        this.#refreshing = undefined;
      }
    })();
    return this.#refreshing;
  }

  /** New data keys for every scope under the current KEK (keys:rotate-data); re-encryption then moves the values. */
  async startNewDataKeys(): Promise<StoredDataKey[]> {
    const version = this.kms.currentVersion();
    const created: StoredDataKey[] = [];
    for (const scope of this.scopes.all()) created.push(await this.#create(version, scope));
    await this.prepare();
    return created;
  }

  async #currentDataKey(scope: string): Promise<StoredDataKey> {
    const version = this.kms.currentVersion();
    let current = this.#currentVersion === version ? this.#current.get(scope) : undefined;
    if (!current) {
      if (this.#currentVersion !== version) {
        this.#current = new Map();
        this.#currentVersion = version;
      }
      current = this.#newestUsable(version, scope).then((found) => found ?? this.#create(version, scope));
      this.#current.set(scope, current);
      current.catch(() => this.#current.delete(scope));
    }
    return current;
  }

  async #create(version: number, scope: string): Promise<StoredDataKey> {
    const id = await this.store.reserveId();
    const { kekVersion, wrapped } = await this.kms.wrapDataKey(randomBytes(KEY_BYTES), dataKeyContext(id, version, scope));
    if (kekVersion !== version) throw new Error('the key service changed its current version while a data key was made; try again');
    return this.store.create(id, kekVersion, scope, wrapped);
  }

  /** The unwrapped data key if it is cached, fresh and of the scope asked for (and marked most recently used), else undefined. */
  #unwrappedInMemory(id: number, scope: string): Buffer | undefined {
    const cached = this.#keys.get(id);
    if (!cached) {
      this.keyMisses += 1;
      return undefined;
    }
    if (cached.expiresAt <= Date.now()) {
      this.#keys.delete(id);
      this.keyMisses += 1;
      return undefined;
    }
    this.keyHits += 1;
    if (cached.scope !== null && cached.scope !== scope) throw new CryptoError('DECRYPTION_FAILED', `data key ${id} serves another scope`);
    if (this.#mostRecent !== id) {
      // Re-insert: the Map's order is the LRU order (skipped for the key just used: a list reads one key thousands of times).
      this.#keys.delete(id);
      this.#keys.set(id, cached);
      this.#mostRecent = id;
    }
    return cached.key;
  }

  async #unwrapped(dataKey: StoredDataKey): Promise<Buffer> {
    const cached = this.#keys.get(dataKey.id);
    if (cached && cached.expiresAt > Date.now()) return cached.key;
    const key = await this.#unwrap(dataKey);
    this.#keys.delete(dataKey.id);
    this.#keys.set(dataKey.id, { key, scope: dataKey.scope, expiresAt: Date.now() + this.cacheOptions.ttlMs });
    this.#mostRecent = dataKey.id;
    while (this.#keys.size > this.cacheOptions.maxKeys) {
      const oldest = this.#keys.keys().next().value as number;
      this.#keys.delete(oldest);
    }
    return key;
  }

  /** Unwraps; a KEK version this process does not know yet (rotated since start) makes it ask the key service again, once. */
  async #unwrap(dataKey: StoredDataKey): Promise<Buffer> {
    const context = dataKey.scope === null ? LEGACY_DATA_KEY_CONTEXT : dataKeyContext(dataKey.id, dataKey.kekVersion, dataKey.scope);
    try {
      return await this.kms.unwrapDataKey(dataKey.kekVersion, dataKey.wrapped, context);
    } catch (error) {
      if (!(error instanceof CryptoError) || error.failure !== 'KEY_UNKNOWN') throw error;
      // Each unknown version asks at most once per interval (rows planted with made-up versions cannot make a storm of it),
      // and all of them together at most every ON_DEMAND_REFRESH_GAP_MS; the timer's own refreshes do not count.
      const minimum = this.cacheOptions.refreshMinIntervalMs ?? DEFAULT_DATA_KEY_CACHE.refreshMinIntervalMs ?? 0;
      const now = Date.now();
      const asked = this.#askedFor.get(dataKey.kekVersion);
      if (!this.#refreshing && ((asked !== undefined && now - asked < minimum) || now - this.#lastAsked < ON_DEMAND_REFRESH_GAP_MS)) throw error;
      if (this.#askedFor.size >= 1_000) this.#askedFor.clear();
      this.#askedFor.set(dataKey.kekVersion, now);
      this.#lastAsked = now;
      await this.refresh();
      return this.kms.unwrapDataKey(dataKey.kekVersion, dataKey.wrapped, context);
    }
  }
}
