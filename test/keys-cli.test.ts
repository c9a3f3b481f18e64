import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { DEVELOPMENT_KEY_RING_FILE, generateKeyRingDocument } from '../src/crypto/index.js';
import { openKeyService } from '../src/crypto/key-service.js';
import { createScratchDatabase, resolveServices } from './support/services.js';

const run = promisify(execFile);

async function cli(script: string, args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('node_modules/.bin/tsx', [script, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('the key commands', () => {
  it('rotate the development key ring, refuse to retire a version still in use, re-encrypt, then retire it', async () => {
    const services = await resolveServices();
    const dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-keys-'));
    const scratch = services.postgresUrl ? await createScratchDatabase(services.postgresUrl) : null;
    const env = { DATA_DIR: dataDir, DATABASE_URL: scratch?.url ?? '', NODE_ENV: 'development', LOG_LEVEL: 'silent' };
    const ring = async () => JSON.parse(await readFile(join(dataDir, DEVELOPMENT_KEY_RING_FILE), 'utf8')) as { current: number; retired: number[] };
    try {
      expect((await cli('src/db/seed-cli.ts', ['--patients', '5'], env)).code).toBe(0);
      expect((await ring()).current).toBe(1);

      expect((await cli('src/cli/keys.ts', ['rotate'], env)).code).toBe(0);
      expect((await ring()).current).toBe(2);

      const early = await cli('src/cli/keys.ts', ['retire', '--version', '1'], env);
      expect(early.code).toBe(1);
      expect(early.stderr).toMatch(/rows are still under key version 1/);

      const reencrypted = await cli('src/cli/keys.ts', ['reencrypt', '--batch-size', '3'], env);
      expect(reencrypted.code).toBe(0);
      expect(reencrypted.stdout).toMatch(/Re-encrypted [1-9]\d* rows under key version 2/);

      expect((await cli('src/cli/keys.ts', ['retire', '--version', '1'], env)).code).toBe(0);
      expect((await ring()).retired).toEqual([1]);
    } finally {
      await scratch?.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 180_000);

  it('print the rotated ring for the secret manager when the ring comes from PHI_KEY_RING', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-keys-env-'));
    try {
      const document = generateKeyRingDocument(false);
      const result = await cli('src/cli/keys.ts', ['rotate'], { DATA_DIR: dataDir, PHI_KEY_RING: JSON.stringify(document), NODE_ENV: 'development' });
      expect(result.code).toBe(0);
      const rotated = JSON.parse(result.stdout) as { current: number; keys: Record<string, string> };
      expect(rotated.current).toBe(2);
      expect(rotated.keys['1']).toBe(document.keys['1']);
      expect(result.stderr).toContain('PHI_KEY_RING');
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('rewrite PHI_KEY_RING_FILE in place (whole, by rename) so running instances read the rotated ring', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-keys-file-'));
    try {
      const document = generateKeyRingDocument(false);
      const ringFile = join(dataDir, 'key-ring.json');
      await writeFile(ringFile, JSON.stringify(document), { mode: 0o600 });
      const result = await cli('src/cli/keys.ts', ['rotate'], { DATA_DIR: dataDir, PHI_KEY_RING_FILE: ringFile, NODE_ENV: 'development' });
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/pick it up by themselves/);
      const rotated = JSON.parse(await readFile(ringFile, 'utf8')) as { current: number; keys: Record<string, string> };
      expect(rotated.current).toBe(2);
      expect(rotated.keys['1']).toBe(document.keys['1']);
      expect((await stat(ringFile)).mode & 0o777).toBe(0o600);
      // A running instance's view of that file (what its refresh reads) now has version 2 current.
      const config = loadConfig({ DATA_DIR: dataDir, PHI_KEY_RING_FILE: ringFile });
      const { kms } = await openKeyService(config.keys);
      expect(kms.currentVersion()).toBe(2);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});

