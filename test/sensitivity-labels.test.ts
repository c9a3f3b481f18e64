import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PURPOSE_HEADER } from '../src/auth/index.js';
import { sealRow } from '../src/db/encryption.js';
import { labelUnlabelledRows } from '../src/db/labelling.js';
import { labelsOfCodes } from '../src/policy/sensitivity.js';
import { CodeSystem } from '../src/subgraphs/codes.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * Sensitivity labels over HTTP, tried as the roles that must not see a
 * labelled row: a substance use disorder diagnosis (42 CFR Part 2), its
 * medication, and the claim and invoice that bill it, recorded for a
 * patient of the clinician's care team. Withheld rows must look exactly
 * like absent ones (lists, pages, lookups by id, `_entities`), and the
 * audit trail records the withholding; the patient sees all of it; a
 * break-the-glass grant that names the category shows it, flagged; an
 * insider who strips a label gains nothing.
 */

let stack: TestStack;
let patientId: string;
let encounterId: string;
let sudConditionId: string;
let psyConditionId: string;
let sudMedicationId: string;
let sudClaimId: string;
let sudInvoiceId: string;
const OPIOID_DEPENDENCE = 'Opioid dependence, uncomplicated';

type Edges<T> = { edges: { node: T }[]; pageInfo?: { hasNextPage: boolean } } | null;
type Labelled = { id: string; securityLabels: { code: string; system: string }[] | null };
type Chart = {
  patient: {
    conditions: Edges<Labelled & { code: { code: string; display: string } | null }>;
    medicationRequests: Edges<Labelled & { medication: { code: string } | null }>;
    claims?: Edges<Labelled & { diagnosisCodes: string[] | null }>;
    invoices?: Edges<{ id: string; claim: { id: string } | null }>;
  } | null;
};

const CLINICAL_CHART = `query($id: ID!) { patient(id: $id) {
  conditions(first: 50) { edges { node { id code { code display } securityLabels { code system } } } pageInfo { hasNextPage } }
  medicationRequests(first: 50) { edges { node { id medication { code } securityLabels { code system } } } }
} }`;
const BILLING_CHART = `query($id: ID!) { patient(id: $id) {
  claims(first: 50) { edges { node { id diagnosisCodes securityLabels { code } } } }
  invoices(first: 50) { edges { node { id claim { id } } } }
} }`;

function chart(token: string, query = CLINICAL_CHART, purpose?: string) {
  return post<Chart>(stack.gatewayUrl, query, { token, variables: { id: patientId }, headers: purpose ? { [PURPOSE_HEADER]: purpose } : {} });
}

const ids = (edges: Edges<{ id: string }> | undefined): string[] => (edges?.edges ?? []).map((edge) => edge.node.id);

/** Rows of the patient as the database holds them. */
async function countRows(table: string): Promise<number> {
  const [row] = await stack.sql<{ n: number }>(`select count(*)::int as n from "${table}" where patient_id = ?`, [patientId]);
  return row?.n ?? 0;
}

beforeAll(async () => {
  stack = await startTestStack({ patients: 40 });
  const clinician = await stack.token('clinician');
  const visible = await post<{ patients: { edges: { node: { id: string; encounters: Edges<{ id: string }> } }[] } }>(
    stack.gatewayUrl,
    '{ patients(first: 20) { edges { node { id encounters(first: 1) { edges { node { id } } } } } } }',
    { token: clinician },
  );
  const withEncounter = visible.body.data?.patients.edges.find((edge) => (edge.node.encounters?.edges.length ?? 0) > 0);
  patientId = withEncounter?.node.id ?? '';
  encounterId = withEncounter?.node.encounters?.edges[0]?.node.id ?? '';
  expect(patientId).not.toBe('');

  // The clinician records the diagnoses through the API: labels are derived when written.
  const add = (code: string, display: string) =>
    post<{ addCondition: { ok: boolean; condition: Labelled | null } }>(
      stack.gatewayUrl,
      'mutation($input: AddConditionInput!) { addCondition(input: $input) { ok condition { id securityLabels { code } } } }',
      { token: clinician, variables: { input: { patientId, encounterId, code, display, clinicalStatus: 'active' } } },
    );
  const sud = await add('F11.20', OPIOID_DEPENDENCE);
  expect(sud.body.data?.addCondition.ok).toBe(true);
  // Written, and at once beyond the writer's clearance: the payload shows it as absent.
  expect(sud.body.data?.addCondition.condition).toBeNull();
  const [stored] = await stack.sql<{ id: string; security_labels: string[] }>(`select id, security_labels from condition where patient_id = ? and security_labels @> '{SUD}'`, [patientId]);
  sudConditionId = stored?.id ?? '';
  expect(stored?.security_labels).toEqual(['ETH', 'SUD', 'V']);
  const psy = await add('F32.9', 'Major depressive disorder, single episode, unspecified');
  psyConditionId = psy.body.data?.addCondition.condition?.id ?? '';
  expect(psy.body.data?.addCondition.condition?.securityLabels?.map((label) => label.code)).toEqual(['PSY', 'R']);

  // Its medication, claim and invoice, as the clinic's systems would have written them.
  sudMedicationId = randomUUID();
  await stack.sql(
    `insert into medication_request (id, patient_id, rxnorm_code, display, dosage_instruction, status, authored_on, security_labels) values (?, ?, '1010604', 'buprenorphine 8 MG / naloxone 2 MG Sublingual Film', 'Dissolve 1 film under the tongue once daily', 'active', current_date, ?)`,
    [sudMedicationId, patientId, `{${labelsOfCodes([{ system: CodeSystem.rxnorm, code: '1010604' }]).join(',')}}`],
  );
  sudClaimId = randomUUID();
  const labels = labelsOfCodes([{ system: CodeSystem.icd10cm, code: 'F11.20' }]);
  const claim = await sealRow('claim', { id: sudClaimId, diagnosis_codes: JSON.stringify(['F11.20', 'I10']), security_labels: labels }, stack.api.sealer!);
  await stack.sql(
    `insert into claim (id, patient_id, encounter_id, status, total_cents, currency, diagnosis_codes, crypto_version, created_at, security_labels) values (?, ?, ?, 'submitted', 31200, 'USD', ?, 1, now(), ?)`,
    [sudClaimId, patientId, encounterId, claim['diagnosis_codes'], `{${labels.join(',')}}`],
  );
  sudInvoiceId = randomUUID();
  await stack.sql(`insert into invoice (id, patient_id, claim_id, status, total_cents, balance_cents, currency, issued_at) values (?, ?, ?, 'issued', 4000, 4000, 'USD', now())`, [
    sudInvoiceId,
    patientId,
    sudClaimId,
  ]);
});

afterAll(async () => {
  await stack?.stop();
});

describe('a labelled row withheld as if absent', () => {
  it('leaves the diagnosis and its medication out of a treating clinician\'s lists, and shows the cleared ones with their labels', async () => {
    const response = await chart(await stack.token('clinician'));
    expect(response.body.errors).toBeUndefined();
    const conditions = ids(response.body.data?.patient?.conditions);
    expect(conditions).not.toContain(sudConditionId);
    expect(conditions).toContain(psyConditionId);
    expect(conditions).toHaveLength((await countRows('condition')) - 1);
    expect(ids(response.body.data?.patient?.medicationRequests)).not.toContain(sudMedicationId);
    const psy = response.body.data?.patient?.conditions?.edges.find((edge) => edge.node.id === psyConditionId)?.node;
    expect(psy?.securityLabels).toEqual([
      { code: 'PSY', system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode' },
      { code: 'R', system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality' },
    ]);
    expect(JSON.stringify(response.body)).not.toContain('Opioid');
  });

  it('pages as if the row did not exist: page sizes and hasNextPage count visible rows only', async () => {
    const token = await stack.token('clinician');
    const all = await chart(token);
    const visible = ids(all.body.data?.patient?.conditions);
    const page = await post<Chart>(stack.gatewayUrl, 'query($id: ID!, $n: Int) { patient(id: $id) { conditions(first: $n) { edges { node { id } } pageInfo { hasNextPage } } } }', {
      token,
      variables: { id: patientId, n: visible.length },
    });
    expect(ids(page.body.data?.patient?.conditions)).toEqual(visible);
    expect(page.body.data?.patient?.conditions?.pageInfo?.hasNextPage).toBe(false);
  });

  it('answers a lookup by id (_entities, straight to the subgraph) of the withheld row exactly as one of a row that does not exist', async () => {
    const token = await stack.token('clinician');
    const lookup = (typename: string, id: string, subgraph: 'clinical' | 'billing' = 'clinical') =>
      post<{ _entities: unknown[] }>(stack.subgraphUrl(subgraph), `query($r: [_Any!]!) { _entities(representations: $r) { ... on ${typename} { id } } }`, {
        token,
        variables: { r: [{ __typename: typename, id }] },
      });
    const withheld = await lookup('Condition', sudConditionId);
    const absent = await lookup('Condition', randomUUID());
    expect(withheld.status).toBe(absent.status);
    expect(withheld.body).toEqual(absent.body);
    expect(withheld.body).toEqual({ data: { _entities: [null] } });
    expect((await lookup('MedicationRequest', sudMedicationId)).body).toEqual((await lookup('MedicationRequest', randomUUID())).body);
    // The cleared diagnosis is found.
    expect(JSON.stringify((await lookup('Condition', psyConditionId)).body)).toContain(psyConditionId);
  });

  it('withholds the claim from billing, with the invoice that bills it, and its lookup by id', async () => {
    const billing = await stack.token('billing');
    const response = await chart(billing, BILLING_CHART);
    expect(response.body.errors).toBeUndefined();
    expect(ids(response.body.data?.patient?.claims)).not.toContain(sudClaimId);
    expect(ids(response.body.data?.patient?.invoices)).not.toContain(sudInvoiceId);
    expect(ids(response.body.data?.patient?.claims).length).toBeGreaterThan(0);
    // No invoice of the patient shows a claim it cannot show: an invoice whose claim is withheld is withheld too.
    for (const edge of response.body.data?.patient?.invoices?.edges ?? []) expect(edge.node.claim).not.toBeNull();
    const byId = await post(stack.subgraphUrl('billing'), 'query($r: [_Any!]!) { _entities(representations: $r) { ... on Invoice { id } } }', {
      token: billing,
      variables: { r: [{ __typename: 'Invoice', id: sudInvoiceId }] },
    });
    expect(byId.body).toMatchObject({ data: { _entities: [null] } });
  });

  it('records the withholding on the audit trail (outcome withheld, the categories as the reason), never in the patient\'s disclosures', async () => {
    const before = new Date();
    await chart(await stack.token('clinician'));
    const events = await stack.sql<{ entity_type: string; fields: { field: string; outcome: string; reason?: string }[] }>(
      `select e.entity_type, e.fields from audit_event e where e.recorded_at >= ? and ? = any(e.patient_ids) and e.fields @> '[{"outcome": "withheld"}]'`,
      [before, patientId],
    );
    const withheld = events.map((event) => `${event.entity_type}:${event.fields.find((field) => field.outcome === 'withheld')?.reason ?? ''}`).sort();
    expect(withheld).toEqual(['Condition:SENSITIVITY:SUD', 'MedicationRequest:SENSITIVITY:SUD']);
    const patient = await stack.token('patient', { patientId, organizationId: null });
    const disclosures = await post<{ myDisclosures: { edges: { node: { dataKinds: string[] } }[] } }>(stack.gatewayUrl, '{ myDisclosures(first: 100) { edges { node { dataKinds } } } }', {
      token: patient,
    });
    expect(disclosures.body.errors).toBeUndefined();
    expect(JSON.stringify(disclosures.body.data)).not.toContain('withheld');
  });
});

describe('what the audit trail tells whom', () => {
  it('never lists a withholding, nor the flag of a labelled row, to an auditor (cleared for no category)', async () => {
    await chart(await stack.token('clinician'));
    const auditor = await stack.token('auditor', { organizationId: stack.principals.clinician.organizationId });
    const events = await post<{ auditEvents: { edges: { node: { fields: { field: string; outcome: string; reason: string | null }[] } }[] } }>(
      stack.gatewayUrl,
      'query($id: ID!) { auditEvents(filter: { patientId: $id }, first: 200) { edges { node { fields { field outcome reason } } } } }',
      { token: auditor, variables: { id: patientId } },
    );
    expect(events.body.errors).toBeUndefined();
    expect(events.body.data?.auditEvents.edges.length).toBeGreaterThan(0);
    const text = JSON.stringify(events.body.data);
    expect(text).not.toContain('withheld');
    expect(text).not.toContain('SENSITIVITY');
    expect(text).not.toContain('row:sensitive');
    const filtered = await post<{ auditEvents: { edges: unknown[] } }>(stack.gatewayUrl, '{ auditEvents(filter: { outcome: withheld }, first: 10) { edges { node { id } } } }', { token: auditor });
    expect(filtered.body.data?.auditEvents.edges).toEqual([]);
  });

  it('costs a lookup of a withheld id the same statements as one of an id that does not exist', async () => {
    const token = await stack.token('clinician');
    const statementsFor = async (id: string) => {
      const before = stack.statements.count;
      await post(stack.subgraphUrl('clinical'), 'query($r: [_Any!]!) { _entities(representations: $r) { ... on Condition { id } } }', { token, variables: { r: [{ __typename: 'Condition', id }] } });
      return stack.statements.count - before;
    };
    // Warm the request's fixed costs (token, revocation, memberships) once.
    await statementsFor(randomUUID());
    expect(await statementsFor(sudConditionId)).toBe(await statementsFor(randomUUID()));
  });
});

describe('who is cleared', () => {
  it('shows the patient all of their own record, with the labels', async () => {
    const patient = await stack.token('patient', { patientId, organizationId: null });
    const response = await chart(patient);
    expect(response.body.errors, JSON.stringify(response.body.errors)).toBeUndefined();
    const sud = response.body.data?.patient?.conditions?.edges.find((edge) => edge.node.id === sudConditionId)?.node;
    expect(sud?.code?.display).toBe(OPIOID_DEPENDENCE);
    expect(sud?.securityLabels?.map((label) => label.code)).toEqual(['ETH', 'SUD', 'V']);
    expect(ids(response.body.data?.patient?.medicationRequests)).toContain(sudMedicationId);
    const billing = await chart(patient, BILLING_CHART);
    expect(ids(billing.body.data?.patient?.claims)).toContain(sudClaimId);
  });

  it('shows a clinician reading for payment nothing clinical, and a researcher and a partner no labelled row at all', async () => {
    const payment = await chart(await stack.token('clinician', { purposes: ['TREAT', 'HPAYMT'] }), CLINICAL_CHART, 'HPAYMT');
    expect(JSON.stringify(payment.body.data)).not.toContain('Opioid');
    const researcher = await post<{ patients: { edges: { node: Chart['patient'] }[] } }>(
      stack.gatewayUrl,
      '{ patients(first: 40) { edges { node { conditions(first: 20) { edges { node { securityLabels { code } } } } medicationRequests(first: 20) { edges { node { securityLabels { code } } } } } } } }',
      { token: await stack.token('researcher') },
    );
    expect(researcher.body.errors, JSON.stringify(researcher.body.errors)).toBeUndefined();
    // The cohort has conditions (the test would prove nothing otherwise), none of them labelled.
    expect(researcher.body.data?.patients.edges.some((edge) => (edge.node?.conditions?.edges.length ?? 0) > 0)).toBe(true);
    expect(JSON.stringify(researcher.body.data)).not.toMatch(/"code":"(PSY|SUD|ETH|HIV|SEX|STD|SDV|R|V)"/);
    const partner = await post(stack.gatewayUrl, '{ patients(first: 20) { edges { node { medicationRequests(first: 10) { edges { node { securityLabels { code } } } } } } } }', {
      token: await stack.token('partner'),
    });
    expect(partner.body.errors, JSON.stringify(partner.body.errors)).toBeUndefined();
    expect(JSON.stringify(partner.body.data)).not.toMatch(/"code":"(SUD|ETH|HIV|SEX|V)"/);
  });
});

describe('an insider with database access', () => {
  it('cannot hide a label inside another: the database refuses it, and with the check dropped the row stays withheld', async () => {
    await expect(stack.sql(`update condition set security_labels = '{"ETH,SUD,V"}' where id = ?`, [sudConditionId])).rejects.toThrow();
    await stack.sql('alter table condition drop constraint condition_security_labels_check');
    try {
      await stack.sql(`update condition set security_labels = '{"ETH,SUD,V"}' where id = ?`, [sudConditionId]);
      const response = await chart(await stack.token('clinician'));
      expect(ids(response.body.data?.patient?.conditions)).not.toContain(sudConditionId);
      expect(JSON.stringify(response.body)).not.toContain('Opioid');
    } finally {
      await stack.sql(`update condition set security_labels = '{ETH,SUD,V}' where id = ?`, [sudConditionId]);
      await stack.sql(`alter table condition add constraint condition_security_labels_check check (security_labels <@ '{PSY,SUD,HIV,SEX,STD,SDV,ETH,R,V}'::text[])`);
    }
  });

  it('cannot release a row not labelled yet by giving it empty labels: its values were bound to no labels at all', async () => {
    const id = randomUUID();
    const sealed = await sealRow('condition', { id, code: 'F10.20', display: 'Alcohol dependence, uncomplicated' }, stack.api.sealer!);
    await stack.sql(`insert into condition (id, patient_id, code, display, crypto_version, clinical_status, recorded_date, security_labels) values (?, ?, ?, ?, 1, 'active', current_date, '{}')`, [
      id,
      patientId,
      sealed['code'],
      sealed['display'],
    ]);
    try {
      const response = await chart(await stack.token('clinician'));
      expect(JSON.stringify(response.body)).not.toContain('Alcohol');
    } finally {
      await stack.sql('delete from condition where id = ?', [id]);
    }
  });

  it('gains nothing by stripping a label: the diagnosis fails to decrypt, the medication is withheld by its own code', async () => {
    const nurse = await stack.token('nurse', { organizationId: stack.principals.clinician.organizationId, subject: stack.principals.clinician.subject });
    await stack.sql(`update condition set security_labels = '{}' where id = ?`, [sudConditionId]);
    await stack.sql(`update medication_request set security_labels = '{}' where id = ?`, [sudMedicationId]);
    try {
      const response = await chart(nurse);
      const text = JSON.stringify(response.body);
      expect(text).not.toContain('Opioid');
      expect(text).not.toContain('F11.20');
      expect(ids(response.body.data?.patient?.medicationRequests)).not.toContain(sudMedicationId);
      // The row now passes the label filter, but its values are bound to the labels it was written with.
      const failed = await stack.sql<{ n: number }>(
        `select count(*)::int as n from audit_event where entity_ids @> array[?]::text[] and fields @> '[{"field": "Condition.code", "outcome": "failed"}]'`,
        [sudConditionId],
      );
      expect(failed[0]?.n).toBeGreaterThan(0);
    } finally {
      await stack.sql(`update condition set security_labels = '{ETH,SUD,V}' where id = ?`, [sudConditionId]);
      await stack.sql(`update medication_request set security_labels = '{ETH,SUD,V}' where id = ?`, [sudMedicationId]);
    }
  });

  it('withholds a row whose labels were nulled, and the labelling step labels rows written before labels from their codes', async () => {
    const clinician = await stack.token('clinician');
    const id = randomUUID();
    // A diagnosis stored before labels existed: sealed with its id alone, labels null.
    const sealed = await sealRow('condition', { id, code: 'F10.20', display: 'Alcohol dependence, uncomplicated' }, stack.api.sealer!);
    await stack.sql(`insert into condition (id, patient_id, code, display, crypto_version, clinical_status, recorded_date) values (?, ?, ?, ?, 1, 'active', current_date)`, [
      id,
      patientId,
      sealed['code'],
      sealed['display'],
    ]);
    expect(ids((await chart(clinician)).body.data?.patient?.conditions)).not.toContain(id);
    const result = await labelUnlabelledRows(stack.api.db!, stack.api.sealer!);
    expect(result.labelled).toBeGreaterThanOrEqual(1);
    const [row] = await stack.sql<{ security_labels: string[] }>('select security_labels from condition where id = ?', [id]);
    expect(row?.security_labels).toEqual(['ETH', 'SUD', 'V']);
    expect(ids((await chart(clinician)).body.data?.patient?.conditions)).not.toContain(id);
    const own = await chart(await stack.token('patient', { patientId, organizationId: null }));
    expect(own.body.data?.patient?.conditions?.edges.find((edge) => edge.node.id === id)?.node.code?.display).toBe('Alcohol dependence, uncomplicated');
  });
});

describe('labels of a note', () => {
  it('takes the labels of its encounter\'s diagnoses, of the codes it names, and those its author marks', async () => {
    const clinician = await stack.token('clinician');
    const add = (input: Record<string, unknown>) =>
      post<{ addClinicalNote: { ok: boolean; note: Labelled | null } }>(
        stack.gatewayUrl,
        'mutation($input: AddClinicalNoteInput!) { addClinicalNote(input: $input) { ok note { id securityLabels { code } } } }',
        { token: clinician, variables: { input: { patientId, typeCode: '11506-3', ...input } } },
      );
    // The encounter holds the opioid dependence the clinician may not see, and the depression they may: the note takes the depression's
    // labels only, so its answer tells nothing of the other diagnosis.
    const inEncounter = await add({ encounterId, text: 'Follow-up visit. Plan reviewed with the patient.' });
    expect(inEncounter.body.data?.addClinicalNote.note?.securityLabels?.map((label) => label.code)).toEqual(['PSY', 'R']);
    // A labelled diagnosis recorded for the encounter afterwards labels the note too, sealed again: it still reads for the patient.
    const noteId = inEncounter.body.data?.addClinicalNote.note?.id ?? '';
    await post(stack.gatewayUrl, 'mutation($input: AddConditionInput!) { addCondition(input: $input) { ok } }', {
      token: clinician,
      variables: { input: { patientId, encounterId, code: 'B20', display: 'Human immunodeficiency virus [HIV] disease', clinicalStatus: 'active' } },
    });
    const [relabelled] = await stack.sql<{ security_labels: string[] }>('select security_labels from clinical_note where id = ?', [noteId]);
    expect(relabelled?.security_labels).toEqual(['HIV', 'PSY', 'R']);
    const own = await post<{ patient: { clinicalNotes: { edges: { node: { id: string; text: string | null } }[] } } }>(
      stack.gatewayUrl,
      'query($id: ID!) { patient(id: $id) { clinicalNotes(first: 50) { edges { node { id text } } } } }',
      { token: await stack.token('patient', { patientId, organizationId: null }), variables: { id: patientId } },
    );
    expect(own.body.data?.patient.clinicalNotes.edges.find((edge) => edge.node.id === noteId)?.node.text).toBe('Follow-up visit. Plan reviewed with the patient.');
    // Naming the code in the text labels it: the writer knows what they wrote.
    const hiv = await add({ text: 'Assessment: HIV disease (B20), viral load pending.' });
    expect(hiv.body.data?.addClinicalNote.note?.securityLabels?.map((label) => label.code)).toEqual(['HIV', 'R']);
    const marked = await add({ text: 'Session notes kept apart from the record.', sensitiveData: ['PSY'] });
    expect(marked.body.data?.addClinicalNote.note?.securityLabels?.map((label) => label.code)).toEqual(['PSY', 'R']);
    const naming = await add({ encounterId, text: 'Assessment: Opioid dependence, uncomplicated (F11.20). Continue treatment.' });
    expect(naming.body.data?.addClinicalNote).toEqual({ ok: true, note: null });
    const [stored] = await stack.sql<{ security_labels: string[] }>(`select security_labels from clinical_note where encounter_id = ? and security_labels @> '{SUD}'`, [encounterId]);
    expect(stored?.security_labels).toEqual(['ETH', 'HIV', 'PSY', 'SUD', 'V']);
  });
});

describe('break the glass for a labelled category', () => {
  const OPEN = 'mutation($input: OpenEmergencyAccessInput!) { openEmergencyAccess(input: $input) { ok error { code } grant { id sensitiveData } } }';
  const REASON = 'Suspected opioid overdose in the emergency department, needs substance use history';

  const EMERGENCY = { [PURPOSE_HEADER]: 'ETREAT' };
  type Opened = { openEmergencyAccess: { ok: boolean; error: { code: string } | null; grant: { id: string; sensitiveData: string[] } | null } };

  it('opens sensitive data only for emergency treatment, and refuses a grant for one\'s own patient that names nothing beyond one\'s clearance', async () => {
    const clinician = await stack.token('clinician', { purposes: ['TREAT', 'ETREAT'] });
    const routine = await post<Opened>(stack.gatewayUrl, OPEN, { token: clinician, variables: { input: { patientId, reason: REASON, sensitiveData: ['SUD'] } } });
    expect(routine.body.data?.openEmergencyAccess).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' }, grant: null });
    const cleared = await post<Opened>(stack.gatewayUrl, OPEN, { token: clinician, variables: { input: { patientId, reason: REASON, sensitiveData: ['PSY'] } }, headers: EMERGENCY });
    expect(cleared.body.data?.openEmergencyAccess.error?.code).toBe('CONFLICT');
    expect(await stack.sql('select id from emergency_access where patient_id = ?', [patientId])).toEqual([]);
  });

  it('shows the named category under the grant, flags it in the response and on the audit trail, and the review lists it', async () => {
    const clinician = await stack.token('clinician', { purposes: ['TREAT', 'ETREAT'] });
    const opened = await post<Opened>(stack.gatewayUrl, OPEN, {
      token: clinician,
      variables: { input: { patientId, reason: REASON, sensitiveData: ['SUD'], minutes: 10 } },
      headers: EMERGENCY,
    });
    expect(opened.body.data?.openEmergencyAccess.ok).toBe(true);
    const grant = opened.body.data?.openEmergencyAccess.grant;
    expect(grant?.sensitiveData).toEqual(['SUD']);
    const direct = await post<Chart>(stack.subgraphUrl('clinical'), `query($r: [_Any!]!) { _entities(representations: $r) { ... on Patient { conditions(first: 50) { edges { node { id code { display } } } } } } }`, {
      token: clinician,
      variables: { r: [{ __typename: 'Patient', id: patientId }] },
      headers: { [PURPOSE_HEADER]: 'ETREAT' },
    });
    expect(JSON.stringify(direct.body)).toContain(OPIOID_DEPENDENCE);
    expect(direct.body).toMatchObject({ extensions: { emergencyAccess: { grants: [grant?.id], sensitiveData: ['SUD'] } } });
    // The same clinician treating routinely: the grant's category is not theirs outside the emergency.
    const routine = await chart(clinician, CLINICAL_CHART, 'TREAT');
    expect(ids(routine.body.data?.patient?.conditions)).not.toContain(sudConditionId);
    const flags = await stack.sql<{ fields: { field: string; reason?: string }[]; emergency_grant_id: string }>(
      `select fields, emergency_grant_id from audit_event where emergency_grant_id = ? and fields @> '[{"field": "row:sensitive"}]'`,
      [grant?.id],
    );
    expect(flags.length).toBeGreaterThan(0);
    expect(flags[0]?.fields.find((field) => field.field === 'row:sensitive')?.reason).toBe('EMERGENCY:SUD');
    const officer = await stack.token('privacyOfficer', { organizationId: stack.principals.clinician.organizationId });
    const reviews = await post<{ emergencyReviews: { edges: { node: { reason: string; sensitiveDataRequested: string[]; sensitiveDataRead: string[]; dataKinds: string[] } }[] } }>(
      stack.gatewayUrl,
      '{ emergencyReviews(first: 50) { edges { node { reason sensitiveDataRequested sensitiveDataRead dataKinds } } } }',
      { token: officer },
    );
    expect(reviews.body.errors).toBeUndefined();
    const review = reviews.body.data?.emergencyReviews.edges.find((edge) => edge.node.reason === REASON)?.node;
    expect(review).toMatchObject({ sensitiveDataRequested: ['SUD'], sensitiveDataRead: ['SUD'] });
    expect(review?.dataKinds).not.toContain('other');
    // Treating without the grant's purpose of emergency is as before: the grant shows its category under TREAT too, but never for payment.
    const payment = await chart(await stack.token('clinician', { purposes: ['HPAYMT'] }), CLINICAL_CHART, 'HPAYMT');
    expect(JSON.stringify(payment.body.data)).not.toContain(OPIOID_DEPENDENCE);
  });
});
