import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { mintDevelopmentToken, type PurposeOfUse, type Role } from '../../src/auth/index.js';
import { readDevelopmentPrincipals, type DevelopmentPrincipals } from '../../src/db/seed/index.js';
import { startApi, type Api } from '../../src/runtime.js';
import type { SubgraphName } from '../../src/subgraphs/catalog.js';
import { createScratchDatabase, resolveServices } from './services.js';
import { sqlOn } from './fixtures.js';

/**
 * A whole API for one test file: a fresh database (PostgreSQL when
 * reachable, PGlite otherwise) seeded with synthetic data, the cache
 * (Redis when reachable), the three subgraphs and the gateway on
 * ephemeral loopback ports.
 */
export interface TestStack {
  /** The running API (replaced by restart). */
  readonly api: Api;
  config: Config;
  readonly gatewayUrl: string;
  /** One SQL statement on the test database. */
  sql<T>(text: string, params?: unknown[]): Promise<T[]>;
  /** Stops the API and starts it again on the same database, data folder and cache (e.g. after a key ring change). */
  restart(): Promise<void>;
  subgraphUrl(name: SubgraphName): string;
  principals: DevelopmentPrincipals;
  /** SQL statements sent since the stack started (reset it to measure one request). */
  statements: { count: number };
  token(role: Role, overrides?: Partial<TokenOverrides>): Promise<string>;
  /** Another running instance of the API on the same database, cache and keys (PostgreSQL only: PGlite is one process's). */
  startInstance(): Promise<{ gatewayUrl: string; stop(): Promise<void> }>;
  stop(): Promise<void>;
}

export interface TokenOverrides {
  subject: string;
  roles: Role[];
  organizationId: string | null;
  patientId: string | null;
  /** The research study; researcher tokens default to TEST_STUDY. */
  study: string | null;
  /** The token's `purpose_of_use` claim; without it the roles' default purposes apply. */
  purposes: PurposeOfUse[];
  mfa: boolean;
  ttl: string;
}

/** The study researcher tokens of the tests name unless told otherwise. */
export const TEST_STUDY = 'test-study-a';

export const TEST_PATIENTS = 120;

/** `logger`: where the API logs (by default nowhere: LOG_LEVEL is silent), e.g. to look for a warning it must write. */
export async function startTestStack(options: { patients?: number; env?: Record<string, string>; logger?: Logger } = {}): Promise<TestStack> {
  const services = await resolveServices();
  const dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-test-'));
  const scratch = services.postgresUrl ? await createScratchDatabase(services.postgresUrl) : null;
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    PATIENT_SUBGRAPH_PORT: '0',
    CLINICAL_SUBGRAPH_PORT: '0',
    BILLING_SUBGRAPH_PORT: '0',
    DATA_DIR: dataDir,
    ...(scratch && { DATABASE_URL: scratch.url }),
    ...(services.redisUrl && { REDIS_URL: services.redisUrl }),
    LOG_LEVEL: 'silent',
    // Each stack its own Redis keys: seeded subjects repeat across stacks and runs.
    REDIS_KEY_PREFIX: `phi-graph-test:${randomBytes(6).toString('hex')}:`,
    // Test files send hundreds of requests a minute from one account; the budgets over time are tested on their own (rate-limits.test.ts).
    RATE_LIMIT_REQUESTS_PER_MINUTE: '1000000',
    RATE_LIMIT_IN_FLIGHT: '10000',
    // Tests reuse one account under several roles (a patient's subject with every role reads many patients).
    RATE_LIMIT_PATIENTS_PER_HOUR: '1000000',
    ...options.env,
  });
  const statements = { count: 0 };
  const onStatement = () => {
    statements.count += 1;
  };
  const logger = options.logger ?? createLogger(config.logLevel);
  let api = await startApi(config, logger, { seedPatients: options.patients ?? TEST_PATIENTS, onStatement });
  const principals = await readDevelopmentPrincipals(dataDir);
  if (!principals) throw new Error('the seeder wrote no development principals');
  if (!api.gateway) throw new Error('the gateway did not start');
  return {
    get api() {
      return api;
    },
    config,
    get gatewayUrl() {
      return api.gateway?.url ?? '';
    },
    sql<T>(text: string, params: unknown[] = []) {
      if (!api.db) throw new Error('the stack has no database');
      return sqlOn(api.db)<T>(text, params);
    },
    async restart() {
      await api.stop();
      api = await startApi(config, logger, { seedPatients: 0, onStatement });
    },
    async startInstance() {
      const other = await startApi(config, logger, { seedPatients: 0 });
      return { gatewayUrl: other.gateway?.url ?? '', stop: () => other.stop() };
    },
    subgraphUrl(name) {
      const server = api.subgraphs[name];
      if (!server) throw new Error(`subgraph ${name} is not running`);
      return server.url;
    },
    principals,
    statements,
    token(role, overrides = {}) {
      const sample = principals[role];
      return mintDevelopmentToken(config.auth, dataDir, {
        subject: overrides.subject ?? sample.subject,
        roles: overrides.roles ?? [role],
        organizationId: overrides.organizationId === undefined ? sample.organizationId : overrides.organizationId,
        patientId: overrides.patientId === undefined ? sample.patientId : overrides.patientId,
        study: overrides.study === undefined ? ((overrides.roles ?? [role]).includes('researcher') ? TEST_STUDY : null) : overrides.study,
        ...(overrides.purposes && { purposes: overrides.purposes }),
        mfa: overrides.mfa ?? true,
        ttl: overrides.ttl ?? '5m',
      });
    },
    async stop() {
      await api.stop();
      await scratch?.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface GraphQLResponse<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: { data?: T | null; errors?: { message: string; path?: (string | number)[]; extensions?: Record<string, unknown> }[] };
}

/** POSTs one operation, as a client would. */
export async function post<T = Record<string, unknown>>(
  url: string,
  query: string,
  options: { token?: string; variables?: Record<string, unknown>; headers?: Record<string, string> } = {},
): Promise<GraphQLResponse<T>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(options.token && { authorization: `Bearer ${options.token}` }),
      ...options.headers,
    },
    body: JSON.stringify({ query, variables: options.variables }),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as GraphQLResponse<T>['body'] };
}
