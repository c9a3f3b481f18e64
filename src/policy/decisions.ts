import type { Role } from '../auth/index.js';
import { ACCESS_POLICY, deny, type Decision } from './access-policy.js';
import { isPhi, type Category } from './categories.js';
import { categoryOf } from './classification.js';
import type { MaskerName } from './maskers.js';

/**
 * Turning the policy into answers. A token with several roles gets, field by
 * field, the most permissive decision among its roles: allow over mask over
 * deny. It never combines two decisions into something neither role has.
 */

/** Most revealing first: used only if two roles mask one category differently. */
const MASKER_ORDER: readonly MaskerName[] = ['ssnLast4', 'last4', 'zip3', 'birthYear'];

/** How much a decision reveals: allow 2, mask 1, deny 0. */
export function rank(decision: Decision): number {
  switch (decision.kind) {
    case 'allow':
      return 2;
    case 'mask':
      return 1;
    case 'deny':
      return 0;
  }
}

export function mostPermissive(decisions: readonly Decision[]): Decision {
  let best: Decision = deny;
  for (const decision of decisions) {
    if (rank(decision) > rank(best)) best = decision;
    else if (decision.kind === 'mask' && best.kind === 'mask' && MASKER_ORDER.indexOf(decision.masker) < MASKER_ORDER.indexOf(best.masker)) {
      best = decision;
    }
  }
  return best;
}

export function roleDecision(role: Role, category: Category): Decision {
  return ACCESS_POLICY[role].fields[category] ?? deny;
}

/** What one set of roles may do with one field. */
export interface FieldDecision {
  type: string;
  field: string;
  /** `Type.field`, made once: the audit trail's field name. */
  coordinate: string;
  /** Undefined for a field the classification does not know: denied. */
  category: Category | undefined;
  decision: Decision;
  phi: boolean;
}

export function decideField(roles: readonly Role[], type: string, field: string): FieldDecision {
  const category = categoryOf(type, field);
  const coordinate = `${type}.${field}`;
  if (!category) return { type, field, coordinate, category, decision: deny, phi: true };
  return { type, field, coordinate, category, decision: mostPermissive(roles.map((role) => roleDecision(role, category))), phi: isPhi(category) };
}

/**
 * Decisions for one set of roles, computed once per (roles, Type.field) and
 * kept: the policy is static, so the table is shared by all requests.
 */
export class DecisionTable {
  /** By type, then field: read for every field of every row, so no key string is built per lookup. */
  readonly #decisions = new Map<string, Map<string, FieldDecision>>();

  constructor(readonly roles: readonly Role[]) {}

  get(type: string, field: string): FieldDecision {
    let fields = this.#decisions.get(type);
    if (!fields) {
      fields = new Map();
      this.#decisions.set(type, fields);
    }
    let decision = fields.get(field);
    if (!decision) {
      decision = decideField(this.roles, type, field);
      fields.set(field, decision);
    }
    return decision;
  }
}

const tables = new Map<string, DecisionTable>();

export function decisionTable(roles: readonly Role[]): DecisionTable {
  const key = [...roles].sort().join(',');
  let table = tables.get(key);
  if (!table) {
    table = new DecisionTable([...roles].sort());
    tables.set(key, table);
  }
  return table;
}
