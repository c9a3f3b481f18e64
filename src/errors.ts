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
  /** The audit trail could not be written, so the response carries no data (fail closed). */
  AuditUnavailable: 'AUDIT_UNAVAILABLE',
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
