import { randomBytes } from 'node:crypto';
import { cp, readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import pg from 'pg';
import { loadConfig, type Config } from '../src/config.js';
import { createLogger, type Logger } from '../src/logger.js';
import { mintDevelopmentToken, type Role } from '../src/auth/index.js';
import { readDevelopmentPrincipals, type DevelopmentPrincipals } from '../src/db/seed/index.js';
import type { Database } from '../src/db/index.js';
import { CRYPTO_VERSION_ENCRYPTED, ENCRYPTED_TABLES, boundRowId } from '../src/db/encryption.js';
import { toBuffer, type FieldCipher } from '../src/crypto/index.js';
import { startApi, type Api } from '../src/runtime.js';
import { startGateway } from '../src/gateway/server.js';
import { startSubgraph, type RunningServer } from '../src/subgraphs/server.js';
import { invalidateCareTeamMembership } from '../src/subgraphs/access.js';
import { SUBGRAPH_NAMES, type SubgraphName } from '../src/subgraphs/catalog.js';
import { DatabaseAuditStore, type AuditMetrics } from '../src/audit/index.js';
import { BENCH_BUDGETS } from './processes.js';

/**
 * Shared machinery of the benchmarks: a database (scratch PostgreSQL or
 * PGlite), the API in several variants on that one database, tokens, timed
 * requests, an interleaved runner, statistics, Markdown helpers, options
 * and the run's skeleton. Nothing here knows a particular workload:
 * bench/workloads.ts holds the ones the benchmarks share, each benchmark its
 * own; bench/report.ts lays out the reports and the JSON.
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

/**
 * An empty database `phi_bench_<random>` on the server of `serverUrl`, or,
 * with `template`, a copy of that database (CREATE DATABASE ... TEMPLATE,
 * a file-level copy: same rows, same bytes); drop() removes it.
 *
 * PostgreSQL refuses to copy a database anyone is connected to, so the
 * template's own users must have disconnected; connections still lingering
 * (a pool closing) are terminated. Only pass a scratch database of this run.
 */
export async function createScratchDatabase(serverUrl: string, template?: string): Promise<ScratchDatabase> {
  const name = `phi_bench_${randomBytes(6).toString('hex')}`;
  await withClient(serverUrl, async (client) => {
    if (!template) return client.query(`create database "${name}"`);
    for (let attempt = 1; ; attempt++) {
      await client.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [template]);
      try {
        return await client.query(`create database "${name}" template "${template}"`);
      } catch (error) {
        // 55006 object_in_use: "source database is being accessed by other users"
        if (attempt >= 10 || (error as { code?: string }).code !== '55006') throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  });
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
// Stored forms: the plaintext copy, crypto versions, compaction
// ---------------------------------------------------------------------------

/** A row as the database driver returns it. */
export type Row = Record<string, unknown>;

/**
 * Turns a database into its pre-encryption form, as the API would find a
 * database written before field encryption: for every table in
 * ENCRYPTED_TABLES, each encrypted column is decrypted with the cipher of
 * the API serving that database and written back as its UTF-8 bytes, with
 * crypto_version 0. Blind-index columns stay (computed from the plaintext
 * with the key ring's index key, they still find the rows). Keyset
 * batches, one UPDATE ... FROM (VALUES ...) each.
 *
 * Run it after that API started: at start, outside production, the API
 * encrypts every crypto_version 0 row it finds (encryptPlaintextRows), and
 * only then.
 */
export async function storeAsPlaintext(db: Database, cipher: FieldCipher, batchSize: number, log: (message: string) => void): Promise<Record<string, number>> {
  const converted: Record<string, number> = {};
  for (const [table, spec] of Object.entries(ENCRYPTED_TABLES)) {
    const columns = spec.columns;
    const started = performance.now();
    let last: string | undefined;
    let done = 0;
    for (;;) {
      const rows = await db
        .fork()
        .execute<Row[]>(
          `select "id", ${columns.map((column) => `"${column}"`).join(', ')}, "crypto_version"${spec.labelled ? ', "security_labels"' : ''} from "${table}"${last ? ' where "id" > ?' : ''} order by "id" limit ?`,
          last ? [last, batchSize] : [batchSize],
        );
      if (rows.length === 0) break;
      const parameters: unknown[] = [];
      for (const row of rows) {
        const rowId = String(row['id']);
        if (Number(row['crypto_version']) !== CRYPTO_VERSION_ENCRYPTED) {
          throw new Error(`${table} row ${rowId} has crypto_version ${String(row['crypto_version'])}; the seeded copy should hold ciphertext only`);
        }
        parameters.push(rowId);
        for (const column of columns) {
          const stored = row[column] as Uint8Array | null;
          // In labelled tables the row's labels are bound with its id (a plaintext row is read without, like any crypto_version 0 row).
          parameters.push(stored === null ? null : Buffer.from(await cipher.decrypt(toBuffer(stored), { table, column, rowId: boundRowId(spec, row) }), 'utf8'));
        }
      }
      const tuple = `(?::uuid, ${columns.map(() => '?::bytea').join(', ')})`;
      await db.fork().execute(
        `update "${table}" as t set ${columns.map((column) => `"${column}" = v."${column}"`).join(', ')}, "crypto_version" = 0
         from (values ${rows.map(() => tuple).join(', ')}) as v("id", ${columns.map((column) => `"${column}"`).join(', ')})
         where t."id" = v."id"`,
        parameters,
        'run',
      );
      done += rows.length;
      last = String(rows.at(-1)?.['id']);
      if (rows.length < batchSize) break;
    }
    converted[table] = done;
    log(`plaintext copy: ${table}: ${done} rows in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  return converted;
}

/** Rows of the encrypted tables by crypto_version: the encrypted copy must hold 1 only, the plaintext copy 0 only. */
export async function cryptoVersions(db: Database): Promise<Record<string, Record<string, number>>> {
  const result: Record<string, Record<string, number>> = {};
  for (const table of Object.keys(ENCRYPTED_TABLES)) {
    const rows = await db.fork().execute<{ version: number; rows: number }[]>(
      `select "crypto_version"::int as "version", count(*)::int as "rows" from "${table}" group by 1 order by 1`,
    );
    result[table] = Object.fromEntries(rows.map((row) => [String(row.version), Number(row.rows)]));
  }
  return result;
}

export function expectOnly(versions: Record<string, Record<string, number>>, version: number, variant: string): void {
  for (const [table, counts] of Object.entries(versions)) {
    const other = Object.entries(counts).filter(([key, rows]) => key !== String(version) && rows > 0);
    if (other.length > 0 || !counts[String(version)]) {
      throw new Error(`the ${variant} copy's ${table} should hold crypto_version ${version} rows only, has ${JSON.stringify(counts)}`);
    }
  }
}

/**
 * VACUUM FULL + ANALYZE of the encrypted tables of a copy: the plaintext
 * copy has just had every row of them rewritten (dead tuples, new row
 * versions placed anywhere), so both copies are compacted and analyzed
 * alike, and differ only in what the columns hold.
 */
export async function compact(db: Database): Promise<void> {
  for (const table of Object.keys(ENCRYPTED_TABLES)) await db.fork().execute(`vacuum (full, analyze) "${table}"`, [], 'run');
}

/** Bytes of the encrypted tables (heap, TOAST and indexes) of a copy. */
export async function tableBytes(db: Database): Promise<number> {
  const tables = Object.keys(ENCRYPTED_TABLES);
  const [row] = await db
    .fork()
    .execute<{ bytes: string }[]>(`select sum(pg_total_relation_size(c.oid))::bigint::text as "bytes" from pg_class c where c.relname in (${tables.map(() => '?').join(', ')}) and c.relkind = 'r'`, tables);
  return Number(row?.bytes ?? 0);
}

// ---------------------------------------------------------------------------
// The API in variants
// ---------------------------------------------------------------------------

/**
 * One way of serving the API. The variants of a run serve the same database
 * (startVariants) or identical copies of one seeded database
 * (startVariantsOnCopies).
 */
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
  /**
   * Field values decrypted so far by the cipher serving this variant
   * (FieldCipher.decryptions). Read like `statements`: the change across
   * one request is that request's count, even when the counter is shared.
   */
  decryptions(): number;
  /**
   * Audit batches written (and failed) by this variant's audit plugins so
   * far. A variant started without the audit trail never counts any.
   */
  auditMetrics: AuditMetrics;
}

export interface VariantSpec {
  name: string;
  /** Serve the subgraphs without the graphql-shield field rules (row scopes still apply). */
  unprotected: boolean;
  /** Serve the subgraphs without the audit plugin (no audit rows are written; the per-field collection still runs). */
  unaudited?: boolean;
  /** Serve rows marked unencrypted (the plaintext copies) as UTF-8 plaintext: the API without decryption. */
  plaintext?: boolean;
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

/** Variants on copies of one database: each variant's own complete API, in the order of `variants`. */
export interface CopiesStack extends BenchStack {
  apis: Api[];
  /** Where each variant's copy lives (database name or folder), in the order of `variants`. */
  copies: string[];
  /** The copies asked for with `extraCopies`, by name, served by nobody yet. */
  extras: Record<string, DatabaseCopy>;
  /** How long seeding took. */
  seedSeconds: number;
}

/** A copy of the seeded database that no API serves: what an API (or `npm start`) needs to open it. */
export interface DatabaseCopy {
  /** The scratch database's URL (PostgreSQL), or undefined for PGlite. */
  url: string | undefined;
  /** The data folder: the seeded one's key ring, signing key and principals; for PGlite, the database too. */
  dataDir: string;
  /** Database name or folder, for the report. */
  location: string;
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
  /**
   * startVariantsOnCopies only: names of further copies of the seeded
   * database to make (before any variant connects) and leave unserved, e.g.
   * for a server in a child process or a database to grow. Removed by stop().
   */
  extraCopies?: readonly string[];
}

/** Cleanup steps run in reverse order; the stop function runs them all once, even when some fail. */
function cleanupList(): { push: (cleanup: () => Promise<unknown>) => void; stop: () => Promise<void> } {
  const cleanups: (() => Promise<unknown>)[] = [];
  return {
    push: (cleanup) => void cleanups.push(cleanup),
    stop: async () => {
      const errors: unknown[] = [];
      for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => errors.push(error));
      cleanups.length = 0;
      if (errors.length > 0) throw new AggregateError(errors, 'the benchmark stack did not stop cleanly');
    },
  };
}


/** The API's configuration for a benchmark: random ports, silent, no seeding unless asked, PGlite in `dataDir` unless a URL is given. */
function benchConfig(dataDir: string, databaseUrl: string | undefined, redisUrl: string | undefined): Config {
  return loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    PATIENT_SUBGRAPH_PORT: '0',
    CLINICAL_SUBGRAPH_PORT: '0',
    BILLING_SUBGRAPH_PORT: '0',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    SEED_PATIENTS: '0',
    ...BENCH_BUDGETS,
    ...(databaseUrl && { DATABASE_URL: databaseUrl }),
    ...(redisUrl && { REDIS_URL: redisUrl }),
  });
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
  const cleanups = cleanupList();
  options.onStop?.(cleanups.stop);
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
    const config = benchConfig(dataDir, databaseUrl, options.redisUrl);
    const logger = createLogger(config.logLevel);

    const started = performance.now();
    log(`seeding ${options.patients} patients and starting the "${first.name}" API`);
    const firstCounter = { count: 0 };
    const api = await startApi(config, logger, {
      seedPatients: options.patients,
      unprotectedForBenchmark: first.unprotected,
      unauditedForBenchmark: first.unaudited ?? false,
      plaintextForBenchmark: first.plaintext ?? false,
      onStatement: () => (firstCounter.count += 1),
    });
    cleanups.push(() => api.stop());
    log(`seeded ${api.seeded} patients in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    const variants: Variant[] = [describeApi(first.name, api, firstCounter)];

    for (const spec of others) {
      if (options.database === 'postgres') {
        const counter = { count: 0 };
        const other = await startApi(config, logger, {
          seedPatients: options.patients,
          unprotectedForBenchmark: spec.unprotected,
          unauditedForBenchmark: spec.unaudited ?? false,
          plaintextForBenchmark: spec.plaintext ?? false,
          onStatement: () => (counter.count += 1),
        });
        cleanups.push(() => other.stop());
        if (other.seeded !== 0) throw new Error(`the "${spec.name}" API seeded the database again`);
        variants.push(describeApi(spec.name, other, counter));
      } else {
        const auditMetrics: AuditMetrics = { writes: 0, failures: 0 };
        const servers = await attachVariant(api, logger, config, spec, auditMetrics);
        cleanups.push(async () => {
          for (const server of servers.reverse()) await server.stop();
        });
        const gateway = servers.at(-1);
        if (!gateway) throw new Error('no gateway was started');
        const cipher = api.sealer?.cipher;
        variants.push({
          name: spec.name,
          gatewayUrl: gateway.url,
          subgraphUrls: Object.fromEntries(SUBGRAPH_NAMES.map((name, index) => [name, servers[index]?.url ?? ''])) as Record<SubgraphName, string>,
          statements: firstCounter,
          decryptions: () => cipher?.decryptions ?? 0,
          auditMetrics,
        });
      }
      log(`started the "${spec.name}" API`);
    }

    return {
      ...(await commonStack(api, config, dataDir, options)),
      sharing:
        options.database === 'postgres'
          ? 'one complete API per variant (own pool), all running at once on one scratch database'
          : 'one PGlite handle; the first variant is a complete API, the others a gateway and subgraphs on its handle',
      variants,
      seeded: api.seeded,
      stop: cleanups.stop,
    };
  } catch (error) {
    await cleanups.stop().catch(() => undefined);
    throw error;
  }
}

/**
 * Starts every variant on its own copy of one freshly seeded database, each
 * a complete API (startApi) with its own pool or PGlite handle, its own
 * statement counter and its own cipher (and so its own decryption counter),
 * all running at once. The copies start identical, so a variant can then
 * change its copy (e.g. store it differently) and still serve the same data.
 *
 * The database is seeded by an API started for that alone and stopped
 * again, because a database can only be copied while nobody uses it:
 *
 * PostgreSQL: the seeded scratch database is the first variant's; every
 * other variant gets `CREATE DATABASE ... TEMPLATE <seeded>`, a file-level
 * copy, made before any variant connects. All share one data folder, so
 * one development key ring (KEKs), signing key and list of principals; the
 * data keys are rows of the copied database, so the copies share those too.
 *
 * PGlite: one data folder holds one database, so every other variant gets a
 * copy of the whole seeded data folder (database, key ring, signing key,
 * principals). Tokens minted with the first folder's key verify on all.
 */
export async function startVariantsOnCopies(options: StackOptions): Promise<CopiesStack> {
  const log = options.log ?? (() => undefined);
  if (options.variants.length === 0) throw new Error('at least one variant is needed');
  const cleanups = cleanupList();
  options.onStop?.(cleanups.stop);
  try {
    const dataDir = await mkdtemp(join(tmpdir(), 'phi-bench-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    let seededDatabase: ScratchDatabase | undefined;
    if (options.database === 'postgres') {
      seededDatabase = await createScratchDatabase(options.postgresUrl);
      const created = seededDatabase;
      cleanups.push(() => created.drop());
      log(`scratch database ${created.name} on ${new URL(options.postgresUrl).host}`);
    }
    const firstConfig = benchConfig(dataDir, seededDatabase?.url, options.redisUrl);
    const logger = createLogger(firstConfig.logLevel);

    const started = performance.now();
    log(`seeding ${options.patients} patients`);
    const seeder = await startApi(firstConfig, logger, { seedPatients: options.patients, mode: { kind: 'subgraph', name: 'patient' } });
    let seederRunning = true;
    const stopSeeder = async () => {
      if (seederRunning) await seeder.stop();
      seederRunning = false;
    };
    cleanups.push(stopSeeder);
    const seeded = seeder.seeded;
    await stopSeeder();
    if (seeded === 0) throw new Error('the scratch database was not seeded');
    const seedSeconds = (performance.now() - started) / 1000;
    log(`seeded ${seeded} patients in ${seedSeconds.toFixed(1)} s`);

    const configs: Config[] = [firstConfig];
    const copies: string[] = [seededDatabase?.name ?? dataDir];
    /** A copy of the seeded database (all of it, made while nobody is connected), dropped or removed by stop(). */
    const copySeeded = async (): Promise<DatabaseCopy> => {
      if (seededDatabase) {
        const copy = await createScratchDatabase(options.postgresUrl, seededDatabase.name);
        cleanups.push(() => copy.drop());
        return { url: copy.url, dataDir, location: copy.name };
      }
      const copyDir = await mkdtemp(join(tmpdir(), 'phi-bench-'));
      cleanups.push(() => rm(copyDir, { recursive: true, force: true }));
      await cp(dataDir, copyDir, { recursive: true });
      return { url: undefined, dataDir: copyDir, location: copyDir };
    };
    for (const spec of options.variants.slice(1)) {
      const copy = await copySeeded();
      configs.push(benchConfig(copy.dataDir, copy.url, options.redisUrl));
      copies.push(copy.location);
      log(`copied the seeded database for "${spec.name}": ${copy.location}`);
    }
    const extras: Record<string, DatabaseCopy> = {};
    for (const name of options.extraCopies ?? []) {
      const copy = await copySeeded();
      extras[name] = copy;
      log(`copied the seeded database for ${name}: ${copy.location}`);
    }

    const apis: Api[] = [];
    const variants: Variant[] = [];
    for (const [index, spec] of options.variants.entries()) {
      const counter = { count: 0 };
      const api = await startApi(configs[index] as Config, logger, {
        seedPatients: options.patients,
        unprotectedForBenchmark: spec.unprotected,
        unauditedForBenchmark: spec.unaudited ?? false,
        plaintextForBenchmark: spec.plaintext ?? false,
        onStatement: () => (counter.count += 1),
      });
      cleanups.push(() => api.stop());
      if (api.seeded !== 0) throw new Error(`the "${spec.name}" API found its copy empty and seeded it`);
      apis.push(api);
      variants.push(describeApi(spec.name, api, counter));
      log(`started the "${spec.name}" API on ${copies[index]}`);
    }

    const first = apis[0] as Api;
    return {
      ...(await commonStack(first, firstConfig, dataDir, options)),
      sharing:
        options.database === 'postgres'
          ? 'one complete API per variant (own pool), each on its own copy (CREATE DATABASE ... TEMPLATE) of one seeded scratch database, all running at once'
          : 'one complete API per variant (own PGlite handle), each on its own copy of one seeded data folder, all running at once',
      variants,
      seeded,
      apis,
      copies,
      extras,
      seedSeconds,
      stop: cleanups.stop,
    };
  } catch (error) {
    await cleanups.stop().catch(() => undefined);
    throw error;
  }
}

/**
 * One more variant, a complete API (startApi) on a copy made with
 * `extraCopies` (possibly changed since, e.g. grown), with its own
 * statement counter and cipher; stop() stops it (the copy stays until the
 * stack stops).
 */
export async function startVariantOnCopy(stack: CopiesStack, copy: DatabaseCopy, spec: VariantSpec): Promise<{ variant: Variant; api: Api; stop: () => Promise<void> }> {
  const config = benchConfig(copy.dataDir, copy.url, stack.config.redisUrl);
  const counter = { count: 0 };
  const api = await startApi(config, createLogger(config.logLevel), {
    seedPatients: 0,
    unprotectedForBenchmark: spec.unprotected,
    unauditedForBenchmark: spec.unaudited ?? false,
    plaintextForBenchmark: spec.plaintext ?? false,
    onStatement: () => (counter.count += 1),
  });
  let running = true;
  const stop = async () => {
    if (running) await api.stop();
    running = false;
  };
  return { variant: describeApi(spec.name, api, counter), api, stop };
}

/** What every stack has: the first API's database and configuration, the principals the seeder wrote, tokens. */
async function commonStack(
  api: Api,
  config: Config,
  dataDir: string,
  options: StackOptions,
): Promise<Pick<BenchStack, 'database' | 'config' | 'db' | 'principals' | 'cacheKind' | 'token'>> {
  if (!api.db) throw new Error('the API started without a database');
  const db = api.db;
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
    config,
    db,
    principals,
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
  };
}

function describeApi(name: string, api: Api, statements: { count: number }): Variant {
  if (!api.gateway) throw new Error('the API started without a gateway');
  const subgraphUrls = {} as Record<SubgraphName, string>;
  for (const subgraph of SUBGRAPH_NAMES) {
    const server = api.subgraphs[subgraph];
    if (!server) throw new Error(`subgraph ${subgraph} is not running`);
    subgraphUrls[subgraph] = server.url;
  }
  const cipher = api.sealer?.cipher;
  return { name, gatewayUrl: api.gateway.url, subgraphUrls, statements, decryptions: () => cipher?.decryptions ?? 0, auditMetrics: api.auditMetrics };
}

/** Three subgraphs and a gateway on an existing API's database, cache and verifier, counting audit writes in `auditMetrics`; the gateway is last. */
async function attachVariant(api: Api, logger: Logger, config: Config, spec: VariantSpec, auditMetrics: AuditMetrics): Promise<RunningServer[]> {
  const db = api.db;
  const sealer = api.sealer;
  if (!db || !sealer) throw new Error('the API has no database');
  const servers: RunningServer[] = [];
  try {
    for (const name of SUBGRAPH_NAMES) {
      servers.push(
        await startSubgraph(name, { db, cache: api.cache, sealer, auditStore: new DatabaseAuditStore(db), auditMetrics, alertThresholds: config.alertThresholds, verifier: api.verifier, logger, unprotectedForBenchmark: spec.unprotected, unauditedForBenchmark: spec.unaudited ?? false, plaintextForBenchmark: spec.plaintext ?? false, operationLimits: config.operationLimits, rateLimitOverrides: config.rateLimitOverrides }, config.subgraphs.host, 0),
      );
    }
    const subgraphUrls = Object.fromEntries(SUBGRAPH_NAMES.map((name, index) => [name, servers[index]?.url ?? ''])) as Record<SubgraphName, string>;
    servers.push(
      await startGateway(
        { verifier: api.verifier, logger, subgraphUrls, ready: async () => (await db.ping()) && (await api.cache.ping()), operationLimits: config.operationLimits, cache: api.cache, rateLimitOverrides: config.rateLimitOverrides },
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
  /** The body as received. */
  text: string;
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
  return { ms, status: response.status, bytes: Buffer.byteLength(text), body: JSON.parse(text) as GraphQLBody, text };
}

/**
 * The gateway's error when a subgraph connection it reused from its pool
 * was closed under it: the subgraph servers close idle keep-alive
 * connections after Node's default 5 s, and the gateway's agent (@npmcli/
 * agent through make-fetch-happen, no idle timeout, oldest socket first,
 * no retry) can pick one just as it closes. An API defect, not a
 * benchmark one; the benchmarks retry such a request once and count it
 * (`connectionResets`) so that a long run is not lost to it, and the suite
 * reports the count.
 */
const CONNECTION_RESET = /request to http:\/\/\S+ failed, reason: (?:read ECONNRESET|socket hang up)/;

/** Requests retried after a gateway-to-subgraph connection reset (see CONNECTION_RESET), with the last message. */
export const connectionResets = { count: 0, last: '' };

/** True (and counted) when a response is the gateway's report of a reset subgraph connection. */
export function isConnectionReset(text: string): boolean {
  const match = text.includes('"errors":') ? CONNECTION_RESET.exec(text) : null;
  if (!match) return false;
  connectionResets.count += 1;
  connectionResets.last = match[0];
  progress(`gateway-to-subgraph connection reset, retrying once: ${match[0]}`);
  return true;
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
  /**
   * Every variant must return exactly the same body (byte for byte) in
   * every round, e.g. when the variants differ only in how the same data is
   * stored. Checked on warm-up rounds too; a difference stops the run.
   */
  sameBody?: boolean;
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
  /** Field values the variant's cipher decrypted for this request. */
  decryptions: number;
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
  /** Runs once, after the warm-up rounds and before the first timed request (e.g. to take counts that the timed rounds change). */
  beforeTimedRounds?: () => Promise<void>;
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
  let expectedBody: { variant: string; round: number; text: string; body: GraphQLBody } | undefined;
  const total = options.warmup + options.rounds;
  for (let index = 0; index < total; index++) {
    const round = index - options.warmup;
    if (round === 0) await options.beforeTimedRounds?.();
    const order = rotate(variants, index);
    for (const [position, variant] of order.entries()) {
      let before = variant.statements.count;
      let decryptionsBefore = variant.decryptions();
      let response = await timedPost(workload.url(variant), workload.token, workload.query, workload.variables);
      if (isConnectionReset(response.text)) {
        // Counted from the retry alone: the failed attempt may have done part of the work.
        before = variant.statements.count;
        decryptionsBefore = variant.decryptions();
        response = await timedPost(workload.url(variant), workload.token, workload.query, workload.variables);
      }
      const statements = variant.statements.count - before;
      const decryptions = variant.decryptions() - decryptionsBefore;
      const { rows, allowedErrors } = check(workload, variant, response);
      if (expectedRows === undefined) expectedRows = rows;
      else if (rows !== expectedRows) {
        throw new Error(`${workload.name}: variant "${variant.name}" returned ${rows} rows, expected ${expectedRows} as before`);
      }
      if (workload.sameBody) {
        if (!expectedBody) expectedBody = { variant: variant.name, round, text: response.text, body: response.body };
        else if (response.text !== expectedBody.text) {
          throw new Error(
            `${workload.name}: variant "${variant.name}" (round ${round}) returned a different body from "${expectedBody.variant}" (round ${expectedBody.round}): ` +
              describeDifference(expectedBody.body, response.body),
          );
        }
      }
      if (round >= 0) samples[variant.name]?.push({ round, position, ms: response.ms, statements, decryptions, bytes: response.bytes, rows, allowedErrors });
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

/**
 * Where two JSON values first differ, for an error message: the path and
 * both values there, shortened. Values are data of the benchmark's synthetic
 * patients, never real PHI.
 */
export function describeDifference(expected: unknown, actual: unknown, path = '$'): string {
  const difference = firstDifference(expected, actual, path);
  if (!difference) return 'the same JSON value, serialized differently (key order or spacing)';
  const show = (value: unknown) => {
    const text = JSON.stringify(value) ?? 'undefined';
    return text.length > 200 ? `${text.slice(0, 200)}...` : text;
  };
  return `at ${difference.path}: ${show(difference.expected)} vs ${show(difference.actual)}`;
}

function firstDifference(expected: unknown, actual: unknown, path: string): { path: string; expected: unknown; actual: unknown } | undefined {
  if (Object.is(expected, actual)) return undefined;
  const bothObjects = expected !== null && actual !== null && typeof expected === 'object' && typeof actual === 'object';
  if (!bothObjects || Array.isArray(expected) !== Array.isArray(actual)) return { path, expected, actual };
  const left = expected as Record<string, unknown>;
  const right = actual as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(left), ...Object.keys(right)])];
  for (const key of keys) {
    const inner = firstDifference(left[key], right[key], Array.isArray(expected) ? `${path}[${key}]` : `${path}.${key}`);
    if (inner) return inner;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Closed loop: requests at a fixed concurrency
// ---------------------------------------------------------------------------

/** One request of a closed loop, its body already serialized. */
export interface LoopRequest {
  url: string;
  token: string;
  body: string;
}

/** A workload as a closed loop sends it: the operation serialized once. */
export function loopRequest(url: string, token: string, query: string, variables?: Record<string, unknown>): LoopRequest {
  return { url, token, body: JSON.stringify({ query, variables }) };
}

export interface LoopOptions {
  /** Requests in flight at once: each client sends its next request as soon as it has read the last response. */
  concurrency: number;
  /** Start no new request after this many seconds... */
  seconds?: number;
  /** ...or once this many have been started (whichever comes first). */
  requests?: number;
  /** The request to send as the index-th one (0-based, in the order they are started). */
  request(index: number): LoopRequest;
  /** After each response, with the number of responses so far. */
  onResponse?(completed: number): void;
}

export interface LoopResult {
  requests: number;
  /** From the first request sent to the last response read. */
  seconds: number;
  /** Per request, ms, in the order they completed. */
  latencies: number[];
}

/**
 * A closed loop of `concurrency` clients. Every response must be HTTP 200
 * and carry no GraphQL errors (checked on the text, without parsing it, to
 * keep the client's own work small: the client shares the cores with the
 * server); the first failure stops the loop and is thrown.
 */
export async function runClosedLoop(options: LoopOptions): Promise<LoopResult> {
  if (options.seconds === undefined && options.requests === undefined) throw new Error('a closed loop needs seconds or requests');
  const latencies: number[] = [];
  const began = performance.now();
  const deadline = options.seconds === undefined ? Number.POSITIVE_INFINITY : began + options.seconds * 1000;
  const limit = options.requests ?? Number.POSITIVE_INFINITY;
  let started = 0;
  let failure: Error | undefined;
  const client = async () => {
    while (!failure && started < limit && performance.now() < deadline) {
      const request = options.request(started++);
      const send = async () => {
        const sent = performance.now();
        const response = await fetch(request.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${request.token}` },
          body: request.body,
        });
        return { response, text: await response.text(), ms: performance.now() - sent };
      };
      let { response, text, ms } = await send();
      if (isConnectionReset(text)) ({ response, text, ms } = await send());
      latencies.push(ms);
      // A JSON string cannot hold an unescaped quote, so `"errors":` can only be the key.
      if (response.status !== 200 || text.includes('"errors":')) {
        failure ??= new Error(`closed loop: ${request.url} answered HTTP ${response.status}: ${text.slice(0, 500)}`);
      }
      options.onResponse?.(latencies.length);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, client));
  if (failure) throw failure;
  return { requests: latencies.length, seconds: (performance.now() - began) / 1000, latencies };
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
  p99: number;
  statements: number;
  statementsMin: number;
  statementsMax: number;
  decryptions: number;
  decryptionsMin: number;
  decryptionsMax: number;
  bytes: number;
  rows: number;
  allowedErrors: number;
}

export function summarize(samples: readonly Sample[]): VariantSummary {
  const statements = samples.map((sample) => sample.statements);
  const decryptions = samples.map((sample) => sample.decryptions);
  return {
    median: median(samples.map((sample) => sample.ms)),
    p90: percentile(
      samples.map((sample) => sample.ms),
      90,
    ),
    p99: percentile(
      samples.map((sample) => sample.ms),
      99,
    ),
    statements: median(statements),
    statementsMin: Math.min(...statements),
    statementsMax: Math.max(...statements),
    decryptions: median(decryptions),
    decryptionsMin: Math.min(...decryptions),
    decryptionsMax: Math.max(...decryptions),
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

// ---------------------------------------------------------------------------
// Command line, run facts and the main skeleton
// ---------------------------------------------------------------------------

/** A wrong option: reported with the usage, exit code 2. */
export class UsageError extends Error {}

export function integer(name: string, text: string, minimum: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < minimum) throw new UsageError(`--${name} must be an integer >= ${minimum}, got ${text}`);
  return value;
}

/** The options every benchmark takes. */
export interface BenchOptions {
  patients: number;
  rounds: number;
  warmup: number;
  database: DatabaseChoice;
  json: string | undefined;
  only: string[] | undefined;
}

export interface OptionsSpec<K extends string> {
  usage: string;
  /** Defaults of --patients and --rounds, and of --warmup (3 unless given). */
  patients: string;
  rounds: string;
  warmup?: string;
  /** The workload names --only accepts. */
  workloads: readonly string[];
  /** The benchmark's own options, all strings, with their defaults; returned unparsed in `extra`. */
  extra?: Record<K, string>;
  /** The benchmark's own on/off options (false unless given); returned in `flags`. */
  flags?: readonly string[];
}

/**
 * Parses the options every benchmark takes (--patients, --rounds, --warmup,
 * --database, --json, --only) and the benchmark's own string options; prints
 * the usage and exits on --help. The database defaults to PostgreSQL when
 * DATABASE_URL is set, else PGlite.
 */
export function parseBenchOptions<K extends string = never>(
  argv: string[],
  spec: OptionsSpec<K>,
): BenchOptions & { extra: Record<K, string>; flags: Record<string, boolean> } {
  const extraNames = Object.keys(spec.extra ?? {}) as K[];
  const options: NonNullable<ParseArgsConfig['options']> = {
    patients: { type: 'string', default: spec.patients },
    rounds: { type: 'string', default: spec.rounds },
    warmup: { type: 'string', default: spec.warmup ?? '3' },
    database: { type: 'string' },
    json: { type: 'string' },
    only: { type: 'string' },
    ...Object.fromEntries(extraNames.map((name) => [name, { type: 'string', default: spec.extra?.[name] }])),
    ...Object.fromEntries((spec.flags ?? []).map((name) => [name, { type: 'boolean', default: false }])),
    help: { type: 'boolean', short: 'h', default: false },
  };
  const { values } = parseArgs({ args: argv, strict: true, allowPositionals: false, options });
  const text = (name: string) => {
    const value = values[name];
    return typeof value === 'string' ? value : undefined;
  };
  if (values['help']) {
    console.log(spec.usage);
    process.exit(0);
  }
  const database = text('database') ?? (process.env['DATABASE_URL'] ? 'postgres' : 'pglite');
  if (database !== 'postgres' && database !== 'pglite') throw new UsageError(`--database must be pglite or postgres, got ${database}`);
  return {
    patients: integer('patients', text('patients') ?? spec.patients, 1),
    rounds: integer('rounds', text('rounds') ?? spec.rounds, 1),
    warmup: integer('warmup', text('warmup') ?? spec.warmup ?? '3', 0),
    database,
    json: text('json'),
    only: workloadNames(text('only'), spec.workloads),
    extra: Object.fromEntries(extraNames.map((name) => [name, text(name) ?? ''])) as Record<K, string>,
    flags: Object.fromEntries((spec.flags ?? []).map((name) => [name, values[name] === true])),
  };
}

/** The names in a `--only a,b` list, all of which must be known. */
export function workloadNames(text: string | undefined, known: readonly string[]): string[] | undefined {
  const only = text?.split(',').map((name) => name.trim()).filter(Boolean);
  const unknown = only?.filter((name) => !known.includes(name)) ?? [];
  if (unknown.length > 0) throw new UsageError(`unknown workload(s) ${unknown.join(', ')}; known: ${known.join(', ')}`);
  return only;
}

/** The command as it was typed (npm script or tsx), for the report. */
export function commandLine(argv: readonly string[]): string {
  const args = argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`)).join(' ');
  const script = process.env['npm_lifecycle_event'];
  if (script) return `npm run ${script}${args ? ` -- ${args}` : ''}`;
  return `tsx ${relative(process.cwd(), process.argv[1] ?? 'bench')}${args ? ` ${args}` : ''}`;
}

/** Progress messages go to stderr, so stdout holds the report alone. */
export const progress = (message: string) => console.error(`[bench] ${message}`);

/**
 * Writes `section` (which begins with `start` and ends with `end`) into the
 * Markdown file at `path`: in place of the section there already, or at the
 * end. The benchmarks that own one section of BENCHMARKS.md write it so.
 */
export async function writeReportSection(path: string, start: string, end: string, section: string): Promise<void> {
  const current = await readFile(path, 'utf8').catch(() => '');
  const from = current.indexOf(start);
  const to = current.indexOf(end);
  const next = from >= 0 && to > from ? `${current.slice(0, from)}${section}${current.slice(to + end.length)}` : `${current.trimEnd()}\n\n${section}\n`;
  await writeFile(path, next);
  progress(`written to ${path}`);
}

/** `median (min–max)` of a few rounds. */
export function medianRange(values: readonly number[], digits = 0): string {
  return `${median(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`;
}

/** What a report says about the run. */
export interface Meta {
  command: string;
  date: string;
  node: string;
  cpu: string;
  cores: number;
  /** 1-minute load average when the timed rounds began and ended. */
  load: [number, number];
  database: string;
  sharing: string;
  cache: string;
  patients: number;
  rounds: number;
  warmup: number;
  seconds?: number;
}

/** The report's list of run facts. */
export function metaLines(meta: Meta): string[] {
  return [
    `- command: \`${meta.command}\``,
    `- date: ${meta.date}`,
    `- node: ${meta.node}`,
    `- cpu: ${meta.cpu} (${meta.cores} cores); load average ${meta.load[0].toFixed(2)} at the first timed round, ${meta.load[1].toFixed(2)} at the last`,
    `- database: ${meta.database}`,
    `- variants: ${meta.sharing}; cache: ${meta.cache}`,
    `- data: ${meta.patients} synthetic patients; ${meta.warmup} warm-up + ${meta.rounds} timed rounds per workload, variants alternating first`,
  ];
}

/** A benchmark's stack, started, with what the run facts need. */
export interface StartedRun<S extends BenchStack> {
  argv: readonly string[];
  options: BenchOptions;
  /** performance.now() when the run began. */
  began: number;
  /** The PostgreSQL server: DATABASE_URL, or else the local one. */
  postgresUrl: string;
  stack: S;
}

/**
 * Starts a benchmark's variants with `start` (startVariants or
 * startVariantsOnCopies) as its options say, on DATABASE_URL's server (or
 * the local one) and with Redis when REDIS_URL is set.
 */
export async function startRun<S extends BenchStack>(
  argv: readonly string[],
  options: BenchOptions,
  variants: VariantSpec[],
  onStop: MainControl['onStop'],
  start: (stackOptions: StackOptions) => Promise<S>,
): Promise<StartedRun<S>> {
  const began = performance.now();
  const postgresUrl = process.env['DATABASE_URL'] || LOCAL_POSTGRES;
  if (options.database === 'pglite' && !process.env['DATABASE_URL']) {
    progress('using PGlite (set DATABASE_URL or pass --database postgres for the PostgreSQL figures)');
  }
  const stack = await start({
    database: options.database,
    postgresUrl,
    redisUrl: process.env['REDIS_URL'] || undefined,
    patients: options.patients,
    variants,
    log: progress,
    onStop,
  });
  return { argv, options, began, postgresUrl, stack };
}

export interface WorkloadHooks {
  /** Runs once per workload, after its warm-up rounds and before its first timed request. */
  beforeTimedRounds?: () => Promise<void>;
  /** Runs once per workload, after its timed rounds (checks, counts). */
  afterWorkload?: (result: WorkloadResult) => void | Promise<void>;
}

/**
 * Runs the workloads --only selects, one after the other, interleaved on
 * the variants, with the load average when the first timed round began and
 * the last ended.
 */
export async function runWorkloads<C>(
  workloads: readonly Workload<C>[],
  context: C,
  variants: readonly Variant[],
  options: BenchOptions,
  hooks: WorkloadHooks = {},
): Promise<{ results: WorkloadResult[]; load: [number, number] }> {
  const results: WorkloadResult[] = [];
  const loadBefore = loadAverage();
  for (const workload of workloads.filter((candidate) => !options.only || options.only.includes(candidate.name))) {
    const prepared = await prepareWorkload(workload, context);
    const result = await runInterleaved(prepared, variants, {
      rounds: options.rounds,
      warmup: options.warmup,
      log: progress,
      beforeTimedRounds: hooks.beforeTimedRounds,
    });
    await hooks.afterWorkload?.(result);
    results.push(result);
  }
  return { results, load: [loadBefore, loadAverage()] };
}

/** The run facts of a report, taken when it is written. */
export function runMeta(run: StartedRun<BenchStack>, database: string, load: [number, number]): Meta {
  return {
    command: commandLine(run.argv),
    date: new Date().toISOString(),
    ...environmentFacts(),
    load,
    database,
    sharing: run.stack.sharing,
    cache: run.stack.cacheKind,
    patients: run.options.patients,
    rounds: run.options.rounds,
    warmup: run.options.warmup,
    seconds: (performance.now() - run.began) / 1000,
  };
}

/** The database line of the report. */
export async function describeDatabase(stack: BenchStack, postgresUrl: string): Promise<string> {
  const [version] = await stack.db.fork().execute<{ server_version: string }[]>('show server_version');
  const copies = 'copies' in stack ? 'scratch databases' : 'scratch database';
  return stack.database === 'postgres'
    ? `PostgreSQL ${version?.server_version ?? '?'} at ${new URL(postgresUrl).host} (${copies}, dropped at the end)`
    : `PGlite (embedded PostgreSQL ${version?.server_version ?? '?'}) in ${'copies' in stack ? 'temporary folders' : 'a temporary folder'}`;
}

/** The ratio within each round (the two requests sent back to back), a measure of how settled the median ratio is. */
export function roundRatios(samples: readonly Sample[], baseline: readonly Sample[]): number[] {
  const byRound = new Map(baseline.map((sample) => [sample.round, sample.ms]));
  return samples.flatMap((sample) => {
    const other = byRound.get(sample.round);
    return other ? [sample.ms / other] : [];
  });
}

/** An organization with its number of patients, and a billing specialist account of it. */
export interface Organization {
  id: string;
  name: string;
  patients: number;
  billingSubject: string | undefined;
}

/** The organization holding the most patients, and a billing specialist account of it (for organization-wide billing lists). */
export async function largestOrganization(db: Database): Promise<Organization> {
  const em = db.fork();
  const [largest] = await em.execute<{ id: string; name: string; patients: number }[]>(
    `select o.id, o.name, count(*)::int as patients from patient p join organization o on o.id = p.managing_organization_id
     group by o.id, o.name order by count(*) desc, o.id limit 1`,
  );
  if (!largest) throw new Error('the database has no patients');
  const [account] = await em.execute<{ subject: string }[]>(
    `select subject from app_user where organization_id = ? and 'billing' = any(roles) order by subject limit 1`,
    [largest.id],
  );
  return { ...largest, billingSubject: account?.subject };
}

export interface MainControl {
  /**
   * Registers how to stop something that was started (scratch databases,
   * folders, servers, child processes): every registered function runs once,
   * newest first, at the end, after an error and on Ctrl-C.
   */
  onStop: (stop: () => Promise<void>) => void;
}

/**
 * Runs a benchmark's main function: stops what it started at the end, on
 * an error and on SIGINT/SIGTERM (even during start), prints a UsageError
 * with the usage (exit 2) and any other error (exit 1).
 */
export function runMain(usage: string, main: (control: MainControl) => Promise<void>): void {
  /** Set on SIGINT/SIGTERM: the handler stops the stack and exits; errors from requests cut off meanwhile are expected. */
  let interrupted = false;
  const stops: (() => Promise<void>)[] = [];
  let stopping: Promise<void> | undefined;
  const stopAll = async () => {
    const errors: unknown[] = [];
    for (const stopOne of stops.reverse()) await stopOne().catch((error: unknown) => errors.push(error));
    stops.length = 0;
    if (errors.length > 0) throw new AggregateError(errors, 'the benchmark did not stop cleanly');
  };
  const stop = () => (stopping ??= stopAll());
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = true;
    progress(`${signal}: stopping`);
    const exit = () => process.exit(signal === 'SIGINT' ? 130 : 143);
    stop().then(exit, exit);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const run = async () => {
    try {
      await main({ onStop: (stopFunction) => void stops.push(stopFunction) });
    } finally {
      await stop();
    }
  };
  run().catch((error: unknown) => {
    if (interrupted) return;
    if (error instanceof UsageError) {
      console.error(`${error.message}\n${usage}`);
      process.exit(2);
    }
    console.error(error);
    process.exit(1);
  });
}
