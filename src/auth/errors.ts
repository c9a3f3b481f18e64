import { GraphQLError } from 'graphql';

/** Why a token was refused. Codes only; the token itself is never echoed. */
export type AuthFailureReason =
  | 'MISSING_TOKEN'
  | 'MALFORMED_HEADER'
  | 'MALFORMED_TOKEN'
  | 'INVALID_TOKEN'
  | 'EXPIRED_TOKEN'
  | 'REVOKED_TOKEN'
  | 'INVALID_CLAIMS';

const MESSAGES: Record<AuthFailureReason, string> = {
  MISSING_TOKEN: 'Authentication required: send Authorization: Bearer <token>.',
  MALFORMED_HEADER: 'The Authorization header must be "Bearer <token>".',
  MALFORMED_TOKEN: 'The bearer token is not a valid JWT (three base64url parts separated by dots: header, claims, signature).',
  INVALID_TOKEN: 'The bearer token could not be verified (signature, algorithm, issuer or audience).',
  EXPIRED_TOKEN: 'The bearer token has expired; obtain a new one.',
  REVOKED_TOKEN: 'The bearer token has been revoked; obtain a new one.',
  INVALID_CLAIMS: 'The bearer token is missing required claims or names an unknown role.',
};

export function isAuthFailureReason(value: string): value is AuthFailureReason {
  return Object.hasOwn(MESSAGES, value);
}

export class AuthenticationError extends Error {
  constructor(
    readonly reason: AuthFailureReason,
    readonly detail?: string,
  ) {
    super(MESSAGES[reason]);
    this.name = 'AuthenticationError';
  }

  /** The GraphQL error a client receives with HTTP 401. */
  toGraphQLError(): GraphQLError {
    return new GraphQLError(this.message, {
      extensions: { code: 'UNAUTHENTICATED', reason: this.reason, http: { status: 401 } },
    });
  }
}
