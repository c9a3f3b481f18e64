import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OWNER_FILE } from '../src/db/folder-owner.js';
import { openDatabase, PGLITE_FOLDER } from '../src/db/orm.js';

/**
 * One owner per embedded data folder. Before, a second process on the same
 * folder (another npm start, a --subgraph, audit:verify) opened its own
 * PGlite copy: writes were lost and audit:verify read a stale copy while
 * saying the chain was intact. Now the second is refused, naming the owner.
 */
const run = promisify(execFile);
let dataDir: string;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-owner-'));
});

afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

async function command(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run('node_modules/.bin/tsx', args, { env: { ...process.env, DATA_DIR: dataDir, DATABASE_URL: '', NODE_ENV: 'development', LOG_LEVEL: 'silent' } }).then(
    (done) => ({ code: 0, ...done }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
}

describe('an embedded data folder', () => {
  it('refuses a second process while its owner runs, naming the owner; serves it once the owner has closed', async () => {
    const db = await openDatabase({ url: undefined, dataDir });
    await db.migrate();
    try {
      for (const args of [['src/cli/audit.ts', 'verify'], ['src/db/migrate-cli.ts']]) {
        const refused = await command(...args);
        expect(refused.code, args.join(' ')).not.toBe(0);
        expect(refused.stderr, args.join(' ')).toContain(`in use by process ${process.pid}`);
        expect(refused.stderr, args.join(' ')).not.toMatch(/\n\s+at /); // one message, no stack
      }
    } finally {
      await db.close();
    }
    const served = await command('src/db/migrate-cli.ts');
    expect(served.stderr).not.toContain('in use by process');
    expect(served.code).toBe(0);
  }, 120_000);

  it('takes over the claim of a process that is gone', async () => {
    const child = spawn(process.execPath, ['-e', '0']);
    const pid = child.pid ?? 0;
    await new Promise((resolve) => child.once('exit', resolve));
    await rm(join(dataDir, PGLITE_FOLDER), { recursive: true, force: true });
    await mkdir(join(dataDir, PGLITE_FOLDER), { recursive: true });
    await writeFile(join(dataDir, PGLITE_FOLDER, OWNER_FILE), JSON.stringify({ pid, command: 'killed npm start', since: new Date().toISOString() }));
    const db = await openDatabase({ url: undefined, dataDir });
    try {
      expect(JSON.parse(await readFile(join(dataDir, PGLITE_FOLDER, OWNER_FILE), 'utf8'))).toMatchObject({ pid: process.pid });
    } finally {
      await db.close();
    }
  }, 60_000);
});
