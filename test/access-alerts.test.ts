import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { post, startTestStack, type TestStack } from './support/stack.js';
import { patientOutsideCareTeams } from './support/fixtures.js';

let stack: TestStack;

beforeAll(async () => {
  // Low thresholds, so a test crosses them.
  stack = await startTestStack({
    patients: 60,
    env: { ALERT_DISTINCT_PATIENTS_PER_HOUR: '8', ALERT_DENIED_FIELDS_PER_HOUR: '10', ALERT_SSN_READS_PER_HOUR: '7' },
  });
});

afterAll(async () => {
  await stack?.stop();
});

async function alerts(subject: string): Promise<{ fields: { field: string; reason: string }[] | string; emergency: boolean }[]> {
  return stack.api.db!.fork().execute("select fields, emergency from audit_event where entity_type = 'AccessAlert' and subject = ? order by id", [subject]);
}

const kinds = (rows: Awaited<ReturnType<typeof alerts>>) =>
  rows.flatMap((row) => (typeof row.fields === 'string' ? (JSON.parse(row.fields) as { field: string }[]) : row.fields)).map((field) => field.field);

describe('access alerts', () => {
  it('record an alert in the audit trail once a principal crosses a threshold within the hour, and only once', async () => {
    const token = await stack.token('billing');
    const query = '{ patients(first: 5) { edges { node { id ssn clinicalNotes { edges { node { id } } } } } } }';
    await post(stack.gatewayUrl, query, { token });
    expect(await alerts(stack.principals.billing.subject)).toEqual([]);
    await post(stack.gatewayUrl, '{ patients(first: 30) { edges { node { id ssn clinicalNotes { edges { node { id } } } } } } }', { token });
    const raised = kinds(await alerts(stack.principals.billing.subject));
    expect(raised).toEqual(expect.arrayContaining(['alert:distinct-patients-per-hour', 'alert:ssn-reads-per-hour', 'alert:denied-fields-per-hour']));
    await post(stack.gatewayUrl, query, { token });
    expect(kinds(await alerts(stack.principals.billing.subject)).length).toBe(raised.length);
  });

  it('always raise one for break-the-glass access', async () => {
    const token = await stack.token('clinician');
    const outside = { id: await patientOutsideCareTeams(stack.api.db!, stack.principals.clinician) };
    await post(stack.gatewayUrl, 'mutation($id: ID!) { openEmergencyAccess(input: { patientId: $id, reason: "Patient arrived unconscious, history needed" }) { ok } }', {
      token,
      variables: { id: outside?.id },
    });
    const rows = await alerts(stack.principals.clinician.subject);
    expect(kinds(rows)).toContain('alert:emergency-access');
    expect(rows.some((row) => row.emergency)).toBe(true);
  });
});
