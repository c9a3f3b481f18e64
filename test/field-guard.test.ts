import { GraphQLError, type GraphQLObjectType, type GraphQLResolveInfo } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANY_PURPOSE, decisionTable } from '../src/policy/index.js';
import { buildSchema } from '../src/subgraphs/server.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * The field guard decides every field below the root; these are the cases
 * the access matrix does not reach: a field that fails after it was
 * allowed, and the entry points that stay with graphql-shield.
 */
let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 30 });
});

afterAll(async () => {
  await stack?.stop();
});

interface Rows {
  patients: { edges: { node: { id: string; mrn: string | null; managingOrganization: { name: string } | null } }[] };
}

describe('a field that fails after the guard allowed it', () => {
  it('answers INTERNAL_SERVER_ERROR without the database driver message, and the rest of every row comes back', async () => {
    const token = await stack.token('clinician');
    const query = '{ patients(first: 3) { edges { node { id mrn managingOrganization { name } } } } }';
    // The organization loader's statement now fails; the driver's message would quote the statement.
    await stack.sql('alter table "organization" rename to "organization_gone"');
    try {
      for (const url of [stack.subgraphUrl('patient'), stack.gatewayUrl]) {
        const { status, body } = await post<Rows>(url, query, { token });
        expect(status, url).toBe(200);
        const edges = body.data?.patients.edges ?? [];
        expect(edges.length, url).toBe(3);
        for (const { node } of edges) {
          expect(node.id).toMatch(/^[0-9a-f-]{36}$/);
          expect(node.mrn).toMatch(/^MRN/);
          expect(node.managingOrganization).toBeNull();
        }
        expect(body.errors?.length, url).toBeGreaterThan(0);
        for (const error of body.errors ?? []) {
          expect(error.extensions?.['code'], url).toBe('INTERNAL_SERVER_ERROR');
          expect(error.path?.at(-1)).toBe('managingOrganization');
        }
        expect(JSON.stringify(body.errors)).not.toMatch(/organization_gone|relation|select|from "|MRN/i);
      }
    } finally {
      await stack.sql('alter table "organization_gone" rename to "organization"');
    }
  });
});

describe('a field whose decryption fails while it waits for its data key', () => {
  it('answers INTERNAL_SERVER_ERROR without the underlying message when the failure is not a decryption failure', async () => {
    const schema = buildSchema('patient');
    const patientType = schema.getType('Patient') as GraphQLObjectType;
    const ssn = patientType.getFields()['ssn'];
    const leaked = 'relation "data_key" does not exist (select ... where id = 7)';
    const context = {
      access: { principal: { subject: 'user:test', roles: ['clinician'], organizationId: null, patientId: null, mfa: true }, decisions: decisionTable(['clinician'], ANY_PURPOSE), rowDependent: false },
      // The key is not in memory, and fetching it fails the way a database would.
      sealer: { cipher: { decryptIfKeyReady: () => undefined, decryptColumnIfKeyReady: () => undefined, decrypt: () => Promise.reject(new Error(leaked)) } },
      logger: { warn: () => undefined },
      requestId: 'test',
    };
    const row = { id: '00000000-0000-4000-8000-000000000001', cryptoVersion: 1, ssn: Buffer.from('ciphertext') };
    const answer = Promise.resolve(ssn?.resolve?.(row, {}, context, {} as GraphQLResolveInfo));
    const error: unknown = await answer.then(() => null, (thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(GraphQLError);
    expect((error as GraphQLError).extensions['code']).toBe('INTERNAL_SERVER_ERROR');
    expect((error as GraphQLError).message).not.toContain('data_key');
  });
});

describe('the entry points', () => {
  it('stay guarded by their graphql-shield rules: a role the policy refuses gets FORBIDDEN and no data', async () => {
    const token = await stack.token('billing');
    const { body } = await post(stack.subgraphUrl('patient'), '{ auditEvents(first: 1) { edges { node { id } } } }', { token });
    expect(body.data?.['auditEvents'] ?? null).toBeNull();
    expect(body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
    expect(body.errors?.[0]?.path).toEqual(['auditEvents']);
  });
});
