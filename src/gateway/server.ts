import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { ApolloGateway, RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { GraphQLError, printSchema } from 'graphql';
import { AUDIT_UNAVAILABLE, FORWARDED_OPERATION_HASH, FORWARDED_OPERATION_NAME, operationHash } from '../audit/index.js';
import { DEFAULT_OPERATION_LIMITS, INTROSPECTION_ROLES, argumentPolicyPlugin, cachedSchemaView, introspectionByRolePlugin, operationLimitsPlugin, type OperationLimits } from '../policy/index.js';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { expressMiddleware } from '@as-integrations/express5';
import express from 'express';
import { AuthenticationError, isAuthFailureReason, PURPOSE_HEADER, type Principal, type Role, type TokenVerifier } from '../auth/index.js';
import type { Logger } from '../logger.js';
import { createApp, errorHandler, healthRoutes, listen, locals, logArgumentRefusals, logLimitBreach, MAX_BODY_BYTES, idempotencyKey, IDEMPOTENCY_KEY_HEADER, operationNameOf, operationSourceLimits, refuseLargeBodies, REQUEST_ID_HEADER, REQUEST_TIMEOUT_HEADER, requestDeadline, requestId, requireToken, responseSizeLimit, urlHost } from '../http.js';
import { createClientTls, createListener, requireHttps, type ClientTls, type ListenerTls } from '../transport/index.js';
import { GRAPHQL_PATH, isSubgraphName, type SubgraphName } from '../subgraphs/catalog.js';
import type { RunningServer } from '../subgraphs/server.js';
import { SUPERGRAPH_PATH } from './compose.js';
import { createErrorFormatter } from '../graphql-errors.js';
import { inputTextPlugin } from '../input-checks.js';
import {
  ARGUMENT_DENIED_RULE,
  AUDIT_UNAVAILABLE_RULE,
  IDEMPOTENCY_KEY_REUSED_RULE,
  CACHE_UNAVAILABLE_RULE,
  DATABASE_UNAVAILABLE_RULE,
  RATE_LIMITED_RULE,
  REQUEST_TIMEOUT_RULE,
  UNAUTHENTICATED_RULE,
  RESPONSE_TOO_LARGE_RULE,
  SUBGRAPH_TIMEOUT_RULE,
  SUBGRAPH_UNAVAILABLE_RULE,
  withholdWholeResponses,
} from '../unavailable.js';
import { inFlightRelease, rateLimits, releaseInFlightPlugin, type RateLimitOverrides } from '../rate-limits.js';
import type { Cache } from '../cache/index.js';
import { ErrorCode, auditUnavailable, cacheUnavailable, databaseUnavailable, requestTimeout, subgraphTimeout, subgraphUnavailable } from '../errors.js';
import { DEFAULT_REQUEST_DEADLINE_MS, DEFAULT_RESPONSE_MAX_BYTES } from '../config.js';
import { loadApiSchema } from './api-schema.js';
import { countRequests, metricsRoute } from '../metrics.js';
import { trustedDocuments, type Manifest } from './trusted-documents.js';
import { explorerRoutes } from './explorer.js';

const MAX_FORWARDED_HEADER = 200;
/** Longer than a subgraph's own database deadlines (src/db/orm.ts), so a subgraph says why it is slow before the gateway gives up. */
export const DEFAULT_SUBGRAPH_TIMEOUT_MS = 15_000;
/** How much sooner than the gateway a subgraph's deadline comes: its answer's way back. */
const SUBGRAPH_DEADLINE_MARGIN_MS = 250;
/** A subgraph's whole-operation refusals that reach the client as the subgraph said them. */
const PASSED_ON_FROM_SUBGRAPHS = new Set(['FORBIDDEN', 'BAD_USER_INPUT', 'OPERATION_LIMIT', 'RATE_LIMITED', 'RESPONSE_TOO_LARGE', 'REQUEST_TIMEOUT']);
/** Connection errors of a subgraph that is not there (its process down or being restarted). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ECONNABORTED']);

/** Certificate verification failures (Node's and OpenSSL's codes) and refused handshakes. */
const TLS_FAILURE = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|ERR_OSSL_|HOSTNAME_MISMATCH$|EPROTO$)/;

function isTlsFailure(code: string): boolean {
  return TLS_FAILURE.test(code);
}

/** What the gateway knows about one client request. */
export interface GatewayContext {
  principal: Principal;
  requestId: string;
  /** The caller's own Authorization header, forwarded unchanged to every subgraph. */
  authorization: string;
  /** Facts the subgraphs' audit records need about the client and its operation (never the operation's variables). */
  forwarded: Record<string, string>;
  /** Releases the request's in-flight slot (rate limits) when the work is done. */
  releaseInFlight?: () => void;
  /** When the whole request must be done (epoch ms); each subgraph fetch gets what is left. */
  deadline: number;
  /** The request deadline this gateway runs with (for the error). */
  deadlineMs: number;
}

/**
 * Forwards the caller's token and the request id, so each subgraph
 * authenticates the caller itself, plus the facts its audit records need.
 */
class ForwardingDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  constructor(
    url: string,
    timeoutMs: number,
    private readonly log: Logger,
    clientTls: ClientTls,
  ) {
    super({ url });
    // Apollo's fetcher (make-fetch-happen) takes a per-request timeout: a subgraph that does not answer in time is
    // given up, at the fetch deadline or when the client request's own deadline comes, whichever is first.
    // And it takes our agent (src/transport/client.ts): the subgraph's certificate verified against TLS_CA_FILE, the
    // gateway's client certificate, reloaded for the next connection; never a proxy from the environment.
    const fetcher = this.fetcher;
    this.fetcher = ((target: string, init: Parameters<typeof fetcher>[1]) => {
      const left = Number(init?.headers?.[REQUEST_TIMEOUT_HEADER]) + SUBGRAPH_DEADLINE_MARGIN_MS;
      const timeout = Number.isFinite(left) && left > 0 ? Math.min(timeoutMs, left) : timeoutMs;
      // No redirects: a subgraph's answer is its own, never another address's (the token and the client certificate stay with it).
      return fetcher(target, { ...init, timeout, agent: clientTls.agentFor(target), redirect: 'error' } as Parameters<typeof fetcher>[1]);
    });
  }

  /**
   * Said with a code (the response then leaves without data), never the fetch error: a subgraph past the
   * fetch deadline (504 SUBGRAPH_TIMEOUT), the request past its own (504 REQUEST_TIMEOUT), a subgraph that
   * cannot be reached, being restarted by its supervisor (503 SUBGRAPH_UNAVAILABLE).
   */
  override didEncounterError(error: Error, ...rest: Parameters<RemoteGraphQLDataSource<GatewayContext>['didEncounterError']> extends [unknown, ...infer R] ? R : never): void {
    const context = rest[2] as Partial<GatewayContext> | undefined;
    if ((error as { type?: unknown }).type === 'request-timeout' || error.name === 'AbortError') {
      if (context?.deadline !== undefined && Date.now() >= context.deadline) throw requestTimeout(context.deadlineMs ?? 0);
      throw subgraphTimeout();
    }
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && UNREACHABLE.has(code)) throw subgraphUnavailable();
    if (typeof code === 'string' && isTlsFailure(code)) {
      // The subgraph's certificate did not verify (another CA, another name, expired) or it refused the gateway's: an operator's problem, said to them with OpenSSL's code.
      this.log.error({ event: 'subgraph-tls-failed', subgraph: this.url, reason: code }, 'TLS with a subgraph failed; its requests are refused as unavailable');
      throw subgraphUnavailable();
    }
    super.didEncounterError(error, ...rest);
  }

  override willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>): void {
    const caller = context as Partial<GatewayContext>;
    if (!caller.authorization || !caller.requestId) return; // the gateway's own health checks carry no caller
    if (caller.deadline !== undefined) {
      // The subgraph gets a little less than what is left, so it gives up (and rolls back) before the gateway does:
      // a write the gateway reports as timed out never commits after it.
      const left = caller.deadline - Date.now() - SUBGRAPH_DEADLINE_MARGIN_MS;
      if (left <= 0) throw requestTimeout(caller.deadlineMs ?? 0);
      request.http?.headers.set(REQUEST_TIMEOUT_HEADER, String(left));
    }
    request.http?.headers.set('authorization', caller.authorization);
    request.http?.headers.set(REQUEST_ID_HEADER, caller.requestId);
    for (const [name, value] of Object.entries(caller.forwarded ?? {})) request.http?.headers.set(name, value);
  }

  /**
   * A subgraph that could not write its audit trail withheld its data: say so with the same code.
   * A subgraph that refused the operation whole (403: an argument its own, narrower decisions do
   * not allow; 400: a value only it can check, such as a date of the calendar, or a limit) says
   * why in its first error: passed on as it is (the error formatter still filters it).
   */
  override async errorFromResponse(response: Parameters<RemoteGraphQLDataSource['errorFromResponse']>[0]): Promise<GraphQLError> {
    if (response.status === 401) {
      // A subgraph refused the token itself (revoked meanwhile, say): the client's answer is the same 401.
      const body = (await response.clone().json().catch(() => null)) as { errors?: { extensions?: Record<string, unknown> }[] } | null;
      const reason = body?.errors?.[0]?.extensions?.['reason'];
      const refusal = new AuthenticationError(typeof reason === 'string' && isAuthFailureReason(reason) ? reason : 'INVALID_TOKEN').toGraphQLError();
      return new GraphQLError(refusal.message, { extensions: { code: 'UNAUTHENTICATED', reason: refusal.extensions['reason'] } });
    }
    if (response.status === 403 || response.status === 400 || response.status === 429 || response.status === 504) {
      const body = (await response.clone().json().catch(() => null)) as { errors?: { message?: unknown; extensions?: Record<string, unknown> }[] } | null;
      const refusal = body?.errors?.[0];
      const code = refusal?.extensions?.['code'];
      if (typeof code === 'string' && PASSED_ON_FROM_SUBGRAPHS.has(code) && typeof refusal?.message === 'string') {
        return new GraphQLError(refusal.message, { extensions: refusal.extensions });
      }
    }
    if (response.status === 503) {
      const body = (await response.clone().json().catch(() => null)) as { errors?: { extensions?: { code?: string } }[] } | null;
      if (body?.errors?.some((error) => error.extensions?.code === ErrorCode.DatabaseUnavailable)) return databaseUnavailable();
      if (body?.errors?.some((error) => error.extensions?.code === ErrorCode.CacheUnavailable)) return cacheUnavailable();
      if (body?.errors?.some((error) => error.extensions?.code === AUDIT_UNAVAILABLE)) {
        return auditUnavailable();
      }
    }
    // A proxy's or a dying process's answer with no GraphQL body of ours: the subgraph is not there.
    if (response.status === 502 || response.status === 503) return subgraphUnavailable();
    return super.errorFromResponse(response);
  }
}

export interface GatewayDependencies {
  /** Serve the API explorer (GraphiQL) to browsers at /graphql. */
  explorer?: boolean;
  /** Registered operations (trusted-documents.ts) and the roles that may run only those. */
  trustedDocuments?: Manifest;
  trustedDocumentRoles?: readonly Role[];
  /** With it, /metrics answers to this bearer token (from anywhere); without it, to loopback only. */
  metricsToken?: string | undefined;
  verifier: TokenVerifier;
  logger: Logger;
  /** Where each subgraph actually listens (overrides the URLs in supergraph.graphql). */
  subgraphUrls: Record<SubgraphName, string>;
  /** Answers /readyz. */
  ready: () => Promise<boolean>;
  /** What one operation may ask for; the defaults when absent. */
  operationLimits?: OperationLimits;
  /** The rate counters (shared with the subgraphs); without one, no budget over time is kept here (the subgraphs keep theirs). */
  cache?: Cache;
  rateLimitOverrides?: RateLimitOverrides;
  /** How long the gateway waits for a subgraph's answer (DEFAULT_SUBGRAPH_TIMEOUT_MS when absent). */
  subgraphTimeoutMs?: number;
  /** The deadline of one whole client request (DEFAULT_REQUEST_DEADLINE_MS when absent). */
  requestDeadlineMs?: number;
  /** The largest response body sent (DEFAULT_RESPONSE_MAX_BYTES when absent). */
  responseMaxBytes?: number;
  /** HTTPS with this certificate; plain HTTP without (src/transport/listener.ts). */
  tls?: ListenerTls | null;
  /** What the gateway trusts and presents when it calls subgraphs over HTTPS (without it: the system's CAs, no client certificate). */
  clientTls?: ClientTls;
  /** A proxy in front terminates TLS: requests it did not forward over HTTPS are refused (HTTPS_REQUIRED). */
  requireHttps?: boolean;
  /** Whose X-Forwarded-* headers are believed (TRUST_PROXY). */
  trustProxy?: readonly string[];
}

/**
 * The federation gateway: Apollo Gateway executing the committed
 * supergraph.graphql. It verifies the token before planning anything;
 * the subgraphs verify it again.
 */
export async function startGateway(deps: GatewayDependencies, host: string, port: number): Promise<RunningServer> {
  const log = deps.logger.child({ component: 'gateway' });
  // Apollo Gateway reports every schema load at info; only its warnings matter to an operator.
  const gatewayLog = log.child({}, { level: log.levelVal > 40 ? log.level : 'warn' });
  const supergraphSdl = readFileSync(SUPERGRAPH_PATH, 'utf8');
  const apiSchema = loadApiSchema(supergraphSdl);
  const limits = deps.operationLimits ?? DEFAULT_OPERATION_LIMITS;
  // Apollo Gateway collects usage data by default: an OTLP export to Apollo's servers and cloud-metadata probes
  // (GCP, AWS, Azure, Alibaba) from every instance. Never, for an API in front of PHI: off before the gateway is built.
  process.env['APOLLO_TELEMETRY_DISABLED'] = 'true';
  // Without settings (tests, benchmarks): the system's CAs and no client certificate, through agents of our own all the same.
  const clientTls = deps.clientTls ?? createClientTls({}, log);
  const ownsClientTls = deps.clientTls === undefined;
  const gateway = new ApolloGateway({
    supergraphSdl,
    logger: gatewayLog,
    buildService: ({ name, url }) => {
      const target = isSubgraphName(name) ? deps.subgraphUrls[name] : url;
      if (!target) throw new Error(`the supergraph names subgraph ${name} without a URL`);
      return new ForwardingDataSource(target, deps.subgraphTimeoutMs ?? DEFAULT_SUBGRAPH_TIMEOUT_MS, log, clientTls);
    },
  });
  const app = createApp(deps.trustProxy);
  const listener = createListener('gateway', app, deps.tls ?? null, log);
  const httpServer: Server = listener.server;
  const apollo = new ApolloServer<GatewayContext>({
    gateway,
    introspection: true,
    // Automatic persisted queries off: a client cannot register a document by sending it (trusted documents are registered ahead of time).
    persistedQueries: false,
    includeStacktraceInErrorResponses: false,
    // main.ts owns shutdown: one ordered stop for all servers, then the database and cache.
    stopOnTerminationSignals: false,
    // Strips validation suggestions only; createErrorFormatter strips them everywhere else too.
    hideSchemaDetailsFromClientErrors: true,
    // A backstop: the same token limit is checked, with its own error, before parsing (operationSourceLimits).
    parseOptions: { maxTokens: limits.maxTokens + 1 },
    // Only client codes keep their message; anything else is a bare INTERNAL_SERVER_ERROR (graphql-errors.ts).
    formatError: createErrorFormatter(log),
    logger: log,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      // Limits first: nothing is planned for an operation past them.
      operationLimitsPlugin<GatewayContext>(() => apiSchema, limits, { onRefused: (context, breach) => logLimitBreach(log, context, breach, context.forwarded[FORWARDED_OPERATION_HASH]) }),
      // Arguments are reads: refused before planning when the caller may not read what they match.
      argumentPolicyPlugin<GatewayContext>(() => apiSchema, { onRefused: (context, refusals) => logArgumentRefusals(log, context, refusals) }),
      // Every string within its length, without control characters: refused before anything runs.
      inputTextPlugin<GatewayContext>(() => apiSchema),
      introspectionByRolePlugin<GatewayContext>(() => apiSchema),
      // Whatever a subgraph said of the whole operation (its audit, a dependency, its deadline, a budget, an argument) refuses it whole here.
      withholdWholeResponses<GatewayContext>(
        [UNAUTHENTICATED_RULE, AUDIT_UNAVAILABLE_RULE, DATABASE_UNAVAILABLE_RULE, CACHE_UNAVAILABLE_RULE, REQUEST_TIMEOUT_RULE, SUBGRAPH_TIMEOUT_RULE, SUBGRAPH_UNAVAILABLE_RULE, RATE_LIMITED_RULE, RESPONSE_TOO_LARGE_RULE, IDEMPOTENCY_KEY_REUSED_RULE, ARGUMENT_DENIED_RULE],
        (context, rule, errors) => {
          if (rule === REQUEST_TIMEOUT_RULE || rule === SUBGRAPH_TIMEOUT_RULE || rule === SUBGRAPH_UNAVAILABLE_RULE) {
            log.warn({ event: 'request-withheld', code: errors[0]?.extensions?.['code'], subject: context.principal.subject, requestId: context.requestId }, 'a subgraph did not answer in time or could not be reached: response withheld');
          }
          if (rule !== ARGUMENT_DENIED_RULE) return;
          log.warn(
            { event: 'argument-denied', subject: context.principal.subject, requestId: context.requestId, arguments: errors.map((error) => error.extensions?.['argument']) },
            'a subgraph refused an operation for an argument its caller may not use',
          );
        },
      ),
      releaseInFlightPlugin<GatewayContext>(),
    ],
  });
  await apollo.start();

  healthRoutes(app, deps.ready);
  // Its own gate (loopback, or METRICS_TOKEN): a scraper on the same host reaches it behind a proxy too.
  metricsRoute(app, deps.metricsToken);
  // Behind a proxy that terminates TLS, only what it forwarded over HTTPS is served (probes and metrics above answer over plain HTTP).
  if (deps.requireHttps) app.use(requireHttps);
  if (deps.explorer) explorerRoutes(app);
  // The caller's own view of the API as SDL (types and fields its roles may use, with their descriptions), for the roles that may introspect.
  app.get('/schema.graphql', requestId, requireToken(deps.verifier, log), (_request, response) => {
    const { principal } = locals(response);
    if (!principal.roles.some((role) => INTROSPECTION_ROLES.includes(role))) {
      response.status(403).json({ errors: [{ message: `The schema is open to the ${INTROSPECTION_ROLES.join(' and ')} roles only.`, extensions: { code: 'FORBIDDEN' } }] });
      return;
    }
    response.type('text/plain; charset=utf-8').send(printSchema(cachedSchemaView(apiSchema, principal.roles)));
  });
  const deadlineMs = deps.requestDeadlineMs ?? DEFAULT_REQUEST_DEADLINE_MS;
  app.use(
    GRAPHQL_PATH,
    countRequests('gateway'),
    requestId,
    refuseLargeBodies,
    responseSizeLimit(deps.responseMaxBytes ?? DEFAULT_RESPONSE_MAX_BYTES, log),
    requireToken(deps.verifier, log),
    idempotencyKey,
    ...(deps.cache ? [rateLimits(deps.cache, 'gateway', log, { overrides: deps.rateLimitOverrides })] : []),
    express.json({ limit: MAX_BODY_BYTES }),
    trustedDocuments(deps.trustedDocuments ?? { version: 1, documents: [] }, new Set(deps.trustedDocumentRoles ?? [])),
    operationSourceLimits(limits, log),
    expressMiddleware(apollo, {
      context: ({ req, res }) => {
        const { principal, requestId: id } = locals(res);
        const body = (req.body ?? {}) as { query?: unknown; operationName?: unknown };
        // The purpose the gateway chose (requireToken): each subgraph checks it against the token again.
        const forwarded: Record<string, string> = { 'x-forwarded-for': req.ip ?? '', ...(principal.purpose && { [PURPOSE_HEADER]: principal.purpose }) };
        for (const name of ['apollographql-client-name', 'apollographql-client-version']) {
          const value = req.header(name);
          if (value) forwarded[name] = value.slice(0, MAX_FORWARDED_HEADER);
        }
        if (typeof body.query === 'string') forwarded[FORWARDED_OPERATION_HASH] = operationHash(body.query);
        const named = typeof body.operationName === 'string' ? body.operationName : typeof body.query === 'string' ? operationNameOf(body.query) : null;
        if (named) forwarded[FORWARDED_OPERATION_NAME] = named.slice(0, MAX_FORWARDED_HEADER);
        // The subgraph that writes keeps the key (checked at the door: idempotencyKey).
        const key = locals(res).idempotencyKey;
        if (key) forwarded[IDEMPOTENCY_KEY_HEADER] = key;
        // The gateway's span, passed on to the subgraphs (traceparent): one trace across the processes.
        Object.assign(forwarded, res.locals['traceCarrier'] as Record<string, string> | undefined);
        const releaseInFlight = inFlightRelease(res);
        const deadline = requestDeadline(req, deadlineMs);
        return Promise.resolve({ principal, requestId: id, authorization: req.header('authorization') ?? '', forwarded, deadline, deadlineMs, ...(releaseInFlight && { releaseInFlight }) });
      },
    }),
  );
  app.use(errorHandler(log));

  const boundPort = await listen(httpServer, host, port).catch((error: unknown) => {
    listener.close();
    throw error;
  });
  return {
    name: 'gateway',
    url: `${listener.scheme}://${urlHost(host)}:${boundPort}${GRAPHQL_PATH}`,
    port: boundPort,
    stop: async () => {
      listener.close();
      await apollo.stop();
      if (ownsClientTls) clientTls.close();
    },
  };
}
