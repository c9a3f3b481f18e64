import { GraphQLError } from 'graphql';

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
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Codes whose errors are meant for the client and pass through as they are. */
export const CLIENT_ERROR_CODES: ReadonlySet<string> = new Set([ErrorCode.BadUserInput, ErrorCode.NotFound, ErrorCode.Forbidden, ErrorCode.Unauthenticated]);

/** Why a field was refused; the field's value is never included. */
export type ForbiddenReason = 'ROLE_DENIED' | 'MFA_REQUIRED' | 'NOT_CLASSIFIED';

export function forbidden(reason: ForbiddenReason, coordinate: string): GraphQLError {
  const message =
    reason === 'MFA_REQUIRED'
      ? `Reading ${coordinate} needs a token issued with multi-factor authentication.`
      : `Your role may not read ${coordinate}.`;
  return new GraphQLError(message, { extensions: { code: ErrorCode.Forbidden, reason, field: coordinate } });
}

export function notFound(what: string): GraphQLError {
  return new GraphQLError(`${what} was not found.`, { extensions: { code: ErrorCode.NotFound } });
}

export function internalError(): GraphQLError {
  return new GraphQLError('Internal server error; quote the request id when reporting it.', { extensions: { code: ErrorCode.Internal } });
}

export function badUserInput(message: string, argument: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: ErrorCode.BadUserInput, argumentName: argument } });
}
