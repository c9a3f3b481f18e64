import type { ApolloServerPlugin } from '@apollo/server';
import type { SubgraphContext } from './context.js';

/**
 * Marks every response that read a patient only reachable through a
 * break-the-glass grant: a warning in the log (grant ids and subject, no
 * PHI) and `extensions.emergencyAccess` on the subgraph response. The audit
 * trail records the same mark with each field read.
 */
export function emergencyAccessMarkPlugin(): ApolloServerPlugin<SubgraphContext> {
  return {
    requestDidStart() {
      return Promise.resolve({
        willSendResponse({ contextValue, response }) {
          const reads = contextValue.access.emergencyReads;
          if (reads.size === 0) return Promise.resolve();
          const grants = [...new Set(reads.values())];
          contextValue.logger.warn(
            { event: 'emergency-access-read', subject: contextValue.principal.subject, grants, patients: reads.size, requestId: contextValue.requestId },
            'read under break-the-glass access',
          );
          if (response.body.kind === 'single') {
            response.body.singleResult.extensions = { ...response.body.singleResult.extensions, emergencyAccess: { grants } };
          }
          return Promise.resolve();
        },
      });
    },
  };
}
