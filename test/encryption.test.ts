import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isObjectType } from 'graphql';
import { toBuffer } from '../src/crypto/index.js';
import { ENCRYPTED_TABLES, boundRowId } from '../src/db/encryption.js';
import { ENTITIES } from '../src/db/entities.js';
import { isEncryptedField } from '../src/policy/index.js';
import { SUBGRAPH_NAMES } from '../src/subgraphs/catalog.js';
import { ENCRYPTED_FIELDS } from '../src/subgraphs/encrypted-fields.js';
import { buildSchema } from '../src/subgraphs/server.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 30 });
});

afterAll(async () => {
  await stack?.stop();
});

const cipher = () => stack.api.sealer!.cipher;

describe('what is encrypted', () => {
  it('is the same in the SDL (@encrypted), the field map, the encrypted columns and the ORM (bytea)', () => {
    const marked = new Set<string>();
    for (const name of SUBGRAPH_NAMES) {
      const schema = buildSchema(name);
      for (const type of Object.values(schema.getTypeMap())) {
        if (!isObjectType(type) || type.name.startsWith('_')) continue;
        for (const field of Object.keys(type.getFields())) if (isEncryptedField(schema, type.name, field)) marked.add(`${type.name}.${field}`);
      }
    }
    expect([...marked].sort()).toEqual(Object.keys(ENCRYPTED_FIELDS).sort());
    const mapped = new Set(Object.values(ENCRYPTED_FIELDS).flat());
    const declared = new Set(Object.entries(ENCRYPTED_TABLES).flatMap(([table, spec]) => spec.columns.map((column) => `${table}.${column}`)));
    expect([...mapped].sort()).toEqual([...declared].sort());
    const metadata = stack.api.db!.orm.getMetadata();
    for (const entity of ENTITIES) {
      const meta = metadata.find(entity as never);
      if (!meta) continue;
      const spec = ENCRYPTED_TABLES[meta.tableName];
      for (const property of Object.values(meta.properties)) {
        const column = property.fieldNames?.[0];
        if (!column) continue;
        const encrypted = !!spec?.columns.includes(column);
        const bytea = String(property.columnTypes?.[0]) === 'bytea';
        if (encrypted) expect(bytea, `${meta.tableName}.${column} holds ciphertext`).toBe(true);
      }
      if (spec) expect(Object.values(meta.properties).some((property) => property.fieldNames?.[0] === 'crypto_version'), meta.tableName).toBe(true);
    }
  });
});

describe('at rest', () => {
  it('shows no plaintext in any encrypted column of any row, read straight from the database', async () => {
    let checked = 0;
    for (const [table, spec] of Object.entries(ENCRYPTED_TABLES)) {
      const rows = await stack.sql<Record<string, unknown>>(`select * from "${table}"`);
      expect(rows.length, table).toBeGreaterThan(0);
      for (const row of rows) {
        expect(Number(row['crypto_version']), table).toBe(1);
        for (const column of spec.columns) {
          const stored = row[column] as Uint8Array | null;
          if (stored === null) continue;
          const bytes = toBuffer(stored);
          expect(bytes[0], `${table}.${column}`).toBe(2);
          const plaintext = await cipher().decrypt(bytes, { table, column, rowId: boundRowId(spec, row) });
          if (plaintext.length >= 3) expect(bytes.includes(Buffer.from(plaintext, 'utf8')), `${table}.${column}`).toBe(false);
          checked += 1;
        }
      }
    }
    expect(checked).toBeGreaterThan(500);
  });

  it('gives the same value different ciphertexts', async () => {
    const rows = await stack.sql<{ id: string; state: Uint8Array }>('select id, state from patient where state is not null');
    const byState = new Map<string, Buffer[]>();
    for (const row of rows) {
      const state = await cipher().decrypt(toBuffer(row.state), { table: 'patient', column: 'state', rowId: row.id });
      byState.set(state, [...(byState.get(state) ?? []), toBuffer(row.state)]);
    }
    const [, same] = [...byState.entries()].find(([, values]) => values.length > 1) ?? [];
    expect(same?.length).toBeGreaterThan(1);
    expect(same?.[0]?.equals(same[1] ?? Buffer.alloc(0))).toBe(false);
  });
});

describe('decryption', () => {
  it('decrypts exactly the requested encrypted fields of each row, and nothing for a denied field', async () => {
    const token = await stack.token('billing');
    const before = cipher().decryptions;
    const response = await post<{ patients: { edges: { node: { mrn: string; email: string | null } }[] } }>(
      stack.gatewayUrl,
      '{ patients(first: 10) { edges { node { id gender mrn email } } } }',
      { token },
    );
    const rows = response.body.data?.patients.edges ?? [];
    expect(rows).toHaveLength(10);
    const emails = rows.filter((edge) => edge.node.email !== null).length;
    expect(cipher().decryptions - before).toBe(10 + emails);

    const denied = cipher().decryptions;
    const notes = await post(stack.gatewayUrl, '{ patients(first: 10) { edges { node { id clinicalNotes { edges { node { text } } } } } } }', { token });
    expect(notes.body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    expect(cipher().decryptions - denied).toBe(0);
  });

  it('masks after decrypting, inside the same step', async () => {
    const response = await post<{ patient: { ssn: string } }>(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { ssn } }', {
      token: await stack.token('clinician'),
      variables: { id: stack.principals.patient.patientId },
    });
    expect(response.body.data?.patient.ssn).toMatch(/^\*\*\*-\*\*-\d{4}$/);
  });

  it('finds a patient by MRN through the blind index', async () => {
    const [row] = await stack.sql<{ id: string; mrn: Uint8Array }>('select id, mrn from patient where id = ?', [stack.principals.patient.patientId]);
    const mrn = await cipher().decrypt(toBuffer(row!.mrn), { table: 'patient', column: 'mrn', rowId: row!.id });
    const response = await post<{ patientByMrn: { id: string; mrn: string } }>(stack.gatewayUrl, 'query($mrn: String!) { patientByMrn(mrn: $mrn) { id mrn } }', {
      token: await stack.token('clinician'),
      variables: { mrn: ` ${mrn.toLowerCase()} ` },
    });
    expect(response.body.data?.patientByMrn).toEqual({ id: row!.id, mrn });
  });
});

describe('a tampered or moved ciphertext', () => {
  async function chart(id: string) {
    return post<{ patient: { id: string; ssn: string | null; name: { text: string } | null; gender: string } }>(
      stack.gatewayUrl,
      'query($id: ID!) { patient(id: $id) { id gender ssn name { text } } }',
      { token: await stack.token('patient', { roles: ['patient'], patientId: id }), variables: { id } },
    );
  }

  it('fails that field with DECRYPTION_FAILED and no value, and the rest comes back', async () => {
    const [victim] = await stack.sql<{ id: string }>('select id from patient where ssn is not null order by id limit 1');
    await stack.sql(`update patient set ssn = set_byte(ssn, 20, get_byte(ssn, 20) # 1) where id = ?`, [victim!.id]);
    const response = await chart(victim!.id);
    expect(response.body.data?.patient.ssn).toBeNull();
    expect(response.body.data?.patient.gender).toBeTruthy();
    expect(response.body.data?.patient.name?.text).toBeTruthy();
    expect(response.body.errors?.[0]?.extensions).toMatchObject({ code: 'DECRYPTION_FAILED', reason: 'DECRYPTION_FAILED' });
    expect(JSON.stringify(response.body.errors)).not.toMatch(/\d{3}-\d{2}-\d{4}/);
  });

  it('fails when two rows swap their ciphertexts', async () => {
    const [a, b] = await stack.sql<{ id: string }>('select id from patient order by id desc limit 2');
    await stack.sql('update patient set name = (select name from patient where id = ?) where id = ?', [b!.id, a!.id]);
    const response = await chart(a!.id);
    expect(response.body.data?.patient.name).toBeNull();
    expect(response.body.errors?.[0]?.extensions?.['code']).toBe('DECRYPTION_FAILED');
  });
});
