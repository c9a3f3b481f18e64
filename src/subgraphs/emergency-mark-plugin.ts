import type { ApolloServerPlugin } from '@apollo/server';
import type { SubgraphContext } from './context.js';

/**
 * Marks every response that read a patient only reachable through a
 * break-the-glass grant: a warning in the log (grant ids and subject, no
 * PHI) and `extensions.emergencyAccess` on the subgraph response, with the
 * sensitivity categories of labelled rows shown only under a grant. The audit
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
          // Labelled rows shown only because a grant names their categories: flagged by category (never which rows).
          const sensitive = new Set<string>();
          for (const categories of contextValue.access.emergencySensitive.values()) for (const category of categories) sensitive.add(category);
          const sensitiveData = [...sensitive].sort();
          contextValue.logger.warn(
            { event: 'emergency-access-read', subject: contextValue.principal.subject, grants, patients: reads.size, sensitiveData, requestId: contextValue.requestId },
            'read under break-the-glass access',
          );
          if (response.body.kind === 'single') {
            response.body.singleResult.extensions = { ...response.body.singleResult.extensions, emergencyAccess: { grants, sensitiveData } };
          }
          return Promise.resolve();
        },
      });
    },
  };
}
