import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Supergraph } from '@apollo/federation-internals';
import { Kind, getVariableValues, parse, validate, type OperationDefinitionNode } from 'graphql';
import { SUPERGRAPH_PATH } from '../src/gateway/compose.js';
import { ANY_PURPOSE, categoryDeciderFor, refusedArguments } from '../src/policy/index.js';

/**
 * `npm run bench:arguments`: what the argument check (arguments are reads,
 * run before every operation on the gateway and on each subgraph) costs
 * per request, beside what every request already pays for validation, on
 * the operations of the benchmark suite. In process, no I/O: medians of
 * rounds, each timing many runs of one operation.
 */
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '15' }, runs: { type: 'string', default: '2000' } } });
const rounds = Number(values.rounds);
const runs = Number(values.runs);

const schema = Supergraph.build(readFileSync(SUPERGRAPH_PATH, 'utf8')).apiSchema().toGraphQLJSSchema();
const OPERATIONS: Record<string, { query: string; variables: Record<string, unknown> }> = {
  dashboard: { query: 'query Dashboard { patients(first: 1000) { edges { node { id mrn name { given family } birthDate gender ssn phone email address { city state postalCode } } } } }', variables: {} },
  lookup: { query: 'query Lookup($mrn: String!) { patientByMrn(mrn: $mrn) { id mrn name { given family } birthDate gender } }', variables: { mrn: 'MRN00000001' } },
  chart: {
    query:
      'query Chart($id: ID!, $after: String) { patient(id: $id) { id name { given family } encounters(first: 10, after: $after) { edges { node { id status } } } conditions(first: 10) { edges { node { id code { code } } } } claims(first: 10) { edges { node { id status } } } } }',
    variables: { id: '00000000-0000-4000-8000-000000000001', after: null },
  },
  filtered: { query: 'query Filtered($f: PatientFilter) { patients(first: 50, filter: $f) { edges { node { id gender } } } }', variables: { f: { gender: 'female', managingOrganizationId: '00000000-0000-4000-8000-000000000001' } } },
};

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

function timePerRun(work: () => void): number {
  const samples: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    const start = process.hrtime.bigint();
    for (let run = 0; run < runs; run += 1) work();
    samples.push(Number(process.hrtime.bigint() - start) / 1000 / runs);
  }
  return median(samples);
}

const decide = categoryDeciderFor(['billing'], ANY_PURPOSE);
console.log(`argument check vs validation, in process, median of ${rounds} rounds of ${runs} runs (µs per operation); node ${process.version}`);
console.log('| operation | validate | argument check (coerce variables + walk) | check / validate |');
console.log('|---|---|---|---|');
for (const [name, { query, variables }] of Object.entries(OPERATIONS)) {
  const document = parse(query);
  const operation = document.definitions.find((definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION);
  if (!operation) throw new Error(`${name} has no operation`);
  if (validate(schema, document).length > 0) throw new Error(`${name} does not validate`);
  const validation = timePerRun(() => validate(schema, document));
  const check = timePerRun(() => {
    const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], variables);
    refusedArguments(schema, document, operation, coerced.coerced, decide, true);
  });
  console.log(`| ${name} | ${validation.toFixed(1)} | ${check.toFixed(1)} | ${(check / validation).toFixed(2)}x |`);
}
