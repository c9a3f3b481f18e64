import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  getNamedType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isObjectType,
  isIntrospectionType,
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputField,
  type GraphQLInputType,
  type GraphQLSchema,
} from 'graphql';
import { ROLES } from '../src/auth/index.js';
import {
  ANY_PURPOSE,
  ARGUMENT_CLASSIFICATION,
  INPUT_FIELD_CLASSIFICATION,
  argumentUse,
  categoryDeciderFor,
  decideArgumentUse,
  inputFieldUse,
  type ArgumentUse,
} from '../src/policy/index.js';
import { buildSchema } from '../src/subgraphs/server.js';
import { SUBGRAPH_NAMES, type SubgraphName } from '../src/subgraphs/catalog.js';
import { post, startTestStack, type GraphQLResponse, type TestStack } from './support/stack.js';
import { apiSchema } from './support/supergraph.js';

/**
 * Arguments are reads: every argument and input field of the composed
 * schema is classified, and for every role each one it may not use refuses
 * the whole operation with the same answer whatever the value, over HTTP,
 * on the gateway and on the subgraph that serves the field.
 */

const api = apiSchema();

interface ArgumentSite {
  /** `Query.patients(filter:)` or `PatientFilter.gender` */
  coordinate: string;
  /** The root field the operation calls. */
  root: GraphQLField<unknown, unknown>;
  rootType: 'Query' | 'Mutation';
  /** Argument of the root field, then input fields down to the probed one. */
  chain: (GraphQLArgument | GraphQLInputField)[];
  use: ArgumentUse | undefined;
}

function objectTypes(schema: GraphQLSchema) {
  return Object.values(schema.getTypeMap()).filter((type) => isObjectType(type) && !isIntrospectionType(type));
}

/** Every argument of every field and every input-object field, with its classification. */
function everyArgument(schema: GraphQLSchema): { coordinate: string; use: ArgumentUse | undefined }[] {
  const found: { coordinate: string; use: ArgumentUse | undefined }[] = [];
  for (const type of objectTypes(schema)) {
    if (!isObjectType(type)) continue;
    for (const field of Object.values(type.getFields())) {
      if (field.name === '_service') continue;
      for (const argument of field.args) found.push({ coordinate: `${type.name}.${field.name}(${argument.name}:)`, use: argumentUse(`${type.name}.${field.name}`, argument.name, schema) });
    }
  }
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isInputObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields())) found.push({ coordinate: `${type.name}.${field.name}`, use: inputFieldUse(type.name, field.name) });
  }
  return found;
}

/** Every place an operation can put a value: root arguments and input fields under them, each probed on its own. */
function probeSites(schema: GraphQLSchema): ArgumentSite[] {
  const sites: ArgumentSite[] = [];
  for (const rootType of ['Query', 'Mutation'] as const) {
    const type = schema.getType(rootType);
    if (!isObjectType(type)) continue;
    for (const root of Object.values(type.getFields())) {
      if (root.name.startsWith('_')) continue;
      for (const argument of root.args) {
        const coordinate = `${rootType}.${root.name}`;
        const use = argumentUse(coordinate, argument.name, schema);
        if (use?.kind === 'page') continue;
        const named = getNamedType(argument.type);
        if (isInputObjectType(named)) {
          const walk = (input: typeof named, chain: (GraphQLArgument | GraphQLInputField)[]) => {
            for (const field of Object.values(input.getFields())) {
              const inner = getNamedType(field.type);
              if (isInputObjectType(inner)) walk(inner, [...chain, field]);
              else sites.push({ coordinate: `${input.name}.${field.name}`, root, rootType, chain: [...chain, field], use: inputFieldUse(input.name, field.name) });
            }
          };
          walk(named, [argument]);
        } else {
          sites.push({ coordinate: `${coordinate}(${argument.name}:)`, root, rootType, chain: [argument], use });
        }
      }
    }
  }
  return sites;
}

describe('the argument policy', () => {
  it('classifies every argument and input field of the composed schema and of every subgraph (federation included)', () => {
    const unclassified = [api, ...SUBGRAPH_NAMES.map((name) => buildSchema(name))]
      .flatMap((schema) => everyArgument(schema))
      .filter(({ use }) => !use)
      .map(({ coordinate }) => coordinate);
    expect([...new Set(unclassified)]).toEqual([]);
  });

  it('classifies nothing the schema does not have', () => {
    const known = new Set([api, ...SUBGRAPH_NAMES.map((name) => buildSchema(name))].flatMap((schema) => everyArgument(schema)).map(({ coordinate }) => coordinate));
    const listed = [
      ...Object.entries(ARGUMENT_CLASSIFICATION).flatMap(([field, args]) => Object.keys(args).map((argument) => `${field}(${argument}:)`)),
      ...Object.entries(INPUT_FIELD_CLASSIFICATION).flatMap(([type, fields]) => Object.keys(fields).map((field) => `${type}.${field}`)),
    ];
    expect(listed.filter((coordinate) => !known.has(coordinate))).toEqual([]);
  });

  it('never lets a masked decision stand for a full read: a role that sees only the last four of an SSN or the year of a birth date cannot match on them', () => {
    const masked = decideArgumentUse(categoryDeciderFor(['clinician'], ANY_PURPOSE), { kind: 'value', category: 'ssn' }, true);
    expect(masked).toEqual({ allowed: false, reason: 'MASKED_ONLY' });
    expect(decideArgumentUse(categoryDeciderFor(['researcher'], ANY_PURPOSE), { kind: 'value', category: 'birthDate' }, true)).toEqual({ allowed: false, reason: 'MASKED_ONLY' });
    expect(decideArgumentUse(categoryDeciderFor(['clinician'], ANY_PURPOSE), { kind: 'value', category: 'mrn' }, false)).toEqual({ allowed: false, reason: 'MFA_REQUIRED' });
  });

  it('keeps identifier lookups from the research role and from partners', () => {
    for (const role of ['researcher', 'partner', 'integrator'] as const) {
      expect(decideArgumentUse(categoryDeciderFor([role], ANY_PURPOSE), argumentUse('Query.patientByMrn', 'mrn'), true).allowed, role).toBe(false);
    }
  });
});

let stack: TestStack;
/** Values that exist, so a role that could use the argument would see two different answers. */
const realValues = new Map<string, [unknown, unknown]>();

beforeAll(async () => {
  stack = await startTestStack({ patients: 40 });
  const organization = stack.principals.billing.organizationId;
  const [team] = await stack.sql<{ id: string }>('select care_team_id as id from patient where managing_organization_id = ? and care_team_id is not null group by care_team_id order by count(*) desc limit 1', [organization]);
  const [otherOrganization] = await stack.sql<{ id: string }>('select id from organization where id <> ? order by id limit 1', [organization]);
  realValues.set('PatientFilter.careTeamId', [team?.id, '00000000-0000-4000-8000-000000000001']);
  realValues.set('PatientFilter.managingOrganizationId', [organization, otherOrganization?.id]);
  realValues.set('PatientFilter.gender', ['male', 'female']);
  realValues.set('AuditEventFilter.patientId', [stack.principals.patient.patientId, '00000000-0000-4000-8000-000000000001']);
  const chart = await post<{ patient: { mrn: string } }>(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { mrn } }', {
    token: await stack.token('clinician'),
    variables: { id: stack.principals.patient.patientId },
  });
  realValues.set('Query.patientByMrn(mrn:)', [chart.body.data?.patient.mrn, 'NO-SUCH-MRN']);
  realValues.set('Query.patient(id:)', [stack.principals.patient.patientId, '00000000-0000-4000-8000-000000000001']);
});

afterAll(async () => {
  await stack?.stop();
});

/** Two distinct values of an input type, real ones where the test knows them. */
function probeValues(type: GraphQLInputType, coordinate: string): [unknown, unknown] {
  const known = realValues.get(coordinate);
  if (known) return known;
  if (isNonNullType(type)) return probeValues(type.ofType, coordinate);
  if (isListType(type)) {
    const [a, b] = probeValues(type.ofType, coordinate);
    return [[a], [b]];
  }
  const named = getNamedType(type);
  if (isEnumType(named)) {
    const values = named.getValues();
    return [values[0]?.value, values[1]?.value ?? values[0]?.value];
  }
  switch (named.name) {
    case 'ID':
      return ['00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002'];
    case 'Int':
      return [1, 2];
    case 'Boolean':
      return [true, false];
    case 'Date':
      return ['2020-01-01', '2020-01-02'];
    case 'DateTime':
      return ['2020-01-01T00:00:00Z', '2020-01-02T00:00:00Z'];
    default:
      return ['probe-a', 'probe-b'];
  }
}

/** A value for a required input that is not probed: valid in shape, naming nothing. */
function filler(type: GraphQLInputType): unknown {
  return probeValues(type, '')[0];
}

/** The variables of one probe: the root argument's value with the probed input field set, required siblings filled. */
function probeVariables(site: ArgumentSite, value: unknown): unknown {
  const build = (index: number): unknown => {
    const element = site.chain[index];
    if (!element) return undefined;
    if (index === site.chain.length - 1) return value;
    const named = getNamedType(element.type);
    if (!isInputObjectType(named)) return undefined;
    const next = site.chain[index + 1];
    const object: Record<string, unknown> = {};
    for (const field of Object.values(named.getFields())) {
      if (field === next) object[field.name] = build(index + 1);
      else if (isNonNullType(field.type)) object[field.name] = isInputObjectType(getNamedType(field.type)) ? fillObject(getNamedType(field.type) as never) : filler(field.type);
    }
    return object;
  };
  return build(0);
}

function fillObject(type: { getFields(): Record<string, GraphQLInputField> }): Record<string, unknown> {
  return Object.fromEntries(Object.values(type.getFields()).filter((field) => isNonNullType(field.type)).map((field) => [field.name, filler(field.type)]));
}

function operationOf(site: ArgumentSite): string {
  const argument = site.chain[0] as GraphQLArgument;
  const others = site.root.args.filter((other) => other !== argument && isNonNullType(other.type));
  const declared = [`$v: ${String(argument.type)}`, ...others.map((other) => `$${other.name}: ${String(other.type)}`)];
  const passed = [`${argument.name}: $v`, ...others.map((other) => `${other.name}: $${other.name}`)];
  const keyword = site.rootType === 'Query' ? 'query' : 'mutation';
  return `${keyword} Probe(${declared.join(', ')}) { ${site.root.name}(${passed.join(', ')}) { __typename } }`;
}

function subgraphServing(site: ArgumentSite): SubgraphName {
  const name = SUBGRAPH_NAMES.find((subgraph) => {
    const root = buildSchema(subgraph).getType(site.rootType);
    return isObjectType(root) && !!root.getFields()[site.root.name];
  });
  if (!name) throw new Error(`no subgraph serves ${site.rootType}.${site.root.name}`);
  return name;
}

function refusalOf(response: GraphQLResponse): unknown {
  return { status: response.status, data: response.body.data, errors: response.body.errors };
}

function deniedArgument(response: GraphQLResponse): boolean {
  return response.status === 403 && (response.body.errors ?? []).some((error) => error.extensions?.['reason'] === 'ARGUMENT_DENIED');
}

async function inBatches<T>(items: T[], size: number, run: (item: T) => Promise<void>): Promise<void> {
  for (let index = 0; index < items.length; index += size) await Promise.all(items.slice(index, index + size).map(run));
}

describe('the filter-by-value attack, for every role and every argument, over HTTP', () => {
  const sites = probeSites(api);

  it('finds the arguments to probe', () => {
    expect(sites.map((site) => site.coordinate)).toEqual(
      expect.arrayContaining(['Query.patientByMrn(mrn:)', 'PatientFilter.careTeamId', 'PatientFilter.gender', 'AuditEventFilter.subject', 'AddressInput.postalCode', 'RecordPaymentInput.amountCents']),
    );
  });

  for (const role of ROLES) {
    it(`gives ${role} one and the same refusal for two values of anything it may not read in full, on the gateway and the subgraph; and lets it use the rest`, async () => {
      const token = await stack.token(role);
      const decide = categoryDeciderFor([role], ANY_PURPOSE);
      const failures: string[] = [];
      await inBatches(sites, 4, async (site) => {
        // Required siblings of a probed input field share its category (writes), and optional ones are left out.
        const allowed = decideArgumentUse(decide, site.use, true).allowed;
        const last = site.chain[site.chain.length - 1] as GraphQLArgument | GraphQLInputField;
        const [first, second] = probeValues(last.type, site.coordinate);
        const others = Object.fromEntries(site.root.args.filter((other) => other !== site.chain[0] && isNonNullType(other.type)).map((other) => [other.name, filler(other.type)]));
        const query = operationOf(site);
        for (const url of [stack.gatewayUrl, stack.subgraphUrl(subgraphServing(site))]) {
          const probe = (value: unknown) => post(url, query, { token, variables: { v: probeVariables(site, value), ...others } });
          const [a, b] = await Promise.all([probe(first), probe(second)]);
          const label = `${role} ${site.coordinate} at ${url}`;
          if (allowed) {
            if (deniedArgument(a) || deniedArgument(b)) failures.push(`${label}: refused although the role may read it in full`);
          } else {
            if (!deniedArgument(a) || !deniedArgument(b)) failures.push(`${label}: not refused (${a.status}, ${b.status})`);
            else if (JSON.stringify(refusalOf(a)) !== JSON.stringify(refusalOf(b))) failures.push(`${label}: two values answered differently`);
          }
        }
      });
      expect(failures).toEqual([]);
    });
  }

  it('refuses an argument written inline, behind a fragment and an alias, with the argument\'s path', async () => {
    const token = await stack.token('billing');
    const [careTeamId] = realValues.get('PatientFilter.careTeamId') ?? [];
    const query = `query { ...Counts } fragment Counts on Query { many: patients(first: 5, filter: { careTeamId: "${String(careTeamId)}" }) { edges { node { id } } } }`;
    for (const url of [stack.gatewayUrl, stack.subgraphUrl('patient')]) {
      const response = await post(url, query, { token });
      expect(response.status, url).toBe(403);
      expect(response.body.data ?? null).toBeNull();
      expect(response.body.errors?.map((error) => error.extensions), url).toEqual([
        expect.objectContaining({ code: 'FORBIDDEN', reason: 'ARGUMENT_DENIED', argument: 'PatientFilter.careTeamId', argumentPath: 'many.filter.careTeamId' }),
      ]);
      expect(JSON.stringify(response.body)).not.toContain(String(careTeamId));
    }
  });

  it('lets a role filter by what it may read in full, and asks MFA for PHI arguments', async () => {
    const token = await stack.token('billing');
    const byGender = await post<{ patients: { edges: unknown[] } }>(stack.gatewayUrl, 'query { patients(first: 5, filter: { gender: female }) { edges { node { id } } } }', { token });
    expect(byGender.body.errors).toBeUndefined();
    expect(byGender.body.data?.patients.edges.length).toBeGreaterThan(0);
    const noMfa = await stack.token('billing', { mfa: false });
    const refused = await post(stack.gatewayUrl, 'query { patients(first: 5, filter: { gender: female }) { edges { node { id } } } }', { token: noMfa });
    expect(refused.status).toBe(403);
    expect(refused.body.errors?.[0]?.extensions).toMatchObject({ reason: 'ARGUMENT_DENIED', cause: 'MFA_REQUIRED' });
    const nullFilter = await post(stack.gatewayUrl, 'query($g: AdministrativeGender) { patients(first: 1, filter: { gender: $g }) { edges { node { id } } } }', { token: noMfa, variables: { g: null } });
    expect(nullFilter.status).toBe(200);
  });

  it('records a refused PHI argument in the audit trail as a denied read, without its value', async () => {
    const token = await stack.token('partner');
    const [mrn] = realValues.get('Query.patientByMrn(mrn:)') ?? [];
    await post(stack.subgraphUrl('patient'), 'query LookUp($m: String!) { patientByMrn(mrn: $m) { id } }', { token, variables: { m: mrn } });
    const rows = await stack.sql<{ fields: unknown }>(`select fields from audit_event where subject = ? and operation_name = 'LookUp'`, [stack.principals.partner.subject]);
    expect(JSON.stringify(rows)).toContain('"field":"Query.patientByMrn(mrn:)"');
    expect(JSON.stringify(rows)).toContain('ARGUMENT_DENIED');
    expect(JSON.stringify(rows)).not.toContain(String(mrn));
  });
});

describe('the introspection view of a role', () => {
  const QUERY = `{ __schema { types { name kind inputFields { name } fields { name args { name } } } } }`;
  interface View {
    __schema: { types: { name: string; kind: string; inputFields: { name: string }[] | null; fields: { name: string; args: { name: string }[] }[] | null }[] };
  }

  it('leaves out the arguments and input fields the role may not use, and keeps those it may', async () => {
    for (const url of [stack.gatewayUrl, stack.subgraphUrl('patient')]) {
      const response = await post<View>(url, QUERY, { token: await stack.token('admin') });
      expect(response.body.errors, url).toBeUndefined();
      const types = new Map(response.body.data?.__schema.types.map((type) => [type.name, type]));
      // An admin manages care teams of its organization: it may filter by care team and organization, not by gender (which it may not read).
      expect(types.get('PatientFilter')?.inputFields?.map((field) => field.name).sort(), url).toEqual(['careTeamId', 'managingOrganizationId']);
      const decide = categoryDeciderFor(['admin'], ANY_PURPOSE);
      for (const type of response.body.data?.__schema.types ?? []) {
        if (type.name.startsWith('__')) continue;
        for (const field of type.inputFields ?? []) expect(decideArgumentUse(decide, inputFieldUse(type.name, field.name), true).allowed, `${type.name}.${field.name}`).toBe(true);
        for (const field of type.fields ?? []) {
          for (const argument of field.args) {
            expect(decideArgumentUse(decide, argumentUse(`${type.name}.${field.name}`, argument.name, api), true).allowed, `${type.name}.${field.name}(${argument.name}:)`).toBe(true);
          }
        }
      }
    }
  });

  it('shows an integrator no argument that reaches data', async () => {
    const response = await post<View>(stack.gatewayUrl, QUERY, { token: await stack.token('integrator') });
    const inputs = response.body.data?.__schema.types.filter((type) => type.kind === 'INPUT_OBJECT' && !type.name.startsWith('__')).map((type) => type.name);
    expect(inputs).toEqual([]);
  });
});
