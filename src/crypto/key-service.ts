import type { NativeCryptoSetting } from './aes-gcm.js';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from '../logger.js';
import { LocalKeyManagement, type KeyManagementService } from './key-management.js';
import { DEVELOPMENT_KEY_RING_FILE, KeyRing, keyRingSchema, loadOrCreateDevelopmentKeyRing } from './key-ring.js';

/**
 * Where the key-encryption keys come from, as configured (config.ts):
 * - `ring`: a key ring in this process's memory, from PHI_KEY_RING (JSON,
 *   fixed until restart), PHI_KEY_RING_FILE (a mounted secret, read again
 *   on refresh) or, outside production only, the development ring in the
 *   data folder;
 * - `pkcs11`: KEKs generated in an HSM, which never leave it.
 */
export interface KeySettings {
  service: 'ring' | 'pkcs11';
  ringJson?: string | undefined;
  ringFile?: string | undefined;
  dataDir: string;
  /** Outside production: the generated development ring may be used (and is created when missing). */
  allowDevelopmentRing: boolean;
  pkcs11?: Pkcs11Settings | undefined;
  /** PHI_NATIVE_CRYPTO: who decrypts stored values (aes-gcm.ts). */
  nativeCrypto?: NativeCryptoSetting;
}

export interface Pkcs11Settings {
  modulePath: string;
  tokenLabel?: string | undefined;
  slot?: number | undefined;
  pin: string;
  keyLabelPrefix?: string | undefined;
}

export interface OpenedKeyService {
  kms: KeyManagementService;
  /** The ring when the KEKs are in one (its blind-index key serves the indexes); absent with an HSM. */
  ring?: KeyRing;
}

export async function openKeyService(settings: KeySettings, logger?: Logger): Promise<OpenedKeyService> {
  if (settings.service === 'pkcs11') {
    if (!settings.pkcs11) throw new Error('PHI_KMS=pkcs11 needs PKCS11_MODULE, PKCS11_TOKEN_LABEL (or PKCS11_SLOT) and PKCS11_PIN_FILE');
    const { Pkcs11KeyManagement } = await import('./pkcs11-key-management.js');
    const kms = await Pkcs11KeyManagement.open({ ...settings.pkcs11, ...(logger && { logger }) });
    return { kms };
  }
  const load = ringLoader(settings);
  const ring = await load();
  return { kms: new LocalKeyManagement(ring, settings.ringJson ? undefined : load, settings.ringFile ? `key ring file ${basename(settings.ringFile)}` : 'key ring'), ring };
}

/** Reads the ring from its source, each time it is called; production refuses a development ring however it is marked. */
function ringLoader(settings: KeySettings): () => Promise<KeyRing> {
  return async () => {
    let document: unknown;
    if (settings.ringJson) {
      document = parseJson(settings.ringJson, 'PHI_KEY_RING');
    } else if (settings.ringFile) {
      document = parseJson(await readFile(settings.ringFile, 'utf8'), 'PHI_KEY_RING_FILE');
    } else if (settings.allowDevelopmentRing) {
      document = await loadOrCreateDevelopmentKeyRing(settings.dataDir);
    } else {
      throw new Error('No key ring: set PHI_KEY_RING or PHI_KEY_RING_FILE, or PHI_KMS=pkcs11');
    }
    const ring = KeyRing.fromDocument(document);
    if (!settings.allowDevelopmentRing) await refuseDevelopmentRing(ring, settings);
    return ring;
  };
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${source} is not valid JSON`);
  }
}

/**
 * Production refuses the development ring without trusting what the ring
 * says of itself: its marker, a file of the development ring's name, and
 * any key it shares with the development ring of the data folder (copied
 * into PHI_KEY_RING with the marker removed).
 */
async function refuseDevelopmentRing(ring: KeyRing, settings: KeySettings): Promise<void> {
  if (ring.isDevelopment) throw new Error('The development key ring is refused in production');
  if (settings.ringFile && basename(settings.ringFile) === DEVELOPMENT_KEY_RING_FILE) throw new Error('PHI_KEY_RING_FILE names the development key ring; production refuses it');
  let development: KeyRing;
  try {
    development = KeyRing.fromDocument(keyRingSchema.parse(JSON.parse(await readFile(join(settings.dataDir, DEVELOPMENT_KEY_RING_FILE), 'utf8'))));
  } catch {
    return; // no development ring in the data folder (or not a ring at all): nothing to compare with
  }
  if (ring.sharesKeyWith(development)) throw new Error('The key ring holds a key of the development key ring in the data folder; production refuses it');
}
