import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, resolveServices } from './support/services.js';

/**
 * `npm start` as an operator runs it: a supervisor and its children, each
 * with a heap cap. A process that dies is started again on the same port
 * while the others keep answering.
 */

const STARTUP_TIMEOUT_MS = 120_000;
const HEAP_MB = 384;
const SEMI_SPACE_MB = 48;

interface LogLine {
  event?: string;
  process?: string;
  pid?: number;
  restarts?: number;
  code?: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('npm start: supervised processes', () => {
  let child: ChildProcess;
  let output = '';
  let exited: Promise<number | null>;
  let cleanup: () => Promise<void>;
  let env: NodeJS.ProcessEnv;
  let gatewayUrl = '';
  let token = '';
  let withPostgres = false;

  const logLines = (): LogLine[] =>
    output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as LogLine);
  const readyPid = (name: string, restarts: number) => logLines().find((line) => line.event === 'process-ready' && line.process === name && line.restarts === restarts)?.pid;
  const graphql = async (query: string) => {
    const response = await fetch(gatewayUrl, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
    return { status: response.status, body: (await response.json()) as { data?: Record<string, unknown> | null; errors?: { extensions?: { code?: string } }[] } };
  };
  const PATIENTS_ONLY = '{ patients(first: 2) { edges { node { id name { text } } } } }';
  const WITH_CLINICAL = '{ patients(first: 2) { edges { node { id conditions(first: 2) { edges { node { id } } } } } } }';

  beforeAll(async () => {
    const services = await resolveServices();
    const dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-supervised-'));
    const scratch = services.postgresUrl ? await createScratchDatabase(services.postgresUrl) : null;
    withPostgres = scratch !== null;
    env = {
      ...process.env,
      NODE_ENV: 'development',
      LOG_LEVEL: 'info',
      DATA_DIR: dataDir,
      PORT: '0',
      PATIENT_SUBGRAPH_PORT: '0',
      CLINICAL_SUBGRAPH_PORT: '0',
      BILLING_SUBGRAPH_PORT: '0',
      SEED_PATIENTS: '8',
      PROCESS_HEAP_MB: String(HEAP_MB),
      PROCESS_SEMI_SPACE_MB: String(SEMI_SPACE_MB),
      DATABASE_URL: scratch?.url ?? '',
      REDIS_URL: services.redisUrl ?? '',
      RATE_LIMIT_REQUESTS_PER_MINUTE: '100000',
    };
    cleanup = async () => {
      await scratch?.drop();
      await rm(dataDir, { recursive: true, force: true });
    };
    // Node with tsx as its loader, as bin/start.mjs runs it (tsx's CLI SIGKILLs a child slow to answer its SIGTERM relay).
    child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    exited = new Promise((resolve) => child.once('exit', resolve));
    await until('the banner', () => (output.includes('Ctrl-C stops.') ? true : child.exitCode !== null ? (() => { throw new Error(`did not start:\n${output}`); })() : undefined), STARTUP_TIMEOUT_MS);
    gatewayUrl = /Gateway:\s+(http:\/\/\S+)/.exec(output)?.[1] ?? '';
    token = await new Promise<string>((resolve, reject) => {
      const minter = spawn('node_modules/.bin/tsx', ['src/auth/token-cli.ts', '--role', 'clinician'], { env });
      let stdout = '';
      minter.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      minter.once('exit', (code) => (code === 0 ? resolve(stdout.trim()) : reject(new Error(`token exited ${code}`))));
    });
  }, STARTUP_TIMEOUT_MS + 30_000);

  afterAll(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await cleanup();
  });

  it('runs the gateway and the subgraphs in separate processes, each with the heap cap and the young generation configured', async () => {
    const names = withPostgres ? ['patient', 'clinical', 'billing', 'gateway'] : ['subgraphs', 'gateway'];
    const pids = names.map((name) => readyPid(name, 0));
    expect(pids.every((pid) => typeof pid === 'number' && pid !== child.pid)).toBe(true);
    expect(new Set(pids).size).toBe(names.length);
    for (const pid of pids) {
      const flags = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      expect(flags).toContain(`--max-old-space-size=${HEAP_MB}`);
      expect(flags).toContain(`--max-semi-space-size=${SEMI_SPACE_MB}`);
    }
    expect(output).toContain(`${names.length} processes of at most ${HEAP_MB} MiB heap each, supervised`);
    expect((await graphql(WITH_CLINICAL)).status).toBe(200);
  });

  it('starts a killed subgraph process again, logged and counted, while the gateway keeps answering', async () => {
    const victim = withPostgres ? 'clinical' : 'subgraphs';
    const pid = readyPid(victim, 0) ?? 0;
    process.kill(pid, 'SIGKILL');
    await until('the exit to be seen', () => logLines().find((line) => line.event === 'process-exited' && line.process === victim));

    // While it is down: the gateway answers at once, with a code, and without partial data.
    const during = await graphql(WITH_CLINICAL);
    if (readyPid(victim, 1) === undefined) {
      expect(during.status).toBe(503);
      expect(during.body.data ?? null).toBeNull();
      expect(during.body.errors?.[0]?.extensions?.code).toBe('SUBGRAPH_UNAVAILABLE');
    }
    // The other subgraphs keep answering (with PostgreSQL each has its own process).
    if (withPostgres) {
      const patients = await graphql(PATIENTS_ONLY);
      expect(patients.status).toBe(200);
      expect((patients.body.data?.['patients'] as { edges: unknown[] }).edges).toHaveLength(2);
    }

    const restarted = await until('the restart', () => readyPid(victim, 1));
    expect(restarted).not.toBe(pid);
    expect(logLines().find((line) => line.event === 'process-exited' && line.process === victim)).toMatchObject({ restarts: 1 });
    const after = await graphql(WITH_CLINICAL);
    expect(after.status).toBe(200);
    expect(after.body.errors).toBeUndefined();
  }, 90_000);

  it('starts a killed gateway again on the same address', async () => {
    const pid = readyPid('gateway', 0) ?? 0;
    process.kill(pid, 'SIGKILL');
    await until('the gateway restart', () => readyPid('gateway', 1));
    expect(alive(pid)).toBe(false);
    expect((await graphql(PATIENTS_ONLY)).status).toBe(200);
  }, 90_000);

  it('stops every child on SIGTERM and exits cleanly', async () => {
    const pids = logLines()
      .filter((line) => line.event === 'process-ready')
      .map((line) => line.pid ?? 0);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await until('every child to be gone', () => (pids.every((pid) => !alive(pid)) ? true : undefined), 20_000);
  }, 40_000);
});
