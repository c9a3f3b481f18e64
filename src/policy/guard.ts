import type { GraphQLField, GraphQLFieldResolver, GraphQLSchema } from 'graphql';
import { defaultFieldResolver, GraphQLError, isIntrospectionType, isObjectType } from 'graphql';
import type { Principal, Role } from '../auth/index.js';
import { CLIENT_ERROR_CODES, ErrorCode, cacheUnavailable, databaseUnavailable, forbidden, internalError, isCacheUnavailable, isDatabaseUnavailable } from '../errors.js';
import { ACCESS_POLICY } from './access-policy.js';
import { isPhi } from './categories.js';
import { categoryOf } from './classification.js';
import type { DecisionTable, FieldDecision } from './decisions.js';
import { MASKERS } from './maskers.js';

/**
 * The field guard: every field of every object type below the root runs
 * through one synchronous step generated from the policy. It looks the
 * decision up (a table computed once per set of roles), tells the audit
 * collector, refuses with FORBIDDEN, or resolves the field and then
 * decrypts (@encrypted fields) and masks (masked decisions) that value only.
 *
 * Synchronous on purpose: a list of a thousand rows of ten fields passes
 * through here ten thousand times, and an async wrapper per field (what
 * graphql-shield does) costs a promise, a microtask and an async-hook
 * round per field: 2.5x the unguarded request (bench/BENCHMARKS.md).
 * A promise is made only where the answer really waits: a resolver that
 * returns one, a data key not yet in memory, or a row whose roles must be
 * looked up (tokens with several roles of different row scopes).
 *
 * The entry points (Query and Mutation fields) are graphql-shield's, in
 * shield.ts: a few per request, with the same decisions.
 */

/** What the guard needs from a request's context. */
export interface PolicyContext {
  /** Told of every field decision made, for the field of `parent` (the audit trail records the PHI ones). */
  /** `failure`: the field was allowed but its value could not be shown (a decryption failure's reason, or the error's code). */
  auditField?: (decision: FieldDecision, parent: unknown, args: Record<string, unknown>, refusal: GraphQLError | null, failure?: string) => void;
  /**
   * Shows a record id as the caller's study pseudonym (researchers): the
   * `studyPseudonym` masker. Null when the request has no study, which
   * then shows no id at all.
   */
  pseudonymize?: (type: string, id: string) => string | null;
  access: {
    principal: Principal;
    decisions: DecisionTable;
    rowDependent: boolean;
    rolesForPatient(patientId: string): Promise<readonly Role[]>;
    /** The request's table for a subset of its roles (a partner's within its organization's sharing agreement). */
    decisionsFor(roles: readonly Role[]): DecisionTable;
  };
}

/** Opens a sealed (still encrypted) value for a field the guard allowed; supplied by the subgraphs. Synchronous unless a key must be fetched. */
export type Unseal = (value: unknown, context: PolicyContext) => unknown;

export const ENCRYPTED_DIRECTIVE = 'encrypted';

/** Federation plumbing below the root every subgraph must answer: the subgraph's SDL (its `Query._service` entry point is guarded). */
const ALWAYS_ALLOWED = new Set(['_Service.sdl']);

export function isEncryptedField(schema: GraphQLSchema, type: string, field: string): boolean {
  const definition = schema.getType(type);
  if (!definition || !isObjectType(definition)) return false;
  return definition.getFields()[field]?.astNode?.directives?.some((directive) => directive.name.value === ENCRYPTED_DIRECTIVE) ?? false;
}

export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/** The patient a row belongs to, for tokens whose roles see different rows. */
function patientOf(type: string, parent: unknown): string | undefined {
  if (parent === null || typeof parent !== 'object') return undefined;
  const row = parent as { id?: unknown; patient?: { id?: unknown }; patientId?: unknown };
  if (type === 'Patient' && typeof row.id === 'string') return row.id;
  if (typeof row.patient?.id === 'string') return row.patient.id;
  return typeof row.patientId === 'string' ? row.patientId : undefined;
}

/** The decision for this field of this row: from the request's table, or per row when the token's roles see different rows. */
export function decisionForRow(type: string, field: string, parent: unknown, context: PolicyContext): FieldDecision | Promise<FieldDecision> {
  const { access } = context;
  if (!access.rowDependent) return access.decisions.get(type, field);
  const patientId = patientOf(type, parent);
  if (!patientId) return access.decisions.get(type, field);
  return access.rolesForPatient(patientId).then((roles) => access.decisionsFor(roles).get(type, field));
}

/** Why this decision refuses the field, or null when it allows it (possibly masked). */
export function refusalOf(decision: FieldDecision, principal: Principal): GraphQLError | null {
  if (!decision.category) return forbidden('NOT_CLASSIFIED', decision.coordinate);
  if (decision.decision.kind === 'deny') return forbidden('ROLE_DENIED', decision.coordinate);
  if (decision.phi && !principal.mfa) return forbidden('MFA_REQUIRED', decision.coordinate);
  return null;
}

/** Expected errors (codes meant for clients) pass; anything else becomes a bare internal error (a driver message can quote values). */
export function sanitizedError(thrown: unknown): GraphQLError {
  if (thrown instanceof GraphQLError && CLIENT_ERROR_CODES.has(String(thrown.extensions['code']))) return thrown;
  // A database past its deadline or gone is said as such (the response is then withheld whole, 503), never with the driver's words.
  if (isDatabaseUnavailable(thrown)) return databaseUnavailable();
  if (isCacheUnavailable(thrown)) return cacheUnavailable();
  return internalError();
}

type Resolver = GraphQLFieldResolver<unknown, PolicyContext, Record<string, unknown>>;

interface GuardedField {
  type: string;
  field: string;
  resolve: Resolver;
  encrypted: boolean;
  unseal: Unseal;
}

/** The value the client may see: decrypted if the field is @encrypted, then masked if the decision says so. */
function protect(value: unknown, decision: FieldDecision, guarded: GuardedField, context: PolicyContext): unknown {
  if (value === null || value === undefined) return value;
  const opened = guarded.encrypted ? guarded.unseal(value, context) : value;
  const { decision: verdict } = decision;
  if (verdict.kind !== 'mask') return opened;
  if (verdict.masker === 'studyPseudonym') return typeof opened === 'string' ? (context.pseudonymize?.(decision.type, opened) ?? null) : null;
  const masker = MASKERS[verdict.masker];
  return isPromiseLike(opened) ? opened.then((plain) => maskValue(plain, masker)) : maskValue(opened, masker);
}

function maskValue(plain: unknown, masker: (typeof MASKERS)[keyof typeof MASKERS]): unknown {
  return plain === null || plain === undefined ? plain : masker.apply(plain);
}

function enforce(decision: FieldDecision, guarded: GuardedField, parent: unknown, args: Record<string, unknown>, context: PolicyContext, info: Parameters<Resolver>[3]): unknown {
  const refusal = refusalOf(decision, context.access.principal);
  context.auditField?.(decision, parent, args, refusal);
  if (refusal) throw refusal;
  const value = guarded.resolve(parent, args, context, info);
  let shown: unknown;
  try {
    shown = isPromiseLike(value) ? Promise.resolve(value).then((resolved) => protect(resolved, decision, guarded, context)) : protect(value, decision, guarded, context);
  } catch (error) {
    return recordFailure(error, decision, parent, args, context);
  }
  // A waiting resolver or a data key being fetched fails later: sanitized the same way as a failure now.
  // (No closure is made for the synchronous case: this runs for every field of every row.)
  return isPromiseLike(shown)
    ? Promise.resolve(shown)
        .catch((error: unknown) => recordFailure(error, decision, parent, args, context))
        .catch(rethrowSanitized)
    : shown;
}

/**
 * The decision was recorded as allowed (or masked); a value that then could not be shown (it failed to decrypt, its key
 * could not be fetched, its resolver failed) is recorded as failed, with the reason or the error's code.
 */
function recordFailure(error: unknown, decision: FieldDecision, parent: unknown, args: Record<string, unknown>, context: PolicyContext): never {
  context.auditField?.(decision, parent, args, null, failureReason(error));
  throw error;
}

function failureReason(error: unknown): string {
  if (error instanceof GraphQLError && error.extensions['code'] === ErrorCode.DecryptionFailed) {
    const reason = error.extensions['reason'];
    return typeof reason === 'string' ? reason : ErrorCode.DecryptionFailed;
  }
  const code = sanitizedError(error).extensions['code'];
  return typeof code === 'string' ? code : ErrorCode.Internal;
}

function rethrowSanitized(error: unknown): never {
  throw sanitizedError(error);
}

function guardResolver(guarded: GuardedField): Resolver {
  return (parent, args, context, info) => {
    try {
      const decision = decisionForRow(guarded.type, guarded.field, parent, context);
      if (decision instanceof Promise) return decision.then((decided) => enforce(decided, guarded, parent, args, context, info)).catch(rethrowSanitized);
      return enforce(decision, guarded, parent, args, context, info);
    } catch (error) {
      return rethrowSanitized(error);
    }
  };
}

/** The object types the guard covers: all but the root operation types (shield's) and introspection's own. */
function guardedTypes(schema: GraphQLSchema) {
  const roots = new Set([schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()]);
  return Object.values(schema.getTypeMap())
    .filter(isObjectType)
    .filter((type) => !isIntrospectionType(type) && !roots.has(type));
}

function replaceResolver(field: GraphQLField<unknown, unknown>, resolve: Resolver): void {
  // In place: the schema was just built for this server, and replacing the
  // resolver keeps everything else (federation's __resolveReference included).
  (field as GraphQLField<unknown, PolicyContext>).resolve = resolve;
}

/**
 * True for a field the guard could only ever allow and never record: not
 * PHI, not encrypted, allowed to every role, read from its parent by
 * graphql's default resolver (so nothing in it can fail). Connection edges,
 * page info and value shapes such as HumanName.given: their data was
 * decided at the field that led to them (Patient.name).
 */
function needsNoGuard(schema: GraphQLSchema, type: string, field: GraphQLField<unknown, unknown>): boolean {
  if (field.resolve || isEncryptedField(schema, type, field.name)) return false;
  const category = categoryOf(type, field.name);
  if (!category || isPhi(category)) return false;
  return Object.values(ACCESS_POLICY).every((policy) => policy.fields[category]?.kind === 'allow');
}

/**
 * Puts the guard on every field below the root, in place. Fields without a
 * resolver of their own (plain columns) are guarded too: the guard wraps
 * graphql's default resolver, so no field escapes its decision. Only the
 * fields every role may read in full and that cannot fail are left as they
 * are (needsNoGuard).
 */
export function guardFields(schema: GraphQLSchema, unseal: Unseal): void {
  for (const type of guardedTypes(schema)) {
    for (const field of Object.values(type.getFields())) {
      const resolve = (field.resolve ?? defaultFieldResolver) as Resolver;
      if (ALWAYS_ALLOWED.has(`${type.name}.${field.name}`) || needsNoGuard(schema, type.name, field)) continue;
      replaceResolver(field, guardResolver({ type: type.name, field: field.name, resolve, encrypted: isEncryptedField(schema, type.name, field.name), unseal }));
    }
  }
}

/** Benchmarks only: no decisions at all; @encrypted fields are still opened (synchronously, as the guard does) so they can be served. */
export function openEncryptedFieldsOnly(schema: GraphQLSchema, unseal: Unseal): void {
  for (const type of guardedTypes(schema)) {
    for (const field of Object.values(type.getFields())) {
      if (!isEncryptedField(schema, type.name, field.name)) continue;
      const resolve = (field.resolve ?? defaultFieldResolver) as Resolver;
      replaceResolver(field, (parent, args, context, info) => {
        const value = resolve(parent, args, context, info);
        if (isPromiseLike(value)) return Promise.resolve(value).then((resolved) => (resolved === null || resolved === undefined ? resolved : unseal(resolved, context)));
        return value === null || value === undefined ? value : unseal(value, context);
      });
    }
  }
}
