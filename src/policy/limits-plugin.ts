import { HeaderMap, type ApolloServerPlugin, type GraphQLRequestContext, type GraphQLResponse } from '@apollo/server';
import { coercedVariables } from './operation-variables.js';
import type { GraphQLSchema } from 'graphql';
import type { Principal } from '../auth/index.js';
import { costBudget, measureOperation, operationLimitError, type LimitBreach, type OperationLimits } from './limits.js';

/**
 * Enforces the operation limits (limits.ts) after validation and before
 * anything runs (the gateway plans nothing, a subgraph resolves nothing):
 * HTTP 400, OPERATION_LIMIT with the limit, its value and what was
 * measured. The cost budget is the caller's roles' (the policy's maxCost).
 */
const TOO_LARGE_STATUS = 400;

export interface OperationLimitsOptions<TContext> {
  /** Told of every refused operation (to log it, to audit it). */
  onRefused?: (context: TContext, breach: LimitBreach) => void;
}

export function operationLimitsPlugin<TContext extends { principal: Principal }>(
  schema: () => GraphQLSchema,
  limits: OperationLimits,
  options: OperationLimitsOptions<TContext> = {},
): ApolloServerPlugin<TContext> {
  return {
    requestDidStart() {
      return Promise.resolve({
        responseForOperation(requestContext: GraphQLRequestContext<TContext>) {
          const { operation, document, contextValue } = requestContext;
          if (!operation || !document) return Promise.resolve(null);
          const variables = coercedVariables(schema(), operation, requestContext.request);
          if (!variables) return Promise.resolve(null);
          const breach = measureOperation(schema(), document, operation, variables, limits, limits.maxCost ?? costBudget(contextValue.principal.roles));
          if (!breach) return Promise.resolve(null);
          options.onRefused?.(contextValue, breach);
          const response: GraphQLResponse = {
            http: { status: TOO_LARGE_STATUS, headers: new HeaderMap() },
            body: { kind: 'single', singleResult: { errors: [operationLimitError(breach).toJSON()] } },
          };
          return Promise.resolve(response);
        },
      });
    },
  };
}
