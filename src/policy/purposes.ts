import { isPurposeOfUse, PURPOSE_CODES, type PurposeOfUse, type Role } from '../auth/index.js';
import { ACCESS_POLICY, type PurposeScope, type RolePolicy } from './access-policy.js';
import type { Category } from './categories.js';

/**
 * Purpose of use: why a request reads data. The policy says, per role,
 * which purposes it may read for, what each purpose lets it read (all its
 * categories, or some of them: a clinician reading for payment sees what a
 * claim needs, not the clinical record), and which purpose a request falls
 * back to when it names none.
 *
 * A request's purpose is chosen once, when it is authenticated (http.ts),
 * from the token's `purpose_of_use` claim and the `X-Purpose-Of-Use` header:
 *
 * - the header names one code: it must be a code this API knows, one the
 *   token's claim names (when the token has the claim), and one at least one
 *   of the token's roles may read for;
 * - no header: the first of the token's roles (in the token's order) whose
 *   default purpose the token allows gives it; a token whose roles have no
 *   default it allows must name one (PURPOSE_REQUIRED);
 * - a token without the claim allows its roles' default purposes only.
 *
 * Categories that carry no data (ids, links, structure, the directory, the
 * caller's own token facts) are readable under every purpose a role has.
 */

/** Readable under every purpose a role may read for: they hold no clinical, billing or identifying content of their own. */
export const WITHOUT_CONTENT: readonly Category[] = ['self', 'structure', 'recordId', 'recordLink', 'patientLookup', 'directory'];

/** Whether `purpose` lets `role` read `category` (of what the role may read at all). */
export function purposeAllows(role: Role, purpose: PurposeOfUse, category: Category, policy: Readonly<Record<Role, RolePolicy>> = ACCESS_POLICY): boolean {
  const scope: PurposeScope | undefined = policy[role].purposes[purpose];
  if (scope === undefined) return false;
  return scope === 'all' || WITHOUT_CONTENT.includes(category) || scope.includes(category);
}

export type PurposeRefusal =
  /** The header names no code this API knows. */
  | 'PURPOSE_UNKNOWN'
  /** The token's `purpose_of_use` claim does not name the purpose asked for. */
  | 'PURPOSE_NOT_IN_TOKEN'
  /** None of the token's roles may read for the purpose. */
  | 'PURPOSE_NOT_ALLOWED'
  /** No purpose named, and none to fall back to. */
  | 'PURPOSE_REQUIRED';

export const PURPOSE_REFUSALS: Readonly<Record<PurposeRefusal, string>> = {
  PURPOSE_UNKNOWN: `The X-Purpose-Of-Use header must be one HL7 v3 PurposeOfUse code this API knows: ${PURPOSE_CODES.join(', ')}.`,
  PURPOSE_NOT_IN_TOKEN: 'The token does not allow the purpose of use the X-Purpose-Of-Use header names (its purpose_of_use claim).',
  PURPOSE_NOT_ALLOWED: 'No role of the token may read for this purpose of use.',
  PURPOSE_REQUIRED: 'Name the purpose of use in the X-Purpose-Of-Use header: the token allows several, or none its roles fall back to.',
};

/**
 * The request's purpose and the roles that act in it (those of the token
 * that may read for it: a role that may not takes no part, neither its rows
 * nor its decisions nor its vote on arguments), or why the request is
 * refused.
 */
export function choosePurpose(
  roles: readonly Role[],
  claimed: readonly PurposeOfUse[] | null,
  header: string | undefined,
  policy: Readonly<Record<Role, RolePolicy>> = ACCESS_POLICY,
): { purpose: PurposeOfUse; roles: Role[] } | { refusal: PurposeRefusal } {
  const acting = (purpose: PurposeOfUse): { purpose: PurposeOfUse; roles: Role[] } | { refusal: PurposeRefusal } => {
    const readers = roles.filter((role) => policy[role].purposes[purpose] !== undefined);
    return readers.length > 0 ? { purpose, roles: readers } : { refusal: 'PURPOSE_NOT_ALLOWED' };
  };
  const defaults = roles.map((role) => policy[role].defaultPurpose).filter((purpose): purpose is PurposeOfUse => purpose !== null);
  const allowed = claimed ?? defaults;
  if (header !== undefined) {
    const requested = header.trim();
    if (!isPurposeOfUse(requested)) return { refusal: 'PURPOSE_UNKNOWN' };
    if (!allowed.includes(requested)) return { refusal: claimed === null ? 'PURPOSE_NOT_ALLOWED' : 'PURPOSE_NOT_IN_TOKEN' };
    return acting(requested);
  }
  const fallback = claimed !== null && claimed.length === 1 ? claimed[0] : defaults.find((purpose) => allowed.includes(purpose));
  return fallback === undefined ? { refusal: 'PURPOSE_REQUIRED' } : acting(fallback);
}
