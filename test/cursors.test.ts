import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CursorSealer, KeyRing, generateKeyRingDocument, type CursorBinding } from '../src/crypto/index.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * Cursors are reads too: every cursor the API issues is sealed and bound to
 * its list, parent, filter and caller. A cursor made or edited by a client,
 * or issued for another list, patient, filter or caller, is refused with
 * BAD_USER_INPUT before any row is looked up, on the gateway and on every
 * subgraph port.
 */

describe('a sealed cursor', () => {
  const ring = KeyRing.fromDocument(generateKeyRingDocument(true));
  const binding: CursorBinding = { list: 'Query.patients', parent: '', filter: '', caller: 'user-1' };

  it('opens only for the binding it was sealed for', () => {
    const sealer = new CursorSealer(ring, 60);
    const cursor = sealer.seal(binding, ['a']);
    expect(sealer.open(binding, cursor, 1)).toEqual(['a']);
    for (const other of [{ list: 'Patient.observations' }, { parent: 'p' }, { filter: '[["gender","male"]]' }, { caller: 'user-2' }]) {
      expect(sealer.open({ ...binding, ...other }, cursor, 1), JSON.stringify(other)).toBeNull();
    }
    // Parts cannot be shifted between fields of the binding.
    const shifted = sealer.seal({ ...binding, list: 'a|b', parent: 'c' }, ['x']);
    expect(sealer.open({ ...binding, list: 'a', parent: 'b|c' }, shifted, 1)).toBeNull();
  });

  it('refuses a flipped byte, a cut cursor, another key, the wrong shape and an expired cursor', () => {
    let now = 1_000_000_000_000;
    const sealer = new CursorSealer(ring, 60, () => now);
    const cursor = sealer.seal(binding, ['a']);
    const bytes = Buffer.from(cursor, 'base64url');
    for (let index = 0; index < bytes.length; index += 1) {
      const flipped = Buffer.from(bytes);
      flipped[index] = (flipped[index] ?? 0) ^ 0x01;
      expect(sealer.open(binding, flipped.toString('base64url'), 1)).toBeNull();
    }
    expect(sealer.open(binding, cursor.slice(0, -2), 1)).toBeNull();
    expect(sealer.open(binding, cursor, 2)).toBeNull();
    expect(sealer.open(binding, `${cursor}!`, 1)).toBeNull();
    expect(sealer.open(binding, 'x'.repeat(10_000), 1)).toBeNull();
    const otherRing = new CursorSealer(KeyRing.fromDocument(generateKeyRingDocument(true)), 60, () => now);
    expect(otherRing.open(binding, cursor, 1)).toBeNull();
    now += 59_000;
    expect(sealer.open(binding, cursor, 1)).toEqual(['a']);
    now += 1_000;
    expect(sealer.open(binding, cursor, 1)).toBeNull();
  });

  it('reveals nothing of the position it holds', () => {
    const sealer = new CursorSealer(ring, 60);
    const id = '0b4e4a36-8f7b-4d35-9c51-9c1d2a1f0e11';
    const cursor = sealer.seal(binding, [id]);
    expect(Buffer.from(cursor, 'base64url').toString('latin1')).not.toContain(id.slice(0, 8));
    expect(sealer.seal(binding, [id])).not.toBe(cursor);
  });
});

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 40 });
});

afterAll(async () => {
  await stack?.stop();
});

type Errors = { message: string; extensions?: Record<string, unknown> }[] | undefined;

function expectRefused(errors: Errors, label: string): void {
  expect(errors?.map((error) => error.extensions?.['code']), label).toEqual(['BAD_USER_INPUT']);
  expect(errors?.[0]?.message, label).toContain('"after"');
}

interface PatientPage {
  patients: { edges: { node: { id: string } }[]; pageInfo: { endCursor: string | null; hasNextPage: boolean } } | null;
}

const PATIENTS = 'query($after: String, $filter: PatientFilter) { patients(first: 2, after: $after, filter: $filter) { edges { node { id } } pageInfo { endCursor hasNextPage } } }';

async function patientsPage(url: string, token: string, variables: Record<string, unknown>) {
  return post<PatientPage>(url, PATIENTS, { token, variables });
}

describe('cursors of Query.patients', () => {
  it('continues the list it was issued for, on the gateway and on the patient subgraph', async () => {
    const token = await stack.token('admin');
    for (const url of [stack.gatewayUrl, stack.subgraphUrl('patient')]) {
      const first = await patientsPage(url, token, {});
      const after = first.body.data?.patients?.pageInfo.endCursor;
      const second = await patientsPage(url, token, { after });
      expect(second.body.errors, url).toBeUndefined();
      const ids = [...(first.body.data?.patients?.edges ?? []), ...(second.body.data?.patients?.edges ?? [])].map((edge) => edge.node.id);
      expect(new Set(ids).size, url).toBe(4);
    }
  });

  it('refuses a cursor the client made itself (the old base64 of a row id), on every port that serves the list', async () => {
    const token = await stack.token('admin');
    const [row] = await stack.sql<{ id: string }>('select id from patient order by id limit 1');
    const forged = Buffer.from(JSON.stringify([row?.id])).toString('base64url');
    for (const url of [stack.gatewayUrl, stack.subgraphUrl('patient')]) {
      const response = await patientsPage(url, token, { after: forged });
      expectRefused(response.body.errors, url);
      expect(response.body.data?.patients ?? null).toBeNull();
    }
  });

  it('refuses a cursor issued for another filter, so a filter cannot be swapped under a position', async () => {
    // Billing may filter by gender (it reads gender in full); an admin may not use that filter at all.
    const token = await stack.token('billing');
    const male = await patientsPage(stack.gatewayUrl, token, { filter: { gender: 'male' } });
    const after = male.body.data?.patients?.pageInfo.endCursor;
    expect(after).toBeTruthy();
    expect((await patientsPage(stack.gatewayUrl, token, { after, filter: { gender: 'male' } })).body.errors).toBeUndefined();
    expectRefused((await patientsPage(stack.gatewayUrl, token, { after, filter: { gender: 'female' } })).body.errors, 'other filter');
    expectRefused((await patientsPage(stack.gatewayUrl, token, { after })).body.errors, 'no filter');
  });

  it('refuses a cursor issued to another caller, even of the same role and organization', async () => {
    const mine = await patientsPage(stack.gatewayUrl, await stack.token('admin'), {});
    const after = mine.body.data?.patients?.pageInfo.endCursor;
    const someoneElse = await stack.token('admin', { subject: 'another-admin-of-the-same-organization' });
    expectRefused((await patientsPage(stack.gatewayUrl, someoneElse, { after })).body.errors, 'other caller');
  });
});

interface NestedPage {
  patient: Record<string, { edges: { node: { id: string } }[]; pageInfo: { endCursor: string | null } } | null> | null;
}

async function nestedPage(token: string, patientId: string, list: string, after: string | null | undefined) {
  return post<NestedPage>(
    stack.gatewayUrl,
    `query($id: ID!, $after: String) { patient(id: $id) { list: ${list}(first: 1, after: $after) { edges { node { id } } pageInfo { endCursor } } } }`,
    { token, variables: { id: patientId, after } },
  );
}

async function nestedViaEntities(token: string, patientId: string, list: string, after: string | null | undefined) {
  return post<{ _entities: ({ list: { edges: { node: { id: string } }[] } | null } | null)[] }>(
    stack.subgraphUrl('clinical'),
    `query($r: [_Any!]!, $after: String) { _entities(representations: $r) { ... on Patient { list: ${list}(first: 1, after: $after) { edges { node { id } } } } } }`,
    { token, variables: { r: [{ __typename: 'Patient', id: patientId }], after } },
  );
}

describe('cursors of nested lists', () => {
  /** Two patients of the sample clinician's care teams, each with a few observations and conditions. */
  async function twoPatientsWithObservations(): Promise<[string, string]> {
    const rows = await stack.sql<{ id: string }>(
      `select p.id from patient p where p.care_team_id in
         (select m.care_team_id from care_team_member m join app_user u on u.practitioner_id = m.practitioner_id where u.subject = ?)
         and (select count(*) from observation o where o.patient_id = p.id) > 2
         and (select count(*) from condition c where c.patient_id = p.id) > 1 order by p.id limit 2`,
      [stack.principals.clinician.subject],
    );
    if (rows.length < 2) throw new Error('the seed has no two patients of the clinician with observations and conditions');
    return [rows[0]!.id, rows[1]!.id];
  }

  it('refuses a cursor of one patient\'s list for another patient, and of one list for another list', async () => {
    const [first, second] = await twoPatientsWithObservations();
    const token = await stack.token('clinician');
    const page = await nestedPage(token, first, 'observations', null);
    expect(page.body.errors).toBeUndefined();
    const after = page.body.data?.patient?.['list']?.pageInfo.endCursor;
    expect(after).toBeTruthy();
    expect((await nestedPage(token, first, 'observations', after)).body.errors).toBeUndefined();
    expectRefused((await nestedPage(token, second, 'observations', after)).body.errors, 'another patient');
    expectRefused((await nestedPage(token, first, 'conditions', after)).body.errors, 'another list');
    // Straight to the clinical subgraph, through _entities: the same refusal.
    expect((await nestedViaEntities(token, first, 'observations', after)).body.errors).toBeUndefined();
    expectRefused((await nestedViaEntities(token, second, 'observations', after)).body.errors, 'another patient via _entities');
  });

  it('refuses a top-level cursor in a nested list, and a forged row id that would locate another patient\'s row', async () => {
    const [first, second] = await twoPatientsWithObservations();
    const token = await stack.token('clinician');
    const top = await patientsPage(stack.gatewayUrl, token, {});
    expectRefused((await nestedPage(token, first, 'observations', top.body.data?.patients?.pageInfo.endCursor)).body.errors, 'top-level cursor');
    const [foreignRow] = await stack.sql<{ id: string }>('select id from observation where patient_id = ? limit 1', [second]);
    const forged = Buffer.from(JSON.stringify([foreignRow?.id])).toString('base64url');
    expectRefused((await nestedPage(token, first, 'observations', forged)).body.errors, 'forged row id');
    expectRefused((await nestedViaEntities(token, first, 'observations', forged)).body.errors, 'forged row id via _entities');
  });
});

describe('cursors of the audit trail', () => {
  const EVENTS = 'query($after: String, $filter: AuditEventFilter) { auditEvents(first: 1, after: $after, filter: $filter) { pageInfo { endCursor } } }';
  const DISCLOSURES = 'query($after: String) { myDisclosures(first: 1, after: $after) { pageInfo { endCursor } } }';

  it('binds an auditor\'s cursor to its filter and to the auditor', async () => {
    const patientId = stack.principals.patient.patientId;
    await post(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { name { text } } }', { token: await stack.token('billing'), variables: { id: patientId } });
    await post(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { mrn } }', { token: await stack.token('billing'), variables: { id: patientId } });
    const token = await stack.token('auditor', { organizationId: stack.principals.billing.organizationId });
    const page = await post<{ auditEvents: { pageInfo: { endCursor: string | null } } }>(stack.gatewayUrl, EVENTS, { token, variables: { filter: { outcome: 'allowed' } } });
    const after = page.body.data?.auditEvents.pageInfo.endCursor;
    expect(after).toBeTruthy();
    expect((await post(stack.gatewayUrl, EVENTS, { token, variables: { after, filter: { outcome: 'allowed' } } })).body.errors).toBeUndefined();
    expectRefused((await post(stack.gatewayUrl, EVENTS, { token, variables: { after, filter: { outcome: 'denied' } } })).body.errors, 'other filter');
    const otherAuditor = await stack.token('auditor', { subject: 'another-auditor', organizationId: stack.principals.billing.organizationId });
    expectRefused((await post(stack.gatewayUrl, EVENTS, { token: otherAuditor, variables: { after, filter: { outcome: 'allowed' } } })).body.errors, 'other auditor');
    expectRefused((await post(stack.subgraphUrl('patient'), EVENTS, { token, variables: { after: Buffer.from('["999999","1"]').toString('base64url') } })).body.errors, 'forged');
  });

  it('refuses a forged or foreign cursor in a patient\'s accounting of disclosures', async () => {
    const token = await stack.token('patient');
    const forged = Buffer.from('["999999","1"]').toString('base64url');
    expectRefused((await post(stack.gatewayUrl, DISCLOSURES, { token, variables: { after: forged } })).body.errors, 'forged');
    const auditorPage = await post<{ auditEvents: { pageInfo: { endCursor: string | null } } }>(stack.gatewayUrl, EVENTS, {
      token: await stack.token('auditor', { organizationId: stack.principals.billing.organizationId }),
      variables: {},
    });
    expectRefused((await post(stack.gatewayUrl, DISCLOSURES, { token, variables: { after: auditorPage.body.data?.auditEvents.pageInfo.endCursor } })).body.errors, 'another list');
  });
});
