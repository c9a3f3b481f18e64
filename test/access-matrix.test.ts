import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getNamedType, type GraphQLSchema } from 'graphql';
import { ROLES, type Role } from '../src/auth/index.js';
import { ACCESS_POLICY, ANY_PURPOSE, MASKERS, decideField } from '../src/policy/index.js';
import { Coverage, Patient } from '../src/db/entities.js';
import { StudyPseudonyms, toBuffer } from '../src/crypto/index.js';
import { isList, printSelection, selectEverything, type SelectedField } from './support/operations.js';
import { apiSchema } from './support/supergraph.js';
import { sensitivitiesOf } from '../src/policy/sensitivity.js';
import { clearanceOf } from '../src/subgraphs/sensitive-rows.js';
import { post, startTestStack, TEST_STUDY, type GraphQLResponse, type TestStack } from './support/stack.js';

/**
 * The access matrix, executed: for every role, one query that selects every
 * field reachable from a patient, sent through the gateway; every field is
 * checked against the policy: allowed fields carry the true value, masked
 * ones the masked value, denied ones null with FORBIDDEN at their path.
 */

let stack: TestStack;
let schema: GraphQLSchema;
let selection: SelectedField[];
let query: string;
let patientId: string;
let patientOrganization: string;
let reference: Record<string, unknown>;
const DIRECTORY_TYPES = new Set(['Practitioner', 'Organization', 'CareTeam']);

beforeAll(async () => {
  // The query selects every field reachable from a patient: deeper and costlier than any operation of the product (README, "Limits").
  stack = await startTestStack({ patients: 40, env: { OPERATION_MAX_DEPTH: '12', OPERATION_MAX_COST: '10000000' } });
  schema = apiSchema();
  selection = selectEverything(schema, 'Patient');
  query = `query Everything($id: ID!) { patient(id: $id) { ${printSelection(schema, 'Patient', selection)} } }`;
  patientId = stack.principals.patient.patientId ?? '';
  const row = await stack.api.db!.fork().findOneOrFail(Patient, patientId);
  patientOrganization = row.managingOrganization.id;
  // The patient reading their own record (purpose PATRQT, the default of the token's first role; the other roles of the token may not read
  // for it and take no part) reads every field. The token names every role that reads data (the researcher's de-identified access never
  // shares a token; the integrator reads no record and a partner of this organization has no sharing agreement).
  const everything = await post<{ patient: Record<string, unknown> }>(stack.gatewayUrl, query, {
    token: await stack.token('patient', { roles: ['patient', ...ROLES.filter((role) => role !== 'researcher' && role !== 'integrator' && role !== 'partner' && role !== 'patient')], organizationId: patientOrganization }),
    variables: { id: patientId },
  });
  expect(everything.body.errors).toBeUndefined();
  reference = everything.body.data?.patient ?? {};
});

afterAll(async () => {
  await stack?.stop();
});

async function tokenFor(role: Role, mfa = true): Promise<string> {
  const organizationScoped = ACCESS_POLICY[role].patients === 'organization';
  return stack.token(role, { mfa, ...(organizationScoped && { organizationId: patientOrganization }) });
}

/** The stored value behind a masked field, read from the database and decrypted. */
async function storedValue(type: string, field: string, parent: Record<string, unknown>): Promise<unknown> {
  const em = stack.api.db!.fork();
  const cipher = stack.api.sealer!.cipher;
  const open = (bytes: Uint8Array | null | undefined, table: string, column: string, rowId: string) =>
    bytes ? cipher.decrypt(toBuffer(bytes), { table, column, rowId }) : Promise.resolve(null);
  if (type === 'Patient' || type === 'Address') {
    const patient = await em.findOneOrFail(Patient, patientId);
    if (field === 'ssn') return open(patient.ssn, 'patient', 'ssn', patientId);
    if (field === 'birthDate') return open(patient.birthDate, 'patient', 'birth_date', patientId);
    if (field === 'postalCode') return open(patient.postalCode, 'patient', 'postal_code', patientId);
  }
  if (type === 'Coverage' && field === 'memberId') {
    const id = parent['id'] as string;
    return open((await em.findOneOrFail(Coverage, id)).memberId, 'coverage', 'member_id', id);
  }
  throw new Error(`no stored value known for ${type}.${field}`);
}

interface Finding {
  path: string;
  problem: string;
}

async function compare(
  role: Role,
  mfa: boolean,
  typeName: string,
  fields: SelectedField[],
  expected: Record<string, unknown>,
  actual: Record<string, unknown>,
  path: (string | number)[],
  errors: Map<string, { code: unknown; reason: unknown }>,
  findings: Finding[],
): Promise<void> {
  expected = withoutWithheldRows(role, expected);
  for (const field of fields) {
    const here = [...path, field.name];
    const key = here.join('.');
    const decision = decideField([role], typeName, field.name, undefined, ANY_PURPOSE);
    const value = actual[field.name];
    const refused = decision.decision.kind === 'deny' ? 'ROLE_DENIED' : decision.phi && !mfa ? 'MFA_REQUIRED' : null;
    if (refused) {
      const error = errors.get(key);
      if (value !== null) findings.push({ path: key, problem: `denied (${refused}) but returned ${JSON.stringify(value)}` });
      if (error?.code !== 'FORBIDDEN' || error.reason !== refused) findings.push({ path: key, problem: `denied (${refused}) without its FORBIDDEN error` });
      continue;
    }
    const expectedValue = expected[field.name];
    const childType = getNamedType(field.type).name;
    if (!field.children) {
      // Cursors are sealed for their caller: opaque strings, never the same twice.
      if (field.name === 'cursor' || field.name === 'endCursor') {
        if (expectedValue !== null && (typeof value !== 'string' || value.length < 20)) findings.push({ path: key, problem: `expected a sealed cursor, got ${JSON.stringify(value)}` });
        continue;
      }
      const want =
        decision.decision.kind === 'mask' && expectedValue !== null
          ? decision.decision.masker === 'studyPseudonym'
            ? pseudonyms().hide(TEST_STUDY, typeName, expectedValue as string)
            : MASKERS[decision.decision.masker].apply(await storedValue(typeName, field.name, expected))
          : expectedValue;
      if (JSON.stringify(value) !== JSON.stringify(want)) findings.push({ path: key, problem: `expected ${JSON.stringify(want)}, got ${JSON.stringify(value)}` });
      continue;
    }
    if (DIRECTORY_TYPES.has(childType) && ACCESS_POLICY[role].directory === 'none') {
      if (value !== null) findings.push({ path: key, problem: 'directory row visible to a role without directory access' });
      continue;
    }
    if (expectedValue === null || expectedValue === undefined) {
      if (value !== null) findings.push({ path: key, problem: `expected null, got ${JSON.stringify(value)}` });
      continue;
    }
    if (value === null || value === undefined) {
      findings.push({ path: key, problem: 'allowed but null' });
      continue;
    }
    if (isList(field.type)) {
      const expectedList = expectedValue as Record<string, unknown>[];
      const actualList = value as Record<string, unknown>[];
      if (expectedList.length !== actualList.length) findings.push({ path: key, problem: `expected ${expectedList.length} items, got ${actualList.length}` });
      for (let index = 0; index < Math.min(expectedList.length, actualList.length); index += 1) {
        await compare(role, mfa, childType, field.children, expectedList[index] ?? {}, actualList[index] ?? {}, [...here, index], errors, findings);
      }
    } else {
      await compare(role, mfa, childType, field.children, expectedValue as Record<string, unknown>, value as Record<string, unknown>, here, errors, findings);
    }
  }
}

/**
 * The reference (the patient reading all of their record) less the rows a
 * role's clearance withholds (src/subgraphs/sensitive-rows.ts): labelled
 * conditions, medications, notes and claims, and the invoices and payments
 * of withheld claims. A connection left without rows has no end cursor.
 */
function withoutWithheldRows(role: Role, expected: Record<string, unknown>): Record<string, unknown> {
  const edges = expected['edges'];
  if (!Array.isArray(edges)) return expected;
  const purpose = ACCESS_POLICY[role].defaultPurpose;
  const cleared = clearanceOf({ roles: [role], purpose });
  const labelsOf = (node: Record<string, unknown> | undefined): string[] => {
    const own = node?.['securityLabels'] as { code: string }[] | undefined;
    if (own) return own.map((label) => label.code);
    const claim = (node?.['claim'] ?? (node?.['invoice'] as Record<string, unknown> | undefined)?.['claim']) as Record<string, unknown> | undefined;
    return claim ? labelsOf(claim) : [];
  };
  const kept = (edges as { node?: Record<string, unknown> }[]).filter((edge) => sensitivitiesOf(labelsOf(edge.node)).every((category) => cleared.includes(category)));
  if (kept.length === edges.length) return expected;
  const pageInfo = expected['pageInfo'] as Record<string, unknown> | undefined;
  return { ...expected, edges: kept, ...(pageInfo && kept.length === 0 && { pageInfo: { ...pageInfo, endCursor: null } }) };
}

function errorsByPath(response: GraphQLResponse): Map<string, { code: unknown; reason: unknown }> {
  return new Map(
    (response.body.errors ?? []).map((error) => [(error.path ?? []).join('.'), { code: error.extensions?.['code'], reason: error.extensions?.['reason'] }]),
  );
}

/** The pseudonyms a researcher of TEST_STUDY is shown, under the stack's key ring. */
function pseudonyms(): StudyPseudonyms {
  return new StudyPseudonyms(stack.api.sealer!.indexKeys);
}

async function findingsFor(role: Role, mfa: boolean): Promise<Finding[]> {
  // A researcher names the patient by its study pseudonym, as it was shown it.
  const id = role === 'researcher' ? pseudonyms().hide(TEST_STUDY, 'Patient', patientId) : patientId;
  const response = await post<{ patient: Record<string, unknown> | null }>(stack.gatewayUrl, query, {
    token: await tokenFor(role, mfa),
    variables: { id },
  });
  const errors = errorsByPath(response);
  const patient = response.body.data?.patient ?? null;
  const lookup = decideField([role], 'Query', 'patient', undefined, ANY_PURPOSE);
  if (lookup.decision.kind === 'deny') {
    // A role that reads no record may not look one up by its id: refused whole, before anything runs.
    expect(response.status).toBe(403);
    expect(patient).toBeNull();
    expect(response.body.errors?.[0]?.extensions).toMatchObject({ code: 'FORBIDDEN', reason: 'ARGUMENT_DENIED' });
    return [];
  }
  expect(response.status).toBe(200);
  expect(patient, `${role} sees the patient`).not.toBeNull();
  const findings: Finding[] = [];
  await compare(role, mfa, 'Patient', selection, reference, patient ?? {}, ['patient'], errors, findings);
  const unexpected = (response.body.errors ?? []).filter((error) => error.extensions?.['code'] !== 'FORBIDDEN');
  for (const error of unexpected) findings.push({ path: (error.path ?? []).join('.'), problem: `unexpected ${String(error.extensions?.['code'])}` });
  return findings;
}

describe('the access matrix, executed through the gateway', () => {
  it('selects every field of a patient across the three subgraphs', () => {
    const count = (fields: SelectedField[]): number => fields.reduce((sum, field) => sum + 1 + (field.children ? count(field.children) : 0), 0);
    expect(count(selection)).toBeGreaterThan(150);
    expect(Object.keys(reference)).toEqual(expect.arrayContaining(['ssn', 'clinicalNotes', 'claims', 'careTeam']));
  });

  for (const role of ROLES) {
    it(`gives ${role} exactly what the policy says, field by field`, async () => {
      expect(await findingsFor(role, true)).toEqual([]);
    });
  }

  it('gives a token without MFA no PHI field at all, with MFA_REQUIRED on each', async () => {
    expect(await findingsFor('clinician', false)).toEqual([]);
    expect(await findingsFor('billing', false)).toEqual([]);
  });
});
