import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CryptoError } from './errors.js';
import type { KeyRing } from './key-ring.js';

/**
 * Wraps and unwraps data keys with key-encryption keys (KEKs). The KEKs
 * are versioned; new data keys are wrapped under the current version.
 *
 * A wrapped data key is bound to a context (what the key serves: its table
 * and data category, and the KEK version): it unwraps only for the same
 * context, so whoever can edit the data_key table cannot relabel a key to
 * serve another kind of data.
 *
 * Implementations: LocalKeyManagement (KEKs from a key ring in this
 * process's memory: PHI_KEY_RING, PHI_KEY_RING_FILE, or the development
 * ring) and Pkcs11KeyManagement (KEKs generated in an HSM that never leave
 * it; wrapping and unwrapping happen on the token).
 */
export interface KeyManagementService {
  /** Where the KEKs are kept, for logs ("key ring", "PKCS#11 token phi"); never key material. */
  readonly description: string;
  currentVersion(): number;
  /** Wraps a data key under the current KEK, bound to `context`. */
  wrapDataKey(dataKey: Buffer, context: string): Promise<{ kekVersion: number; wrapped: Buffer }>;
  /**
   * The data key, if `wrapped` was made under `kekVersion` for this `context`.
   * Rejects with CryptoError KEY_UNKNOWN (no such version), KEY_RETIRED, or
   * DECRYPTION_FAILED (wrong context, altered bytes).
   */
  unwrapDataKey(kekVersion: number, wrapped: Buffer, context: string): Promise<Buffer>;
  /**
   * Reads the KEK versions again from their source (a rotation or a
   * retirement on a running deployment). True when the current version or
   * the set of known or retired versions changed.
   */
  refresh(): Promise<boolean>;
  /** Calls made to the KEK holder since start, for the cost report (no key bytes). */
  readonly calls: KeyServiceCalls;
  /** Releases a session (PKCS#11); a no-op for the local ring. */
  close?(): Promise<void>;
}

export interface KeyServiceCalls {
  wrap: number;
  unwrap: number;
  refresh: number;
}

/**
 * The wrapped form both implementations write:
 *   0x02 | nonce (12) | AES-256-GCM ciphertext of the data key (32) | tag (16)
 * with `context` (UTF-8) as the associated data. Data keys wrapped before
 * contexts existed are 40 bytes of AES key wrap (RFC 3394) and are read by
 * the local ring only (LEGACY_WRAPPED_BYTES).
 */
export const WRAP_FORMAT = 0x02;
export const WRAP_NONCE_BYTES = 12;
export const WRAP_TAG_BYTES = 16;
export const WRAPPED_BYTES = 1 + WRAP_NONCE_BYTES + 32 + WRAP_TAG_BYTES;
export const LEGACY_WRAPPED_BYTES = 40;

/** RFC 3394 default initial value (legacy data keys). */
const KEY_WRAP_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');
const KEY_WRAP_ALGORITHM = 'id-aes256-wrap';

export type KeyRingSource = () => Promise<KeyRing>;

export class LocalKeyManagement implements KeyManagementService {
  readonly calls: KeyServiceCalls = { wrap: 0, unwrap: 0, refresh: 0 };
  #ring: KeyRing;

  /** `reload` reads the ring again from where it came from (a file); absent for a ring fixed at start (PHI_KEY_RING). */
  constructor(
    ring: KeyRing,
    private readonly reload?: KeyRingSource,
    readonly description = 'key ring',
  ) {
    this.#ring = ring;
  }

  get ring(): KeyRing {
    return this.#ring;
  }

  currentVersion(): number {
    return this.#ring.currentVersion;
  }

  wrapDataKey(dataKey: Buffer, context: string): Promise<{ kekVersion: number; wrapped: Buffer }> {
    this.calls.wrap += 1;
    const kekVersion = this.#ring.currentVersion;
    const kek = this.#ring.keyBytes(kekVersion) as Buffer;
    const nonce = randomBytes(WRAP_NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', kek, nonce);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(dataKey), cipher.final()]);
    return Promise.resolve({ kekVersion, wrapped: Buffer.concat([Buffer.of(WRAP_FORMAT), nonce, body, cipher.getAuthTag()]) });
  }

  unwrapDataKey(kekVersion: number, wrapped: Buffer, context: string): Promise<Buffer> {
    this.calls.unwrap += 1;
    if (this.#ring.isRetired(kekVersion)) return Promise.reject(new CryptoError('KEY_RETIRED', `key-encryption key version ${kekVersion} is retired`));
    const kek = this.#ring.keyBytes(kekVersion);
    if (!kek) return Promise.reject(new CryptoError('KEY_UNKNOWN', `no key-encryption key version ${kekVersion}`));
    try {
      // The legacy form only for a key that claims no scope (the empty context): a legacy key copied into a row with a scope does not unwrap.
      return Promise.resolve(wrapped.length === LEGACY_WRAPPED_BYTES && context === '' ? unwrapLegacy(kek, wrapped) : unwrapGcm(kek, wrapped, context));
    } catch {
      return Promise.reject(new CryptoError('DECRYPTION_FAILED', `data key does not unwrap under version ${kekVersion} for its context`));
    }
  }

  async refresh(): Promise<boolean> {
    if (!this.reload) return false;
    this.calls.refresh += 1;
    const next = await this.reload();
    const changed = next.fingerprint() !== this.#ring.fingerprint();
    this.#ring = next;
    return changed;
  }
}

function unwrapGcm(kek: Buffer, wrapped: Buffer, context: string): Buffer {
  if (wrapped.length !== WRAPPED_BYTES || wrapped[0] !== WRAP_FORMAT) throw new Error('not a wrapped data key');
  const decipher = createDecipheriv('aes-256-gcm', kek, wrapped.subarray(1, 1 + WRAP_NONCE_BYTES));
  decipher.setAAD(Buffer.from(context, 'utf8'));
  decipher.setAuthTag(wrapped.subarray(wrapped.length - WRAP_TAG_BYTES));
  const key = decipher.update(wrapped.subarray(1 + WRAP_NONCE_BYTES, wrapped.length - WRAP_TAG_BYTES));
  decipher.final();
  return key;
}

/** A data key wrapped before contexts existed: AES key wrap, its own integrity check, no context. */
function unwrapLegacy(kek: Buffer, wrapped: Buffer): Buffer {
  const decipher = createDecipheriv(KEY_WRAP_ALGORITHM, kek, KEY_WRAP_IV);
  return Buffer.concat([decipher.update(wrapped), decipher.final()]);
}
