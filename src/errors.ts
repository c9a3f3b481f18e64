import { GraphQLError } from 'graphql';
import { ApolloServerErrorCode, ApolloServerValidationErrorCode } from '@apollo/server/errors';
import { DriverException } from '@mikro-orm/core';

/**
 * Error codes a client can see, in one place. Messages say what was wrong
 * and what to do; they never carry PHI values.
 */
export const ErrorCode = {
  BadUserInput: 'BAD_USER_INPUT',
  NotFound: 'NOT_FOUND',
  Unauthenticated: 'UNAUTHENTICATED',
  Forbidden: 'FORBIDDEN',
  Internal: 'INTERNAL_SERVER_ERROR',
  /** A stored value failed authentication (tampered or moved), or its key is retired or unknown. */
  DecryptionFailed: 'DECRYPTION_FAILED',
  /** An operation past one of its limits (size, tokens, depth, aliases, directives, root fields, mutations, entities, cost), refused before it ran. */
  OperationLimit: 'OPERATION_LIMIT',
  /** The audit trail could not be written, so the response carries no data (fail closed). */
  AuditUnavailable: 'AUDIT_UNAVAILABLE',
  /** The database did not answer in time (a statement, a lock wait or a pooled connection past its deadline) or went away: nothing is returned; retry. */
  DatabaseUnavailable: 'DATABASE_UNAVAILABLE',
  /** The cache (Redis) did not answer, and what was asked needs it (a revocation, an emergency grant): nothing is returned; retry. */
  CacheUnavailable: 'CACHE_UNAVAILABLE',
  /** A principal past one of its budgets over time (requests per minute, in flight, patients per hour); retry after Retry-After. */
  RateLimited: 'RATE_LIMITED',
  /** A subgraph did not answer the gateway in time: nothing is returned (504); retry. */
  SubgraphTimeout: 'SUBGRAPH_TIMEOUT',
  /** A subgraph could not be reached (its process is down or restarting): nothing is returned (503); retry. */
  SubgraphUnavailable: 'SUBGRAPH_UNAVAILABLE',
  /** The request ran past its overall deadline: nothing is returned and nothing written (504); retry. */
  RequestTimeout: 'REQUEST_TIMEOUT',
  /** The response would have been larger than the largest one sent: ask for smaller pages or fewer fields. */
  ResponseTooLarge: 'RESPONSE_TOO_LARGE',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Codes whose errors are meant for the client and pass through with their
 * message: ours, and Apollo Server's for a request it could not run as sent
 * (parse, validation, operation name, persisted queries, malformed HTTP
 * request). The one list: the field guard, shield and the error formatter
 * (graphql-errors.ts) all read it; every other error is answered as a bare
 * INTERNAL_SERVER_ERROR.
 */
export const CLIENT_ERROR_CODES: ReadonlySet<string> = new Set<string>([
  ErrorCode.BadUserInput,
  ErrorCode.NotFound,
  ErrorCode.Forbidden,
  ErrorCode.Unauthenticated,
  ErrorCode.DecryptionFailed,
  ErrorCode.AuditUnavailable,
  ErrorCode.DatabaseUnavailable,
  ErrorCode.CacheUnavailable,
  ErrorCode.RateLimited,
  ErrorCode.SubgraphTimeout,
  ErrorCode.SubgraphUnavailable,
  ErrorCode.RequestTimeout,
  ErrorCode.ResponseTooLarge,
  ErrorCode.OperationLimit,
  ApolloServerErrorCode.GRAPHQL_PARSE_FAILED,
  ApolloServerErrorCode.GRAPHQL_VALIDATION_FAILED,
  ApolloServerErrorCode.BAD_REQUEST,
  ApolloServerErrorCode.OPERATION_RESOLUTION_FAILURE,
  ApolloServerErrorCode.PERSISTED_QUERY_NOT_FOUND,
  ApolloServerErrorCode.PERSISTED_QUERY_NOT_SUPPORTED,
  ApolloServerValidationErrorCode.INTROSPECTION_DISABLED,
  ApolloServerValidationErrorCode.MAX_RECURSIVE_SELECTIONS_EXCEEDED,
]);

/** The whole message of an unexpected failure: nothing about what failed, only how to report it. */
export const INTERNAL_ERROR_MESSAGE = 'Internal server error; quote the request id when reporting it.';

/** Why a field was refused; the field's value is never included. */
export type ForbiddenReason = 'ROLE_DENIED' | 'MFA_REQUIRED' | 'NOT_CLASSIFIED' | 'SDL_NOT_SERVED';

const FORBIDDEN_MESSAGES: Record<ForbiddenReason, (coordinate: string) => string> = {
  ROLE_DENIED: (coordinate) => `Your role may not read ${coordinate}.`,
  NOT_CLASSIFIED: (coordinate) => `Your role may not read ${coordinate}.`,
  MFA_REQUIRED: (coordinate) => `Reading ${coordinate} needs a token issued with multi-factor authentication.`,
  SDL_NOT_SERVED: () => "A subgraph's SDL is not served over HTTP, to any role: composition uses the committed schema files (npm run compose).",
};

export function forbidden(reason: ForbiddenReason, coordinate: string): GraphQLError {
  const message = FORBIDDEN_MESSAGES[reason](coordinate);
  return new GraphQLError(message, { extensions: { code: ErrorCode.Forbidden, reason, field: coordinate } });
}

export function notFound(what: string): GraphQLError {
  return new GraphQLError(`${what} was not found.`, { extensions: { code: ErrorCode.NotFound } });
}

export function internalError(): GraphQLError {
  return new GraphQLError(INTERNAL_ERROR_MESSAGE, { extensions: { code: ErrorCode.Internal } });
}

export function badUserInput(message: string, argument: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: ErrorCode.BadUserInput, argumentName: argument } });
}

/** A field whose stored value could not be decrypted: a code and the reason, never bytes or a value. */
export function decryptionFailed(reason: string, coordinate: string): GraphQLError {
  return new GraphQLError(`${coordinate} could not be decrypted (${reason}); the rest of the response is unaffected.`, {
    extensions: { code: ErrorCode.DecryptionFailed, reason, field: coordinate },
  });
}

/**
 * What a command-line tool may print about a failure. A database driver's
 * message can quote the statement and the values it choked on, so for
 * those only the kind of failure and its SQLSTATE are shown.
 */
export function describeError(error: unknown): string {
  if (error instanceof DriverException) {
    return `database error ${error.name}${error.code ? ` (SQLSTATE ${error.code})` : ''}; details are withheld because they can quote stored values`;
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * SQLSTATEs of a database that did not answer in time or went away:
 * query_canceled (statement_timeout), lock_not_available (lock_timeout),
 * admin_shutdown and crash_shutdown, cannot_connect_now, and the
 * connection_exception class.
 */
const DATABASE_UNAVAILABLE_STATES = new Set(['57014', '55P03', '57P01', '57P02', '57P03', '08000', '08003', '08006', '08001', '08004']);
/** node-postgres's own words for a connection that was lost or never came (no SQLSTATE); a failed fetch to a subgraph is not one of them. */
const LOST_CONNECTION = /^Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/;

/** True for a failure that means the database is unavailable now (slow, locked or gone), not a bug. */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 5; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && DATABASE_UNAVAILABLE_STATES.has(code)) return true;
    if (LOST_CONNECTION.test(current.message)) return true;
    current = (current as { cause?: unknown; originalError?: unknown }).originalError ?? (current as { cause?: unknown }).cause;
  }
  return false;
}

export function databaseUnavailable(): GraphQLError {
  return new GraphQLError('The database did not answer in time, so nothing is returned. Retry shortly; quote the request id.', {
    extensions: { code: ErrorCode.DatabaseUnavailable },
  });
}

/** True for the cache's own "did not answer" (src/cache: CacheUnavailableError), wherever it was wrapped. */
export function isCacheUnavailable(error: unknown): boolean {
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 5; depth += 1) {
    if (current.name === 'CacheUnavailableError') return true;
    current = (current as { originalError?: unknown }).originalError ?? (current as { cause?: unknown }).cause;
  }
  return false;
}

export function cacheUnavailable(): GraphQLError {
  return new GraphQLError('The cache did not answer, so nothing is returned. Retry shortly; quote the request id.', {
    extensions: { code: ErrorCode.CacheUnavailable },
  });
}

/** What a response withheld for want of an audit record says (a subgraph's, and the gateway's for the whole request). */
export const AUDIT_UNAVAILABLE_MESSAGE = 'The audit trail is unavailable, so no data is returned. Retry later; quote the request id.';

export function auditUnavailable(): GraphQLError {
  return new GraphQLError(AUDIT_UNAVAILABLE_MESSAGE, { extensions: { code: ErrorCode.AuditUnavailable } });
}

export function subgraphTimeout(): GraphQLError {
  return new GraphQLError('A part of the API did not answer in time, so nothing is returned. Retry shortly; quote the request id.', {
    extensions: { code: ErrorCode.SubgraphTimeout },
  });
}

export function subgraphUnavailable(): GraphQLError {
  return new GraphQLError('A part of the API is not reachable right now (it is being restarted), so nothing is returned. Retry shortly; quote the request id.', {
    extensions: { code: ErrorCode.SubgraphUnavailable },
  });
}

export function requestTimeout(deadlineMs: number): GraphQLError {
  return new GraphQLError(`The request ran past its deadline of ${deadlineMs} ms, so nothing is returned and nothing was written. Retry, or ask for less; quote the request id.`, {
    extensions: { code: ErrorCode.RequestTimeout, limit: 'deadlineMs', max: deadlineMs },
  });
}

export function responseTooLarge(maxBytes: number, bytes: number): GraphQLError {
  return new GraphQLError(`The response would be ${bytes} bytes, more than the ${maxBytes} bytes one response may carry: ask for smaller pages or fewer fields.`, {
    extensions: { code: ErrorCode.ResponseTooLarge, limit: 'responseBytes', max: maxBytes, measured: bytes },
  });
}
