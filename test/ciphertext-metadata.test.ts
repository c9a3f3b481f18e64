import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEntries } from '../src/audit/index.js';
import { CryptoError, toBuffer } from '../src/crypto/index.js';
import { openSealer } from '../src/db/encryption.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * An insider who can write a row but not the key: the column outside the
 * envelope that says whether a stored value is encrypted (crypto_version)
 * must not decide how it is read. A row set to "not encrypted", with a
 * value of the insider's choice, answers DECRYPTION_FAILED (reason
 * NOT_ENCRYPTED) for each encrypted field, never the planted value nor the
 * raw bytes of the others. The same for everything else around a
 * ciphertext: the bytes of its header (format, algorithm, data key id) and
 * the data key's own row (its scope, its KEK version, its wrapped bytes).
 * Each failure is audited as `failed` with its reason.
 */

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 10 });
});

afterAll(async () => {
  await stack?.stop();
});

const PATIENT = 'query($id: ID!) { patient(id: $id) { id name { text } ssn phone email } }';

interface AuditRow {
  fields: { field: string; outcome: string; reason?: string }[];
}

/** The audit records of one request: which fields failed, with their reasons. */
async function failedFields(requestId: string): Promise<string[]> {
  const rows = await stack.sql<AuditRow>(`select fields from ${auditEntries()} as entry where request_id = ?`, [requestId]);
  return rows.flatMap((row) => row.fields.filter((field) => field.outcome === 'failed').map((field) => `${field.field}:${field.reason ?? ''}`)).sort();
}

/** Rewrites bytes of one stored column of a patient and reads the patient back through the gateway. */
async function readAfterRewrite(column: string, rewrite: (stored: Buffer) => Buffer) {
  const [target] = await stack.sql<{ id: string }>(
    `select id from patient where crypto_version = 1 and managing_organization_id = ? and ssn is not null and phone is not null order by id limit 1`,
    [stack.principals.billing.organizationId],
  );
  const id = target?.id ?? '';
  const [row] = await stack.sql<Record<string, Uint8Array>>(`select "${column}" from patient where id = ?`, [id]);
  const original = toBuffer(row?.[column] as Uint8Array);
  await stack.sql(`update patient set "${column}" = ? where id = ?`, [rewrite(Buffer.from(original)), id]);
  try {
    const token = await stack.token('billing');
    const requestId = `metadata-${column}-${Date.now()}-${Math.random()}`;
    const response = await post<{ patient: Record<string, unknown> | null }>(stack.gatewayUrl, PATIENT, { token, variables: { id }, headers: { 'x-request-id': requestId } });
    return { response, requestId, id };
  } finally {
    await stack.sql(`update patient set "${column}" = ? where id = ?`, [original, id]);
  }
}

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

  it('is audited as a failed read of each field, with the reason, not as the read the decision allowed', async () => {
    const id = stack.principals.patient.patientId ?? '';
    const token = await stack.token('clinician', { roles: ['clinician'] });
    const requestId = `not-encrypted-${Date.now()}`;
    const response = await post(stack.gatewayUrl, PATIENT, { token, variables: { id }, headers: { 'x-request-id': requestId } });
    expect(response.body.errors?.length ?? 0).toBeGreaterThan(0);
    const failed = await failedFields(requestId);
    expect(failed).toEqual(expect.arrayContaining(['Patient.phone:NOT_ENCRYPTED', 'Patient.email:NOT_ENCRYPTED']));
    const [allowed] = await stack.sql<{ count: number }>(
      `select count(*)::int as count from ${auditEntries()} as entry, jsonb_array_elements(entry.fields) as f where request_id = ? and f->>'field' = 'Patient.phone' and f->>'outcome' = 'allowed'`,
      [requestId],
    );
    expect(allowed?.count).toBe(0);
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

describe('the header of a stored value, rewritten by someone who can write the row', () => {
  it('a downgrade to the older envelope format fails (DECRYPTION_FAILED), and is audited as failed', async () => {
    // Format 2 is `2 | algorithm | key id (4) | ...`; format 1 has no algorithm byte: same key id, nonce, ciphertext and tag.
    const { response, requestId } = await readAfterRewrite('ssn', (stored) => Buffer.concat([Buffer.of(1), stored.subarray(2)]));
    expect(response.body.data?.patient?.['ssn'] ?? null).toBeNull();
    expect(response.body.errors?.map((error) => error.extensions?.['code'])).toEqual(['DECRYPTION_FAILED']);
    expect(response.body.errors?.[0]?.path).toEqual(['patient', 'ssn']);
    expect(response.body.data?.patient?.['phone']).toEqual(expect.any(String));
    expect(await failedFields(requestId)).toEqual(['Patient.ssn:DECRYPTION_FAILED']);
  });

  it('an unknown algorithm or format is refused before any key is used (MALFORMED_CIPHERTEXT)', async () => {
    for (const [offset, value] of [
      [1, 9],
      [0, 7],
    ] as const) {
      const { response, requestId } = await readAfterRewrite('ssn', (stored) => {
        stored[offset] = value;
        return stored;
      });
      expect(response.body.data?.patient?.['ssn'] ?? null).toBeNull();
      expect(response.body.errors?.map((error) => [error.extensions?.['code'], error.extensions?.['reason']])).toEqual([['DECRYPTION_FAILED', 'MALFORMED_CIPHERTEXT']]);
      expect(await failedFields(requestId)).toEqual(['Patient.ssn:MALFORMED_CIPHERTEXT']);
    }
  });

  it('the key id of another column (a real key, of another scope) fails', async () => {
    const [other] = await stack.sql<{ name: Uint8Array }>('select name from patient where crypto_version = 1 limit 1');
    const nameKeyId = toBuffer(other?.name as Uint8Array).subarray(2, 6);
    const { response } = await readAfterRewrite('ssn', (stored) => {
      nameKeyId.copy(stored, 2);
      return stored;
    });
    expect(response.body.data?.patient?.['ssn'] ?? null).toBeNull();
    expect(response.body.errors?.map((error) => error.extensions?.['code'])).toEqual(['DECRYPTION_FAILED']);
  });
});

describe('the data key row, rewritten by someone who can write the data_key table', () => {
  /** A reader that starts after the edit (a running one keeps the keys it already unwrapped, which is no help to the insider either). */
  async function freshRead(column: string): Promise<string> {
    const [row] = await stack.sql<Record<string, unknown>>(`select id, "${column}" from patient where crypto_version = 1 and "${column}" is not null order by id limit 1`);
    const sealer = await openSealer(stack.api.db!, stack.config.keys);
    try {
      return await sealer.cipher.decrypt(toBuffer(row?.[column] as Uint8Array), { table: 'patient', column, rowId: String(row?.['id']) });
    } catch (error) {
      if (error instanceof CryptoError) return error.failure;
      throw error;
    }
  }

  /** Edits the data_key row the column's value (of the row freshRead reads) is under, runs, and puts the row back. */
  async function withKeyRowEdited<T>(column: string, edit: string, params: unknown[], run: () => Promise<T>): Promise<T> {
    const [row] = await stack.sql<Record<string, Uint8Array>>(`select "${column}" from patient where crypto_version = 1 and "${column}" is not null order by id limit 1`);
    const keyId = toBuffer(row?.[column] as Uint8Array).readUInt32BE(2);
    const [key] = await stack.sql<{ id: number; scope: string; kek_version: number; wrapped: Uint8Array }>('select id, scope, kek_version, wrapped from data_key where id = ?', [keyId]);
    if (!key) throw new Error(`no data key ${keyId}`);
    await stack.sql(`update data_key set ${edit} where id = ?`, [...params, key.id]);
    try {
      return await run();
    } finally {
      await stack.sql('update data_key set scope = ?, kek_version = ?, wrapped = ? where id = ?', [key.scope, key.kek_version, toBuffer(key.wrapped), key.id]);
    }
  }

  it('reads before any edit', async () => {
    expect(await freshRead('ssn')).toMatch(/^\d{3}-\d{2}-\d{4}$/);
  });

  it('a key relabelled to serve another category does not unwrap', async () => {
    expect(await withKeyRowEdited('ssn', 'scope = ?', ['patient/contact'], () => freshRead('ssn'))).toBe('DECRYPTION_FAILED');
    // ...nor does the contact key relabelled as the SSN key open SSNs.
    expect(await withKeyRowEdited('phone', 'scope = ?', ['patient/ssn'], () => freshRead('phone'))).toBe('DECRYPTION_FAILED');
  });

  it('a key whose KEK version was changed or whose wrapped bytes were altered does not unwrap', async () => {
    expect(await withKeyRowEdited('ssn', 'kek_version = ?', [7], () => freshRead('ssn'))).toBe('KEY_UNKNOWN');
    expect(await withKeyRowEdited('ssn', 'wrapped = overlay(wrapped placing ? from 20)', [Buffer.of(0xff)], () => freshRead('ssn'))).toBe('DECRYPTION_FAILED');
    expect(await withKeyRowEdited('ssn', 'scope = null', [], () => freshRead('ssn'))).toBe('DECRYPTION_FAILED');
  });
});

