import { refusals as refusalCount } from './metrics.js';
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { Principal, TokenVerifier } from './auth/index.js';
import { AuthenticationError, PURPOSE_HEADER } from './auth/index.js';
import type { Logger } from './logger.js';
import { operationHash } from './audit/index.js';
import { cacheUnavailable, isCacheUnavailable, responseTooLarge } from './errors.js';
import { RETRY_AFTER_SECONDS } from './unavailable.js';
import { strictTransportSecurity } from './transport/listener.js';
import { PURPOSE_REFUSALS, choosePurpose, measureSource, operationLimitError, type ArgumentRefusal, type LimitBreach, type OperationLimits } from './policy/index.js';

/** HTTP pieces shared by the gateway and the subgraphs. */

export const REQUEST_ID_HEADER = 'x-request-id';
const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;
/** The largest request body read: a document is at most 16 KB and 1,000 entity representations about 100 KB; a larger body is refused from its Content-Length, unread. */
export const MAX_BODY_BYTES = 256 * 1024;

export interface RequestLocals {
  principal: Principal;
  requestId: string;
  /** The client's Idempotency-Key, when it sent a well-formed one (idempotencyKey). */
  idempotencyKey?: string;
}

/** The name of the first operation of a document, when the request does not name one. */
const OPERATION_NAME = /^\s*(query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)/;

export function operationNameOf(document: string): string | null {
  return OPERATION_NAME.exec(document)?.[2] ?? null;
}

export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';
/** A key is the client's own: a UUID, a ULID, any short token of letters, digits and `-_.:`. */
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{8,128}$/;

/**
 * Reads the client's `Idempotency-Key` (a mutation sent again with the same
 * key is applied once: src/subgraphs/writes.ts); a malformed one is refused
 * before anything runs, 400 BAD_USER_INPUT with reason IDEMPOTENCY_KEY_INVALID.
 */
export function idempotencyKey(request: Request, response: Response, next: NextFunction): void {
  const key = request.header(IDEMPOTENCY_KEY_HEADER);
  if (key === undefined) return next();
  if (!IDEMPOTENCY_KEY.test(key)) {
    response.status(400).json({
      errors: [{ message: 'The Idempotency-Key header must be 8 to 128 letters, digits or -_.: characters (a UUID, say).', extensions: { code: 'BAD_USER_INPUT', reason: 'IDEMPOTENCY_KEY_INVALID' } }],
    });
    return;
  }
  response.locals['idempotencyKey'] = key;
  next();
}

/** Accepts a caller's request id when well-formed, otherwise starts a new one, and echoes it. */
export function requestId(request: Request, response: Response, next: NextFunction): void {
  const incoming = request.header(REQUEST_ID_HEADER);
  const id = incoming && REQUEST_ID.test(incoming) ? incoming : randomUUID();
  response.locals['requestId'] = id;
  response.setHeader(REQUEST_ID_HEADER, id);
  next();
}

/**
 * Refuses, with HTTP 401 and UNAUTHENTICATED, any request without a valid
 * token, before GraphQL runs; then chooses the purpose of use the request
 * reads for (the token's `purpose_of_use` claim, the X-Purpose-Of-Use
 * header, the roles' defaults: src/policy/purposes.ts) and refuses one the
 * token or its roles do not allow: 403 FORBIDDEN (400 BAD_USER_INPUT for a
 * code this API does not know), with the reason.
 */
export function requireToken(verifier: TokenVerifier, logger: Logger) {
  return (request: Request, response: Response, next: NextFunction): void => {
    verifier.verifyAuthorization(request.header('authorization')).then(
      (principal) => {
        const chosen = choosePurpose(principal.roles, principal.purposes, request.header(PURPOSE_HEADER));
        if ('refusal' in chosen) {
          // Who was refused, and why (never the header's text: a code this API does not know is the caller's own words).
          logger.info({ requestId: response.locals['requestId'], reason: chosen.refusal, subject: principal.subject, tokenId: principal.tokenId, roles: principal.roles }, 'purpose of use refused');
          const unknown = chosen.refusal === 'PURPOSE_UNKNOWN';
          response
            .status(unknown ? 400 : 403)
            .setHeader('cache-control', 'no-store')
            .json({ errors: [{ message: PURPOSE_REFUSALS[chosen.refusal], extensions: { code: unknown ? 'BAD_USER_INPUT' : 'FORBIDDEN', reason: chosen.refusal } }] });
          return;
        }
        // Only the roles that may read for the purpose act in this request (rows, decisions, arguments, cost, the audit's roles);
        // rules about the account (separation of duties, trusted documents, rate budgets) read tokenRoles.
        response.locals['principal'] = { ...principal, roles: chosen.roles, purpose: chosen.purpose };
        next();
      },
      (error: unknown) => {
        // The revocation list could not be read: a token is never taken as not revoked because Redis did not answer.
        if (isCacheUnavailable(error)) {
          logger.warn({ requestId: response.locals['requestId'], event: 'cache-unavailable', step: 'revocation-check' }, 'token refused: the revocation list did not answer');
          const refusal = cacheUnavailable();
          response.status(503).setHeader('retry-after', String(RETRY_AFTER_SECONDS)).json({ errors: [{ message: refusal.message, extensions: refusal.extensions }] });
          return;
        }
        if (!(error instanceof AuthenticationError)) {
          next(error);
          return;
        }
        logger.info({ requestId: response.locals['requestId'], reason: error.reason, detail: error.detail }, 'token refused');
        const graphQLError = error.toGraphQLError();
        response
          .status(401)
          .setHeader('www-authenticate', 'Bearer')
          .json({ errors: [{ message: graphQLError.message, extensions: { code: 'UNAUTHENTICATED', reason: error.reason } }] });
      },
    );
  };
}

/** The header a gateway sends each subgraph with the milliseconds its client request has left; a subgraph only ever shortens its own deadline by it. */
export const REQUEST_TIMEOUT_HEADER = 'x-request-timeout-ms';

/** When this request must be done by (epoch ms): the server's own deadline, shortened by what the caller says it has left. */
export function requestDeadline(request: Request, deadlineMs: number): number {
  const remaining = Number(request.header(REQUEST_TIMEOUT_HEADER));
  const budget = Number.isInteger(remaining) && remaining > 0 ? Math.min(remaining, deadlineMs) : deadlineMs;
  return Date.now() + budget;
}

/**
 * The largest response body sent: a larger one is replaced, before any of
 * it leaves, by 400 RESPONSE_TOO_LARGE (the limit and the size, never the
 * data). The operation limits keep responses far below it; this is the
 * backstop for what they cannot see (long stored texts, say).
 */
export function responseSizeLimit(maxBytes: number, logger: Logger) {
  return (_request: Request, response: Response, next: NextFunction): void => {
    const end = response.end.bind(response) as (chunk?: unknown, ...rest: unknown[]) => Response;
    const limited = (chunk?: unknown, ...rest: unknown[]): Response => {
      const bytes = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk instanceof Uint8Array ? chunk.byteLength : 0;
      if (bytes <= maxBytes || response.headersSent) return end(chunk, ...rest);
      const requestId = response.locals['requestId'] as string | undefined;
      logger.warn({ event: 'response-too-large', requestId, bytes, maxBytes }, 'response refused: larger than the largest one sent');
      const refusal = responseTooLarge(maxBytes, bytes);
      const body = JSON.stringify({ errors: [{ message: refusal.message, extensions: { ...refusal.extensions, requestId } }] });
      response.statusCode = 400;
      response.removeHeader('etag');
      response.setHeader('content-type', 'application/json; charset=utf-8');
      response.setHeader('content-length', Buffer.byteLength(body));
      return end(body, 'utf8');
    };
    response.end = limited as Response['end'];
    next();
  };
}

export function locals(response: Response): RequestLocals {
  return response.locals as unknown as RequestLocals;
}

/** How long /readyz waits for its checks: a dependency slower than this is not ready (and a pool run dry does not hang the probe). */
export const READINESS_TIMEOUT_MS = 1_000;

/** /healthz says the process is alive; /readyz says its dependencies answer, within READINESS_TIMEOUT_MS. */
export function healthRoutes(app: Express, ready: () => Promise<boolean>): void {
  app.get('/healthz', (_request, response) => {
    response.json({ status: 'ok' });
  });
  app.get('/readyz', (_request, response) => {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), READINESS_TIMEOUT_MS);
    });
    // Awaited, never tested for truth as a promise; a failing check is "not ready", not an error.
    void Promise.race([ready().catch(() => false), deadline]).then((ok) => {
      clearTimeout(timer);
      response.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'unavailable' });
    });
  });
}

function unreadableBody(status: number) {
  return { message: `The request could not be read (HTTP ${status}): send a JSON body of at most ${MAX_BODY_BYTES / 1024} KB.`, extensions: { code: 'BAD_REQUEST' } };
}

function bodyTooLarge(response: Response): void {
  response.status(413).json({
    errors: [unreadableBody(413)],
  });
}

/** A body announced larger than MAX_BODY_BYTES is refused first, unread and before the token is checked: it costs nothing to send one. */
export function refuseLargeBodies(request: Request, response: Response, next: NextFunction): void {
  const length = Number(request.header('content-length'));
  if (Number.isFinite(length) && length > MAX_BODY_BYTES) {
    response.setHeader('connection', 'close');
    bodyTooLarge(response);
    return;
  }
  next();
}

/** Client mistakes (malformed JSON, oversized body) get their 4xx; anything else a JSON 500 without internals. */
export function errorHandler(logger: Logger) {
  return (error: unknown, _request: Request, response: Response, _next: NextFunction): void => {
    if (response.headersSent) return;
    const status = (error as { status?: unknown } | null)?.status;
    // body-parser's type: the body was read, and it is not JSON (never echoed: it may hold anything).
    if ((error as { type?: unknown } | null)?.type === 'entity.parse.failed') {
      response.status(400).json({ errors: [{ message: 'The request body is not valid JSON: send {"query": "...", "variables": {...}} with content-type application/json.', extensions: { code: 'BAD_REQUEST', reason: 'INVALID_JSON' } }] });
      return;
    }
    if (typeof status === 'number' && status >= 400 && status < 500) {
      response.status(status).json({
        errors: [unreadableBody(status)],
      });
      return;
    }
    // Name and code only: a driver's message can quote the values it choked on.
    const code = (error as { code?: unknown } | null)?.code;
    logger.error({ err: { name: error instanceof Error ? error.name : typeof error, code: typeof code === 'string' ? code : undefined } }, 'unhandled HTTP error');
    response.status(500).json({ errors: [{ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
  };
}

/**
 * An Express app with the settings every server of this API shares: whose
 * X-Forwarded-* headers are believed (TRUST_PROXY: loopback by default; the
 * client address the audit records, and whether a request came over
 * HTTPS), and Strict-Transport-Security on every response that did.
 */
export function createApp(trustProxy: readonly string[] = ['loopback']): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', [...trustProxy]);
  app.use(strictTransportSecurity);
  return app;
}

/**
 * How long an idle keep-alive connection stays open. Node closes it after
 * 5 s by default, while the gateway's HTTP agent keeps idle connections
 * longer and reuses them: a request sent on one just as the server closed
 * it failed with ECONNRESET (seen under load by the benchmarks). Longer
 * than the usual load balancer idle timeout (60 s), so a proxy in front
 * closes first, as it should.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 75_000;

/** A host as it goes into a URL: an IPv6 address in brackets. */
export function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

export async function listen(server: Server, host: string, port: number): Promise<number> {
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  // Must exceed keepAliveTimeout, or a request arriving late on a kept connection is cut off.
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** One warning per operation refused for its arguments: who, which arguments, why; never a value. */
export function logArgumentRefusals(logger: Logger, context: { principal: Principal; requestId: string }, refusals: readonly ArgumentRefusal[]): void {
  refusalCount.inc({ kind: 'argument', reason: 'ARGUMENT_DENIED' }, refusals.length);
  logger.warn(
    {
      event: 'argument-denied',
      subject: context.principal.subject,
      roles: context.principal.roles,
      requestId: context.requestId,
      arguments: refusals.map((refusal) => ({ argument: refusal.coordinate, path: refusal.path, reason: refusal.reason })),
    },
    'an operation was refused for an argument its caller may not use',
  );
}

/** One warning per operation refused for a limit: who, which limit, and the operation's hash (never the operation). */
export function logLimitBreach(logger: Logger, context: { principal: Principal; requestId: string }, breach: LimitBreach, operationHash?: string): void {
  refusalCount.inc({ kind: 'operation_limit', reason: breach.limit });
  logger.warn(
    { event: 'operation-limit', subject: context.principal.subject, requestId: context.requestId, ...breach, ...(operationHash && { operationHash }) },
    'an operation was refused for a limit before it ran',
  );
}

/**
 * The limits on the document itself, before GraphQL parses it: its size and
 * its tokens (validation's cost grows with the square of repeated fields,
 * so a long document must never reach it). 400, OPERATION_LIMIT.
 */
export function operationSourceLimits(limits: OperationLimits, logger: Logger) {
  return (request: Request, response: Response, next: NextFunction): void => {
    const query = (request.body as { query?: unknown } | undefined)?.query;
    const breach = typeof query === 'string' ? measureSource(query, limits) : null;
    if (!breach) {
      next();
      return;
    }
    logLimitBreach(logger, locals(response), breach, operationHash(query as string));
    const error = operationLimitError(breach);
    response.status(400).json({ errors: [{ message: error.message, extensions: error.extensions }] });
  };
}
