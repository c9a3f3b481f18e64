import { timingSafeEqual } from 'node:crypto';
import type { Express, NextFunction, Request, Response } from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Principal } from './auth/index.js';
import { operationNameOf } from './http.js';
import { startRequestSpan } from './tracing.js';

/**
 * Prometheus metrics of this process (`prom-client`), served on `/metrics`
 * by the gateway and every subgraph. Labels carry names and codes only:
 * operation names (client-chosen, so checked and capped), roles, field
 * coordinates, outcomes, reasons. Never a value, an id, a token or a
 * variable.
 */
export const registry = new Registry();
registry.setDefaultLabels({ service: 'phi-graph' });
collectDefaultMetrics({ register: registry, prefix: 'phi_graph_' });

export const requests = new Counter({
  name: 'phi_graph_requests_total',
  help: 'GraphQL requests by server, operation name, roles and HTTP status (every request, refusals before the GraphQL layer included)',
  labelNames: ['server', 'operation', 'role', 'status'] as const,
  registers: [registry],
});

export const requestSeconds = new Histogram({
  name: 'phi_graph_request_duration_seconds',
  help: 'Time to answer a GraphQL request, by server, operation name and HTTP status',
  labelNames: ['server', 'operation', 'status'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

export const fieldDecisions = new Counter({
  name: 'phi_graph_field_decisions_total',
  help: 'Decisions on PHI fields by field coordinate (Type.field), roles and outcome (allowed, masked, denied, failed); counted per row',
  labelNames: ['field', 'role', 'outcome'] as const,
  registers: [registry],
});

export const auditWriteSeconds = new Histogram({
  name: 'phi_graph_audit_write_duration_seconds',
  help: 'Time to write one request audit batch (the response waits for it)',
  labelNames: ['subgraph'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
  registers: [registry],
});

export const auditWriteFailures = new Counter({
  name: 'phi_graph_audit_write_failures_total',
  help: 'Audit batches that could not be written (each response was withheld: 503 AUDIT_UNAVAILABLE)',
  labelNames: ['subgraph'] as const,
  registers: [registry],
});

export const decryptionFailures = new Counter({
  name: 'phi_graph_decryption_failures_total',
  help: 'Stored values that failed to decrypt, by reason (DECRYPTION_FAILED, MALFORMED_CIPHERTEXT, KEY_UNKNOWN, KEY_RETIRED, NOT_ENCRYPTED)',
  labelNames: ['reason'] as const,
  registers: [registry],
});

export const refusals = new Counter({
  name: 'phi_graph_refusals_total',
  help: 'Operations refused before they ran, by kind (operation_limit, rate_limit, argument) and reason (the limit or budget)',
  labelNames: ['kind', 'reason'] as const,
  registers: [registry],
});

/** Read at each scrape from what the processes already count (no work on the request path). */
export const dataKeyCache = new Gauge({
  name: 'phi_graph_data_key_cache_lookups',
  help: 'Data key lookups of this process since start: hit (unwrapped key in memory) or miss (fetched and unwrapped)',
  labelNames: ['result'] as const,
  registers: [registry],
});

export const keyServiceCalls = new Gauge({
  name: 'phi_graph_key_service_calls',
  help: 'Calls to the key-encryption keys (the key ring or the HSM) since start, by operation',
  labelNames: ['operation'] as const,
  registers: [registry],
});

export const dependencyUp = new Gauge({
  name: 'phi_graph_dependency_up',
  help: 'Whether a dependency answered at the last scrape (1) or not (0): database, cache',
  labelNames: ['dependency'] as const,
  registers: [registry],
});

/** What a process reports at scrape time; each server registers its own. */
export interface ScrapeSources {
  dataKeys?: () => { hits: number; misses: number };
  keyService?: () => { wrap: number; unwrap: number; refresh: number };
  database?: () => Promise<boolean>;
  cache?: () => Promise<boolean>;
}

const sources: ScrapeSources[] = [];

export function addScrapeSources(source: ScrapeSources): () => void {
  sources.push(source);
  return () => {
    const index = sources.indexOf(source);
    if (index >= 0) sources.splice(index, 1);
  };
}

const SCRAPE_CHECK_MS = 1_000;

async function withinScrape(check: () => Promise<boolean>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), SCRAPE_CHECK_MS)));
  try {
    return await Promise.race([check().catch(() => false), late]);
  } finally {
    clearTimeout(timer);
  }
}

async function collectSources(): Promise<void> {
  let hits = 0;
  let misses = 0;
  const calls = { wrap: 0, unwrap: 0, refresh: 0 };
  const checks: Record<string, Promise<boolean>[]> = { database: [], cache: [] };
  for (const source of sources) {
    const keys = source.dataKeys?.();
    hits += keys?.hits ?? 0;
    misses += keys?.misses ?? 0;
    const service = source.keyService?.();
    if (service) for (const operation of ['wrap', 'unwrap', 'refresh'] as const) calls[operation] += service[operation];
    if (source.database) checks['database']?.push(withinScrape(source.database));
    if (source.cache) checks['cache']?.push(withinScrape(source.cache));
  }
  dataKeyCache.set({ result: 'hit' }, hits);
  dataKeyCache.set({ result: 'miss' }, misses);
  for (const [operation, count] of Object.entries(calls)) keyServiceCalls.set({ operation }, count);
  for (const [dependency, pending] of Object.entries(checks)) {
    if (pending.length > 0) dependencyUp.set({ dependency }, (await Promise.all(pending)).every(Boolean) ? 1 : 0);
  }
}

/** Operation names are the client's words: only GraphQL names, and at most MAX_OPERATION_NAMES distinct ones per process. */
const OPERATION_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const MAX_OPERATION_NAMES = 200;
const seenOperations = new Set<string>();

export function operationLabel(name: unknown): string {
  if (typeof name !== 'string' || name === '') return 'anonymous';
  if (!OPERATION_NAME.test(name)) return 'invalid';
  if (seenOperations.has(name)) return name;
  if (seenOperations.size >= MAX_OPERATION_NAMES) return 'other';
  seenOperations.add(name);
  return name;
}

export function roleLabel(principal: Principal | undefined): string {
  return principal ? [...principal.roles].sort().join(',') : 'none';
}

/**
 * Counts and traces every request of a GraphQL route when its response has
 * left: first in the route's middleware, so refusals count too. The span's
 * carrier (`traceparent`) is left in `response.locals.traceCarrier` for the
 * gateway to pass on to the subgraphs.
 */
export function countRequests(server: string) {
  return (request: Request, response: Response, next: NextFunction): void => {
    const started = process.hrtime.bigint();
    const span = startRequestSpan(server, request.headers);
    response.locals['traceCarrier'] = span.carrier;
    response.once('finish', () => {
      const body = request.body as { operationName?: unknown; query?: unknown } | undefined;
      const named = typeof body?.operationName === 'string' ? body.operationName : typeof body?.query === 'string' ? operationNameOf(body.query) : null;
      const operation = operationLabel(named);
      const status = String(response.statusCode);
      requests.inc({ server, operation, role: roleLabel(response.locals['principal'] as Principal | undefined), status });
      requestSeconds.observe({ server, operation, status }, Number(process.hrtime.bigint() - started) / 1e9);
      const requestId: unknown = response.locals['requestId'];
      span.end(
        {
          'graphql.operation.name': operation,
          'phi_graph.roles': roleLabel(response.locals['principal'] as Principal | undefined),
          'http.response.status_code': response.statusCode,
          ...(typeof requestId === 'string' && { 'phi_graph.request_id': requestId }),
        },
        response.statusCode >= 500,
      );
    });
    next();
  };
}

/**
 * `/metrics`: from loopback only, or, when METRICS_TOKEN is set, to a
 * caller that sends it as a bearer token (from anywhere; a scraper on
 * another host). Anything else: 404, as if there were nothing there.
 */
export function metricsRoute(app: Express, token: string | undefined): void {
  app.get('/metrics', (request, response) => {
    if (!mayScrape(request, token)) {
      response.status(404).end();
      return;
    }
    collectSources()
      .then(() => registry.metrics())
      .then((text) => response.setHeader('content-type', registry.contentType).send(text))
      .catch(() => response.status(500).end());
  });
}

function mayScrape(request: Request, token: string | undefined): boolean {
  if (token) {
    const sent = Buffer.from(/^Bearer (.+)$/.exec(request.header('authorization') ?? '')?.[1] ?? '');
    const expected = Buffer.from(token);
    return sent.length === expected.length && timingSafeEqual(sent, expected);
  }
  const address = request.socket.remoteAddress ?? '';
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

export const tlsCertificateExpiry = new Gauge({
  name: 'phi_graph_tls_certificate_expiry_timestamp_seconds',
  help: 'When the certificate a listener (gateway, patient, clinical, billing) or the gateway\'s client certificate (gateway-client) serves now expires, as a Unix time: alert well before it',
  labelNames: ['listener'] as const,
  registers: [registry],
});

export const tlsHandshakeFailures = new Counter({
  name: 'phi_graph_tls_handshake_failures_total',
  help: 'TLS handshakes a listener refused, by OpenSSL reason (a caller without a client certificate, one from another CA, an old protocol version)',
  labelNames: ['listener', 'reason'] as const,
  registers: [registry],
});
