import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Pkcs11 from 'pkcs11js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CryptoError } from '../src/crypto/errors.js';
import { LocalKeyManagement, WRAP_FORMAT, WRAP_NONCE_BYTES, WRAPPED_BYTES } from '../src/crypto/key-management.js';
import { KeyRing, generateKeyRingDocument } from '../src/crypto/key-ring.js';
import { Pkcs11KeyManagement, type Pkcs11Options } from '../src/crypto/pkcs11-key-management.js';
import { TOKEN_SCRIPT, hsmMissing, pkcs11js, reportHsmPrerequisites, softHsmModule } from './support/softhsm.js';
import { createLogger } from '../src/logger.js';

/**
 * Pkcs11KeyManagement against SoftHSM2, a software token speaking PKCS#11.
 *
 * Each test gets a fresh token in a temporary folder (scripts/softhsm-token.sh)
 * and points SOFTHSM2_CONF at it before opening. SoftHSM2 reads that variable
 * at C_Initialize, and a process may C_Initialize a module only once until it
 * calls C_Finalize: every instance a test opens is closed after it, the last
 * close finalizes the module, and the next test's open initializes it again,
 * reading its own token's configuration. (This needs vitest's forks pool, as
 * configured: worker threads would not pass process.env to the library.)
 *
 * Without softhsm2-util, the SoftHSM2 module or the pkcs11js package, the
 * tests are skipped, or fail when REQUIRE_HSM=1 (CI).
 */

const ROOT = resolve(import.meta.dirname, '..');
const LABEL = 'phi-test';
const PIN = '4321-test-pin';
const SO_PIN = '87654321';
const PREFIX = 'phi-kek-';
const modulePath = softHsmModule;
const missing = hsmMissing;
reportHsmPrerequisites();

const CONTEXT = 'patient:clinical:kek-1';

async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof CryptoError) return error.failure;
    throw error;
  }
  return 'succeeded';
}

async function message(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  return 'succeeded';
}

describe.skipIf(missing.length > 0)('PKCS#11 key management on SoftHSM2', () => {
  let folder: string;
  let conf: string;
  let previousConf: string | undefined;
  const opened: Pkcs11KeyManagement[] = [];

  beforeEach(async () => {
    folder = await mkdtemp(join(tmpdir(), 'phi-hsm-'));
    const exportLine = execFileSync('bash', [TOKEN_SCRIPT, folder, LABEL, PIN, SO_PIN], { encoding: 'utf8' });
    conf = join(folder, 'softhsm2.conf');
    expect(exportLine.trim()).toBe(`export SOFTHSM2_CONF=${conf}`);
    previousConf = process.env.SOFTHSM2_CONF;
    process.env.SOFTHSM2_CONF = conf;
  });

  afterEach(async () => {
    // Closing every instance finalizes the module: the next test initializes it on its own token.
    await Promise.all(opened.splice(0).map((kms) => kms.close()));
    if (previousConf === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = previousConf;
    await rm(folder, { recursive: true, force: true });
  });

  async function open(overrides: Partial<Pkcs11Options> = {}): Promise<Pkcs11KeyManagement> {
    const kms = await Pkcs11KeyManagement.open({ modulePath, tokenLabel: LABEL, pin: PIN, keyLabelPrefix: PREFIX, ...overrides });
    opened.push(kms);
    return kms;
  }

  /** A token holding KEK version 1. */
  async function openWithKek(overrides: Partial<Pkcs11Options> = {}): Promise<Pkcs11KeyManagement> {
    const kms = await open({ ...overrides, allowEmpty: true });
    expect(await kms.generateNextKek()).toBe(1);
    return kms;
  }

  /**
   * A session of its own on the test token, through pkcs11js directly: what
   * the token says, not what Pkcs11KeyManagement says. The module is already
   * initialized and logged in by an open instance (PKCS#11 keeps both per
   * process), so this neither initializes nor finalizes.
   */
  function withRawSession<T>(run: (api: typeof Pkcs11, library: Pkcs11.PKCS11, session: Pkcs11.Handle) => T): T {
    const api = pkcs11js as typeof Pkcs11;
    const library = new api.PKCS11();
    library.load(modulePath);
    try {
      library.C_Initialize();
    } catch (error) {
      if (!(error instanceof Error) || error.message !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw error;
    }
    const slot = library.C_GetSlotList(true).find((candidate) => library.C_GetTokenInfo(candidate).label.trimEnd() === LABEL);
    if (!slot) throw new Error(`test token ${LABEL} not found`);
    const session = library.C_OpenSession(slot, api.CKF_SERIAL_SESSION | api.CKF_RW_SESSION);
    try {
      return run(api, library, session);
    } finally {
      library.C_CloseSession(session);
    }
  }

  function findByLabel(api: typeof Pkcs11, library: Pkcs11.PKCS11, session: Pkcs11.Handle, label: string): Pkcs11.Handle[] {
    library.C_FindObjectsInit(session, [{ type: api.CKA_LABEL, value: label }]);
    try {
      return library.C_FindObjects(session, 10);
    } finally {
      library.C_FindObjectsFinal(session);
    }
  }

  function pkcs11Failure(run: () => unknown): string {
    try {
      run();
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
    return 'succeeded';
  }

  describe('wrapping a data key', () => {
    it('round-trips on the token, in the 61-byte layout the key ring writes', async () => {
      const kms = await openWithKek();
      const dataKey = randomBytes(32);
      const first = await kms.wrapDataKey(dataKey, CONTEXT);
      const second = await kms.wrapDataKey(dataKey, CONTEXT);
      expect(first.kekVersion).toBe(1);
      expect(first.wrapped.length).toBe(WRAPPED_BYTES);
      expect(WRAPPED_BYTES).toBe(61);
      expect(first.wrapped[0]).toBe(WRAP_FORMAT);
      expect(first.wrapped.includes(dataKey)).toBe(false);
      // a fresh nonce each time
      expect(first.wrapped.subarray(1, 1 + WRAP_NONCE_BYTES).equals(second.wrapped.subarray(1, 1 + WRAP_NONCE_BYTES))).toBe(false);
      expect((await kms.unwrapDataKey(1, first.wrapped, CONTEXT)).equals(dataKey)).toBe(true);
      expect((await kms.unwrapDataKey(1, second.wrapped, CONTEXT)).equals(dataKey)).toBe(true);
    });

    it('refuses another context, any flipped byte and a wrong length', async () => {
      const kms = await openWithKek();
      const { wrapped } = await kms.wrapDataKey(randomBytes(32), CONTEXT);
      expect(await failure(kms.unwrapDataKey(1, wrapped, 'patient:contact:kek-1'))).toBe('DECRYPTION_FAILED');
      // one byte in the nonce, the ciphertext and the tag
      for (const at of [1 + 3, 1 + WRAP_NONCE_BYTES + 5, WRAPPED_BYTES - 2]) {
        const altered = Buffer.from(wrapped);
        altered[at] = (altered[at] ?? 0) ^ 0x01;
        expect(await failure(kms.unwrapDataKey(1, altered, CONTEXT))).toBe('DECRYPTION_FAILED');
      }
      expect(await failure(kms.unwrapDataKey(1, wrapped.subarray(0, WRAPPED_BYTES - 1), CONTEXT))).toBe('DECRYPTION_FAILED');
      expect(await failure(kms.unwrapDataKey(1, Buffer.concat([wrapped, Buffer.of(0)]), CONTEXT))).toBe('DECRYPTION_FAILED');
      // and the original still unwraps: failures leave the session usable
      expect((await kms.unwrapDataKey(1, wrapped, CONTEXT)).length).toBe(32);
    });

    it('uses the token: the key ring cannot unwrap what the HSM wrapped, nor the HSM what the ring wrapped', async () => {
      const kms = await openWithKek();
      const ring = new LocalKeyManagement(KeyRing.fromDocument(generateKeyRingDocument(false)));
      const dataKey = randomBytes(32);
      const byHsm = await kms.wrapDataKey(dataKey, CONTEXT);
      const byRing = await ring.wrapDataKey(dataKey, CONTEXT);
      expect(byRing.kekVersion).toBe(byHsm.kekVersion);
      expect(byRing.wrapped.length).toBe(byHsm.wrapped.length);
      expect(await failure(ring.unwrapDataKey(byHsm.kekVersion, byHsm.wrapped, CONTEXT))).toBe('DECRYPTION_FAILED');
      expect(await failure(kms.unwrapDataKey(byRing.kekVersion, byRing.wrapped, CONTEXT))).toBe('DECRYPTION_FAILED');
    });

    it('keeps concurrent callers apart on its one session', async () => {
      const kms = await openWithKek();
      const results = await Promise.all(
        Array.from({ length: 25 }, async (_, index) => {
          const dataKey = randomBytes(32);
          const { kekVersion, wrapped } = await kms.wrapDataKey(dataKey, `context-${index}`);
          return (await kms.unwrapDataKey(kekVersion, wrapped, `context-${index}`)).equals(dataKey);
        }),
      );
      expect(results.every(Boolean)).toBe(true);
    });
  });

  describe('the key-encryption key', () => {
    it('is sensitive and never extractable: its value cannot be read, wrapped out or made extractable', async () => {
      await openWithKek();
      withRawSession((api, library, session) => {
        const [kek, ...others] = findByLabel(api, library, session, `${PREFIX}1`);
        expect(kek).toBeDefined();
        expect(others).toHaveLength(0);
        if (!kek) return;
        expect(pkcs11Failure(() => library.C_GetAttributeValue(session, kek, [{ type: api.CKA_VALUE }]))).toBe('CKR_ATTRIBUTE_SENSITIVE');
        const [extractable, sensitive, neverExtractable, token, id] = library
          .C_GetAttributeValue(session, kek, [
            { type: api.CKA_EXTRACTABLE },
            { type: api.CKA_SENSITIVE },
            { type: api.CKA_NEVER_EXTRACTABLE },
            { type: api.CKA_TOKEN },
            { type: api.CKA_ID },
          ])
          .map((attribute) => attribute.value);
        expect(extractable?.[0]).toBe(0);
        expect(sensitive?.[0]).toBe(1);
        expect(neverExtractable?.[0]).toBe(1);
        expect(token?.[0]).toBe(1);
        expect(id?.toString('ascii')).toBe('1');

        const wrappingKey = library.C_GenerateKey(session, { mechanism: api.CKM_AES_KEY_GEN }, [
          { type: api.CKA_CLASS, value: api.CKO_SECRET_KEY },
          { type: api.CKA_KEY_TYPE, value: api.CKK_AES },
          { type: api.CKA_VALUE_LEN, value: 32 },
          { type: api.CKA_TOKEN, value: false },
          { type: api.CKA_WRAP, value: true },
        ]);
        expect(pkcs11Failure(() => library.C_WrapKey(session, { mechanism: api.CKM_AES_KEY_WRAP_PAD }, wrappingKey, kek, Buffer.alloc(128)))).toBe(
          'CKR_KEY_UNEXTRACTABLE',
        );
        expect(pkcs11Failure(() => library.C_SetAttributeValue(session, kek, [{ type: api.CKA_EXTRACTABLE, value: true }]))).toMatch(/^CKR_/);
        library.C_DestroyObject(session, wrappingKey);
      });
    });
  });

  describe('rotation and retirement', () => {
    it('makes a new version current, still unwraps the old one, and retires it on the token for good', async () => {
      const kms = await openWithKek();
      const old = await kms.wrapDataKey(randomBytes(32), CONTEXT);
      expect(await kms.generateNextKek()).toBe(2);
      expect(kms.currentVersion()).toBe(2);
      const fresh = await kms.wrapDataKey(randomBytes(32), 'patient:clinical:kek-2');
      expect(fresh.kekVersion).toBe(2);
      expect((await kms.unwrapDataKey(1, old.wrapped, CONTEXT)).length).toBe(32);
      // version 2's key is another key
      expect(await failure(kms.unwrapDataKey(2, old.wrapped, CONTEXT))).toBe('DECRYPTION_FAILED');

      expect(await message(kms.retireKek(2))).toMatch(/version 2 is the current version/);
      await kms.retireKek(1);
      expect(await failure(kms.unwrapDataKey(1, old.wrapped, CONTEXT))).toBe('KEY_RETIRED');
      expect(await failure(kms.unwrapDataKey(7, old.wrapped, CONTEXT))).toBe('KEY_UNKNOWN');
      expect(await failure(kms.retireKek(7))).toBe('KEY_UNKNOWN');
      expect(kms.versions()).toEqual([
        { version: 1, retired: true },
        { version: 2, retired: false },
      ]);
      withRawSession((api, library, session) => {
        expect(findByLabel(api, library, session, `${PREFIX}retired-1`)).toHaveLength(1);
        expect(findByLabel(api, library, session, `${PREFIX}1`)).toHaveLength(0);
      });

      // after a restart, the retirement is still there
      await kms.close();
      const restarted = await open();
      expect(restarted.currentVersion()).toBe(2);
      expect(await failure(restarted.unwrapDataKey(1, old.wrapped, CONTEXT))).toBe('KEY_RETIRED');
      expect((await restarted.unwrapDataKey(2, fresh.wrapped, 'patient:clinical:kek-2')).length).toBe(32);
      // a retired number is never given again
      expect(await restarted.generateNextKek()).toBe(3);
    });

    it('sees a version generated by another instance only after refresh()', async () => {
      const first = await openWithKek();
      const second = await open();
      expect(await second.generateNextKek()).toBe(2);

      expect(first.currentVersion()).toBe(1);
      expect((await first.wrapDataKey(randomBytes(32), CONTEXT)).kekVersion).toBe(1);
      expect(await first.refresh()).toBe(true);
      expect(first.currentVersion()).toBe(2);
      const dataKey = randomBytes(32);
      const wrapped = await first.wrapDataKey(dataKey, CONTEXT);
      expect(wrapped.kekVersion).toBe(2);
      expect((await second.unwrapDataKey(2, wrapped.wrapped, CONTEXT)).equals(dataKey)).toBe(true);
      expect(await first.refresh()).toBe(false);
    });

    it('sees a rotation and a retirement made by another process after refresh()', async () => {
      const kms = await openWithKek();
      const old = await kms.wrapDataKey(randomBytes(32), CONTEXT);
      const script = join(folder, 'rotate-and-retire.mts');
      await writeFile(
        script,
        [
          `import { Pkcs11KeyManagement } from ${JSON.stringify(pathToFileURL(join(ROOT, 'src/crypto/pkcs11-key-management.ts')).href)};`,
          `const kms = await Pkcs11KeyManagement.open({ modulePath: process.env.TEST_MODULE, tokenLabel: process.env.TEST_LABEL, pin: process.env.TEST_PIN });`,
          `const version = await kms.generateNextKek();`,
          `await kms.retireKek(1);`,
          `await kms.close();`,
          `console.log(version);`,
        ].join('\n'),
      );
      const child = spawnSync(process.execPath, ['--import', 'tsx', script], {
        cwd: ROOT,
        encoding: 'utf8',
        env: { ...process.env, SOFTHSM2_CONF: conf, TEST_MODULE: modulePath, TEST_LABEL: LABEL, TEST_PIN: PIN },
        timeout: 30_000,
      });
      expect(child.status, `the other process failed: ${child.stderr}`).toBe(0);
      expect(child.stdout.trim()).toBe('2');

      // not seen until refresh
      expect(kms.currentVersion()).toBe(1);
      expect((await kms.unwrapDataKey(1, old.wrapped, CONTEXT)).length).toBe(32);
      expect(await kms.refresh()).toBe(true);
      expect(kms.currentVersion()).toBe(2);
      expect(await failure(kms.unwrapDataKey(1, old.wrapped, CONTEXT))).toBe('KEY_RETIRED');
    });
  });

  describe('opening', () => {
    it('refuses a wrong PIN with a clear message that does not carry it', async () => {
      await openWithKek();
      await Promise.all(opened.splice(0).map((kms) => kms.close())); // a login of this process would let any PIN through
      const wrongPin = '99999-not-the-pin';
      const text = await message(open({ pin: wrongPin }));
      expect(text).toMatch(/PIN is incorrect \(CKR_PIN_INCORRECT\)/);
      expect(text).toMatch(/PKCS11_PIN_FILE/);
      expect(text).not.toContain(wrongPin);
      expect(text).not.toContain(PIN);
      // the failed open released the module: the right PIN works next
      expect((await open()).currentVersion()).toBe(1);
    });

    it('names a token label it cannot find', async () => {
      const text = await message(open({ tokenLabel: 'no-such-token' }));
      expect(text).toMatch(/no PKCS#11 token labelled "no-such-token"/);
      expect(text).toMatch(/PKCS11_TOKEN_LABEL/);
      expect(text).not.toContain(PIN);
    });

    it('names a module it cannot load', async () => {
      expect(await message(open({ modulePath: join(folder, 'missing.so') }))).toMatch(/PKCS#11 module .*missing\.so not found: check PKCS11_MODULE/);
      expect(await message(open({ modulePath: conf }))).toMatch(/could not be loaded .*check PKCS11_MODULE/);
    });

    it('refuses a token without a key-encryption key, and says how to make the first', async () => {
      const text = await message(open());
      expect(text).toMatch(/holds no usable key-encryption key/);
      expect(text).toMatch(/PHI_KMS=pkcs11 npm run keys:rotate/);
      const empty = await open({ allowEmpty: true });
      expect(() => empty.currentVersion()).toThrow(/npm run keys:rotate/);
      expect(await message(empty.wrapDataKey(randomBytes(32), CONTEXT))).toMatch(/npm run keys:rotate/);
    });

    it('finds the token by slot index too', async () => {
      await openWithKek();
      const bySlot = await open({ tokenLabel: undefined, slot: 0 });
      expect(bySlot.description).toBe(`PKCS#11 token "${LABEL}"`);
      expect(bySlot.currentVersion()).toBe(1);
    });
  });

  describe('cost accounting', () => {
    it('counts wraps, unwraps and refreshes, and logs each call without key bytes or the PIN', async () => {
      const lines: string[] = [];
      const logger = createLogger('debug', { write: (line: string) => lines.push(line) });
      const kms = await openWithKek({ logger });
      const dataKey = randomBytes(32);
      const wrappedKeys = [];
      for (let index = 0; index < 3; index += 1) wrappedKeys.push(await kms.wrapDataKey(dataKey, CONTEXT));
      for (const { wrapped } of wrappedKeys.slice(0, 2)) await kms.unwrapDataKey(1, wrapped, CONTEXT);
      expect(await failure(kms.unwrapDataKey(1, wrappedKeys[2]?.wrapped ?? Buffer.alloc(0), 'another context'))).toBe('DECRYPTION_FAILED');
      // refused before any token call: not counted
      expect(await failure(kms.unwrapDataKey(9, wrappedKeys[2]?.wrapped ?? Buffer.alloc(0), CONTEXT))).toBe('KEY_UNKNOWN');
      await kms.refresh();
      expect(kms.calls).toEqual({ wrap: 3, unwrap: 3, refresh: 1 });

      const calls = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((entry) => entry.event === 'kms-call');
      expect(calls.map((entry) => entry.operation)).toEqual(['generate', 'wrap', 'wrap', 'wrap', 'unwrap', 'unwrap', 'unwrap', 'refresh']);
      expect(calls[1]).toMatchObject({ kms: 'pkcs11', operation: 'wrap', kekVersion: 1, calls: { wrap: 1, unwrap: 0, refresh: 0 } });
      expect(typeof calls[1]?.durationMs).toBe('number');
      expect(calls[6]).toMatchObject({ operation: 'unwrap', failure: expect.stringMatching(/^CKR_/) as unknown });
      const text = lines.join('\n');
      expect(text).not.toContain(PIN);
      for (const encoding of ['hex', 'base64'] as const) expect(text).not.toContain(dataKey.toString(encoding));
    });
  });
});
