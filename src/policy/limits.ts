import {
  GraphQLError,
  Kind,
  Lexer,
  Source,
  TokenKind,
  getNamedType,
  getNullableType,
  isListType,
  isObjectType,
  OperationTypeNode,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import type { Role } from '../auth/index.js';
import { ErrorCode } from '../errors.js';
import { ACCESS_POLICY } from './access-policy.js';

/**
 * Operation limits: what one operation may ask for, decided before it runs,
 * on the gateway and on every subgraph. A document is measured once, its
 * fragments once each however often they are spread (a fan-out of nested
 * fragments is counted as it would expand, without expanding it).
 */
export interface OperationLimits {
  /** Bytes of the document. */
  maxDocumentBytes: number;
  /** Lexical tokens of the document (graphql-js maxTokens): validation's cost grows with the square of repeated fields. */
  maxTokens: number;
  /** Fields nested in one another, fragments expanded. */
  maxDepth: number;
  /** Aliased fields, fragments expanded. */
  maxAliases: number;
  /** Directives, fragments expanded. */
  maxDirectives: number;
  /** Fields at the root of a query. */
  maxRootFields: number;
  /** Representations one `_entities` call resolves (at most a page of the longest list). */
  maxEntities: number;
  /** When set, the cost budget of every role instead of the policy's (for a deployment that must differ, and for tests). */
  maxCost?: number;
}

/**
 * The defaults: GraphQL Armor's (depth 6, aliases 15, directives 50, tokens
 * 1,000), which the product's own operations pass. Depth does not count
 * connection plumbing (a connection's `edges`, an edge's `node`), so a
 * chart's `patient.encounters.edges.node.type.code` is 4.
 */
export const DEFAULT_OPERATION_LIMITS: OperationLimits = {
  maxDocumentBytes: 16 * 1024,
  maxTokens: 1000,
  maxDepth: 6,
  maxAliases: 15,
  maxDirectives: 50,
  maxRootFields: 10,
  maxEntities: 1000,
};

/** One mutation field per request: a batch of writes is not a documented operation of this API. */
export const MAX_MUTATION_FIELDS = 1;

const INTROSPECTION_ROOTS = new Set(['__schema', '__type']);

/** How many items a list without `first` (care team members, audited fields...) is counted as. */
export const UNBOUNDED_LIST_ESTIMATE = 10;

export type LimitName = 'documentBytes' | 'tokens' | 'depth' | 'aliases' | 'directives' | 'rootFields' | 'mutationFields' | 'entities' | 'cost';

export interface LimitBreach {
  limit: LimitName;
  max: number;
  measured: number;
}

/** A role's cost budget, from the policy; a token with several roles gets the largest. */
export function costBudget(roles: readonly Role[]): number {
  return Math.max(0, ...roles.map((role) => ACCESS_POLICY[role].maxCost));
}

/** Tokens of a document, counted up to `limit + 1` (no more work than that). */
export function countTokens(source: string, limit: number): number {
  const lexer = new Lexer(new Source(source));
  let count = 0;
  try {
    while (count <= limit && lexer.advance().kind !== TokenKind.EOF) count += 1;
  } catch {
    // A lexical error: the parser reports it.
  }
  return count;
}

/** The limits checked on the raw document, before it is parsed. */
export function measureSource(source: string, limits: OperationLimits): LimitBreach | null {
  const bytes = Buffer.byteLength(source, 'utf8');
  if (bytes > limits.maxDocumentBytes) return { limit: 'documentBytes', max: limits.maxDocumentBytes, measured: bytes };
  const tokens = countTokens(source, limits.maxTokens);
  if (tokens > limits.maxTokens) return { limit: 'tokens', max: limits.maxTokens, measured: tokens };
  return null;
}

interface Measure {
  depth: number;
  /** Aliases and directives as written, each fragment counted at every spread (not multiplied by list sizes). */
  aliases: number;
  directives: number;
  /** Fields resolved, each multiplied by the sizes of the lists around it. */
  cost: number;
  /** Representations asked of `_entities`, wherever the field sits. */
  entities: number;
}

const ZERO: Measure = { depth: 0, aliases: 0, directives: 0, cost: 0, entities: 0 };

function add(a: Measure, b: Measure): Measure {
  return { depth: Math.max(a.depth, b.depth), aliases: a.aliases + b.aliases, directives: a.directives + b.directives, cost: a.cost + b.cost, entities: a.entities + b.entities };
}

type Variables = Readonly<Record<string, unknown>> | undefined;

/** How many items a list field returns at most: its `first` (or the argument's default), `_entities`' representations, or an estimate. */
function listSize(field: GraphQLField<unknown, unknown>, node: FieldNode, variables: Variables): number {
  const argumentValue = (name: string): unknown => {
    const given = node.arguments?.find((argument) => argument.name.value === name)?.value;
    // Absent or null: the resolver serves the argument's default.
    if (!given || given.kind === Kind.NULL) return field.args.find((argument) => argument.name === name)?.defaultValue;
    if (given.kind === Kind.VARIABLE) return variables?.[given.name.value] ?? field.args.find((argument) => argument.name === name)?.defaultValue;
    if (given.kind === Kind.INT) return Number(given.value);
    if (given.kind === Kind.LIST) return given.values.length;
    return undefined;
  };
  if (field.name === '_entities') {
    const representations = argumentValue('representations');
    return Array.isArray(representations) ? representations.length : typeof representations === 'number' ? representations : 1;
  }
  if (field.args.some((argument) => argument.name === 'first')) {
    const first = argumentValue('first');
    return typeof first === 'number' && Number.isFinite(first) && first >= 0 ? first : UNBOUNDED_LIST_ESTIMATE;
  }
  return isListType(getNullableType(field.type)) ? UNBOUNDED_LIST_ESTIMATE : 1;
}

/**
 * Measures an operation against the limits and the caller's cost budget;
 * the first limit it passes, or null. Variables are the coerced ones.
 */
export function measureOperation(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Variables,
  limits: OperationLimits,
  maxCost: number,
): LimitBreach | null {
  const fragments = new Map(
    document.definitions.filter((definition): definition is FragmentDefinitionNode => definition.kind === Kind.FRAGMENT_DEFINITION).map((fragment) => [fragment.name.value, fragment]),
  );
  /** By fragment and the rows its connection holds where it is spread: a fragment is measured once per distinct context. */
  const fragmentMeasures = new Map<string, Measure>();
  const onPath = new Set<string>();

  /** `rows`: for a connection's selection (fragments on it included), how many rows its `edges` hold (its `first`); everything else under it counts once. */
  const measureSet = (selectionSet: SelectionSetNode, parent: GraphQLNamedType | undefined, rows = 1): Measure => {
    let total = ZERO;
    for (const selection of selectionSet.selections) {
      const directives = selection.directives?.length ?? 0;
      if (selection.kind === Kind.FIELD) {
        const alias = selection.alias ? 1 : 0;
        // Introspection is answered from the caller's schema view, bounded by the schema itself (its type references nest deeper than data):
        // its depth and cost are not counted, its aliases and directives are.
        if (INTROSPECTION_ROOTS.has(selection.name.value)) {
          const inner = selection.selectionSet ? measureSet(selection.selectionSet, undefined) : ZERO;
          total = add(total, { ...ZERO, aliases: alias + inner.aliases, directives: directives + inner.directives });
          continue;
        }
        const field = parent && isObjectType(parent) ? parent.getFields()[selection.name.value] : undefined;
        const named = field ? getNamedType(field.type) : undefined;
        const size = field && !selection.name.value.startsWith('__') ? listSize(field, selection, variables) : 1;
        const isConnection = named?.name.endsWith('Connection') ?? false;
        const isEdges = selection.name.value === 'edges' && (parent?.name.endsWith('Connection') ?? false);
        // A connection's page size multiplies its edges only (not its pageInfo); its edges list is that page.
        const child = selection.selectionSet ? measureSet(selection.selectionSet, named, isConnection ? size : 1) : ZERO;
        const multiplier = isEdges ? rows : isConnection ? 1 : size;
        // Connection plumbing (a connection's edges, an edge's node) adds no level: depth counts records and values, as on a schema without connections.
        const plumbing = isEdges || (selection.name.value === 'node' && (parent?.name.endsWith('Edge') ?? false));
        total = add(total, {
          depth: child.depth + (plumbing ? 0 : 1),
          aliases: alias + child.aliases,
          directives: directives + child.directives,
          cost: 1 + child.cost * multiplier,
          entities: (selection.name.value === '_entities' ? size : 0) + child.entities * multiplier,
        });
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const typed = selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : parent;
        const inner = measureSet(selection.selectionSet, typed ?? undefined, rows);
        total = add(total, { ...inner, directives: inner.directives + directives });
      } else {
        const name = selection.name.value;
        const fragment = fragments.get(name);
        if (!fragment || onPath.has(name)) continue; // validation refuses unknown and cyclic fragments
        const key = `${name}|${rows}`;
        let inner = fragmentMeasures.get(key);
        if (!inner) {
          onPath.add(name);
          inner = measureSet(fragment.selectionSet, schema.getType(fragment.typeCondition.name.value) ?? undefined, rows);
          inner = { ...inner, directives: inner.directives + (fragment.directives?.length ?? 0) };
          onPath.delete(name);
          fragmentMeasures.set(key, inner);
        }
        total = add(total, { ...inner, directives: inner.directives + directives });
      }
    }
    return total;
  };

  const rootType = operation.operation === OperationTypeNode.MUTATION ? schema.getMutationType() : operation.operation === OperationTypeNode.SUBSCRIPTION ? schema.getSubscriptionType() : schema.getQueryType();
  const rootFields = collectRootFields(operation.selectionSet, fragments, new Set());
  if (operation.operation === OperationTypeNode.MUTATION && rootFields.filter((name) => name !== '__typename').length > MAX_MUTATION_FIELDS) {
    return { limit: 'mutationFields', max: MAX_MUTATION_FIELDS, measured: rootFields.length };
  }
  if (rootFields.length > limits.maxRootFields) return { limit: 'rootFields', max: limits.maxRootFields, measured: rootFields.length };
  const measured = measureSet(operation.selectionSet, rootType ?? undefined);
  const operationDirectives = operation.directives?.length ?? 0;
  if (measured.depth > limits.maxDepth) return { limit: 'depth', max: limits.maxDepth, measured: measured.depth };
  if (measured.aliases > limits.maxAliases) return { limit: 'aliases', max: limits.maxAliases, measured: measured.aliases };
  if (measured.directives + operationDirectives > limits.maxDirectives) return { limit: 'directives', max: limits.maxDirectives, measured: measured.directives + operationDirectives };
  if (measured.entities > limits.maxEntities) return { limit: 'entities', max: limits.maxEntities, measured: measured.entities };
  if (measured.cost > maxCost) return { limit: 'cost', max: maxCost, measured: Math.round(measured.cost) };
  return null;
}

/** Root fields of an operation (by response key), through its fragments. */
function collectRootFields(selectionSet: SelectionSetNode, fragments: Map<string, FragmentDefinitionNode>, seen: Set<string>): string[] {
  return selectionSet.selections.flatMap((selection): string[] => {
    if (selection.kind === Kind.FIELD) return [selection.alias?.value ?? selection.name.value];
    if (selection.kind === Kind.INLINE_FRAGMENT) return collectRootFields(selection.selectionSet, fragments, seen);
    const fragment = fragments.get(selection.name.value);
    if (!fragment || seen.has(fragment.name.value)) return [];
    return collectRootFields(fragment.selectionSet, fragments, new Set([...seen, fragment.name.value]));
  });
}

const LIMIT_WORDS: Record<LimitName, string> = {
  documentBytes: 'document size (bytes)',
  tokens: 'tokens in the document',
  depth: 'depth of nested fields',
  aliases: 'aliases',
  directives: 'directives',
  rootFields: 'fields at the root',
  mutationFields: 'mutation fields in one request',
  entities: 'entity representations',
  cost: 'cost (fields times the list sizes around them)',
};

/** The refusal of an operation past a limit: which, the limit and what was measured; nothing of the operation itself. */
export function operationLimitError(breach: LimitBreach): GraphQLError {
  return new GraphQLError(
    `The operation was not run: its ${LIMIT_WORDS[breach.limit]} is ${breach.measured}, over the limit of ${breach.max}. Ask for less (smaller pages, fewer fields or aliases) or split it.`,
    { extensions: { code: ErrorCode.OperationLimit, limit: breach.limit, max: breach.max, measured: breach.measured } },
  );
}
