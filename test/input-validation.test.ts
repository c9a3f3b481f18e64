import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * Bad input gets a clear error with a code, and nothing is half-written:
 * ids are checked before anything uses them (the audit write included, so
 * no caller can make the audit fail and withhold everyone's responses),
 * dates are days of the calendar, every string has a maximum length, and
 * control characters are refused where they have no business.
 */

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 10 });
});

afterAll(async () => {
  await stack?.stop();
});

const NOTE = 'mutation AddNote($input: AddClinicalNoteInput!) { addClinicalNote(input: $input) { ok error { code inputErrors { field } } } }';

async function count(table: string): Promise<number> {
  return Number((await stack.sql<{ count: string }>(`select count(*) as count from "${table}"`))[0]?.count);
}

describe('input validation', () => {
  it('answers a malformed id in a mutation as invalid input, and still writes the audit trail (never a 503)', async () => {
    const token = await stack.token('clinician');
    for (const url of [stack.gatewayUrl, stack.subgraphUrl('clinical')]) {
      for (const patientId of ['not-a-uuid', 'x'.repeat(900)]) {
        const response = await post<{ addClinicalNote: { ok: boolean; error: { code: string } | null } }>(url, NOTE, {
          token,
          variables: { input: { patientId, typeCode: '11506-3', text: 'Seen.' } },
        });
        expect(response.status, url).toBe(200);
        expect(response.body.data?.addClinicalNote).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
      }
    }
    const rows = await stack.sql<{ count: string }>(`select count(*) as count from audit_event where operation_name = 'AddNote' and subject = ?`, [stack.principals.clinician.subject]);
    expect(Number(rows[0]?.count)).toBeGreaterThan(0);
  });

  it('keeps a long operation name sent straight to a subgraph from failing the audit write', async () => {
    const name = `Q${'x'.repeat(400)}`;
    const response = await post(stack.subgraphUrl('patient'), `query ${name}($id: ID!) { patient(id: $id) { name { family } } }`, {
      token: await stack.token('clinician'),
      variables: { id: stack.principals.patient.patientId },
    });
    expect(response.status).toBe(200);
    expect(response.body.errors).toBeUndefined();
  });

  it('refuses a string past its length before anything runs: a 200,000-character emergency reason is not stored (a body past 256 KB is refused before it is read)', async () => {
    const before = await count('emergency_access');
    const token = await stack.token('clinician');
    for (const url of [stack.gatewayUrl, stack.subgraphUrl('patient')]) {
      const response = await post(url, 'mutation($input: OpenEmergencyAccessInput!) { openEmergencyAccess(input: $input) { ok } }', {
        token,
        variables: { input: { patientId: stack.principals.patient.patientId, reason: 'r'.repeat(200_000), minutes: 5 } },
      });
      expect(response.status, url).toBe(400);
      expect(response.body.errors?.[0]?.extensions, url).toMatchObject({ code: 'BAD_USER_INPUT', reason: 'TOO_LONG', argumentPath: 'input.reason' });
      expect(JSON.stringify(response.body)).not.toContain('rrrrrrrrrr');
    }
    expect(await count('emergency_access')).toBe(before);
  });

  it('refuses NUL and other control characters in notes and contact fields, and stores nothing', async () => {
    const notes = await count('clinical_note');
    const clinician = await stack.token('clinician');
    const withNul = await post(stack.gatewayUrl, NOTE, {
      token: clinician,
      variables: { input: { patientId: stack.principals.patient.patientId, typeCode: '11506-3', text: 'Seen\u0000 today.' } },
    });
    expect(withNul.status).toBe(400);
    expect(withNul.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason: 'CONTROL_CHARACTERS', argumentPath: 'input.text' });
    // Line breaks are text in a note.
    const multiline = await post<{ addClinicalNote: { ok: boolean } }>(stack.gatewayUrl, NOTE, {
      token: clinician,
      variables: { input: { patientId: stack.principals.patient.patientId, typeCode: '11506-3', text: 'Seen today.\nFollow up in two weeks.' } },
    });
    expect(multiline.body.data?.addClinicalNote.ok).toBe(true);
    expect(await count('clinical_note')).toBe(notes + 1);
    const patient = await stack.token('patient');
    for (const input of [{ phone: '+1 617\u0000555 0142' }, { email: 'a@b.co\u202e' }, { address: { line: ['1 Main St\n2'], city: 'Boston', state: 'MA', postalCode: '02110' } }]) {
      const response = await post(stack.subgraphUrl('patient'), 'mutation($input: UpdateContactInput!) { updateMyContact(input: $input) { ok } }', { token: patient, variables: { input } });
      expect(response.status, JSON.stringify(input)).toBe(400);
      expect(response.body.errors?.[0]?.extensions?.['reason']).toBe('CONTROL_CHARACTERS');
    }
  });

  it('answers a date that is not a day of the calendar as BAD_USER_INPUT, not an internal error', async () => {
    const token = await stack.token('clinician');
    const response = await post(stack.gatewayUrl, 'mutation($input: AddConditionInput!) { addCondition(input: $input) { ok } }', {
      token,
      variables: { input: { patientId: stack.principals.patient.patientId, code: 'E11.9', display: 'Type 2 diabetes', clinicalStatus: 'active', onsetDate: '2020-02-31' } },
    });
    expect(response.body.errors?.[0]?.extensions?.['code']).toBe('BAD_USER_INPUT');
    const literal = await post(stack.subgraphUrl('clinical'), `mutation { addCondition(input: { patientId: "${String(stack.principals.patient.patientId)}", code: "E11.9", display: "x", clinicalStatus: active, onsetDate: "2021-02-29" }) { ok } }`, { token });
    expect(literal.body.errors?.[0]?.extensions?.['code']).toMatch(/BAD_USER_INPUT|GRAPHQL_VALIDATION_FAILED/);
  });

  it('refuses a token whose subject is longer than the audit trail can record', async () => {
    const response = await post(stack.gatewayUrl, '{ viewer { subject } }', { token: await stack.token('clinician', { subject: 's'.repeat(300) }) });
    expect(response.status).toBe(401);
  });
});
