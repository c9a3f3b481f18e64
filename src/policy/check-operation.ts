import { TypeInfo, getNamedType, parse, validate, visit, visitWithTypeInfo, type GraphQLSchema } from 'graphql';
import type { Role } from '../auth/index.js';
import type { Decision } from './access-policy.js';
import { decideField } from './decisions.js';

/** One field of an operation and what the roles get for it. */
export interface FieldVerdict {
  /** Response path, e.g. patient.clinicalNotes.edges.node.text */
  path: string;
  coordinate: string;
  decision: Decision;
  phi: boolean;
}

export type OperationCheck = { ok: true; fields: FieldVerdict[] } | { ok: false; errors: string[] };

/**
 * What an integrator's operation would get under the given roles, before
 * it is deployed: each selected field with its decision (deny, mask, allow).
 */
export function checkOperation(schema: GraphQLSchema, source: string, roles: readonly Role[]): OperationCheck {
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
          const verdict = decideField(roles, getNamedType(parent).name, node.name.value);
          fields.push({ path: path.join('.'), coordinate: `${parent.name}.${node.name.value}`, decision: verdict.decision, phi: verdict.phi });
        },
        leave() {
          path.pop();
        },
      },
    }),
  );
  return { ok: true, fields };
}
