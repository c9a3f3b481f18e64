import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

/**
 * Key-encryption keys (KEKs), versioned, plus the blind-index key. They come
 * from the environment (PHI_KEY_RING, JSON) or, outside production, from a
 * generated development key ring in the data folder, loudly named.
 */
export const KEY_BYTES = 32;
export const DEVELOPMENT_KEY_RING_FILE = 'DEVELOPMENT-ONLY-key-ring.json';

const base64Key = z
  .string()
  .refine((value) => Buffer.from(value, 'base64').length === KEY_BYTES, `each key must be ${KEY_BYTES} bytes, base64`);

export const keyRingSchema = z
  .object({
    development: z.boolean().optional(),
    current: z.number().int().positive(),
    keys: z.record(z.string().regex(/^\d+$/, 'key versions are positive integers'), base64Key),
    retired: z.array(z.number().int().positive()).default([]),
    blindIndexKey: base64Key,
  })
  .superRefine((ring, context) => {
    if (!ring.keys[String(ring.current)]) context.addIssue({ code: 'custom', message: `current version ${ring.current} has no key`, path: ['current'] });
    if (ring.retired.includes(ring.current)) context.addIssue({ code: 'custom', message: 'the current version cannot be retired', path: ['retired'] });
  });

export type KeyRingDocument = z.infer<typeof keyRingSchema>;

/** What the keys other than data encryption keys serve: blind indexes and the keys derived from their key. */
export interface IndexKeys {
  blindIndexKey(): Buffer;
  derivedKey(purpose: DerivedKeyPurpose): Buffer;
}

/** The blind-index key and its derived keys, from 32 bytes held elsewhere (with an HSM: a data key wrapped by it). */
export class SecretIndexKeys implements IndexKeys {
  readonly #key: Buffer;
  readonly #derived = new Map<DerivedKeyPurpose, Buffer>();

  constructor(key: Buffer) {
    if (key.length !== KEY_BYTES) throw new Error(`the blind-index key must be ${KEY_BYTES} bytes`);
    this.#key = key;
  }

  blindIndexKey(): Buffer {
    return this.#key;
  }

  /**
   * A key for one purpose other than data encryption (cursors, research
   * pseudonyms), derived from the blind-index key with HKDF-SHA-256 and the
   * purpose as its info: one secret to keep, and no two purposes ever share
   * a key. Only crypto/ calls this.
   */
  derivedKey(purpose: DerivedKeyPurpose): Buffer {
    let key = this.#derived.get(purpose);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', this.#key, Buffer.alloc(0), `phi-graph/${purpose}/v1`, KEY_BYTES));
      this.#derived.set(purpose, key);
    }
    return key;
  }
}

export class KeyRing implements IndexKeys {
  readonly #keys: Map<number, Buffer>;
  readonly #retired: Set<number>;
  readonly #blindIndexKey: Buffer;

  private constructor(
    readonly currentVersion: number,
    keys: Map<number, Buffer>,
    retired: Set<number>,
    blindIndexKey: Buffer,
    readonly isDevelopment: boolean,
  ) {
    this.#keys = keys;
    this.#retired = retired;
    this.#blindIndexKey = blindIndexKey;
    this.#indexKeys = new SecretIndexKeys(blindIndexKey);
  }

  static fromDocument(document: unknown): KeyRing {
    const parsed = keyRingSchema.safeParse(document);
    if (!parsed.success) {
      throw new Error(`Invalid key ring: ${parsed.error.issues.map((issue) => `${issue.path.join('.') || 'ring'}: ${issue.message}`).join('; ')}`);
    }
    const ring = parsed.data;
    const keys = new Map(Object.entries(ring.keys).map(([version, key]) => [Number(version), Buffer.from(key, 'base64')]));
    return new KeyRing(ring.current, keys, new Set(ring.retired), Buffer.from(ring.blindIndexKey, 'base64'), ring.development === true);
  }

  /** Key bytes of a version; only crypto/ calls this. */
  keyBytes(version: number): Buffer | undefined {
    return this.#keys.get(version);
  }

  isRetired(version: number): boolean {
    return this.#retired.has(version);
  }

  blindIndexKey(): Buffer {
    return this.#blindIndexKey;
  }

  /** Versions known to this ring (retired ones included). */
  versions(): number[] {
    return [...this.#keys.keys()].sort((a, b) => a - b);
  }

  /**
   * SHA-256 over what the ring holds (versions, keys, retirements, current version), as hex: tells two rings
   * apart (a reload that changed something) without showing a key.
   */
  fingerprint(): string {
    const hash = createHash('sha256').update(`current=${this.currentVersion};retired=${[...this.#retired].sort((a, b) => a - b).join(',')};`);
    for (const version of this.versions()) hash.update(`${version}:`).update(this.#keys.get(version) as Buffer);
    return hash.update('blind:').update(this.#blindIndexKey).digest('hex');
  }

  /** True when this ring holds any of the other ring's key bytes (a KEK or the blind-index key): a copy of it, in part. */
  sharesKeyWith(other: KeyRing): boolean {
    const mine = new Set([...this.#keys.values(), this.#blindIndexKey].map((key) => key.toString('hex')));
    return [...other.#keys.values(), other.#blindIndexKey].some((key) => mine.has(key.toString('hex')));
  }

  /** The ring's blind-index key serves the derived keys as SecretIndexKeys does for an HSM deployment. */
  readonly #indexKeys: SecretIndexKeys;

  derivedKey(purpose: DerivedKeyPurpose): Buffer {
    return this.#indexKeys.derivedKey(purpose);
  }
}

export type DerivedKeyPurpose = 'cursor' | 'research-pseudonym';

export function generateKeyRingDocument(development: boolean): KeyRingDocument {
  return {
    ...(development && { development: true }),
    current: 1,
    keys: { '1': randomBytes(KEY_BYTES).toString('base64') },
    retired: [],
    blindIndexKey: randomBytes(KEY_BYTES).toString('base64'),
  };
}

/** A new current version; the old ones stay for decryption until retired. */
export function addKeyVersion(document: KeyRingDocument): KeyRingDocument {
  const next = Math.max(...Object.keys(document.keys).map(Number)) + 1;
  return { ...document, current: next, keys: { ...document.keys, [String(next)]: randomBytes(KEY_BYTES).toString('base64') } };
}

export function retireKeyVersions(document: KeyRingDocument, versions: number[]): KeyRingDocument {
  if (versions.includes(document.current)) throw new Error('the current key version cannot be retired; rotate first');
  return { ...document, retired: [...new Set([...document.retired, ...versions])].sort((a, b) => a - b) };
}

/** Reads the development key ring, creating it on first use. */
export async function loadOrCreateDevelopmentKeyRing(dataDir: string): Promise<KeyRingDocument> {
  const path = join(dataDir, DEVELOPMENT_KEY_RING_FILE);
  try {
    return keyRingSchema.parse(JSON.parse(await readFile(path, 'utf8')));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const document = generateKeyRingDocument(true);
  await mkdir(dataDir, { recursive: true });
  try {
    await writeFile(path, `${JSON.stringify(document, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    return document;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return keyRingSchema.parse(JSON.parse(await readFile(path, 'utf8')));
  }
}

export async function saveDevelopmentKeyRing(dataDir: string, document: KeyRingDocument): Promise<void> {
  await writeFile(join(dataDir, DEVELOPMENT_KEY_RING_FILE), `${JSON.stringify(document, null, 2)}\n`, { mode: 0o600 });
}
