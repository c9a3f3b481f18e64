/**
 * The benchmark suite (issue 6): what protection costs, end to end, over
 * HTTP, on 10,000 seeded patients. Four variants of the same API run at
 * once, each on its own copy of one seeded database, and are measured in
 * the same run, interleaved:
 *
 *   unprotected    no field rules, no masking, no audit trail, a plaintext copy of the data (no decryption)
 *   authorization  field rules and masking; plaintext copy, no audit trail
 *   encryption     field rules and masking; encrypted copy (decryption), no audit trail
 *   full           all of it: field rules, masking, decryption and the audit trail (the API as it runs)
 *
 * Then: requests per second at a fixed concurrency, SQL statements per
 * request against the list size, workload 1 at 10x the patients, the full
 * API's memory over 20,000 requests and its CPU profile in a process of its
 * own, and how long `npm start` takes to serve. The report goes to stdout
 * and bench/BENCHMARKS.md; `--check` exits 1 when the budget (bench/budget.ts)
 * is exceeded or SQL statements per request grow with the list size.
 *
 *   npm run bench -- [--patients 10000] [--rounds 12] [--warmup 2] [--concurrency 4]
 *                    [--database pglite|postgres] [--only partner,dashboard,...]
 *                    [--skip throughput,statements,scale,memory,profile,startup]
 *                    [--check] [--out PATH|-] [--json PATH] ...
 *
 * See bench/README.md for the options and how to read the report.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, totalmem } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { DEFAULT_PROCESS_SEMI_SPACE_MB } from '../src/config.js';
import { CRYPTO_VERSION_ENCRYPTED } from '../src/db/encryption.js';
import { openDatabase, type Database } from '../src/db/index.js';
import { PATIENT_TABLES } from '../src/db/seed/generate.js';
import {
  compact,
  connectionResets,
  cryptoVersions,
  describeDatabase,
  expectOnly,
  formatMs,
  integer,
  isConnectionReset,
  loadAverage,
  loopRequest,
  markdownTable,
  median,
  metaLines,
  parseBenchOptions,
  percentile,
  prepareWorkload,
  progress,
  roundRatios,
  runClosedLoop,
  runInterleaved,
  runMain,
  runMeta,
  runWorkloads,
  startRun,
  startVariantOnCopy,
  startVariantsOnCopies,
  storeAsPlaintext,
  summarize,
  timedPost,
  UsageError,
  writeJson,
  type BenchOptions,
  type CopiesStack,
  type DatabaseCopy,
  type MainControl,
  type Meta,
  type PreparedWorkload,
  type Variant,
  type VariantSpec,
  type Workload,
  type WorkloadResult,
} from './support.js';
import { countCell } from './report.js';
import { BUDGET, budgetHolds, budgetTable, checkBudget, TARGETS, targetTable, type BudgetLine, type TargetLine } from './budget.js';
import { growByCopying, type Growth, type PatientTable } from './grow.js';
import { findMainProfile, summarizeProfile, type CostEntry, type ProfileSummary } from './profile.js';
import { readMemory, spawnServer, waitUntilServing, type MemorySample, type ServerProcess, type ServerSettings } from './processes.js';
import { LIST_FIELDS, buildContext, chart, dashboard, mrnLookup, partnerPage, type Context } from './workloads.js';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEFAULT_OUT = fileURLToPath(new URL('./BENCHMARKS.md', import.meta.url));

/** Where the generated report ends in the output file: what follows (the engineers' reading of the figures) is kept on every run. */
const ANALYSIS_MARKER = '<!-- Written by hand below this line: kept when npm run bench rewrites the report above. -->';

async function keptAnalysis(path: string): Promise<string> {
  const existing = await readFile(path, 'utf8').catch(() => '');
  const at = existing.indexOf(ANALYSIS_MARKER);
  return at === -1 ? '' : `\n${existing.slice(at)}`;
}

// ---------------------------------------------------------------------------
// Variants
// ---------------------------------------------------------------------------

const UNPROTECTED = 'unprotected';
const AUTHORIZATION = 'authorization';
const ENCRYPTION = 'encryption';
const FULL = 'full';

/** A variant and the form its copy of the data is stored in. */
interface SuiteVariant extends VariantSpec {
  stored: 'plaintext' | 'encrypted';
  /** What the variant runs and what it leaves out, for the report. */
  description: string;
}

const VARIANTS: SuiteVariant[] = [
  { name: UNPROTECTED, unprotected: true, unaudited: true, plaintext: true, stored: 'plaintext', description: 'no field rules or masking, no audit trail, plaintext copy (no decryption)' },
  { name: AUTHORIZATION, unprotected: false, unaudited: true, plaintext: true, stored: 'plaintext', description: 'field rules and masking; plaintext copy, no audit trail' },
  { name: ENCRYPTION, unprotected: false, unaudited: true, stored: 'encrypted', description: 'field rules, masking and decryption; no audit trail' },
  { name: FULL, unprotected: false, unaudited: false, stored: 'encrypted', description: 'field rules, masking, decryption and the audit trail: the API as it runs' },
];
/** Ratios are variant / BASELINE. */
const BASELINE = UNPROTECTED;
const NAMES = VARIANTS.map((variant) => variant.name);

/** Copies of the seeded database made besides the variants': one to grow, one for the full API in a child process. */
const SCALE_COPY = 'scale';
const PROCESS_COPY = 'process';

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

const PHASES = ['throughput', 'statements', 'scale', 'memory', 'profile', 'startup'] as const;
type Phase = (typeof PHASES)[number];

/** Which tables the scale phase grows: the ones workload 1 reads, or every patient table. */
const SCALE_TABLES: Record<'read' | 'all', readonly PatientTable[]> = {
  read: ['patient', 'consent', 'medication_request', 'allergy_intolerance', 'coverage'],
  all: PATIENT_TABLES,
};

interface Options extends BenchOptions {
  concurrency: number;
  /** Requests per workload and variant in the throughput phase: as many as the unprotected variant answers one at a time in this many seconds. */
  throughputSeconds: number;
  /** Report path, or undefined for none (`--out -`). */
  out: string | undefined;
  check: boolean;
  /** 0: no scale phase. */
  scalePatients: number;
  scaleTables: keyof typeof SCALE_TABLES;
  memoryRequests: number;
  profileRequests: number;
  /** Folder for the .cpuprofile; a new temporary folder (kept) when unset. */
  profileOut: string | undefined;
  skip: Set<Phase>;
}

const USAGE = `usage: npm run bench -- [--patients N] [--rounds N] [--warmup N] [--concurrency N] [--throughput-seconds S]
                      [--database pglite|postgres] [--only NAME,...] [--skip ${PHASES.join(',')}]
                      [--scale-patients N (0: skip)] [--scale-tables read|all] [--memory-requests N]
                      [--profile-requests N] [--profile-out DIR] [--out PATH|-] [--json PATH] [--check]`;

function parseOptions(argv: string[]): Options {
  const { extra, flags, ...options } = parseBenchOptions(argv, {
    usage: USAGE,
    patients: '10000',
    rounds: '20',
    warmup: '2',
    workloads: WORKLOADS.map((workload) => workload.name),
    extra: {
      concurrency: '4',
      'throughput-seconds': '3',
      out: DEFAULT_OUT,
      'scale-patients': '100000',
      'scale-tables': 'read',
      'memory-requests': '20000',
      'profile-requests': '10',
      'profile-out': '',
      skip: '',
    },
    flags: ['check'],
  });
  const skip = (extra.skip || '').split(',').map((name) => name.trim()).filter(Boolean);
  const unknown = skip.filter((name) => !(PHASES as readonly string[]).includes(name));
  if (unknown.length > 0) throw new UsageError(`unknown phase(s) to skip: ${unknown.join(', ')}; known: ${PHASES.join(', ')}`);
  const scaleTables = extra['scale-tables'];
  if (scaleTables !== 'read' && scaleTables !== 'all') throw new UsageError(`--scale-tables must be read or all, got ${scaleTables}`);
  const throughputSeconds = Number(extra['throughput-seconds']);
  if (!(throughputSeconds > 0)) throw new UsageError(`--throughput-seconds must be a number above 0, got ${extra['throughput-seconds']}`);
  return {
    ...options,
    concurrency: integer('concurrency', extra.concurrency, 1),
    throughputSeconds,
    out: extra.out === '-' ? undefined : resolve(extra.out),
    check: flags['check'] === true,
    scalePatients: integer('scale-patients', extra['scale-patients'], 0),
    scaleTables,
    memoryRequests: integer('memory-requests', extra['memory-requests'], 1),
    profileRequests: integer('profile-requests', extra['profile-requests'], 1),
    profileOut: extra['profile-out'] ? resolve(extra['profile-out']) : undefined,
    skip: new Set(skip as Phase[]),
  };
}

// ---------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------

/** Ten patient fields: the billing list's eight, the organization (a second entity) and the SSN (masked for billing: the masking step runs). */
const DASHBOARD_FIELDS = `${LIST_FIELDS} managingOrganization { name } ssn`;
/** The partner page's size (workload 1). */
const PARTNER_PAGE = 50;
/** The chart: six lists from the clinical and billing subgraphs, an @encrypted field in four of them. */
const CHART_LISTS = {
  encounters: 'id status class period { start end }',
  conditions: 'id clinicalStatus code { code display } onsetDate',
  medicationRequests: 'id status medication { code display } authoredOn',
  observations: 'id code { code display } value unit effectiveAt',
  coverages: 'id payer plan status memberId period { start end }',
  claims: 'id status total { decimal currency } diagnosisCodes createdAt',
} as const;

function partnerWorkload(size: number, name?: string): Workload<Context> {
  return partnerPage({
    ...(name && { name }),
    size,
    description: `partner: patients(first: ${size}) with 8 fields, 3 of them @encrypted (name, birthDate, phone), and three short lists from the clinical and billing subgraphs, through the gateway`,
    sameBody: true,
  });
}

function dashboardWorkload(target: 'gateway' | 'patient', size?: number, name?: string): Workload<Context> {
  const where = target === 'gateway' ? 'through the gateway' : 'straight to the patient subgraph';
  return dashboard({
    name: name ?? (target === 'gateway' ? 'dashboard' : 'dashboard-subgraph'),
    description: `billing: patients(first: ${size ?? 1000}) with 10 fields (SSN masked), ${where}`,
    fields: DASHBOARD_FIELDS,
    target,
    ...(size !== undefined && { size }),
  });
}

const WORKLOADS: Workload<Context>[] = [
  partnerWorkload(PARTNER_PAGE),
  dashboardWorkload('gateway'),
  dashboardWorkload('patient'),
  chart({
    description: 'patient: their own record with encounters, conditions, medicationRequests, observations, coverages and claims (first 10 of each), across all three subgraphs through the gateway',
    lists: CHART_LISTS,
    // The patient is the one role that reads all six lists: clinicians read no claims, billing no clinical lists.
    role: 'patient',
    sameBody: true,
    notes: ['sample patient, own token (the one role allowed all six lists: clinicians read no claims, billing no clinical data)'],
  }),
  mrnLookup({ description: 'billing: patientByMrn through the blind index, 5 fields, through the gateway', sameBody: true }),
];

// ---------------------------------------------------------------------------
// The copies and the checks that the variants are what they say
// ---------------------------------------------------------------------------

/** Rows per UPDATE when a copy is rewritten as plaintext (patient rows bind 11 values each: far below the drivers' limits). */
const PLAINTEXT_BATCH = 1000;

interface CopyFacts {
  /** Rows rewritten as plaintext, per table, in each plaintext copy. */
  converted: Record<string, number>;
  seconds: number;
}

/**
 * The plaintext variants' copies rewritten as plaintext (crypto_version 0),
 * every variant's copy compacted alike, and each checked to hold only the
 * form its variant says.
 */
async function prepareCopies(stack: CopiesStack): Promise<CopyFacts> {
  const started = performance.now();
  // The APIs are running, so they will not encrypt these rows again (they do so at start only).
  // Both copies at once: one decrypts in this process while the database writes the other's batch.
  const conversions = await Promise.all(
    VARIANTS.flatMap((spec, index) => {
      if (spec.stored !== 'plaintext') return [];
      const api = stack.apis[index];
      if (!api?.db || !api.sealer) throw new Error(`the "${spec.name}" API has no database or cipher`);
      return [storeAsPlaintext(api.db, api.sealer.cipher, PLAINTEXT_BATCH, (message) => progress(`${spec.name}: ${message}`))];
    }),
  );
  const converted = conversions[0] ?? {};
  // All four at once: each copy is its own database, so the server spreads the work over its cores.
  await Promise.all(
    VARIANTS.map(async (spec, index) => {
      const db = stack.apis[index]?.db as Database;
      await compact(db);
      // Every table's statistics, not only the rewritten ones': the plans are then made alike on every copy.
      await db.fork().execute('analyze', [], 'run');
      expectOnly(await cryptoVersions(db), spec.stored === 'plaintext' ? 0 : CRYPTO_VERSION_ENCRYPTED, spec.name);
    }),
  );
  progress('copies compacted and analyzed; plaintext copies hold crypto_version 0 only, encrypted copies 1 only');
  return { converted, seconds: (performance.now() - started) / 1000 };
}

/** The masked form of an SSN (ssnLast4) and the stored form. */
const MASKED_SSN = /^\*\*\*-\*\*-\d{4}$/;
const PLAIN_SSN = /^\d{3}-\d{2}-\d{4}$/;

/**
 * Before anything is timed, one request to each variant: billing reads the
 * sample patient's SSN, which only the unprotected variant returns
 * unmasked, and only the full variant writes an audit batch for it.
 */
async function checkVariants(stack: CopiesStack): Promise<void> {
  const patientId = stack.principals.patient.patientId;
  const token = await stack.token('billing', { organizationId: stack.principals.patient.organizationId });
  for (const variant of stack.variants) {
    const spec = VARIANTS.find((candidate) => candidate.name === variant.name) as SuiteVariant;
    const writes = variant.auditMetrics.writes;
    const response = await timedPost(variant.gatewayUrl, token, 'query Probe($id: ID!) { patient(id: $id) { id ssn } }', { id: patientId });
    const ssn = (response.body.data?.['patient'] as { ssn?: string | null } | null)?.ssn ?? '';
    const audited = variant.auditMetrics.writes - writes;
    const problems = [
      ...(response.status !== 200 || response.body.errors ? [`the probe failed: ${response.text.slice(0, 300)}`] : []),
      ...(spec.unprotected && !PLAIN_SSN.test(ssn) ? ['it masked the SSN'] : []),
      ...(!spec.unprotected && !MASKED_SSN.test(ssn) ? ['it did not mask the SSN'] : []),
      ...(spec.unaudited && audited !== 0 ? [`it wrote ${audited} audit batch(es)`] : []),
      ...(!spec.unaudited && audited < 1 ? ['it wrote no audit batch'] : []),
    ];
    if (problems.length > 0) throw new Error(`variant "${variant.name}" is not what it says (${spec.description}): ${problems.join('; ')}`);
  }
  progress('variants checked: only unprotected returns the SSN unmasked, only full writes audit batches');
}

/** Plaintext copies never decrypt; encrypted ones decrypt on every request (every workload reads an @encrypted field). */
function checkDecryptions(result: WorkloadResult): void {
  for (const spec of VARIANTS) {
    const summary = summarize(result.samples[spec.name] ?? []);
    if (spec.stored === 'plaintext' && summary.decryptionsMax !== 0) {
      throw new Error(`${result.name}: "${spec.name}" decrypted ${summary.decryptionsMax} values for a request; its copy is not plaintext`);
    }
    if (spec.stored === 'encrypted' && summary.decryptionsMin === 0) {
      throw new Error(`${result.name}: "${spec.name}" decrypted nothing for some request; it is not serving ciphertext`);
    }
  }
}

// ---------------------------------------------------------------------------
// Throughput: a closed loop at a fixed concurrency
// ---------------------------------------------------------------------------

/** Each variant gets its requests in this many turns, the order reversed every turn. */
const THROUGHPUT_TURNS = 2;
/** Requests per client and turn, at least: a closed loop of fewer says little. */
const THROUGHPUT_MIN_PER_CLIENT = 1;

interface Throughput {
  workload: string;
  /** Requests sent to each variant (the same for all). */
  requests: number;
  /** Variant name -> requests, seconds and latencies of all its turns. */
  byVariant: Record<string, { requests: number; seconds: number; latencies: number[] }>;
}

/**
 * Per workload, the same number of requests to every variant, in a closed
 * loop of `concurrency` clients: as many as the unprotected variant serves
 * one at a time in about --throughput-seconds at its median latency of the
 * rounds (at least one per client and turn), in THROUGHPUT_TURNS turns, the order of
 * the variants reversed every turn. Requests per second = requests / time
 * from the first request sent to the last response read.
 */
async function measureThroughput(workloads: readonly PreparedWorkload[], variants: readonly Variant[], results: readonly WorkloadResult[], options: Options): Promise<Throughput[]> {
  const measured: Throughput[] = [];
  for (const workload of workloads) {
    const baseline = summarize(results.find((result) => result.name === workload.name)?.samples[BASELINE] ?? []).median;
    // As many as one client would send in the time; the cores, not the clients, limit the rate.
    const perTurn = Math.max(options.concurrency * THROUGHPUT_MIN_PER_CLIENT, Math.round((options.throughputSeconds * 1000) / (baseline || 1) / THROUGHPUT_TURNS));
    const byVariant: Throughput['byVariant'] = Object.fromEntries(variants.map((variant) => [variant.name, { requests: 0, seconds: 0, latencies: [] }]));
    for (let turn = 0; turn < THROUGHPUT_TURNS; turn++) {
      const order = turn % 2 === 0 ? variants : [...variants].reverse();
      for (const variant of order) {
        const request = loopRequest(workload.url(variant), workload.token, workload.query, workload.variables);
        const loop = await runClosedLoop({ concurrency: options.concurrency, requests: perTurn, request: () => request });
        const total = byVariant[variant.name] as Throughput['byVariant'][string];
        total.requests += loop.requests;
        total.seconds += loop.seconds;
        total.latencies.push(...loop.latencies);
      }
    }
    progress(`throughput: ${workload.name}: ${perTurn * THROUGHPUT_TURNS} requests per variant`);
    measured.push({ workload: workload.name, requests: perTurn * THROUGHPUT_TURNS, byVariant });
  }
  return measured;
}

// ---------------------------------------------------------------------------
// SQL statements per request against the list size
// ---------------------------------------------------------------------------

/** Requests per size (after one untimed request); the count is their median. */
const STATEMENT_SAMPLES = 3;

interface StatementCount {
  workload: string;
  sizes: { size: number; median: number; min: number; max: number; rows: number }[];
  constant: boolean;
}

/**
 * The full variant's SQL statements per request for the same operation at
 * two list sizes: batched loaders keep the count the same however many rows
 * a page holds; a count that grows is an N+1.
 */
async function countStatements(context: Context, full: Variant): Promise<StatementCount[]> {
  const pairs: { workload: string; sizes: [number, number]; build: (size: number) => Workload<Context> }[] = [
    { workload: 'dashboard', sizes: [100, 1000], build: (size) => dashboardWorkload('gateway', size, `dashboard-${size}`) },
    { workload: 'partner', sizes: [5, PARTNER_PAGE], build: (size) => partnerWorkload(size, `partner-${size}`) },
  ];
  const counts: StatementCount[] = [];
  for (const pair of pairs) {
    const sizes: StatementCount['sizes'] = [];
    for (const size of pair.sizes) {
      const result = await runInterleaved(await prepareWorkload(pair.build(size), context), [full], { rounds: STATEMENT_SAMPLES, warmup: 1 });
      const summary = summarize(result.samples[full.name] ?? []);
      sizes.push({ size, median: summary.statements, min: summary.statementsMin, max: summary.statementsMax, rows: summary.rows });
    }
    const constant = sizes.every((entry) => entry.min === sizes[0]?.min && entry.max === sizes[0]?.max);
    if (!constant) progress(`WARNING: ${pair.workload}: SQL statements per request grow with the list size: ${sizes.map((entry) => `${entry.size}: ${entry.median}`).join(', ')}`);
    counts.push({ workload: pair.workload, sizes, constant });
  }
  return counts;
}

// ---------------------------------------------------------------------------
// Scale: workload 1 on a larger table
// ---------------------------------------------------------------------------

interface Scale {
  growth: Growth;
  /** Patients the seeder wrote per second in this run (startup included), to say what seeding the larger table would take. */
  seedRate: number;
  tables: readonly PatientTable[];
  result: WorkloadResult;
  small: string;
  large: string;
}

async function measureScale(stack: CopiesStack, context: Context, full: Variant, options: Options, onStop: MainControl['onStop']): Promise<Scale | undefined> {
  const copy = stack.extras[SCALE_COPY] as DatabaseCopy;
  const factor = Math.round(options.scalePatients / stack.seeded);
  if (factor < 2) {
    progress(`scale: skipped (--scale-patients ${options.scalePatients} is not at least twice the ${stack.seeded} seeded)`);
    return undefined;
  }
  const tables = SCALE_TABLES[options.scaleTables];
  progress(`scale: growing a copy of the seeded database ${factor} times (${tables.join(', ')})`);
  const db = await openDatabase({ url: copy.url, dataDir: copy.dataDir });
  let growth: Growth;
  try {
    growth = await growByCopying(db, factor, tables, progress);
  } finally {
    await db.close();
  }
  const large = `${FULL}@${growth.patientsAfter}`;
  const started = await startVariantOnCopy(stack, copy, { name: large, unprotected: false, unaudited: false });
  onStop(started.stop);
  try {
    const small = `${FULL}@${growth.patientsBefore}`;
    const renamed: Variant = { ...full, name: small };
    const workload = await prepareWorkload(partnerWorkload(PARTNER_PAGE), context);
    const result = await runInterleaved(workload, [renamed, started.variant], { rounds: options.rounds, warmup: options.warmup, log: progress });
    return { growth, seedRate: stack.seeded / stack.seedSeconds, tables, result, small, large };
  } finally {
    await started.stop();
  }
}

// ---------------------------------------------------------------------------
// The full API in a process of its own: memory and profile
// ---------------------------------------------------------------------------

/** How long a child server may take to start on the seeded copy. */
const CHILD_START_TIMEOUT_MS = 180_000;
/** Requests of the mix sent before the memory baseline is taken. */
const MEMORY_WARMUP_REQUESTS = 300;
/** A memory sample every this many requests (for the trend); the report's table shows every MEMORY_SHOW_EVERY-th. */
const MEMORY_SAMPLE_EVERY = 1000;
const MEMORY_SHOW_EVERY = 5000;
/** The trend is fitted to the samples from this request on: the heap reaches its working size during the first thousands. */
const MEMORY_TREND_FROM = 5000;
/** Growth over the trend's span within max(MEMORY_NOISE_MIB, MEMORY_NOISE_SHARE of the RSS at its start) counts as noise. */
const MEMORY_NOISE_MIB = 32;
const MEMORY_NOISE_SHARE = 0.1;
/**
 * The memory run's mix, per MEMORY_MIX_CYCLE requests: mostly lookups (the
 * cheapest request: 20,000 of anything heavier do not fit the run's ten
 * minutes here), half of them through the gateway and half straight to the
 * patient subgraph (`@patient`: the same process serves both; on PGlite a
 * gateway lookup costs its one thread about 2.5 times a direct one: 77
 * requests/s all through the gateway, 109 half and half), every other
 * workload throughout, and a dashboard now and then, the large allocations
 * that set the peak.
 */
const MEMORY_MIX_CYCLE = 2000;
const MEMORY_MIX: readonly [workload: string, perCycle: number][] = [
  ['lookup', 988],
  ['lookup@patient', 988],
  ['chart', 12],
  ['partner', 10],
  ['dashboard', 1],
  ['dashboard-subgraph', 1],
];

/** A memory-mix entry's workload, and where it is sent: `name@patient` goes straight to the patient subgraph. */
function mixEntry(entry: string): { workload: string; direct: boolean; label: string } {
  const [workload = entry, target] = entry.split('@');
  return { workload, direct: target === 'patient', label: target === 'patient' ? `${workload} (straight to the patient subgraph)` : workload };
}

interface MemoryRun {
  samples: ({ label: string; requests: number } & MemorySample)[];
  requestsPerSecond: number;
  /** RSS at the end minus RSS after the warm-up, MiB. */
  sinceWarmupMiB: number;
  sampleEvery: number;
  /** The request the trend starts from (MEMORY_TREND_FROM, less in short runs). */
  trendFrom: number;
  /** Least-squares slope of RSS over the samples from trendFrom on, MiB per 10,000 requests. */
  trendMiBPer10k: number;
  /** The trend over its span (MEMORY_TREND_FROM to the end), MiB. */
  growthMiB: number;
  /** RSS at the trend's start (fitted), MiB. */
  trendStartMiB: number;
  flat: boolean;
  mix: string;
}

/** The least-squares line through the points (x, y). */
function leastSquares(points: readonly (readonly [number, number])[]): { slope: number; intercept: number } {
  const n = points.length;
  if (n < 2) return { slope: 0, intercept: points[0]?.[1] ?? 0 };
  const meanX = points.reduce((sum, [x]) => sum + x, 0) / n;
  const meanY = points.reduce((sum, [, y]) => sum + y, 0) / n;
  const covariance = points.reduce((sum, [x, y]) => sum + (x - meanX) * (y - meanY), 0);
  const variance = points.reduce((sum, [x]) => sum + (x - meanX) ** 2, 0);
  const slope = variance === 0 ? 0 : covariance / variance;
  return { slope, intercept: meanY - slope * meanX };
}

function childVariant(server: ServerProcess): Variant {
  return {
    name: 'child',
    gatewayUrl: server.gatewayUrl,
    subgraphUrls: server.subgraphUrls,
    statements: { count: 0 },
    decryptions: () => 0,
    auditMetrics: { writes: 0, failures: 0 },
  };
}

/** The full API (`node --import tsx src/main.ts`, as `npm start` runs it) on its own copy, in a child process of its own. */
async function startChild(stack: CopiesStack, nodeFlags: readonly string[], onStop: MainControl['onStop']): Promise<ServerProcess> {
  const copy = stack.extras[PROCESS_COPY] as DatabaseCopy;
  const settings: ServerSettings = {
    dataDir: copy.dataDir,
    ...(copy.url && { databaseUrl: copy.url }),
    ...(stack.config.redisUrl && { redisUrl: stack.config.redisUrl, redisKeyPrefix: stack.config.redisKeyPrefix }),
    seedPatients: 0,
  };
  // One process (--single-process): the memory of the gateway and the three subgraphs together, as measured before npm start supervised separate processes.
  // With the young generation npm start gives each process (PROCESS_SEMI_SPACE_MB).
  const server = await spawnServer([process.execPath, ...nodeFlags, `--max-semi-space-size=${DEFAULT_PROCESS_SEMI_SPACE_MB}`, '--import', 'tsx', 'src/main.ts', '--single-process'], settings, REPO_ROOT);
  onStop(async () => void (await server.stop()));
  await waitUntilServing(server, CHILD_START_TIMEOUT_MS);
  return server;
}

async function measureMemory(stack: CopiesStack, prepared: ReadonlyMap<string, PreparedWorkload>, options: Options, onStop: MainControl['onStop']): Promise<MemoryRun> {
  progress('memory: starting the full API in a child process');
  const server = await startChild(stack, [], onStop);
  const target = childVariant(server);
  const cycle = MEMORY_MIX.flatMap(([entry, count]) => {
    const { workload: name, direct } = mixEntry(entry);
    const workload = prepared.get(name);
    if (!workload) throw new Error(`the memory mix names workload ${name}, which was not prepared`);
    const url = direct ? target.subgraphUrls.patient : workload.url(target);
    return Array.from({ length: count }, () => loopRequest(url, workload.token, workload.query, workload.variables));
  });
  if (cycle.length !== MEMORY_MIX_CYCLE) throw new Error(`the memory mix adds up to ${cycle.length} requests, not ${MEMORY_MIX_CYCLE}`);
  // Spread each workload's requests over the cycle (a fixed shuffle, 37 prime to the cycle's length), so the large ones do not come in a burst.
  const order = cycle.map((_, index) => (index * 37) % cycle.length);
  const request = (index: number) => cycle[order[index % cycle.length] as number] as ReturnType<typeof loopRequest>;
  // Shorter runs (--memory-requests) sample and fit proportionally.
  const sampleEvery = Math.min(MEMORY_SAMPLE_EVERY, Math.max(1, Math.floor(options.memoryRequests / 20)));
  const trendFrom = Math.min(MEMORY_TREND_FROM, Math.floor(options.memoryRequests / 4));
  const samples: MemoryRun['samples'] = [{ label: 'serving', requests: 0, ...readMemory(server.pid) }];
  await runClosedLoop({ concurrency: options.concurrency, requests: MEMORY_WARMUP_REQUESTS, request });
  samples.push({ label: 'after warm-up', requests: 0, ...readMemory(server.pid) });
  progress(`memory: sending ${options.memoryRequests} requests`);
  const loop = await runClosedLoop({
    concurrency: options.concurrency,
    requests: options.memoryRequests,
    request,
    onResponse: (completed) => {
      if (completed % sampleEvery === 0 && completed < options.memoryRequests) samples.push({ label: '', requests: completed, ...readMemory(server.pid) });
    },
  });
  samples.push({ label: 'end', requests: loop.requests, ...readMemory(server.pid) });
  const exit = await server.stop();
  if (exit.code !== 0) progress(`memory: the child exited with ${exit.code ?? exit.signal}`);
  // RSS moves by tens of MiB with every major collection, so a leak shows in the trend of many samples, not in two of them.
  const trend = leastSquares(samples.filter((sample) => sample.requests >= trendFrom).map((sample) => [sample.requests, sample.rssMiB]));
  const span = loop.requests - trendFrom;
  const trendStartMiB = trend.intercept + trend.slope * trendFrom;
  const growthMiB = trend.slope * span;
  return {
    samples,
    requestsPerSecond: loop.requests / loop.seconds,
    sinceWarmupMiB: (samples.at(-1) as MemorySample).rssMiB - (samples[1] as MemorySample).rssMiB,
    sampleEvery,
    trendFrom,
    trendMiBPer10k: trend.slope * 10_000,
    growthMiB,
    trendStartMiB,
    flat: growthMiB <= Math.max(MEMORY_NOISE_MIB, trendStartMiB * MEMORY_NOISE_SHARE),
    mix: MEMORY_MIX.map(([entry, count]) => `${mixEntry(entry).label} ${((100 * count) / MEMORY_MIX_CYCLE).toFixed(1)}%`).join(', '),
  };
}

/** Requests sent before the profiled ones (JIT, plans, pools). */
const PROFILE_WARMUP = 3;

interface Profile {
  path: string;
  requests: number;
  medianMs: number;
  summary: ProfileSummary;
}

async function profileDashboard(stack: CopiesStack, workload: PreparedWorkload, options: Options, onStop: MainControl['onStop']): Promise<Profile> {
  const dir = options.profileOut ?? (await mkdtemp(join(tmpdir(), 'phi-bench-profile-')));
  progress(`profile: the full API with --cpu-prof in a child process, ${options.profileRequests} ${workload.name} requests`);
  const server = await startChild(stack, ['--cpu-prof', '--cpu-prof-dir', dir], onStop);
  const url = workload.url(childVariant(server));
  for (let index = 0; index < PROFILE_WARMUP; index++) await timedPost(url, workload.token, workload.query, workload.variables);
  const times: number[] = [];
  // The profile's timestamps are on the clock of process.hrtime (CLOCK_MONOTONIC), as the child's are.
  const fromMicros = Number(process.hrtime.bigint() / 1000n);
  for (let index = 0; index < options.profileRequests; index++) {
    let response = await timedPost(url, workload.token, workload.query, workload.variables);
    if (isConnectionReset(response.text)) response = await timedPost(url, workload.token, workload.query, workload.variables);
    if (response.status !== 200 || response.body.errors) throw new Error(`profile: ${workload.name} failed: ${response.text.slice(0, 300)}`);
    times.push(response.ms);
  }
  const toMicros = Number(process.hrtime.bigint() / 1000n);
  const exit = await server.stop();
  if (exit.code !== 0) throw new Error(`profile: the child exited with ${exit.code ?? exit.signal}, so its profile may be missing:\n${server.output()}`);
  const path = await findMainProfile(dir);
  const summary = await summarizeProfile(path, REPO_ROOT, { fromMicros, toMicros });
  if (summary.busyMs + summary.idleMs === 0) throw new Error(`profile: no sample of ${path} falls within the profiled requests; are the clocks different?`);
  return { path, requests: options.profileRequests, medianMs: median(times), summary };
}

// ---------------------------------------------------------------------------
// Start-up: `npm start` on an empty data folder, then on the seeded one
// ---------------------------------------------------------------------------

/** How long `npm start` may take to serve (it seeds an empty database first). */
const STARTUP_TIMEOUT_MS = 300_000;

interface Startup {
  label: string;
  seconds: number;
  seeded: number;
  exit: string;
}

async function measureStartup(onStop: MainControl['onStop']): Promise<Startup[]> {
  const dataDir = await mkdtemp(join(tmpdir(), 'phi-bench-start-'));
  onStop(() => rm(dataDir, { recursive: true, force: true }));
  const runs: Startup[] = [];
  for (const label of ['empty data folder', 'seeded data folder']) {
    progress(`startup: npm start on the ${label}`);
    // Only the data folder, ports and log level are set: the embedded defaults (PGlite, in-process cache, seeding) are what is timed.
    const server = await spawnServer(['npm', 'start'], { dataDir }, REPO_ROOT);
    onStop(async () => void (await server.stop()));
    const served = await waitUntilServing(server, STARTUP_TIMEOUT_MS);
    const seconds = (served - server.spawnedAt) / 1000;
    const exit = await server.stop();
    const seeded = Number(/Seeded (\d+) synthetic patients/.exec(server.output())?.[1] ?? 0);
    runs.push({ label, seconds, seeded, exit: exit.code !== null ? `exit code ${exit.code}` : `signal ${exit.signal}` });
  }
  return runs;
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

interface Findings {
  meta: Meta;
  copies: CopyFacts;
  results: WorkloadResult[];
  budget: BudgetLine[];
  throughput: Throughput[] | undefined;
  statements: StatementCount[] | undefined;
  scale: Scale | undefined;
  memory: MemoryRun | undefined;
  profile: Profile | undefined;
  startup: Startup[] | undefined;
  /** Seconds per phase of the run. */
  phases: Record<string, number>;
  /** Requests retried after a gateway-to-subgraph connection reset (connectionResets of support.ts). */
  connectionResets: number;
  loadAtEnd: number;
  options: Options;
}

const ratio = (value: number, base: number) => `${(value / base).toFixed(2)}x`;
const mib = (value: number) => value.toFixed(0);
const signed = (value: number) => `${value >= 0 ? '+' : ''}${value.toFixed(0)}`;

/** Issue 16's reported targets: the full dashboard's median, and full/unprotected throughput on every workload measured. */
function targetLines(findings: Pick<Findings, 'results' | 'throughput'>): TargetLine[] {
  const dashboard = findings.results.find((result) => result.name === 'dashboard');
  const dashboardMedian = dashboard ? summarize(dashboard.samples[FULL] ?? []).median : undefined;
  const rates = (findings.throughput ?? []).map((entry) => {
    const rate = (variant: string) => {
      const measured = entry.byVariant[variant];
      return measured ? measured.requests / measured.seconds : 0;
    };
    return { workload: entry.workload, ratio: rate(FULL) / (rate(BASELINE) || 1) };
  });
  const lowest = rates.reduce<(typeof rates)[number] | undefined>((low, entry) => (!low || entry.ratio < low.ratio ? entry : low), undefined);
  return [
    {
      target: `${FULL} dashboard (1,000 rows) median at most ${TARGETS.dashboardMedianMs} ms`,
      measured: dashboardMedian === undefined ? '-' : `${formatMs(dashboardMedian)} ms`,
      pass: dashboardMedian === undefined ? undefined : dashboardMedian <= TARGETS.dashboardMedianMs,
    },
    {
      target: `${FULL}/${BASELINE} throughput at least ${TARGETS.minThroughputRatio}x on every workload`,
      measured: lowest ? `lowest ${lowest.ratio.toFixed(2)}x (${lowest.workload})` : '-',
      pass: lowest ? lowest.ratio >= TARGETS.minThroughputRatio : undefined,
    },
  ];
}

function medianRatio(results: readonly WorkloadResult[], workload: string, variant: string): number | undefined {
  const result = results.find((candidate) => candidate.name === workload);
  if (!result) return undefined;
  return summarize(result.samples[variant] ?? []).median / summarize(result.samples[BASELINE] ?? []).median;
}

function latencyTable(results: readonly WorkloadResult[]): string {
  const compared = NAMES.filter((name) => name !== BASELINE);
  const header = [
    'workload',
    'rows',
    ...NAMES.map((name) => `${name} median (p99) ms`),
    ...compared.map((name) => `${name}/${BASELINE}`),
    `SQL/request (${NAMES.join(' / ')})`,
    `decryptions/request (${NAMES.join(' / ')})`,
  ];
  const rows = results.map((result) => {
    const of = (name: string) => summarize(result.samples[name] ?? []);
    const base = of(BASELINE);
    return [
      result.name,
      String(base.rows),
      ...NAMES.map((name) => `${formatMs(of(name).median)} (${formatMs(of(name).p99)})`),
      ...compared.map((name) => ratio(of(name).median, base.median)),
      NAMES.map((name) => countCell(of(name).statements, of(name).statementsMin, of(name).statementsMax)).join(' / '),
      NAMES.map((name) => countCell(of(name).decryptions, of(name).decryptionsMin, of(name).decryptionsMax)).join(' / '),
    ];
  });
  return markdownTable(header, rows, header.map((_, index) => (index === 0 ? 'l' : 'r')));
}

/** The ratio within each round (the variants' requests sent one after the other), as p25-median-p75: how settled each median ratio is. */
function pairTable(results: readonly WorkloadResult[]): string {
  const compared = NAMES.filter((name) => name !== BASELINE);
  const header = ['workload', ...compared.map((name) => `${name}/${BASELINE} per round, p25 / median / p75`), ...compared.map((name) => `+ms ${name}`)];
  const rows = results.map((result) => {
    const base = summarize(result.samples[BASELINE] ?? []).median;
    return [
      result.name,
      ...compared.map((name) => {
        const ratios = roundRatios(result.samples[name] ?? [], result.samples[BASELINE] ?? []);
        return `${percentile(ratios, 25).toFixed(2)} / ${median(ratios).toFixed(2)} / ${percentile(ratios, 75).toFixed(2)}`;
      }),
      ...compared.map((name) => formatMs(summarize(result.samples[name] ?? []).median - base)),
    ];
  });
  return markdownTable(header, rows, header.map((_, index) => (index === 0 ? 'l' : 'r')));
}

function throughputTable(throughput: readonly Throughput[]): string {
  const compared = NAMES.filter((name) => name !== BASELINE);
  const header = ['workload', ...NAMES.map((name) => `${name} req/s`), ...compared.map((name) => `${name}/${BASELINE}`), ...NAMES.map((name) => `${name} p99 ms`)];
  const rows = throughput.map((entry) => {
    const rate = (name: string) => {
      const total = entry.byVariant[name];
      return total && total.seconds > 0 ? total.requests / total.seconds : Number.NaN;
    };
    return [
      entry.workload,
      ...NAMES.map((name) => `${rate(name).toFixed(1)} (${entry.byVariant[name]?.requests ?? 0})`),
      ...compared.map((name) => ratio(rate(name), rate(BASELINE))),
      ...NAMES.map((name) => formatMs(percentile(entry.byVariant[name]?.latencies ?? [], 99))),
    ];
  });
  return markdownTable(header, rows, header.map((_, index) => (index === 0 ? 'l' : 'r')));
}

function statementsTable(counts: readonly StatementCount[]): string {
  return markdownTable(
    ['operation (full variant)', 'small page: rows, SQL/request', 'large page: rows, SQL/request', 'constant'],
    counts.map((count) => [
      count.workload,
      ...count.sizes.map((entry) => `first: ${entry.size}: ${entry.rows} rows, ${countCell(entry.median, entry.min, entry.max)}`),
      count.constant ? 'yes' : '**NO: grows with the list (N+1)**',
    ]),
  );
}

function costRows(entries: readonly CostEntry[]): string[][] {
  return entries.slice(0, 10).map((entry, index) => [String(index + 1), `\`${entry.name}\``, entry.ms.toFixed(0), `${(entry.share * 100).toFixed(1)}%`]);
}

function reportText(findings: Findings): string {
  const { meta, results, options } = findings;
  const lines: string[] = [
    '# Benchmarks',
    '',
    'Generated by `npm run bench` (bench/suite.ts); bench/README.md explains the variants, the workloads and how to read the figures.',
    '',
    ...metaLines(meta),
    `- load average at the end of the run: ${findings.loadAtEnd.toFixed(2)}`,
    `- machine: ${(totalmem() / 1024 ** 3).toFixed(0)} GiB of memory; client, API servers and database share the cores`,
    `- throughput: closed loop, ${options.concurrency} requests in flight; per workload the same number of requests to every variant (about ${options.throughputSeconds} s of the unprotected variant's), in ${THROUGHPUT_TURNS} turns, the order reversed each turn`,
    `- copies: each variant serves its own copy of the seeded database; the plaintext copies were rewritten as plaintext (${Object.entries(findings.copies.converted)
      .map(([table, rows]) => `${table} ${rows}`)
      .join(', ')} rows each); all four compacted alike (VACUUM FULL, ANALYZE); ${findings.copies.seconds.toFixed(0)} s`,
    '',
    'Variants:',
    ...VARIANTS.map((variant) => `- \`${variant.name}\`: ${variant.description}`),
    '',
    `## Budget: ${BUDGET.variant} at most ${BUDGET.maxRatio}x ${BUDGET.baseline} (median latency, same run)`,
    '',
    budgetTable(findings.budget),
    '',
    budgetHolds(findings.budget) ? 'The budget holds.' : `**The budget is exceeded.** (\`npm run bench -- --check\` exits 1.)`,
    '',
    targetTable(targetLines(findings)),
    '',
    '## Latency: interleaved sequential rounds',
    '',
    `One request at a time; in round k each variant gets the request once, the first variant rotating. ${meta.warmup} warm-up + ${meta.rounds} timed rounds; p99 is nearest rank, so below 100 rounds it is the slowest request.`,
    '',
    latencyTable(results),
    '',
    'Pair by pair: the ratio of each variant to unprotected within each round (the two requests sent back to back), and the difference of the medians:',
    '',
    pairTable(results),
    '',
    'Workloads:',
    ...results.map((result) => `- \`${result.name}\`: ${result.description}${result.notes.length > 0 ? `; ${result.notes.join('; ')}` : ''}`),
    '',
    'SQL/request counts the statements sent through MikroORM (its `onQuery` hook). The audit write goes through Kysely and is not counted: the full variant sends one more statement per subgraph request that read patient data. Decryptions/request counts the cipher of each variant: the plaintext copies must decrypt nothing (checked), the encrypted ones every @encrypted value they serve.',
  ];
  if (findings.throughput) {
    lines.push('', `## Throughput: ${options.concurrency} requests in flight`, '', throughputTable(findings.throughput), '', 'Requests per second over all turns (requests sent to each variant in parentheses), from the first request sent to the last response read; the ratio is the variant\'s requests per second over unprotected\'s (below 1: fewer); p99 of the latencies under this load.');
  }
  if (findings.statements) {
    lines.push('', '## SQL statements per request against the list size', '', statementsTable(findings.statements), '', 'Full variant, MikroORM statements (the audit write through Kysely is not counted); a count that changes with the page size is an N+1 and makes `--check` fail.');
  }
  if (findings.scale) {
    const { growth, seedRate, result, small, large } = findings.scale;
    const of = (name: string) => summarize(result.samples[name] ?? []);
    const rows = [small, large].map((name) => [name, formatMs(of(name).median), formatMs(of(name).p99), countCell(of(name).statements, of(name).statementsMin, of(name).statementsMax)]);
    lines.push(
      '',
      `## Scale: workload 1 at ${growth.patientsBefore} and ${growth.patientsAfter} patients`,
      '',
      markdownTable(['full variant', 'partner median ms', 'p99 ms', 'SQL/request'], rows, ['l', 'r', 'r', 'r']),
      '',
      `Ratio ${large}/${small}: ${ratio(of(large).median, of(small).median)} (per round p25-p75 ${percentile(roundRatios(result.samples[large] ?? [], result.samples[small] ?? []), 25).toFixed(2)}-${percentile(roundRatios(result.samples[large] ?? [], result.samples[small] ?? []), 75).toFixed(2)}); both returned byte-identical bodies in every round (checked).`,
      '',
      `How the larger table was made: not seeded (the seeder wrote ${seedRate.toFixed(0)} patients/s in this run: ${growth.patientsAfter} would take about ${((growth.patientsAfter / seedRate) / 60).toFixed(0)} minutes), but grown from a copy of the seeded database in ${growth.seconds.toFixed(0)} s by copying every patient ${growth.patientsAfter / growth.patientsBefore - 1} times inside the database (bench/grow.ts): ` +
        `${Object.entries(growth.rowsAdded).map(([table, rows]) => `${table} +${rows}`).join(', ')}. ` +
        `The tables ${options.scaleTables === 'read' ? 'workload 1 reads' : 'of every patient'} were grown${options.scaleTables === 'read' ? ' (`--scale-tables all` grows every patient table)' : ''}. The copies' ids sort after the originals', so the page holds the same 50 patients and the copies (whose ciphertext is bound to the originals' ids and does not decrypt) are never read; consents were copied too, so the partner organization holds ${growth.patientsAfter / growth.patientsBefore} times the patients, in the same proportion.`,
    );
  }
  if (findings.memory) {
    const { memory } = findings;
    lines.push(
      '',
      `## Memory: the full variant in a process of its own, ${options.memoryRequests} requests`,
      '',
      markdownTable(
        ['sample', 'requests', 'RSS MiB', 'peak RSS (VmHWM) MiB'],
        memory.samples
          .filter((sample) => sample.label || sample.requests % Math.max(MEMORY_SHOW_EVERY, memory.sampleEvery) === 0 || memory.samples.length <= 12)
          .map((sample) => [sample.label || 'during', String(sample.requests), mib(sample.rssMiB), mib(sample.peakMiB)]),
        ['l', 'r', 'r', 'r'],
      ),
      '',
      `Peak RSS ${mib(memory.samples.at(-1)?.peakMiB ?? 0)} MiB; RSS after ${options.memoryRequests} requests ${mib(memory.samples.at(-1)?.rssMiB ?? 0)} MiB (${signed(memory.sinceWarmupMiB)} MiB since the warm-up). ` +
        `Trend from request ${memory.trendFrom} on (least squares over a sample every ${memory.sampleEvery} requests): ${signed(memory.trendMiBPer10k)} MiB per 10,000 requests, ${signed(memory.growthMiB)} MiB over the ${options.memoryRequests - memory.trendFrom} requests: ` +
        `${memory.flat ? 'no growth beyond noise' : '**grows beyond noise**'} (noise: max(${MEMORY_NOISE_MIB} MiB, ${MEMORY_NOISE_SHARE * 100}% of the RSS at request ${memory.trendFrom}); the heap reaches its working size during the first thousands of requests, a leak keeps growing after. ` +
        `\`node --import tsx src/main.ts --single-process\` (npm start's processes in one), on its own copy of the seeded database, ${options.concurrency} requests in flight, mix ${memory.mix}, after ${MEMORY_WARMUP_REQUESTS} warm-up requests; ${memory.requestsPerSecond.toFixed(0)} req/s. VmRSS and VmHWM from /proc/<pid>/status.`,
    );
  }
  if (findings.profile) {
    const { profile } = findings;
    const { summary } = profile;
    const share = (entry: CostEntry) => `${(entry.share * 100).toFixed(0)}%`;
    const top = summary.byPlace.slice(0, 3).map((entry) => `${entry.name} (${share(entry)})`);
    const topFunctions = summary.byFunction.slice(0, 3).map((entry) => `\`${entry.name}\` (${share(entry)})`);
    lines.push(
      '',
      `## Profile: the full variant, ${profile.requests} \`dashboard\` requests`,
      '',
      `\`node --cpu-prof\` of the full API in its own process (its own copy of the data), ${PROFILE_WARMUP} warm-up requests, then ${profile.requests} sent one at a time through the gateway (median ${formatMs(profile.medianMs)} ms); only the samples taken while they ran are counted: ${summary.busyMs.toFixed(0)} ms on the CPU (${(summary.busyMs / profile.requests).toFixed(0)} ms a request), ${summary.idleMs.toFixed(0)} ms idle (waiting for the database). Profile: \`${profile.path}\` (open it in Chrome DevTools or speedscope).`,
      '',
      `**The three biggest costs.** By place (self time): ${top.join(', ')}. By function (self time): ${topFunctions.join(', ')}.`,
      '',
      'Self time by place:',
      '',
      markdownTable(['#', 'place', 'self ms', 'share'], costRows(summary.byPlace), ['r', 'l', 'r', 'r']),
      '',
      'Self time by function:',
      '',
      markdownTable(['#', 'function', 'self ms', 'share'], costRows(summary.byFunction), ['r', 'l', 'r', 'r']),
      '',
      'Total time (self and everything called from it) of this repository\'s functions: which of its steps the costs above are spent under. A wrapper around every resolver includes all it wraps; work resumed after an `await` counts under the function that resumed:',
      '',
      markdownTable(['#', 'function', 'total ms', 'share'], costRows(summary.byRepositoryFunctionTotal), ['r', 'l', 'r', 'r']),
      '',
      'Line numbers of this repository\'s TypeScript are where the function is declared (tsx compiles each file to one line, so the profile cannot say); `(anonymous)` functions of it carry none.',
    );
  }
  if (findings.startup) {
    lines.push(
      '',
      '## Start-up: `npm start` until the gateway serves',
      '',
      markdownTable(
        ['data folder', 'seconds to the first response', 'patients seeded', 'npm after SIGTERM'],
        findings.startup.map((run) => [run.label, run.seconds.toFixed(1), String(run.seeded), run.exit]),
        ['l', 'r', 'r', 'l'],
      ),
      '',
      'Really `npm start`, with the embedded defaults (PGlite in the data folder, in-process cache, the default number of patients seeded into an empty database): only DATA_DIR, the ports and LOG_LEVEL=silent are set. Timed from the spawn to the first answer through the gateway to `{ viewer { subject } }`, polled every 25 ms with a token minted as soon as the server wrote its signing key.',
    );
  }
  if (findings.connectionResets > 0) {
    lines.push(
      '',
      `**Connection resets: ${findings.connectionResets} request(s) failed because the gateway reused a connection to a subgraph just as the subgraph closed it, and were retried once** ` +
        '(`read ECONNRESET` / `socket hang up` from the gateway). The subgraph servers close idle keep-alive connections after Node\'s default 5 s, while the gateway\'s HTTP agent keeps them without an idle timeout, reuses the oldest first and never retries: clients of the API see these as errors. See `CONNECTION_RESET` in bench/support.ts.',
    );
  }
  lines.push(
    '',
    '## Run',
    '',
    markdownTable(['phase', 'seconds'], Object.entries(findings.phases).map(([phase, seconds]) => [phase, seconds.toFixed(0)]), ['l', 'r']),
    '',
    'Latency is wall clock around fetch and reading the body. The machine is shared: compare ratios of the same run, not milliseconds across runs.',
  );
  return lines.join('\n');
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

runMain(USAGE, async ({ onStop }) => {
  const argv = process.argv.slice(2);
  const options = parseOptions(argv);
  const phases: Record<string, number> = {};
  let phaseStarted = performance.now();
  const endPhase = (name: string) => {
    const now = performance.now();
    phases[name] = (now - phaseStarted) / 1000;
    phaseStarted = now;
    progress(`${name}: ${phases[name].toFixed(0)} s (${((now - run.began) / 1000).toFixed(0)} s since the start)`);
  };

  const run = await startRun(argv, options, VARIANTS, onStop, (stackOptions) =>
    startVariantsOnCopies({ ...stackOptions, extraCopies: [SCALE_COPY, PROCESS_COPY] }),
  );
  const { stack } = run;
  const copies = await prepareCopies(stack);
  await checkVariants(stack);
  const context = await buildContext(stack);
  const database = await describeDatabase(stack, run.postgresUrl);
  endPhase('seed, copy, convert and check');

  const { results, load } = await runWorkloads(WORKLOADS, context, stack.variants, options, { afterWorkload: checkDecryptions });
  const budget = checkBudget((workload) => medianRatio(results, workload, BUDGET.variant));
  endPhase('interleaved rounds');

  const selected = WORKLOADS.filter((workload) => !options.only || options.only.includes(workload.name));
  const prepared = new Map<string, PreparedWorkload>();
  for (const workload of WORKLOADS) prepared.set(workload.name, await prepareWorkload(workload, context));
  const full = stack.variants.find((variant) => variant.name === FULL) as Variant;

  let throughput: Throughput[] | undefined;
  if (!options.skip.has('throughput')) {
    throughput = await measureThroughput(selected.map((workload) => prepared.get(workload.name) as PreparedWorkload), stack.variants, results, options);
    endPhase('throughput');
  }
  let statements: StatementCount[] | undefined;
  if (!options.skip.has('statements')) {
    statements = await countStatements(context, full);
    endPhase('SQL statements');
  }
  let scale: Scale | undefined;
  if (!options.skip.has('scale') && options.scalePatients > 0) {
    scale = await measureScale(stack, context, full, options, onStop);
    endPhase('scale');
  }
  let memory: MemoryRun | undefined;
  if (!options.skip.has('memory')) {
    memory = await measureMemory(stack, prepared, options, onStop);
    endPhase('memory');
  }
  let profile: Profile | undefined;
  if (!options.skip.has('profile')) {
    profile = await profileDashboard(stack, prepared.get('dashboard') as PreparedWorkload, options, onStop);
    endPhase('profile');
  }
  let startup: Startup[] | undefined;
  if (!options.skip.has('startup')) {
    startup = await measureStartup(onStop);
    endPhase('start-up');
  }

  const meta = runMeta(run, database, load);
  const findings: Findings = { meta, copies, results, budget, throughput, statements, scale, memory, profile, startup, phases, connectionResets: connectionResets.count, loadAtEnd: loadAverage(), options };
  const text = reportText(findings);
  console.log(text);
  if (options.out) {
    await writeFile(options.out, `${text}\n${await keptAnalysis(options.out)}`);
    progress(`report written to ${relative(process.cwd(), options.out) || options.out}`);
  }
  if (options.json) {
    await writeJson(options.json, { ...findings, options: { ...options, skip: [...options.skip] } });
    progress(`raw results written to ${options.json}`);
  }

  const failures = [
    ...budget.filter((line) => line.pass === false).map((line) => `${line.workload}: ${BUDGET.variant}/${BUDGET.baseline} ${line.ratio?.toFixed(3)}x > ${BUDGET.maxRatio}x`),
    ...(statements ?? []).filter((count) => !count.constant).map((count) => `${count.workload}: SQL statements per request grow with the list size`),
  ];
  if (failures.length > 0) progress(`${options.check ? 'check failed' : 'over budget (run with --check to fail on it)'}: ${failures.join('; ')}`);
  if (options.check && failures.length > 0) process.exitCode = 1;
  else if (options.check) progress('check passed: the budget holds');
});
