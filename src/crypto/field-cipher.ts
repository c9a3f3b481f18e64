import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { decodeEnvelope, encodeEnvelope, header, HEADER_BYTES, NONCE_BYTES, type Envelope } from './envelope.js';
import { CryptoError } from './errors.js';
import type { KeyManagementService } from './key-management.js';
import { KEY_BYTES } from './key-ring.js';

/**
 * Field encryption: AES-256-GCM with a fresh random 96-bit nonce per value,
 * under a data key (DEK) that is stored wrapped by a key-encryption key. The
 * associated data binds each ciphertext to its table, column and row id, so
 * a value copied to another row or column does not decrypt.
 */

/** Where data keys are kept (wrapped); the database implements it. */
export interface DataKeyStore {
  /** Loads every data key at once (they are few and immutable), so later lookups need no round trip. */
  preload?(): Promise<void>;
  /** The data key new values are written with, if there is one for this KEK version. */
  currentFor(kekVersion: number): Promise<StoredDataKey | null>;
  byId(id: number): Promise<StoredDataKey | null>;
  create(kekVersion: number, wrapped: Buffer): Promise<StoredDataKey>;
}

export interface StoredDataKey {
  id: number;
  kekVersion: number;
  wrapped: Buffer;
}

/** What a ciphertext is bound to. */
export interface FieldLocation {
  table: string;
  column: string;
  rowId: string;
}

export interface DataKeyCacheOptions {
  /** At most this many unwrapped data keys are kept in memory. */
  maxKeys: number;
  /** An unwrapped data key is dropped after this long. */
  ttlMs: number;
}

export const DEFAULT_DATA_KEY_CACHE: DataKeyCacheOptions = { maxKeys: 64, ttlMs: 15 * 60 * 1000 };
const ALGORITHM = 'aes-256-gcm';

/** The envelope header, then `\0table\0column\0rowId`: one buffer, written in place (this runs for every value read). */
function associatedData(location: FieldLocation, head: Buffer): Buffer {
  const bound = `\u0000${location.table}\u0000${location.column}\u0000${location.rowId}`;
  const data = Buffer.allocUnsafe(head.length + Buffer.byteLength(bound, 'utf8'));
  head.copy(data, 0);
  data.write(bound, head.length, 'utf8');
  return data;
}

interface CachedKey {
  key: Buffer;
  kekVersion: number;
  expiresAt: number;
}

export class FieldCipher {
  readonly #keys = new Map<number, CachedKey>();
  #mostRecent: number | undefined;
  #current: Promise<StoredDataKey> | undefined;
  #currentVersion = 0;
  /** Counts for tests and metrics: decryptions performed by this process. */
  decryptions = 0;

  constructor(
    private readonly kms: KeyManagementService,
    private readonly store: DataKeyStore,
    private readonly cacheOptions: DataKeyCacheOptions = DEFAULT_DATA_KEY_CACHE,
  ) {}

  async encrypt(plaintext: string, location: FieldLocation): Promise<Buffer> {
    const dataKey = await this.#currentDataKey();
    const key = await this.#unwrapped(dataKey);
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv(ALGORITHM, key, nonce);
    cipher.setAAD(associatedData(location, header(dataKey.id)));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return encodeEnvelope({ dataKeyId: dataKey.id, nonce, ciphertext, tag: cipher.getAuthTag() });
  }

  async decrypt(stored: Buffer, location: FieldLocation): Promise<string> {
    const envelope = decodeEnvelope(stored);
    const key = this.#unwrappedInMemory(envelope.dataKeyId) ?? (await this.#dataKeyById(envelope.dataKeyId));
    return this.#open(stored, envelope, key, location);
  }

  /**
   * `decrypt` without waiting, for the common case where the value's data
   * key is already unwrapped in memory: the plaintext, or undefined when the
   * key has to be fetched or unwrapped first (then call `decrypt`). Throws
   * the same CryptoErrors, synchronously. Lists of thousands of values are
   * read through here, so no promise is made per value.
   */
  decryptIfKeyReady(stored: Buffer, location: FieldLocation): string | undefined {
    const envelope = decodeEnvelope(stored);
    const key = this.#unwrappedInMemory(envelope.dataKeyId);
    return key ? this.#open(stored, envelope, key, location) : undefined;
  }

  /** `stored` is the envelope's own bytes: its first bytes are the header the associated data starts with (decodeEnvelope checked them). */
  #open(stored: Buffer, envelope: Envelope, key: Buffer, location: FieldLocation): string {
    try {
      const decipher = createDecipheriv(ALGORITHM, key, envelope.nonce);
      decipher.setAAD(associatedData(location, stored.subarray(0, HEADER_BYTES)));
      decipher.setAuthTag(envelope.tag);
      // GCM is a stream mode: update() returns every byte; final() checks the tag (and throws) before anything is returned.
      const plaintext = decipher.update(envelope.ciphertext);
      decipher.final();
      this.decryptions += 1;
      return plaintext.toString('utf8');
    } catch {
      throw new CryptoError('DECRYPTION_FAILED', `${location.table}.${location.column} of one row did not authenticate`);
    }
  }

  async #dataKeyById(id: number): Promise<Buffer> {
    const dataKey = await this.store.byId(id);
    if (!dataKey) throw new CryptoError('KEY_UNKNOWN', `no data key ${id}`);
    return this.#unwrapped(dataKey);
  }

  /** The KEK version a stored value is (indirectly) under; for re-encryption. */
  async kekVersionOf(stored: Buffer): Promise<number> {
    const dataKey = await this.store.byId(decodeEnvelope(stored).dataKeyId);
    if (!dataKey) throw new CryptoError('KEY_UNKNOWN', 'unknown data key');
    return dataKey.kekVersion;
  }

  currentKekVersion(): number {
    return this.kms.currentVersion();
  }

  /**
   * Makes sure the current data key exists and is unwrapped. Called at
   * start: afterwards encryption needs no database round trip, so it can
   * run inside a transaction (on a one-connection database too).
   */
  async prepare(): Promise<void> {
    await this.#unwrapped(await this.#currentDataKey());
  }

  async #currentDataKey(): Promise<StoredDataKey> {
    const version = this.kms.currentVersion();
    if (!this.#current || this.#currentVersion !== version) {
      this.#currentVersion = version;
      this.#current = (async () => {
        const existing = await this.store.currentFor(version);
        if (existing) return existing;
        const { kekVersion, wrapped } = await this.kms.wrapDataKey(randomBytes(KEY_BYTES));
        return this.store.create(kekVersion, wrapped);
      })();
      this.#current.catch(() => (this.#current = undefined));
    }
    return this.#current;
  }

  /** The unwrapped data key if it is cached and fresh (and marked most recently used), else undefined. */
  #unwrappedInMemory(id: number): Buffer | undefined {
    const cached = this.#keys.get(id);
    if (!cached) return undefined;
    if (cached.expiresAt <= Date.now()) {
      this.#keys.delete(id);
      return undefined;
    }
    if (this.#mostRecent !== id) {
      // Re-insert: the Map's order is the LRU order (skipped for the key just used: a list reads one key thousands of times).
      this.#keys.delete(id);
      this.#keys.set(id, cached);
      this.#mostRecent = id;
    }
    return cached.key;
  }

  async #unwrapped(dataKey: StoredDataKey): Promise<Buffer> {
    const cached = this.#unwrappedInMemory(dataKey.id);
    if (cached) return cached;
    const key = await this.kms.unwrapDataKey(dataKey.kekVersion, dataKey.wrapped);
    this.#keys.delete(dataKey.id);
    this.#keys.set(dataKey.id, { key, kekVersion: dataKey.kekVersion, expiresAt: Date.now() + this.cacheOptions.ttlMs });
    this.#mostRecent = dataKey.id;
    while (this.#keys.size > this.cacheOptions.maxKeys) {
      const oldest = this.#keys.keys().next().value as number;
      this.#keys.delete(oldest);
    }
    return key;
  }
}
