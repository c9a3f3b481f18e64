import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { post, startTestStack, TEST_PATIENTS, type TestStack } from './support/stack.js';

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack();
});

afterAll(async () => {
  await stack?.stop();
});

interface Page {
  patients: { edges: { cursor: string; node: { id: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
}

const PAGE = 'query($first: Int, $after: String) { patients(first: $first, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }';

describe('patients pagination', () => {
  it('walks every patient exactly once with cursors', async () => {
    const token = await stack.token('admin');
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 100; page += 1) {
      const response: Awaited<ReturnType<typeof post<Page>>> = await post<Page>(stack.gatewayUrl, PAGE, { token, variables: { first: 25, after } });
      expect(response.body.errors).toBeUndefined();
      const connection = response.body.data?.patients;
      seen.push(...(connection?.edges.map((edge) => edge.node.id) ?? []));
      if (!connection?.pageInfo.hasNextPage) break;
      after = connection.pageInfo.endCursor;
    }
    // An admin sees the records of their own organization.
    const [row] = await stack.api.db!.fork().execute<{ count: string }[]>(
      'select count(*) as count from patient where managing_organization_id = ?',
      [stack.principals.admin.organizationId],
    );
    const inOrganization = Number(row?.count);
    expect(inOrganization).toBeGreaterThan(25);
    expect(inOrganization).toBeLessThan(TEST_PATIENTS);
    expect(seen).toHaveLength(inOrganization);
    expect(new Set(seen).size).toBe(inOrganization);
  });

  it('defaults to 20 patients', async () => {
    const token = await stack.token('admin');
    const response = await post<Page>(stack.gatewayUrl, PAGE, { token });
    expect(response.body.data?.patients.edges).toHaveLength(20);
  });

  it('refuses a page larger than the maximum with BAD_USER_INPUT', async () => {
    const token = await stack.token('admin');
    const response = await post<Page>(stack.gatewayUrl, PAGE, { token, variables: { first: 1001 } });
    expect(response.body.data?.patients ?? null).toBeNull();
    expect(response.body.errors?.[0]?.extensions?.['code']).toBe('BAD_USER_INPUT');
    expect(response.body.errors?.[0]?.message).toContain('1000');
  });

  it('refuses a cursor it did not issue with BAD_USER_INPUT', async () => {
    const token = await stack.token('admin');
    const response = await post<Page>(stack.gatewayUrl, PAGE, { token, variables: { after: 'bm90IGEgY3Vyc29y' } });
    expect(response.body.errors?.[0]?.extensions?.['code']).toBe('BAD_USER_INPUT');
  });

  it('pages a patient\'s observations newest first without gaps or repeats', async () => {
    const token = await stack.token('clinician');
    const id = stack.principals.patient.patientId;
    const query =
      'query($id: ID!, $after: String) { patient(id: $id) { all: observations(first: 100) { edges { node { id effectiveAt } } } page: observations(first: 2, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } } }';
    interface Result {
      patient: {
        all: { edges: { node: { id: string; effectiveAt: string } }[] };
        page: { edges: { node: { id: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
      };
    }
    const walked: string[] = [];
    let after: string | null = null;
    let all: string[] = [];
    for (let page = 0; page < 50; page += 1) {
      const response: Awaited<ReturnType<typeof post<Result>>> = await post<Result>(stack.gatewayUrl, query, { token, variables: { id, after } });
      expect(response.body.errors).toBeUndefined();
      const patient = response.body.data?.patient;
      const times = patient?.all.edges.map((edge) => edge.node.effectiveAt) ?? [];
      expect([...times].sort().reverse()).toEqual(times);
      all = patient?.all.edges.map((edge) => edge.node.id) ?? [];
      walked.push(...(patient?.page.edges.map((edge) => edge.node.id) ?? []));
      if (!patient?.page.pageInfo.hasNextPage) break;
      after = patient.page.pageInfo.endCursor;
    }
    expect(all.length).toBeGreaterThan(2);
    expect(walked).toEqual(all);
  });
});
