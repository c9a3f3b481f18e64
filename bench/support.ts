import { randomBytes } from 'node:crypto';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { loadConfig, type Config } from '../src/config.js';
import { createLogger, type Logger } from '../src/logger.js';
import { mintDevelopmentToken, type Role } from '../src/auth/index.js';
import { readDevelopmentPrincipals, type DevelopmentPrincipals } from '../src/db/seed/index.js';
import type { Database } from '../src/db/index.js';
import { startApi, type Api } from '../src/runtime.js';
import { startGateway } from '../src/gateway/server.js';
import { startSubgraph, type RunningServer } from '../src/subgraphs/server.js';
import { invalidateCareTeamMembership } from '../src/subgraphs/access.js';
import { SUBGRAPH_NAMES, type SubgraphName } from '../src/subgraphs/catalog.js';

/**
 * Shared machinery of the benchmarks: a database (scratch PostgreSQL or
 * PGlite), the API in several variants on that one database, tokens, timed
 * requests, an interleaved runner, statistics and the Markdown report.
 * Nothing here knows a particular workload; bench/authorization.ts does.
 */

// ---------------------------------------------------------------------------
// Database
// ---------------------------------------------------------------------------

export const LOCAL_POSTGRES = 'postgres://postgres@127.0.0.1:5432/postgres';

export type DatabaseChoice = 'postgres' | 'pglite';

export interface ScratchDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** An empty database `phi_bench_<random>` on the server of `serverUrl`; drop() removes it. */
export async function createScratchDatabase(serverUrl: string): Promise<ScratchDatabase> {
  const name = `phi_bench_${randomBytes(6).toString('hex')}`;
  await withClient(serverUrl, (client) => client.query(`create database "${name}"`));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    url: url.toString(),
    name,
    async drop() {
      if (dropped) return;
      dropped = true;
      await withClient(serverUrl, (client) => client.query(`drop database if exists "${name}" with (force)`));
    },
  };
}

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------
// The API in variants
// ---------------------------------------------------------------------------

/** One way of serving the API; all variants of a run serve the same database. */
export interface Variant {
  name: string;
  gatewayUrl: string;
  subgraphUrls: Record<SubgraphName, string>;
  /**
   * SQL statements sent on this variant's behalf. Requests are sent one at
   * a time, so the change across one request is that request's count, even
   * when variants share a counter (PGlite, see startVariants).
   */
  statements: { count: number };
}

export interface VariantSpec {
  name: string;
  /** Serve the subgraphs without the graphql-shield field rules (row scopes still apply). */
  unprotected: boolean;
}

export interface BenchStack {
  database: DatabaseChoice;
  /** How the variants share the database, for the report. */
  sharing: string;
  variants: Variant[];
  config: Config;
  /** The database handle of the first variant: for looking up ids to query (counted in its statements; not timed). */
  db: Database;
  principals: DevelopmentPrincipals;
  seeded: number;
  cacheKind: string;
  token(role: Role, overrides?: Partial<TokenOverrides>): Promise<string>;
  stop(): Promise<void>;
}

export interface TokenOverrides {
  subject: string;
  roles: Role[];
  organizationId: string | null;
  patientId: string | null;
  mfa: boolean;
  ttl: string;
}

export interface StackOptions {
  database: DatabaseChoice;
  /** Server URL for the scratch database (postgres only). */
  postgresUrl: string;
  redisUrl: string | undefined;
  patients: number;
  variants: VariantSpec[];
  log?: (message: string) => void;
  /** Receives the stop function before anything starts, so an interrupted start can still be cleaned up. */
  onStop?: (stop: () => Promise<void>) => void;
}

/**
 * Starts every variant on one freshly seeded database.
 *
 * PostgreSQL: one complete API (startApi) per variant, all at once, each
 * with its own pool and its own statement counter; the first seeds the
 * scratch database, the others find it filled and skip seeding.
 *
 * PGlite: the data folder can be opened by one handle only, so the first
 * variant is a complete API (startApi, which seeds) and every other variant
 * is its own gateway and three subgraphs started on that API's database
 * handle, cache and token verifier, the same parts startApi assembles. The
 * variants then share PGlite's single connection and one statement counter.
 */
export async function startVariants(options: StackOptions): Promise<BenchStack> {
  const log = options.log ?? (() => undefined);
  const [first, ...others] = options.variants;
  if (!first) throw new Error('at least one variant is needed');
  const cleanups: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    const errors: unknown[] = [];
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => errors.push(error));
    cleanups.length = 0;
    if (errors.length > 0) throw new AggregateError(errors, 'the benchmark stack did not stop cleanly');
  };
  options.onStop?.(stop);
  try {
    const dataDir = await mkdtemp(join(tmpdir(), 'phi-bench-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    let databaseUrl: string | undefined;
    if (options.database === 'postgres') {
      const scratch = await createScratchDatabase(options.postgresUrl);
      cleanups.push(() => scratch.drop());
      databaseUrl = scratch.url;
      log(`scratch database ${scratch.name} on ${new URL(options.postgresUrl).host}`);
    }
    const config = loadConfig({
      NODE_ENV: 'test',
      PORT: '0',
      PATIENT_SUBGRAPH_PORT: '0',
      CLINICAL_SUBGRAPH_PORT: '0',
      BILLING_SUBGRAPH_PORT: '0',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
      SEED_PATIENTS: '0',
      ...(databaseUrl && { DATABASE_URL: databaseUrl }),
      ...(options.redisUrl && { REDIS_URL: options.redisUrl }),
    });
    const logger = createLogger(config.logLevel);

    const started = performance.now();
    log(`seeding ${options.patients} patients and starting the "${first.name}" API`);
    const firstCounter = { count: 0 };
    const api = await startApi(config, logger, {
      seedPatients: options.patients,
      unprotectedForBenchmark: first.unprotected,
      onStatement: () => (firstCounter.count += 1),
    });
    cleanups.push(() => api.stop());
    log(`seeded ${api.seeded} patients in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    if (!api.db) throw new Error('the API started without a database');
    const db = api.db;
    const variants: Variant[] = [describeApi(first.name, api, firstCounter)];

    for (const spec of others) {
      if (options.database === 'postgres') {
        const counter = { count: 0 };
        const other = await startApi(config, logger, {
          seedPatients: options.patients,
          unprotectedForBenchmark: spec.unprotected,
          onStatement: () => (counter.count += 1),
        });
        cleanups.push(() => other.stop());
        if (other.seeded !== 0) throw new Error(`the "${spec.name}" API seeded the database again`);
        variants.push(describeApi(spec.name, other, counter));
      } else {
        const servers = await attachVariant(api, logger, config, spec);
        cleanups.push(async () => {
          for (const server of servers.reverse()) await server.stop();
        });
        const gateway = servers.at(-1);
        if (!gateway) throw new Error('no gateway was started');
        variants.push({
          name: spec.name,
          gatewayUrl: gateway.url,
          subgraphUrls: Object.fromEntries(SUBGRAPH_NAMES.map((name, index) => [name, servers[index]?.url ?? ''])) as Record<SubgraphName, string>,
          statements: firstCounter,
        });
      }
      log(`started the "${spec.name}" API`);
    }

    const principals = await readDevelopmentPrincipals(dataDir);
    if (!principals) throw new Error('the seeder wrote no development principals');
    // A shared Redis may remember care-team memberships from an earlier data set for the same subject.
    if (options.redisUrl) {
      for (const role of ['clinician', 'nurse'] as const) {
        const practitionerId = principals[role].practitionerId;
        if (practitionerId) await invalidateCareTeamMembership(db.fork(), api.cache, practitionerId);
      }
    }
    return {
      database: options.database,
      sharing:
        options.database === 'postgres'
          ? 'one complete API per variant (own pool), all running at once on one scratch database'
          : 'one PGlite handle; the first variant is a complete API, the others a gateway and subgraphs on its handle',
      variants,
      config,
      db,
      principals,
      seeded: api.seeded,
      cacheKind: options.redisUrl ? 'redis' : 'in-process',
      token(role, overrides = {}) {
        const sample = principals[role];
        return mintDevelopmentToken(config.auth, dataDir, {
          subject: overrides.subject ?? sample.subject,
          roles: overrides.roles ?? [role],
          organizationId: overrides.organizationId === undefined ? sample.organizationId : overrides.organizationId,
          patientId: overrides.patientId === undefined ? sample.patientId : overrides.patientId,
          mfa: overrides.mfa ?? true,
          ttl: overrides.ttl ?? '1h',
        });
      },
      stop,
    };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}

function describeApi(name: string, api: Api, statements: { count: number }): Variant {
  if (!api.gateway) throw new Error('the API started without a gateway');
  const subgraphUrls = {} as Record<SubgraphName, string>;
  for (const subgraph of SUBGRAPH_NAMES) {
    const server = api.subgraphs[subgraph];
    if (!server) throw new Error(`subgraph ${subgraph} is not running`);
    subgraphUrls[subgraph] = server.url;
  }
  return { name, gatewayUrl: api.gateway.url, subgraphUrls, statements };
}

/** Three subgraphs and a gateway on an existing API's database, cache and verifier; the gateway is last. */
async function attachVariant(api: Api, logger: Logger, config: Config, spec: VariantSpec): Promise<RunningServer[]> {
  const db = api.db;
  const sealer = api.sealer;
  if (!db || !sealer) throw new Error('the API has no database');
  const servers: RunningServer[] = [];
  try {
    for (const name of SUBGRAPH_NAMES) {
      servers.push(
        await startSubgraph(name, { db, cache: api.cache, sealer, verifier: api.verifier, logger, unprotectedForBenchmark: spec.unprotected }, config.subgraphs.host, 0),
      );
    }
    const subgraphUrls = Object.fromEntries(SUBGRAPH_NAMES.map((name, index) => [name, servers[index]?.url ?? ''])) as Record<SubgraphName, string>;
    servers.push(
      await startGateway(
        { verifier: api.verifier, logger, subgraphUrls, ready: async () => (await db.ping()) && (await api.cache.ping()) },
        config.gateway.host,
        0,
      ),
    );
    return servers;
  } catch (error) {
    for (const server of servers.reverse()) await server.stop().catch(() => undefined);
    throw error;
  }
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

export interface GraphQLError {
  message: string;
  path?: (string | number)[];
  extensions?: Record<string, unknown>;
}

export interface GraphQLBody {
  data?: Record<string, unknown> | null;
  errors?: GraphQLError[];
}

export interface TimedResponse {
  /** Wall clock around fetch and reading the whole body. */
  ms: number;
  status: number;
  bytes: number;
  body: GraphQLBody;
}

/** POSTs one operation as a client would and times it up to the last byte of the body (parsing excluded). */
export async function timedPost(url: string, token: string, query: string, variables?: Record<string, unknown>): Promise<TimedResponse> {
  const payload = JSON.stringify({ query, variables });
  const started = performance.now();
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: payload,
  });
  const text = await response.text();
  const ms = performance.now() - started;
  return { ms, status: response.status, bytes: Buffer.byteLength(text), body: JSON.parse(text) as GraphQLBody };
}

// ---------------------------------------------------------------------------
// Workloads and the interleaved runner
// ---------------------------------------------------------------------------

/** What to send for a workload: the same operation and token to every variant, only the URL differs. */
export interface WorkloadRequest {
  url(variant: Variant): string;
  token: string;
  query: string;
  variables?: Record<string, unknown>;
  /** Rows (records) in a response's data; both variants must return the same number. */
  rows(data: Record<string, unknown>): number;
  /** Error codes a response may carry without failing the run (e.g. FORBIDDEN). */
  allowedErrorCodes?: readonly string[];
  /** Extra facts for the report, e.g. which organization was queried. */
  notes?: string[];
}

/** A named operation; prepare() builds its request from the run's context (ids, tokens). */
export interface Workload<C> {
  name: string;
  description: string;
  prepare(context: C): Promise<WorkloadRequest>;
}

export type PreparedWorkload = WorkloadRequest & { name: string; description: string };

export async function prepareWorkload<C>(workload: Workload<C>, context: C): Promise<PreparedWorkload> {
  return { ...(await workload.prepare(context)), name: workload.name, description: workload.description };
}

export interface Sample {
  round: number;
  /** 0 when this variant was sent first in its round. */
  position: number;
  ms: number;
  statements: number;
  bytes: number;
  rows: number;
  /** Allowed errors (by code) in the response. */
  allowedErrors: number;
}

export interface WorkloadResult {
  name: string;
  description: string;
  notes: string[];
  /** Variant name -> timed samples (warm-up excluded). */
  samples: Record<string, Sample[]>;
}

export interface RunOptions {
  rounds: number;
  warmup: number;
  log?: (message: string) => void;
}

/**
 * Round k sends the operation once to every variant, one request at a time,
 * rotating which variant goes first, so drift and noise on the machine fall
 * on every variant alike. Warm-up rounds are sent the same way and discarded.
 * Every response is checked: HTTP 200, no errors but the allowed codes, data
 * present and the same number of rows from every variant in every round.
 */
export async function runInterleaved(workload: PreparedWorkload, variants: readonly Variant[], options: RunOptions): Promise<WorkloadResult> {
  const samples: Record<string, Sample[]> = Object.fromEntries(variants.map((variant) => [variant.name, []]));
  let expectedRows: number | undefined;
  const total = options.warmup + options.rounds;
  for (let index = 0; index < total; index++) {
    const round = index - options.warmup;
    const order = rotate(variants, index);
    for (const [position, variant] of order.entries()) {
      const before = variant.statements.count;
      const response = await timedPost(workload.url(variant), workload.token, workload.query, workload.variables);
      const statements = variant.statements.count - before;
      const { rows, allowedErrors } = check(workload, variant, response);
      if (expectedRows === undefined) expectedRows = rows;
      else if (rows !== expectedRows) {
        throw new Error(`${workload.name}: variant "${variant.name}" returned ${rows} rows, expected ${expectedRows} as before`);
      }
      if (round >= 0) samples[variant.name]?.push({ round, position, ms: response.ms, statements, bytes: response.bytes, rows, allowedErrors });
    }
  }
  options.log?.(`${workload.name}: ${options.rounds} rounds done`);
  return { name: workload.name, description: workload.description, notes: workload.notes ?? [], samples };
}

function rotate<T>(items: readonly T[], by: number): T[] {
  const shift = by % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

function check(workload: PreparedWorkload, variant: Variant, response: TimedResponse): { rows: number; allowedErrors: number } {
  const where = `${workload.name} on "${variant.name}"`;
  if (response.status !== 200) throw new Error(`${where}: HTTP ${response.status}: ${JSON.stringify(response.body).slice(0, 500)}`);
  const errors = response.body.errors ?? [];
  const allowed = new Set(workload.allowedErrorCodes ?? []);
  const unexpected = errors.filter((error) => !allowed.has(String(error.extensions?.['code'])));
  if (unexpected.length > 0) {
    throw new Error(`${where}: ${unexpected.length} unexpected error(s), first: ${JSON.stringify(unexpected[0])}`);
  }
  const data = response.body.data;
  if (!data) throw new Error(`${where}: no data`);
  const rows = workload.rows(data);
  if (rows === 0) throw new Error(`${where}: no rows came back; the workload measures nothing`);
  return { rows, allowedErrors: errors.length };
}

/** Length of `edges` of the connection at `path` in a response's data (0 when absent). */
export function edgesAt(data: unknown, ...path: string[]): number {
  let node: unknown = data;
  for (const key of path) node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
  const edges = node !== null && typeof node === 'object' ? (node as { edges?: unknown }).edges : undefined;
  return Array.isArray(edges) ? edges.length : 0;
}

// ---------------------------------------------------------------------------
// Statistics and report
// ---------------------------------------------------------------------------

/** Nearest-rank percentile (p in 0..100) of the values; the median is p50 interpolated. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] as number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

export interface VariantSummary {
  median: number;
  p90: number;
  statements: number;
  statementsMin: number;
  statementsMax: number;
  bytes: number;
  rows: number;
  allowedErrors: number;
}

export function summarize(samples: readonly Sample[]): VariantSummary {
  const statements = samples.map((sample) => sample.statements);
  return {
    median: median(samples.map((sample) => sample.ms)),
    p90: percentile(
      samples.map((sample) => sample.ms),
      90,
    ),
    statements: median(statements),
    statementsMin: Math.min(...statements),
    statementsMax: Math.max(...statements),
    bytes: median(samples.map((sample) => sample.bytes)),
    rows: samples[0]?.rows ?? 0,
    allowedErrors: Math.max(0, ...samples.map((sample) => sample.allowedErrors)),
  };
}

export function environmentFacts(): { node: string; cpu: string; cores: number } {
  const all = cpus();
  return { node: process.version, cpu: all[0]?.model.trim() ?? 'unknown', cores: all.length };
}

/** The 1-minute load average: other work on the machine competes with the benchmark. */
export function loadAverage(): number {
  return loadavg()[0] ?? Number.NaN;
}

export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[], align?: readonly ('l' | 'r')[]): string {
  const rule = header.map((_, index) => ((align?.[index] ?? 'l') === 'r' ? '---:' : '---'));
  return [header, rule, ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

export function formatMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

export async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFile(path, `${JSON.stringify(value, null, 2)}\n`);
}
