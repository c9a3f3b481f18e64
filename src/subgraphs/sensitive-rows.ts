import type { PurposeOfUse, Role } from '../auth/index.js';
import { consentEffect, type ConsentProvision } from '../policy/consent.js';
import { ACCESS_POLICY } from '../policy/access-policy.js';
import { SECURITY_LABEL_CODES, SENSITIVITIES, labelCoding, sensitivitiesOf, storedCodesOf, textArrayLiteral, type SecurityLabelCode, type Sensitivity } from '../policy/sensitivity.js';

/**
 * Which labelled rows (src/policy/sensitivity.ts) a request may load. A
 * row labelled with a category the request is not cleared for is left out
 * by the same SQL statement that loads its neighbours, so it is absent from
 * lists, pages (`hasNextPage`), lookups by id and `_entities` alike: the
 * caller cannot tell it from a row that does not exist. What was withheld is
 * recorded on the audit trail (outcome `withheld`), never shown.
 *
 * Clearance is per (role, purpose) in the policy, and per patient: a
 * patient is seen with the clearance of the token's roles that reach that
 * patient (a clinician's and a partner's roles on one token do not lend the
 * clinician's clearance to the partner's patients), plus the categories a
 * break-the-glass grant for that patient names.
 */
export interface LabelScope {
  /** Per patient, the categories withheld by the roles and the patient's consents, without grants: what a grant's read shows beyond them. */
  withheldByRolesFor(patientId: string): Promise<Sensitivity[]>;
  /**
   * The SQL condition that a row of alias `alias`, of one of these patients,
   * may be shown, given its labels as the SQL expression `labels` (null: no
   * condition needed), with its parameters. Never SQL null.
   */
  sql(alias: string, patientIds: readonly string[], labels?: string): Promise<{ sql: string; params: unknown[] } | null>;
}

/** The categories these roles are cleared for, for the purpose: what any of them is (they reach the same patient). */
export function clearanceOf(principal: { roles: readonly Role[]; purpose: PurposeOfUse | null }): Sensitivity[] {
  const { purpose, roles } = principal;
  if (purpose === null) return [];
  return SENSITIVITIES.filter((category) => roles.some((role) => (ACCESS_POLICY[role].clearance[purpose] ?? []).includes(category)));
}

/** Per patient, the categories a break-the-glass grant in force names. */
export type GrantedCategories = () => Promise<ReadonlyMap<string, readonly Sensitivity[]>>;

/** The patient's consent provisions that name sensitive data (src/policy/consent.ts), batched per request. */
export type ConsentsOf = (patientId: string) => Promise<readonly ConsentProvision[]>;

/**
 * `organizationId`: the caller's, which a consent's actor must be. A
 * patient's consents clear (permit) or withhold (deny) categories for the
 * request on top of the role policy; a deny wins; a break-the-glass grant
 * wins over both. A patient reading their own record is not subject to
 * them.
 */
export function labelScope(
  purpose: PurposeOfUse | null,
  organizationId: string | null,
  rolesForPatient: (patientId: string) => Promise<readonly Role[]>,
  granted: GrantedCategories,
  consentsOf: ConsentsOf,
): LabelScope {
  const byRoles = async (patientId: string) => {
    const roles = await rolesForPatient(patientId);
    const cleared = clearanceOf({ roles, purpose });
    const withheld = SENSITIVITIES.filter((category) => !cleared.includes(category));
    if (purpose === 'PATRQT' || roles.length === 0) return withheld;
    const { permitted, denied } = consentEffect(await consentsOf(patientId), { organizationId, roles, purpose }, new Date());
    return SENSITIVITIES.filter((category) => denied.includes(category) || (withheld.includes(category) && !permitted.includes(category)));
  };
  const withheldFor = async (patientIds: readonly string[]) => {
    const grants = await granted();
    const ids = [...new Set(patientIds)];
    // All at once: the roles and consents of every patient are each loaded in one batch.
    const withheld = await Promise.all(ids.map(byRoles));
    return new Map(ids.map((patientId, index) => [patientId, (withheld[index] ?? []).filter((category) => !(grants.get(patientId) ?? []).includes(category))]));
  };
  return {
    withheldByRolesFor: byRoles,
    async sql(alias, patientIds, labels = `${alias}."security_labels"`) {
      const withheld = await withheldFor(patientIds);
      if ([...withheld.values()].every((categories) => categories.length === 0)) return null;
      // Patients grouped by what is withheld from them: one condition per group.
      const groups = new Map<string, { categories: Sensitivity[]; patients: string[] }>();
      for (const [patientId, categories] of withheld) {
        const key = categories.join(',');
        const group = groups.get(key) ?? { categories, patients: [] };
        group.patients.push(patientId);
        groups.set(key, group);
      }
      const parts: string[] = [];
      const params: unknown[] = [];
      for (const { categories, patients } of groups.values()) {
        const these = `${alias}."patient_id" in (${patients.map(() => '?::uuid').join(', ')})`;
        params.push(...patients);
        if (categories.length === 0) {
          parts.push(`(${these})`);
          continue;
        }
        // Null labels: a row not labelled yet (written before labels) is shown only where every category is cleared;
        // so is one with a label this API does not know (edited in the database).
        parts.push(`(${these} and ${labels} is not null and ${labels} <@ ?::text[] and not (${labels} && ?::text[]))`);
        params.push(textArrayLiteral(SECURITY_LABEL_CODES), textArrayLiteral(storedCodesOf(categories)));
      }
      return { sql: `(${parts.join(' or ')})`, params };
    },
  };
}

/** The audit trail's reason for rows withheld: their categories, `UNLABELLED` for rows not labelled yet. */
export function withheldReason(labels: readonly (readonly string[] | null)[]): string {
  const categories = new Set<string>();
  for (const row of labels) {
    if (row === null) categories.add('UNLABELLED');
    else for (const category of sensitivitiesOf(row)) categories.add(category);
    if (row?.some((label) => !(SECURITY_LABEL_CODES as readonly string[]).includes(label))) categories.add('UNKNOWN_LABEL');
  }
  return `SENSITIVITY:${[...categories].sort().join(',')}`;
}

/** A row's stored labels as FHIR `meta.security` codings (unknown codes left out; an unlabelled row shows none). */
export function securityLabelCodings(labels: readonly string[] | null | undefined): { system: string; code: string; display: string }[] {
  return (labels ?? []).filter((label): label is SecurityLabelCode => (SECURITY_LABEL_CODES as readonly string[]).includes(label)).sort().map(labelCoding);
}
