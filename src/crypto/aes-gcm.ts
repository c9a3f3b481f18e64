import { createDecipheriv } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NONCE_BYTES, TAG_BYTES } from './envelope.js';

/**
 * AES-256-GCM decryption of one stored envelope (header | nonce | ciphertext
 * | tag), with the header and the value's location as associated data. Two
 * implementations give the same answers (test/aes-gcm.test.ts):
 *
 * - `native`: the addon in native/aead, over the OpenSSL Node is built with.
 *   It keeps one cipher context per data key (the key schedule is computed
 *   once) and makes no JavaScript object but the plaintext string. Built on
 *   `npm install` when a compiler and Node's headers are there.
 * - `node:crypto`: a decipher per value. Always there; used when the addon
 *   was not built or with `PHI_NATIVE_CRYPTO=off`.
 *
 * `open` answers the plaintext, or null when the value does not
 * authenticate; the caller turns null into its own error.
 */
export interface GcmDecryptor {
  readonly kind: 'native' | 'node:crypto';
  /** `key`: 32 bytes, the same Buffer for every value of a data key (the native one keys its context by it). */
  open(key: Buffer, stored: Buffer, headerBytes: number, location: string): string | null;
}

const ALGORITHM = 'aes-256-gcm';

export const nodeCryptoGcm: GcmDecryptor = {
  kind: 'node:crypto',
  open(key, stored, headerBytes, location) {
    if (stored.length < headerBytes + NONCE_BYTES + TAG_BYTES) return null;
    try {
      const decipher = createDecipheriv(ALGORITHM, key, stored.subarray(headerBytes, headerBytes + NONCE_BYTES), { authTagLength: TAG_BYTES });
      decipher.setAAD(associatedData(stored.subarray(0, headerBytes), location));
      decipher.setAuthTag(stored.subarray(stored.length - TAG_BYTES));
      // GCM is a stream mode: update() returns every byte; final() checks the tag (and throws) before anything is returned.
      const plaintext = decipher.update(stored.subarray(headerBytes + NONCE_BYTES, stored.length - TAG_BYTES));
      decipher.final();
      return plaintext.toString('utf8');
    } catch {
      return null;
    }
  },
};

/** The envelope header, then the location string: one buffer, written in place. */
export function associatedData(head: Buffer, location: string): Buffer {
  const data = Buffer.allocUnsafe(head.length + Buffer.byteLength(location, 'utf8'));
  head.copy(data, 0);
  data.write(location, head.length, 'utf8');
  return data;
}

interface Addon {
  key(key: Buffer): object;
  open(handle: object, stored: Buffer, headerBytes: number, location: string): string | null;
}

const ADDON_PATH = join('native', 'aead', 'build', 'Release', 'phi_aead.node');

/**
 * The built addon of this package, or why not: looked for in the package's
 * own folder only (the first folder above this file, src/crypto in
 * development or dist/crypto when built, that holds a package.json), never
 * in folders above it, where anyone else could have put a file of that name.
 */
function loadAddon(): { addon: Addon } | { reason: string } {
  let folder = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(folder, 'package.json'))) {
    const parent = dirname(folder);
    if (parent === folder) return { reason: 'the package folder (with package.json) was not found' };
    folder = parent;
  }
  const candidate = join(folder, ADDON_PATH);
  if (!existsSync(candidate)) return { reason: `${ADDON_PATH} was not built (npm install builds it with node-gyp)` };
  try {
    return { addon: createRequire(import.meta.url)(candidate) as Addon };
  } catch (error) {
    return { reason: `${ADDON_PATH} did not load (${(error as Error).name})` };
  }
}

/** The native decryptor, or why it is not available. */
export function nativeGcm(): GcmDecryptor | { reason: string } {
  const loaded = loadAddon();
  if ('reason' in loaded) return loaded;
  const { addon } = loaded;
  // One OpenSSL context per key Buffer; it goes when the cipher drops the key (the cache's TTL or eviction).
  const handles = new WeakMap<Buffer, object>();
  return {
    kind: 'native',
    open(key, stored, headerBytes, location) {
      let handle = handles.get(key);
      if (!handle) {
        handle = addon.key(key);
        handles.set(key, handle);
      }
      return addon.open(handle, stored, headerBytes, location);
    },
  };
}

/** `PHI_NATIVE_CRYPTO`: use the addon when it loads (`auto`), never (`off`), or refuse to start without it (`require`). */
export type NativeCryptoSetting = 'auto' | 'off' | 'require';

let loaded: GcmDecryptor | { reason: string } | undefined;

/**
 * The decryptor for a setting: the native one when it loads, unless `off`;
 * `require` throws without it. `fallbackReason` says why node:crypto was
 * chosen. The addon is loaded once per process.
 */
export function defaultGcm(setting: NativeCryptoSetting = 'auto'): { decryptor: GcmDecryptor; fallbackReason?: string } {
  if (setting === 'off') return { decryptor: nodeCryptoGcm, fallbackReason: 'PHI_NATIVE_CRYPTO=off' };
  loaded ??= nativeGcm();
  if (!('reason' in loaded)) return { decryptor: loaded };
  if (setting === 'require') throw new Error(`PHI_NATIVE_CRYPTO=require: ${loaded.reason}`);
  return { decryptor: nodeCryptoGcm, fallbackReason: loaded.reason };
}
