import { HeaderMap, type ApolloServerPlugin, type GraphQLRequestContext, type GraphQLResponse } from '@apollo/server';
import { execute, GraphQLError, Kind, OperationTypeNode, type DocumentNode, type GraphQLSchema, type SelectionSetNode } from 'graphql';
import type { Principal } from '../auth/index.js';
import { ErrorCode } from '../errors.js';
import { INTROSPECTION_ROLES } from './access-policy.js';
import { cachedSchemaView } from './schema-view.js';

/**
 * Introspection answers from the caller's schema view, never from the full
 * schema: only the roles in INTROSPECTION_ROLES may introspect, and each
 * sees the types and fields its roles may read. An operation that mixes
 * introspection with data is refused, so the two cannot be confused.
 */
const INTROSPECTION_FIELDS = new Set(['__schema', '__type']);

function rootFieldNames(selectionSet: SelectionSetNode, document: DocumentNode): string[] {
  return selectionSet.selections.flatMap((selection): string[] => {
    switch (selection.kind) {
      case Kind.FIELD:
        return [selection.name.value];
      case Kind.INLINE_FRAGMENT:
        return rootFieldNames(selection.selectionSet, document);
      case Kind.FRAGMENT_SPREAD: {
        const fragment = document.definitions.find(
          (definition) => definition.kind === Kind.FRAGMENT_DEFINITION && definition.name.value === selection.name.value,
        );
        return fragment && fragment.kind === Kind.FRAGMENT_DEFINITION ? rootFieldNames(fragment.selectionSet, document) : [];
      }
    }
  });
}

function refusal(message: string, code: string, status: number): GraphQLResponse {
  return {
    http: { status, headers: new HeaderMap() },
    body: { kind: 'single', singleResult: { errors: [new GraphQLError(message, { extensions: { code } }).toJSON()] } },
  };
}

export function introspectionByRolePlugin<TContext extends { principal: Principal }>(
  fullSchema: () => GraphQLSchema,
): ApolloServerPlugin<TContext> {
  return {
    requestDidStart() {
      return Promise.resolve({
        responseForOperation(requestContext: GraphQLRequestContext<TContext>) {
          const operation = requestContext.operation;
          const document = requestContext.document;
          if (!operation || !document || operation.operation !== OperationTypeNode.QUERY) return Promise.resolve(null);
          const roots = rootFieldNames(operation.selectionSet, document).filter((name) => name !== '__typename');
          const introspective = roots.filter((name) => INTROSPECTION_FIELDS.has(name));
          if (introspective.length === 0) return Promise.resolve(null);
          if (introspective.length !== roots.length) {
            return Promise.resolve(refusal('Send introspection in an operation of its own, without data fields.', ErrorCode.BadUserInput, 400));
          }
          const { principal } = requestContext.contextValue;
          const roles = principal.roles.filter((role) => INTROSPECTION_ROLES.includes(role));
          if (roles.length === 0) {
            return Promise.resolve(refusal(`Introspection is open to the ${INTROSPECTION_ROLES.join(' and ')} roles only.`, ErrorCode.Forbidden, 403));
          }
          const view = cachedSchemaView(fullSchema(), principal.roles);
          const result = execute({ schema: view, document, operationName: requestContext.operationName, variableValues: requestContext.request.variables });
          if (result instanceof Promise) throw new Error('introspection must execute synchronously');
          const response: GraphQLResponse = {
            http: { status: 200, headers: new HeaderMap() },
            body: { kind: 'single', singleResult: { data: result.data ?? null, ...(result.errors && { errors: result.errors.map((error) => error.toJSON()) }) } },
          };
          return Promise.resolve(response);
        },
      });
    },
  };
}
