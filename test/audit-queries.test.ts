import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { post, startTestStack, type TestStack } from './support/stack.js';

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 20 });
  const patientId = stack.principals.patient.patientId;
  // Reads to account for: a clinician's chart read, a billing read with a denied field, the patient's own read.
  await post(stack.gatewayUrl, 'query Chart($id: ID!) { patient(id: $id) { name { text } ssn clinicalNotes { edges { node { text } } } } }', {
    token: await stack.token('clinician'),
    variables: { id: patientId },
  });
  await post(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { name { text } clinicalNotes { edges { node { id } } } } }', {
    token: await stack.token('billing'),
    variables: { id: patientId },
  });
  await post(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { name { text } } }', { token: await stack.token('patient'), variables: { id: patientId } });
});

afterAll(async () => {
  await stack?.stop();
});

interface Events {
  auditEvents: {
    edges: { cursor: string; node: { subject: string; roles: string[]; patientId: string; entityType: string; operationName: string | null; fields: { field: string; outcome: string; reason: string | null }[] } }[];
    pageInfo: { hasNextPage: boolean; endCursor: string | null };
  } | null;
}

const EVENTS = `query($filter: AuditEventFilter, $first: Int, $after: String) {
  auditEvents(filter: $filter, first: $first, after: $after) {
    edges { cursor node { subject roles patientId entityType operationName fields { field outcome reason } } }
    pageInfo { hasNextPage endCursor }
  }
}`;

describe('the audit query API', () => {
  it('lets an auditor list who read a patient, filtered by reader, field and outcome', async () => {
    const token = await stack.token('auditor', { organizationId: stack.principals.billing.organizationId });
    const patientId = stack.principals.patient.patientId;
    const all = await post<Events>(stack.gatewayUrl, EVENTS, { token, variables: { filter: { patientId } } });
    expect(all.body.errors).toBeUndefined();
    const subjects = new Set(all.body.data?.auditEvents?.edges.map((edge) => edge.node.subject));
    expect(subjects).toEqual(new Set([stack.principals.clinician.subject, stack.principals.billing.subject, stack.principals.patient.subject]));

    const byClinician = await post<Events>(stack.gatewayUrl, EVENTS, { token, variables: { filter: { patientId, subject: stack.principals.clinician.subject } } });
    const fields = byClinician.body.data?.auditEvents?.edges.flatMap((edge) => edge.node.fields) ?? [];
    expect(fields).toEqual(expect.arrayContaining([{ field: 'Patient.ssn', outcome: 'masked', reason: null }, { field: 'Patient.name', outcome: 'allowed', reason: null }]));
    expect(byClinician.body.data?.auditEvents?.edges.some((edge) => edge.node.operationName === 'Chart')).toBe(true);

    const denied = await post<Events>(stack.gatewayUrl, EVENTS, { token, variables: { filter: { patientId, outcome: 'denied' } } });
    const deniedNodes = denied.body.data?.auditEvents?.edges.map((edge) => edge.node) ?? [];
    expect(deniedNodes.length).toBeGreaterThan(0);
    expect(deniedNodes.every((node) => node.subject === stack.principals.billing.subject)).toBe(true);
    expect(deniedNodes.flatMap((node) => node.fields)).toEqual(expect.arrayContaining([{ field: 'Patient.clinicalNotes', outcome: 'denied', reason: 'ROLE_DENIED' }]));
  });

  it('answers an empty page, not an error, for a patient id that is not a UUID', async () => {
    const token = await stack.token('auditor', { organizationId: stack.principals.billing.organizationId });
    const response = await post<Events>(stack.gatewayUrl, EVENTS, { token, variables: { filter: { patientId: 'not-a-uuid' } } });
    expect(response.body.errors).toBeUndefined();
    expect(response.body.data?.auditEvents?.edges).toEqual([]);
  });

  it('pages newest first with cursors', async () => {
    const token = await stack.token('auditor', { organizationId: stack.principals.billing.organizationId });
    const first = await post<Events>(stack.gatewayUrl, EVENTS, { token, variables: { first: 2 } });
    const page = first.body.data?.auditEvents;
    expect(page?.edges).toHaveLength(2);
    expect(page?.pageInfo.hasNextPage).toBe(true);
    const next = await post<Events>(stack.gatewayUrl, EVENTS, { token, variables: { first: 2, after: page?.pageInfo.endCursor } });
    const firstCursors = new Set(page?.edges.map((edge) => edge.cursor));
    expect(next.body.data?.auditEvents?.edges.some((edge) => firstCursors.has(edge.cursor))).toBe(false);
  });

  it('lists each patient of a list read as an event of its own: found by patient, paged one by one, none twice', async () => {
    const billing = stack.principals.billing;
    const list = await post<{ patients: { edges: { node: { id: string } }[] } }>(stack.gatewayUrl, 'query BillingList { patients(first: 4) { edges { node { id gender birthDate } } } }', {
      token: await stack.token('billing'),
    });
    const ids = list.body.data?.patients.edges.map((edge) => edge.node.id) ?? [];
    expect(ids).toHaveLength(4);
    // The four events are stored in one row; an auditor still sees them one by one.
    const [stored] = await stack.sql<{ rows: number }>("select count(*)::int as rows from audit_event where operation_name = 'BillingList' and entity_type = 'Patient'");
    expect(stored?.rows).toBe(1);
    const token = await stack.token('auditor', { organizationId: billing.organizationId });

    const third = await post<Events>(stack.gatewayUrl, EVENTS, { token, variables: { filter: { patientId: ids[2], subject: billing.subject } } });
    const found = third.body.data?.auditEvents?.edges.map((edge) => edge.node).filter((node) => node.operationName === 'BillingList') ?? [];
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ patientId: ids[2], entityType: 'Patient' });
    expect(found[0]?.fields.map((field) => field.field).sort()).toEqual(['Patient.birthDate', 'Patient.gender']);

    const paged: string[] = [];
    let after: string | null | undefined = null;
    for (let page = 0; page < ids.length; page += 1) {
      const response: { body: { data?: Events | null } } = await post<Events>(stack.gatewayUrl, EVENTS, {
        token,
        variables: { first: 1, after, filter: { subject: billing.subject, field: 'Patient.birthDate' } },
      });
      const events = response.body.data?.auditEvents;
      expect(events?.edges).toHaveLength(1);
      expect(events?.edges[0]?.node.operationName).toBe('BillingList');
      paged.push(events?.edges[0]?.node.patientId ?? '');
      after = events?.pageInfo.endCursor;
    }
    expect([...paged].sort()).toEqual([...ids].sort());
  });

  it('is refused to every role but auditor', async () => {
    for (const role of ['clinician', 'admin', 'billing', 'patient'] as const) {
      const response = await post<Events>(stack.gatewayUrl, EVENTS, { token: await stack.token(role) });
      expect(response.body.data?.auditEvents ?? null, role).toBeNull();
      expect(response.body.errors?.[0]?.extensions?.['code'], role).toBe('FORBIDDEN');
    }
  });
});

describe('the accounting of disclosures', () => {
  it('tells a patient who read their record, by role and organization, which kinds of data and when, without internal ids', async () => {
    const response = await post<{ myDisclosures: { edges: { node: { roles: string[]; organization: string | null; dataKinds: string[]; action: string; emergency: boolean } }[] } }>(
      stack.gatewayUrl,
      '{ myDisclosures { edges { node { recordedAt roles organization dataKinds action emergency } } } }',
      { token: await stack.token('patient') },
    );
    expect(response.body.errors).toBeUndefined();
    const disclosures = response.body.data?.myDisclosures.edges.map((edge) => edge.node) ?? [];
    const clinician = disclosures.find((disclosure) => disclosure.roles.includes('clinician') && disclosure.dataKinds.includes('ssn'));
    expect(clinician).toMatchObject({ action: 'read', emergency: false });
    expect(clinician?.organization).toMatch(/\w/);
    expect(clinician?.dataKinds).toEqual(expect.arrayContaining(['name', 'ssn']));
    expect(disclosures.some((disclosure) => disclosure.roles.includes('billing'))).toBe(true);
    expect(disclosures.every((disclosure) => !disclosure.dataKinds.includes('clinicalNote') || disclosure.roles.includes('clinician'))).toBe(true);
    expect(disclosures.some((disclosure) => disclosure.roles.includes('patient'))).toBe(false);
    const text = JSON.stringify(response.body);
    expect(text).not.toContain(stack.principals.clinician.subject);
    expect(text).not.toContain(stack.principals.billing.subject);
  });

  it('is refused to other roles', async () => {
    const response = await post(stack.gatewayUrl, '{ myDisclosures { edges { node { recordedAt } } } }', { token: await stack.token('clinician') });
    expect(response.body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
  });
});
