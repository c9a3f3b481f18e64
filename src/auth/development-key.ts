import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, calculateJwkThumbprint, type JWK, type CryptoKey } from 'jose';

/**
 * The development signing key: generated on first use into the data folder,
 * loudly named, and refused in production (see config.ts and verifier.ts).
 */
export const DEVELOPMENT_KEY_FILE = 'DEVELOPMENT-ONLY-signing-key.json';
export const DEVELOPMENT_ALGORITHM = 'ES256';
const DEVELOPMENT_KID_PREFIX = 'development-only-';

export interface DevelopmentKey {
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

interface StoredKey {
  warning: string;
  kid: string;
  privateJwk: JWK;
  publicJwk: JWK;
}

export async function loadOrCreateDevelopmentKey(dataDir: string): Promise<DevelopmentKey> {
  const path = join(dataDir, DEVELOPMENT_KEY_FILE);
  let stored: StoredKey;
  try {
    stored = JSON.parse(await readFile(path, 'utf8')) as StoredKey;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    stored = await generateStoredKey();
    await mkdir(dataDir, { recursive: true });
    await writeFile(path, `${JSON.stringify(stored, null, 2)}\n`, { mode: 0o600, flag: 'wx' }).catch(async (writeError: NodeJS.ErrnoException) => {
      // Another process created it first: use theirs.
      if (writeError.code !== 'EEXIST') throw writeError;
      stored = JSON.parse(await readFile(path, 'utf8')) as StoredKey;
    });
  }
  return {
    kid: stored.kid,
    privateKey: (await importJWK(stored.privateJwk, DEVELOPMENT_ALGORITHM)) as CryptoKey,
    publicKey: (await importJWK(stored.publicJwk, DEVELOPMENT_ALGORITHM)) as CryptoKey,
    publicJwk: stored.publicJwk,
  };
}

async function generateStoredKey(): Promise<StoredKey> {
  const { privateKey, publicKey } = await generateKeyPair(DEVELOPMENT_ALGORITHM, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = `${DEVELOPMENT_KID_PREFIX}${await calculateJwkThumbprint(publicJwk)}`;
  return {
    warning: 'DEVELOPMENT ONLY. Tokens signed with this key are refused when NODE_ENV=production.',
    kid,
    privateJwk: { ...(await exportJWK(privateKey)), kid, alg: DEVELOPMENT_ALGORITHM },
    publicJwk: { ...publicJwk, kid, alg: DEVELOPMENT_ALGORITHM },
  };
}

export function isDevelopmentKid(kid: string | undefined): boolean {
  return typeof kid === 'string' && kid.startsWith(DEVELOPMENT_KID_PREFIX);
}
