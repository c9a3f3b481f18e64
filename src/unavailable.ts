import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import type { GraphQLFormattedError } from 'graphql';
import { AUDIT_UNAVAILABLE_MESSAGE, cacheUnavailable, databaseUnavailable, ErrorCode, subgraphTimeout, subgraphUnavailable } from './errors.js';

/** How long a client should wait before retrying a request refused because a dependency did not answer. */
export const RETRY_AFTER_SECONDS = 5;
/** Retry-After of a budget refusal that came from a subgraph (its own header does not cross the gateway). */
const SUBGRAPH_RATE_RETRY_SECONDS = 60;

/**
 * When an error in a response means the whole response may not stand, and
 * what is sent instead. A half-answered page is not an answer a caller can
 * trust: a dependency that did not answer, a subgraph past its deadline, a
 * refusal a subgraph made for the whole operation.
 */
export interface WholeResponseRule {
  matches(error: GraphQLFormattedError): boolean;
  status: number;
  retryAfterSeconds?: number;
  /** The one error sent instead of the response; without it, the matching errors alone are sent (no data). */
  replaceWith?: () => GraphQLFormattedError;
}

const withCode = (code: string) => (error: GraphQLFormattedError) => error.extensions?.['code'] === code;

/** In order: the first rule any error of the response matches decides (the audit trail's refusal is the strongest statement). */
export const AUDIT_UNAVAILABLE_RULE: WholeResponseRule = {
  matches: withCode(ErrorCode.AuditUnavailable),
  status: 503,
  retryAfterSeconds: RETRY_AFTER_SECONDS,
  replaceWith: () => ({ message: AUDIT_UNAVAILABLE_MESSAGE, extensions: { code: ErrorCode.AuditUnavailable } }),
};
export const DATABASE_UNAVAILABLE_RULE: WholeResponseRule = { matches: withCode(ErrorCode.DatabaseUnavailable), status: 503, retryAfterSeconds: RETRY_AFTER_SECONDS, replaceWith: () => databaseUnavailable().toJSON() };
export const CACHE_UNAVAILABLE_RULE: WholeResponseRule = { matches: withCode(ErrorCode.CacheUnavailable), status: 503, retryAfterSeconds: RETRY_AFTER_SECONDS, replaceWith: () => cacheUnavailable().toJSON() };
export const SUBGRAPH_TIMEOUT_RULE: WholeResponseRule = { matches: withCode(ErrorCode.SubgraphTimeout), status: 504, retryAfterSeconds: RETRY_AFTER_SECONDS, replaceWith: () => subgraphTimeout().toJSON() };
export const SUBGRAPH_UNAVAILABLE_RULE: WholeResponseRule = { matches: withCode(ErrorCode.SubgraphUnavailable), status: 503, retryAfterSeconds: RETRY_AFTER_SECONDS, replaceWith: () => subgraphUnavailable().toJSON() };
/** The request's own deadline: the error says which (limit deadlineMs, its max), so it is sent as it is. */
export const REQUEST_TIMEOUT_RULE: WholeResponseRule = { matches: withCode(ErrorCode.RequestTimeout), status: 504, retryAfterSeconds: RETRY_AFTER_SECONDS };
export const RESPONSE_TOO_LARGE_RULE: WholeResponseRule = { matches: withCode(ErrorCode.ResponseTooLarge), status: 400 };
export const RATE_LIMITED_RULE: WholeResponseRule = { matches: withCode(ErrorCode.RateLimited), status: 429, retryAfterSeconds: SUBGRAPH_RATE_RETRY_SECONDS };
/** An Idempotency-Key sent again with another request: nothing ran, the request as a whole is refused. */
export const IDEMPOTENCY_KEY_REUSED_RULE: WholeResponseRule = { matches: (error) => error.extensions?.['reason'] === 'IDEMPOTENCY_KEY_REUSED', status: 400 };
/** A subgraph refused the caller's token (revoked while the request ran): the whole answer is 401. */
export const UNAUTHENTICATED_RULE: WholeResponseRule = { matches: withCode(ErrorCode.Unauthenticated), status: 401 };
export const ARGUMENT_DENIED_RULE: WholeResponseRule = { matches: (error) => error.extensions?.['reason'] === 'ARGUMENT_DENIED', status: 403 };

/**
 * Applies the rules to every response: the response leaves with the first
 * matching rule's status and without any data. Used by the gateway (every
 * rule: what a subgraph said reaches the client as a whole refusal) and by
 * every subgraph (a dependency that did not answer).
 */
export function withholdWholeResponses<TContext extends BaseContext & { requestId: string }>(
  rules: readonly WholeResponseRule[],
  onWithheld?: (context: TContext, rule: WholeResponseRule, errors: readonly GraphQLFormattedError[]) => void,
): ApolloServerPlugin<TContext> {
  return {
    requestDidStart() {
      return Promise.resolve({
        willSendResponse({ response, contextValue }) {
          if (response.body.kind !== 'single') return Promise.resolve();
          const errors = response.body.singleResult.errors ?? [];
          const rule = rules.find((candidate) => errors.some((error) => candidate.matches(error)));
          // A response that already has the rule's status was refused whole where it was made.
          if (!rule || response.http.status === rule.status) return Promise.resolve();
          const matching = errors.filter((error) => rule.matches(error));
          onWithheld?.(contextValue, rule, matching);
          response.http.status = rule.status;
          if (rule.retryAfterSeconds) response.http.headers.set('retry-after', String(rule.retryAfterSeconds));
          if (rule.replaceWith) {
            const replacement = rule.replaceWith();
            response.body.singleResult = { data: null, errors: [{ ...replacement, extensions: { ...replacement.extensions, requestId: contextValue.requestId } }] };
          } else {
            response.body.singleResult = { errors: matching.map(({ path: _path, ...error }) => error) };
          }
          return Promise.resolve();
        },
      });
    },
  };
}
