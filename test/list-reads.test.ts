import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SUBGRAPH_NAMES } from '../src/subgraphs/catalog.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * The list path of issue 16: patients(first: N) reads plain rows (no ORM
 * entities), seals page cursors only when asked, and the subgraphs answer
 * without Apollo's cache-control plugin. Each must change nothing a caller
 * sees: the same values as the per-record path, working cursors, and
 * responses no cache may keep.
 */
let stack: TestStack;

const FIELDS = `id mrn name { given family text } birthDate ageGroup gender ssn phone email
  address { line city state postalCode } managingOrganization { id name } careTeam { id name members { id } }`;

beforeAll(async () => {
  stack = await startTestStack({ patients: 40 });
});

afterAll(async () => {
  await stack?.stop();
});

describe('a list read as plain rows', () => {
  /** Per row of a response: the (field, code, reason) of each error under it. */
  function errorsByRow(errors: { path?: (string | number)[]; extensions?: Record<string, unknown> }[] | undefined, rowAt: (path: (string | number)[]) => number | null) {
    const byRow = new Map<number, string[]>();
    for (const error of errors ?? []) {
      const row = rowAt(error.path ?? []);
      if (row === null) continue;
      byRow.set(row, [...(byRow.get(row) ?? []), `${String(error.extensions?.['field'])} ${String(error.extensions?.['code'])} ${String(error.extensions?.['reason'])}`].sort());
    }
    return byRow;
  }

  for (const role of ['clinician', 'billing', 'admin'] as const) {
    it(`gives ${role} every field of every row exactly as the lookup of that one patient does (an entity): values, masks and refusals`, async () => {
      const token = await stack.token(role);
      const list = await post<{ patients: { edges: { node: Record<string, unknown> }[] } }>(stack.gatewayUrl, `{ patients(first: 25) { edges { node { ${FIELDS} } } } }`, { token });
      const rows = list.body.data?.patients.edges.map((edge) => edge.node) ?? [];
      expect(rows.length).toBeGreaterThan(3);
      const listErrors = errorsByRow(list.body.errors, (path) => (typeof path[2] === 'number' ? path[2] : null));
      for (const [index, row] of rows.entries()) {
        const one = await post<{ patient: Record<string, unknown> }>(stack.gatewayUrl, `query($id: ID!) { patient(id: $id) { ${FIELDS} } }`, { token, variables: { id: row['id'] } });
        expect(one.body.data?.patient).toEqual(row);
        expect(errorsByRow(one.body.errors, () => 0).get(0) ?? []).toEqual(listErrors.get(index) ?? []);
      }
      // Something was read on each row: a relation followed by id (the care team a clinician's scope goes through), or a decrypted value.
      if (role === 'clinician') expect(rows.every((row) => typeof (row['careTeam'] as { id?: unknown } | null)?.id === 'string')).toBe(true);
      if (role === 'billing') expect(rows.every((row) => typeof row['mrn'] === 'string' && row['mrn'].length > 0)).toBe(true);
    });
  }

  it('seals cursors only for the clients that ask, and those cursors page on without gaps or repeats', async () => {
    const token = await stack.token('admin');
    const ids: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 10; page++) {
      const response: Awaited<ReturnType<typeof post<{ patients: { edges: { node: { id: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } }>>> = await post(
        stack.gatewayUrl,
        'query($after: String) { patients(first: 7, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } }',
        { token, variables: { after } },
      );
      expect(response.body.errors).toBeUndefined();
      const connection = response.body.data?.patients;
      ids.push(...(connection?.edges.map((edge) => edge.node.id) ?? []));
      if (!connection?.pageInfo.hasNextPage) break;
      expect(connection.pageInfo.endCursor).toEqual(expect.any(String));
      after = connection.pageInfo.endCursor;
    }
    const all = await post<{ patients: { edges: { node: { id: string }; cursor: string }[] } }>(stack.gatewayUrl, '{ patients(first: 100) { edges { cursor node { id } } } }', { token });
    const expected = all.body.data?.patients.edges.map((edge) => edge.node.id) ?? [];
    expect(ids).toEqual(expected);
    // An edge's cursor is the same sealed position as the page's endCursor would be: both continue after that row.
    const third = all.body.data?.patients.edges[2];
    const next = await post<{ patients: { edges: { node: { id: string } }[] } }>(stack.gatewayUrl, 'query($after: String) { patients(first: 1, after: $after) { edges { node { id } } } }', {
      token,
      variables: { after: third?.cursor },
    });
    expect(next.body.data?.patients.edges[0]?.node.id).toBe(expected[3]);
  });
});

describe('responses carry PHI and say so to caches', () => {
  it('answers no-store from the gateway and from every subgraph, for data and for errors', async () => {
    const token = await stack.token('billing');
    const targets = [stack.gatewayUrl, ...SUBGRAPH_NAMES.map((name) => stack.subgraphUrl(name))];
    for (const url of targets) {
      const ok = await post(url, '{ __typename }', { token });
      expect(ok.status, url).toBe(200);
      expect(ok.headers.get('cache-control'), url).toBe('no-store');
      const refused = await post(url, '{ nonsense }', { token });
      expect(refused.headers.get('cache-control'), url).toBe('no-store');
    }
  });
});
