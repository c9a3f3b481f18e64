import type { GraphQLResolveInfo, GraphQLSchema } from 'graphql';
import { GraphQLError, isIntrospectionType, isObjectType } from 'graphql';
import { applyMiddleware, type IMiddlewareFunction, type IMiddlewareTypeMap } from 'graphql-middleware';
import { allow as allowRule, rule, shield, type IRules } from 'graphql-shield';
import type { Principal, Role } from '../auth/index.js';
import { CLIENT_ERROR_CODES, forbidden, internalError } from '../errors.js';
import { ACCESS_POLICY, INTROSPECTION_ROLES } from './access-policy.js';
import { categoryOf } from './classification.js';
import { decisionTable, type DecisionTable, type FieldDecision } from './decisions.js';
import { MASKERS } from './maskers.js';

/**
 * Enforcement: a graphql-shield rule per field, generated from the policy,
 * with deny as the fallback, and a masking step on the fields some role
 * masks. graphql-shield and graphql-middleware stay behind this file.
 */

/** What the rules need from a request's context. */
export interface PolicyContext {
  /** Told of every field decision made (the audit trail records the PHI ones). */
  auditField?: (type: string, field: string, parent: unknown, args: Record<string, unknown>, decision: FieldDecision, refusal: GraphQLError | null) => void;
  access: {
    principal: Principal;
    decisions: DecisionTable;
    rowDependent: boolean;
    rolesForPatient(patientId: string): Promise<readonly Role[]>;
  };
}

/** Federation plumbing every subgraph must answer; the entities it returns are guarded by their own rules. */
const FEDERATION_FIELDS: Record<string, readonly string[]> = {
  Query: ['_entities'],
  _Service: ['sdl'],
};

/**
 * `_service { sdl }` is the subgraph's whole schema: the same audience as
 * introspection (the gateway composes from the committed supergraph and
 * never asks for it).
 */
const serviceSdlRule = rule('policy:Query._service', { cache: 'contextual' })((_parent: unknown, _args: unknown, context: PolicyContext) =>
  context.access.principal.roles.some((role) => INTROSPECTION_ROLES.includes(role)) ? true : forbidden('ROLE_DENIED', 'Query._service'),
);

/** The patient a row belongs to, for tokens whose roles see different rows. */
function patientOf(type: string, parent: unknown): string | undefined {
  if (parent === null || typeof parent !== 'object') return undefined;
  const row = parent as { id?: unknown; patient?: { id?: unknown }; patientId?: unknown };
  if (type === 'Patient' && typeof row.id === 'string') return row.id;
  if (typeof row.patient?.id === 'string') return row.patient.id;
  return typeof row.patientId === 'string' ? row.patientId : undefined;
}

/** The decision for this field of this row: from the static table, or per row when roles see different rows. */
export function decisionForRow(type: string, field: string, parent: unknown, context: PolicyContext): FieldDecision | Promise<FieldDecision> {
  const { access } = context;
  if (!access.rowDependent) return access.decisions.get(type, field);
  const patientId = patientOf(type, parent);
  if (!patientId) return access.decisions.get(type, field);
  return access.rolesForPatient(patientId).then((roles) => decisionTable(roles).get(type, field));
}

function verdict(decision: FieldDecision, principal: Principal): true | GraphQLError {
  const coordinate = `${decision.type}.${decision.field}`;
  if (!decision.category) return forbidden('NOT_CLASSIFIED', coordinate);
  if (decision.decision.kind === 'deny') return forbidden('ROLE_DENIED', coordinate);
  if (decision.phi && !principal.mfa) return forbidden('MFA_REQUIRED', coordinate);
  return true;
}

function fieldRule(type: string, field: string) {
  // no_cache: the answer may depend on the row (several roles), and the table lookup is cheaper than shield's cache.
  return rule(`policy:${type}.${field}`, { cache: 'no_cache' })((parent: unknown, args: Record<string, unknown>, context: PolicyContext) => {
    const decide = (decision: FieldDecision) => {
      const result = verdict(decision, context.access.principal);
      context.auditField?.(type, field, parent, args, decision, result === true ? null : result);
      return result;
    };
    const decision = decisionForRow(type, field, parent, context);
    return decision instanceof Promise ? decision.then(decide) : decide(decision);
  });
}

/** Expected errors (codes meant for clients) pass; anything else becomes a bare internal error. */
function fallbackError(thrown: unknown): GraphQLError {
  if (thrown instanceof GraphQLError && CLIENT_ERROR_CODES.has(String(thrown.extensions['code']))) return thrown;
  if (thrown === null) return forbidden('ROLE_DENIED', 'this field');
  return internalError();
}

export function buildShieldRules(schema: GraphQLSchema): IRules {
  const rules: Record<string, Record<string, ReturnType<typeof fieldRule> | typeof allowRule  >> = {};
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || isIntrospectionType(type)) continue;
    const fields: Record<string, ReturnType<typeof fieldRule> | typeof allowRule  > = {};
    for (const field of Object.keys(type.getFields())) {
      if (type.name === 'Query' && field === '_service') fields[field] = serviceSdlRule;
      else fields[field] = FEDERATION_FIELDS[type.name]?.includes(field) ? allowRule : fieldRule(type.name, field);
    }
    rules[type.name] = fields;
  }
  return rules;
}

/** Opens a sealed (still encrypted) value for a field the rule allowed; supplied by the subgraphs. */
export type Unseal = (value: unknown, context: PolicyContext) => Promise<unknown>;

export const ENCRYPTED_DIRECTIVE = 'encrypted';

export function isEncryptedField(schema: GraphQLSchema, type: string, field: string): boolean {
  const definition = schema.getType(type);
  if (!definition || !isObjectType(definition)) return false;
  return definition.getFields()[field]?.astNode?.directives?.some((directive) => directive.name.value === ENCRYPTED_DIRECTIVE) ?? false;
}

/**
 * The step after the rule allowed a field, on the fields that need it only:
 * @encrypted fields are decrypted here (one field, nothing else), and fields
 * some role masks are masked here, on the value just decrypted.
 */
function protectionMiddleware(schema: GraphQLSchema, unseal: Unseal): IMiddlewareTypeMap<unknown, PolicyContext> {
  const maskedCategories = new Set(
    Object.values(ACCESS_POLICY).flatMap((policy) =>
      Object.entries(policy.fields).flatMap(([category, decision]) => (decision.kind === 'mask' ? [category] : [])),
    ),
  );
  const middleware: Record<string, Record<string, IMiddlewareFunction<unknown, PolicyContext>>> = {};
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || isIntrospectionType(type)) continue;
    for (const field of Object.keys(type.getFields())) {
      const category = categoryOf(type.name, field);
      const encrypted = isEncryptedField(schema, type.name, field);
      const masked = !!category && maskedCategories.has(category);
      if (!encrypted && !masked) continue;
      const resolver: IMiddlewareFunction<unknown, PolicyContext> = async (resolve, parent, args, context, info: GraphQLResolveInfo) => {
        let value: unknown = await resolve(parent, args, context, info);
        if (encrypted) value = await unseal(value, context);
        if (!masked || value === null || value === undefined) return value;
        const decision = await decisionForRow(type.name, field, parent, context);
        return decision.decision.kind === 'mask' ? MASKERS[decision.decision.masker].apply(value) : value;
      };
      (middleware[type.name] ??= {})[field] = resolver;
    }
  }
  return middleware;
}

/** The subgraph schema with the policy enforced: shield outside, then decryption and masking, then the resolver. */
export function applyPolicy(schema: GraphQLSchema, unseal: Unseal): GraphQLSchema {
  const permissions = shield(buildShieldRules(schema), {
    fallbackRule: rule('policy:unclassified', { cache: 'no_cache' })(() => forbidden('NOT_CLASSIFIED', 'this field')),
    allowExternalErrors: false,
    debug: false,
    fallbackError,
  });
  return applyMiddleware(schema, permissions, protectionMiddleware(schema, unseal));
}

/** Benchmarks only: no rules at all; @encrypted fields are still opened so they can be served. */
export function applyDecryptionOnly(schema: GraphQLSchema, unseal: Unseal): GraphQLSchema {
  const middleware: Record<string, Record<string, IMiddlewareFunction<unknown, PolicyContext>>> = {};
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || isIntrospectionType(type)) continue;
    for (const field of Object.keys(type.getFields())) {
      if (!isEncryptedField(schema, type.name, field)) continue;
      (middleware[type.name] ??= {})[field] = async (resolve, parent, args, context, info: GraphQLResolveInfo) =>
        unseal(await resolve(parent, args, context, info), context);
    }
  }
  return applyMiddleware(schema, middleware);
}
