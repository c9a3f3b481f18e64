import type { Config } from './config.js';
import { createTokenVerifier, type TokenVerifier } from './auth/index.js';
import { openCache, revocationList, type Cache, type RevocationList } from './cache/index.js';
import { DatabaseRevocationStore } from './db/revocations.js';
import { databaseRoleProblem } from './db/roles.js';
import { purgeExpiredRows } from './db/housekeeping.js';
import { CHECKPOINT_FOLDER, FolderCheckpointSink, loadSigningKey, writeCheckpoint } from './audit/checkpoints.js';
import { join } from 'node:path';
import { openDatabase, type Database } from './db/index.js';
import { encryptPlaintextRows, openSealer, type Sealer } from './db/encryption.js';
import { labelUnlabelledRows } from './db/labelling.js';
import { readManifest } from './gateway/trusted-documents.js';
import { DatabaseAuditStore, alertOverdueReviews, ensureAuditRetention, type AuditMetrics } from './audit/index.js';
import { isDatabaseEmpty, seedDatabase, writeDevelopmentPrincipals } from './db/seed/index.js';
import { startGateway } from './gateway/server.js';
import type { Logger } from './logger.js';
import { SUBGRAPH_NAMES, type SubgraphName } from './subgraphs/catalog.js';
import { startSubgraph, type RunningServer } from './subgraphs/server.js';
import { createServer } from 'node:http';
import { createApp, healthRoutes, listen, urlHost } from './http.js';
import { createClientTls, describeTransport, type ListenerTls } from './transport/index.js';

/**
 * Starting and stopping the API: the database (migrated, seeded when empty
 * outside production), the cache, the token verifier, the subgraphs and the
 * gateway. main.ts and the integration tests both start it from here.
 */

/** `all`: everything in this process (tests, `--single-process`); `subgraphs`: the three without the gateway (the embedded database's one owner). */
export type Mode = { kind: 'all' } | { kind: 'subgraphs' } | { kind: 'subgraph'; name: SubgraphName } | { kind: 'gateway' };

export interface Api {
  gateway: RunningServer | null;
  subgraphs: Partial<Record<SubgraphName, RunningServer>>;
  db: Database | null;
  cache: Cache;
  verifier: TokenVerifier;
  /** Revocations of this process: in the database (when it has one) and the cache. */
  revocations: RevocationList;
  /** Field encryption of this process (null for a gateway alone). */
  sealer: Sealer | null;
  /** Audit batches written and failed by this process's subgraphs. */
  auditMetrics: AuditMetrics;
  seeded: number;
  stop(): Promise<void>;
}

export interface StartOptions {
  mode?: Mode;
  /** Count SQL statements (tests and benchmarks). */
  onStatement?: (sql: string) => void;
  /** Patients to seed into an empty database; defaults to config.seedPatients. */
  seedPatients?: number;
  /** Benchmarks only: subgraphs without field rules, to measure their cost. Refused in production. */
  unprotectedForBenchmark?: boolean;
  /** Benchmarks only: subgraphs that collect and write no audit trail, to measure its cost. Refused in production. */
  unauditedForBenchmark?: boolean;
  /** Benchmarks only: rows marked unencrypted (crypto_version 0) served as UTF-8 plaintext instead of refused. Refused in production. */
  plaintextForBenchmark?: boolean;
  /**
   * A supervised child: the supervisor has prepared the storage (prepareStorage), so this
   * process only checks that no migration is pending and seeds nothing.
   */
  prepared?: boolean;
}

export async function startApi(config: Config, logger: Logger, options: StartOptions = {}): Promise<Api> {
  const mode = options.mode ?? { kind: 'all' };
  if ((options.unprotectedForBenchmark || options.unauditedForBenchmark || options.plaintextForBenchmark) && config.isProduction) {
    throw new Error('unprotectedForBenchmark, unauditedForBenchmark and plaintextForBenchmark are benchmark settings, refused when NODE_ENV=production');
  }
  const needsDatabase = mode.kind !== 'gateway';
  const cache = await openCache(config.redisUrl, config.redisKeyPrefix, config.transport.redis);
  const auditMetrics: AuditMetrics = { writes: 0, failures: 0 };
  const opened: { db: Database | null } = { db: null };
  const started: RunningServer[] = [];
  const checkpointer: { stop?: () => Promise<void> } = {};
  const closers: (() => void)[] = [];
  const keys: { stop?: () => Promise<void> } = {};
  const stopAll = async () => {
    for (const server of started.reverse()) {
      await server.stop();
      logger.debug({ server: server.name }, 'stopped');
    }
    for (const close of closers) close();
    await checkpointer.stop?.();
    await keys.stop?.();
    await opened.db?.close();
    logger.debug('database closed');
    await cache.close();
    logger.debug('cache closed');
  };
  try {
    logTransport(config, mode, logger);
    let seeded = 0;
    let sealer: Sealer | null = null;
    if (needsDatabase) {
      const db = await openApiDatabase(config, logger, options.onStatement);
      opened.db = db;
      const prepared = await prepareDatabase(db, config, logger, options.prepared ? { checkOnly: true } : { seedPatients: options.seedPatients ?? config.seedPatients });
      sealer = prepared.sealer;
      seeded = prepared.seeded;
      keys.stop = startKeyRefresh(sealer, config, logger);
    }
    // Kept in the database, copied in the cache: an emptied cache is filled again from the database (a gateway alone has none).
    const revocations = revocationList(cache, opened.db ? new DatabaseRevocationStore(opened.db) : undefined);
    const verifier = await createTokenVerifier(config.auth, config.database.dataDir, revocations);
    const subgraphs: Partial<Record<SubgraphName, RunningServer>> = {};
    const auditStore = opened.db ? new DatabaseAuditStore(opened.db) : null;
    // One process signs the audit chain into checkpoints outside the database: the one that serves the patient subgraph.
    const servesPatient = mode.kind === 'all' || mode.kind === 'subgraphs' || (mode.kind === 'subgraph' && mode.name === 'patient');
    if (opened.db && servesPatient) checkpointer.stop = await startCheckpoints(opened.db, config, logger);
    const subgraphNames = mode.kind === 'all' || mode.kind === 'subgraphs' ? SUBGRAPH_NAMES : mode.kind === 'subgraph' ? [mode.name] : [];
    for (const name of subgraphNames) {
      const db = opened.db;
      if (!db || !sealer || !auditStore) throw new Error('a subgraph needs the database and the key ring');
      const server = await startSubgraph(
        name,
        { db, cache, sealer, auditStore, auditMetrics, alertThresholds: config.alertThresholds, verifier, logger, unprotectedForBenchmark: options.unprotectedForBenchmark ?? false, unauditedForBenchmark: options.unauditedForBenchmark ?? false, plaintextForBenchmark: options.plaintextForBenchmark ?? false, operationLimits: config.operationLimits, rateLimitOverrides: config.rateLimitOverrides, requestDeadlineMs: config.requestDeadlineMs, responseMaxBytes: config.responseMaxBytes, isRevoked: (tokenId) => revocations.isRevoked(tokenId), metricsToken: config.metricsToken, tls: listenerTls(config, { mutual: true }) },
        config.subgraphs.host,
        config.subgraphs.ports[name],
      );
      started.push(server);
      subgraphs[name] = server;
    }
    let gateway: RunningServer | null = null;
    /** What /readyz answers: the database (when this process has one) and the cache respond. */
    const ready = async () => (opened.db ? await opened.db.ping() : true) && (await cache.ping());
    if (mode.kind === 'all' || mode.kind === 'gateway') {
      const clientTls = createClientTls({ ...config.transport.gatewayClient, pollMs: config.transport.filePollMs }, logger.child({ component: 'gateway' }));
      closers.push(() => clientTls.close());
      const subgraphUrls = Object.fromEntries(
        SUBGRAPH_NAMES.map((name) => [name, subgraphs[name]?.url ?? config.subgraphs.urls[name] ?? defaultUrl(config, name)]),
      ) as Record<SubgraphName, string>;
      gateway = await startGateway(
        { verifier, logger, subgraphUrls, ready, operationLimits: config.operationLimits, cache, rateLimitOverrides: config.rateLimitOverrides, subgraphTimeoutMs: config.subgraphTimeoutMs, requestDeadlineMs: config.requestDeadlineMs, responseMaxBytes: config.responseMaxBytes, metricsToken: config.metricsToken, explorer: config.explorer, trustedDocuments: readManifest(config.trustedDocuments.file), trustedDocumentRoles: config.trustedDocuments.requiredRoles, tls: listenerTls(config, { mutual: false }), clientTls, requireHttps: config.transport.terminatedUpstream && !config.transport.listener, trustProxy: config.transport.trustProxy },
        config.gateway.host,
        config.gateway.port,
      );
      started.push(gateway);
    }
    if (config.transport.healthPort !== undefined) started.push(await startHealthListener(config, mode, config.transport.healthPort, ready));
    return { gateway, subgraphs, db: opened.db, cache, verifier, revocations, sealer, auditMetrics, seeded, stop: stopAll };
  } catch (error) {
    await stopAll().catch(() => undefined);
    throw error;
  }
}

/**
 * A running API learns key changes by itself (README, "Keys over time"):
 * every KEY_REFRESH_SECONDS it asks the key service again (a new KEK
 * version, a retirement) and reads the data keys again (keys:rotate-data),
 * so new values are written under the current keys without a restart. A
 * value under a KEK version it does not know makes it ask at once
 * (rate-limited; field-cipher.ts). A refresh that fails is logged and the
 * keys it had stay in use.
 */
function startKeyRefresh(sealer: Sealer, config: Config, logger: Logger): () => Promise<void> {
  const kms = sealer.cipher.keyService;
  let before = kms.currentVersion();
  const timer = setInterval(() => {
    sealer.cipher
      .refresh()
      .then(() => {
        for (const key of sealer.cipher.takeUnusableKeys()) {
          logger.error({ event: 'data-key-unusable', dataKeyId: key.id, scope: key.scope, reason: key.failure }, 'a data key does not unwrap (its row was edited?); it is never written with');
        }
        const now = kms.currentVersion();
        if (now !== before) logger.info({ event: 'key-version-changed', from: before, to: now, kms: kms.description }, 'new values are now written under another key-encryption key version');
        before = now;
      })
      .catch((error: unknown) => logger.warn({ event: 'key-refresh-failed', kms: kms.description, err: { name: (error as Error).name } }, 'the key service could not be asked again; the keys in use stay'));
  }, config.keyRefreshSeconds * 1000);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await kms.close?.();
  };
}

/**
 * Signs the audit chain's head into a checkpoint outside the database (the
 * data folder's audit-checkpoints/) at start, every AUDIT_CHECKPOINT_SECONDS
 * and at stop. A checkpoint that cannot be written is logged, never fatal:
 * the chain itself is still written and verified.
 */
async function startCheckpoints(db: Database, config: Config, logger: Logger): Promise<() => Promise<void>> {
  const key = await loadSigningKey({ pem: config.auditSigningKeyPem, dataDir: config.database.dataDir, allowDevelopmentKey: !config.isProduction });
  const sink = new FolderCheckpointSink(join(config.database.dataDir, CHECKPOINT_FOLDER));
  const write = async () => {
    try {
      await writeCheckpoint(db, sink, key);
    } catch (error) {
      logger.error({ event: 'audit-checkpoint-failed', err: { name: (error as Error).name } }, 'audit checkpoint could not be written');
    }
    // On the same timer: idempotency keys past their time and revocations of expired tokens.
    await purgeExpiredRows(db).catch((error: unknown) => logger.warn({ event: 'housekeeping-failed', err: { name: (error as Error).name } }, 'expired rows could not be purged'));
    // Break-the-glass reviews past their due time: alerted once each.
    await alertOverdueReviews(db, logger).catch((error: unknown) => logger.warn({ event: 'housekeeping-failed', step: 'overdue-reviews', err: { name: (error as Error).name } }, 'overdue reviews could not be checked'));
  };
  await write();
  const timer = setInterval(() => void write(), config.auditCheckpointSeconds * 1000);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await write();
  };
}

function openApiDatabase(config: Config, logger: Logger, onStatement?: (sql: string) => void): Promise<Database> {
  return openDatabase({
    url: config.database.url,
    dataDir: config.database.dataDir,
    onStatement,
    log: (message) => logger.debug({ component: 'orm' }, message),
    timeouts: config.databaseTimeouts,
  });
}

type Preparation = { checkOnly: true } | { checkOnly?: false; seedPatients: number };

/**
 * Migrations, the audit retention, the key ring and (outside production) the synthetic data.
 * A supervised child only checks: its supervisor prepared everything once, before any child started.
 */
async function prepareDatabase(db: Database, config: Config, logger: Logger, preparation: Preparation): Promise<{ sealer: Sealer; seeded: number }> {
  await migrateOrCheck(db, config, logger, preparation.checkOnly === true);
  const retention = await ensureAuditRetention(db, config.auditRetentionDays);
  if (retention.retentionDays > config.auditRetentionDays && !preparation.checkOnly) {
    logger.warn({ configured: config.auditRetentionDays, kept: retention.retentionDays }, 'audit retention cannot be shortened; keeping the longer one');
  }
  const sealer = await openSealer(db, config.keys, logger);
  const seeded = preparation.checkOnly ? 0 : await prepareData(db, sealer, config, logger, preparation.seedPatients);
  return { sealer, seeded };
}

/**
 * What the supervisor does once before its children start (they would race
 * each other to it): the development signing key, migrations, the key ring
 * and the synthetic data. The database is closed again: with PGlite its one
 * owner is a child. Returns the number of patients seeded.
 */
export async function prepareStorage(config: Config, logger: Logger, seedPatients = config.seedPatients): Promise<number> {
  const cache = await openCache(config.redisUrl, config.redisKeyPrefix, config.transport.redis);
  try {
    await createTokenVerifier(config.auth, config.database.dataDir, revocationList(cache));
  } finally {
    await cache.close();
  }
  const db = await openApiDatabase(config, logger);
  try {
    const prepared = await prepareDatabase(db, config, logger, { seedPatients });
    await prepared.sealer.cipher.keyService.close?.();
    return prepared.seeded;
  } finally {
    await db.close();
  }
}

/** Where the gateway calls a subgraph it was not told the URL of: this configuration's subgraph host and port, over HTTPS when this configuration serves TLS. */
function defaultUrl(config: Config, name: SubgraphName): string {
  return `${config.transport.listener ? 'https' : 'http'}://${urlHost(config.subgraphs.host)}:${config.subgraphs.ports[name]}/graphql`;
}

/** The listener certificate of this configuration; a subgraph's also asks for client certificates when SUBGRAPH_CLIENT_CA_FILE is set. */
function listenerTls(config: Config, { mutual }: { mutual: boolean }): ListenerTls | null {
  const files = config.transport.listener;
  if (!files) return null;
  const { subgraphClientCaFile, subgraphClientNames } = config.transport;
  return { ...files, pollMs: config.transport.filePollMs, ...(mutual && subgraphClientCaFile && { clientCaFile: subgraphClientCaFile, clientNames: subgraphClientNames }) };
}

/**
 * HEALTH_PORT: /healthz and /readyz alone over plain HTTP, for probes that
 * cannot present a client certificate to a subgraph that requires one. It
 * serves no data and reads no token. It binds where this process's main
 * listener binds (HOST for a gateway, SUBGRAPH_HOST for subgraphs alone).
 */
async function startHealthListener(config: Config, mode: Mode, healthPort: number, ready: () => Promise<boolean>): Promise<RunningServer> {
  const app = createApp();
  healthRoutes(app, ready);
  const server = createServer(app);
  const host = mode.kind === 'subgraph' || mode.kind === 'subgraphs' ? config.subgraphs.host : config.gateway.host;
  const port = await listen(server, host, healthPort);
  return {
    name: 'health',
    url: `http://${urlHost(host)}:${port}/healthz`,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Says at start how each hop of this process is carried: its listeners
 * (HTTPS, mutual TLS, or plain HTTP behind a proxy), the database, Redis,
 * and the subgraphs the gateway calls. A hop production allowed without
 * verified TLS (ALLOW_INSECURE_TRANSPORT) is a warning, each start.
 */
function logTransport(config: Config, mode: Mode, logger: Logger): void {
  const hops = describeTransport(config, mode);
  logger.info({ event: 'transport', ...Object.fromEntries(hops.map((hop) => [hop.hop, hop.description])) }, 'transport of each hop');
  for (const hop of hops.filter((candidate) => candidate.insecure)) {
    const allowance = config.isProduction ? 'allowed by ALLOW_INSECURE_TRANSPORT' : 'production would refuse it unless ALLOW_INSECURE_TRANSPORT names it';
    logger.warn({ event: 'transport-insecure', hop: hop.hop, description: hop.description }, `${hop.hop}: PHI crosses a network without verified TLS (${allowance})`);
  }
}

/**
 * Migrations run on start outside production; in production they are a
 * deliberate step (`npm run migrate`) and the API refuses to start while
 * any is pending.
 */
async function migrateOrCheck(db: Database, config: Config, logger: Logger, checkOnly = false): Promise<void> {
  if (config.isProduction && db.kind !== 'pglite') {
    // A superuser or the tables' owner could switch the audit trail's append-only triggers off.
    const problem = await databaseRoleProblem(db);
    if (problem) throw new Error(`${problem}; production refuses it`);
  }
  if (config.isProduction || checkOnly) {
    const pending = await db.pendingMigrations();
    if (pending.length > 0) {
      throw new Error(`${pending.length} database migration(s) pending (${pending.join(', ')}): run "npm run migrate" first`);
    }
    return;
  }
  const applied = await db.migrate();
  if (applied.length > 0) logger.debug({ migrations: applied }, 'database migrated');
}

/**
 * Outside production: rows stored before field encryption are encrypted
 * now (resumable, idempotent; production runs `npm run data:encrypt`), and
 * an empty database is seeded once.
 */
async function prepareData(db: Database, sealer: Sealer, config: Config, logger: Logger, seedPatients: number): Promise<number> {
  if (config.isProduction) return 0;
  const encrypted = await encryptPlaintextRows(db, sealer);
  if (encrypted > 0) logger.info({ rows: encrypted }, 'encrypted rows stored before field encryption');
  const { labelled, unreadable } = await labelUnlabelledRows(db, sealer);
  if (labelled > 0) logger.info({ rows: labelled }, 'labelled rows stored before sensitivity labels');
  if (unreadable.length > 0) logger.error({ event: 'unlabelled-rows', rows: unreadable.length }, 'rows that do not decrypt stay unlabelled and withheld (npm run data:label names them)');
  if (seedPatients === 0 || !(await isDatabaseEmpty(db))) return 0;
  const summary = await seedDatabase(db, { patients: seedPatients, sealer });
  await writeDevelopmentPrincipals(config.database.dataDir, summary.principals);
  logger.debug({ patients: summary.patients }, 'empty database seeded with synthetic data');
  return summary.patients;
}
