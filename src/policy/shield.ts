import type { GraphQLObjectType, GraphQLSchema } from 'graphql';
import { applyMiddleware, type IMiddlewareTypeMap } from 'graphql-middleware';
import { allow as allowRule, rule, shield, type IRules } from 'graphql-shield';
import { forbidden } from '../errors.js';
import type { FieldDecision } from './decisions.js';
import { decisionForRow, guardFields, openEncryptedFieldsOnly, refusalOf, sanitizedError, type PolicyContext, type Unseal } from './guard.js';

type ShieldRule = ReturnType<ReturnType<typeof rule>> | typeof allowRule;

/**
 * The entry points: a graphql-shield rule per Query and Mutation field,
 * generated from the policy, with deny as the fallback. Every field below
 * the root is the field guard's (guard.ts): the same decisions, without an
 * async wrapper per field of every row. graphql-shield and
 * graphql-middleware stay behind this file.
 */

/** Federation's entity entry point: the entities it returns are guarded by their own fields' decisions and row scopes. */
const FEDERATION_ENTRY_POINTS = new Set(['Query._entities']);

/**
 * `_service { sdl }` is the subgraph's whole schema, every field whatever
 * the caller's role: refused to every caller over HTTP. The full SDL is
 * deployment tooling's (`npm run compose` reads the committed files in
 * schema/; the gateway runs the committed supergraph and never asks for
 * it); introspection answers with the caller's view instead.
 */
const serviceSdlRule = rule('policy:Query._service', { cache: 'contextual' })(() => forbidden('SDL_NOT_SERVED', 'Query._service'));

function entryPointRule(type: string, field: string) {
  // no_cache: one evaluation per root field per request; nothing to share.
  return rule(`policy:${type}.${field}`, { cache: 'no_cache' })((parent: unknown, args: Record<string, unknown>, context: PolicyContext) => {
    const decide = (decision: FieldDecision) => {
      const refusal = refusalOf(decision, context.access.principal);
      context.auditField?.(decision, parent, args, refusal);
      return refusal ?? true;
    };
    const decision = decisionForRow(type, field, parent, context);
    return decision instanceof Promise ? decision.then(decide) : decide(decision);
  });
}

function rootTypes(schema: GraphQLSchema): GraphQLObjectType[] {
  return [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()].filter((type): type is GraphQLObjectType => !!type);
}

/** The rule tree of the entry points: every root field has its rule. */
export function buildShieldRules(schema: GraphQLSchema): IRules {
  const rules: Record<string, Record<string, ShieldRule>> = {};
  for (const type of rootTypes(schema)) {
    const fields: Record<string, ShieldRule> = {};
    for (const field of Object.keys(type.getFields())) {
      const coordinate = `${type.name}.${field}`;
      fields[field] = coordinate === 'Query._service' ? serviceSdlRule : FEDERATION_ENTRY_POINTS.has(coordinate) ? allowRule : entryPointRule(type.name, field);
    }
    rules[type.name] = fields;
  }
  return rules;
}

/**
 * The subgraph schema with the policy enforced: the guard on every field
 * below the root (in place), graphql-shield on the root fields.
 *
 * shield() wraps every field of every object type; only its root types'
 * middleware is applied, since the guard already decides every other field.
 */
export function applyPolicy(schema: GraphQLSchema, unseal: Unseal): GraphQLSchema {
  guardFields(schema, unseal);
  const permissions = shield(buildShieldRules(schema), {
    fallbackRule: rule('policy:unclassified', { cache: 'no_cache' })(() => forbidden('NOT_CLASSIFIED', 'this field')),
    allowExternalErrors: false,
    debug: false,
    fallbackError: (thrown: unknown) => (thrown === null ? forbidden('ROLE_DENIED', 'this field') : sanitizedError(thrown)),
  });
  const generated = permissions.generate(schema) as IMiddlewareTypeMap;
  const entryPoints = Object.fromEntries(rootTypes(schema).map((type) => [type.name, generated[type.name]]));
  return applyMiddleware(schema, entryPoints as IMiddlewareTypeMap);
}

/** Benchmarks only: no rules at all; @encrypted fields are still opened so they can be served. */
export function applyDecryptionOnly(schema: GraphQLSchema, unseal: Unseal): GraphQLSchema {
  openEncryptedFieldsOnly(schema, unseal);
  return schema;
}
