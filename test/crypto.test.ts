import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  COLUMN_SCOPES,
  CryptoError,
  FieldCipher,
  KeyRing,
  LocalKeyManagement,
  Sealed,
  SealedColumn,
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
  keysFor(kekVersion: number, scope: string) {
    return Promise.resolve([...this.keys].reverse().filter((key) => key.kekVersion === kekVersion && key.scope === scope));
  }
  reserveId() {
    this.reserved = Math.max(this.reserved, this.keys.length) + 1;
    return Promise.resolve(this.reserved);
  }
  reserved = 0;
  byId(id: number) {
    return Promise.resolve(this.keys.find((key) => key.id === id) ?? null);
  }
  create(id: number, kekVersion: number, scope: string, wrapped: Buffer) {
    const key = { id, kekVersion, wrapped, scope };
    this.keys.push(key);
    return Promise.resolve(key);
  }
}

class CountingKms implements KeyManagementService {
  unwraps = 0;
  readonly description = 'counting';
  constructor(private readonly inner: KeyManagementService) {}
  get calls() {
    return this.inner.calls;
  }
  currentVersion() {
    return this.inner.currentVersion();
  }
  wrapDataKey(key: Buffer, context: string) {
    return this.inner.wrapDataKey(key, context);
  }
  unwrapDataKey(version: number, wrapped: Buffer, context: string) {
    this.unwraps += 1;
    return this.inner.unwrapDataKey(version, wrapped, context);
  }
  refresh() {
    return this.inner.refresh();
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
    expect(first[0]).toBe(2);
    expect(first[1]).toBe(1);
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
    const cipher = new FieldCipher(kms, store, COLUMN_SCOPES, { maxKeys: 8, ttlMs: 60_000 });
    const stored = await cipher.encrypt('x', at);
    for (let index = 0; index < 5; index += 1) await cipher.decrypt(stored, at);
    expect(kms.unwraps).toBe(1);
    const uncached = new FieldCipher(kms, store, COLUMN_SCOPES, { maxKeys: 8, ttlMs: 0 });
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

  it('opens a one-column sealed value (SealedColumn, what list rows hold) exactly as the general form: cold, warm, tampered, moved, marked unencrypted', async () => {
    const { kms, store, cipher: writer } = setup();
    const stored = await writer.encrypt('987-65-4321', at);
    const column = (bytes: Buffer, rowId = at.rowId, encrypted = true) => new SealedColumn(bytes, at.table, at.column, rowId, encrypted, (ssn) => `<${ssn}>`);
    const general = (bytes: Buffer, rowId = at.rowId, encrypted = true) => new Sealed([{ stored: bytes, location: { ...at, rowId }, encrypted }], ([ssn]) => `<${ssn ?? ''}>`);
    const reader = new FieldCipher(kms, store);
    const cold = unseal(column(stored), reader);
    expect(cold).toBeInstanceOf(Promise);
    expect(await cold).toBe('<987-65-4321>');
    expect(unseal(column(stored), reader)).toBe(unseal(general(stored), reader));
    const tampered = Buffer.from(stored);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 0x01;
    const outcome = async (open: () => unknown) => {
      try {
        return `value ${String(await open())}`;
      } catch (error) {
        return `error ${(error as CryptoError).failure}`;
      }
    };
    for (const [bytes, rowId, encrypted] of [[tampered, at.rowId, true], [stored, 'another-row', true], [stored, at.rowId, false]] as const) {
      const [a, b] = [await outcome(() => unseal(column(bytes, rowId, encrypted), reader)), await outcome(() => unseal(general(bytes, rowId, encrypted), reader))];
      expect(a).toMatch(/^error /);
      expect(a).toBe(b);
    }
    expect(() => JSON.stringify({ ssn: column(stored) })).toThrow(/without passing the decryption step/);
    expect(column(stored).parts).toEqual(general(stored).parts);
  });

  it('refuses a key ring with a short key or a retired current version', () => {
    const document = generateKeyRingDocument(false);
    expect(() => KeyRing.fromDocument({ ...document, keys: { '1': Buffer.alloc(16).toString('base64') } })).toThrow(/32 bytes/);
    expect(() => KeyRing.fromDocument({ ...document, retired: [1] })).toThrow(/current/);
  });
});

describe('the envelope and the data keys an insider can edit around it', () => {
  it('binds format, algorithm and data key id: a downgrade to the older format, another algorithm or another key id fails', async () => {
    const { cipher } = setup();
    const stored = await cipher.encrypt('987-65-4321', at);
    const other = await cipher.encrypt('x', { ...at, column: 'name' });
    // Format 1 layout (no algorithm byte), same key id, nonce, ciphertext and tag.
    const downgraded = Buffer.concat([Buffer.of(1), stored.subarray(2)]);
    expect(await failure(cipher.decrypt(downgraded, at))).toBe('DECRYPTION_FAILED');
    const algorithm = Buffer.from(stored);
    algorithm[1] = 2;
    expect(await failure(cipher.decrypt(algorithm, at))).toBe('MALFORMED_CIPHERTEXT');
    const format = Buffer.from(stored);
    format[0] = 3;
    expect(await failure(cipher.decrypt(format, at))).toBe('MALFORMED_CIPHERTEXT');
    // The key id of a value of another column (a key that exists, of another scope).
    const rekeyed = Buffer.from(stored);
    other.copy(rekeyed, 2, 2, 6);
    expect(rekeyed.equals(stored)).toBe(false);
    expect(await failure(cipher.decrypt(rekeyed, at))).toBe('DECRYPTION_FAILED');
    expect(await cipher.decrypt(stored, at)).toBe('987-65-4321');
  });

  it('gives each scope its own data key, and a data key relabelled to another scope does not unwrap', async () => {
    const { cipher, store, kms } = setup();
    const ssn = await cipher.encrypt('987-65-4321', at);
    const name = await cipher.encrypt('Jane', { ...at, column: 'name' });
    expect(ssn.readUInt32BE(2)).not.toBe(name.readUInt32BE(2));
    expect(store.keys.map((key) => key.scope).sort()).toEqual(['patient/name', 'patient/ssn']);
    // The insider relabels the ssn key as the name key's scope: a fresh reader cannot unwrap it at all.
    const ssnKey = store.keys.find((key) => key.scope === 'patient/ssn');
    if (!ssnKey) throw new Error('no ssn key');
    ssnKey.scope = 'patient/name';
    expect(await failure(new FieldCipher(kms, store).decrypt(ssn, at))).toBe('DECRYPTION_FAILED');
    expect(await failure(new FieldCipher(kms, store).decrypt(name, { ...at, column: 'name' }))).toBe('decrypted');
    expect([...cipher.use.keys()].sort()).toEqual(['patient/name', 'patient/ssn']);
  });

  it('reads values written before scopes and format 2: format 1 under a data key wrapped with AES key wrap', async () => {
    const document = generateKeyRingDocument(false);
    const kek = Buffer.from(document.keys['1'] ?? '', 'base64');
    const dataKey = randomBytes(32);
    const wrapper = createCipheriv('id-aes256-wrap', kek, Buffer.from('A6A6A6A6A6A6A6A6', 'hex'));
    const store = new ArrayDataKeyStore();
    store.keys.push({ id: 1, kekVersion: 1, wrapped: Buffer.concat([wrapper.update(dataKey), wrapper.final()]), scope: null });
    const head = Buffer.alloc(5);
    head.writeUInt8(1, 0);
    head.writeUInt32BE(1, 1);
    const nonce = randomBytes(12);
    const gcm = createCipheriv('aes-256-gcm', dataKey, nonce);
    gcm.setAAD(Buffer.concat([head, Buffer.from(`\u0000${at.table}\u0000${at.column}\u0000${at.rowId}`)]));
    const body = Buffer.concat([gcm.update('old value'), gcm.final()]);
    const stored = Buffer.concat([head, nonce, body, gcm.getAuthTag()]);
    const cipher = new FieldCipher(new LocalKeyManagement(KeyRing.fromDocument(document)), store);
    expect(await cipher.decrypt(stored, at)).toBe('old value');
    // New values go to a scoped key in format 2.
    expect((await cipher.encrypt('new', at))[0]).toBe(2);
  });

  it('learns a KEK version made after it started by asking the key service again, at most once per interval', async () => {
    const document = generateKeyRingDocument(false);
    let source = document;
    const reloads = { count: 0 };
    const reload = () => {
      reloads.count += 1;
      return Promise.resolve(KeyRing.fromDocument(source));
    };
    const store = new ArrayDataKeyStore();
    const running = new FieldCipher(new LocalKeyManagement(KeyRing.fromDocument(document), reload), store, COLUMN_SCOPES, { maxKeys: 8, ttlMs: 60_000, refreshMinIntervalMs: 60_000 });
    expect(await running.decrypt(await running.encrypt('before', at), at)).toBe('before');
    // keys:rotate elsewhere, then a value written under the new version by another process.
    source = addKeyVersion(document);
    const writer = new FieldCipher(new LocalKeyManagement(KeyRing.fromDocument(source)), store);
    const after = await writer.encrypt('after', at);
    expect(await running.decrypt(after, at)).toBe('after');
    expect(reloads.count).toBe(1);
    expect(running.currentKekVersion()).toBe(2);
    // A version nobody has: refused, and asked again only once the interval is over.
    const unknown = new FieldCipher(new LocalKeyManagement(KeyRing.fromDocument(addKeyVersion(source))), store);
    const future = await unknown.encrypt('future', { ...at, column: 'name' });
    expect(await failure(running.decrypt(future, { ...at, column: 'name' }))).toBe('KEY_UNKNOWN');
    expect(await failure(running.decrypt(future, { ...at, column: 'name' }))).toBe('KEY_UNKNOWN');
    expect(reloads.count).toBe(1);
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
