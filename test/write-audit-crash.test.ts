import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { mintDevelopmentToken } from '../src/auth/index.js';
import { readDevelopmentPrincipals } from '../src/db/seed/index.js';
import { createScratchDatabase, resolveServices } from './support/services.js';

/**
 * `kill -9` of the server in the middle of a stream of writes, three times:
 * afterwards every stored note has its create event, whatever instant the
 * process died at (a write and its record are one transaction).
 */

const ROUNDS = 3;
const STARTUP_TIMEOUT_MS = 90_000;

let postgresUrl: string | undefined;
let scratch: { url: string; drop: () => Promise<void> } | null = null;
let dataDir = '';

beforeAll(async () => {
  postgresUrl = (await resolveServices()).postgresUrl;
  dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-crash-'));
  if (postgresUrl) scratch = await createScratchDatabase(postgresUrl);
});

afterAll(async () => {
  await scratch?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

async function startServer(): Promise<{ child: ChildProcess; gatewayUrl: string }> {
  const env = {
    ...process.env,
    NODE_ENV: 'development',
    DATA_DIR: dataDir,
    PORT: '0',
    PATIENT_SUBGRAPH_PORT: '0',
    CLINICAL_SUBGRAPH_PORT: '0',
    BILLING_SUBGRAPH_PORT: '0',
    SEED_PATIENTS: '10',
    DATABASE_URL: scratch?.url ?? '',
    REDIS_URL: '',
    LOG_LEVEL: 'silent',
    RATE_LIMIT_REQUESTS_PER_MINUTE: '1000000',
    RATE_LIMIT_IN_FLIGHT: '10000',
  };
  // One process, no supervisor, no tsx wrapper: SIGKILL goes to the very process that writes.
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--single-process'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const started = Date.now();
  while (!output.includes('Ctrl-C stops.')) {
    if (child.exitCode !== null || Date.now() - started > STARTUP_TIMEOUT_MS) throw new Error(`did not start:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child, gatewayUrl: /Gateway:\s+(http:\/\/\S+)/.exec(output)?.[1] ?? '' };
}

describe('kill -9 in a stream of writes', () => {
  it('leaves no stored note without its create event, round after round', async (context) => {
    context.skip(!scratch, 'needs PostgreSQL (the embedded database is not made for a process killed mid-write)');
    let sent = 0;
    const db = new pg.Client({ connectionString: scratch?.url });
    let seeded = new Set<string>();
    for (let round = 0; round < ROUNDS; round += 1) {
      const { child, gatewayUrl } = await startServer();
      if (round === 0) {
        // The notes of the synthetic data, written by the seeder before any request.
        await db.connect();
        seeded = new Set((await db.query<{ id: string }>('select id from clinical_note')).rows.map((row) => row.id));
      }
      const principals = await readDevelopmentPrincipals(dataDir);
      if (!principals) throw new Error('no development principals');
      const auth = loadConfig({ DATA_DIR: dataDir, NODE_ENV: 'development' }).auth;
      const token = await mintDevelopmentToken(auth, dataDir, { ...principals.clinician, roles: ['clinician'], mfa: true, ttl: '10m' });
      let stop = false;
      const writers = Array.from({ length: 4 }, async () => {
        while (!stop) {
          sent += 1;
          await fetch(gatewayUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
            body: JSON.stringify({
              query: 'mutation($input: AddClinicalNoteInput!) { addClinicalNote(input: $input) { ok } }',
              variables: { input: { patientId: principals.patient.patientId, typeCode: '11506-3', text: `Round ${round}, note ${sent}.` } },
            }),
          }).catch(() => undefined);
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 700 + Math.floor(Math.random() * 900)));
      const exited = child.exitCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      stop = true;
      await Promise.all(writers);
      await exited;
    }
    try {
      const written = (await db.query<{ id: string }>('select id from clinical_note')).rows.map((row) => row.id).filter((id) => !seeded.has(id));
      const created = new Set(
        (await db.query<{ id: string }>(`select entry.id from audit_event e cross join lateral unnest(e.entity_ids) as entry(id) where e.action = 'create' and e.entity_type = 'ClinicalNote'`)).rows.map((row) => row.id),
      );
      expect(written.length).toBeGreaterThan(0);
      expect(written.filter((id) => !created.has(id))).toEqual([]);
    } finally {
      await db.end();
    }
  }, 240_000);
});
