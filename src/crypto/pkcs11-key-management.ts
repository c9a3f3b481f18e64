import { randomBytes } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { endianness } from 'node:os';
import { performance } from 'node:perf_hooks';
import type * as Pkcs11 from 'pkcs11js';
import type { Logger } from '../logger.js';
import { CryptoError } from './errors.js';
import { WRAP_FORMAT, WRAP_NONCE_BYTES, WRAP_TAG_BYTES, WRAPPED_BYTES, type KeyManagementService, type KeyServiceCalls } from './key-management.js';

/**
 * Key-encryption keys (KEKs) in an HSM, spoken to over PKCS#11 (pkcs11js,
 * an optional dependency loaded on open). The KEKs are generated on the
 * token, sensitive and non-extractable: their bytes never reach this
 * process. Wrapping and unwrapping a data key are one AES-256-GCM
 * C_Encrypt or C_Decrypt on the token, with the data key's context as the
 * associated data, in the same layout as LocalKeyManagement writes
 * (key-management.ts: WRAP_FORMAT | nonce | ciphertext | tag).
 *
 * On the token, KEK version N is an AES-256 secret key object labelled
 * `<prefix>N` (CKA_ID: N in ASCII digits). Retiring it renames it
 * `<prefix>retired-N`, on the token: the retirement survives restarts and
 * every process sees it on its next refresh(). The current version is the
 * highest version not retired.
 *
 * One session per instance; pkcs11js calls are synchronous or single
 * operations, and an encrypt or decrypt is two calls (Init, then the
 * operation) that must not interleave on a session, so every token call
 * of an instance runs through one promise chain.
 *
 * PKCS#11 allows one C_Initialize per module and process: instances in one
 * process share the loaded module (and the token login, which PKCS#11
 * keeps per application and token); the last to close logs out and
 * finalizes. An instance opened while another is logged in to the same
 * token is not asked for its PIN again by the token.
 */
export interface Pkcs11Options {
  /** Path of the HSM's PKCS#11 library (PKCS11_MODULE). */
  modulePath: string;
  /** The token to use, by label (PKCS11_TOKEN_LABEL); wins over `slot`. */
  tokenLabel?: string | undefined;
  /** The token to use, by index in the module's list of slots holding a token, from 0 (PKCS11_SLOT). */
  slot?: number | undefined;
  /** The token user's PIN; never logged, never in an error message. */
  pin: string;
  /** KEK labels are `<prefix>N` (PKCS11_KEY_LABEL_PREFIX). */
  keyLabelPrefix?: string | undefined;
  logger?: Logger | undefined;
  /** Opens a token with no KEK yet (keys:rotate, to generate the first); wrapping refuses until one exists. */
  allowEmpty?: boolean | undefined;
}

export interface KekVersion {
  version: number;
  retired: boolean;
}

export const DEFAULT_KEY_LABEL_PREFIX = 'phi-kek-';
const RETIRED_MARK = 'retired-';
const KEK_BYTES = 32;
const DATA_KEY_BYTES = WRAPPED_BYTES - 1 - WRAP_NONCE_BYTES - WRAP_TAG_BYTES;
const BITS_PER_BYTE = 8;
const FIND_BATCH = 256;
/** Versions are small positive integers; more digits than this is not a label of ours. */
const VERSION_PATTERN = /^[1-9]\d{0,8}$/;

/** Failures of the session or the device, never of the data: reported as errors of the HSM, not as tampering. */
const INFRASTRUCTURE_FAILURES = new Set([
  'CKR_CRYPTOKI_NOT_INITIALIZED',
  'CKR_DEVICE_ERROR',
  'CKR_DEVICE_MEMORY',
  'CKR_DEVICE_REMOVED',
  'CKR_FUNCTION_CANCELED',
  'CKR_HOST_MEMORY',
  'CKR_OPERATION_ACTIVE',
  'CKR_OPERATION_NOT_INITIALIZED',
  'CKR_SESSION_CLOSED',
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_USER_NOT_LOGGED_IN',
]);
const HANDLE_GONE = new Set(['CKR_KEY_HANDLE_INVALID', 'CKR_OBJECT_HANDLE_INVALID']);

type Pkcs11Api = typeof Pkcs11;
type Operation = 'wrap' | 'unwrap' | 'refresh' | 'generate' | 'retire';

interface KekObject {
  version: number;
  retired: boolean;
  /** Normally one; two objects of one version (two rotations at the same moment) are both tried on unwrap. */
  handles: Pkcs11.Handle[];
}

/** A PKCS#11 library loaded in this process: loaded once, initialized while any instance uses it. */
interface LoadedModule {
  readonly api: Pkcs11Api;
  readonly library: Pkcs11.PKCS11;
  instances: number;
  initialized: boolean;
  /** False when something else in this process had initialized the module: then it is not ours to finalize. */
  ownsInitialization: boolean;
  /** Open sessions logged in, per slot: PKCS#11 logs in and out per application and token, not per session. */
  readonly loggedIn: Map<string, number>;
}

const loadedModules = new Map<string, LoadedModule>();

export class Pkcs11KeyManagement implements KeyManagementService {
  readonly calls: KeyServiceCalls = { wrap: 0, unwrap: 0, refresh: 0 };
  readonly description: string;
  readonly #module: LoadedModule;
  readonly #session: Pkcs11.Handle;
  readonly #slotKey: string;
  readonly #prefix: string;
  readonly #logger: Logger | undefined;
  #keks = new Map<number, KekObject>();
  #current: KekObject | undefined;
  /** Highest version seen on the token, usable or not: a new version never reuses a number. */
  #highestVersion = 0;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(module: LoadedModule, session: Pkcs11.Handle, slotKey: string, tokenLabel: string, prefix: string, logger: Logger | undefined) {
    this.#module = module;
    this.#session = session;
    this.#slotKey = slotKey;
    this.#prefix = prefix;
    this.#logger = logger;
    this.description = `PKCS#11 token "${tokenLabel}"`;
  }

  /**
   * Loads the module, finds the token, opens a read/write session, logs in
   * as the token's user and lists the KEKs. Refuses a token without a
   * usable KEK unless `allowEmpty`.
   */
  static async open(options: Pkcs11Options): Promise<Pkcs11KeyManagement> {
    const prefix = options.keyLabelPrefix ?? DEFAULT_KEY_LABEL_PREFIX;
    if (prefix === '') throw new Error('PKCS11_KEY_LABEL_PREFIX must not be empty');
    if (options.tokenLabel === undefined && options.slot === undefined) throw new Error('PHI_KMS=pkcs11 needs PKCS11_TOKEN_LABEL (or PKCS11_SLOT) to choose the token');
    const api = await loadPkcs11js();
    const module = acquireModule(api, options.modulePath);
    const { library } = module;
    let session: Pkcs11.Handle | undefined;
    let slotKey: string | undefined;
    try {
      const { slot, label } = findToken(module, options);
      try {
        session = library.C_OpenSession(slot, api.CKF_RW_SESSION | api.CKF_SERIAL_SESSION);
      } catch (error) {
        throw new Error(`PKCS#11 token "${label}": could not open a read/write session (${failureName(error)})`);
      }
      logIn(module, session, label, options.pin);
      slotKey = slot.toString('hex');
      module.loggedIn.set(slotKey, (module.loggedIn.get(slotKey) ?? 0) + 1);
      const kms = new Pkcs11KeyManagement(module, session, slotKey, label, prefix, options.logger);
      try {
        kms.#listKeks();
      } catch (error) {
        throw new Error(`${kms.description}: could not list the key-encryption keys (${failureName(error)})`);
      }
      if (!kms.#current && !options.allowEmpty) throw new Error(kms.#noKekMessage());
      options.logger?.info({ event: 'kms-open', kms: 'pkcs11', tokenLabel: label, currentVersion: kms.#current?.version ?? null, versions: kms.#keks.size }, 'key-encryption keys on a PKCS#11 token');
      return kms;
    } catch (error) {
      if (session) closeSession(module, session, slotKey);
      releaseModule(module);
      throw error;
    }
  }

  currentVersion(): number {
    if (!this.#current) throw new Error(this.#noKekMessage());
    return this.#current.version;
  }

  /** The KEK versions on the token, oldest first (for reports; no key material). */
  versions(): KekVersion[] {
    return [...this.#keks.values()].sort((a, b) => a.version - b.version).map(({ version, retired }) => ({ version, retired }));
  }

  wrapDataKey(dataKey: Buffer, context: string): Promise<{ kekVersion: number; wrapped: Buffer }> {
    if (dataKey.length !== DATA_KEY_BYTES) return Promise.reject(new Error(`a data key is ${DATA_KEY_BYTES} bytes, not ${dataKey.length}`));
    return this.#serialize(async () => {
      const kek = this.#current;
      if (!kek) throw new Error(this.#noKekMessage());
      const [handle] = kek.handles;
      if (!handle) throw new Error(this.#noKekMessage());
      const { api, library } = this.#module;
      const nonce = randomBytes(WRAP_NONCE_BYTES);
      this.calls.wrap += 1;
      const started = performance.now();
      let body: Buffer;
      try {
        library.C_EncryptInit(this.#session, gcmMechanism(api, nonce, context), handle);
        body = await library.C_EncryptAsync(this.#session, dataKey, Buffer.alloc(DATA_KEY_BYTES + WRAP_TAG_BYTES));
      } catch (error) {
        const failure = failureName(error);
        this.#logCall('wrap', kek.version, started, failure);
        throw new Error(`${this.description} did not wrap a data key under key-encryption key version ${kek.version} (${failure})`);
      }
      this.#logCall('wrap', kek.version, started);
      if (body.length !== DATA_KEY_BYTES + WRAP_TAG_BYTES) throw new Error(`${this.description} returned ${body.length} bytes for an AES-GCM wrap, not ${DATA_KEY_BYTES + WRAP_TAG_BYTES}`);
      return { kekVersion: kek.version, wrapped: Buffer.concat([Buffer.of(WRAP_FORMAT), nonce, body]) };
    });
  }

  unwrapDataKey(kekVersion: number, wrapped: Buffer, context: string): Promise<Buffer> {
    return this.#serialize(async () => {
      const kek = this.#keks.get(kekVersion);
      if (!kek) throw new CryptoError('KEY_UNKNOWN', `no key-encryption key version ${kekVersion} on ${this.description}`);
      if (kek.retired) throw new CryptoError('KEY_RETIRED', `key-encryption key version ${kekVersion} is retired`);
      if (wrapped.length !== WRAPPED_BYTES || wrapped[0] !== WRAP_FORMAT) {
        throw new CryptoError('DECRYPTION_FAILED', `a data key wrapped by an HSM is ${WRAPPED_BYTES} bytes of format ${WRAP_FORMAT}; this one is ${wrapped.length} bytes`);
      }
      const nonce = wrapped.subarray(1, 1 + WRAP_NONCE_BYTES);
      const body = wrapped.subarray(1 + WRAP_NONCE_BYTES);
      const { api, library } = this.#module;
      for (const handle of kek.handles) {
        this.calls.unwrap += 1;
        const started = performance.now();
        try {
          library.C_DecryptInit(this.#session, gcmMechanism(api, nonce, context), handle);
        } catch (error) {
          const failure = failureName(error);
          this.#logCall('unwrap', kekVersion, started, failure);
          if (HANDLE_GONE.has(failure)) throw new CryptoError('KEY_UNKNOWN', `key-encryption key version ${kekVersion} is no longer on ${this.description}`);
          throw new Error(`${this.description} did not start an unwrap under key-encryption key version ${kekVersion} (${failure})`);
        }
        try {
          const dataKey = await library.C_DecryptAsync(this.#session, body, Buffer.alloc(body.length));
          this.#logCall('unwrap', kekVersion, started);
          if (dataKey.length === DATA_KEY_BYTES) return dataKey;
        } catch (error) {
          const failure = failureName(error);
          this.#logCall('unwrap', kekVersion, started, failure);
          if (INFRASTRUCTURE_FAILURES.has(failure)) throw new Error(`${this.description} failed during an unwrap under key-encryption key version ${kekVersion} (${failure})`);
        }
      }
      throw new CryptoError('DECRYPTION_FAILED', `data key does not unwrap under version ${kekVersion} for its context`);
    });
  }

  refresh(): Promise<boolean> {
    return this.#serialize(() => {
      this.calls.refresh += 1;
      const started = performance.now();
      const before = this.#fingerprint();
      try {
        this.#listKeks();
      } catch (error) {
        const failure = failureName(error);
        this.#logCall('refresh', this.#current?.version ?? null, started, failure);
        throw new Error(`${this.description}: could not list the key-encryption keys (${failure})`);
      }
      this.#logCall('refresh', this.#current?.version ?? null, started);
      return before !== this.#fingerprint();
    });
  }

  /**
   * Generates the next KEK version on the token (AES-256, sensitive, never
   * extractable) and makes it current. Returns its version.
   */
  generateNextKek(): Promise<number> {
    return this.#serialize(() => {
      const { api, library } = this.#module;
      const started = performance.now();
      this.#listKeks(); // another process may have made a version since our last look
      const version = this.#highestVersion + 1;
      try {
        library.C_GenerateKey(this.#session, { mechanism: api.CKM_AES_KEY_GEN }, [
          { type: api.CKA_CLASS, value: api.CKO_SECRET_KEY },
          { type: api.CKA_KEY_TYPE, value: api.CKK_AES },
          { type: api.CKA_VALUE_LEN, value: KEK_BYTES },
          { type: api.CKA_LABEL, value: this.#label(version) },
          { type: api.CKA_ID, value: Buffer.from(String(version), 'ascii') },
          { type: api.CKA_TOKEN, value: true },
          { type: api.CKA_PRIVATE, value: true },
          { type: api.CKA_SENSITIVE, value: true },
          { type: api.CKA_EXTRACTABLE, value: false },
          // Retirement renames the key; CKA_SENSITIVE and CKA_EXTRACTABLE cannot be turned back whatever this says.
          { type: api.CKA_MODIFIABLE, value: true },
          { type: api.CKA_ENCRYPT, value: true },
          { type: api.CKA_DECRYPT, value: true },
          { type: api.CKA_WRAP, value: false },
          { type: api.CKA_UNWRAP, value: false },
          { type: api.CKA_SIGN, value: false },
          { type: api.CKA_VERIFY, value: false },
          { type: api.CKA_DERIVE, value: false },
        ]);
      } catch (error) {
        const failure = failureName(error);
        this.#logCall('generate', version, started, failure);
        throw new Error(`${this.description} did not generate key-encryption key version ${version} (${failure})`);
      }
      this.#listKeks();
      this.#logCall('generate', version, started);
      if (this.#current?.version !== version) throw new Error(`${this.description}: key-encryption key version ${version} was generated but is not listed as current; check the token's objects labelled ${this.#prefix}*`);
      this.#logger?.info({ event: 'kek-generated', kms: 'pkcs11', kekVersion: version }, 'key-encryption key generated on the token');
      return version;
    });
  }

  /**
   * Retires a KEK version: relabels it `<prefix>retired-N` on the token, so
   * that no process unwraps under it any more (after their refresh). Refuses
   * the current version: generate the next one first. Run keys:reencrypt
   * before, so that no data key is still wrapped under it.
   */
  retireKek(version: number): Promise<void> {
    return this.#serialize(() => {
      const { api, library } = this.#module;
      const started = performance.now();
      this.#listKeks();
      const kek = this.#keks.get(version);
      if (!kek) throw new CryptoError('KEY_UNKNOWN', `no key-encryption key version ${version} on ${this.description}`);
      if (kek.retired) return;
      if (kek === this.#current) throw new Error(`key-encryption key version ${version} is the current version; generate the next one first (PHI_KMS=pkcs11 npm run keys:rotate)`);
      try {
        for (const handle of kek.handles) library.C_SetAttributeValue(this.#session, handle, [{ type: api.CKA_LABEL, value: this.#label(version, true) }]);
      } catch (error) {
        const failure = failureName(error);
        this.#logCall('retire', version, started, failure);
        throw new Error(`${this.description} did not relabel key-encryption key version ${version} as retired (${failure})`);
      }
      this.#listKeks();
      this.#logCall('retire', version, started);
      this.#logger?.info({ event: 'kek-retired', kms: 'pkcs11', kekVersion: version }, 'key-encryption key retired on the token');
    });
  }

  /** Logs out (when no other instance of this process uses the token), closes the session, finalizes the module when unused. */
  close(): Promise<void> {
    this.#closing ??= this.#serialize(() => {
      this.#closed = true;
      closeSession(this.#module, this.#session, this.#slotKey);
      releaseModule(this.#module);
    });
    return this.#closing;
  }

  /** Runs token calls one after another: an Init and its operation never interleave with another caller's. */
  #serialize<T>(work: () => T | Promise<T>): Promise<T> {
    const run = this.#queue.then(() => {
      if (this.#closed) throw new Error(`${this.description}: the PKCS#11 session is closed`);
      return work();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #label(version: number, retired = false): string {
    return `${this.#prefix}${retired ? RETIRED_MARK : ''}${version}`;
  }

  /** Reads the KEK objects from the token: secret AES keys labelled `<prefix>N` or `<prefix>retired-N`. */
  #listKeks(): void {
    const { api, library } = this.#module;
    const keks = new Map<number, KekObject>();
    let highest = 0;
    for (const handle of findObjects(library, this.#session, [
      { type: api.CKA_CLASS, value: api.CKO_SECRET_KEY },
      { type: api.CKA_KEY_TYPE, value: api.CKK_AES },
    ])) {
      const [labelAttribute] = library.C_GetAttributeValue(this.#session, handle, [{ type: api.CKA_LABEL }]);
      const parsed = this.#parseLabel(labelAttribute?.value.toString('utf8') ?? '');
      if (!parsed) continue;
      highest = Math.max(highest, parsed.version);
      let problem: string | undefined;
      try {
        problem = this.#kekProblem(handle);
      } catch (error) {
        problem = `attributes unreadable (${failureName(error)})`;
      }
      if (problem) {
        this.#logger?.warn({ event: 'kek-refused', kms: 'pkcs11', kekVersion: parsed.version, problem }, 'a key labelled as a key-encryption key is not used');
        continue;
      }
      const known = keks.get(parsed.version);
      if (!known) {
        keks.set(parsed.version, { version: parsed.version, retired: parsed.retired, handles: [handle] });
        continue;
      }
      known.handles.push(handle);
      known.retired ||= parsed.retired; // one copy retired retires the version
      this.#logger?.warn({ event: 'kek-duplicate', kms: 'pkcs11', kekVersion: parsed.version }, 'two key objects carry one key-encryption key version; both are tried on unwrap');
    }
    this.#keks = keks;
    this.#highestVersion = highest;
    this.#current = [...keks.values()].filter((kek) => !kek.retired).sort((a, b) => b.version - a.version)[0];
  }

  #parseLabel(label: string): { version: number; retired: boolean } | undefined {
    if (!label.startsWith(this.#prefix)) return undefined;
    let rest = label.slice(this.#prefix.length);
    const retired = rest.startsWith(RETIRED_MARK);
    if (retired) rest = rest.slice(RETIRED_MARK.length);
    return VERSION_PATTERN.test(rest) ? { version: Number(rest), retired } : undefined;
  }

  /** Why a key with a KEK's label is not fit to be one (made outside generateNextKek), or undefined. */
  #kekProblem(handle: Pkcs11.Handle): string | undefined {
    const { api, library } = this.#module;
    const attributes = library.C_GetAttributeValue(this.#session, handle, [
      { type: api.CKA_VALUE_LEN },
      { type: api.CKA_SENSITIVE },
      { type: api.CKA_EXTRACTABLE },
    ]);
    const [length, sensitive, extractable] = attributes.map((attribute) => attribute.value);
    if (!length || readUlong(length) !== KEK_BYTES) return `not an AES-256 key`;
    if (!sensitive || sensitive[0] !== 1) return 'not sensitive (CKA_SENSITIVE false)';
    if (!extractable || extractable[0] !== 0) return 'extractable (CKA_EXTRACTABLE true)';
    return undefined;
  }

  #fingerprint(): string {
    return this.versions()
      .map(({ version, retired }) => `${version}${retired ? 'r' : ''}`)
      .join(',');
  }

  #noKekMessage(): string {
    const retired = this.#keks.size > 0 ? ` (all ${this.#keks.size} versions there are retired)` : '';
    return `${this.description} holds no usable key-encryption key labelled ${this.#prefix}N${retired}: generate one with PHI_KMS=pkcs11 npm run keys:rotate`;
  }

  #logCall(operation: Operation, kekVersion: number | null, started: number, failure?: string): void {
    if (!this.#logger) return;
    const durationMs = Math.round((performance.now() - started) * 100) / 100;
    this.#logger.debug(
      { event: 'kms-call', kms: 'pkcs11', operation, kekVersion, durationMs, calls: { ...this.calls }, ...(failure && { failure }) },
      'key service call',
    );
  }
}

async function loadPkcs11js(): Promise<Pkcs11Api> {
  try {
    const imported = await import('pkcs11js');
    return imported.default;
  } catch (error) {
    throw new Error(`PHI_KMS=pkcs11 needs the optional package pkcs11js, which did not install: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** The module loaded once per file and process; C_Initialize when no instance has it initialized. */
function acquireModule(api: Pkcs11Api, modulePath: string): LoadedModule {
  let path: string;
  try {
    path = realpathSync(modulePath);
  } catch {
    throw new Error(`PKCS#11 module ${modulePath} not found: check PKCS11_MODULE (the HSM vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so)`);
  }
  let module = loadedModules.get(path);
  if (!module) {
    const library = new api.PKCS11();
    try {
      library.load(path);
    } catch (error) {
      throw new Error(`PKCS#11 module ${modulePath} could not be loaded (${error instanceof Error ? error.message : String(error)}): check PKCS11_MODULE`);
    }
    module = { api, library, instances: 0, initialized: false, ownsInitialization: false, loggedIn: new Map() };
    loadedModules.set(path, module);
  }
  if (!module.initialized) {
    try {
      module.library.C_Initialize({ flags: api.CKF_OS_LOCKING_OK });
      module.ownsInitialization = true;
    } catch (error) {
      if (failureName(error) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
        throw new Error(`PKCS#11 module ${modulePath} did not initialize (${failureName(error)}); check its configuration (SoftHSM2: SOFTHSM2_CONF)`);
      }
      module.ownsInitialization = false;
    }
    module.initialized = true;
  }
  module.instances += 1;
  return module;
}

function releaseModule(module: LoadedModule): void {
  module.instances -= 1;
  if (module.instances > 0 || !module.initialized) return;
  module.initialized = false;
  if (!module.ownsInitialization) return;
  try {
    module.library.C_Finalize();
  } catch {
    // finalizing a module we are done with: nothing left to do on failure
  }
}

function findToken(module: LoadedModule, options: Pkcs11Options): { slot: Pkcs11.Handle; label: string } {
  const { api, library } = module;
  let tokens: { slot: Pkcs11.Handle; info: Pkcs11.TokenInfo }[];
  try {
    tokens = library.C_GetSlotList(true).map((slot) => ({ slot, info: library.C_GetTokenInfo(slot) }));
  } catch (error) {
    throw new Error(`PKCS#11 module ${options.modulePath} did not list its tokens (${failureName(error)})`);
  }
  if (options.tokenLabel !== undefined) {
    const wanted = options.tokenLabel;
    const initialized = tokens.filter(({ info }) => (info.flags & api.CKF_TOKEN_INITIALIZED) !== 0);
    const found = initialized.find(({ info }) => info.label.trimEnd() === wanted);
    if (!found) {
      const labels = initialized.map(({ info }) => `"${info.label.trimEnd()}"`).join(', ') || 'none';
      throw new Error(`no PKCS#11 token labelled "${wanted}" in ${options.modulePath} (tokens there: ${labels}): check PKCS11_TOKEN_LABEL, or create the token (SoftHSM2: scripts/softhsm-token.sh)`);
    }
    return { slot: found.slot, label: wanted };
  }
  const index = options.slot ?? 0;
  const chosen = tokens[index];
  if (!Number.isInteger(index) || !chosen) throw new Error(`PKCS11_SLOT ${index} is out of range: ${options.modulePath} has ${tokens.length} slots holding a token (indexes from 0)`);
  return { slot: chosen.slot, label: chosen.info.label.trimEnd() };
}

function logIn(module: LoadedModule, session: Pkcs11.Handle, label: string, pin: string): void {
  try {
    module.library.C_Login(session, module.api.CKU_USER, pin);
  } catch (error) {
    const failure = failureName(error);
    if (failure === 'CKR_USER_ALREADY_LOGGED_IN') return; // another instance of this process is logged in to this token
    if (failure === 'CKR_PIN_INCORRECT') throw new Error(`login to PKCS#11 token "${label}" refused: the PIN is incorrect (CKR_PIN_INCORRECT); check PKCS11_PIN_FILE`);
    if (failure === 'CKR_PIN_LOCKED') throw new Error(`login to PKCS#11 token "${label}" refused: the user PIN is locked (CKR_PIN_LOCKED); the token's security officer must unlock it`);
    throw new Error(`login to PKCS#11 token "${label}" failed (${failure}); check PKCS11_PIN_FILE and the token`);
  }
}

function closeSession(module: LoadedModule, session: Pkcs11.Handle, slotKey: string | undefined): void {
  const { library } = module;
  if (slotKey !== undefined) {
    const remaining = (module.loggedIn.get(slotKey) ?? 1) - 1;
    if (remaining > 0) {
      module.loggedIn.set(slotKey, remaining);
    } else {
      module.loggedIn.delete(slotKey);
      try {
        library.C_Logout(session);
      } catch {
        // not logged in any more (the token was reset): closing the session is what matters
      }
    }
  }
  try {
    library.C_CloseSession(session);
  } catch {
    // the session is gone already
  }
}

function findObjects(library: Pkcs11.PKCS11, session: Pkcs11.Handle, template: Pkcs11.Template): Pkcs11.Handle[] {
  const handles: Pkcs11.Handle[] = [];
  library.C_FindObjectsInit(session, template);
  try {
    for (;;) {
      const batch = library.C_FindObjects(session, FIND_BATCH);
      handles.push(...batch);
      if (batch.length < FIND_BATCH) return handles;
    }
  } finally {
    library.C_FindObjectsFinal(session);
  }
}

function gcmMechanism(api: Pkcs11Api, nonce: Buffer, context: string): Pkcs11.Mechanism {
  const parameter: Pkcs11.AesGCM = {
    type: api.CK_PARAMS_GCM,
    iv: nonce,
    ivBits: nonce.length * BITS_PER_BYTE,
    aad: Buffer.from(context, 'utf8'),
    tagBits: WRAP_TAG_BYTES * BITS_PER_BYTE,
  };
  return { mechanism: api.CKM_AES_GCM, parameter };
}

/** CK_ULONG as the module returns it: native byte order, 4 or 8 bytes. */
function readUlong(value: Buffer): number {
  const little = endianness() === 'LE';
  if (value.length === 8) return Number(little ? value.readBigUInt64LE() : value.readBigUInt64BE());
  if (value.length === 4) return little ? value.readUInt32LE() : value.readUInt32BE();
  return Number.NaN;
}

/** The CKR_ name of a PKCS#11 failure, or the error's class: never the rest of its text. */
function failureName(error: unknown): string {
  if (error instanceof Error) {
    const ckr = /CKR_[A-Z0-9_]+/.exec(error.message);
    if (ckr) return ckr[0];
    return error.name;
  }
  return 'unknown failure';
}
