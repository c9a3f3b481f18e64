import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginInlineTraceDisabled } from '@apollo/server/plugin/disabled';
import { expressMiddleware } from '@as-integrations/express5';
import { buildSubgraphSchema } from '@apollo/subgraph';
import type { GraphQLResolverMap } from '@apollo/subgraph';
import express from 'express';
import { isObjectType, parse, type GraphQLSchema } from 'graphql';
import type { TokenVerifier } from '../auth/index.js';
import type { Cache } from '../cache/index.js';
import { DEFAULT_OPERATION_LIMITS, applyDecryptionOnly, applyPolicy, argumentDecider, argumentDenied, deny, isPhi, operationLimitsPlugin, type LimitBreach, type OperationLimits, argumentPolicyPlugin, introspectionByRolePlugin, isPromiseLike, type ArgumentRefusal, type Unseal } from '../policy/index.js';
import { CryptoError, CursorSealer, isSealed, openPlaintextForBenchmark, StudyPseudonyms, unseal, type AnySealed } from '../crypto/index.js';
import { decryptionFailed } from '../errors.js';
import { createErrorFormatter } from '../graphql-errors.js';
import { inputTextPlugin } from '../input-checks.js';
import { AUDIT_UNAVAILABLE_RULE, CACHE_UNAVAILABLE_RULE, DATABASE_UNAVAILABLE_RULE, IDEMPOTENCY_KEY_REUSED_RULE, REQUEST_TIMEOUT_RULE, withholdWholeResponses } from '../unavailable.js';
import { DEFAULT_REQUEST_DEADLINE_MS, DEFAULT_RESPONSE_MAX_BYTES } from '../config.js';
import { inFlightRelease, rateLimits, releaseInFlightPlugin, type RateLimitOverrides } from '../rate-limits.js';
import type { Database } from '../db/index.js';
import type { Sealer } from '../db/encryption.js';
import type { Logger } from '../logger.js';
import { createApp, errorHandler, healthRoutes, listen, locals, logArgumentRefusals, logLimitBreach, MAX_BODY_BYTES, idempotencyKey, operationNameOf, operationSourceLimits, refuseLargeBodies, requestDeadline, requestId, requireToken, responseSizeLimit, urlHost } from '../http.js';
import { createListener, type ListenerTls } from '../transport/index.js';
import { GRAPHQL_PATH, schemaPath, type SubgraphName } from './catalog.js';
import { createSubgraphContext, type SubgraphContext } from './context.js';
import { CURSOR_TTL_SECONDS } from './pagination.js';
import { emergencyAccessMarkPlugin } from './emergency-mark-plugin.js';
import { readDeadlinePlugin } from './deadline.js';
import { revocationRecheckPlugin } from './revocation-recheck.js';
import { auditPlugin, requestFacts, type AlertThresholds, type AuditMetrics, type AuditStore } from '../audit/index.js';
import { resolvers as patientResolvers } from './patient/resolvers.js';
import { resolvers as clinicalResolvers } from './clinical/resolvers.js';
import { resolvers as billingResolvers } from './billing/resolvers.js';
import { addScrapeSources, countRequests, decryptionFailures, metricsRoute } from '../metrics.js';

/** How many of a subgraph's requests one client request through the gateway may be. */
const SUBGRAPH_RATE_FACTOR = 3;

const RESOLVERS: Record<SubgraphName, unknown> = {
  patient: patientResolvers,
  clinical: clinicalResolvers,
  billing: billingResolvers,
};

/** The executable schema of one subgraph: its SDL file and its typed resolvers, with the access policy enforced. */
export function buildSchema(name: SubgraphName, options: { enforcePolicy?: boolean; plaintextForBenchmark?: boolean } = {}): GraphQLSchema {
  const typeDefs = parse(readFileSync(schemaPath(name), 'utf8'));
  const schema = buildSubgraphSchema([{ typeDefs, resolvers: RESOLVERS[name] as GraphQLResolverMap<SubgraphContext> }]);
  resolveReferencesByStoredId(schema);
  const open = options.plaintextForBenchmark ? readPlaintextForBenchmark : unsealField;
  return options.enforcePolicy === false ? applyDecryptionOnly(schema, open) : applyPolicy(schema, open);
}

/** Benchmarks only: the plaintext copy's values (crypto_version 0) read as UTF-8 instead of refused; the runtime refuses it in production. */
const readPlaintextForBenchmark: Unseal = (value, context) =>
  isSealed(value) && value.parts.every((part) => !part.encrypted) ? openPlaintextForBenchmark(value) : unsealField(value, context);

type ResolveReference = (reference: { id?: unknown }, context: SubgraphContext, info: unknown) => unknown;

/**
 * Every `__resolveReference` of the subgraph receives the stored id of the
 * record: a representation names it as its caller sees it (a researcher's
 * study pseudonym), and one that names no record of the caller's (another
 * study's pseudonym, a real id sent by a researcher) resolves to null, as
 * an absent one does. Wrapped here once, so no entity type can forget it.
 */
function resolveReferencesByStoredId(schema: GraphQLSchema): void {
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type)) continue;
    const extensions = type.extensions as { apollo?: { subgraph?: { resolveReference?: ResolveReference } } };
    const original = extensions.apollo?.subgraph?.resolveReference;
    if (!original) continue;
    const typeName = type.name;
    const byStoredId: ResolveReference = (reference, context, info) => {
      const id = typeof reference.id === 'string' ? context.ids.stored(typeName, reference.id) : null;
      return id === null ? null : original({ ...reference, id }, context, info);
    };
    (type as { extensions: unknown }).extensions = { ...extensions, apollo: { ...extensions.apollo, subgraph: { ...extensions.apollo?.subgraph, resolveReference: byStoredId } } };
  }
}

/** Every response may carry PHI: no cache on the way keeps it. */
const noStorePlugin: ApolloServerPlugin<SubgraphContext> = {
  requestDidStart: () =>
    Promise.resolve({
      willSendResponse: ({ response }) => {
        response.http.headers.set('cache-control', 'no-store');
        return Promise.resolve();
      },
    }),
};

/** Decrypts a sealed field value with the request's cipher (synchronously while its key is in memory); a failure is a coded field error, never bytes. */
const unsealField: Unseal = (value, context) => {
  if (!isSealed(value)) return value;
  try {
    const opened: unknown = unseal(value, (context as unknown as SubgraphContext).sealer.cipher);
    return isPromiseLike(opened) ? Promise.resolve(opened).catch((error: unknown) => decryptionFailure(error, value, context)) : opened;
  } catch (error) {
    return decryptionFailure(error, value, context);
  }
};

function decryptionFailure(error: unknown, sealedValue: AnySealed, context: unknown): never {
  if (!(error instanceof CryptoError)) throw error;
  const coordinate = sealedValue.parts.map((part) => `${part.location.table}.${part.location.column}`).join('+');
  const { logger, requestId } = context as SubgraphContext;
  // Tampering, a moved value or a retired key: operators need to see it (no value, no bytes).
  decryptionFailures.inc({ reason: error.failure });
  logger.warn({ event: 'decryption-failed', field: coordinate, reason: error.failure, requestId }, 'a stored value failed to decrypt');
  throw decryptionFailed(error.failure, coordinate);
}

/** A refused argument is an attempted read: logged, and audited as a denied read of the argument when it matches PHI. */
function recordArgumentRefusals(logger: Logger, context: SubgraphContext, refusals: readonly ArgumentRefusal[]): void {
  logArgumentRefusals(logger, context, refusals);
  for (const refusal of refusals) {
    if (!refusal.category || !isPhi(refusal.category)) continue;
    const [type = '', field = refusal.coordinate] = refusal.coordinate.split('.');
    context.auditField?.({ type, field, coordinate: refusal.coordinate, category: refusal.category, decision: deny, phi: true }, null, {}, argumentDenied(refusal));
  }
}

export interface SubgraphDependencies {
  db: Database;
  cache: Cache;
  sealer: Sealer;
  auditStore: AuditStore;
  auditMetrics: AuditMetrics;
  alertThresholds: AlertThresholds;
  verifier: TokenVerifier;
  logger: Logger;
  /**
   * Benchmarks only: serve without the field rules, to price them. Row
   * scopes still apply. Refused when NODE_ENV=production (see runtime.ts).
   */
  unprotectedForBenchmark?: boolean;
  /** Benchmarks only: serve without writing the audit trail, to price it. Refused when NODE_ENV=production. */
  unauditedForBenchmark?: boolean;
  /** Benchmarks only: values of rows marked unencrypted (the benchmark's plaintext copies) read as UTF-8. Refused in production. */
  plaintextForBenchmark?: boolean;
  /** What one operation may ask for; the defaults when absent. */
  operationLimits?: OperationLimits;
  rateLimitOverrides?: RateLimitOverrides;
  /** Asked again as each response leaves (a token revoked while its request ran gets no data); the verifier's own list. */
  isRevoked?: (tokenId: string) => Promise<boolean>;
  /** The deadline of one request (DEFAULT_REQUEST_DEADLINE_MS when absent; shortened by the gateway's). */
  requestDeadlineMs?: number;
  /** The largest response body sent (DEFAULT_RESPONSE_MAX_BYTES when absent). */
  responseMaxBytes?: number;
  /** With it, /metrics answers to this bearer token (from anywhere); without it, to loopback only. */
  metricsToken?: string | undefined;
  /** HTTPS with this certificate, and mutual TLS when it names a client CA; plain HTTP without (src/transport/listener.ts). */
  tls?: ListenerTls | null;
}

/** An operation refused for a limit is logged, and audited as a refusal (the audit plugin records its operation's hash). */
function recordLimitBreach(logger: Logger, context: SubgraphContext, breach: LimitBreach): void {
  logLimitBreach(logger, context, breach);
  context.audit.group({ patientId: null, entityType: 'Operation', entityId: null, action: 'read' }).add(`Operation.${breach.limit}`, 'denied', 'OPERATION_LIMIT');
}

export interface RunningServer {
  name: string;
  url: string;
  port: number;
  /** Stops accepting connections, lets in-flight requests finish, then closes. */
  stop(): Promise<void>;
}

/**
 * One subgraph over HTTP or HTTPS. It trusts nobody: every request, the
 * gateway's included, must carry a valid token, verified here before
 * GraphQL runs; with a client CA, a caller must first present a certificate
 * from it, checked in the TLS handshake before any request is read.
 */
export async function startSubgraph(
  name: SubgraphName,
  { db, cache, sealer, auditStore, auditMetrics, alertThresholds, verifier, logger, unprotectedForBenchmark, unauditedForBenchmark, plaintextForBenchmark, operationLimits, rateLimitOverrides, requestDeadlineMs, responseMaxBytes, isRevoked, metricsToken, tls }: SubgraphDependencies,
  host: string,
  port: number,
): Promise<RunningServer> {
  const log = logger.child({ subgraph: name });
  // X-Forwarded-For believed from loopback only (the gateway of the same host); TRUST_PROXY is the gateway's proxy in front.
  const app = createApp();
  const listener = createListener(name, app, tls ?? null, log);
  const httpServer: Server = listener.server;
  const schema = buildSchema(name, { enforcePolicy: !unprotectedForBenchmark, plaintextForBenchmark: plaintextForBenchmark ?? false });
  const limits = operationLimits ?? DEFAULT_OPERATION_LIMITS;
  const cursorSealer = new CursorSealer(sealer.indexKeys, CURSOR_TTL_SECONDS);
  const pseudonyms = new StudyPseudonyms(sealer.indexKeys);
  const apollo = new ApolloServer<SubgraphContext>({
    schema,
    introspection: true,
    includeStacktraceInErrorResponses: false,
    // main.ts owns shutdown: one ordered stop for all servers, then the database and cache.
    stopOnTerminationSignals: false,
    // Strips validation suggestions only; createErrorFormatter strips them everywhere else too.
    hideSchemaDetailsFromClientErrors: true,
    // Only client codes keep their message; anything else is a bare INTERNAL_SERVER_ERROR (graphql-errors.ts).
    formatError: createErrorFormatter(log),
    logger: log,
    // No inline traces: timing data per field is not for callers.
    // A backstop: the same token limit is checked, with its own error, before parsing (operationSourceLimits).
    parseOptions: { maxTokens: limits.maxTokens + 1 },
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      ApolloServerPluginInlineTraceDisabled(),
      // Apollo's cache-control plugin wraps every field resolver to collect cache hints this API never gives (a
      // thousand-row page is ten thousand wrapped calls); its one effect here, `no-store`, is set by noStorePlugin.
      ApolloServerPluginCacheControlDisabled(),
      noStorePlugin,
      // Limits first: nothing resolves for an operation past them (a direct call as much as the gateway's).
      operationLimitsPlugin<SubgraphContext>(() => schema, limits, { onRefused: (context, breach) => recordLimitBreach(log, context, breach) }),
      // Arguments are reads (also through _entities and when called directly): refused before anything resolves.
      ...(unprotectedForBenchmark ? [] : [
            argumentPolicyPlugin<SubgraphContext>(() => schema, {
              // The request's own table: a partner's is limited to its organization's sharing agreement.
              decider: (context) => argumentDecider(context.principal.roles, (role) => (category) => context.access.decisionsFor([role]).category(category)),
              onRefused: (context, refusals) => recordArgumentRefusals(log, context, refusals),
            }),
          ]),
      // Every string within its length, without control characters: refused before anything runs.
      inputTextPlugin<SubgraphContext>(() => schema),
      introspectionByRolePlugin<SubgraphContext>(() => schema),
      emergencyAccessMarkPlugin(),
      // A read past the request's deadline leaves without data; listed before the audit plugin, which records the refusal.
      readDeadlinePlugin(),
      // A dependency that did not answer withholds the whole response (the audit plugin's own refusal first).
      withholdWholeResponses<SubgraphContext>([AUDIT_UNAVAILABLE_RULE, DATABASE_UNAVAILABLE_RULE, CACHE_UNAVAILABLE_RULE, REQUEST_TIMEOUT_RULE, IDEMPOTENCY_KEY_REUSED_RULE]),
      releaseInFlightPlugin<SubgraphContext>(),
      ...(isRevoked ? [revocationRecheckPlugin(isRevoked)] : []),
      ...(unauditedForBenchmark ? [] : [auditPlugin<SubgraphContext>(name, auditStore, auditMetrics, { cache, thresholds: alertThresholds, rateOverrides: rateLimitOverrides })]),
    ],
  });
  await apollo.start();

  healthRoutes(app, () => db.ping());
  metricsRoute(app, metricsToken);
  const stopScraping = addScrapeSources({
    dataKeys: () => ({ hits: sealer.cipher.keyHits, misses: sealer.cipher.keyMisses }),
    keyService: () => sealer.cipher.keyService.calls,
    database: () => db.ping(),
    cache: () => cache.ping(),
  });
  const deadlineMs = requestDeadlineMs ?? DEFAULT_REQUEST_DEADLINE_MS;
  app.use(
    GRAPHQL_PATH,
    countRequests(name),
    requestId,
    refuseLargeBodies,
    responseSizeLimit(responseMaxBytes ?? DEFAULT_RESPONSE_MAX_BYTES, log),
    requireToken(verifier, log),
    idempotencyKey,
    // A client request reaches a subgraph once or twice through the gateway: its budgets here are scaled to that.
    rateLimits(cache, `subgraph:${name}`, log, { factor: SUBGRAPH_RATE_FACTOR, overrides: rateLimitOverrides }),
    express.json({ limit: MAX_BODY_BYTES }),
    operationSourceLimits(limits, log),
    expressMiddleware(apollo, {
      context: ({ req, res }) => {
        const { principal, requestId: id } = locals(res);
        const body = (req.body ?? {}) as { query?: unknown; operationName?: unknown };
        const operationName = typeof body.operationName === 'string' ? body.operationName : typeof body.query === 'string' ? operationNameOf(body.query) : null;
        const auditFacts = requestFacts(name, principal, id, req.ip ?? null, { get: (header) => req.header(header) }, operationName, typeof body.query === 'string' ? body.query : '');
        return Promise.resolve(
          createSubgraphContext(principal, id, db.fork(), cache, log, sealer, req.ip ?? null, {
            audited: !unauditedForBenchmark,
            cursorSealer,
            pseudonyms,
            releaseInFlight: inFlightRelease(res),
            deadline: requestDeadline(req, deadlineMs),
            deadlineMs,
            auditFacts,
            auditStore: unauditedForBenchmark ? null : auditStore,
            idempotencyKey: locals(res).idempotencyKey ?? null,
            plaintextForBenchmark: plaintextForBenchmark ?? false,
          }),
        );
      },
    }),
  );
  app.use(errorHandler(log));

  const boundPort = await listen(httpServer, host, port).catch((error: unknown) => {
    listener.close();
    throw error;
  });
  const url = `${listener.scheme}://${urlHost(host)}:${boundPort}${GRAPHQL_PATH}`;
  return {
    name,
    url,
    port: boundPort,
    stop: async () => {
      stopScraping();
      listener.close();
      await apollo.stop();
    },
  };
}
