import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PURPOSE_HEADER } from '../src/auth/index.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack();
});

afterAll(async () => {
  await stack?.stop();
});

const CHART = `
  query Chart($id: ID!) {
    patient(id: $id) {
      id mrn gender birthDate ssn phone email
      name { given family text }
      address { line city state postalCode }
      managingOrganization { id name type }
      careTeam { id name members { id npi qualification name { text } } }
      encounters(first: 5) { edges { cursor node { id status class type { system code display } period { start end } } } pageInfo { hasNextPage endCursor } }
      conditions(first: 100) { edges { node { code { system code display } clinicalStatus recordedDate } } }
      medicationRequests { edges { node { medication { system code display } dosageInstruction status } } }
      observations { edges { node { code { system code display } value unit effectiveAt } } }
      allergyIntolerances { edges { node { code { code display } criticality } } }
      clinicalNotes { edges { node { type { code display } text createdAt } } }
      coverages { edges { node { payer memberId plan status } } }
      claims { edges { node { status total { cents currency decimal } diagnosisCodes coverage { id } } } }
      invoices { edges { node { status total { cents decimal } balance { cents decimal } } } }
      payments { edges { node { amount { cents decimal } method invoice { id } } } }
    }
  }`;

interface Chart {
  patient: {
    id: string;
    mrn: string;
    name: { text: string };
    conditions: { edges: { node: { code: { system: string; code: string } } }[] };
    claims: { edges: { node: { diagnosisCodes: string[]; total: { cents: number; decimal: string } } }[] };
    encounters: { edges: unknown[]; pageInfo: { hasNextPage: boolean } };
    observations: { edges: { node: { code: { system: string } } }[] };
    [field: string]: unknown;
  } | null;
}

/**
 * A clinician who also bills: together the two roles read every field of a chart (SSN masked for both), one
 * purpose of use per request: the clinical record when treating (the default), claims, invoices and payments when
 * reading for payment (X-Purpose-Of-Use: HPAYMT). A role that may not read for a request's purpose takes no part in it.
 */
const chartReader = () => stack.token('clinician', { roles: ['clinician', 'billing'], purposes: ['TREAT', 'HPAYMT'] });
const FOR_PAYMENT = { [PURPOSE_HEADER]: 'HPAYMT' };

describe('a chart query through the gateway', () => {
  it('returns one patient with fields from all three subgraphs', async () => {
    const token = await chartReader();
    const id = stack.principals.patient.patientId;
    const response = await post<Chart>(stack.gatewayUrl, CHART, { token, variables: { id } });
    // Treating: billing's lists are not the clinician's to read (coverage is), and billing takes no part.
    expect(new Set(response.body.errors?.map((error) => `${error.path?.join('.')} ${String(error.extensions?.['code'])}`))).toEqual(
      new Set(['patient.claims FORBIDDEN', 'patient.invoices FORBIDDEN', 'patient.payments FORBIDDEN']),
    );
    const patient = response.body.data?.patient;
    expect((patient?.['coverages'] as { edges: unknown[] } | null)?.edges.length).toBeGreaterThan(0);
    const forPayment = await post<Chart>(stack.gatewayUrl, CHART, { token, variables: { id }, headers: FOR_PAYMENT });
    expect(forPayment.body.data?.patient?.claims.edges.length).toBeGreaterThan(0);
    expect(forPayment.body.data?.patient?.conditions ?? null).toBeNull();
    expect(patient?.id).toBe(id);
    expect(patient?.mrn).toMatch(/^MRN\d+/);
    expect(patient?.['ssn']).toMatch(/^\*\*\*-\*\*-\d{4}$/);
    expect(patient?.conditions.edges.length).toBeGreaterThan(0);
    expect(patient?.conditions.edges[0]?.node.code.system).toBe('http://hl7.org/fhir/sid/icd-10-cm');
    expect(patient?.observations.edges[0]?.node.code.system).toBe('http://loinc.org');
    const conditionCodes = new Set(patient?.conditions.edges.map((edge) => edge.node.code.code));
    for (const claim of forPayment.body.data?.patient?.claims.edges ?? []) {
      expect(claim.node.total.decimal).toBe((claim.node.total.cents / 100).toFixed(2));
      for (const code of claim.node.diagnosisCodes) expect(conditionCodes.has(code)).toBe(true);
    }
  });

  it('answers null with NOT_FOUND for a patient that does not exist, and for an id that is not a UUID', async () => {
    const token = await stack.token('clinician');
    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid']) {
      const response = await post<Chart>(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { id mrn } }', { token, variables: { id } });
      expect(response.body.data?.patient).toBeNull();
      expect(response.body.errors?.[0]?.extensions?.['code']).toBe('NOT_FOUND');
    }
  });

  it('finds a patient by MRN', async () => {
    const token = await stack.token('clinician');
    const first = await post<{ patients: { edges: { node: { id: string; mrn: string } }[] } }>(
      stack.gatewayUrl,
      '{ patients(first: 1) { edges { node { id mrn } } } }',
      { token },
    );
    const target = first.body.data?.patients.edges[0]?.node;
    expect(target).toBeTruthy();
    const found = await post<{ patientByMrn: { id: string } | null }>(stack.gatewayUrl, 'query($mrn: String!) { patientByMrn(mrn: $mrn) { id } }', {
      token,
      variables: { mrn: target?.mrn },
    });
    expect(found.body.data?.patientByMrn?.id).toBe(target?.id);
  });

  it('forwards the caller\'s request id to the subgraphs and echoes it', async () => {
    const token = await stack.token('nurse');
    const requestId = 'support-ticket-4711';
    const response = await post<{ viewer: { requestId: string } }>(stack.gatewayUrl, '{ viewer { requestId } }', {
      token,
      headers: { 'x-request-id': requestId },
    });
    expect(response.headers.get('x-request-id')).toBe(requestId);
    expect(response.body.data?.viewer.requestId).toBe(requestId);
  });
});

describe('an _entities query sent straight to a subgraph', () => {
  it('resolves Patient references in the clinical and billing subgraphs', async () => {
    const token = await chartReader();
    const id = stack.principals.patient.patientId;
    const representations = [{ __typename: 'Patient', id }];
    const clinical = await post<{ _entities: { conditions: { edges: unknown[] } }[] }>(
      stack.subgraphUrl('clinical'),
      'query($r: [_Any!]!) { _entities(representations: $r) { ... on Patient { conditions { edges { node { id } } } } } }',
      { token, variables: { r: representations } },
    );
    expect(clinical.body.errors).toBeUndefined();
    expect(clinical.body.data?._entities[0]?.conditions.edges.length).toBeGreaterThan(0);
    const billing = await post<{ _entities: { claims: { edges: unknown[] } }[] }>(
      stack.subgraphUrl('billing'),
      'query($r: [_Any!]!) { _entities(representations: $r) { ... on Patient { claims { edges { node { id } } } } } }',
      { token, variables: { r: representations }, headers: FOR_PAYMENT },
    );
    expect(billing.body.data?._entities[0]?.claims.edges.length).toBeGreaterThan(0);
  });
});
