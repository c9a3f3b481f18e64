import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyRing, StudyPseudonyms, generateKeyRingDocument } from '../src/crypto/index.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * Research is de-identified per study: a researcher sees per-study
 * pseudonyms instead of record ids, in every subgraph and through
 * _entities; the same record has the same pseudonym within a study, an
 * unrelated one in another study, and a pseudonym resolves back to its
 * record only for the study that issued it. Nothing links it to the
 * identified API.
 */

describe('study pseudonyms', () => {
  const pseudonyms = new StudyPseudonyms(KeyRing.fromDocument(generateKeyRingDocument(true)));

  it('are stable within a study and type, different across studies and types, and reveal only under their own study and type', () => {
    for (let index = 0; index < 200; index += 1) {
      const id = randomUUID();
      const inA = pseudonyms.hide('study-a', 'Patient', id) ?? '';
      expect(inA).toMatch(/^rs1_[A-Za-z0-9_-]{22}$/);
      expect(pseudonyms.hide('study-a', 'Patient', id)).toBe(inA);
      expect(pseudonyms.hide('study-b', 'Patient', id)).not.toBe(inA);
      expect(pseudonyms.hide('study-a', 'Observation', id)).not.toBe(inA);
      expect(pseudonyms.reveal('study-a', 'Patient', inA)).toBe(id);
      expect(pseudonyms.reveal('study-b', 'Patient', inA)).not.toBe(id);
      expect(pseudonyms.reveal('study-a', 'Observation', inA)).not.toBe(id);
    }
  });

  it('refuse what is not a pseudonym: a real id, a truncated or padded one, another key ring\'s', () => {
    const id = randomUUID();
    const shown = pseudonyms.hide('study-a', 'Patient', id) ?? '';
    expect(pseudonyms.reveal('study-a', 'Patient', id)).toBeNull();
    expect(pseudonyms.reveal('study-a', 'Patient', shown.slice(0, -1))).toBeNull();
    expect(pseudonyms.reveal('study-a', 'Patient', `${shown}A`)).toBeNull();
    expect(pseudonyms.hide('study-a', 'Patient', 'not-an-id')).toBeNull();
    const other = new StudyPseudonyms(KeyRing.fromDocument(generateKeyRingDocument(true)));
    expect(other.hide('study-a', 'Patient', id)).not.toBe(shown);
  });
});

let stack: TestStack;
let cohort: string[];

beforeAll(async () => {
  stack = await startTestStack({ patients: 40 });
  cohort = (
    await stack.sql<{ id: string }>(
      `select p.id from patient p where exists (select 1 from consent c where c.patient_id = p.id and c.scope = 'research' and c.status = 'active'
         and c.period_start <= now() and (c.period_end is null or c.period_end > now()))
         and exists (select 1 from observation o where o.patient_id = p.id) order by p.id`,
    )
  ).map((row) => row.id);
  expect(cohort.length).toBeGreaterThan(2);
});

afterAll(async () => {
  await stack?.stop();
});

interface Listed {
  patients: { edges: { node: { id: string; observations: { edges: { node: { id: string; patient: { id: string } | null } }[] } | null } }[] } | null;
}

const LIST = '{ patients(first: 100) { edges { node { id observations(first: 3) { edges { node { id patient { id } } } } } } } }';

async function listAs(study: string) {
  const response = await post<Listed>(stack.gatewayUrl, LIST, { token: await stack.token('researcher', { study }) });
  expect(response.body.errors).toBeUndefined();
  return response.body.data?.patients?.edges.map((edge) => edge.node) ?? [];
}

describe('a researcher', () => {
  it('sees pseudonyms, never a record id, in every subgraph: patients, their observations and the links back to the patient', async () => {
    const rows = await listAs('study-a');
    expect(rows.length).toBeGreaterThanOrEqual(cohort.length);
    const everyId = (await stack.sql<{ id: string }>('select id::text as id from patient union all select id::text from observation')).map((row) => row.id);
    const body = JSON.stringify(rows);
    for (const id of everyId) expect(body).not.toContain(id);
    for (const row of rows) {
      expect(row.id).toMatch(/^rs1_/);
      for (const { node } of row.observations?.edges ?? []) {
        expect(node.id).toMatch(/^rs1_/);
        // The link from an observation to its patient is the patient's pseudonym in the same study: a study can join its own rows.
        expect(node.patient?.id).toBe(row.id);
      }
    }
  });

  it('gets the same pseudonyms in the same study, and unrelated ones in another study', async () => {
    const first = await listAs('study-a');
    const again = await listAs('study-a');
    const other = await listAs('study-b');
    expect(again.map((row) => row.id)).toEqual(first.map((row) => row.id));
    expect(other.length).toBe(first.length);
    const inA = new Set(first.flatMap((row) => [row.id, ...(row.observations?.edges.map((edge) => edge.node.id) ?? [])]));
    const inB = other.flatMap((row) => [row.id, ...(row.observations?.edges.map((edge) => edge.node.id) ?? [])]);
    expect(inB.filter((id) => inA.has(id))).toEqual([]);
  });

  it('resolves a pseudonym only within its own study, and never a record id of the identified API', async () => {
    const [row] = await listAs('study-a');
    const pseudonym = row?.id ?? '';
    const query = 'query($id: ID!) { patient(id: $id) { id gender } }';
    for (const url of [stack.gatewayUrl, stack.subgraphUrl('patient')]) {
      const own = await post<{ patient: { id: string } | null }>(url, query, { token: await stack.token('researcher', { study: 'study-a' }), variables: { id: pseudonym } });
      expect(own.body.errors, url).toBeUndefined();
      expect(own.body.data?.patient?.id, url).toBe(pseudonym);
      const missing = await post(url, query, { token: await stack.token('researcher', { study: 'study-a' }), variables: { id: randomUUID() } });
      const otherStudy = await post(url, query, { token: await stack.token('researcher', { study: 'study-b' }), variables: { id: pseudonym } });
      const realId = await post(url, query, { token: await stack.token('researcher', { study: 'study-a' }), variables: { id: cohort[0] } });
      // Another study's pseudonym and a real id answer exactly as a record that does not exist.
      for (const response of [otherStudy, realId]) {
        expect(response.body.data?.patient ?? null, url).toBeNull();
        expect(response.body.errors?.map((error) => [error.message, error.extensions?.['code']]), url).toEqual(missing.body.errors?.map((error) => [error.message, error.extensions?.['code']]));
      }
    }
  });

  it('resolves pseudonyms through _entities on each subgraph for its own study only', async () => {
    const [row] = await listAs('study-a');
    const patient = row?.id ?? '';
    const observation = row?.observations?.edges[0]?.node.id ?? '';
    const ask = async (study: string, representations: unknown[], selection: string) =>
      post<{ _entities: (Record<string, unknown> | null)[] }>(stack.subgraphUrl('clinical'), `query($r: [_Any!]!) { _entities(representations: $r) { ${selection} } }`, {
        token: await stack.token('researcher', { study }),
        variables: { r: representations },
      });
    const selection = '... on Patient { id observations(first: 1) { edges { node { id } } } } ... on Observation { id code { code } }';
    const representations = [
      { __typename: 'Patient', id: patient },
      { __typename: 'Observation', id: observation },
    ];
    const own = await ask('study-a', representations, selection);
    expect(own.body.errors).toBeUndefined();
    expect(own.body.data?._entities.map((entity) => entity?.['id'])).toEqual([patient, observation]);
    const other = await ask('study-b', representations, selection);
    expect(other.body.data?._entities).toEqual([null, null]);
    // A pseudonym of one type names nothing as another type, and a real id names nothing at all.
    const swapped = await ask('study-a', [{ __typename: 'Observation', id: patient }, { __typename: 'Patient', id: cohort[0] }], selection);
    expect(swapped.body.data?._entities).toEqual([null, null]);
  });

  it('reads no free text and no clinical dates, and carries a study in a token of its own', async () => {
    const token = await stack.token('researcher', { study: 'study-a' });
    const [row] = await listAs('study-a');
    const response = await post<{ patient: { medicationRequests: unknown; allergyIntolerances: unknown } | null }>(
      stack.gatewayUrl,
      'query($id: ID!) { patient(id: $id) { medicationRequests(first: 5) { edges { node { dosageInstruction authoredOn } } } allergyIntolerances(first: 5) { edges { node { reaction } } } } }',
      { token, variables: { id: row?.id } },
    );
    const refused = new Set((response.body.errors ?? []).map((error) => `${String(error.extensions?.['field'])}:${String(error.extensions?.['reason'])}`));
    expect([...refused].sort()).toEqual(expect.arrayContaining(['MedicationRequest.dosageInstruction:ROLE_DENIED', 'MedicationRequest.authoredOn:ROLE_DENIED']));
    const withoutStudy = await post(stack.gatewayUrl, '{ viewer { subject } }', { token: await stack.token('researcher', { study: null }) });
    expect(withoutStudy.status).toBe(401);
    const mixed = await post(stack.gatewayUrl, '{ viewer { subject } }', { token: await stack.token('researcher', { roles: ['researcher', 'clinician'] }) });
    expect(mixed.status).toBe(401);
  });

  it('cannot carry a cursor from one study into another', async () => {
    const page = 'query($after: String) { patients(first: 2, after: $after) { pageInfo { endCursor } } }';
    const first = await post<{ patients: { pageInfo: { endCursor: string } } }>(stack.gatewayUrl, page, { token: await stack.token('researcher', { study: 'study-a' }) });
    const after = first.body.data?.patients.pageInfo.endCursor;
    expect((await post(stack.gatewayUrl, page, { token: await stack.token('researcher', { study: 'study-a' }), variables: { after } })).body.errors).toBeUndefined();
    const crossed = await post(stack.gatewayUrl, page, { token: await stack.token('researcher', { study: 'study-b' }), variables: { after } });
    expect(crossed.body.errors?.[0]?.extensions?.['code']).toBe('BAD_USER_INPUT');
  });
});
