import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createScratchDatabase, resolveServices } from './support/services.js';

const STARTUP_TIMEOUT_MS = 90_000;

describe('npm start', () => {
  it('serves the gateway, prints a curl that works with a minted token, and exits cleanly on SIGTERM', async () => {
    const services = await resolveServices();
    const dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-start-'));
    const scratch = services.postgresUrl ? await createScratchDatabase(services.postgresUrl) : null;
    const env = {
      ...process.env,
      NODE_ENV: 'development',
      DATA_DIR: dataDir,
      PORT: '0',
      PATIENT_SUBGRAPH_PORT: '0',
      CLINICAL_SUBGRAPH_PORT: '0',
      BILLING_SUBGRAPH_PORT: '0',
      SEED_PATIENTS: '12',
      DATABASE_URL: scratch?.url ?? '',
      REDIS_URL: services.redisUrl ?? '',
    };
    // Node with tsx as its loader, as bin/start.mjs runs it: tsx's CLI relays SIGTERM with a 30 ms wait for the child's
    // answer and SIGKILLs it when a loaded machine answers later (exit 143 instead of a clean stop).
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      const started = Date.now();
      while (!output.includes('Ctrl-C stops.')) {
        if (child.exitCode !== null || Date.now() - started > STARTUP_TIMEOUT_MS) throw new Error(`did not start:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(output).toContain('Seeded 12 synthetic patients');
      // stdout is JSON log lines only; the banner came whole, on stderr.
      for (const line of stdout.split('\n').filter((text) => text.trim() !== '')) expect(() => JSON.parse(line) as unknown, line).not.toThrow();
      expect(output).toMatch(/phi-graph is up[^\n]*\n {2}Gateway: [^\n]*\n(?: {2}Subgraph:[^\n]*\n)*/);
      expect(output).toContain('npm run -s token -- --role clinician');
      const gatewayUrl = /Gateway:\s+(http:\/\/\S+)/.exec(output)?.[1];
      const body = /-d '(\{.*\})'/.exec(output)?.[1];
      expect(gatewayUrl).toBeTruthy();
      expect(body).toBeTruthy();

      const token = await new Promise<string>((resolve, reject) => {
        const minter = spawn('node_modules/.bin/tsx', ['src/auth/token-cli.ts', '--role', 'clinician'], { env });
        let stdout = '';
        minter.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
        minter.once('exit', (code) => (code === 0 ? resolve(stdout.trim()) : reject(new Error(`token exited ${code}`))));
      });
      const response = await fetch(gatewayUrl ?? '', {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body,
      });
      const result = (await response.json()) as { data?: { patients: { edges: unknown[] } } };
      expect(response.status).toBe(200);
      expect(result.data?.patients.edges).toHaveLength(3);

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await scratch?.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 150_000);
});
