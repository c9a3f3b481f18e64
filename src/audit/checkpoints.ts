import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { appendFile, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { toBuffer } from '../crypto/index.js';
import type { Database } from '../db/index.js';

/**
 * Signed checkpoints of the audit chain, kept outside the database (the
 * model: CloudTrail's signed digest files, transparency-log checkpoints).
 * The hash chain in the database proves nothing against the people who run
 * that database: a superuser can delete the newest batches and move the
 * head back, or rewrite events and recompute the chain with this project's
 * own code. A checkpoint is the chain's size and head hash at a moment,
 * with the time and the hash of the checkpoint before it, signed (Ed25519)
 * with a key that is never in the database, and appended to a sink the
 * database's administrators do not control. `npm run audit:verify` then
 * checks the database's chain against every checkpoint: a head that went
 * back (truncation), a batch whose hash is no longer the one signed
 * (rewritten and re-chained), a checkpoint whose signature fails.
 */

export interface CheckpointBody {
  version: 1;
  /** The chain's size: the sequence of its last batch. */
  size: number;
  /** The hash of that batch (hex). */
  head: string;
  time: string;
  /** SHA-256 (hex) of the checkpoint line before this one in its sink; null for the first. */
  previous: string | null;
  /** Which key signed it: the first 16 hex digits of SHA-256 of its public key (DER). */
  keyId: string;
}

export interface SignedCheckpoint extends CheckpointBody {
  /** Ed25519 over the canonical JSON of the body (base64). */
  signature: string;
}

/** Where checkpoints go, append-only: a folder in development; object storage with object lock or a SIEM in production (README). */
export interface CheckpointSink {
  readonly description: string;
  append(line: string): Promise<void>;
  /** Every line, oldest first (verification). */
  lines(): Promise<string[]>;
  /** The newest line, or null (every checkpoint write: it must not read the whole history each minute). */
  last(): Promise<string | null>;
}

export const CHECKPOINT_FOLDER = 'audit-checkpoints';
export const CHECKPOINT_FILE = 'checkpoints.jsonl';
export const DEVELOPMENT_SIGNING_KEY_FILE = 'audit-signing-key.development.pem';
/** A checkpoint line is about 400 bytes: the file's last few KB hold the newest whole. */
const TAIL_BYTES = 4096;

/**
 * A folder: one JSON line per checkpoint, appended (O_APPEND, so lines of
 * concurrent writers never interleave), never rewritten. On a volume the
 * database's administrators cannot write, it is outside their reach.
 */
export class FolderCheckpointSink implements CheckpointSink {
  private readonly file: string;

  constructor(private readonly folder: string) {
    this.file = join(folder, CHECKPOINT_FILE);
  }

  get description(): string {
    return this.file;
  }

  async append(line: string): Promise<void> {
    await mkdir(this.folder, { recursive: true });
    await appendFile(this.file, `${line}\n`, { mode: 0o640 });
  }

  async last(): Promise<string | null> {
    let handle;
    try {
      handle = await open(this.file, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, TAIL_BYTES);
      const { buffer } = await handle.read(Buffer.alloc(length), 0, length, size - length);
      const lines = buffer.toString('utf8').split('\n').filter((line) => line.trim() !== '');
      return lines[lines.length - 1] ?? null;
    } finally {
      await handle.close();
    }
  }

  async lines(): Promise<string[]> {
    const text = await readFile(this.file, 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return '';
      throw error;
    });
    return text.split('\n').filter((line) => line.trim() !== '');
  }
}

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyId: string;
  /** The public key as PEM (SPKI), for exports and outside verifiers. */
  publicKeyPem: string;
  development: boolean;
}

function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

function signingKeyFrom(pem: string, development: boolean): SigningKey {
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error('AUDIT_SIGNING_KEY must be an Ed25519 private key (PEM, PKCS#8)');
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyIdOf(publicKey), publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), development };
}

/**
 * The checkpoint signing key: AUDIT_SIGNING_KEY (PEM), or outside
 * production a development key generated once into the data folder
 * (config.ts refuses production without AUDIT_SIGNING_KEY).
 */
export async function loadSigningKey(options: { pem: string | undefined; dataDir: string; allowDevelopmentKey: boolean }): Promise<SigningKey> {
  const path = join(options.dataDir, DEVELOPMENT_SIGNING_KEY_FILE);
  if (options.pem) {
    const key = signingKeyFrom(options.pem, false);
    // The development key copied into AUDIT_SIGNING_KEY is still the development key.
    const development = await readFile(path, 'utf8').catch(() => null);
    if (!options.allowDevelopmentKey && development && signingKeyFrom(development, true).keyId === key.keyId) {
      throw new Error('AUDIT_SIGNING_KEY is the development signing key of the data folder; production refuses it');
    }
    return key;
  }
  if (!options.allowDevelopmentKey) throw new Error('AUDIT_SIGNING_KEY is required in production (the development key is refused)');
  const existing = await readFile(path, 'utf8').catch(() => null);
  if (existing) return signingKeyFrom(existing, true);
  await mkdir(options.dataDir, { recursive: true });
  const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  // 'wx': two processes starting at once keep the first key.
  await writeFile(path, pem, { mode: 0o600, flag: 'wx' }).catch(() => undefined);
  return signingKeyFrom(await readFile(path, 'utf8'), true);
}

function canonical(body: CheckpointBody): Buffer {
  const { version, size, head, time, previous, keyId } = body;
  return Buffer.from(JSON.stringify({ version, size, head, time, previous, keyId }));
}

function lineHash(line: string): string {
  return createHash('sha256').update(line).digest('hex');
}

/** The chain head now, in the database. */
async function chainHead(db: Database): Promise<{ size: number; head: string } | null> {
  const [row] = await db.fork().execute<{ sequence: string; hash: Uint8Array }[]>('select "sequence", "hash" from "audit_chain" where "id" = 1');
  return row ? { size: Number(row.sequence), head: toBuffer(row.hash).toString('hex') } : null;
}

/**
 * Signs the chain head now and appends it to the sink; nothing when the
 * chain has not moved since the last checkpoint (unless `force`).
 */
export async function writeCheckpoint(db: Database, sink: CheckpointSink, key: SigningKey, options: { force?: boolean } = {}): Promise<SignedCheckpoint | null> {
  const head = await chainHead(db);
  if (!head) throw new Error('the audit chain head is missing');
  const last = await sink.last();
  if (last && !options.force) {
    const previous = JSON.parse(last) as Partial<SignedCheckpoint>;
    if (previous.size === head.size && previous.head === head.head) return null;
  }
  const body: CheckpointBody = { version: 1, size: head.size, head: head.head, time: new Date().toISOString(), previous: last ? lineHash(last) : null, keyId: key.keyId };
  const signed: SignedCheckpoint = { ...body, signature: sign(null, canonical(body), key.privateKey).toString('base64') };
  await sink.append(JSON.stringify(signed));
  return signed;
}

export interface CheckpointProblem {
  /** The line of the checkpoint in its sink (1-based), or 0 for the chain as a whole. */
  line: number;
  problem: string;
}

/** Parses and checks the signature of every line; what does not parse or verify is a problem, never skipped. */
export function readCheckpoints(lines: readonly string[], publicKey: KeyObject): { checkpoints: (SignedCheckpoint & { line: number })[]; problems: CheckpointProblem[] } {
  const checkpoints: (SignedCheckpoint & { line: number })[] = [];
  const problems: CheckpointProblem[] = [];
  const keyId = keyIdOf(publicKey);
  lines.forEach((text, index) => {
    const line = index + 1;
    let parsed: SignedCheckpoint;
    try {
      parsed = JSON.parse(text) as SignedCheckpoint;
    } catch {
      problems.push({ line, problem: 'is not a checkpoint (not JSON)' });
      return;
    }
    if (parsed.version !== 1 || typeof parsed.size !== 'number' || typeof parsed.head !== 'string' || typeof parsed.signature !== 'string') {
      problems.push({ line, problem: 'is not a checkpoint (fields missing)' });
      return;
    }
    if (parsed.keyId !== keyId) {
      problems.push({ line, problem: `was signed by another key (${String(parsed.keyId)}, expected ${keyId})` });
      return;
    }
    if (!verify(null, canonical(parsed), publicKey, Buffer.from(parsed.signature, 'base64'))) {
      problems.push({ line, problem: 'has a bad signature (the checkpoint was altered or forged)' });
      return;
    }
    const before = lines[index - 1];
    if (index > 0 && before !== undefined && parsed.previous !== lineHash(before)) problems.push({ line, problem: 'does not follow the checkpoint before it (checkpoints removed or reordered)' });
    checkpoints.push({ ...parsed, line });
  });
  // A later checkpoint of a smaller chain: the head was moved back between them (an old head replayed).
  let largest = 0;
  for (const checkpoint of checkpoints) {
    if (checkpoint.size < largest) problems.push({ line: checkpoint.line, problem: `signs a chain of ${checkpoint.size} batches after one of ${largest}: the chain head was moved back` });
    largest = Math.max(largest, checkpoint.size);
  }
  return { checkpoints, problems };
}

/**
 * Checks the database's chain against signed checkpoints: every batch a
 * checkpoint signed must still be there with the hash it signed (batches
 * purged past retention excepted), and the chain must be at least as long
 * as the newest checkpoint.
 */
export async function verifyAgainstCheckpoints(db: Database, lines: readonly string[], publicKey: KeyObject): Promise<{ ok: boolean; checked: number; problems: CheckpointProblem[] }> {
  const { checkpoints, problems } = readCheckpoints(lines, publicKey);
  const em = db.fork();
  const [chain] = await em.execute<{ sequence: string; checkpoint_sequence: string }[]>('select "sequence", "checkpoint_sequence" from "audit_chain" where "id" = 1');
  const size = Number(chain?.sequence ?? 0);
  const purgedBelow = Number(chain?.checkpoint_sequence ?? 0);
  let checked = 0;
  for (const checkpoint of checkpoints) {
    if (checkpoint.size > size) {
      problems.push({ line: checkpoint.line, problem: `signed a chain of ${checkpoint.size} batches; the database holds ${size}: batches missing at the tail (truncated)` });
      continue;
    }
    if (checkpoint.size < purgedBelow || checkpoint.size === 0) continue; // purged past retention (or the empty chain)
    const [batch] = await em.execute<{ hash: Uint8Array }[]>('select "hash" from "audit_batch" where "sequence" = ?', [checkpoint.size]);
    if (!batch) problems.push({ line: checkpoint.line, problem: `signed batch ${checkpoint.size}, which is gone` });
    else if (toBuffer(batch.hash).toString('hex') !== checkpoint.head) {
      problems.push({ line: checkpoint.line, problem: `signed batch ${checkpoint.size} with another hash: the chain up to it was rewritten and re-chained` });
    } else checked += 1;
  }
  if (checkpoints.length === 0 && problems.length === 0) problems.push({ line: 0, problem: 'no signed checkpoint to verify against (write one: npm run audit:checkpoint)' });
  return { ok: problems.length === 0, checked, problems };
}
