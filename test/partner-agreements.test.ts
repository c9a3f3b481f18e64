import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../src/auth/index.js';
import type { DevelopmentPrincipal, PartnerKind } from '../src/db/seed/index.js';
import { post, startTestStack, type GraphQLResponse, type TestStack } from './support/stack.js';

/**
 * Partner organizations under their sharing agreements: a pharmacy, a payer
 * and a care-coordination service, each reading of the partner role's
 * categories only those its organization is granted, and only for patients
 * with a consent in force to share with it. Tried as each partner would:
 * every field of a consenting patient through the gateway, the clinical
 * subgraph straight through `_entities`, patients consented to another
 * partner, an organization without an agreement, and a partner token that
 * also carries another role.
 */

let stack: TestStack;
/** Consents to every partner (the seed's sample patient). */
let everyPartnerPatient: string;
/** A patient whose only consent in force is to the pharmacy; another whose only one is to the payer. */
let pharmacyOnlyPatient: string;
let payerOnlyPatient: string;

const IN_FORCE = `c.scope = 'partner-sharing' and c.status = 'active' and c.period_start <= now() and (c.period_end is null or c.period_end > now())`;

beforeAll(async () => {
  stack = await startTestStack({ patients: 80 });
  everyPartnerPatient = stack.principals.patient.patientId ?? '';
  pharmacyOnlyPatient = await onlyConsentingTo('pharmacy');
  payerOnlyPatient = await onlyConsentingTo('payer');
});

afterAll(async () => {
  await stack?.stop();
});

function partner(kind: PartnerKind): DevelopmentPrincipal {
  return stack.principals.partners[kind];
}

async function onlyConsentingTo(kind: PartnerKind): Promise<string> {
  const [row] = await stack.sql<{ patient_id: string }>(
    `select c.patient_id from consent c where ${IN_FORCE} and c.organization_id = ?
       and not exists (select 1 from consent o where o.patient_id = c.patient_id and o.id <> c.id and o.scope = 'partner-sharing' and o.status = 'active')
     order by c.patient_id limit 1`,
    [partner(kind).organizationId],
  );
  if (!row) throw new Error(`no patient consents to the ${kind} alone`);
  return row.patient_id;
}

function tokenOf(kind: PartnerKind, roles: Role[] = ['partner']): Promise<string> {
  const { subject, organizationId } = partner(kind);
  return stack.token('partner', { subject, organizationId, roles });
}

/** Every field a partner role could read of a patient, the clinical and billing lists included. */
const CHART = `query($id: ID!) { patient(id: $id) {
  id name { family } birthDate gender phone
  medicationRequests(first: 5) { edges { node { id medication { display } requester { id } } } }
  allergyIntolerances(first: 5) { edges { node { id code { display } } } }
  coverages(first: 5) { edges { node { id payer memberId } } }
  conditions(first: 5) { edges { node { id } } }
} }`;

interface Chart {
  patient: Record<string, unknown> | null;
}

function refusedFields(response: GraphQLResponse<Chart>): Record<string, unknown> {
  return Object.fromEntries(
    (response.body.errors ?? []).map((error) => [(error.path ?? []).filter((part) => typeof part === 'string').join('.'), error.extensions?.['reason'] ?? error.extensions?.['code']]),
  );
}

async function chart(kind: PartnerKind, patientId: string, roles?: Role[]): Promise<GraphQLResponse<Chart>> {
  return post<Chart>(stack.gatewayUrl, CHART, { token: await tokenOf(kind, roles), variables: { id: patientId } });
}

function edgesOf(patient: Record<string, unknown> | null | undefined, list: string): Record<string, unknown>[] {
  return ((patient?.[list] as { edges: { node: Record<string, unknown> }[] } | null)?.edges ?? []).map((edge) => edge.node);
}

describe('the pharmacy', () => {
  it('reads what dispensing needs, the member id masked as a clinician sees it, and no diagnoses', async () => {
    const response = await chart('pharmacy', everyPartnerPatient);
    const patient = response.body.data?.patient;
    expect(patient?.['id']).toBe(everyPartnerPatient);
    expect(patient?.['name']).not.toBeNull();
    expect(patient?.['birthDate']).not.toBeNull();
    expect(edgesOf(patient, 'medicationRequests').length).toBeGreaterThan(0);
    const coverages = edgesOf(patient, 'coverages');
    expect(coverages.length).toBeGreaterThan(0);
    for (const coverage of coverages) expect(coverage['memberId']).toMatch(/^\*+[A-Z0-9]{4}$/);
    expect(refusedFields(response)).toEqual({ 'patient.conditions': 'ROLE_DENIED' });
  });

  it('does not see a patient who consented to share with the payer only', async () => {
    const response = await chart('pharmacy', payerOnlyPatient);
    expect(response.body.data?.patient).toBeNull();
    expect(response.body.errors?.[0]?.extensions?.['code']).toBe('NOT_FOUND');
  });
});

describe('the payer', () => {
  it('reads who the member is and the coverage, and is refused medications, allergies, prescribers and contact details', async () => {
    const response = await chart('payer', everyPartnerPatient);
    const patient = response.body.data?.patient;
    expect(patient?.['name']).not.toBeNull();
    expect(edgesOf(patient, 'coverages').length).toBeGreaterThan(0);
    expect(patient?.['medicationRequests']).toBeNull();
    expect(patient?.['allergyIntolerances']).toBeNull();
    expect(patient?.['phone']).toBeNull();
    expect(patient?.['gender']).toBeNull();
    expect(refusedFields(response)).toEqual({
      'patient.gender': 'ROLE_DENIED',
      'patient.phone': 'ROLE_DENIED',
      'patient.medicationRequests': 'ROLE_DENIED',
      'patient.allergyIntolerances': 'ROLE_DENIED',
      'patient.conditions': 'ROLE_DENIED',
    });
  });

  it('is refused medications straight from the clinical subgraph too, through _entities', async () => {
    const response = await post<{ _entities: (Record<string, unknown> | null)[] }>(
      stack.subgraphUrl('clinical'),
      'query($r: [_Any!]!) { _entities(representations: $r) { ... on Patient { id medicationRequests(first: 5) { edges { node { id medication { display } } } } } } }',
      { token: await tokenOf('payer'), variables: { r: [{ __typename: 'Patient', id: everyPartnerPatient }] } },
    );
    expect(response.body.data?._entities[0]?.['medicationRequests'] ?? null).toBeNull();
    expect(response.body.errors?.map((error) => error.extensions?.['reason'])).toEqual(['ROLE_DENIED']);
  });

  it('does not see a patient who consented to share with the pharmacy only', async () => {
    const response = await chart('payer', pharmacyOnlyPatient);
    expect(response.body.data?.patient).toBeNull();
    expect(response.body.errors?.[0]?.extensions?.['code']).toBe('NOT_FOUND');
  });

  it('reads no more under a token that also carries the billing role: the agreement still holds on the rows it reaches as a partner', async () => {
    // Billing's scope (the payer's own patients) does not reach this patient, so its fields are decided
    // per row, for the partner role alone; nothing outside the payer's agreement may come back.
    const response = await chart('payer', everyPartnerPatient, ['partner', 'billing']);
    const medications = await stack.sql<{ id: string }>('select id from medication_request where patient_id = ?', [everyPartnerPatient]);
    expect(medications.length).toBeGreaterThan(0);
    const body = JSON.stringify(response.body.data ?? null);
    for (const medication of medications) expect(body).not.toContain(medication.id);
    expect(response.body.data?.patient?.['phone'] ?? null).toBeNull();
    expect(response.body.data?.patient?.['medicationRequests'] ?? null).toBeNull();
    const refused = refusedFields(response);
    expect(refused['patient.phone']).toBe('ROLE_DENIED');
  });
});

describe('the care-coordination service', () => {
  it('reads contact details, medications with their prescribers and allergies, and is refused coverage', async () => {
    const response = await chart('careCoordination', everyPartnerPatient);
    const patient = response.body.data?.patient;
    // Contact details are granted: not refused (the sample patient may have no phone on file).
    expect(refusedFields(response)['patient.phone']).toBeUndefined();
    const medications = edgesOf(patient, 'medicationRequests');
    expect(medications.length).toBeGreaterThan(0);
    expect(medications.some((medication) => medication['requester'] !== null)).toBe(true);
    expect(patient?.['coverages']).toBeNull();
    expect(refusedFields(response)).toEqual({ 'patient.gender': 'ROLE_DENIED', 'patient.coverages': 'ROLE_DENIED', 'patient.conditions': 'ROLE_DENIED' });
  });
});

describe('a partner organization without a sharing agreement', () => {
  it('reads nothing, even of a patient who consented to share with it', async () => {
    const organizationId = randomUUID();
    await stack.sql(`insert into organization (id, name, type) values (?, 'Unvetted Wellness Partners', 'partner')`, [organizationId]);
    await stack.sql(`insert into consent (id, patient_id, organization_id, scope, status, period_start, period_end, purposes) values (?, ?, ?, 'partner-sharing', 'active', now() - interval '1 day', null, '{TREAT,HPAYMT}')`, [
      randomUUID(),
      everyPartnerPatient,
      organizationId,
    ]);
    const token = await stack.token('partner', { subject: 'partner:unvetted', organizationId });
    const response = await post<Chart>(stack.gatewayUrl, CHART, { token, variables: { id: everyPartnerPatient } });
    expect(response.body.data?.patient ?? null).toBeNull();
    // Not even a lookup by record id is granted: the patient subgraph refuses the operation for its argument.
    expect(response.body.errors?.[0]?.extensions).toMatchObject({ code: 'FORBIDDEN', reason: 'ARGUMENT_DENIED' });
  });
});
