import { HeaderMap, type ApolloServerPlugin, type GraphQLRequestContext, type GraphQLResponse } from '@apollo/server';
import { coercedVariables } from './operation-variables.js';
import type { GraphQLSchema } from 'graphql';
import type { Principal } from '../auth/index.js';
import { argumentDenied, categoryDeciderFor, refusedArguments, type ArgumentRefusal, type CategoryDecider } from './arguments.js';

/**
 * Enforces the argument policy (arguments.ts) before an operation runs, on
 * the gateway and on every subgraph: an operation that uses an argument
 * its caller may not use is refused whole, HTTP 403, one FORBIDDEN error
 * (reason ARGUMENT_DENIED) per argument, and nothing is resolved. The
 * refusal is the same whatever the value, so two values cannot be told
 * apart by their answers.
 */
const FORBIDDEN_STATUS = 403;

export interface ArgumentPolicyOptions<TContext> {
  /** The caller's category decisions; by default from its roles alone. A subgraph passes its request's (which may be narrower). */
  decider?: (context: TContext) => CategoryDecider;
  /** Told of every refused operation (to log it, to audit it): coordinates and paths only, never values. */
  onRefused?: (context: TContext, refusals: readonly ArgumentRefusal[]) => void;
}

export function argumentPolicyPlugin<TContext extends { principal: Principal }>(
  schema: () => GraphQLSchema,
  options: ArgumentPolicyOptions<TContext> = {},
): ApolloServerPlugin<TContext> {
  return {
    requestDidStart() {
      return Promise.resolve({
        responseForOperation(requestContext: GraphQLRequestContext<TContext>) {
          const { operation, document, contextValue } = requestContext;
          if (!operation || !document) return Promise.resolve(null);
          const { principal } = contextValue;
          const decide = options.decider?.(contextValue) ?? categoryDeciderFor(principal.roles, principal.purpose);
          // The values the operation will run with: variables as coerced, defaults of absent ones included.
          const variables = coercedVariables(schema(), operation, requestContext.request);
          if (!variables) return Promise.resolve(null);
          const refusals = refusedArguments(schema(), document, operation, variables, decide, principal.mfa);
          if (refusals.length === 0) return Promise.resolve(null);
          options.onRefused?.(contextValue, refusals);
          const response: GraphQLResponse = {
            http: { status: FORBIDDEN_STATUS, headers: new HeaderMap() },
            body: { kind: 'single', singleResult: { errors: refusals.map((refusal) => argumentDenied(refusal).toJSON()) } },
          };
          return Promise.resolve(response);
        },
      });
    },
  };
}

