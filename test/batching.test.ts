import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { post, startTestStack, type TestStack } from './support/stack.js';

let stack: TestStack;

const PATIENTS = 400;
let organizationId: string;

beforeAll(async () => {
  // Thresholds out of reach: an access alert is one more (conditional) statement, not data loading.
  const unreachable = String(Number.MAX_SAFE_INTEGER);
  stack = await startTestStack({
    patients: PATIENTS,
    env: { ALERT_DISTINCT_PATIENTS_PER_HOUR: unreachable, ALERT_DENIED_FIELDS_PER_HOUR: unreachable, ALERT_SSN_READS_PER_HOUR: unreachable },
  });
  // The organization holding the most records: its billing staff see over 100 patients.
  const [largest] = await stack.api.db!.fork().execute<{ id: string; patients: string }[]>(
    'select managing_organization_id as id, count(*) as patients from patient group by 1 order by 2 desc limit 1',
  );
  organizationId = largest!.id;
  expect(Number(largest!.patients)).toBeGreaterThanOrEqual(100);
});

afterAll(async () => {
  await stack?.stop();
});

const NESTED = `
  query Nested($first: Int!) {
    patients(first: $first) {
      edges { node {
        id mrn name { text } careTeam { name members { npi } } managingOrganization { name }
        encounters(first: 3) { edges { node { id type { display } } } }
        conditions { edges { node { code { code } encounter { id } } } }
        medicationRequests { edges { node { medication { display } } } }
        observations(first: 5) { edges { node { code { code } value unit } } }
        allergyIntolerances { edges { node { code { display } } } }
        clinicalNotes(first: 2) { edges { node { text } } }
        coverages { edges { node { payer memberId } } }
        claims { edges { node { total { cents } coverage { payer } } } }
        invoices { edges { node { balance { cents } claim { status } } } }
        payments { edges { node { amount { cents } invoice { status } } } }
      } }
    }
  }`;

async function statementsFor(first: number): Promise<{ statements: number; patients: number }> {
  // Clinician and billing together read both clinical and billing lists.
  const token = await stack.token('billing', { roles: ['billing', 'clinician'], organizationId });
  stack.statements.count = 0;
  const response = await post<{ patients: { edges: unknown[] } }>(stack.gatewayUrl, NESTED, { token, variables: { first } });
  // Rows reached only through the billing role keep their clinical lists closed: FORBIDDEN, not loaded.
  expect(new Set(response.body.errors?.map((error) => error.extensions?.['code']))).toEqual(new Set(response.body.errors ? ['FORBIDDEN'] : []));
  return { statements: stack.statements.count, patients: response.body.data?.patients.edges.length ?? 0 };
}

describe('a query for many patients with nested clinical and billing data', () => {
  it('sends the same number of SQL statements for 10 patients as for 100', async () => {
    // Warm the membership and emergency-grant caches first: a cold cache costs a few statements once.
    await statementsFor(1);
    const ten = await statementsFor(10);
    const hundred = await statementsFor(100);
    expect(ten.patients).toBe(10);
    expect(hundred.patients).toBe(100);
    expect(ten.statements).toBeGreaterThan(0);
    expect(hundred.statements).toBe(ten.statements);
  });
});
