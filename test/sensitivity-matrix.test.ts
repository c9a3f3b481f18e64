import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PURPOSE_CODES, PURPOSE_HEADER, ROLES, type PurposeOfUse, type Role } from '../src/auth/index.js';
import { sealRow } from '../src/db/encryption.js';
import { SCOPE_PURPOSES, SCOPE_ROLES, type ConsentScope } from '../src/policy/consent.js';
import { ACCESS_POLICY, decideField } from '../src/policy/index.js';
import { labelsFor, SENSITIVITIES, type Sensitivity } from '../src/policy/sensitivity.js';
import { StudyPseudonyms } from '../src/crypto/index.js';
import { post, startTestStack, TEST_STUDY, type TestStack } from './support/stack.js';

/**
 * The executed matrix of role × purpose × sensitivity label × consent
 * state, generated from the policy: one patient that every role reaches,
 * one condition, medication request and claim per sensitivity category,
 * and for every (role, purpose) that reads one of those lists, each consent
 * state the role can be in: none, a permit of every category for that role
 * and purpose, a deny of every category (treatment roles only: only a
 * treatment consent denies). What each list shows through the gateway, and
 * what a lookup by id (`_entities`, straight to the subgraph) answers, is
 * checked against what the policy and the consent say.
 *
 * Nothing is sampled: a consent state names all six categories at once, so
 * one list and one lookup per (role, purpose, list, state) cover every
 * category. Left out, documented: the researcher's lookups by id (it names
 * rows by study pseudonyms, which `_entities` does not take), and roles
 * whose purposes read none of these lists (their fields are denied; the
 * field matrix, test/access-matrix.test.ts, checks that).
 */

let stack: TestStack;
let patientId: string;
let organizationId: string;
let partnerOrganization: string;
const CODES: Readonly<Record<Sensitivity, string>> = { PSY: 'F32.9', SUD: 'F11.20', HIV: 'B20', SEX: 'Z30.09', STD: 'A54.00', SDV: 'T74.11XA' };
/** Per list, the id of the row of each category. */
const rows: Record<ListName, Record<Sensitivity, string>> = { conditions: {} as Record<Sensitivity, string>, medicationRequests: {} as Record<Sensitivity, string>, claims: {} as Record<Sensitivity, string> };

type ListName = 'conditions' | 'medicationRequests' | 'claims';
const LISTS: Readonly<Record<ListName, { typeName: string; subgraph: 'clinical' | 'billing' }>> = {
  conditions: { typeName: 'Condition', subgraph: 'clinical' },
  medicationRequests: { typeName: 'MedicationRequest', subgraph: 'clinical' },
  claims: { typeName: 'Claim', subgraph: 'billing' },
};

type ConsentState = 'none' | 'permit' | 'deny';

/** The consent scope whose provisions name a role as their actor. */
function scopeOf(role: Role): ConsentScope | null {
  return (Object.keys(SCOPE_ROLES) as ConsentScope[]).find((scope) => SCOPE_ROLES[scope].includes(role)) ?? null;
}

/** What the policy and the consent say a role reading for a purpose sees of a category. */
function expectedVisible(role: Role, purpose: PurposeOfUse, category: Sensitivity, state: ConsentState): boolean {
  if (purpose === 'PATRQT') return true;
  const cleared = (ACCESS_POLICY[role].clearance[purpose] ?? []).includes(category);
  if (state === 'deny') return false;
  return cleared || state === 'permit';
}

/** The cases, generated from the policy. */
function cases(): { role: Role; purpose: PurposeOfUse; list: ListName; state: ConsentState }[] {
  const all: { role: Role; purpose: PurposeOfUse; list: ListName; state: ConsentState }[] = [];
  for (const role of ROLES) {
    for (const purpose of PURPOSE_CODES.filter((code) => ACCESS_POLICY[role].purposes[code] !== undefined)) {
      for (const list of Object.keys(LISTS) as ListName[]) {
        if (decideField([role], 'Patient', list, undefined, purpose).decision.kind === 'deny') continue;
        const scope = scopeOf(role);
        const states: ConsentState[] = ['none'];
        if (scope && role !== 'patient' && SCOPE_PURPOSES[scope].includes(purpose)) states.push('permit');
        if (scope === 'treatment') states.push('deny');
        for (const state of states) all.push({ role, purpose, list, state });
      }
    }
  }
  return all;
}

async function tokenFor(role: Role, purpose: PurposeOfUse): Promise<string> {
  const overrides = { purposes: [purpose] };
  // The nurse on the clinician's account (the same care teams); the patient as themself; the others as seeded, in the patient's organization.
  if (role === 'nurse') return stack.token('nurse', { ...overrides, subject: stack.principals.clinician.subject, organizationId: stack.principals.clinician.organizationId });
  if (role === 'patient') return stack.token('patient', { ...overrides, patientId, organizationId: null });
  if (role === 'partner') return stack.token('partner', overrides);
  return stack.token(role, { ...overrides, ...(ACCESS_POLICY[role].patients === 'organization' && { organizationId }) });
}

/** Puts the consent state in place for a role and purpose (one provision naming every category), and takes it out after. */
async function withConsent<T>(role: Role, purpose: PurposeOfUse, state: ConsentState, run: () => Promise<T>): Promise<T> {
  if (state === 'none') return run();
  const scope = scopeOf(role) as ConsentScope;
  const id = randomUUID();
  const organization = scope === 'research' ? null : scope === 'partner-sharing' ? partnerOrganization : organizationId;
  await stack.sql(
    `insert into consent (id, patient_id, organization_id, scope, status, period_start, decision, actor_role, purposes, sensitivities, source)
     values (?, ?, ?, ?, 'active', now() - interval '1 minute', ?, ?, ?::text[], ?::text[], 'patient')`,
    [id, patientId, organization, scope, state, role, `{${state === 'deny' ? SCOPE_PURPOSES[scope].join(',') : purpose}}`, `{${SENSITIVITIES.join(',')}}`],
  );
  try {
    return await run();
  } finally {
    await stack.sql('delete from consent where id = ?', [id]);
  }
}

beforeAll(async () => {
  stack = await startTestStack({ patients: 40 });
  // The sample patient: consents in force for research and with every partner; put in one of the clinician's care teams.
  patientId = stack.principals.patient.patientId ?? '';
  partnerOrganization = stack.principals.partner.organizationId ?? '';
  const [team] = await stack.sql<{ care_team_id: string }>(
    'select m.care_team_id from care_team_member m join app_user u on u.practitioner_id = m.practitioner_id where u.subject = ? limit 1',
    [stack.principals.clinician.subject],
  );
  await stack.sql('update patient set care_team_id = ? where id = ?', [team?.care_team_id, patientId]);
  const [patient] = await stack.sql<{ managing_organization_id: string }>('select managing_organization_id from patient where id = ?', [patientId]);
  organizationId = patient?.managing_organization_id ?? '';
  await stack.sql(`update organization set shared_categories = array_append(shared_categories, 'medication') where id = ? and not ('medication' = any(shared_categories))`, [partnerOrganization]);
  const sealer = stack.api.sealer!;
  for (const category of SENSITIVITIES) {
    const labels = `{${labelsFor([category]).join(',')}}`;
    const condition = await sealRow('condition', { id: randomUUID(), code: CODES[category], display: `${category} diagnosis`, security_labels: labelsFor([category]) }, sealer);
    await stack.sql(`insert into condition (id, patient_id, code, display, crypto_version, clinical_status, recorded_date, security_labels) values (?, ?, ?, ?, 1, 'active', current_date, ?::text[])`, [
      condition['id'], patientId, condition['code'], condition['display'], labels,
    ]);
    rows.conditions[category] = String(condition['id']);
    rows.medicationRequests[category] = randomUUID();
    await stack.sql(
      `insert into medication_request (id, patient_id, rxnorm_code, display, dosage_instruction, status, authored_on, security_labels) values (?, ?, '000000', ?, 'As directed', 'active', current_date, ?::text[])`,
      [rows.medicationRequests[category], patientId, `${category} medication`, labels],
    );
    const claim = await sealRow('claim', { id: randomUUID(), diagnosis_codes: JSON.stringify([CODES[category]]), security_labels: labelsFor([category]) }, sealer);
    await stack.sql(`insert into claim (id, patient_id, status, total_cents, currency, diagnosis_codes, crypto_version, created_at, security_labels) values (?, ?, 'submitted', 1000, 'USD', ?, 1, now(), ?::text[])`, [
      claim['id'], patientId, claim['diagnosis_codes'], labels,
    ]);
    rows.claims[category] = String(claim['id']);
  }
});

afterAll(async () => {
  await stack?.stop();
});

describe('role × purpose × label × consent state, generated from the policy', () => {
  const generated = cases();

  it('covers every role and purpose that reads a labelled list, with each consent state the role can be in', () => {
    const pairs = new Set(generated.map((entry) => `${entry.role}/${entry.purpose}`));
    expect([...pairs].sort()).toEqual(['billing/HPAYMT', 'clinician/ETREAT', 'clinician/TREAT', 'nurse/ETREAT', 'nurse/TREAT', 'partner/TREAT', 'patient/PATRQT', 'researcher/HRESCH']);
    expect(generated.filter((entry) => entry.state === 'deny').every((entry) => scopeOf(entry.role) === 'treatment')).toBe(true);
  });

  for (const { role, purpose, list, state } of generated) {
    it(`${role} reading for ${purpose}, ${list}, consent ${state}`, async () => {
      const token = await tokenFor(role, purpose);
      const headers = { [PURPOSE_HEADER]: purpose };
      const { typeName, subgraph } = LISTS[list];
      const pseudonyms = role === 'researcher' ? new StudyPseudonyms(stack.api.sealer!.indexKeys) : null;
      const named = (type: string, id: string): string => (pseudonyms ? (pseudonyms.hide(TEST_STUDY, type, id) ?? '') : id);
      await withConsent(role, purpose, state, async () => {
        const response = await post<{ patient: Record<ListName, { edges: { node: { id: string } }[] } | null> | null }>(
          stack.gatewayUrl,
          `query($id: ID!) { patient(id: $id) { ${list}(first: 100) { edges { node { id } } } } }`,
          { token, variables: { id: named('Patient', patientId) }, headers },
        );
        expect(response.body.errors, JSON.stringify(response.body.errors)).toBeUndefined();
        const listed = new Set(response.body.data?.patient?.[list]?.edges.map((edge) => edge.node.id) ?? []);
        const lookups =
          role === 'researcher'
            ? null
            : await post<{ _entities: ({ id: string } | null)[] }>(stack.subgraphUrl(subgraph), `query($r: [_Any!]!) { _entities(representations: $r) { ... on ${typeName} { id } } }`, {
                token,
                variables: { r: SENSITIVITIES.map((category) => ({ __typename: typeName, id: rows[list][category] })) },
                headers,
              });
        const found = lookups?.body.data?._entities ?? [];
        for (const [index, category] of SENSITIVITIES.entries()) {
          const visible = expectedVisible(role, purpose, category, state);
          expect(listed.has(named(typeName, rows[list][category])), `${category} in the list`).toBe(visible);
          if (lookups) expect(found[index]?.id ?? null, `${category} by id`).toBe(visible ? rows[list][category] : null);
        }
      });
    });
  }
});
