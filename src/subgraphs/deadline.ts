import { OperationTypeNode } from 'graphql';
import type { ApolloServerPlugin } from '@apollo/server';
import { requestTimeout } from '../errors.js';
import { RETRY_AFTER_SECONDS } from '../unavailable.js';
import type { SubgraphContext } from './context.js';

/**
 * A subgraph's request deadline (REQUEST_DEADLINE_MS, shortened by what the
 * gateway says its client request has left). Each statement has its own
 * deadline in PostgreSQL (statement and lock timeouts); this one bounds the
 * request as a whole:
 * - a write does not start past it, nor run past it (writes.ts): a mutation
 *   the gateway has given up on writes nothing;
 * - a read does not answer past it: the response leaves without data, 504
 *   REQUEST_TIMEOUT, and the refusal is in the audit trail beside the reads
 *   it made (a read's record stays: the rows were read, only not sent).
 */

export function recordDeadlineRefusal(context: SubgraphContext, coordinate: string, action: 'read' | 'update'): void {
  context.logger.warn({ event: 'request-timeout', requestId: context.requestId, coordinate, deadlineMs: context.deadlineMs }, 'request past its deadline: refused');
  context.audit.group({ patientId: null, entityType: action === 'read' ? 'Operation' : 'Mutation', entityId: null, action }).add(coordinate, 'denied', 'REQUEST_TIMEOUT');
}

/** A query answered past the deadline leaves without data (504); a mutation that ran has written, and says so. Listed before the audit plugin. */
export function readDeadlinePlugin(): ApolloServerPlugin<SubgraphContext> {
  return {
    requestDidStart() {
      return Promise.resolve({
        willSendResponse({ contextValue, response, operation }) {
          if (response.body.kind !== 'single' || operation?.operation !== OperationTypeNode.QUERY) return Promise.resolve();
          if (Date.now() < contextValue.deadline || response.body.singleResult.data == null) return Promise.resolve();
          recordDeadlineRefusal(contextValue, 'Operation.deadline', 'read');
          const refusal = requestTimeout(contextValue.deadlineMs);
          response.http.status = 504;
          response.http.headers.set('retry-after', String(RETRY_AFTER_SECONDS));
          response.body.singleResult = { data: null, errors: [{ message: refusal.message, extensions: { ...refusal.extensions, requestId: contextValue.requestId } }] };
          return Promise.resolve();
        },
      });
    },
  };
}
