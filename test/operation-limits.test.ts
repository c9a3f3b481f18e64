import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kind, parse, type OperationDefinitionNode } from 'graphql';
import { DEFAULT_OPERATION_LIMITS, measureOperation, measureSource } from '../src/policy/index.js';
import { buildSchema } from '../src/subgraphs/server.js';
import { post, startTestStack, type TestStack } from './support/stack.js';
import { apiSchema } from './support/supergraph.js';

/**
 * One small query must not stop the service: every operation is measured
 * before it runs, on the gateway and on every subgraph, and refused past a
 * limit with 400 OPERATION_LIMIT (which limit, the limit, what was
 * measured). Each attack class is tried; each must be refused quickly.
 */

const api = apiSchema();

function measure(query: string, variables: Record<string, unknown> = {}, maxCost = 1_000_000, schema = api) {
  const document = parse(query);
  const operation = document.definitions.find((definition) => definition.kind === Kind.OPERATION_DEFINITION) as OperationDefinitionNode;
  return measureOperation(schema, document, operation, variables, DEFAULT_OPERATION_LIMITS, maxCost);
}

/**
 * Fragments that each spread the next one `width` times (through a patient's
 * encounters and back to the patient), `levels` deep: tiny to write,
 * `width^levels` fields to run. `root` is the field that leads to a patient.
 */
function fanOut(levels: number, width: number, root = 'patient(id: $id)', variables = '$id: ID!'): string {
  const fragments: string[] = [];
  for (let level = 0; level < levels; level += 1) {
    const next =
      level + 1 < levels ? Array.from({ length: width }, (_, index) => `a${index}: encounters { edges { node { patient { ...F${level + 1} } } } }`).join(' ') : 'id';
    fragments.push(`fragment F${level} on Patient { ${next} }`);
  }
  return `query FanOut(${variables}) { ${root} { ...F0 } } ${fragments.join(' ')}`;
}

describe('measuring an operation', () => {
  it('counts a fan-out of nested fragments as it would expand, without expanding it', () => {
    const started = performance.now();
    const breach = measure(fanOut(14, 4), { id: 'x' });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(breach?.limit).toBe('depth');
    // With depth allowed, the aliases it would expand to are counted all the same.
    const document = parse(fanOut(14, 4));
    const operation = document.definitions.find((definition) => definition.kind === Kind.OPERATION_DEFINITION) as OperationDefinitionNode;
    const aliases = measureOperation(api, document, operation, { id: 'x' }, { ...DEFAULT_OPERATION_LIMITS, maxDepth: 100 }, 1e30);
    expect(aliases?.limit).toBe('aliases');
    expect(aliases?.measured).toBeGreaterThan(4 ** 10);
  });

  it('multiplies the cost of what is under a list by its page size', () => {
    const small = measure('{ patients(first: 10) { edges { node { id gender } } } }');
    expect(small).toBeNull();
    const cost = (first: number) => measure(`{ patients(first: ${first}) { edges { node { id gender encounters(first: 100) { edges { node { id status } } } } } } }`, {}, 10_000);
    expect(cost(1)).toBeNull();
    expect(cost(1000)).toMatchObject({ limit: 'cost', max: 10_000 });
    expect((cost(1000)?.measured ?? 0) > 300_000).toBe(true);
    // A page size in a variable counts as sent, or as the argument's default when not sent.
    const query = 'query($n: Int) { patients(first: $n) { edges { node { id encounters { edges { node { id } } } } } } }';
    expect(measure(query, { n: 1000 }, 10_000)?.limit).toBe('cost');
    expect(measure(query, {}, 10_000)).toBeNull();
  });

  it('counts depth with fragments expanded, aliases, directives, root fields and mutations', () => {
    // Connection plumbing (edges, node) adds no level.
    expect(measure('{ patient(id: "x") { payments { edges { node { invoice { claim { total { cents } } } } } } } }')).toBeNull();
    expect(measure('{ patient(id: "x") { payments { edges { node { invoice { claim { coverage { period { start } } } } } } } } }')).toMatchObject({ limit: 'depth', max: 6, measured: 7 });
    expect(measure(`{ viewer { ${Array.from({ length: 16 }, (_, index) => `a${index}: subject`).join(' ')} } }`)).toMatchObject({ limit: 'aliases', max: 15, measured: 16 });
    expect(measure(`{ viewer { ${Array.from({ length: 51 }, () => 'subject @include(if: true)').join(' ')} } }`)).toMatchObject({ limit: 'directives' });
    expect(measure(`{ ...R } fragment R on Query { ${Array.from({ length: 11 }, (_, index) => `v${index}: viewer { subject }`).join(' ')} }`)?.limit).toBe('rootFields');
    const twoWrites = 'mutation { a: updateMyContact(input: { phone: "1" }) { ok } b: updateMyContact(input: { phone: "2" }) { ok } }';
    expect(measure(twoWrites)).toMatchObject({ limit: 'mutationFields', max: 1, measured: 2 });
  });

  it('counts the representations of _entities on a subgraph', () => {
    const clinical = buildSchema('clinical');
    const representations = Array.from({ length: 1001 }, () => ({ __typename: 'Patient', id: 'x' }));
    expect(measure('query($r: [_Any!]!) { _entities(representations: $r) { __typename } }', { r: representations }, 1_000_000, clinical)).toMatchObject({ limit: 'entities', max: 1000, measured: 1001 });
  });

  it('refuses a long document before parsing it, having counted no more tokens than the limit', () => {
    const flood = `{ viewer { ${'subject '.repeat(100_000)} } }`;
    const started = performance.now();
    expect(measureSource(flood, { ...DEFAULT_OPERATION_LIMITS, maxDocumentBytes: 10_000_000 })).toMatchObject({ limit: 'tokens', max: 1000, measured: 1001 });
    expect(performance.now() - started).toBeLessThan(200);
    expect(measureSource(flood, DEFAULT_OPERATION_LIMITS)).toMatchObject({ limit: 'documentBytes' });
  });
});

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 20 });
});

afterAll(async () => {
  await stack?.stop();
});

describe('an operation past a limit, over HTTP', () => {
  const attacks: Record<string, { query: string; limit: string; variables?: Record<string, unknown> }> = {

    'a token flood': { query: `{ viewer { ${'subject '.repeat(1_500)} } }`, limit: 'tokens' },
    'an alias flood': { query: `{ viewer { ${Array.from({ length: 40 }, (_, index) => `s${index}: subject`).join(' ')} } }`, limit: 'aliases' },
    'a directive flood': { query: `{ viewer { ${'subject @include(if: true) '.repeat(60)} } }`, limit: 'directives' },
    'an over-budget list product': { query: '{ patients(first: 1000) { edges { node { id name { given family } careTeam { members { id name { given family text } } } } } } }', limit: 'cost' },
  };

  for (const [name, attack] of Object.entries(attacks)) {
    it(`refuses ${name} with 400 OPERATION_LIMIT before it runs, on the gateway and the patient subgraph`, async () => {
      const token = await stack.token('clinician');
      for (const url of [stack.gatewayUrl, stack.subgraphUrl('patient')]) {
        const response = await post(url, attack.query, { token, variables: attack.variables });
        expect(response.status, url).toBe(400);
        expect(response.body.data ?? null, url).toBeNull();
        expect(response.body.errors?.[0]?.extensions, url).toMatchObject({ code: 'OPERATION_LIMIT', limit: attack.limit });
        expect(Number(response.body.errors?.[0]?.extensions?.['measured']), url).toBeGreaterThan(Number(response.body.errors?.[0]?.extensions?.['max']));
      }
    });
  }

  it('refuses a fan-out of nested fragments with 400 OPERATION_LIMIT before it runs, on the gateway and on the clinical subgraph through _entities', async () => {
    const token = await stack.token('clinician');
    const id = stack.principals.patient.patientId;
    const attempts = [
      { url: stack.gatewayUrl, query: fanOut(14, 4), variables: { id } },
      { url: stack.subgraphUrl('clinical'), query: fanOut(14, 4, '_entities(representations: $r) { ... on Patient', '$r: [_Any!]!').replace('{ ...F0 } }', '{ ...F0 } } }'), variables: { r: [{ __typename: 'Patient', id }] } },
    ];
    for (const { url, query, variables } of attempts) {
      const started = performance.now();
      const response = await post(url, query, { token, variables });
      expect(response.status, url).toBe(400);
      expect(response.body.errors?.[0]?.extensions, url).toMatchObject({ code: 'OPERATION_LIMIT', limit: 'depth' });
      expect(performance.now() - started, url).toBeLessThan(2000);
    }
  });

  it('runs one mutation per request: several aliased writes write nothing', async () => {
    const token = await stack.token('clinician');
    const patientId = stack.principals.patient.patientId;
    const notes = async () => Number((await stack.sql<{ count: string }>('select count(*) as count from clinical_note where patient_id = ?', [patientId]))[0]?.count);
    const before = await notes();
    const writes = Array.from({ length: 5 }, (_, index) => `n${index}: addClinicalNote(input: { patientId: "${patientId}", typeCode: "11506-3", text: "Note ${index}" }) { ok }`).join(' ');
    for (const url of [stack.gatewayUrl, stack.subgraphUrl('clinical')]) {
      const response = await post(url, `mutation { ${writes} }`, { token });
      expect(response.status, url).toBe(400);
      expect(response.body.errors?.[0]?.extensions, url).toMatchObject({ code: 'OPERATION_LIMIT', limit: 'mutationFields', max: 1, measured: 5 });
    }
    expect(await notes()).toBe(before);
  });

  it('refuses an _entities flood sent straight to a subgraph, and audits the refusal with the operation hash', async () => {
    const token = await stack.token('clinician');
    const representations = Array.from({ length: 1500 }, () => ({ __typename: 'Patient', id: stack.principals.patient.patientId }));
    const response = await post(stack.subgraphUrl('clinical'), 'query Flood($r: [_Any!]!) { _entities(representations: $r) { __typename } }', { token, variables: { r: representations } });
    expect(response.status).toBe(400);
    expect(response.body.errors?.[0]?.extensions).toMatchObject({ code: 'OPERATION_LIMIT', limit: 'entities', max: 1000, measured: 1500 });
    const rows = await stack.sql<{ fields: unknown; operation_hash: string }>(`select fields, operation_hash from audit_event where subject = ? and operation_name = 'Flood'`, [stack.principals.clinician.subject]);
    expect(JSON.stringify(rows)).toContain('OPERATION_LIMIT');
    expect(rows[0]?.operation_hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses a body larger than 256 KB from its length, before the token is checked, on the gateway and on a subgraph', async () => {
    const body = JSON.stringify({ query: `{ viewer { ${'subject '.repeat(40_000)} } }` });
    expect(body.length).toBeGreaterThan(256 * 1024);
    for (const url of [stack.gatewayUrl, stack.subgraphUrl('clinical')]) {
      // No token at all: the size is refused first (401 would mean the body's cost was paid after the token check).
      const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(response.status).toBe(413);
      const answer = (await response.json()) as { errors: { extensions: { code: string } }[] };
      expect(answer.errors[0]?.extensions.code).toBe('BAD_REQUEST');
    }
  });

  it('answers a body that is not JSON with "not valid JSON", not a size message, on the gateway and on a subgraph', async () => {
    for (const url of [stack.gatewayUrl, stack.subgraphUrl('clinical')]) {
      const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${await stack.token('clinician')}` }, body: '{ query: viewer }' });
      expect(response.status).toBe(400);
      const answer = (await response.json()) as { errors: { message: string; extensions: { code: string; reason: string } }[] };
      expect(answer.errors[0]?.message).toMatch(/not valid JSON/);
      expect(answer.errors[0]?.message).not.toMatch(/KB/);
      expect(answer.errors[0]?.extensions).toEqual({ code: 'BAD_REQUEST', reason: 'INVALID_JSON' });
    }
  });

  it('still serves the product\'s own operations: a chart, a billing dashboard of 1,000 rows, introspection', async () => {
    const chart = await post(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { id name { given family } encounters(first: 10) { edges { node { id type { code } } } } observations(first: 10) { edges { node { id value } } } } }', {
      token: await stack.token('clinician'),
      variables: { id: stack.principals.patient.patientId },
    });
    expect(chart.body.errors).toBeUndefined();
    const dashboard = await post(stack.gatewayUrl, 'query Dashboard { patients(first: 1000) { edges { node { id mrn name { given family } birthDate gender ssn phone email address { city state postalCode } } } } }', {
      token: await stack.token('billing'),
    });
    expect(dashboard.body.errors).toBeUndefined();
    const introspection = await post(stack.gatewayUrl, '{ __schema { types { name fields { name type { name kind ofType { name kind ofType { name kind ofType { name } } } } } } } }', { token: await stack.token('integrator') });
    expect(introspection.body.errors).toBeUndefined();
  });
});
