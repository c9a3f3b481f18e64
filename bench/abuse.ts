import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync, readdirSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../src/config.js';
import { mintDevelopmentToken, type Role } from '../src/auth/index.js';
import { readDevelopmentPrincipals } from '../src/db/seed/index.js';
import { spawnServer, waitUntilServing, type ServerProcess } from './processes.js';
import { createScratchDatabase, LOCAL_POSTGRES, writeReportSection, type ScratchDatabase } from './support.js';
import { reachable } from '../test/support/services.js';

/**
 * `npm run bench:abuse`: does the API keep serving everyone else while one
 * caller attacks it? `npm start` (the supervisor and its processes) runs
 * with the policy's own budgets; paced normal traffic from two accounts
 * runs for a window without attack, then for a window beside each attack
 * from another account, and again without attack at the end. For each
 * window: normal traffic's p50 and p99 and their ratio to the first
 * baseline, its errors, what the attacker got, the peak resident memory of
 * each process against its cap, and whether any process was restarted.
 * Bounded: every window lasts --seconds, the attacker has --attackers
 * requests in flight. Writes its section of bench/BENCHMARKS.md.
 */

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEFAULT_OUT = fileURLToPath(new URL('./BENCHMARKS.md', import.meta.url));
const SECTION_START = '<!-- bench:abuse:start (written by npm run bench:abuse) -->';
const SECTION_END = '<!-- bench:abuse:end -->';
const LOCAL_REDIS = 'redis://127.0.0.1:6379';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '12' },
    rounds: { type: 'string', default: '3' },
    rate: { type: 'string', default: '8' },
    attackers: { type: 'string', default: '8' },
    'heap-mb': { type: 'string', default: '512' },
    database: { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string', default: DEFAULT_OUT },
  },
});
const WINDOW_MS = Number(values.seconds) * 1000;
const RATE = Number(values.rate);
const ATTACKERS = Number(values.attackers);
const HEAP_MB = Number(values['heap-mb']);
const ROUNDS = Number(values.rounds);

function log(message: string): void {
  process.stderr.write(`[abuse] ${message}\n`);
}

function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

// ---------------------------------------------------------------------------
// The attacks: what one account with a valid token can send
// ---------------------------------------------------------------------------

interface Attack {
  name: string;
  what: string;
  /** The subgraph the attack goes to straight, instead of the gateway. */
  subgraph?: 'patient' | 'clinical' | 'billing';
  query: string;
  variables?: Record<string, unknown>;
  role?: Role;
}

function fanOut(levels: number, width: number): string {
  const fragments: string[] = [];
  for (let level = 0; level < levels; level += 1) {
    const next = level + 1 < levels ? Array.from({ length: width }, (_, index) => `a${index}: encounters { edges { node { patient { ...F${level + 1} } } } }`).join(' ') : 'id';
    fragments.push(`fragment F${level} on Patient { ${next} }`);
  }
  return `query FanOut($id: ID!) { patient(id: $id) { ...F0 } } ${fragments.join(' ')}`;
}

function attacks(patientId: string): Attack[] {
  const anyPatient = { id: patientId };
  return [
    { name: 'fragment fan-out', what: 'nested fragments, 14 levels of 4 aliases (2.2 KB; 4^14 fields expanded)', query: fanOut(14, 4), variables: anyPatient },
    { name: 'token flood', what: '100,000 tokens in one document', query: `{ viewer { ${'subject '.repeat(100_000)} } }` },
    { name: 'alias flood', what: '500 aliases of a list', query: `{ ${Array.from({ length: 500 }, (_, index) => `p${index}: patients(first: 10) { edges { node { id } } }`).join(' ')} }` },
    { name: 'directive flood', what: '2,000 @include directives on one field', query: `{ viewer { subject ${'@include(if: true) '.repeat(2_000)} } }` },
    { name: 'list product', what: '50 aliases of 1,000 patients x 100 encounters', query: `{ ${Array.from({ length: 50 }, (_, index) => `p${index}: patients(first: 1000) { edges { node { id encounters(first: 100) { edges { node { id status } } } } } }`).join(' ')} }` },
    { name: 'mutation batch', what: '500 aliased writes in one request', query: `mutation { ${Array.from({ length: 500 }, (_, index) => `w${index}: updateMyContact(input: { phone: "+1555000${String(index).padStart(4, '0')}" }) { ok }`).join(' ')} }` },
    {
      name: 'entities flood',
      what: '_entities with 5,000 representations, straight to the clinical subgraph',
      subgraph: 'clinical',
      query: 'query($r: [_Any!]!) { _entities(representations: $r) { ... on Patient { conditions(first: 10) { edges { node { id } } } } } }',
      variables: { r: Array.from({ length: 5_000 }, () => ({ __typename: 'Patient', id: patientId })) },
    },
    { name: 'request flood', what: 'a cheap valid query, as fast as 8 connections go (budget: requests per minute, in flight)', query: '{ viewer { subject } }' },
    {
      name: 'heaviest allowed',
      what: 'valid queries just under the clinician cost budget (30 patients x 100 encounters: cost 9,212 of 10,000), as fast as the budgets over time let',
      query: '{ patients(first: 30) { edges { node { id name { text } birthDate encounters(first: 100) { edges { node { id status } } } } } } }',
    },
  ];
}

// ---------------------------------------------------------------------------
// Processes and memory
// ---------------------------------------------------------------------------

interface GroupProcess {
  pid: number;
  label: string;
}

/** The processes of the server's group, labelled by what they serve (from their command lines). */
function groupProcesses(group: number): GroupProcess[] {
  const found: GroupProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) !== group || state === 'Z') continue;
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (!args.some((arg) => arg.endsWith('main.ts'))) continue;
      const subgraph = args.indexOf('--subgraph');
      const label = subgraph >= 0 ? (args[subgraph + 1] ?? 'subgraph') : args.includes('--subgraphs') ? 'subgraphs' : args.includes('--gateway') ? 'gateway' : args.includes('--prepare') ? 'prepare' : 'supervisor';
      found.push({ pid: Number(entry), label });
    } catch {
      // gone meanwhile
    }
  }
  return found.filter((candidate, index, all) => all.findIndex((other) => other.label === candidate.label) === index || candidate.label === 'supervisor');
}

function rssMiB(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Samples every process's RSS every 200 ms until stopped; returns the peak per label. */
function sampleMemory(group: number): () => Record<string, number> {
  const peaks: Record<string, number> = {};
  const timer = setInterval(() => {
    for (const { pid, label } of groupProcesses(group)) peaks[label] = Math.max(peaks[label] ?? 0, rssMiB(pid));
  }, 200);
  return () => {
    clearInterval(timer);
    return peaks;
  };
}

// ---------------------------------------------------------------------------
// Traffic
// ---------------------------------------------------------------------------

interface NormalClient {
  name: string;
  token: string;
  query: string;
  variables?: Record<string, unknown>;
}

interface NormalResult {
  latencies: number[];
  errors: number;
  statuses: Record<string, number>;
}

/** `body`: the JSON request, serialized once by the caller (the attacker's own CPU is the machine's too: it should not pay for a large body again and again). */
async function postBody(url: string, token: string, body: string): Promise<{ status: number; ok: boolean; code?: string }> {
  try {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body });
    const answer = (await response.json().catch(() => null)) as { errors?: { extensions?: { code?: string } }[] } | null;
    const code = answer?.errors?.[0]?.extensions?.code;
    return { status: response.status, ok: response.status === 200 && !answer?.errors, ...(code && { code }) };
  } catch {
    return { status: 0, ok: false, code: 'NETWORK' };
  }
}

function post(url: string, token: string, query: string, variables?: Record<string, unknown>): Promise<{ status: number; ok: boolean; code?: string }> {
  return postBody(url, token, JSON.stringify({ query, variables }));
}

/** Paced (open loop): each client sends RATE requests a second whatever the answers take, so a slow answer shows in the latency. */
async function runNormal(url: string, clients: readonly NormalClient[], windowMs: number): Promise<NormalResult> {
  const result: NormalResult = { latencies: [], errors: 0, statuses: {} };
  const pending: Promise<void>[] = [];
  const started = performance.now();
  const interval = 1000 / RATE;
  for (let tick = 0; performance.now() - started < windowMs; tick += 1) {
    for (const client of clients) {
      pending.push(
        (async () => {
          const sent = performance.now();
          const answer = await post(url, client.token, client.query, client.variables);
          result.latencies.push(performance.now() - sent);
          result.statuses[String(answer.status)] = (result.statuses[String(answer.status)] ?? 0) + 1;
          if (!answer.ok) result.errors += 1;
        })(),
      );
    }
    const next = started + (tick + 1) * interval;
    await new Promise((done) => setTimeout(done, Math.max(0, next - performance.now())));
  }
  await Promise.all(pending);
  return result;
}

/** Closed loop: ATTACKERS requests in flight until the window ends. */
async function runAttack(url: string, token: string, attack: Attack, windowMs: number): Promise<{ requests: number; outcomes: Record<string, number> }> {
  const outcomes: Record<string, number> = {};
  let requests = 0;
  const until = performance.now() + windowMs;
  const body = JSON.stringify({ query: attack.query, variables: attack.variables });
  await Promise.all(
    Array.from({ length: ATTACKERS }, async () => {
      while (performance.now() < until) {
        const answer = await postBody(url, token, body);
        requests += 1;
        const key = `${answer.status}${answer.code ? ` ${answer.code}` : ''}`;
        outcomes[key] = (outcomes[key] ?? 0) + 1;
      }
    }),
  );
  return { requests, outcomes };
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

interface Row {
  /** CPU seconds this benchmark's own process (both clients) used in the window. */
  clientCpuSeconds: number;
  /** The attack's name, or null for a window without attack. */
  attack: string | null;
  /** The window without attack just before this one. */
  before: Row | null;
  scenario: string;
  what: string;
  attacker: string;
  normal: NormalResult;
  peaks: Record<string, number>;
  restarted: string[];
}

async function main(): Promise<void> {
  const usePostgres = values.database ? values.database === 'postgres' : await reachable(process.env['DATABASE_URL'] || LOCAL_POSTGRES);
  const redisUrl = (await reachable(process.env['REDIS_URL'] || LOCAL_REDIS)) ? process.env['REDIS_URL'] || LOCAL_REDIS : undefined;
  const scratch: ScratchDatabase | null = usePostgres ? await createScratchDatabase(process.env['DATABASE_URL'] || LOCAL_POSTGRES) : null;
  const dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-abuse-'));
  let server: ServerProcess | null = null;
  try {
    log(`starting npm start's supervisor (${usePostgres ? 'PostgreSQL' : 'PGlite'}, ${redisUrl ? 'Redis' : 'in-process cache'}, heap cap ${HEAP_MB} MiB per process)`);
    server = await spawnServer(['node_modules/.bin/tsx', 'src/main.ts'], {
      dataDir,
      ...(scratch && { databaseUrl: scratch.url }),
      ...(redisUrl && { redisUrl, redisKeyPrefix: `phi-graph-abuse:${Date.now()}:` }),
      budgets: 'policy',
      env: { PROCESS_HEAP_MB: String(HEAP_MB) },
    }, REPO_ROOT);
    await waitUntilServing(server, 180_000);
    const auth = loadConfig({ DATA_DIR: dataDir, NODE_ENV: 'development' }).auth;
    const principals = await readDevelopmentPrincipals(dataDir);
    if (!principals) throw new Error('the server seeded no development principals');
    const mint = (role: Role, subject: string) =>
      mintDevelopmentToken(auth, dataDir, { subject, roles: [role], organizationId: principals[role].organizationId, patientId: principals[role].patientId, mfa: true, ttl: '2h' });
    const clinician = await mint('clinician', principals.clinician.subject);
    const nurse = await mint('nurse', principals.nurse.subject);
    const patientId = principals.patient.patientId ?? '';
    const normal: NormalClient[] = [
      { name: 'clinician list', token: clinician, query: 'query List { patients(first: 10) { edges { node { id name { text } birthDate gender } } } }' },
      { name: 'nurse chart', token: nurse, query: 'query Chart { patients(first: 3) { edges { node { id name { text } encounters(first: 5) { edges { node { id status } } } conditions(first: 5) { edges { node { id } } } } } } }' },
    ];
    for (const client of normal) {
      const check = await post(server.gatewayUrl, client.token, client.query);
      if (!check.ok) throw new Error(`normal traffic "${client.name}" fails before any attack: HTTP ${check.status} ${check.code ?? ''}`);
    }
    const pidsBefore = new Map(groupProcesses(server.pid).map(({ label, pid }) => [label, pid]));
    const rows: Row[] = [];
    const runWindow = async (scenario: string, what: string, attack: Attack | null): Promise<Row> => {
      const group = server?.pid ?? 0;
      const stopSampling = sampleMemory(group);
      const attackerToken = attack ? await mint(attack.role ?? 'clinician', `bench:attacker:${scenario}:${Date.now()}`) : '';
      const url = attack?.subgraph ? (server?.subgraphUrls[attack.subgraph] ?? '') : (server?.gatewayUrl ?? '');
      const cpuBefore = process.cpuUsage();
      const [normalResult, attackResult] = await Promise.all([runNormal(server?.gatewayUrl ?? '', normal, WINDOW_MS), attack ? runAttack(url, attackerToken, attack, WINDOW_MS) : null]);
      const cpu = process.cpuUsage(cpuBefore);
      const clientCpuSeconds = (cpu.user + cpu.system) / 1e6;
      const peaks = stopSampling();
      const now = new Map(groupProcesses(group).map(({ label, pid }) => [label, pid]));
      const restarted = [...pidsBefore].filter(([label, pid]) => label !== 'prepare' && now.get(label) !== pid).map(([label]) => label);
      for (const [label, pid] of now) pidsBefore.set(label, pid);
      const attacker = attackResult ? `${attackResult.requests} sent: ${Object.entries(attackResult.outcomes).map(([key, count]) => `${count}× ${key}`).join(', ')}` : '';
      const row: Row = { scenario, what, attacker, normal: normalResult, peaks, restarted, clientCpuSeconds, attack: attack?.name ?? null, before: null };
      rows.push(row);
      log(`${scenario}: normal p50 ${percentile(normalResult.latencies, 50).toFixed(1)} ms, p99 ${percentile(normalResult.latencies, 99).toFixed(1)} ms, ${normalResult.errors} errors; ${attacker}`);
      // Let the attacker's in-flight work drain before the next window.
      await new Promise((done) => setTimeout(done, 2_000));
      return row;
    };

    log('warming up (not counted)');
    await runNormal(server.gatewayUrl, normal, Math.max(WINDOW_MS, 20_000));
    // Side by side: each attack right after a window without attack, and compared with that one (the shared machine drifts over a run).
    const selected = values.only ? new Set(values.only.split(',').map((name) => name.trim())) : null;
    for (let round = 1; round <= ROUNDS; round += 1) {
      for (const attack of attacks(patientId)) {
        if (selected && !selected.has(attack.name)) continue;
        const before = await runWindow(`no attack (round ${round}, before ${attack.name})`, 'normal traffic alone', null);
        const during = await runWindow(attack.name, attack.what, attack);
        during.before = before;
      }
    }
    await runWindow('no attack, at the end', 'normal traffic alone, after every attack', null);

    const report = render(rows, { usePostgres, redisUrl: !!redisUrl });
    process.stdout.write(`${report}\n`);
    if (values.out !== '-') await writeReportSection(resolve(values.out), SECTION_START, SECTION_END, `${SECTION_START}\n\n${report}\n\n${SECTION_END}`);
  } finally {
    await server?.stop();
    await scratch?.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

function render(rows: readonly Row[], setup: { usePostgres: boolean; redisUrl: boolean }): string {
  const quietP99s = rows.filter((row) => row.attack === null).map((row) => percentile(row.normal.latencies, 99));
  const labels = [...new Set(rows.flatMap((row) => Object.keys(row.peaks)))].filter((label) => label !== 'prepare');
  const median = (samples: number[]) => percentile(samples, 50);
  const lines = [
    '## Abuse: normal traffic while one account attacks (`npm run bench:abuse`)',
    '',
    `Command: \`npm run bench:abuse -- --seconds ${values.seconds} --rounds ${ROUNDS} --rate ${values.rate} --attackers ${values.attackers} --heap-mb ${values['heap-mb']}\`; ${setup.usePostgres ? 'PostgreSQL' : 'PGlite'}, ${setup.redisUrl ? 'Redis' : 'in-process cache'}; written ${new Date().toISOString()}; node ${process.version}, ${cpus().length} cores, load average ${loadavg().map((load) => load.toFixed(2)).join(' ')} at the end.`,
    '',
    `\`npm start\` (a supervisor, each process capped at ${HEAP_MB} MiB of heap), the policy's own budgets. Normal traffic: ${normalDescription()}, paced at ${RATE} requests a second each (open loop), through the gateway. Each attack: another account, ${ATTACKERS} requests in flight for ${values.seconds} s, right after a window of the same length without attack; ${ROUNDS} rounds of every attack. "p99 ×" is the attack window's normal p99 over that of the window just before it: the median of the rounds, and the lowest and highest. Windows without attack had a p99 from ${Math.min(...quietP99s).toFixed(0)} to ${Math.max(...quietP99s).toFixed(0)} ms (median ${median(quietP99s).toFixed(0)}): one p99 of ${2 * RATE * Number(values.seconds)} requests on a shared two-core machine moves that much by itself. The clients run on the same two cores as the API: the CPU they spend sending ("clients' CPU s", median per window, both clients) is taken from the API too. Peak RSS per process in MiB, the highest of any window of the attack (sampled every 200 ms).`,
    '',
    `| attack | normal errors | normal p50 ms | normal p99 ms | p99 × (median) | p99 × (lowest–highest) | ${labels.map((label) => `${label} RSS`).join(' | ')} | restarted | clients' CPU s | what the attacker got (last round) |`,
    `| --- | ---: | ---: | ---: | ---: | ---: | ${labels.map(() => '---:').join(' | ')} | --- | ---: | --- |`,
  ];
  const names = [...new Set(rows.flatMap((row) => (row.attack ? [row.attack] : [])))];
  for (const name of names) {
    const windows = rows.filter((row) => row.attack === name);
    const ratios = windows.map((row) => percentile(row.normal.latencies, 99) / percentile(row.before?.normal.latencies ?? [], 99));
    const last = windows[windows.length - 1];
    lines.push(
      `| ${name} | ${windows.reduce((sum, row) => sum + row.normal.errors, 0)} | ${median(windows.map((row) => percentile(row.normal.latencies, 50))).toFixed(1)} | ${median(windows.map((row) => percentile(row.normal.latencies, 99))).toFixed(1)} | ${median(ratios).toFixed(2)} | ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)} | ${labels.map((label) => Math.max(...windows.map((row) => row.peaks[label] ?? 0)).toFixed(0)).join(' | ')} | ${[...new Set(windows.flatMap((row) => row.restarted))].join(', ') || 'none'} | ${median(windows.map((row) => row.clientCpuSeconds)).toFixed(1)} | ${last?.attacker ?? '—'} |`,
    );
  }
  const quietRows = rows.filter((row) => row.attack === null);
  lines.push(
    `| (no attack) | ${quietRows.reduce((sum, row) => sum + row.normal.errors, 0)} | ${median(quietRows.map((row) => percentile(row.normal.latencies, 50))).toFixed(1)} | ${median(quietP99s).toFixed(1)} | | | ${labels.map((label) => Math.max(...quietRows.map((row) => row.peaks[label] ?? 0)).toFixed(0)).join(' | ')} | ${[...new Set(quietRows.flatMap((row) => row.restarted))].join(', ') || 'none'} | ${median(quietRows.map((row) => row.clientCpuSeconds)).toFixed(1)} | — |`,
  );
  lines.push('', 'The attacks:', '');
  for (const name of names) lines.push(`- **${name}**: ${rows.find((row) => row.attack === name)?.what ?? ''}.`);
  return lines.join('\n');
}

function normalDescription(): string {
  return 'a clinician listing 10 patients and a nurse reading 3 charts (encounters and conditions, two subgraphs)';
}

await main();
