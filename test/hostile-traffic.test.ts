import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kind, parse, type OperationDefinitionNode } from 'graphql';
import { DEFAULT_OPERATION_LIMITS, measureOperation } from '../src/policy/index.js';
import { buildSchema } from '../src/subgraphs/server.js';
import { resolveServices } from './support/services.js';
import { post, startTestStack, type TestStack } from './support/stack.js';
import { apiSchema } from './support/supergraph.js';

/**
 * Hostile traffic from a caller with a valid token: each test asserts the
 * SAFE behaviour, so it fails while the hole exists.
 */

const api = apiSchema();

function measure(query: string, variables: Record<string, unknown> = {}, maxCost = 10_000, schema = api) {
  const document = parse(query);
  const operation = document.definitions.find((definition) => definition.kind === Kind.OPERATION_DEFINITION) as OperationDefinitionNode;
  return measureOperation(schema, document, operation, variables, DEFAULT_OPERATION_LIMITS, maxCost);
}

let stack: TestStack;
/** A stack with small budgets over time. */
let limited: TestStack;
let postgres = false;
const IN_FLIGHT = 2;

beforeAll(async () => {
  postgres = !!(await resolveServices()).postgresUrl;
  [stack, limited] = await Promise.all([
    startTestStack({ patients: 30 }),
    startTestStack({ patients: 10, env: { RATE_LIMIT_IN_FLIGHT: String(IN_FLIGHT), DATABASE_LOCK_TIMEOUT_MS: '3000', DATABASE_STATEMENT_TIMEOUT_MS: '5000' } }),
  ]);
}, 120_000);

afterAll(async () => {
  await Promise.all([stack?.stop(), limited?.stop()]);
});

describe('cost analysis', () => {
  const plain = '{ patients(first: 1000) { edges { node { id encounters(first: 100) { edges { node { id status } } } } } } }';
  const viaInline =
    '{ patients(first: 1000) { ... on PatientConnection { edges { node { id encounters(first: 100) { ... on EncounterConnection { edges { node { id status } } } } } } } } }';
  const viaNamed =
    '{ patients(first: 1000) { ...P } } fragment P on PatientConnection { edges { node { id encounters(first: 100) { ...E } } } } fragment E on EncounterConnection { edges { node { id status } } }';

  it('multiplies a connection\'s edges by its page size when the edges sit in a fragment on the connection (inline or named)', () => {
    expect(measure(plain)).toMatchObject({ limit: 'cost' });
    // Same 100,000 encounter rows, written with a fragment on the connection type.
    expect(measure(viaInline)).toMatchObject({ limit: 'cost' });
    expect(measure(viaNamed)).toMatchObject({ limit: 'cost' });
  });

  it('refuses the fragment-wrapped list product at the gateway, as it refuses the plain one', async () => {
    const token = await stack.token('clinician');
    const small = (query: string) => query.replace('first: 1000', 'first: 200');
    const refused = await post(stack.gatewayUrl, small(plain), { token });
    expect(refused.status).toBe(400);
    expect(refused.body.errors?.[0]?.extensions).toMatchObject({ code: 'OPERATION_LIMIT', limit: 'cost' });
    const wrapped = await post<{ patients: { edges: { node: { encounters: { edges: unknown[] } } }[] } }>(stack.gatewayUrl, small(viaInline), { token });
    // Measured when written: the plain query 400 (cost 60,802 over 10,000); the wrapped one 200 with its rows.
    expect({ status: wrapped.status, code: wrapped.body.errors?.[0]?.extensions?.['code'] }).toEqual({ status: 400, code: 'OPERATION_LIMIT' });
  });

  it('counts `first: null` (which runs the default page) as the default page', () => {
    const cost = (first: string) => measure(`{ patients${first} { edges { node { id gender } } } }`, {}, 1e9);
    const defaultPage = measure('{ patients { edges { node { id gender } } } }', {}, 30);
    const nullPage = measure('{ patients(first: null) { edges { node { id gender } } } }', {}, 30);
    expect(cost('')).toBeNull();
    expect(defaultPage).toMatchObject({ limit: 'cost' });
    expect(nullPage).toMatchObject({ limit: 'cost', measured: defaultPage?.measured });
  });
});

describe('introspection is measured too', () => {
  // 8 levels: types -> fields -> type -> fields -> type -> fields, a product of the schema with itself.
  const deep = '{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }';

  it('refuses introspection past the depth limit (skipped by the measure; graphql-js\'s introspection depth rule holds it)', async () => {
    const token = await stack.token('integrator');
    const started = performance.now();
    const response = await fetch(stack.gatewayUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: deep }),
    });
    const text = await response.text();
    expect(performance.now() - started).toBeLessThan(2000);
    expect(response.status).toBe(400);
    expect(text).not.toContain('"data"');
  });

  it('counts aliases inside introspection', async () => {
    const flood = `{ __schema { ${Array.from({ length: 40 }, (_, index) => `a${index}: types { name fields { name } }`).join(' ')} } }`;
    const token = await stack.token('integrator');
    const response = await post(stack.gatewayUrl, flood, { token });
    expect(response.status).toBe(400);
    expect(measure(flood)).toMatchObject({ limit: 'aliases' });
  });
});

describe('_entities', () => {
  const representations = (count: number, id = '00000000-0000-4000-8000-000000000000') => Array.from({ length: count }, () => ({ __typename: 'Patient', id }));

  it('counts representations asked through a fragment on Query, not only at the operation root', () => {
    const clinical = buildSchema('clinical');
    const viaFragment = 'query($r: [_Any!]!) { ...E } fragment E on Query { _entities(representations: $r) { __typename } }';
    const viaInline = 'query($r: [_Any!]!) { ... on Query { _entities(representations: $r) { __typename } } }';
    expect(measure(viaFragment, { r: representations(1500) }, 50_000, clinical)).toMatchObject({ limit: 'entities' });
    expect(measure(viaInline, { r: representations(1500) }, 50_000, clinical)).toMatchObject({ limit: 'entities' });
  });

  it('refuses a fragment-wrapped _entities flood straight to a subgraph', async () => {
    const token = await stack.token('billing');
    const response = await post(stack.subgraphUrl('clinical'), 'query($r: [_Any!]!) { ...E } fragment E on Query { _entities(representations: $r) { __typename } }', {
      token,
      variables: { r: representations(3000) },
    });
    expect({ status: response.status, code: response.body.errors?.[0]?.extensions?.['code'] }).toEqual({ status: 400, code: 'OPERATION_LIMIT' });
  });

  it('answers a 100,000-character representation id quickly, without echoing it or failing internally', async () => {
    const token = await stack.token('clinician');
    const id = `x${'A'.repeat(100_000)}`;
    const started = performance.now();
    const response = await post(stack.subgraphUrl('clinical'), 'query($r: [_Any!]!) { _entities(representations: $r) { ... on Patient { id } } }', {
      token,
      variables: { r: [{ __typename: 'Patient', id }] },
    });
    expect(performance.now() - started).toBeLessThan(2000);
    expect(JSON.stringify(response.body)).not.toContain('AAAAAAAAAA');
    expect(response.status).toBeLessThan(500);
    expect(JSON.stringify(response.body)).not.toContain('INTERNAL_SERVER_ERROR');
  });
});

describe('mutations and mixed documents', () => {
  it('counts two mutation fields hidden in fragments and inline fragments', () => {
    const input = '(input: { patientId: "p", text: "t" }) { __typename }';
    expect(measure(`mutation { ...M } fragment M on Mutation { a: addClinicalNote${input} ... on Mutation { b: addClinicalNote${input} } }`)).toMatchObject({
      limit: 'mutationFields',
    });
  });

  it('measures the operation operationName selects in a document of several', async () => {
    const token = await stack.token('clinician');
    const query = 'query Small { viewer { subject } } query Big { patients(first: 1000) { edges { node { id encounters(first: 100) { edges { node { id } } } } } } }';
    const response = await fetch(stack.gatewayUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, operationName: 'Big' }),
    });
    expect(response.status).toBe(400);
  });
});

describe('values are never echoed', () => {
  it('does not echo a variable value that fails coercion', async () => {
    const token = await stack.token('clinician');
    const secret = '123-45-6789 Jane Roe';
    const response = await post(stack.gatewayUrl, 'query($n: Int) { patients(first: $n) { edges { node { id } } } }', { token, variables: { n: secret } });
    expect(response.status).toBe(400);
    expect(JSON.stringify(response.body)).not.toContain('123-45-6789');
  });

  it('does not echo an enormous unused variables object, and answers quickly', async () => {
    const token = await stack.token('clinician');
    const variables = Object.fromEntries(Array.from({ length: 30_000 }, (_, index) => [`v${index}`, 'x'.repeat(20)]));
    const started = performance.now();
    const response = await post(stack.gatewayUrl, '{ viewer { subject } }', { token, variables });
    expect(performance.now() - started).toBeLessThan(2000);
    expect(response.status).toBeLessThan(500);
  });
});

describe('budgets over time', () => {
  it('keeps a request\'s in-flight slot while its work runs, even when the client disconnects', async (context) => {
    context.skip(!postgres, 'needs PostgreSQL to hold a lock');
    const token = await limited.token('clinician');
    const query = 'query($id: ID!) { patient(id: $id) { id observations(first: 3) { edges { node { id value } } } } }';
    const variables = { id: limited.principals.patient.patientId };
    const locker = new pg.Client({ connectionString: limited.config.database.url });
    await locker.connect();
    try {
      await locker.query('begin');
      await locker.query('lock table observation in access exclusive mode');
      // Fill the in-flight budget with requests that hang on the lock, then walk away from them.
      const controllers = Array.from({ length: IN_FLIGHT }, () => new AbortController());
      const hung = controllers.map((controller) =>
        fetch(limited.gatewayUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ query, variables }),
          signal: controller.signal,
        }).catch(() => null),
      );
      await new Promise((resolve) => setTimeout(resolve, 400));
      // Control: while they run, one more is refused.
      const control = await post(limited.gatewayUrl, '{ viewer { subject } }', { token });
      expect(control.status).toBe(429);
      for (const controller of controllers) controller.abort();
      await Promise.all(hung);
      await new Promise((resolve) => setTimeout(resolve, 100));
      // Their work still waits on the lock server-side: a further request must not be admitted as if they had ended.
      const more = await Promise.all(Array.from({ length: IN_FLIGHT }, () => post(limited.gatewayUrl, '{ viewer { subject } }', { token })));
      const statuses = more.map((response) => response.status);
      // Measured when written: [200, 200] (the slots were released on 'close' while the work still ran).
      expect(statuses).toContain(429);
    } finally {
      await locker.query('rollback').catch(() => undefined);
      await locker.end();
    }
  });

  it('releases the slot of a request refused before it runs (operation limit, malformed JSON)', async () => {
    const token = await limited.token('clinician', { subject: 'hostile:refused' });
    for (let index = 0; index < 10; index += 1) {
      const refused = await post(limited.gatewayUrl, `{ viewer { ${'subject '.repeat(1500)} } }`, { token });
      expect(refused.status).toBe(400);
      const malformed = await fetch(limited.gatewayUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: '{"query":' });
      expect(malformed.status).toBe(400);
    }
    const after = await post(limited.gatewayUrl, '{ viewer { subject } }', { token });
    expect(after.status).toBe(200);
  });
});
