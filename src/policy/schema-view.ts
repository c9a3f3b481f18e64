import { getNamedType, isInputObjectType, isNonNullType, type GraphQLFieldConfigArgumentMap, type GraphQLSchema } from 'graphql';
import { MapperKind, mapSchema, pruneSchema } from '@graphql-tools/utils';
import type { Role } from '../auth/index.js';
import { argumentUse, categoryDeciderFor, decideArgumentUse, inputFieldUse, type CategoryDecider } from './arguments.js';
import { ANY_PURPOSE, decisionTable } from './decisions.js';

/**
 * The schema a set of roles may see (like a role-based schema in Hasura):
 * every field the roles are denied is gone, every argument and input field
 * they may not use is gone (and a field whose required argument they may
 * not use), and so is every type that nothing left leads to. Federation
 * plumbing of a subgraph stays.
 */
const FEDERATION_TYPES = new Set(['_Service', '_Entity', '_Any']);
const FEDERATION_QUERY_FIELDS = new Set(['_entities', '_service']);

export function schemaViewFor(schema: GraphQLSchema, roles: readonly Role[]): GraphQLSchema {
  const table = decisionTable(roles, ANY_PURPOSE);
  const decide = categoryDeciderFor(roles, ANY_PURPOSE);
  const usableInputs = usableInputFields(schema, decide);
  const filtered = mapSchema(schema, {
    [MapperKind.OBJECT_FIELD]: (fieldConfig, fieldName, typeName) => {
      if (FEDERATION_TYPES.has(typeName) || (typeName === 'Query' && FEDERATION_QUERY_FIELDS.has(fieldName))) return fieldConfig;
      if (table.get(typeName, fieldName).decision.kind === 'deny') return null;
      const args: GraphQLFieldConfigArgumentMap = {};
      for (const [name, argument] of Object.entries(fieldConfig.args ?? {})) {
        const named = getNamedType(argument.type);
        const usable =
          decideArgumentUse(decide, argumentUse(`${typeName}.${fieldName}`, name, schema), true).allowed &&
          (!isInputObjectType(named) || (usableInputs.get(named.name)?.size ?? 0) > 0);
        if (usable) args[name] = argument;
        // A field whose required argument the roles may not use cannot be called at all.
        else if (isNonNullType(argument.type) && argument.defaultValue === undefined) return null;
      }
      return { ...fieldConfig, args };
    },
    [MapperKind.INPUT_OBJECT_FIELD]: (fieldConfig, fieldName, typeName) => (usableInputs.get(typeName)?.has(fieldName) ? fieldConfig : null),
  });
  return pruneSchema(filtered);
}

/** Input fields the roles may use, by input type (MFA assumed: a view shows what the roles may ever use). */
function usableInputFields(schema: GraphQLSchema, decide: CategoryDecider): Map<string, Set<string>> {
  const usable = new Map<string, Set<string>>();
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isInputObjectType(type) || type.name.startsWith('__')) continue;
    usable.set(type.name, new Set(Object.keys(type.getFields()).filter((field) => decideArgumentUse(decide, inputFieldUse(type.name, field), true).allowed)));
  }
  return usable;
}

const views = new WeakMap<GraphQLSchema, Map<string, GraphQLSchema>>();

/** Views are computed once per (schema, set of roles) and kept. */
export function cachedSchemaView(schema: GraphQLSchema, roles: readonly Role[]): GraphQLSchema {
  let byRoles = views.get(schema);
  if (!byRoles) {
    byRoles = new Map();
    views.set(schema, byRoles);
  }
  const key = [...roles].sort().join(',');
  let view = byRoles.get(key);
  if (!view) {
    view = schemaViewFor(schema, roles);
    byRoles.set(key, view);
  }
  return view;
}
