import type { ApolloServerPlugin } from '@apollo/server';
import { AuthenticationError } from '../auth/index.js';
import { cacheUnavailable, isCacheUnavailable } from '../errors.js';
import { RETRY_AFTER_SECONDS } from '../unavailable.js';
import type { SubgraphContext } from './context.js';

/**
 * A token revoked while its request ran gets no data: the revocation list
 * is asked again as the response is about to leave (the check at the door
 * may have been answered just before the revocation was written). Past
 * that point the response is 401, as a revoked token's would have been;
 * if the list does not answer, 503 CACHE_UNAVAILABLE, as at the door.
 */
export function revocationRecheckPlugin(isRevoked: (tokenId: string) => Promise<boolean>): ApolloServerPlugin<SubgraphContext> {
  return {
    requestDidStart() {
      return Promise.resolve({
        async willSendResponse({ contextValue, response }) {
          if (response.body.kind !== 'single' || response.body.singleResult.data == null) return;
          let revoked: boolean;
          try {
            revoked = await isRevoked(contextValue.principal.tokenId);
          } catch (error) {
            if (!isCacheUnavailable(error)) throw error;
            const refusal = cacheUnavailable();
            response.http.status = 503;
            response.http.headers.set('retry-after', String(RETRY_AFTER_SECONDS));
            response.body.singleResult = { data: null, errors: [{ message: refusal.message, extensions: { ...refusal.extensions, requestId: contextValue.requestId } }] };
            return;
          }
          if (!revoked) return;
          contextValue.logger.warn({ event: 'token-revoked-in-flight', requestId: contextValue.requestId, subject: contextValue.principal.subject }, 'token revoked while its request ran: response withheld');
          const refusal = new AuthenticationError('REVOKED_TOKEN').toGraphQLError();
          response.http.status = 401;
          response.http.headers.set('www-authenticate', 'Bearer');
          response.body.singleResult = { data: null, errors: [{ message: refusal.message, extensions: { code: 'UNAUTHENTICATED', reason: 'REVOKED_TOKEN', requestId: contextValue.requestId } }] };
        },
      });
    },
  };
}
