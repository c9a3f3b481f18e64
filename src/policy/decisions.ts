import type { PurposeOfUse, Role } from '../auth/index.js';
import { ACCESS_POLICY, deny, type Decision } from './access-policy.js';
import { CATEGORY_NAMES, isPhi, type Category } from './categories.js';
import { categoryOf } from './classification.js';
import type { MaskerName } from './maskers.js';
import { purposeAllows } from './purposes.js';

/**
 * Turning the policy into answers. A token with several roles gets, field by
 * field, the most permissive decision among its roles: allow over mask over
 * deny. It never combines two decisions into something neither role has.
 *
 * A role bound by a sharing agreement (partner) reads, of its own decisions,
 * only the categories its organization's agreement grants. `roleDecision`
 * and `decideField` without an agreement answer for the role itself (what
 * docs/access-matrix.md shows: the most it may ever read); a request's
 * decisions come from `decisionTable(roles, purpose, agreement)`, which
 * without an agreement grants such a role nothing.
 *
 * A request reads for one purpose of use (purposes.ts): each role's
 * decision holds only for the categories that purpose lets it read, and a
 * role that may not read for the purpose at all reads nothing. Without a
 * purpose (null: none was chosen) a table grants nothing. `ANY_PURPOSE`
 * answers for the role across all its purposes (the access matrix, the
 * schema a role may introspect).
 */

/** Decisions across all of a role's purposes: the most it may ever read (the matrix, schema views), never a request's. */
export const ANY_PURPOSE = 'any';
export type RequestPurpose = PurposeOfUse | null | typeof ANY_PURPOSE;

/** Most revealing first: used only if two roles mask one category differently. */
const MASKER_ORDER: readonly MaskerName[] = ['ssnLast4', 'last4', 'zip3', 'birthYear', 'studyPseudonym'];

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

/**
 * The data categories a caller's organization is granted under its sharing
 * agreement with the patients' providers. Read from the database outside
 * this module (src/subgraphs/access.ts); the policy itself does no I/O.
 */
export interface SharingAgreement {
  readonly categories: ReadonlySet<Category>;
}

/** An organization without an agreement: a role bound by one reads nothing. */
export const NO_AGREEMENT: SharingAgreement = Object.freeze({ categories: new Set<Category>() });

/** An agreement from stored category names; a name the policy does not know grants nothing. */
export function sharingAgreement(names: Iterable<string>): SharingAgreement {
  const known = new Set<string>(CATEGORY_NAMES);
  return { categories: new Set([...names].filter((name): name is Category => known.has(name))) };
}

/** True when some role of the set reads only what a sharing agreement grants. */
export function boundBySharingAgreement(roles: readonly Role[]): boolean {
  return roles.some((role) => ACCESS_POLICY[role].boundBySharingAgreement === true);
}

/**
 * The role's decision, limited to what the purpose lets it read, and to the
 * agreement's categories if the role is bound by one; no agreement means the
 * role's own.
 */
function agreedDecision(role: Role, category: Category, agreement: SharingAgreement | undefined, purpose: RequestPurpose): Decision {
  if (purpose === null || (purpose !== ANY_PURPOSE && !purposeAllows(role, purpose, category))) return deny;
  if (agreement && ACCESS_POLICY[role].boundBySharingAgreement && !agreement.categories.has(category)) return deny;
  return roleDecision(role, category);
}

/** One role's decision for a whole category, for a purpose, without a sharing agreement (what the role itself may read for it). */
export function categoryDecision(role: Role, category: Category, purpose: RequestPurpose): Decision {
  return agreedDecision(role, category, undefined, purpose);
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

/** The decision of a set of roles for one field, for a purpose (ANY_PURPOSE: all of theirs); with an agreement, a role bound by one is limited to it (see the top of this file). */
export function decideField(roles: readonly Role[], type: string, field: string, agreement: SharingAgreement | undefined, purpose: RequestPurpose): FieldDecision {
  const category = categoryOf(type, field);
  const coordinate = `${type}.${field}`;
  if (!category) return { type, field, coordinate, category, decision: deny, phi: true };
  return { type, field, coordinate, category, decision: mostPermissive(roles.map((role) => agreedDecision(role, category, agreement, purpose))), phi: isPhi(category) };
}

/**
 * Decisions for one set of roles (and, when one of them is bound by a
 * sharing agreement, one agreement), computed once per Type.field and kept:
 * the policy is static, so the table is shared by all requests alike.
 */
export class DecisionTable {
  /** By type, then field: read for every field of every row, so no key string is built per lookup. */
  readonly #decisions = new Map<string, Map<string, FieldDecision>>();

  constructor(
    readonly roles: readonly Role[],
    /** The request's purpose of use: each role reads only what it lets the role read. */
    readonly purpose: RequestPurpose,
    /** Undefined when no role of the set is bound by an agreement. */
    readonly agreement?: SharingAgreement,
  ) {}

  /** The decision for a whole category (what an argument matching a value of it needs), for the purpose, within the agreement. */
  category(category: Category): Decision {
    return mostPermissive(this.roles.map((role) => agreedDecision(role, category, this.agreement, this.purpose)));
  }

  get(type: string, field: string): FieldDecision {
    let fields = this.#decisions.get(type);
    if (!fields) {
      fields = new Map();
      this.#decisions.set(type, fields);
    }
    let decision = fields.get(field);
    if (!decision) {
      decision = decideField(this.roles, type, field, this.agreement, this.purpose);
      fields.set(field, decision);
    }
    return decision;
  }
}

/** Kept tables by key: one per (set of roles, purpose), and per agreement for sets with a role bound by one (a handful of organizations). */
const tables = new Map<string, DecisionTable>();

/**
 * A request's decisions for its roles and its purpose of use. A role bound
 * by a sharing agreement (partner) reads only the categories `agreement`
 * grants; without one it reads nothing, so a caller that forgets to pass
 * the organization's agreement fails closed. The key of a kept table names
 * the purpose and the agreement's categories: two purposes, or two
 * organizations with different agreements, never share one.
 */
export function decisionTable(roles: readonly Role[], purpose: RequestPurpose, agreement: SharingAgreement = NO_AGREEMENT): DecisionTable {
  const sorted = [...roles].sort();
  const bound = boundBySharingAgreement(sorted);
  const key = `${sorted.join(',')}|${purpose ?? ''}${bound ? `|${[...agreement.categories].sort().join(',')}` : ''}`;
  let table = tables.get(key);
  if (!table) {
    table = new DecisionTable(sorted, purpose, bound ? agreement : undefined);
    tables.set(key, table);
  }
  return table;
}
