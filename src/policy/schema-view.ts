import type { GraphQLSchema } from 'graphql';
import { MapperKind, mapSchema, pruneSchema } from '@graphql-tools/utils';
import type { Role } from '../auth/index.js';
import { decisionTable } from './decisions.js';

/**
 * The schema a set of roles may see (like a role-based schema in Hasura):
 * every field the roles are denied is gone, and so is every type that no
 * remaining field leads to. Federation plumbing of a subgraph stays.
 */
const FEDERATION_TYPES = new Set(['_Service', '_Entity', '_Any']);
const FEDERATION_QUERY_FIELDS = new Set(['_entities', '_service']);

export function schemaViewFor(schema: GraphQLSchema, roles: readonly Role[]): GraphQLSchema {
  const table = decisionTable(roles);
  const filtered = mapSchema(schema, {
    [MapperKind.OBJECT_FIELD]: (fieldConfig, fieldName, typeName) => {
      if (FEDERATION_TYPES.has(typeName) || (typeName === 'Query' && FEDERATION_QUERY_FIELDS.has(fieldName))) return fieldConfig;
      return table.get(typeName, fieldName).decision.kind === 'deny' ? null : fieldConfig;
    },
  });
  return pruneSchema(filtered);
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
