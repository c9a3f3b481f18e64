import { getVariableValues, type GraphQLSchema, type OperationDefinitionNode } from 'graphql';

/**
 * The variables an operation will run with (coerced, defaults of absent
 * ones included), worked out once per request and shared by every check
 * that runs before it (limits, arguments, input text): null when they do
 * not coerce (execution then refuses them with BAD_USER_INPUT).
 */
const coercedByRequest = new WeakMap<object, Record<string, unknown> | null>();

export function coercedVariables(
  schema: GraphQLSchema,
  operation: OperationDefinitionNode,
  request: { variables?: Record<string, unknown> | undefined },
): Record<string, unknown> | null {
  if (coercedByRequest.has(request)) return coercedByRequest.get(request) ?? null;
  const result = getVariableValues(schema, operation.variableDefinitions ?? [], request.variables ?? {});
  const coerced = result.errors ? null : result.coerced;
  coercedByRequest.set(request, coerced);
  return coerced;
}
