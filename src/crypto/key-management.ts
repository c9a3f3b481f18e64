import { createCipheriv, createDecipheriv } from 'node:crypto';
import { CryptoError } from './errors.js';
import type { KeyRing } from './key-ring.js';

/**
 * Wraps and unwraps data keys with key-encryption keys. The local
 * implementation uses the key ring's KEKs with AES key wrap (RFC 3394);
 * a KMS adapter (AWS KMS, Cloud KMS, Vault transit) implements the same
 * interface and keeps the KEKs out of this process.
 */
export interface KeyManagementService {
  currentVersion(): number;
  wrapDataKey(dataKey: Buffer): Promise<{ kekVersion: number; wrapped: Buffer }>;
  unwrapDataKey(kekVersion: number, wrapped: Buffer): Promise<Buffer>;
}

/** RFC 3394 default initial value. */
const KEY_WRAP_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');
const KEY_WRAP_ALGORITHM = 'id-aes256-wrap';

export class LocalKeyManagement implements KeyManagementService {
  constructor(private readonly ring: KeyRing) {}

  currentVersion(): number {
    return this.ring.currentVersion;
  }

  wrapDataKey(dataKey: Buffer): Promise<{ kekVersion: number; wrapped: Buffer }> {
    const kekVersion = this.ring.currentVersion;
    const kek = this.ring.keyBytes(kekVersion) as Buffer;
    const cipher = createCipheriv(KEY_WRAP_ALGORITHM, kek, KEY_WRAP_IV);
    return Promise.resolve({ kekVersion, wrapped: Buffer.concat([cipher.update(dataKey), cipher.final()]) });
  }

  unwrapDataKey(kekVersion: number, wrapped: Buffer): Promise<Buffer> {
    if (this.ring.isRetired(kekVersion)) return Promise.reject(new CryptoError('KEY_RETIRED', `key-encryption key version ${kekVersion} is retired`));
    const kek = this.ring.keyBytes(kekVersion);
    if (!kek) return Promise.reject(new CryptoError('KEY_UNKNOWN', `no key-encryption key version ${kekVersion}`));
    try {
      const decipher = createDecipheriv(KEY_WRAP_ALGORITHM, kek, KEY_WRAP_IV);
      return Promise.resolve(Buffer.concat([decipher.update(wrapped), decipher.final()]));
    } catch {
      return Promise.reject(new CryptoError('DECRYPTION_FAILED', `data key does not unwrap under version ${kekVersion}`));
    }
  }
}
