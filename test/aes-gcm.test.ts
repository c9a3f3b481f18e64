import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { defaultGcm, nativeGcm, nodeCryptoGcm, type GcmDecryptor } from '../src/crypto/aes-gcm.js';
import { envelopeHeader, FieldCipher, KeyRing, LocalKeyManagement, generateKeyRingDocument, type DataKeyStore, type StoredDataKey } from '../src/crypto/index.js';

/**
 * The native AES-256-GCM addon (native/aead) and node:crypto must be
 * interchangeable: the same plaintext for every value, and the same refusal
 * for every tampered one. CI builds the addon and sets REQUIRE_NATIVE_CRYPTO=1,
 * so there a missing addon fails this file instead of skipping it.
 */
const native = nativeGcm();
const nativeReason = 'reason' in native ? native.reason : undefined;
const required = process.env.REQUIRE_NATIVE_CRYPTO === '1';

const HEADER_BYTES = 6;

/** An envelope as FieldCipher writes it: header | nonce | ciphertext | tag, AAD = header + location. */
function envelope(key: Buffer, plaintext: Buffer, location: string, dataKeyId = 7): Buffer {
  const head = envelopeHeader(dataKeyId);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.concat([head, Buffer.from(location, 'utf8')]));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([head, nonce, ciphertext, cipher.getAuthTag()]);
}

const LOCATION = '\u0000patient\u0000ssn\u000000000000-0000-4000-8000-000000000001';

/** Plaintexts around the addon's stack buffer (512 bytes) and beyond, text and not. */
function plaintexts(): Buffer[] {
  const texts = ['', 'a', '123-45-6789', 'Zoë Ångström-Nuñez 🩺', 'x'.repeat(511), 'y'.repeat(512), 'z'.repeat(513), 'é'.repeat(4000)].map((text) => Buffer.from(text, 'utf8'));
  // Bytes that are not UTF-8: both must decode them alike (replacement characters).
  return [...texts, Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from([0xe2, 0x82]), randomBytes(37), randomBytes(700)];
}

describe('the native AES-256-GCM addon', () => {
  it('is built where CI requires it; PHI_NATIVE_CRYPTO picks it (auto), refuses it (off) or requires it', () => {
    if (required) expect(nativeReason).toBeUndefined();
    expect(defaultGcm('off')).toEqual({ decryptor: nodeCryptoGcm, fallbackReason: 'PHI_NATIVE_CRYPTO=off' });
    if (nativeReason) {
      expect(defaultGcm('auto')).toEqual({ decryptor: nodeCryptoGcm, fallbackReason: nativeReason });
      expect(() => defaultGcm('require')).toThrow(/PHI_NATIVE_CRYPTO=require/);
    } else {
      expect(defaultGcm('auto').decryptor.kind).toBe('native');
      expect(defaultGcm('require').decryptor.kind).toBe('native');
    }
  });

  describe.skipIf(nativeReason !== undefined)(`agrees with node:crypto${nativeReason ? ` (skipped: ${nativeReason})` : ''}`, () => {
    const both = [nodeCryptoGcm, native as GcmDecryptor];

    it('opens every value to the same string', () => {
      const key = randomBytes(32);
      for (const plaintext of plaintexts()) {
        for (const location of [LOCATION, '', `\u0000claim\u0000diagnosis_codes\u0000${'r'.repeat(600)}`, '\u0000patient\u0000name\u0000ü']) {
          const stored = envelope(key, plaintext, location);
          const opened = both.map((gcm) => gcm.open(key, stored, HEADER_BYTES, location));
          expect(opened[0]).toBe(plaintext.toString('utf8'));
          expect(opened[1]).toBe(opened[0]);
        }
      }
    });

    it('refuses every tampered value alike: each byte flipped, truncated, extended, another location, another key', () => {
      const key = randomBytes(32);
      const stored = envelope(key, Buffer.from('Jane Q. Doe', 'utf8'), LOCATION);
      const attempts: { what: string; stored: Buffer; location?: string; key?: Buffer }[] = [];
      for (let index = 0; index < stored.length; index++) {
        const flipped = Buffer.from(stored);
        flipped[index] = (flipped[index] ?? 0) ^ 0x01;
        attempts.push({ what: `byte ${index} flipped`, stored: flipped });
      }
      attempts.push({ what: 'tag cut by one byte', stored: stored.subarray(0, stored.length - 1) });
      attempts.push({ what: 'too short for nonce and tag', stored: stored.subarray(0, HEADER_BYTES + 20) });
      attempts.push({ what: 'header only', stored: stored.subarray(0, HEADER_BYTES) });
      attempts.push({ what: 'a byte appended', stored: Buffer.concat([stored, Buffer.from([0])]) });
      attempts.push({ what: 'another row', stored, location: LOCATION.replace('0001', '0002') });
      attempts.push({ what: 'another column', stored, location: LOCATION.replace('ssn', 'name') });
      attempts.push({ what: 'no location', stored, location: '' });
      attempts.push({ what: 'another key', stored, key: randomBytes(32) });
      for (const attempt of attempts) {
        const results = both.map((gcm) => gcm.open(attempt.key ?? key, attempt.stored, HEADER_BYTES, attempt.location ?? LOCATION));
        expect(results, attempt.what).toEqual([null, null]);
      }
      // The untampered value still opens with each (the key's context was not left in a failed state).
      expect(both.map((gcm) => gcm.open(key, stored, HEADER_BYTES, LOCATION))).toEqual(['Jane Q. Doe', 'Jane Q. Doe']);
    });

    it('keeps keys apart: values of two data keys interleaved open with their own key only', () => {
      const [first, second] = [randomBytes(32), randomBytes(32)];
      const values = Array.from({ length: 200 }, (_, index) => ({ key: index % 2 ? first : second, text: `value ${index}` }));
      const stored = values.map(({ key, text }) => envelope(key, Buffer.from(text), LOCATION));
      const gcm = native as GcmDecryptor;
      values.forEach(({ key, text }, index) => {
        expect(gcm.open(key, stored[index] as Buffer, HEADER_BYTES, LOCATION)).toBe(text);
        expect(gcm.open(key === first ? second : first, stored[index] as Buffer, HEADER_BYTES, LOCATION)).toBeNull();
      });
    });

    it('gives FieldCipher the same values and the same errors either way', async () => {
      const keys: StoredDataKey[] = [];
      const store: DataKeyStore = {
        keysFor: (version, scope) => Promise.resolve(keys.filter((key) => key.kekVersion === version && key.scope === scope).reverse()),
        byId: (id) => Promise.resolve(keys.find((key) => key.id === id) ?? null),
        reserveId: () => Promise.resolve(keys.length + 1),
        create: (id, kekVersion, scope, wrapped) => {
          const key = { id, kekVersion, scope, wrapped };
          keys.push(key);
          return Promise.resolve(key);
        },
      };
      const kms = new LocalKeyManagement(KeyRing.fromDocument(generateKeyRingDocument(false)));
      const withNode = new FieldCipher(kms, store, undefined, undefined, nodeCryptoGcm);
      const withNative = new FieldCipher(kms, store, undefined, undefined, native as GcmDecryptor);
      const at = { table: 'patient', column: 'ssn', rowId: 'r1' };
      const stored = await withNode.encrypt('123-45-6789', at);
      const outcome = async (cipher: FieldCipher, bytes: Buffer, location = at) => cipher.decrypt(bytes, location).catch((error: { failure?: string }) => `error ${error.failure}`);
      for (const [bytes, location] of [
        [stored, at],
        [stored, { ...at, rowId: 'r2' }],
        [Buffer.concat([stored.subarray(0, -1), Buffer.from([(stored.at(-1) ?? 0) ^ 1])]), at],
        [stored.subarray(0, 10), at],
        [Buffer.alloc(0), at],
      ] as const) {
        const [a, b] = [await outcome(withNode, bytes, location), await outcome(withNative, bytes, location)];
        expect(b).toBe(a);
      }
      expect(await outcome(withNative, stored)).toBe('123-45-6789');
      expect(await outcome(withNative, stored, { ...at, rowId: 'r2' })).toBe('error DECRYPTION_FAILED');
    });
  });
});
