import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../src/auth/index.js';
import { ANY_PURPOSE, decideField } from '../src/policy/index.js';
import type { SubgraphName } from '../src/subgraphs/catalog.js';
import { post, startTestStack, TEST_STUDY, type TestStack } from './support/stack.js';
import { StudyPseudonyms } from '../src/crypto/index.js';

/**
 * Subgraphs trust nobody: called directly, on their own ports, including
 * through _entities (the path around Query.patient), they apply the same
 * row scope and field rules as through the gateway.
 */

let stack: TestStack;
let inScopePatient: string;
let outOfScopePatient: string;

const ENTITIES: { type: string; subgraph: SubgraphName; table: string; field: string }[] = [
  { type: 'Encounter', subgraph: 'clinical', table: 'encounter', field: 'status' },
  { type: 'Condition', subgraph: 'clinical', table: 'condition', field: 'clinicalStatus' },
  { type: 'MedicationRequest', subgraph: 'clinical', table: 'medication_request', field: 'dosageInstruction' },
  { type: 'Observation', subgraph: 'clinical', table: 'observation', field: 'value' },
  { type: 'AllergyIntolerance', subgraph: 'clinical', table: 'allergy_intolerance', field: 'criticality' },
  { type: 'ClinicalNote', subgraph: 'clinical', table: 'clinical_note', field: 'text' },
  { type: 'Coverage', subgraph: 'billing', table: 'coverage', field: 'payer' },
  { type: 'Claim', subgraph: 'billing', table: 'claim', field: 'diagnosisCodes' },
  { type: 'Invoice', subgraph: 'billing', table: 'invoice', field: 'status' },
  { type: 'Payment', subgraph: 'billing', table: 'payment', field: 'method' },
  { type: 'Patient', subgraph: 'patient', table: 'patient', field: 'mrn' },
  { type: 'Patient', subgraph: 'clinical', table: 'patient', field: 'clinicalNotes { edges { node { id } } }' },
  { type: 'Patient', subgraph: 'billing', table: 'patient', field: 'claims { edges { node { id } } }' },
];

async function rowOf(table: string, patientId: string): Promise<string> {
  const column = table === 'patient' ? 'id' : 'patient_id';
  const [row] = await stack.sql<{ id: string }>(`select id from "${table}" where "${column}" = ? order by id limit 1`, [patientId]);
  if (!row) throw new Error(`no ${table} row for the patient`);
  return row.id;
}

async function entity(role: Role, subgraph: SubgraphName, type: string, id: string, field: string) {
  const response = await post<{ _entities: (Record<string, unknown> | null)[] }>(
    stack.subgraphUrl(subgraph),
    `query($r: [_Any!]!) { _entities(representations: $r) { ... on ${type} { id ${field} } } }`,
    { token: await stack.token(role), variables: { r: [{ __typename: type, id }] } },
  );
  return { value: response.body.data?._entities[0] ?? null, errors: response.body.errors ?? [] };
}

beforeAll(async () => {
  stack = await startTestStack({ patients: 60 });
  inScopePatient = stack.principals.patient.patientId ?? '';
  // A patient of the same organization outside the sample clinician's care teams.
  const [outside] = await stack.sql<{ id: string }>(
    `select p.id from patient p where p.managing_organization_id = ? and (p.care_team_id is null or p.care_team_id not in
       (select m.care_team_id from care_team_member m join app_user u on u.practitioner_id = m.practitioner_id where u.subject = ?))
     and exists (select 1 from encounter e where e.patient_id = p.id) and exists (select 1 from claim c where c.patient_id = p.id)
     and exists (select 1 from clinical_note n where n.patient_id = p.id) and exists (select 1 from payment x where x.patient_id = p.id)
     and exists (select 1 from allergy_intolerance a where a.patient_id = p.id) and exists (select 1 from medication_request r where r.patient_id = p.id)
     order by p.id limit 1`,
    [stack.principals.clinician.organizationId, stack.principals.clinician.subject],
  );
  outOfScopePatient = outside?.id ?? '';
  expect(outOfScopePatient).not.toBe('');
});

afterAll(async () => {
  await stack?.stop();
});

describe('an _entities query sent straight to a subgraph', () => {
  for (const { type, subgraph, table, field } of ENTITIES) {
    it(`resolves a ${type} in the ${subgraph} subgraph only inside the caller's row scope, and applies the field rule`, async () => {
      const fieldName = field.split(' ')[0] ?? field;
      const allowed = decideField(['clinician'], type, fieldName, undefined, ANY_PURPOSE).decision.kind !== 'deny';
      const inside = await entity('clinician', subgraph, type, await rowOf(table, inScopePatient), field);
      expect(inside.value).not.toBeNull();
      if (allowed) {
        expect(inside.errors).toEqual([]);
        expect(inside.value?.[fieldName]).not.toBeNull();
      } else {
        expect(inside.value?.[fieldName]).toBeNull();
        expect(inside.errors[0]?.extensions?.['code']).toBe('FORBIDDEN');
      }
      const outside = await entity('clinician', subgraph, type, await rowOf(table, outOfScopePatient), field);
      expect(outside.value).toBeNull();
      expect(outside.errors).toEqual([]);
    });
  }

  it('refuses a nurse the text of a clinical note of her own care team', async () => {
    const note = await entity('nurse', 'clinical', 'ClinicalNote', await rowOf('clinical_note', inScopePatient), 'text');
    expect(note.value?.['text']).toBeNull();
    expect(note.errors[0]?.extensions).toMatchObject({ code: 'FORBIDDEN', reason: 'ROLE_DENIED', field: 'ClinicalNote.text' });
  });

  it('shows no directory rows to an integrator', async () => {
    const [practitioner] = await stack.sql<{ id: string }>('select id from practitioner limit 1');
    const result = await entity('integrator', 'patient', 'Practitioner', practitioner?.id ?? '', 'npi');
    expect(result.value).toBeNull();
  });
});

describe('row scopes on the patient subgraph', () => {
  async function listed(role: Role): Promise<string[]> {
    const ids: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 20; page += 1) {
      const response: Awaited<ReturnType<typeof post<{ patients: { edges: { node: { id: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } }>>> =
        await post(stack.subgraphUrl('patient'), 'query($after: String) { patients(first: 50, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } }', {
          token: await stack.token(role),
          variables: { after },
        });
      const connection = response.body.data?.patients;
      ids.push(...(connection?.edges.map((edge) => edge.node.id) ?? []));
      if (!connection?.pageInfo.hasNextPage) break;
      after = connection.pageInfo.endCursor;
    }
    return ids.sort();
  }

  const consented = (scope: string, organization: string | null) =>
    stack.sql<{ id: string }>(
      `select p.id from patient p where exists (select 1 from consent c where c.patient_id = p.id and c.scope = ? and c.status = 'active'
         and ${organization ? 'c.organization_id = ?' : 'c.organization_id is null'} and c.period_start <= now() and (c.period_end is null or c.period_end > now())) order by p.id`,
      organization ? [scope, organization] : [scope],
    );

  it('lists a patient only their own record, and hides every other one as not found', async () => {
    expect(await listed('patient')).toEqual([inScopePatient]);
    const other = await post<{ patient: unknown }>(stack.subgraphUrl('patient'), 'query($id: ID!) { patient(id: $id) { id } }', {
      token: await stack.token('patient'),
      variables: { id: outOfScopePatient },
    });
    expect(other.body.data?.patient).toBeNull();
    expect(other.body.errors?.[0]?.extensions?.['code']).toBe('NOT_FOUND');
  });

  it('lists a clinician exactly the patients of their care teams', async () => {
    const expected = await stack.sql<{ id: string }>(
      `select p.id from patient p join care_team_member m on m.care_team_id = p.care_team_id join app_user u on u.practitioner_id = m.practitioner_id
       where u.subject = ? order by p.id`,
      [stack.principals.clinician.subject],
    );
    expect(await listed('clinician')).toEqual(expected.map((row) => row.id));
  });

  it('lists a partner exactly the patients with a consent in force to share with it', async () => {
    const expected = await consented('partner-sharing', stack.principals.partner.organizationId);
    expect(expected.length).toBeGreaterThan(0);
    expect(await listed('partner')).toEqual(expected.map((row) => row.id));
  });

  it('lists a researcher exactly the research cohort', async () => {
    const expected = await consented('research', null);
    expect(expected.length).toBeGreaterThan(0);
    // A researcher sees its study's pseudonyms; under the study's key they are exactly the cohort's ids.
    const pseudonyms = new StudyPseudonyms(stack.api.sealer!.indexKeys);
    const shown = await listed('researcher');
    expect(shown.filter((id) => expected.some((row) => row.id === id))).toEqual([]);
    expect(shown.map((id) => pseudonyms.reveal(TEST_STUDY, 'Patient', id) ?? 'not a pseudonym').sort()).toEqual(expected.map((row) => row.id));
  });

  it('lists an integrator nothing', async () => {
    const response = await post<{ patients: unknown }>(stack.subgraphUrl('patient'), '{ patients { edges { node { id } } } }', {
      token: await stack.token('integrator'),
    });
    expect(response.body.data?.patients).toBeNull();
    expect(response.body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
  });
});
