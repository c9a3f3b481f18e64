import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../src/config.js';
import { DEVELOPMENT_KEY_FILE, mintDevelopmentToken, type Role } from '../src/auth/index.js';

/**
 * The API in a process of its own, as an operator runs it: free loopback
 * ports, a child process in its own process group (stopped with SIGTERM to
 * the group, as a terminal's Ctrl-C or a supervisor would), the moment its
 * gateway first answers, and its resident memory from /proc.
 */

/**
 * Budgets over time for the benchmarks: one token sends thousands of
 * requests a minute, far past any role's budget. The counters still run
 * (their cost is measured); they just never refuse.
 */
export const BENCH_BUDGETS = {
  RATE_LIMIT_REQUESTS_PER_MINUTE: '100000000',
  RATE_LIMIT_IN_FLIGHT: '100000',
  RATE_LIMIT_PATIENTS_PER_HOUR: '100000000',
} as const;

/** The environment variables src/config.ts reads: a child gets only those the benchmark sets, never the caller's. */
const CONFIG_VARIABLES = [
  'RATE_LIMIT_REQUESTS_PER_MINUTE', 'RATE_LIMIT_IN_FLIGHT', 'RATE_LIMIT_PATIENTS_PER_HOUR',
  'NODE_ENV', 'HOST', 'PORT', 'SUBGRAPH_HOST', 'PATIENT_SUBGRAPH_PORT', 'CLINICAL_SUBGRAPH_PORT', 'BILLING_SUBGRAPH_PORT',
  'PATIENT_SUBGRAPH_URL', 'CLINICAL_SUBGRAPH_URL', 'BILLING_SUBGRAPH_URL', 'DATABASE_URL', 'DATA_DIR', 'REDIS_URL', 'REDIS_KEY_PREFIX',
  'AUTH_ISSUER', 'AUTH_AUDIENCE', 'AUTH_JWKS_URL', 'AUTH_PUBLIC_KEY', 'AUTH_ALGORITHMS', 'PHI_KEY_RING', 'PHI_KEY_RING_FILE', 'PHI_KMS', 'PHI_NATIVE_CRYPTO', 'PKCS11_MODULE', 'PKCS11_TOKEN_LABEL', 'PKCS11_SLOT',
  'PKCS11_PIN_FILE', 'PKCS11_PIN', 'PKCS11_KEY_LABEL_PREFIX', 'KEY_REFRESH_SECONDS', 'AUDIT_SIGNING_KEY', 'AUDIT_CHECKPOINT_SECONDS', 'ALERT_DISTINCT_PATIENTS_PER_HOUR',
  'ALERT_DENIED_FIELDS_PER_HOUR', 'ALERT_SSN_READS_PER_HOUR', 'AUDIT_RETENTION_DAYS', 'LOG_LEVEL', 'SEED_PATIENTS',
  'GATEWAY_SUBGRAPH_TIMEOUT_MS', 'REQUEST_DEADLINE_MS', 'RESPONSE_MAX_BYTES', 'PROCESS_HEAP_MB', 'PROCESS_SEMI_SPACE_MB',
  'DATABASE_STATEMENT_TIMEOUT_MS', 'DATABASE_LOCK_TIMEOUT_MS', 'DATABASE_ACQUIRE_TIMEOUT_MS',
  'OPERATION_MAX_DOCUMENT_BYTES', 'OPERATION_MAX_TOKENS', 'OPERATION_MAX_DEPTH', 'OPERATION_MAX_ALIASES', 'OPERATION_MAX_DIRECTIVES',
  'OPERATION_MAX_ROOT_FIELDS', 'OPERATION_MAX_ENTITIES', 'OPERATION_MAX_COST',
] as const;

/** How long a stopped server may take to finish in-flight requests and exit before it is killed. */
const STOP_GRACE_MS = 15_000;
/** How often the gateway is polled while a server starts. */
const POLL_INTERVAL_MS = 25;

/** `count` distinct free TCP ports on 127.0.0.1 (held open together while they are picked, so they differ). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('a free port could not be read');
    return address.port;
  });
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

export interface ServerSettings {
  /** The data folder: key ring, signing key, principals; PGlite's database when no URL is given. */
  dataDir: string;
  databaseUrl?: string;
  redisUrl?: string;
  redisKeyPrefix?: string;
  /** Patients to seed into an empty database (unset: the server's default). */
  seedPatients?: number;
  /** `bench` (the default): BENCH_BUDGETS, budgets that never refuse; `policy`: each role's own budgets, as deployed. */
  budgets?: 'bench' | 'policy';
  /** More configuration for the child (variables of src/config.ts). */
  env?: Record<string, string>;
}

export interface ServerProcess {
  pid: number;
  /** performance.now() just before the process was spawned. */
  spawnedAt: number;
  gatewayUrl: string;
  subgraphUrls: { patient: string; clinical: string; billing: string };
  dataDir: string;
  /** The last lines the process wrote, for error messages. */
  output(): string;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * SIGTERM to the process group, then SIGKILL to what is left of it after
   * STOP_GRACE_MS; resolves with how the spawned process exited once the
   * whole group is gone. Safe to call twice.
   */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Spawns `command` (e.g. `npm start`, or node with its flags and
 * src/main.ts) in the repository, in its own process group, on fresh free
 * ports, with the configuration of `settings` and nothing else of the
 * caller's configuration; LOG_LEVEL=silent.
 */
export async function spawnServer(command: readonly string[], settings: ServerSettings, cwd: string): Promise<ServerProcess> {
  const [gatewayPort, patientPort, clinicalPort, billingPort] = (await freePorts(4)) as [number, number, number, number];
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of CONFIG_VARIABLES) delete env[name];
  Object.assign(env, {
    PORT: String(gatewayPort),
    PATIENT_SUBGRAPH_PORT: String(patientPort),
    CLINICAL_SUBGRAPH_PORT: String(clinicalPort),
    BILLING_SUBGRAPH_PORT: String(billingPort),
    DATA_DIR: settings.dataDir,
    LOG_LEVEL: 'silent',
    ...(settings.budgets !== 'policy' && BENCH_BUDGETS),
    ...settings.env,
    ...(settings.databaseUrl && { DATABASE_URL: settings.databaseUrl }),
    ...(settings.redisUrl && { REDIS_URL: settings.redisUrl }),
    ...(settings.redisKeyPrefix && { REDIS_KEY_PREFIX: settings.redisKeyPrefix }),
    ...(settings.seedPatients !== undefined && { SEED_PATIENTS: String(settings.seedPatients) }),
  });
  const [file, ...args] = command;
  if (!file) throw new Error('no command to spawn');
  const spawnedAt = performance.now();
  const child = spawn(file, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    lines.splice(0, Math.max(0, lines.length - 40));
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${command.join(' ')} did not start`);
  const url = (port: number) => `http://127.0.0.1:${port}/graphql`;
  return {
    pid,
    spawnedAt,
    gatewayUrl: url(gatewayPort),
    subgraphUrls: { patient: url(patientPort), clinical: url(clinicalPort), billing: url(billingPort) },
    dataDir: settings.dataDir,
    output: () => lines.join('\n'),
    exited,
    stop: () => stopGroup(child, exited),
  };
}

async function stopGroup(child: ChildProcess, exited: ServerProcess['exited']): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const group = child.pid as number;
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-group, signal);
    } catch {
      // The group is gone already.
    }
  };
  if (groupAlive(group)) signalGroup('SIGTERM');
  const deadline = performance.now() + STOP_GRACE_MS;
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([exited, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), STOP_GRACE_MS)))]);
  clearTimeout(timer);
  // npm (or a shell) exits before the server it started: wait for the whole group to finish shutting down.
  while (groupAlive(group) && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  if (groupAlive(group)) signalGroup('SIGKILL');
  return exit ?? (await exited);
}

/** Whether a process of the group still runs (zombies, which have exited, do not count). Linux: /proc. */
function groupAlive(group: number): boolean {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so read after the last ')'.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === group && state !== 'Z') return true;
  }
  return false;
}

/**
 * Polls the gateway until it answers `{ viewer { subject } }` with a token
 * of `role`, minted with the signing key of the server's data folder once
 * the server has written it (minting earlier would create the key itself).
 * Returns when it answered, in ms of performance.now().
 */
export async function waitUntilServing(server: ServerProcess, timeoutMs: number, role: Role = 'admin'): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  const auth = loadConfig({ DATA_DIR: server.dataDir, NODE_ENV: 'development' }).auth;
  let token: string | undefined;
  let exited = false;
  void server.exited.then(() => (exited = true));
  let lastProblem = 'no answer yet';
  while (performance.now() < deadline) {
    if (exited) throw new Error(`the server exited before it served a request:\n${server.output()}`);
    token ??= await mintOnceKeyExists(server.dataDir, auth, role);
    if (token) {
      try {
        const response = await fetch(server.gatewayUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ query: '{ viewer { subject roles } }' }),
        });
        const body = (await response.json()) as { data?: { viewer?: { subject?: string } }; errors?: unknown[] };
        if (response.status === 200 && body.data?.viewer?.subject && !body.errors) return performance.now();
        lastProblem = `HTTP ${response.status}: ${JSON.stringify(body).slice(0, 300)}`;
      } catch (error) {
        lastProblem = (error as Error).message;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
  throw new Error(`the server did not serve within ${timeoutMs / 1000} s (${lastProblem}):\n${server.output()}`);
}

async function mintOnceKeyExists(dataDir: string, auth: ReturnType<typeof loadConfig>['auth'], role: Role): Promise<string | undefined> {
  try {
    // A complete key file parses; one being written does not yet.
    JSON.parse(await readFile(join(dataDir, DEVELOPMENT_KEY_FILE), 'utf8'));
  } catch {
    return undefined;
  }
  return mintDevelopmentToken(auth, dataDir, { subject: 'bench:startup', roles: [role], organizationId: null, patientId: null, mfa: true, ttl: '1h' });
}

/** Resident memory of a process, from /proc/<pid>/status (Linux), in MiB. */
export interface MemorySample {
  /** VmRSS: resident now. */
  rssMiB: number;
  /** VmHWM: the peak resident size so far. */
  peakMiB: number;
}

/** Read synchronously: it takes microseconds, and a sample is then taken exactly where it is asked for. */
export function readMemory(pid: number): MemorySample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!match) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(match[1]) / 1024;
  };
  return { rssMiB: kib('VmRSS'), peakMiB: kib('VmHWM') };
}
