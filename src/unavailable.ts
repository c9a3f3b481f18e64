import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import { cacheUnavailable, databaseUnavailable, ErrorCode } from './errors.js';

/** How long a client should wait before retrying a request refused because a dependency did not answer. */
export const RETRY_AFTER_SECONDS = 5;

/**
 * A response in which the database did not answer (a statement, a lock
 * wait or a pooled connection past its deadline, or a lost connection), or
 * the cache did not answer where it was needed (a revocation, an emergency
 * grant), leaves without any data: HTTP 503, `DATABASE_UNAVAILABLE` or
 * `CACHE_UNAVAILABLE`, `Retry-After`.
 * A half-answered page is not an answer a caller can trust; the deadline
 * (src/db/orm.ts) keeps the wait short. Used by the gateway and every
 * subgraph.
 */
export function withholdWhenDatabaseUnavailable<TContext extends BaseContext & { requestId: string }>(): ApolloServerPlugin<TContext> {
  return {
    requestDidStart() {
      return Promise.resolve({
        willSendResponse({ response, contextValue }) {
          if (response.body.kind !== 'single') return Promise.resolve();
          const errors = response.body.singleResult.errors ?? [];
          const database = errors.some((error) => error.extensions?.['code'] === ErrorCode.DatabaseUnavailable);
          const cache = errors.some((error) => error.extensions?.['code'] === ErrorCode.CacheUnavailable);
          if (!database && !cache) return Promise.resolve();
          // The audit trail's own refusal, when both failed, is the stronger statement: it is left as it is.
          if (errors.some((error) => error.extensions?.['code'] === ErrorCode.AuditUnavailable)) return Promise.resolve();
          response.http.status = 503;
          response.http.headers.set('retry-after', String(RETRY_AFTER_SECONDS));
          const withheld = (database ? databaseUnavailable() : cacheUnavailable()).toJSON();
          response.body.singleResult = { data: null, errors: [{ ...withheld, extensions: { ...withheld.extensions, requestId: contextValue.requestId } }] };
          return Promise.resolve();
        },
      });
    },
  };
}
