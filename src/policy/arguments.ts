import {
  GraphQLError,
  Kind,
  TypeInfo,
  getNamedType,
  isInputObjectType,
  isListType,
  isNonNullType,
  visit,
  visitWithTypeInfo,
  type ASTNode,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLInputType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type ValueNode,
} from 'graphql';
import type { Role } from '../auth/index.js';
import { ErrorCode } from '../errors.js';
import { ACCESS_POLICY, deny, type Decision } from './access-policy.js';
import { isPhi, type Category } from './categories.js';
import { categoryDecision, mostPermissive, rank, type RequestPurpose } from './decisions.js';

/**
 * Arguments are reads. A filter, a lookup or a sort by a value tells the
 * caller something about that value (compare two counts), so every
 * argument and every input-object field is classified like the field whose
 * value it matches, and a role may use it only where it may read that field
 * IN FULL: a masked decision does not count, since matching an exact value
 * of a masked field reveals the value. A use the role may not make refuses
 * the whole operation before anything runs (FORBIDDEN, ARGUMENT_DENIED),
 * at the gateway and on every subgraph.
 */

/** What an argument (or an input-object field) does with its value. */
export type ArgumentUse =
  /** A page position or size (`first`, `after`): no value of any record. */
  | { kind: 'page' }
  /** An input object: each of its fields is decided on its own. */
  | { kind: 'container' }
  /** Selects, filters or looks rows up by a value of this category. */
  | { kind: 'value'; category: Category }
  /** Data written by a mutation: allowed with the mutation's write category. */
  | { kind: 'write'; category: Category };

const page: ArgumentUse = { kind: 'page' };
const container: ArgumentUse = { kind: 'container' };
const value = (category: Category): ArgumentUse => ({ kind: 'value', category });
const write = (category: Category): ArgumentUse => ({ kind: 'write', category });
const writes = (category: Category, ...fields: string[]) => Object.fromEntries(fields.map((field) => [field, write(category)]));

/** Arguments of fields, by `Type.field`, then argument name. Page arguments of connections are classified by rule (isPageArgument). */
export const ARGUMENT_CLASSIFICATION: Record<string, Record<string, ArgumentUse>> = {
  'Query.patient': { id: value('recordId') },
  'Query.patients': { filter: container },
  'Query.patientByMrn': { mrn: value('mrn') },
  'Query.auditEvents': { filter: container },
  'Query._entities': { representations: value('recordId') },
  'Mutation.updateMyContact': { input: container },
  'Mutation.addCareTeamMember': { input: container },
  'Mutation.openEmergencyAccess': { input: container },
  'Query.emergencyReviews': { status: value('emergencyReview') },
  'Mutation.closeEmergencyReview': { input: container },
  'Query.patientConsents': { patientId: value('recordId') },
  'Mutation.grantConsent': { input: container },
  'Mutation.revokeConsent': { input: container },
  'Mutation.recordPaperConsent': { input: container },
  'Mutation.importConsents': { input: container },
  'Mutation.addClinicalNote': { input: container },
  'Mutation.addCondition': { input: container },
  'Mutation.recordPayment': { input: container },
};

/** Fields of input objects, by type, then field name. */
export const INPUT_FIELD_CLASSIFICATION: Record<string, Record<string, ArgumentUse>> = {
  PatientFilter: { gender: value('gender'), managingOrganizationId: value('managingOrganization'), careTeamId: value('careTeam') },
  AuditEventFilter: Object.fromEntries(['patientId', 'subject', 'field', 'outcome', 'from', 'to', 'emergency'].map((field) => [field, value('auditLog')])),
  UpdateContactInput: { ...writes('writeContact', 'phone', 'email'), address: container },
  AddressInput: writes('writeContact', 'line', 'city', 'state', 'postalCode'),
  AddCareTeamMemberInput: writes('writeCareTeam', 'careTeamId', 'practitionerId'),
  OpenEmergencyAccessInput: writes('emergencyAccess', 'patientId', 'reason', 'minutes', 'sensitiveData'),
  CloseEmergencyReviewInput: writes('emergencyReview', 'id', 'outcome', 'note'),
  GrantConsentInput: writes('writeConsent', 'scope', 'decision', 'organizationId', 'actorRole', 'purposes', 'sensitiveData', 'periodEnd'),
  RecordPaperConsentInput: writes('writeConsent', 'patientId', 'scope', 'decision', 'organizationId', 'actorRole', 'purposes', 'sensitiveData', 'periodEnd', 'signedAt', 'documentReference'),
  RevokeConsentInput: writes('writeConsent', 'id', 'documentReference'),
  ImportConsentsInput: writes('writeConsent', 'patientId', 'resources', 'documentReference'),
  AddClinicalNoteInput: writes('writeClinicalNote', 'patientId', 'encounterId', 'typeCode', 'text', 'sensitiveData'),
  AddConditionInput: writes('writeCondition', 'patientId', 'encounterId', 'code', 'display', 'clinicalStatus', 'onsetDate'),
  RecordPaymentInput: writes('writePayment', 'invoiceId', 'amountCents', 'method', 'receivedAt'),
};

const PAGE_ARGUMENTS = new Set(['first', 'after']);

/** `first` and `after` of a field that returns a connection: they position a page, they match no value. */
function isPageArgument(schema: GraphQLSchema | undefined, coordinate: string, argument: string): boolean {
  if (!PAGE_ARGUMENTS.has(argument)) return false;
  if (!schema) return true;
  const [type, field] = coordinate.split('.') as [string, string];
  const definition = schema.getType(type);
  if (!definition || !('getFields' in definition)) return false;
  const returned = (definition.getFields() as Record<string, { type: GraphQLInputType }>)[field]?.type;
  return !!returned && getNamedType(returned).name.endsWith('Connection');
}

/** How an argument is used, or undefined when it is not classified (denied to everyone). */
export function argumentUse(coordinate: string, argument: string, schema?: GraphQLSchema): ArgumentUse | undefined {
  return ARGUMENT_CLASSIFICATION[coordinate]?.[argument] ?? (isPageArgument(schema, coordinate, argument) ? page : undefined);
}

export function inputFieldUse(type: string, field: string): ArgumentUse | undefined {
  return INPUT_FIELD_CLASSIFICATION[type]?.[field];
}

export type ArgumentVerdict = { allowed: true } | { allowed: false; reason: 'ROLE_DENIED' | 'MASKED_ONLY' | 'NOT_CLASSIFIED' | 'MFA_REQUIRED' };

/** A caller's decision for a whole category, for a value it matches or for data it writes (see argumentDecider). */
export type CategoryDecider = (category: Category, use?: 'value' | 'write') => Decision;

/**
 * The decider of a set of roles reading for a purpose (all of theirs by
 * default), from the policy alone: no sharing agreement is applied (the
 * subgraphs apply it with the organization's agreement in hand).
 */
export function categoryDeciderFor(roles: readonly Role[], purpose: RequestPurpose): CategoryDecider {
  return argumentDecider(roles, (role) => (category) => categoryDecision(role, category, purpose));
}

/**
 * What a token may use an argument for, from each of its roles' decisions.
 * Roles that see the same patients combine as fields do (the most
 * permissive). Roles that see different patients do not: a lookup or a
 * filter runs over the union of their rows, so one role's argument would
 * reach rows only the other role sees (a clinician's care-team filter over
 * billing's whole organization). There every role must allow it.
 */
export function argumentDecider(roles: readonly Role[], decideForRole: (role: Role) => (category: Category) => Decision): CategoryDecider {
  const scopes = new Set(roles.map((role) => ACCESS_POLICY[role].patients));
  const deciders = roles.map(decideForRole);
  const combined = (category: Category) => mostPermissive(deciders.map((decide) => decide(category)));
  if (scopes.size <= 1) return combined;
  return (category, use = 'value') => {
    // What a mutation writes is decided as its entry point is (the most permissive role); its own checks look at the rows it writes.
    if (use === 'write') return combined(category);
    const decisions = deciders.map((decide) => decide(category));
    return decisions.reduce((least, decision) => (rank(decision) < rank(least) ? decision : least), decisions[0] ?? deny);
  };
}

/** Whether a caller may use an argument: page positions and containers always; a value only where its category is allowed in full. */
export function decideArgumentUse(decide: CategoryDecider, use: ArgumentUse | undefined, mfa: boolean): ArgumentVerdict {
  if (!use) return { allowed: false, reason: 'NOT_CLASSIFIED' };
  if (use.kind === 'page' || use.kind === 'container') return { allowed: true };
  const decision = decide(use.category, use.kind);
  if (decision.kind === 'deny') return { allowed: false, reason: 'ROLE_DENIED' };
  // A study pseudonym is the one mask an argument may match: the caller names a record exactly as it was shown it, and the name resolves only within its own study.
  if (decision.kind === 'mask' && decision.masker !== 'studyPseudonym') return { allowed: false, reason: 'MASKED_ONLY' };
  if (isPhi(use.category) && !mfa) return { allowed: false, reason: 'MFA_REQUIRED' };
  return { allowed: true };
}

/** One use of an argument an operation makes that its caller may not make. */
export interface ArgumentRefusal {
  /** `Query.patients(filter:)`, `PatientFilter.careTeamId`: what was used. */
  coordinate: string;
  /** Where in the operation: response keys of the fields, then the argument and input fields, e.g. patients.filter.careTeamId. */
  path: string;
  reason: Exclude<ArgumentVerdict, { allowed: true }>['reason'];
  /** The category the value belongs to (for the audit record), when classified. */
  category: Category | undefined;
}

type Variables = Readonly<Record<string, unknown>> | undefined;

/**
 * Every argument and input field an operation uses (with a value that is
 * not null), decided for the caller. Variables are read as sent; the
 * fragments the operation spreads are walked with it.
 */
export function refusedArguments(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Variables,
  decide: CategoryDecider,
  mfa: boolean,
  /** For checking an operation before it is deployed: a variable may carry any value, so every input field it could hold is decided. */
  variablesUnknown = false,
): ArgumentRefusal[] {
  const refusals: ArgumentRefusal[] = [];
  const seen = new Set<string>();
  const refuse = (coordinate: string, path: string, use: ArgumentUse | undefined) => {
    const verdict = decideArgumentUse(decide, use, mfa);
    if (verdict.allowed || seen.has(path)) return;
    seen.add(path);
    refusals.push({ coordinate, path, reason: verdict.reason, category: use && use.kind !== 'page' && use.kind !== 'container' ? use.category : undefined });
  };

  const walkValue = (type: GraphQLInputType, node: ValueNode | undefined, raw: unknown, path: string): void => {
    const named = isNonNullType(type) ? type.ofType : type;
    if (node?.kind === Kind.VARIABLE) {
      if (variablesUnknown) walkEveryField(type, path, new Set());
      else walkValue(type, undefined, variables?.[node.name.value], path);
      return;
    }
    if (node?.kind === Kind.NULL || (!node && (raw === null || raw === undefined))) return;
    if (isListType(named)) {
      const items = node ? (node.kind === Kind.LIST ? node.values : [node]) : Array.isArray(raw) ? raw : [raw];
      items.forEach((item, index) => (node ? walkValue(named.ofType, item as ValueNode, undefined, path) : walkValue(named.ofType, undefined, (items as unknown[])[index], path)));
      return;
    }
    if (!isInputObjectType(named)) return;
    const fields = named.getFields();
    const present: [string, ValueNode | undefined, unknown][] = node
      ? node.kind === Kind.OBJECT
        ? node.fields.map((field) => [field.name.value, field.value, undefined])
        : []
      : raw !== null && typeof raw === 'object'
        ? Object.entries(raw as Record<string, unknown>).map(([name, fieldValue]) => [name, undefined, fieldValue])
        : [];
    for (const [name, fieldNode, fieldRaw] of present) {
      const definition = fields[name];
      if (!definition) continue; // validation or coercion refuses unknown fields
      const absent = fieldNode
        ? fieldNode.kind === Kind.NULL || (!variablesUnknown && fieldNode.kind === Kind.VARIABLE && (variables?.[fieldNode.name.value] ?? null) === null)
        : fieldRaw === null || fieldRaw === undefined;
      if (absent) continue;
      const fieldPath = `${path}.${name}`;
      refuse(`${named.name}.${name}`, fieldPath, inputFieldUse(named.name, name));
      walkValue(definition.type, fieldNode, fieldRaw, fieldPath);
    }
  };

  const walkEveryField = (type: GraphQLInputType, path: string, visiting: Set<string>): void => {
    const named = getNamedType(type);
    if (!isInputObjectType(named) || visiting.has(named.name)) return;
    for (const field of Object.values(named.getFields())) {
      const fieldPath = `${path}.${field.name}`;
      refuse(`${named.name}.${field.name}`, fieldPath, inputFieldUse(named.name, field.name));
      walkEveryField(field.type, fieldPath, new Set([...visiting, named.name]));
    }
  };

  const fragments = new Map(
    document.definitions.filter((definition): definition is FragmentDefinitionNode => definition.kind === Kind.FRAGMENT_DEFINITION).map((fragment) => [fragment.name.value, fragment]),
  );
  const walked = new Set<string>();
  const walk = (root: ASTNode, prefix: string[]) => {
    const typeInfo = new TypeInfo(schema);
    const path = [...prefix];
    visit(
      root,
      visitWithTypeInfo(typeInfo, {
        Field: {
          enter(node) {
            path.push(node.alias?.value ?? node.name.value);
          },
          leave() {
            path.pop();
          },
        },
        Argument(node) {
          const parent = typeInfo.getParentType();
          const field = typeInfo.getFieldDef();
          const argument = typeInfo.getArgument();
          // Directive arguments (@include(if:)) and introspection's own (__type(name:)) match no record.
          if (!parent || !field || !argument || typeInfo.getDirective() || field.name.startsWith('__') || parent.name.startsWith('__')) return;
          if (node.value.kind === Kind.NULL || (!variablesUnknown && node.value.kind === Kind.VARIABLE && (variables?.[node.value.name.value] ?? null) === null)) return;
          const coordinate = `${parent.name}.${field.name}`;
          const argumentPath = `${path.join('.')}.${argument.name}`;
          refuse(`${coordinate}(${argument.name}:)`, argumentPath, argumentUse(coordinate, argument.name, schema));
          walkValue(argument.type, node.value, undefined, argumentPath);
        },
        FragmentSpread(node) {
          const fragment = fragments.get(node.name.value);
          // Each fragment once: the same spread in two places uses the same arguments.
          if (!fragment || walked.has(fragment.name.value)) return;
          walked.add(fragment.name.value);
          walk(fragment, [...path]);
        },
      }),
    );
  };
  walk(operation, []);
  return refusals;
}

/** The refusal of an operation: one error per argument use, naming where and why, never the value. */
export function argumentDenied(refusal: ArgumentRefusal): GraphQLError {
  const why =
    refusal.reason === 'MFA_REQUIRED'
      ? 'needs a token issued with multi-factor authentication'
      : refusal.reason === 'MASKED_ONLY'
        ? 'matches a value your role may read only masked'
        : 'matches a value your role may not read';
  return new GraphQLError(`The operation was not run: the argument ${refusal.path} (${refusal.coordinate}) ${why}.`, {
    extensions: { code: ErrorCode.Forbidden, reason: 'ARGUMENT_DENIED', argument: refusal.coordinate, argumentPath: refusal.path, cause: refusal.reason },
  });
}
