import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthenticationError, PURPOSE_HEADER, principalFromClaims, type PurposeOfUse, type Role } from '../src/auth/index.js';
import { toFhirAuditEvent, verifyAuditChain, auditEntries, auditEventFromRow } from '../src/audit/index.js';
import { ACCESS_POLICY, ANY_PURPOSE, choosePurpose, decisionTable, deny, type RolePolicy } from '../src/policy/index.js';
import { post, startTestStack, type GraphQLResponse, type TestStack } from './support/stack.js';

/**
 * Purpose of use: every request reads for one HL7 v3 PurposeOfUse code,
 * allowed by the token's `purpose_of_use` claim and chosen with the
 * X-Purpose-Of-Use header; the policy decides per (role, purpose). Tried
 * through the gateway and straight at a subgraph, with purposes the token
 * does not allow, codes nobody knows, and an insider removing the purpose
 * from a stored audit event.
 */

describe('the purpose_of_use claim', () => {
  const claims = (purposeOfUse: unknown) => ({ sub: 'clinician-1', jti: 'token-1', exp: 2_000_000_000, roles: ['clinician'], ...(purposeOfUse !== undefined && { purpose_of_use: purposeOfUse }) });

  it('reads an array or a space-separated string of codes, leaving out codes this API does not know', () => {
    expect(principalFromClaims(claims(['TREAT', 'HPAYMT', 'TREAT'])).purposes).toEqual(['TREAT', 'HPAYMT']);
    expect(principalFromClaims(claims('TREAT  HPAYMT')).purposes).toEqual(['TREAT', 'HPAYMT']);
    expect(principalFromClaims(claims(['TREAT', 'MADEUP', 'constructor'])).purposes).toEqual(['TREAT']);
    expect(principalFromClaims(claims(undefined)).purposes).toBeNull();
    // The purpose of a request is chosen later, per request (http.ts): a verified token alone reads for none.
    expect(principalFromClaims(claims(['TREAT'])).purpose).toBeNull();
  });

  it('refuses a token whose claim is not a list of codes', () => {
    for (const claim of [42, { TREAT: true }, [['TREAT']], ['TREAT', 7], Array.from({ length: 40 }, () => 'TREAT'), ['T'.repeat(40)]]) {
      let refusal: unknown;
      try {
        principalFromClaims(claims(claim));
      } catch (error) {
        refusal = error;
      }
      expect(refusal, JSON.stringify(claim)).toBeInstanceOf(AuthenticationError);
      expect((refusal as AuthenticationError).reason).toBe('INVALID_CLAIMS');
    }
  });
});

describe('choosing the purpose of a request', () => {
  it('takes the header when the token allows it and a role may read for it', () => {
    expect(choosePurpose(['clinician'], ['TREAT', 'HPAYMT'], 'HPAYMT')).toEqual({ purpose: 'HPAYMT', roles: ['clinician'] });
    expect(choosePurpose(['clinician'], ['TREAT', 'HPAYMT'], ' TREAT ')).toEqual({ purpose: 'TREAT', roles: ['clinician'] });
  });

  it('refuses a purpose the claim does not name, a code nobody knows, and one no role may read for', () => {
    expect(choosePurpose(['clinician'], ['TREAT'], 'HPAYMT')).toEqual({ refusal: 'PURPOSE_NOT_IN_TOKEN' });
    expect(choosePurpose(['clinician'], ['TREAT'], 'treat')).toEqual({ refusal: 'PURPOSE_UNKNOWN' });
    expect(choosePurpose(['clinician'], ['TREAT'], 'TREAT,HPAYMT')).toEqual({ refusal: 'PURPOSE_UNKNOWN' });
    expect(choosePurpose(['clinician'], ['TREAT'], 'toString')).toEqual({ refusal: 'PURPOSE_UNKNOWN' });
    expect(choosePurpose(['billing'], ['TREAT'], 'TREAT')).toEqual({ refusal: 'PURPOSE_NOT_ALLOWED' });
    expect(choosePurpose(['clinician'], ['HRESCH'], undefined)).toEqual({ refusal: 'PURPOSE_NOT_ALLOWED' });
    // A claim of codes this API does not know allows nothing.
    expect(choosePurpose(['clinician'], [], undefined)).toEqual({ refusal: 'PURPOSE_REQUIRED' });
  });

  it('falls back to the only purpose claimed, else to the first role default the token allows', () => {
    expect(choosePurpose(['clinician'], ['HPAYMT'], undefined)).toEqual({ purpose: 'HPAYMT', roles: ['clinician'] });
    expect(choosePurpose(['clinician'], ['HPAYMT', 'TREAT'], undefined)).toEqual({ purpose: 'TREAT', roles: ['clinician'] });
    // Only the roles that may read for the purpose act in the request.
    expect(choosePurpose(['billing', 'clinician'], null, undefined)).toEqual({ purpose: 'HPAYMT', roles: ['billing', 'clinician'] });
    expect(choosePurpose(['clinician', 'billing'], null, undefined)).toEqual({ purpose: 'TREAT', roles: ['clinician'] });
    expect(choosePurpose(['partner', 'billing'], null, undefined)).toEqual({ purpose: 'TREAT', roles: ['partner'] });
  });

  it('allows only the roles\' defaults to a token without the claim', () => {
    expect(choosePurpose(['clinician'], null, 'TREAT')).toEqual({ purpose: 'TREAT', roles: ['clinician'] });
    expect(choosePurpose(['clinician'], null, 'HPAYMT')).toEqual({ refusal: 'PURPOSE_NOT_ALLOWED' });
  });

  it('refuses a request without a purpose where the policy gives the role no default', () => {
    const policy: Record<Role, RolePolicy> = { ...ACCESS_POLICY, partner: { ...ACCESS_POLICY.partner, defaultPurpose: null } };
    expect(choosePurpose(['partner'], null, undefined, policy)).toEqual({ refusal: 'PURPOSE_REQUIRED' });
    expect(choosePurpose(['partner'], ['TREAT', 'HPAYMT'], undefined, policy)).toEqual({ refusal: 'PURPOSE_REQUIRED' });
    expect(choosePurpose(['partner'], ['TREAT', 'HPAYMT'], 'HPAYMT', policy)).toEqual({ purpose: 'HPAYMT', roles: ['partner'] });
  });
});

describe('decisions per (role, purpose)', () => {
  it('gives a clinician reading for payment who the patient is and the coverage, not the clinical record', () => {
    const payment = decisionTable(['clinician'], 'HPAYMT');
    const treatment = decisionTable(['clinician'], 'TREAT');
    for (const [type, field] of [['Patient', 'name'], ['Patient', 'birthDate'], ['Coverage', 'payer'], ['Patient', 'id'], ['Query', 'patient']] as const) {
      expect(payment.get(type, field).decision.kind, `${type}.${field}`).not.toBe('deny');
    }
    for (const [type, field] of [['Patient', 'conditions'], ['Condition', 'code'], ['ClinicalNote', 'text'], ['Patient', 'clinicalNotes'], ['Mutation', 'openEmergencyAccess'], ['Mutation', 'addClinicalNote']] as const) {
      expect(payment.get(type, field).decision, `${type}.${field}`).toEqual(deny);
      expect(treatment.get(type, field).decision.kind, `${type}.${field}`).not.toBe('deny');
    }
    // The masks stay as they are: a purpose narrows what a role reads, never how.
    expect(payment.get('Patient', 'ssn').decision).toEqual(deny);
    expect(payment.get('Coverage', 'memberId').decision).toEqual(treatment.get('Coverage', 'memberId').decision);
  });

  it('grants nothing for a purpose the role does not list, or without a purpose', () => {
    for (const table of [decisionTable(['billing'], 'TREAT'), decisionTable(['clinician'], null), decisionTable(['patient'], 'HPAYMT')]) {
      for (const [type, field] of [['Query', 'patients'], ['Patient', 'id'], ['Patient', 'name'], ['Claim', 'total']] as const) {
        expect(table.get(type, field).decision, `${table.roles.join()}/${String(table.purpose)} ${type}.${field}`).toEqual(deny);
      }
    }
  });

  it('combines the roles of a token for the one purpose of the request', () => {
    // Billing may not read for treatment: under TREAT only the clinician's decisions count.
    expect(decisionTable(['billing', 'clinician'], 'TREAT').get('Claim', 'total').decision).toEqual(deny);
    expect(decisionTable(['billing', 'clinician'], 'HPAYMT').get('Claim', 'total').decision.kind).toBe('allow');
    expect(decisionTable(['billing', 'clinician'], 'HPAYMT').get('Condition', 'code').decision).toEqual(deny);
    expect(decisionTable(['billing', 'clinician'], ANY_PURPOSE).get('Condition', 'code').decision.kind).toBe('allow');
  });
});

let stack: TestStack;
let patientId: string;

beforeAll(async () => {
  stack = await startTestStack({ patients: 20 });
  patientId = stack.principals.patient.patientId ?? '';
});

afterAll(async () => {
  await stack?.stop();
});

interface Chart {
  patient: {
    name: { family: string } | null;
    birthDate: string | null;
    conditions: { edges: { node: { code: { code: string } | null } }[] } | null;
    coverages: { edges: { node: { payer: string | null } }[] } | null;
  } | null;
}

const CHART = `query Chart($id: ID!) { patient(id: $id) {
  name { family } birthDate
  conditions { edges { node { code { code } } } }
  coverages { edges { node { payer } } }
} }`;

function chart(url: string, token: string, purpose?: string): Promise<GraphQLResponse<Chart>> {
  return post<Chart>(url, CHART, { token, variables: { id: patientId }, headers: purpose === undefined ? {} : { [PURPOSE_HEADER]: purpose } });
}

function clinicianToken(purposes?: PurposeOfUse[]): Promise<string> {
  return stack.token('clinician', purposes ? { purposes } : {});
}

function codesOf(response: GraphQLResponse): unknown[] {
  return (response.body.errors ?? []).map((error) => error.extensions?.['code']);
}

describe('a request reading for a purpose, over HTTP', () => {
  it('shows a clinician treating the clinical record, and reading for payment only what a claim needs', async () => {
    const token = await clinicianToken(['TREAT', 'HPAYMT']);
    const treating = await chart(stack.gatewayUrl, token, 'TREAT');
    expect(treating.body.errors).toBeUndefined();
    expect(treating.body.data?.patient?.conditions?.edges.length).toBeGreaterThan(0);
    expect(treating.body.data?.patient?.conditions?.edges[0]?.node.code?.code).toMatch(/\w/);

    const paying = await chart(stack.gatewayUrl, token, 'HPAYMT');
    expect(paying.status).toBe(200);
    expect(paying.body.data?.patient?.name?.family).toBe(treating.body.data?.patient?.name?.family);
    expect(paying.body.data?.patient?.birthDate).toBe(treating.body.data?.patient?.birthDate);
    expect(paying.body.data?.patient?.coverages).toEqual(treating.body.data?.patient?.coverages);
    expect(paying.body.data?.patient?.conditions).toBeNull();
    expect(paying.body.errors?.find((error) => error.path?.join('.') === 'patient.conditions')?.extensions?.['code']).toBe('FORBIDDEN');
  });

  it('holds at a subgraph called directly: the same token and purpose, the same refusal', async () => {
    const token = await clinicianToken(['HPAYMT']);
    // No header: the only purpose the token allows.
    const direct = await post<{ _entities: ({ conditions: unknown } | null)[] }>(
      stack.subgraphUrl('clinical'),
      'query($r: [_Any!]!) { _entities(representations: $r) { ... on Patient { conditions { edges { node { id } } } } } }',
      { token, variables: { r: [{ __typename: 'Patient', id: patientId }] } },
    );
    expect(direct.body.data?._entities?.[0]?.conditions ?? null).toBeNull();
    expect(codesOf(direct)).toContain('FORBIDDEN');
    // The token's claim does not name TREAT: a header cannot add it, at the gateway or at the subgraph.
    for (const url of [stack.gatewayUrl, stack.subgraphUrl('clinical'), stack.subgraphUrl('patient')]) {
      const widened = await post(url, '{ viewer { subject } }', { token, headers: { [PURPOSE_HEADER]: 'TREAT' } });
      expect(widened.status, url).toBe(403);
      expect(widened.body.errors?.[0]?.extensions, url).toMatchObject({ code: 'FORBIDDEN', reason: 'PURPOSE_NOT_IN_TOKEN' });
      expect(widened.body.data ?? null).toBeNull();
    }
  });

  it('refuses, before anything runs, a purpose the token or its roles do not allow, and a code nobody knows', async () => {
    const cases: { token: string; purpose: string; status: number; reason: string }[] = [
      // Without a claim a token allows its roles' defaults only.
      { token: await clinicianToken(), purpose: 'HPAYMT', status: 403, reason: 'PURPOSE_NOT_ALLOWED' },
      { token: await stack.token('billing', { purposes: ['TREAT', 'HPAYMT'] }), purpose: 'TREAT', status: 403, reason: 'PURPOSE_NOT_ALLOWED' },
      { token: await clinicianToken(['TREAT']), purpose: 'ETREAT', status: 403, reason: 'PURPOSE_NOT_IN_TOKEN' },
      { token: await clinicianToken(['TREAT']), purpose: 'SOMETHING', status: 400, reason: 'PURPOSE_UNKNOWN' },
      { token: await clinicianToken(['TREAT']), purpose: '__proto__', status: 400, reason: 'PURPOSE_UNKNOWN' },
    ];
    for (const { token, purpose, status, reason } of cases) {
      const response = await chart(stack.gatewayUrl, token, purpose);
      expect(response.status, `${purpose} ${reason}`).toBe(status);
      expect(response.body.errors?.[0]?.extensions?.['reason']).toBe(reason);
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(response.body.data ?? null).toBeNull();
      expect(JSON.stringify(response.body)).not.toContain(patientId);
    }
    // A token whose claim names no code this API knows reads nothing.
    const unknownOnly = await chart(stack.gatewayUrl, await stack.token('clinician', { purposes: ['NOPE' as PurposeOfUse] }));
    expect(unknownOnly.status).toBe(403);
    expect(unknownOnly.body.errors?.[0]?.extensions?.['reason']).toBe('PURPOSE_REQUIRED');
  });

  it('refuses an argument whose category the purpose does not allow, at the gateway and at the subgraph', async () => {
    // Filtering by care team reveals which team treats a patient: a clinician may when treating, not when reading for payment.
    const token = await clinicianToken(['TREAT', 'HPAYMT']);
    const query = 'query($team: ID!) { patients(first: 5, filter: { careTeamId: $team }) { edges { node { id } } } }';
    const variables = { team: '00000000-0000-4000-8000-000000000000' };
    const treating = await post(stack.gatewayUrl, query, { token, variables, headers: { [PURPOSE_HEADER]: 'TREAT' } });
    expect(treating.status).toBe(200);
    expect(treating.body.errors).toBeUndefined();
    for (const url of [stack.gatewayUrl, stack.subgraphUrl('patient')]) {
      const paying = await post(url, query, { token, variables, headers: { [PURPOSE_HEADER]: 'HPAYMT' } });
      expect(paying.status, url).toBe(403);
      expect(paying.body.errors?.[0]?.extensions, url).toMatchObject({ code: 'FORBIDDEN', reason: 'ARGUMENT_DENIED' });
      expect(paying.body.data ?? null).toBeNull();
    }
  });
});

describe('the purpose in the audit trail', () => {
  it('records the purpose with every event, shows it to the patient and in the FHIR export, and a removed purpose breaks the chain', async () => {
    const token = await clinicianToken(['TREAT', 'HPAYMT']);
    const response = await chart(stack.gatewayUrl, token, 'HPAYMT');
    const requestId = response.headers.get('x-request-id') ?? '';
    expect(requestId).not.toBe('');
    const rows = await stack.sql<{ purpose: string | null; subgraph: string }>('select "purpose", "subgraph" from "audit_event" where "request_id" = ?', [requestId]);
    expect(rows.length).toBeGreaterThan(0);
    expect(new Set(rows.map((row) => row.purpose))).toEqual(new Set(['HPAYMT']));

    const disclosures = await post<{ myDisclosures: { edges: { node: { roles: string[]; purpose: string | null; purposeText: string | null; dataKinds: string[] } }[] } }>(
      stack.gatewayUrl,
      '{ myDisclosures(first: 200) { edges { node { roles purpose purposeText dataKinds } } } }',
      { token: await stack.token('patient') },
    );
    expect(disclosures.body.errors).toBeUndefined();
    const forPayment = disclosures.body.data?.myDisclosures.edges.map((edge) => edge.node).filter((node) => node.purpose === 'HPAYMT') ?? [];
    expect(forPayment.length).toBeGreaterThan(0);
    expect(forPayment[0]).toMatchObject({ roles: ['clinician'], purposeText: 'healthcare payment' });
    expect(forPayment.flatMap((node) => node.dataKinds)).not.toContain('condition');

    const [raw] = await stack.sql<Record<string, unknown>>(`select * from ${auditEntries('e."request_id" = ?')} as entry limit 1`, [requestId]);
    const fhir = toFhirAuditEvent(auditEventFromRow(raw ?? {}));
    expect(fhir.purposeOfEvent?.[0]?.coding[0]).toMatchObject({ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'HPAYMT', display: 'healthcare payment' });
    expect(fhir.agent[0]?.purposeOfUse?.[0]?.coding[0]?.code).toBe('HPAYMT');

    expect((await verifyAuditChain(stack.api.db!)).ok).toBe(true);
    // A token with more roles than act for the purpose: the events name the acting roles, and every role of the account.
    const both = await stack.token('clinician', { roles: ['clinician', 'billing'], purposes: ['TREAT', 'HPAYMT'] });
    const treating = await chart(stack.gatewayUrl, both, 'TREAT');
    const accounts = await stack.sql<{ roles: string[]; token_roles: string[] | null }>('select "roles", "token_roles" from "audit_event" where "request_id" = ?', [treating.headers.get('x-request-id')]);
    expect(accounts.length).toBeGreaterThan(0);
    for (const row of accounts) expect(row).toEqual({ roles: ['clinician'], token_roles: ['clinician', 'billing'] });
    const paying = await chart(stack.gatewayUrl, both, 'HPAYMT');
    const acting = await stack.sql<{ roles: string[]; token_roles: string[] | null }>('select "roles", "token_roles" from "audit_event" where "request_id" = ?', [paying.headers.get('x-request-id')]);
    for (const row of acting) expect(row).toEqual({ roles: ['clinician', 'billing'], token_roles: null });
    expect((await verifyAuditChain(stack.api.db!)).ok).toBe(true);
    // An insider with the owner's rights switches the triggers off and removes, or changes, the purpose: the chain says so.
    await stack.sql('alter table audit_event disable trigger user');
    try {
      for (const forged of [null, 'TREAT']) {
        await stack.sql(`update "audit_event" set "purpose" = ? where "request_id" = ?`, [forged, requestId]);
        expect((await verifyAuditChain(stack.api.db!)).ok, String(forged)).toBe(false);
      }
      await stack.sql(`update "audit_event" set "purpose" = 'HPAYMT' where "request_id" = ?`, [requestId]);
      // Nor can the account's other roles be taken off the record.
      const mixed = treating.headers.get('x-request-id');
      await stack.sql(`update "audit_event" set "token_roles" = null where "request_id" = ?`, [mixed]);
      expect((await verifyAuditChain(stack.api.db!)).ok).toBe(false);
      await stack.sql(`update "audit_event" set "token_roles" = array['clinician', 'billing'] where "request_id" = ?`, [mixed]);
    } finally {
      await stack.sql('alter table audit_event enable trigger user');
    }
    expect((await verifyAuditChain(stack.api.db!)).ok).toBe(true);
  });
});
