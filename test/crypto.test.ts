import { describe, expect, it } from 'vitest';
import {
  CryptoError,
  FieldCipher,
  KeyRing,
  LocalKeyManagement,
  Sealed,
  unseal,
  addKeyVersion,
  blindIndex,
  generateKeyRingDocument,
  retireKeyVersions,
  type DataKeyStore,
  type KeyManagementService,
  type StoredDataKey,
} from '../src/crypto/index.js';

/** Data keys kept in an array: the cipher's own contract, not a database stand-in. */
class ArrayDataKeyStore implements DataKeyStore {
  readonly keys: StoredDataKey[] = [];
  currentFor(kekVersion: number) {
    return Promise.resolve([...this.keys].reverse().find((key) => key.kekVersion === kekVersion) ?? null);
  }
  byId(id: number) {
    return Promise.resolve(this.keys.find((key) => key.id === id) ?? null);
  }
  create(kekVersion: number, wrapped: Buffer) {
    const key = { id: this.keys.length + 1, kekVersion, wrapped };
    this.keys.push(key);
    return Promise.resolve(key);
  }
}

class CountingKms implements KeyManagementService {
  unwraps = 0;
  constructor(private readonly inner: KeyManagementService) {}
  currentVersion() {
    return this.inner.currentVersion();
  }
  wrapDataKey(key: Buffer) {
    return this.inner.wrapDataKey(key);
  }
  unwrapDataKey(version: number, wrapped: Buffer) {
    this.unwraps += 1;
    return this.inner.unwrapDataKey(version, wrapped);
  }
}

const at = { table: 'patient', column: 'ssn', rowId: '00000000-0000-4000-8000-000000000001' };

function setup(document = generateKeyRingDocument(false)) {
  const store = new ArrayDataKeyStore();
  const kms = new CountingKms(new LocalKeyManagement(KeyRing.fromDocument(document)));
  return { store, kms, cipher: new FieldCipher(kms, store), document };
}

async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof CryptoError) return error.failure;
    throw error;
  }
  return 'decrypted';
}

describe('field encryption', () => {
  it('round-trips a value and never gives the same ciphertext twice', async () => {
    const { cipher } = setup();
    const first = await cipher.encrypt('987-65-4321', at);
    const second = await cipher.encrypt('987-65-4321', at);
    expect(first.equals(second)).toBe(false);
    expect(first.includes(Buffer.from('987-65-4321'))).toBe(false);
    expect(await cipher.decrypt(first, at)).toBe('987-65-4321');
    expect(await cipher.decrypt(second, at)).toBe('987-65-4321');
    expect(first[0]).toBe(1);
  });

  it('refuses a ciphertext moved to another row, column or table', async () => {
    const { cipher } = setup();
    const stored = await cipher.encrypt('Jane', at);
    expect(await failure(cipher.decrypt(stored, { ...at, rowId: '00000000-0000-4000-8000-000000000002' }))).toBe('DECRYPTION_FAILED');
    expect(await failure(cipher.decrypt(stored, { ...at, column: 'mrn' }))).toBe('DECRYPTION_FAILED');
    expect(await failure(cipher.decrypt(stored, { ...at, table: 'practitioner' }))).toBe('DECRYPTION_FAILED');
  });

  it('refuses a ciphertext with any single byte changed', async () => {
    const { cipher } = setup();
    const stored = await cipher.encrypt('A long enough clinical note text', at);
    for (let index = 0; index < stored.length; index += 1) {
      const tampered = Buffer.from(stored);
      tampered[index] = (tampered[index] ?? 0) ^ 0x01;
      expect(await failure(cipher.decrypt(tampered, at)), `byte ${index}`).not.toBe('decrypted');
    }
    expect(await failure(cipher.decrypt(Buffer.from('plaintext'), at))).toBe('MALFORMED_CIPHERTEXT');
  });

  it('keeps old values readable after a rotation, writes new ones under the new key, and refuses retired versions loudly', async () => {
    const { cipher, store, document } = setup();
    const old = await cipher.encrypt('old value', at);
    const rotated = addKeyVersion(document);
    const after = new FieldCipher(new LocalKeyManagement(KeyRing.fromDocument(rotated)), store);
    const fresh = await after.encrypt('new value', at);
    expect(await after.kekVersionOf(old)).toBe(1);
    expect(await after.kekVersionOf(fresh)).toBe(2);
    expect(await after.decrypt(old, at)).toBe('old value');
    const retired = new FieldCipher(new LocalKeyManagement(KeyRing.fromDocument(retireKeyVersions(rotated, [1]))), store);
    expect(await failure(retired.decrypt(old, at))).toBe('KEY_RETIRED');
    expect(await retired.decrypt(fresh, at)).toBe('new value');
    expect(() => retireKeyVersions(rotated, [2])).toThrow(/current/);
  });

  it('caches unwrapped data keys within a bound and a lifetime, and never plaintext', async () => {
    const { kms, store } = setup();
    const cipher = new FieldCipher(kms, store, { maxKeys: 8, ttlMs: 60_000 });
    const stored = await cipher.encrypt('x', at);
    for (let index = 0; index < 5; index += 1) await cipher.decrypt(stored, at);
    expect(kms.unwraps).toBe(1);
    const uncached = new FieldCipher(kms, store, { maxKeys: 8, ttlMs: 0 });
    await uncached.decrypt(stored, at);
    await uncached.decrypt(stored, at);
    expect(kms.unwraps).toBe(3);
    expect(cipher.decryptions).toBe(5);
  });

  it('opens a sealed field whose data key is not in memory by waiting for it once, then without waiting, and refuses a tampered one either way', async () => {
    const { kms, store, cipher: writer } = setup();
    const parts = (stored: Buffer) => [{ stored, location: at, encrypted: true }];
    const stored = await writer.encrypt('987-65-4321', at);
    const reader = new FieldCipher(kms, store);
    const sealedSsn = new Sealed(parts(stored), ([ssn]) => ssn);

    const cold = unseal(sealedSsn, reader);
    expect(cold).toBeInstanceOf(Promise);
    expect(await cold).toBe('987-65-4321');
    expect(unseal(sealedSsn, reader)).toBe('987-65-4321');

    const tampered = Buffer.from(stored);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 0x01;
    expect(() => unseal(new Sealed(parts(tampered), ([ssn]) => ssn), reader)).toThrow(CryptoError);
    expect(await failure(Promise.resolve(unseal(new Sealed(parts(tampered), ([ssn]) => ssn), new FieldCipher(kms, store))))).toBe('DECRYPTION_FAILED');
  });

  it('refuses a key ring with a short key or a retired current version', () => {
    const document = generateKeyRingDocument(false);
    expect(() => KeyRing.fromDocument({ ...document, keys: { '1': Buffer.alloc(16).toString('base64') } })).toThrow(/32 bytes/);
    expect(() => KeyRing.fromDocument({ ...document, retired: [1] })).toThrow(/current/);
  });
});

describe('blind indexes', () => {
  it('match equal values after normalization and differ across keys and purposes', () => {
    const key = Buffer.alloc(32, 7);
    expect(blindIndex(key, 'mrn', ' mrn0001 ').equals(blindIndex(key, 'mrn', 'MRN0001'))).toBe(true);
    expect(blindIndex(key, 'ssn', '987-65-4321').equals(blindIndex(key, 'ssn', '987654321'))).toBe(true);
    expect(blindIndex(key, 'email', 'A@B.test').equals(blindIndex(key, 'email', 'a@b.test'))).toBe(true);
    expect(blindIndex(key, 'mrn', 'MRN0001').equals(blindIndex(Buffer.alloc(32, 8), 'mrn', 'MRN0001'))).toBe(false);
    expect(blindIndex(key, 'mrn', '123').equals(blindIndex(key, 'ssn', '123'))).toBe(false);
  });
});
