import { accessSync, constants, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { SUBGRAPH_NAMES, type SubgraphName, DEFAULT_SUBGRAPH_PORTS } from './subgraphs/catalog.js';
import { DEFAULT_AUDIT_RETENTION_DAYS } from './db/migrations/Migration20261125150000AuditTrail.js';
import { DEFAULT_ALERT_THRESHOLDS, type AlertThresholds } from './audit/alerts.js';
import { DEFAULT_OPERATION_LIMITS, type OperationLimits } from './policy/limits.js';
import { DEFAULT_DATABASE_TIMEOUTS, type DatabaseTimeouts } from './db/orm.js';
import type { KeySettings } from './crypto/key-service.js';
import { isRole, type Role } from './auth/index.js';
import { DEFAULT_TRUSTED_DOCUMENTS_FILE } from './gateway/trusted-documents.js';
// The transport modules without I/O at load (not transport/index.ts, whose listener pulls in the HTTP stack).
import { INSECURE_HOPS, isInsecureHop, isLoopbackHost, type InsecureHop } from './transport/endpoints.js';
import { DatabaseTlsError, databaseTransport } from './transport/database-tls.js';
import { redisTransport, redisUrlProblem, type RedisTlsFiles } from './transport/redis-tls.js';
import { isTrustedProxyValue } from './transport/proxies.js';
import { CERTIFICATE_POLL_MS } from './transport/certificates.js';

/**
 * The environment, parsed once at start. Every problem is collected and
 * reported together; the process refuses to start on any of them.
 */

const port = z.coerce.number().int().min(0).max(65_535);

/** The whole of one client request, at the gateway and (shortened by what the gateway has left) on each subgraph. */
export const DEFAULT_REQUEST_DEADLINE_MS = 30_000;
/** The largest response body the gateway or a subgraph sends; a larger one is refused (RESPONSE_TOO_LARGE). */
export const DEFAULT_RESPONSE_MAX_BYTES = 8 * 1024 * 1024;
/** The V8 heap cap of each supervised process (--max-old-space-size). */
export const DEFAULT_PROCESS_HEAP_MB = 1024;
/**
 * The young generation's semi-space of each supervised process (--max-semi-space-size), in MiB. V8's
 * default (16 MiB) made the garbage collector a quarter of a 1,000-row page's CPU: each request allocates
 * tens of MiB of short-lived objects, and a small nursery promotes them before they die. 64 MiB halved
 * that share (bench/BENCHMARKS.md, issue 16); it costs up to about 3x that in resident memory per process.
 */
export const DEFAULT_PROCESS_SEMI_SPACE_MB = 64;

/** Tolerated clock difference between the token issuer and the API, in seconds. */
export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 30;
/** More than five minutes would keep an expired token alive far past its `exp`. */
export const MAX_CLOCK_TOLERANCE_SECONDS = 300;
/** An operation limit: a whole number, the default when unset or empty. */
function limit(fallback: number, minimum = 1) {
  return z.preprocess(
    (value) => (typeof value === 'string' && value.trim() === '' ? undefined : value),
    z.coerce.number().int('must be a whole number').min(minimum).max(10_000_000).default(fallback),
  );
}

/** An unset or empty variable is absent. */
const optionalText = z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), z.string().optional());

/** A comma-separated list; empty items dropped. */
const list = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value) => value.split(',').map((item) => item.trim()).filter(Boolean));

/** An unset or empty variable is absent; a set one must be a URL. */
const optionalUrl = z.preprocess(
  (value) => (typeof value === 'string' && value.trim() === '' ? undefined : value),
  z.string().trim().url().optional(),
);

const environmentShape = z
  .object({
    NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
    HOST: z.string().default('127.0.0.1'),
    PORT: port.default(4000),
    SUBGRAPH_HOST: z.string().default('127.0.0.1'),
    PATIENT_SUBGRAPH_PORT: port.default(DEFAULT_SUBGRAPH_PORTS.patient),
    CLINICAL_SUBGRAPH_PORT: port.default(DEFAULT_SUBGRAPH_PORTS.clinical),
    BILLING_SUBGRAPH_PORT: port.default(DEFAULT_SUBGRAPH_PORTS.billing),
    PATIENT_SUBGRAPH_URL: optionalUrl,
    CLINICAL_SUBGRAPH_URL: optionalUrl,
    BILLING_SUBGRAPH_URL: optionalUrl,
    DATABASE_URL: optionalUrl,
    DATA_DIR: z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), z.string().optional()),
    REDIS_URL: optionalUrl,
    REDIS_KEY_PREFIX: z.string().min(1).default('phi-graph:'),
    REDIS_CA_FILE: optionalText,
    REDIS_CLIENT_CERT_FILE: optionalText,
    REDIS_CLIENT_KEY_FILE: optionalText,
    TLS_CERT_FILE: optionalText,
    TLS_KEY_FILE: optionalText,
    TLS_CA_FILE: optionalText,
    SUBGRAPH_CLIENT_CA_FILE: optionalText,
    SUBGRAPH_CLIENT_NAMES: list(''),
    GATEWAY_CLIENT_CERT_FILE: optionalText,
    GATEWAY_CLIENT_KEY_FILE: optionalText,
    TLS_TERMINATED_UPSTREAM: z.enum(['true', 'false']).default('false'),
    TLS_FILE_POLL_SECONDS: z.coerce.number().min(0).max(3600).default(CERTIFICATE_POLL_MS / 1000),
    TRUST_PROXY: list('loopback').refine((values) => values.every(isTrustedProxyValue), 'must be loopback, linklocal, uniquelocal, IP addresses or CIDR ranges, comma-separated'),
    HEALTH_PORT: z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), port.optional()),
    ALLOW_INSECURE_TRANSPORT: list('').refine((values) => values.every(isInsecureHop), `must name hops among ${INSECURE_HOPS.join(', ')}, comma-separated`),
    AUTH_ISSUER: z.string().min(1).default('phi-graph-dev'),
    AUTH_AUDIENCE: z.string().min(1).default('phi-graph'),
    AUTH_JWKS_URL: optionalUrl,
    AUTH_PUBLIC_KEY: z.string().optional(),
    AUTH_ALGORITHMS: z
      .string()
      .default('ES256')
      .transform((value) => value.split(',').map((item) => item.trim()).filter(Boolean)),
    AUTH_CLOCK_TOLERANCE_SECONDS: z.preprocess(
      (value) => (typeof value === 'string' && value.trim() === '' ? undefined : value),
      z.coerce
        .number()
        .int('must be a whole number of seconds')
        .min(0, 'must not be negative')
        .max(MAX_CLOCK_TOLERANCE_SECONDS, `must be at most ${MAX_CLOCK_TOLERANCE_SECONDS} seconds: a longer tolerance keeps expired tokens alive`)
        .default(DEFAULT_CLOCK_TOLERANCE_SECONDS),
    ),
    PHI_KEY_RING: z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), z.string().optional()),
    PHI_KEY_RING_FILE: z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), z.string().optional()),
    PHI_KMS: z.enum(['ring', 'pkcs11']).default('ring'),
    PHI_NATIVE_CRYPTO: z.enum(['auto', 'off', 'require']).default('auto'),
    PKCS11_MODULE: z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), z.string().optional()),
    PKCS11_TOKEN_LABEL: z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), z.string().optional()),
    PKCS11_SLOT: z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), z.coerce.number().int().min(0).optional()),
    PKCS11_PIN_FILE: z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), z.string().optional()),
    PKCS11_PIN: z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), z.string().optional()),
    PKCS11_KEY_LABEL_PREFIX: z.string().min(1).default('phi-kek-'),
    AUDIT_SIGNING_KEY: z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), z.string().optional()),
    AUDIT_CHECKPOINT_SECONDS: limit(60, 1),
    KEY_REFRESH_SECONDS: limit(60, 1),
    EXPLORER: z.enum(['on', 'off']).optional(),
    TRUSTED_DOCUMENTS_FILE: z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), z.string().optional()),
    TRUSTED_DOCUMENTS_REQUIRED_ROLES: z
      .string()
      .default('')
      .transform((value) => value.split(',').map((item) => item.trim()).filter(Boolean))
      .refine((roles) => roles.every(isRole), 'must name roles of the policy, comma-separated'),
    METRICS_TOKEN: z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), z.string().min(16, 'must be at least 16 characters').optional()),
    ALERT_DISTINCT_PATIENTS_PER_HOUR: z.coerce.number().int().min(1).default(DEFAULT_ALERT_THRESHOLDS.distinctPatientsPerHour),
    ALERT_DENIED_FIELDS_PER_HOUR: z.coerce.number().int().min(1).default(DEFAULT_ALERT_THRESHOLDS.deniedFieldsPerHour),
    ALERT_SSN_READS_PER_HOUR: z.coerce.number().int().min(1).default(DEFAULT_ALERT_THRESHOLDS.ssnReadsPerHour),
    AUDIT_RETENTION_DAYS: z.coerce.number().int().min(1).default(DEFAULT_AUDIT_RETENTION_DAYS),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    SEED_PATIENTS: z.coerce.number().int().min(0).default(300),
    GATEWAY_SUBGRAPH_TIMEOUT_MS: limit(15_000, 100),
    REQUEST_DEADLINE_MS: limit(DEFAULT_REQUEST_DEADLINE_MS, 100),
    RESPONSE_MAX_BYTES: limit(DEFAULT_RESPONSE_MAX_BYTES, 1024),
    PROCESS_HEAP_MB: limit(DEFAULT_PROCESS_HEAP_MB, 64),
    PROCESS_SEMI_SPACE_MB: z.coerce.number().int().min(0).max(512).default(DEFAULT_PROCESS_SEMI_SPACE_MB),
    DATABASE_STATEMENT_TIMEOUT_MS: limit(DEFAULT_DATABASE_TIMEOUTS.statementMs, 100),
    DATABASE_LOCK_TIMEOUT_MS: limit(DEFAULT_DATABASE_TIMEOUTS.lockMs, 100),
    DATABASE_ACQUIRE_TIMEOUT_MS: limit(DEFAULT_DATABASE_TIMEOUTS.acquireMs, 100),
    RATE_LIMIT_REQUESTS_PER_MINUTE: z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), z.coerce.number().int().min(1).optional()),
    RATE_LIMIT_PATIENTS_PER_HOUR: z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), z.coerce.number().int().min(1).optional()),
    RATE_LIMIT_IN_FLIGHT: z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), z.coerce.number().int().min(1).optional()),
    OPERATION_MAX_DOCUMENT_BYTES: limit(DEFAULT_OPERATION_LIMITS.maxDocumentBytes),
    OPERATION_MAX_TOKENS: limit(DEFAULT_OPERATION_LIMITS.maxTokens),
    OPERATION_MAX_DEPTH: limit(DEFAULT_OPERATION_LIMITS.maxDepth),
    OPERATION_MAX_ALIASES: limit(DEFAULT_OPERATION_LIMITS.maxAliases, 0),
    OPERATION_MAX_DIRECTIVES: limit(DEFAULT_OPERATION_LIMITS.maxDirectives, 0),
    OPERATION_MAX_ROOT_FIELDS: limit(DEFAULT_OPERATION_LIMITS.maxRootFields),
    OPERATION_MAX_ENTITIES: limit(DEFAULT_OPERATION_LIMITS.maxEntities),
    OPERATION_MAX_COST: z.preprocess(
      (value) => (typeof value === 'string' && value.trim() === '' ? undefined : value),
      z.coerce.number().int('must be a whole number').min(1).optional(),
    ),
  });

const environmentSchema = environmentShape
  .superRefine((env, context) => {
    const refuse = (message: string, path: string) => context.addIssue({ code: 'custom', message, path: [path] });
    for (const algorithm of env.AUTH_ALGORITHMS) {
      if (!ACCEPTED_ALGORITHMS.has(algorithm)) {
        refuse(`algorithm ${algorithm} is not accepted; use some of ${[...ACCEPTED_ALGORITHMS].join(', ')}`, 'AUTH_ALGORITHMS');
      }
    }
    if (env.PHI_KMS === 'pkcs11') {
      if (!env.PKCS11_MODULE) refuse('PHI_KMS=pkcs11 needs PKCS11_MODULE, the path of the HSM\'s PKCS#11 library', 'PKCS11_MODULE');
      if (!env.PKCS11_TOKEN_LABEL && env.PKCS11_SLOT === undefined) refuse('PHI_KMS=pkcs11 needs PKCS11_TOKEN_LABEL (or PKCS11_SLOT)', 'PKCS11_TOKEN_LABEL');
      if (!env.PKCS11_PIN_FILE && !env.PKCS11_PIN) refuse('PHI_KMS=pkcs11 needs PKCS11_PIN_FILE, a file holding the token\'s user PIN', 'PKCS11_PIN_FILE');
    }
    if (env.PHI_KEY_RING && env.PHI_KEY_RING_FILE) refuse('set PHI_KEY_RING or PHI_KEY_RING_FILE, not both', 'PHI_KEY_RING_FILE');
    const transport = transportProblems(env);
    for (const [path, message] of transport.always) refuse(message, path);
    if (env.NODE_ENV !== 'production') return;
    for (const [path, message] of transport.production) refuse(message, path);
    if (!env.AUTH_JWKS_URL && !env.AUTH_PUBLIC_KEY) {
      refuse('production needs the issuer key: set AUTH_JWKS_URL or AUTH_PUBLIC_KEY (the development signing key is refused)', 'AUTH_JWKS_URL');
    }
    if (env.AUTH_ISSUER === 'phi-graph-dev') {
      refuse('production needs the real issuer in AUTH_ISSUER, not the development issuer', 'AUTH_ISSUER');
    }
    if (env.PHI_KMS === 'pkcs11') {
      if (env.PKCS11_PIN) refuse('production reads the PKCS#11 PIN from PKCS11_PIN_FILE (a secret), not from PKCS11_PIN', 'PKCS11_PIN');
    } else if (!env.PHI_KEY_RING && !env.PHI_KEY_RING_FILE) {
      refuse('production needs the key-encryption keys: PHI_KMS=pkcs11 (an HSM), or a key ring in PHI_KEY_RING or PHI_KEY_RING_FILE (the generated development key ring is refused)', 'PHI_KEY_RING');
    } else if (env.PHI_KEY_RING && /"development"\s*:\s*true/.test(env.PHI_KEY_RING)) {
      refuse('PHI_KEY_RING is a development key ring; production refuses it', 'PHI_KEY_RING');
    }
    if (!env.AUDIT_SIGNING_KEY) refuse('production needs AUDIT_SIGNING_KEY, the Ed25519 key that signs audit checkpoints (the generated development key is refused)', 'AUDIT_SIGNING_KEY');
    if (!env.DATABASE_URL) refuse('production needs DATABASE_URL (the embedded PGlite database is for development)', 'DATABASE_URL');
    if (!env.REDIS_URL) refuse('production needs REDIS_URL (the in-process cache is not shared between instances)', 'REDIS_URL');
  });

const FILE_VARIABLES = ['TLS_CERT_FILE', 'TLS_KEY_FILE', 'TLS_CA_FILE', 'SUBGRAPH_CLIENT_CA_FILE', 'GATEWAY_CLIENT_CERT_FILE', 'GATEWAY_CLIENT_KEY_FILE', 'REDIS_CA_FILE', 'REDIS_CLIENT_CERT_FILE', 'REDIS_CLIENT_KEY_FILE'] as const;

/**
 * The transport settings' problems (README, "Transport security"): those
 * refused everywhere (a file that cannot be read, a certificate without its
 * key, mutual TLS without TLS), and those refused in production only:
 * plaintext or unverified TLS to a database, a Redis or a subgraph that is
 * not on this machine, unless ALLOW_INSECURE_TRANSPORT names that hop.
 * (Listening on plain HTTP is a server's problem: listenerProblems.)
 */
function transportProblems(env: z.infer<typeof environmentShape>): { always: [string, string][]; production: [string, string][] } {
  const always: [string, string][] = [];
  const production: [string, string][] = [];
  for (const variable of FILE_VARIABLES) {
    const path = env[variable];
    if (path === undefined) continue;
    try {
      accessSync(path, constants.R_OK);
    } catch (error) {
      always.push([variable, `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`]);
    }
  }
  const pairs = [
    ['TLS_CERT_FILE', 'TLS_KEY_FILE'],
    ['GATEWAY_CLIENT_CERT_FILE', 'GATEWAY_CLIENT_KEY_FILE'],
    ['REDIS_CLIENT_CERT_FILE', 'REDIS_CLIENT_KEY_FILE'],
  ] as const;
  for (const [cert, key] of pairs) {
    if ((env[cert] === undefined) !== (env[key] === undefined)) always.push([env[cert] ? key : cert, `${cert} and ${key} go together (a certificate and its private key)`]);
  }
  if (env.SUBGRAPH_CLIENT_NAMES.length > 0 && !env.SUBGRAPH_CLIENT_CA_FILE) always.push(['SUBGRAPH_CLIENT_NAMES', 'names the gateway\'s client certificate for mutual TLS: set SUBGRAPH_CLIENT_CA_FILE too']);
  if (env.SUBGRAPH_CLIENT_CA_FILE && !env.TLS_CERT_FILE) always.push(['SUBGRAPH_CLIENT_CA_FILE', 'mutual TLS needs the subgraphs to serve TLS: set TLS_CERT_FILE and TLS_KEY_FILE too']);
  const redisProblem = env.REDIS_URL ? redisUrlProblem(env.REDIS_URL) : null;
  if (redisProblem) always.push(['REDIS_URL', redisProblem]);
  const redisTls = env.REDIS_URL ? redisTransport(env.REDIS_URL).tls : false;
  for (const variable of ['REDIS_CA_FILE', 'REDIS_CLIENT_CERT_FILE'] as const) {
    if (env[variable] && !redisTls) always.push([variable, `${variable} is for Redis over TLS: REDIS_URL must start with rediss://`]);
  }
  let databaseMode: string | null = null;
  if (env.DATABASE_URL) {
    try {
      const database = databaseTransport(env.DATABASE_URL);
      if (!database.loopback && database.mode !== 'verify-full') databaseMode = database.mode;
    } catch (error) {
      if (!(error instanceof DatabaseTlsError)) throw error;
      always.push(['DATABASE_URL', error.message]);
    }
  }
  const allowed = new Set(env.ALLOW_INSECURE_TRANSPORT);
  if (databaseMode !== null && !allowed.has('database')) {
    production.push(['DATABASE_URL', `production connects to a database on another host with sslmode=verify-full and sslrootcert (the CA), not sslmode=${databaseMode}; or name the hop in ALLOW_INSECURE_TRANSPORT=database`]);
  }
  if (env.REDIS_URL && !redisTls && !redisTransport(env.REDIS_URL).loopback && !allowed.has('redis')) {
    production.push(['REDIS_URL', 'production connects to a Redis on another host over TLS (rediss:// and REDIS_CA_FILE); or name the hop in ALLOW_INSECURE_TRANSPORT=redis']);
  }
  // The issuer's keys decide who is who: fetched in plaintext, anyone on the path could serve its own and mint any role.
  if (env.AUTH_JWKS_URL && new URL(env.AUTH_JWKS_URL).protocol !== 'https:' && !isLoopbackHost(new URL(env.AUTH_JWKS_URL).hostname)) {
    production.push(['AUTH_JWKS_URL', 'production fetches the issuer\'s keys from another host over https:// only (a key served in plaintext could be anyone\'s)']);
  }
  for (const name of SUBGRAPH_NAMES) {
    const variable = `${name.toUpperCase() as Uppercase<SubgraphName>}_SUBGRAPH_URL` as const;
    const url = env[variable];
    if (url && new URL(url).protocol === 'http:' && !isLoopbackHost(new URL(url).hostname) && !allowed.has('subgraphs')) {
      production.push([variable, 'production calls a subgraph on another host over https://; or name the hop in ALLOW_INSECURE_TRANSPORT=subgraphs']);
    }
  }
  return { always, production };
}

/** Asymmetric algorithms only: `none` and shared-secret HMAC are never accepted. */
export const ACCEPTED_ALGORITHMS = new Set(['ES256', 'ES384', 'RS256', 'RS384', 'RS512', 'PS256', 'EdDSA']);

export type Environment = z.infer<typeof environmentSchema>;

export interface AuthConfig {
  issuer: string;
  audience: string;
  algorithms: string[];
  jwksUrl: string | undefined;
  publicKeyPem: string | undefined;
  /** How many seconds `exp` and `nbf` may be off (the issuer's clock against ours). */
  clockToleranceSeconds: number;
  /** Only outside production: sign and verify with the generated development key. */
  allowDevelopmentKey: boolean;
}

export interface Config {
  environment: Environment['NODE_ENV'];
  isProduction: boolean;
  gateway: { host: string; port: number };
  subgraphs: {
    host: string;
    ports: Record<SubgraphName, number>;
    /** Set when a subgraph runs elsewhere; the gateway then calls this URL. */
    urls: Partial<Record<SubgraphName, string>>;
  };
  database: { url: string | undefined; dataDir: string };
  redisUrl: string | undefined;
  /** TLS on each hop (README, "Transport security"). */
  transport: TransportConfig;
  /** Prefix of every key this deployment writes to Redis. */
  redisKeyPrefix: string;
  auth: AuthConfig;
  /** Where the key-encryption keys come from (README, "Security: encryption at rest"). */
  keys: KeySettings;
  /** A running API asks the key service and the data keys again this often (a rotation on a running deployment). */
  keyRefreshSeconds: number;
  /** Serve the API explorer at /graphql to browsers: on outside production, off in production unless EXPLORER=on. */
  explorer: boolean;
  /** The manifest of registered operations, and the roles that may run only those. */
  trustedDocuments: { file: string; requiredRoles: Role[] };
  /** With it, /metrics answers to this bearer token from anywhere; without it, to loopback only. */
  metricsToken: string | undefined;
  /** The Ed25519 private key (PEM) that signs audit checkpoints; outside production, absent means the development key. */
  auditSigningKeyPem: string | undefined;
  /** How often the chain head is signed into a checkpoint (and at start and stop). */
  auditCheckpointSeconds: number;
  /** Audit rows are kept at least this long; it can be raised, never lowered below what the database holds. */
  auditRetentionDays: number;
  /** Per-principal access counters that raise an alert when crossed. */
  alertThresholds: AlertThresholds;
  logLevel: Environment['LOG_LEVEL'];
  seedPatients: number;
  /** What one operation may ask for (README, "Limits"); cost budgets are per role, in the policy. */
  operationLimits: OperationLimits;
  /** Deadlines of the API's PostgreSQL connections (statement, lock wait, pool wait). */
  databaseTimeouts: DatabaseTimeouts;
  /** How long the gateway waits for a subgraph's answer. */
  subgraphTimeoutMs: number;
  /** The deadline of one whole request (gateway and subgraphs). */
  requestDeadlineMs: number;
  /** The largest response body sent. */
  responseMaxBytes: number;
  /** The heap cap of each supervised process, in MiB. */
  processHeapMb: number;
  /** --max-semi-space-size of each supervised process; 0 leaves V8's default. */
  processSemiSpaceMb: number;
  /** When set, replace every role's requests per minute and in flight (the policy's otherwise). */
  rateLimitOverrides: { requestsPerMinute?: number; inFlight?: number; patientsPerHour?: number };
}

export interface TransportConfig {
  /** This process's certificate and key: its listeners (gateway, subgraphs) serve HTTPS with them. */
  listener: { certFile: string; keyFile: string } | null;
  /** Subgraphs require a client certificate from these CAs (mutual TLS). */
  subgraphClientCaFile: string | undefined;
  /** And one of these names in it (empty: any certificate of those CAs). */
  subgraphClientNames: string[];
  /** What the gateway trusts (TLS_CA_FILE) and presents (its client certificate) when it calls subgraphs over HTTPS. */
  gatewayClient: { caFile?: string; certFile?: string; keyFile?: string; certFromListener: boolean };
  /** How often certificate files are looked at for a change, in milliseconds; 0: only on SIGHUP. */
  filePollMs: number;
  /** A proxy in front terminates TLS: plain HTTP is served, and the gateway answers only requests it forwarded over HTTPS. */
  terminatedUpstream: boolean;
  /** Express's `trust proxy`: whose X-Forwarded-For and X-Forwarded-Proto are believed. */
  trustProxy: string[];
  /** A plain-HTTP port serving /healthz and /readyz only (probes of a listener that requires client certificates). */
  healthPort: number | undefined;
  /** Hops production lets go without verified TLS to another host. */
  allowInsecure: InsecureHop[];
  /** Redis over TLS (rediss://): the CA and the client certificate. */
  redis: RedisTlsFiles;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Where development files live when DATA_DIR is not set: `.data` for the
 * embedded database (its PGlite folder is `.data/pglite`), and a folder of
 * its own per external database (`.data/postgres-<digest of host, port and
 * database name>`), so the development principals, key ring, signing keys
 * and checkpoints of one database are never read against another: seeding
 * PostgreSQL does not overwrite the embedded mode's principals, and a key
 * retired on one does not break the other.
 */
export function defaultDataDir(databaseUrl: string | undefined): string {
  if (!databaseUrl) return '.data';
  let identity = databaseUrl;
  try {
    const url = new URL(databaseUrl);
    identity = `${url.hostname}:${url.port || '5432'}${url.pathname}`;
  } catch {
    // not a URL: config validation reports it; the digest of the text still keeps databases apart
  }
  return join('.data', `postgres-${createHash('sha256').update(identity).digest('hex').slice(0, 12)}`);
}

/** A secret kept in a file (a mounted secret): its content without the final newline; never echoed in an error. */
function readSecretFile(path: string, variable: string): string {
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    throw new ConfigError([`${variable}: cannot read the file it names (${(error as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
}

/**
 * A server's own refusal, on top of the environment's (the command-line
 * tools listen on nothing): production serves HTTPS itself, or says that a
 * proxy in front terminates TLS.
 */
function listenerProblems(env: z.infer<typeof environmentShape>): string[] {
  if (env.NODE_ENV !== 'production' || env.TLS_CERT_FILE) return [];
  const problems: string[] = [];
  if (env.TLS_TERMINATED_UPSTREAM !== 'true') {
    problems.push('TLS_CERT_FILE: production serves HTTPS: set TLS_CERT_FILE and TLS_KEY_FILE, or TLS_TERMINATED_UPSTREAM=true when a proxy in front terminates TLS (README, "Transport security")');
  }
  // The proxy in front is the gateway's: subgraphs listening on another interface serve the gateway's calls themselves.
  if (!isLoopbackHost(env.SUBGRAPH_HOST) && !env.ALLOW_INSECURE_TRANSPORT.includes('subgraphs')) {
    problems.push(`SUBGRAPH_HOST: production subgraphs on ${env.SUBGRAPH_HOST} (not this machine's loopback) serve HTTPS: set TLS_CERT_FILE and TLS_KEY_FILE (and SUBGRAPH_CLIENT_CA_FILE), or name the hop in ALLOW_INSECURE_TRANSPORT=subgraphs`);
  }
  return problems;
}

/** What the environment says beyond this API's variables: Node's own switch that turns certificate checks off. */
function processProblems(source: NodeJS.ProcessEnv): string[] {
  if (source['NODE_ENV'] === 'production' && source['NODE_TLS_REJECT_UNAUTHORIZED'] === '0') {
    return ['NODE_TLS_REJECT_UNAUTHORIZED: production refuses 0 (it switches certificate checks off in this process); unset it and name the CA instead (TLS_CA_FILE, sslrootcert, REDIS_CA_FILE)'];
  }
  return [];
}

/** The configuration; `serving`: for a process that listens (main.ts), whose production listener must be TLS or behind a proxy that terminates it. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env, { serving = false }: { serving?: boolean } = {}): Config {
  const parsed = environmentSchema.safeParse(source);
  // Listed with the environment's own problems: the shape alone (without its refinements) is enough to tell.
  const shape = serving ? environmentShape.safeParse(source) : null;
  const further = [...processProblems(source), ...(shape?.success ? listenerProblems(shape.data) : [])];
  if (!parsed.success || further.length > 0) {
    const problems = parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join('.') || 'environment'}: ${issue.message}`);
    throw new ConfigError([...problems, ...further]);
  }
  const env = parsed.data;
  const dataDir = resolve(env.DATA_DIR ?? defaultDataDir(env.DATABASE_URL));
  const urls: Partial<Record<SubgraphName, string>> = {};
  for (const name of SUBGRAPH_NAMES) {
    const url = env[`${name.toUpperCase() as Uppercase<SubgraphName>}_SUBGRAPH_URL`];
    if (url) urls[name] = url;
  }
  return {
    environment: env.NODE_ENV,
    isProduction: env.NODE_ENV === 'production',
    gateway: { host: env.HOST, port: env.PORT },
    subgraphs: {
      host: env.SUBGRAPH_HOST,
      ports: { patient: env.PATIENT_SUBGRAPH_PORT, clinical: env.CLINICAL_SUBGRAPH_PORT, billing: env.BILLING_SUBGRAPH_PORT },
      urls,
    },
    database: { url: env.DATABASE_URL, dataDir },
    redisUrl: env.REDIS_URL,
    transport: {
      listener: env.TLS_CERT_FILE && env.TLS_KEY_FILE ? { certFile: env.TLS_CERT_FILE, keyFile: env.TLS_KEY_FILE } : null,
      subgraphClientCaFile: env.SUBGRAPH_CLIENT_CA_FILE,
      subgraphClientNames: env.SUBGRAPH_CLIENT_NAMES,
      gatewayClient: {
        ...(env.TLS_CA_FILE && { caFile: env.TLS_CA_FILE }),
        ...((env.GATEWAY_CLIENT_CERT_FILE ?? env.TLS_CERT_FILE) && { certFile: env.GATEWAY_CLIENT_CERT_FILE ?? env.TLS_CERT_FILE }),
        ...((env.GATEWAY_CLIENT_KEY_FILE ?? env.TLS_KEY_FILE) && { keyFile: env.GATEWAY_CLIENT_KEY_FILE ?? env.TLS_KEY_FILE }),
        certFromListener: env.GATEWAY_CLIENT_CERT_FILE === undefined,
      },
      terminatedUpstream: env.TLS_TERMINATED_UPSTREAM === 'true',
      filePollMs: Math.round(env.TLS_FILE_POLL_SECONDS * 1000),
      trustProxy: env.TRUST_PROXY,
      healthPort: env.HEALTH_PORT,
      allowInsecure: env.ALLOW_INSECURE_TRANSPORT.filter(isInsecureHop),
      redis: {
        ...(env.REDIS_CA_FILE && { caFile: env.REDIS_CA_FILE }),
        ...(env.REDIS_CLIENT_CERT_FILE && { certFile: env.REDIS_CLIENT_CERT_FILE }),
        ...(env.REDIS_CLIENT_KEY_FILE && { keyFile: env.REDIS_CLIENT_KEY_FILE }),
      },
    },
    redisKeyPrefix: env.REDIS_KEY_PREFIX,
    auth: {
      issuer: env.AUTH_ISSUER,
      audience: env.AUTH_AUDIENCE,
      algorithms: env.AUTH_ALGORITHMS,
      jwksUrl: env.AUTH_JWKS_URL,
      publicKeyPem: env.AUTH_PUBLIC_KEY,
      clockToleranceSeconds: env.AUTH_CLOCK_TOLERANCE_SECONDS,
      allowDevelopmentKey: env.NODE_ENV !== 'production',
    },
    keys: {
      service: env.PHI_KMS,
      ringJson: env.PHI_KEY_RING,
      ringFile: env.PHI_KEY_RING_FILE,
      dataDir,
      allowDevelopmentRing: env.NODE_ENV !== 'production',
      nativeCrypto: env.PHI_NATIVE_CRYPTO,
      pkcs11:
        env.PHI_KMS === 'pkcs11' && env.PKCS11_MODULE
          ? {
              modulePath: env.PKCS11_MODULE,
              tokenLabel: env.PKCS11_TOKEN_LABEL,
              slot: env.PKCS11_SLOT,
              pin: env.PKCS11_PIN_FILE ? readSecretFile(env.PKCS11_PIN_FILE, 'PKCS11_PIN_FILE') : (env.PKCS11_PIN ?? ''),
              keyLabelPrefix: env.PKCS11_KEY_LABEL_PREFIX,
            }
          : undefined,
    },
    keyRefreshSeconds: env.KEY_REFRESH_SECONDS,
    explorer: env.EXPLORER ? env.EXPLORER === 'on' : env.NODE_ENV !== 'production',
    trustedDocuments: { file: resolve(env.TRUSTED_DOCUMENTS_FILE ?? join(dataDir, DEFAULT_TRUSTED_DOCUMENTS_FILE)), requiredRoles: env.TRUSTED_DOCUMENTS_REQUIRED_ROLES.filter(isRole) },
    metricsToken: env.METRICS_TOKEN,
    auditRetentionDays: env.AUDIT_RETENTION_DAYS,
    auditSigningKeyPem: env.AUDIT_SIGNING_KEY,
    auditCheckpointSeconds: env.AUDIT_CHECKPOINT_SECONDS,
    alertThresholds: {
      distinctPatientsPerHour: env.ALERT_DISTINCT_PATIENTS_PER_HOUR,
      deniedFieldsPerHour: env.ALERT_DENIED_FIELDS_PER_HOUR,
      ssnReadsPerHour: env.ALERT_SSN_READS_PER_HOUR,
    },
    logLevel: env.LOG_LEVEL,
    seedPatients: env.SEED_PATIENTS,
    rateLimitOverrides: {
      ...(env.RATE_LIMIT_REQUESTS_PER_MINUTE !== undefined && { requestsPerMinute: env.RATE_LIMIT_REQUESTS_PER_MINUTE }),
      ...(env.RATE_LIMIT_IN_FLIGHT !== undefined && { inFlight: env.RATE_LIMIT_IN_FLIGHT }),
      ...(env.RATE_LIMIT_PATIENTS_PER_HOUR !== undefined && { patientsPerHour: env.RATE_LIMIT_PATIENTS_PER_HOUR }),
    },
    subgraphTimeoutMs: env.GATEWAY_SUBGRAPH_TIMEOUT_MS,
    requestDeadlineMs: env.REQUEST_DEADLINE_MS,
    responseMaxBytes: env.RESPONSE_MAX_BYTES,
    processHeapMb: env.PROCESS_HEAP_MB,
    processSemiSpaceMb: env.PROCESS_SEMI_SPACE_MB,
    databaseTimeouts: { statementMs: env.DATABASE_STATEMENT_TIMEOUT_MS, lockMs: env.DATABASE_LOCK_TIMEOUT_MS, acquireMs: env.DATABASE_ACQUIRE_TIMEOUT_MS },
    operationLimits: {
      maxDocumentBytes: env.OPERATION_MAX_DOCUMENT_BYTES,
      maxTokens: env.OPERATION_MAX_TOKENS,
      maxDepth: env.OPERATION_MAX_DEPTH,
      maxAliases: env.OPERATION_MAX_ALIASES,
      maxDirectives: env.OPERATION_MAX_DIRECTIVES,
      maxRootFields: env.OPERATION_MAX_ROOT_FIELDS,
      maxEntities: env.OPERATION_MAX_ENTITIES,
      ...(env.OPERATION_MAX_COST !== undefined && { maxCost: env.OPERATION_MAX_COST }),
    },
  };
}
