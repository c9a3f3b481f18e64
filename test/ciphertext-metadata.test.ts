import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * An insider who can write a row but not the key: the column outside the
 * envelope that says whether a stored value is encrypted (crypto_version)
 * must not decide how it is read. A row set to "not encrypted", with a
 * value of the insider's choice, answers DECRYPTION_FAILED (reason
 * NOT_ENCRYPTED) for each encrypted field, never the planted value nor the
 * raw bytes of the others. (Issue 14's first part; the rest is to come.)
 */

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 10 });
});

afterAll(async () => {
  await stack?.stop();
});

const PATIENT = 'query($id: ID!) { patient(id: $id) { id name { text } ssn phone email } }';

describe('a row whose crypto_version was set to "not encrypted"', () => {
  it('serves neither a planted plaintext value nor the raw bytes of its other encrypted fields', async () => {
    const id = stack.principals.patient.patientId ?? '';
    const token = await stack.token('clinician', { roles: ['clinician'] });
    const before = await post<{ patient: { phone: string | null } | null }>(stack.gatewayUrl, PATIENT, { token, variables: { id } });
    expect(before.body.errors ?? []).toEqual([]);

    await stack.sql(`update patient set crypto_version = 0, phone = convert_to('+1-555-PLANTED', 'UTF8') where id = ?`, [id]);
    const after = await post<{ patient: { id: string; phone: string | null; email: string | null } | null }>(stack.gatewayUrl, PATIENT, { token, variables: { id } });
    const shown = JSON.stringify(after.body);
    expect(shown).not.toContain('PLANTED');
    expect(after.body.data?.patient?.phone ?? null).toBeNull();
    expect(after.body.data?.patient?.email ?? null).toBeNull();
    const failures = (after.body.errors ?? []).filter((error) => error.extensions?.['code'] === 'DECRYPTION_FAILED');
    expect(failures.length).toBeGreaterThanOrEqual(2);
    for (const failure of failures) expect(failure.extensions?.['reason']).toBe('NOT_ENCRYPTED');
    // The rest of the row (its id) still comes back.
    expect(after.body.data?.patient?.id).toBe(id);
  });

  it('is not made readable by a write to it: the patient\'s own update is refused and the row stays marked', async () => {
    const token = await stack.token('patient');
    const id = stack.principals.patient.patientId;
    const response = await post<{ updateMyContact: { ok: boolean } | null }>(stack.gatewayUrl, 'mutation($input: UpdateContactInput!) { updateMyContact(input: $input) { ok } }', {
      token,
      variables: { input: { email: 'new.address@example.test' } },
    });
    expect(response.body.data?.updateMyContact ?? null).toBeNull();
    expect(response.body.errors?.[0]?.extensions).toMatchObject({ code: 'DECRYPTION_FAILED', reason: 'NOT_ENCRYPTED' });
    const [row] = await stack.sql<{ crypto_version: number; phone: string }>(`select crypto_version, convert_from(phone, 'UTF8') as phone from patient where id = ?`, [id]);
    expect(Number(row?.crypto_version)).toBe(0);
    expect(row?.phone).toBe('+1-555-PLANTED');
  });

  it('is not found by a lookup on its plaintext MRN', async () => {
    const token = await stack.token('billing');
    const lookup = (mrn: string) => post<{ patientByMrn: { id: string } | null }>(stack.gatewayUrl, 'query($mrn: String!) { patientByMrn(mrn: $mrn) { id } }', { token, variables: { mrn } });
    const list = await post<{ patients: { edges: { node: { id: string; mrn: string } }[] } }>(stack.gatewayUrl, '{ patients(first: 5) { edges { node { id mrn } } } }', { token });
    const target = list.body.data?.patients.edges.find(({ node }) => node.id !== stack.principals.patient.patientId)?.node;
    expect(target).toBeTruthy();
    // The role finds it by its real MRN through the blind index...
    expect((await lookup(target?.mrn ?? '')).body.data?.patientByMrn?.id).toBe(target?.id);
    // ...and not by a plaintext MRN planted beside a "not encrypted" mark.
    await stack.sql(`update patient set crypto_version = 0, mrn = convert_to('MRN-PLANTED-1', 'UTF8') where id = ?`, [target?.id]);
    expect((await lookup('MRN-PLANTED-1')).body.data?.patientByMrn ?? null).toBeNull();
  });
});
