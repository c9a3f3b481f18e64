import { Kind, TypeInfo, getNamedType, parse, validate, visit, visitWithTypeInfo, type GraphQLSchema, type OperationDefinitionNode } from 'graphql';
import type { Role } from '../auth/index.js';
import type { Decision } from './access-policy.js';
import { categoryDeciderFor, refusedArguments, type ArgumentRefusal } from './arguments.js';
import { decideField, type RequestPurpose } from './decisions.js';
import { DEFAULT_OPERATION_LIMITS, costBudget, measureOperation, type LimitBreach } from './limits.js';

/** One field of an operation and what the roles get for it. */
export interface FieldVerdict {
  /** Response path, e.g. patient.clinicalNotes.edges.node.text */
  path: string;
  coordinate: string;
  decision: Decision;
  phi: boolean;
}

export type OperationCheck =
  | {
      ok: true;
      fields: FieldVerdict[];
      /**
       * Arguments and input fields the roles may not use: any of them
       * refuses the whole operation at run time (ARGUMENT_DENIED). A
       * variable may carry any field of its input type, so each is listed.
       */
      deniedArguments: ArgumentRefusal[];
      /** The same for a token without MFA (PHI arguments need it). */
      deniedArgumentsWithoutMfa: ArgumentRefusal[];
      /** Each operation's cost (variables unknown: lists at their default page size) against the roles' budget, and any default limit it passes. */
      costs: { operation: string; cost: number; budget: number; breach: LimitBreach | null }[];
    }
  | { ok: false; errors: string[] };

/**
 * What an integrator's operation would get under the given roles, before
 * it is deployed: each selected field with its decision (deny, mask, allow),
 * for one purpose of use (by default across all the roles' purposes).
 */
export function checkOperation(schema: GraphQLSchema, source: string, roles: readonly Role[], purpose: RequestPurpose): OperationCheck {
  let document;
  try {
    document = parse(source);
  } catch (error) {
    return { ok: false, errors: [(error as Error).message] };
  }
  const problems = validate(schema, document);
  if (problems.length > 0) return { ok: false, errors: problems.map((problem) => problem.message) };
  const typeInfo = new TypeInfo(schema);
  const fields: FieldVerdict[] = [];
  const path: string[] = [];
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      Field: {
        enter(node) {
          const name = node.alias?.value ?? node.name.value;
          path.push(name);
          const parent = typeInfo.getParentType();
          if (!parent || node.name.value.startsWith('__')) return;
          const verdict = decideField(roles, getNamedType(parent).name, node.name.value, undefined, purpose);
          fields.push({ path: path.join('.'), coordinate: `${parent.name}.${node.name.value}`, decision: verdict.decision, phi: verdict.phi });
        },
        leave() {
          path.pop();
        },
      },
    }),
  );
  const operations = document.definitions.filter((definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION);
  const decide = categoryDeciderFor(roles, purpose);
  const argumentsOf = (mfa: boolean) => operations.flatMap((operation) => refusedArguments(schema, document, operation, undefined, decide, mfa, true));
  const budget = costBudget(roles);
  const costs = operations.map((operation) => {
    const measured = measureOperation(schema, document, operation, undefined, DEFAULT_OPERATION_LIMITS, Number.MAX_SAFE_INTEGER);
    const cost = measureOperation(schema, document, operation, undefined, { ...DEFAULT_OPERATION_LIMITS, maxDepth: Infinity, maxAliases: Infinity, maxDirectives: Infinity, maxRootFields: Infinity, maxEntities: Infinity }, -1);
    return { operation: operation.name?.value ?? '(anonymous)', cost: cost?.measured ?? 0, budget, breach: measured ?? (cost && cost.measured > budget ? { ...cost, max: budget } : null) };
  });
  return { ok: true, fields, deniedArguments: argumentsOf(true), deniedArgumentsWithoutMfa: argumentsOf(false), costs };
}
