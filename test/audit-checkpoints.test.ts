import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECKPOINT_FILE, CHECKPOINT_FOLDER, DEVELOPMENT_SIGNING_KEY_FILE, FolderCheckpointSink, loadSigningKey, verifyAgainstCheckpoints, writeCheckpoint, type SigningKey } from '../src/audit/checkpoints.js';
import { auditEntries, auditEventFromRow, chainHash, exportAuditEvents, payloadDigest, verifyAuditChain } from '../src/audit/index.js';
import { verificationBundle, verifyExport, type VerificationBundle } from '../src/audit/offline.js';
import type { StoredAuditEvent } from '../src/audit/events.js';
import { createPublicKey } from 'node:crypto';
import { toBuffer } from '../src/crypto/index.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * An insider with the database's superuser: triggers disabled, the
 * project's own hashing code at hand. The hash chain alone is fooled by
 * each attack here; the signed checkpoints kept outside the database are
 * not, and say what was done.
 */

let stack: TestStack;
let key: SigningKey;
const folders: string[] = [];

beforeAll(async () => {
  stack = await startTestStack({ patients: 10 });
  key = await loadSigningKey({ pem: undefined, dataDir: stack.config.database.dataDir, allowDevelopmentKey: true });
});

afterAll(async () => {
  await stack?.stop();
  await Promise.all(folders.map((folder) => rm(folder, { recursive: true, force: true })));
});

async function freshSink(): Promise<FolderCheckpointSink> {
  const folder = await mkdtemp(join(tmpdir(), 'phi-graph-checkpoints-'));
  folders.push(folder);
  return new FolderCheckpointSink(folder);
}

/** Reads that write audit batches. */
async function readSome(times: number): Promise<void> {
  const token = await stack.token('clinician');
  for (let index = 0; index < times; index += 1) {
    await post(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { id name { text } birthDate } }', { token, variables: { id: stack.principals.patient.patientId } });
  }
}

/** As the database's superuser, with the append-only triggers off. */
async function asSuperuser(work: () => Promise<void>): Promise<void> {
  const tables = ['audit_event', 'audit_batch', 'audit_chain'];
  for (const table of tables) await stack.sql(`alter table ${table} disable trigger user`);
  try {
    await work();
  } finally {
    for (const table of tables) await stack.sql(`alter table ${table} enable trigger user`);
  }
}

async function head(): Promise<number> {
  const [row] = await stack.sql<{ sequence: string }>('select sequence from audit_chain where id = 1');
  return Number(row?.sequence);
}

describe('signed checkpoints outside the database', () => {
  it('hold for an untouched chain', async () => {
    await readSome(2);
    const sink = await freshSink();
    expect(await writeCheckpoint(stack.api.db!, sink, key)).toMatchObject({ size: await head() });
    await readSome(1);
    await writeCheckpoint(stack.api.db!, sink, key);
    const report = await verifyAgainstCheckpoints(stack.api.db!, await sink.lines(), key.publicKey);
    expect(report).toMatchObject({ ok: true, checked: 2, problems: [] });
  });

  it('show a truncation the chain alone does not: the newest batches deleted and the head moved back', async () => {
    await readSome(4);
    const sink = await freshSink();
    const outside = new FolderCheckpointSink(join(stack.config.database.dataDir, CHECKPOINT_FOLDER));
    await writeCheckpoint(stack.api.db!, sink, key);
    await writeCheckpoint(stack.api.db!, outside, key, { force: true });
    const signed = await head();
    const keep = signed - 2;
    await asSuperuser(async () => {
      await stack.sql('delete from audit_event where batch_sequence > ?', [keep]);
      await stack.sql('delete from audit_batch where sequence > ?', [keep]);
      await stack.sql('update audit_chain set sequence = ?, hash = (select hash from audit_batch where sequence = ?) where id = 1', [keep, keep]);
    });
    // The chain in the database is consistent again: its own verification is fooled.
    expect((await verifyAuditChain(stack.api.db!)).ok).toBe(true);
    const report = await verifyAgainstCheckpoints(stack.api.db!, await sink.lines(), key.publicKey);
    expect(report.ok).toBe(false);
    expect(report.problems.map((problem) => problem.problem).join('\n')).toMatch(new RegExp(`signed a chain of ${signed} batches; the database holds ${keep}: batches missing at the tail`));
    // A checkpoint written afterwards (the server's, every minute) signs a shorter chain: the head went back.
    await writeCheckpoint(stack.api.db!, sink, key);
    const after = await verifyAgainstCheckpoints(stack.api.db!, await sink.lines(), key.publicKey);
    expect(after.problems.map((problem) => problem.problem).join('\n')).toMatch(/the chain head was moved back/);

    // npm run audit:verify says so too, and fails (PostgreSQL: the embedded database belongs to the running stack).
    if (stack.config.database.url) {
      const run = promisify(execFile);
      const result = await run('node_modules/.bin/tsx', ['src/cli/audit.ts', 'verify'], {
        env: { ...process.env, DATABASE_URL: stack.config.database.url, DATA_DIR: stack.config.database.dataDir, NODE_ENV: 'development' },
      }).then(
        (done) => ({ code: 0, ...done }),
        (error: { code: number; stdout: string; stderr: string }) => error,
      );
      expect(result.code).toBe(1);
      expect(result.stdout).toContain('Audit chain intact');
      expect(result.stderr).toContain('batches missing at the tail (truncated)');
    }
  }, 60_000);

  it('show events rewritten and the chain recomputed with the project hashing code', async () => {
    await readSome(3);
    const sink = await freshSink();
    await writeCheckpoint(stack.api.db!, sink, key);
    const top = await head();
    const target = top - 1;
    await asSuperuser(async () => {
      // Turn a read into a refusal, then recompute every digest and hash from that batch to the head.
      await stack.sql(`update audit_event set fields = replace(fields::text, '"allowed"', '"denied"')::jsonb where batch_sequence = ?`, [target]);
      const [before] = await stack.sql<{ hash: Uint8Array }>('select hash from audit_batch where sequence = ?', [target - 1]);
      let previous = toBuffer(before?.hash ?? Buffer.alloc(32));
      for (let sequence = target; sequence <= top; sequence += 1) {
        const rows = await stack.sql<Record<string, unknown>>(`select * from ${auditEntries('e."batch_sequence" = ?')} as "entry"`, [sequence]);
        const digest = payloadDigest(rows.map((row) => auditEventFromRow(row)));
        const hash = chainHash(previous, digest);
        await stack.sql('update audit_batch set payload_digest = ?, previous_hash = ?, hash = ? where sequence = ?', [digest, previous, hash, sequence]);
        previous = hash;
      }
      await stack.sql('update audit_chain set hash = ? where id = 1', [previous]);
    });
    expect((await verifyAuditChain(stack.api.db!)).ok).toBe(true);
    const report = await verifyAgainstCheckpoints(stack.api.db!, await sink.lines(), key.publicKey);
    expect(report.ok).toBe(false);
    expect(report.problems.map((problem) => problem.problem).join('\n')).toContain(`signed batch ${top} with another hash: the chain up to it was rewritten and re-chained`);
  });

  it('refuse a checkpoint that was altered, forged with another key, or removed from the sequence', async () => {
    await readSome(1);
    const sink = await freshSink();
    for (let index = 0; index < 3; index += 1) {
      await readSome(1);
      await writeCheckpoint(stack.api.db!, sink, key);
    }
    const file = join(sink.description.replace(`/${CHECKPOINT_FILE}`, ''), CHECKPOINT_FILE);
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    // Altered: the newest checkpoint now claims a shorter chain.
    const altered = JSON.parse(lines[2] ?? '{}') as { size: number };
    altered.size -= 1;
    await writeFile(file, `${[lines[0], lines[1], JSON.stringify(altered)].join('\n')}\n`);
    const forged = await verifyAgainstCheckpoints(stack.api.db!, await sink.lines(), key.publicKey);
    expect(forged.problems).toContainEqual({ line: 3, problem: 'has a bad signature (the checkpoint was altered or forged)' });
    // Removed: the middle one is gone.
    await writeFile(file, `${[lines[0], lines[2]].join('\n')}\n`);
    const removed = await verifyAgainstCheckpoints(stack.api.db!, await sink.lines(), key.publicKey);
    expect(removed.problems).toContainEqual({ line: 2, problem: 'does not follow the checkpoint before it (checkpoints removed or reordered)' });
    // Another key (a forger's): not ours.
    const other = await loadSigningKey({ pem: undefined, dataDir: await mkdtemp(join(tmpdir(), 'phi-graph-other-key-')), allowDevelopmentKey: true });
    const foreign = await freshSink();
    await writeCheckpoint(stack.api.db!, foreign, other);
    const report = await verifyAgainstCheckpoints(stack.api.db!, await foreign.lines(), key.publicKey);
    expect(report.problems[0]?.problem).toMatch(/was signed by another key/);
  });

  it('let an outside auditor verify an export with nothing but the public key, and show an event altered in it', async () => {
    const from = new Date(Date.now() - 1000);
    await readSome(3);
    const sink = await freshSink();
    await writeCheckpoint(stack.api.db!, sink, key);
    const to = new Date(Date.now() + 1000);
    const events: StoredAuditEvent[] = [];
    for await (const event of exportAuditEvents(stack.api.db!, { from, to })) events.push(JSON.parse(JSON.stringify(event)) as StoredAuditEvent);
    const bundle = await verificationBundle(stack.api.db!, new Set(events.map((event) => event.batchSequence)), key, await sink.lines());
    // Everything crosses as JSON, as the files do: nothing of the database's remains.
    const offline = JSON.parse(JSON.stringify(bundle)) as VerificationBundle;
    const publicKey = createPublicKey(key.publicKeyPem);
    expect(verifyExport(events, offline, publicKey)).toMatchObject({ ok: true, checkpointsMatched: 1, problems: [] });

    const altered = events.map((event, index) => (index === 0 ? { ...event, fields: event.fields.map((field) => ({ ...field, outcome: 'denied' as const })) } : event));
    const report = verifyExport(altered, offline, publicKey);
    expect(report.ok).toBe(false);
    expect(report.problems.join('\n')).toContain(`batch ${events[0]?.batchSequence}: its events differ from what was written`);
    const dropped = verifyExport(events.slice(1), offline, publicKey);
    expect(dropped.problems.join('\n')).toMatch(/events in the export, \d+ were written/);
    // Another key than the one the auditor holds: nothing verifies.
    const other = await loadSigningKey({ pem: undefined, dataDir: await mkdtemp(join(tmpdir(), 'phi-graph-auditor-key-')), allowDevelopmentKey: true });
    expect(verifyExport(events, offline, other.publicKey).problems.join('\n')).toMatch(/signed by another key/);

    // The commands: npm run audit:export -- --out FILE writes FILE.verification.json; audit:verify -- --export FILE checks it offline.
    if (stack.config.database.url) {
      const run = promisify(execFile);
      const folder = await mkdtemp(join(tmpdir(), 'phi-graph-export-'));
      folders.push(folder);
      const out = join(folder, 'audit.ndjson');
      // A data folder of its own, with the same signing key: the stack's checkpoints remember the attacks of the tests above.
      const dataDir = join(folder, 'data');
      await mkdir(dataDir);
      await copyFile(join(stack.config.database.dataDir, DEVELOPMENT_SIGNING_KEY_FILE), join(dataDir, DEVELOPMENT_SIGNING_KEY_FILE));
      await writeCheckpoint(stack.api.db!, new FolderCheckpointSink(join(dataDir, CHECKPOINT_FOLDER)), key, { force: true });
      const env = { ...process.env, DATABASE_URL: stack.config.database.url, DATA_DIR: dataDir, NODE_ENV: 'development' };
      await run('node_modules/.bin/tsx', ['src/cli/audit.ts', 'export', '--from', from.toISOString(), '--to', new Date(Date.now() + 1000).toISOString(), '--out', out], { env });
      const pem = join(folder, 'public.pem');
      await writeFile(pem, key.publicKeyPem);
      const verified = await run('node_modules/.bin/tsx', ['src/cli/audit.ts', 'verify', '--export', out, '--public-key', pem], { env: { PATH: process.env['PATH'] } });
      expect(verified.stdout).toMatch(/Export verified offline: \d+ events in \d+ batches, \d+ signed checkpoints matched/);
      const lines = (await readFile(out, 'utf8')).trim().split('\n');
      await writeFile(out, `${lines.slice(1).join('\n')}\n`);
      const failed = await run('node_modules/.bin/tsx', ['src/cli/audit.ts', 'verify', '--export', out, '--public-key', pem], { env: { PATH: process.env['PATH'] } }).then(
        () => ({ code: 0, stderr: '' }),
        (error: { code: number; stderr: string }) => error,
      );
      expect(failed.code).toBe(1);
      expect(failed.stderr).toContain('Export FAILS verification');
    }
  }, 60_000);

  it('refuse the development signing key in production', async () => {
    await expect(loadSigningKey({ pem: undefined, dataDir: stack.config.database.dataDir, allowDevelopmentKey: false })).rejects.toThrow(/AUDIT_SIGNING_KEY is required in production/);
    // Copied into AUDIT_SIGNING_KEY, it is still the development key.
    const copied = await readFile(join(stack.config.database.dataDir, DEVELOPMENT_SIGNING_KEY_FILE), 'utf8');
    await expect(loadSigningKey({ pem: copied, dataDir: stack.config.database.dataDir, allowDevelopmentKey: false })).rejects.toThrow(/development signing key/);
  });
});
