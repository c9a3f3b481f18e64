import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PURPOSE_HEADER } from '../src/auth/index.js';
import { openDatabase } from '../src/db/index.js';
import { createScratchDatabase, resolveServices } from './support/services.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * Consent, enforced: a patient's consent provisions (FHIR R4 Consent) clear
 * or withhold sensitive data for a recipient, in the same SQL as the role
 * policy; the partner-sharing and research consents are provisions too
 * (migrated, nothing lost); patients grant and revoke their own, a privacy
 * officer records paper consents and imports FHIR; a revocation holds on a
 * second running instance within a second. Tried as the recipients that
 * must not see, and with consents of other patients and organizations.
 */

const services = await resolveServices();
let stack: TestStack;
/** The sample patient: in force consents to share with every partner organization, and one for research. */
let patientId: string;
let partnerOrganization: string;
let medicationId: string;

type Medications = { patient: { medicationRequests: { edges: { node: { id: string; securityLabels: { code: string }[] | null } }[] } | null } | null };
const MEDICATIONS = 'query($id: ID!) { patient(id: $id) { medicationRequests(first: 50) { edges { node { id securityLabels { code } } } } } }';
const CONSENT_FIELDS = 'id scope decision status organizationId actorRole purposes sensitiveData source revokedAt fhir';
type ConsentNode = { id: string; scope: string; decision: string; status: string; organizationId: string | null; sensitiveData: string[]; source: string; revokedAt: string | null; fhir: string };
type Payload = { ok: boolean; error: { code: string; inputErrors: { field: string }[] } | null; consent: ConsentNode | null };

function patientToken() {
  return stack.token('patient', { patientId, organizationId: null });
}

async function partnerSees(url: string, token: string): Promise<string[] | null> {
  const response = await post<Medications>(url, MEDICATIONS, { token, variables: { id: patientId } });
  expect(response.body.errors, JSON.stringify(response.body.errors)).toBeUndefined();
  return response.body.data?.patient?.medicationRequests?.edges.map((edge) => edge.node.id) ?? null;
}

function grant(token: string, input: Record<string, unknown>) {
  return post<{ grantConsent: Payload }>(stack.gatewayUrl, `mutation($input: GrantConsentInput!) { grantConsent(input: $input) { ok error { code inputErrors { field } } consent { ${CONSENT_FIELDS} } } }`, {
    token,
    variables: { input },
  });
}

function revoke(token: string, id: string, documentReference?: string) {
  return post<{ revokeConsent: Payload }>(stack.gatewayUrl, `mutation($input: RevokeConsentInput!) { revokeConsent(input: $input) { ok error { code inputErrors { field } } consent { ${CONSENT_FIELDS} } } }`, {
    token,
    variables: { input: { id, ...(documentReference && { documentReference }) } },
  });
}

beforeAll(async () => {
  stack = await startTestStack({ patients: 40 });
  patientId = stack.principals.patient.patientId ?? '';
  partnerOrganization = stack.principals.partner.organizationId ?? '';
  // A buprenorphine prescription: labelled SUD by its code.
  medicationId = randomUUID();
  await stack.sql(
    `insert into medication_request (id, patient_id, rxnorm_code, display, dosage_instruction, status, authored_on, security_labels) values (?, ?, '1010604', 'buprenorphine 8 MG / naloxone 2 MG Sublingual Film', 'Dissolve 1 film under the tongue once daily', 'active', current_date, '{ETH,SUD,V}')`,
    [medicationId, patientId],
  );
  // The partner's sharing agreement must grant medications for the test to show anything.
  await stack.sql(`update organization set shared_categories = array_append(shared_categories, 'medication') where id = ? and not ('medication' = any(shared_categories))`, [partnerOrganization]);
});

afterAll(async () => {
  await stack?.stop();
});

describe('the consents a patient already had', () => {
  it('are provisions now: each partner-sharing and research consent a permit of its actor role, with its status and period as they were', async () => {
    const rows = await stack.sql<{ scope: string; decision: string; actor_role: string; purposes: string[]; sensitivities: string[] }>(
      `select scope, decision, actor_role, purposes, sensitivities from consent where scope in ('partner-sharing', 'research')`,
    );
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row.decision).toBe('permit');
      expect(row.actor_role).toBe(row.scope === 'research' ? 'researcher' : 'partner');
      expect(row.purposes).toEqual(row.scope === 'research' ? ['HRESCH'] : ['TREAT', 'HPAYMT']);
      expect(row.sensitivities).toEqual([]);
    }
  });

  it.skipIf(!services.postgresUrl)('are migrated from the earlier table without losing one', async () => {
    const scratch = await createScratchDatabase(services.postgresUrl ?? '');
    const dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-consent-migration-'));
    const db = await openDatabase({ url: scratch.url, dataDir });
    try {
      await db.orm.migrator.up({ to: 'Migration20261203000000SensitivityLabels' });
      const em = db.fork();
      const organization = randomUUID();
      const patient = randomUUID();
      await em.execute(`insert into organization (id, name, type) values (?, 'Partner', 'partner')`, [organization]);
      await em.execute(`insert into patient (id, mrn, name, gender, managing_organization_id) values (?, 'x', 'x', 'unknown', ?)`, [patient, organization]);
      await em.execute(
        `insert into consent (id, patient_id, organization_id, scope, status, period_start, period_end) values
          (gen_random_uuid(), ?, ?, 'partner-sharing', 'active', now() - interval '1 day', null),
          (gen_random_uuid(), ?, null, 'research', 'revoked', now() - interval '2 days', now() + interval '1 year')`,
        [patient, organization, patient],
      );
      await db.migrate();
      const migrated = await db.fork().execute<Record<string, unknown>[]>(
        'select scope, status, organization_id, decision, actor_role, purposes, sensitivities, source, period_end is not null as bounded from consent order by scope',
      );
      expect(migrated).toEqual([
        { scope: 'partner-sharing', status: 'active', organization_id: organization, decision: 'permit', actor_role: 'partner', purposes: ['TREAT', 'HPAYMT'], sensitivities: [], source: 'migrated', bounded: false },
        { scope: 'research', status: 'revoked', organization_id: null, decision: 'permit', actor_role: 'researcher', purposes: ['HRESCH'], sensitivities: [], source: 'migrated', bounded: true },
      ]);
    } finally {
      await db.close();
      await scratch.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a partner, with and without the patient\'s consent to sensitive data', () => {
  it('sees the patient\'s record but not the labelled medication until the patient consents to it, and again not once revoked', async () => {
    const partner = await stack.token('partner');
    const before = await partnerSees(stack.gatewayUrl, partner);
    expect(before?.length).toBeGreaterThan(0);
    expect(before).not.toContain(medicationId);

    const patient = await patientToken();
    const granted = await grant(patient, { scope: 'partnerSharing', organizationId: partnerOrganization, sensitiveData: ['SUD'], purposes: ['TREAT'] });
    expect(granted.body.data?.grantConsent).toMatchObject({ ok: true, consent: { scope: 'partnerSharing', decision: 'permit', status: 'active', sensitiveData: ['SUD'], source: 'patient' } });
    const consentId = granted.body.data?.grantConsent.consent?.id ?? '';
    expect(await partnerSees(stack.gatewayUrl, partner)).toContain(medicationId);
    // Reading for payment is not what the patient consented to.
    const payment = await post<Medications>(stack.gatewayUrl, MEDICATIONS, { token: await stack.token('partner', { purposes: ['HPAYMT'] }), variables: { id: patientId }, headers: { [PURPOSE_HEADER]: 'HPAYMT' } });
    expect(JSON.stringify(payment.body.data)).not.toContain(medicationId);
    // Another partner organization is not the one named.
    const other = stack.principals.partners ? Object.values(stack.principals.partners).find((candidate) => candidate.organizationId !== partnerOrganization) : undefined;
    if (other) {
      const otherToken = await stack.token('partner', { subject: other.subject, organizationId: other.organizationId });
      expect(JSON.stringify((await post(stack.gatewayUrl, MEDICATIONS, { token: otherToken, variables: { id: patientId } })).body)).not.toContain(medicationId);
    }

    const revoked = await revoke(patient, consentId);
    expect(revoked.body.data?.revokeConsent).toMatchObject({ ok: true, consent: { status: 'revoked' } });
    expect(revoked.body.data?.revokeConsent.consent?.revokedAt).not.toBeNull();
    expect(await partnerSees(stack.gatewayUrl, partner)).not.toContain(medicationId);
    expect((await revoke(patient, consentId)).body.data?.revokeConsent.error?.code).toBe('CONFLICT');

    // On the record, with its audit events, hash-chained like every write.
    const events = await stack.sql<{ action: string; fields: { outcome: string }[] }>(`select action, fields from audit_event where entity_type = 'Consent' and entity_ids @> array[?]::text[] order by id`, [consentId]);
    // The grant (its five input fields), the revocation (on the mutation's record and the patient's), and the refused second
    // revocation (an attempt: denied, nothing written).
    expect(events.map((event) => `${event.action}:${event.fields.map((field) => field.outcome).join(',')}`)).toEqual([
      'create:allowed,allowed,allowed,allowed,allowed',
      'update:allowed',
      'update:allowed',
      'update:denied',
    ]);
    const [patientRecord] = await stack.sql<{ n: number }>(`select count(*)::int as n from audit_event where entity_type = 'Consent' and entity_ids @> array[?]::text[] and patient_ids @> array[?]::uuid[]`, [consentId, patientId]);
    expect(patientRecord?.n).toBeGreaterThanOrEqual(2);
  });

  it('opens the record to the partner only for the purposes the patient named', async () => {
    const [other] = await stack.sql<{ id: string }>(
      `select p.id from patient p where not exists (select 1 from consent c where c.patient_id = p.id and c.organization_id = ? and c.status = 'active') order by p.id limit 1`,
      [partnerOrganization],
    );
    const otherId = other?.id ?? '';
    const patient = await stack.token('patient', { patientId: otherId, organizationId: null });
    expect((await grant(patient, { scope: 'partnerSharing', organizationId: partnerOrganization, purposes: ['HPAYMT'] })).body.data?.grantConsent.ok).toBe(true);
    const partner = await stack.token('partner', { purposes: ['TREAT', 'HPAYMT'] });
    const asPartner = async (purpose: string) => (await post<{ patient: { id: string } | null }>(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { id } }', { token: partner, variables: { id: otherId }, headers: { [PURPOSE_HEADER]: purpose } })).body.data?.patient ?? null;
    expect(await asPartner('HPAYMT')).toEqual({ id: otherId });
    expect(await asPartner('TREAT')).toBeNull();
  });

  it.skipIf(!services.postgresUrl)('takes a revocation to a second running instance within a second: the patient leaves that partner\'s lists', async () => {
    const second = await stack.startInstance();
    try {
      const partner = await stack.token('partner');
      const listed = async (url: string) => {
        const response = await post<{ patients: { edges: { node: { id: string } }[] } }>(url, '{ patients(first: 200) { edges { node { id } } } }', { token: partner });
        return response.body.data?.patients.edges.map((edge) => edge.node.id) ?? [];
      };
      expect(await listed(second.gatewayUrl)).toContain(patientId);
      const [sharing] = await stack.sql<{ id: string }>(`select id from consent where patient_id = ? and organization_id = ? and scope = 'partner-sharing' and status = 'active' order by period_start limit 1`, [
        patientId,
        partnerOrganization,
      ]);
      const others = await stack.sql<{ id: string }>(`select id from consent where patient_id = ? and organization_id = ? and scope = 'partner-sharing' and status = 'active' and id <> ?`, [
        patientId,
        partnerOrganization,
        sharing?.id,
      ]);
      const patient = await patientToken();
      for (const consent of others) expect((await revoke(patient, consent.id)).body.data?.revokeConsent.ok).toBe(true);
      const revokedAt = Date.now();
      expect((await revoke(patient, sharing?.id ?? '')).body.data?.revokeConsent.ok).toBe(true);
      let gone = false;
      while (!gone && Date.now() - revokedAt < 1000) {
        gone = !(await listed(second.gatewayUrl)).includes(patientId);
        if (!gone) await new Promise((resolve) => setTimeout(resolve, 25));
      }
      const elapsed = Date.now() - revokedAt;
      expect(gone, `still listed ${elapsed} ms after the revocation`).toBe(true);
      expect(elapsed).toBeLessThan(1000);
      // And a lookup by id on the second instance answers as for a patient that does not exist.
      const lookup = await post(second.gatewayUrl, 'query($id: ID!) { patient(id: $id) { id } }', { token: partner, variables: { id: patientId } });
      const absent = await post(second.gatewayUrl, 'query($id: ID!) { patient(id: $id) { id } }', { token: partner, variables: { id: randomUUID() } });
      expect(lookup.body.data).toEqual(absent.body.data);
    } finally {
      await second.stop();
    }
  });
});

describe('treatment consents of a provider organization\'s roles', () => {
  let treated: string;
  let sudConditionId: string;
  let psyConditionId: string;
  const CONDITIONS = 'query($id: ID!) { patient(id: $id) { conditions(first: 50) { edges { node { id } } } } }';
  const conditionsOf = async (token: string, purpose?: string) => {
    const response = await post<{ patient: { conditions: { edges: { node: { id: string } }[] } | null } | null }>(stack.gatewayUrl, CONDITIONS, {
      token,
      variables: { id: treated },
      headers: purpose ? { [PURPOSE_HEADER]: purpose } : {},
    });
    return response.body.data?.patient?.conditions?.edges.map((edge) => edge.node.id) ?? [];
  };

  beforeAll(async () => {
    const clinician = await stack.token('clinician');
    const visible = await post<{ patients: { edges: { node: { id: string } }[] } }>(stack.gatewayUrl, '{ patients(first: 1) { edges { node { id } } } }', { token: clinician });
    treated = visible.body.data?.patients.edges[0]?.node.id ?? '';
    const add = async (code: string, display: string) => {
      await post(stack.gatewayUrl, 'mutation($input: AddConditionInput!) { addCondition(input: $input) { ok } }', {
        token: clinician,
        variables: { input: { patientId: treated, code, display, clinicalStatus: 'active' } },
      });
      const [row] = await stack.sql<{ id: string }>(`select id from condition where patient_id = ? and security_labels @> ?::text[] order by recorded_date desc limit 1`, [treated, code === 'F11.20' ? '{SUD}' : '{PSY}']);
      return row?.id ?? '';
    };
    sudConditionId = await add('F11.20', 'Opioid dependence, uncomplicated');
    psyConditionId = await add('F32.9', 'Major depressive disorder, single episode, unspecified');
  });

  it('clears substance use records for the organization\'s clinicians the patient named, and no one else', async () => {
    const clinician = await stack.token('clinician');
    expect(await conditionsOf(clinician)).not.toContain(sudConditionId);
    const patient = await stack.token('patient', { patientId: treated, organizationId: null });
    const granted = await grant(patient, { scope: 'treatment', organizationId: stack.principals.clinician.organizationId, actorRole: 'clinician', purposes: ['TREAT'], sensitiveData: ['SUD'] });
    expect(granted.body.data?.grantConsent.ok).toBe(true);
    expect(await conditionsOf(clinician)).toContain(sudConditionId);
    // A nurse of the same teams: not the role named.
    const nurse = await stack.token('nurse', { subject: stack.principals.clinician.subject, organizationId: stack.principals.clinician.organizationId });
    expect(await conditionsOf(nurse)).not.toContain(sudConditionId);
    // A clinician of another organization: not the organization named (the patient is not theirs either way; the consent adds no reach).
    const outsider = await stack.token('clinician', { organizationId: randomUUID() });
    expect(await conditionsOf(outsider)).not.toContain(sudConditionId);
  });

  it('keeps denied data from the roles the policy clears for it, unless break-the-glass names it', async () => {
    const clinician = await stack.token('clinician', { purposes: ['TREAT', 'ETREAT'] });
    expect(await conditionsOf(clinician, 'TREAT')).toContain(psyConditionId);
    const patient = await stack.token('patient', { patientId: treated, organizationId: null });
    const denied = await grant(patient, { scope: 'treatment', decision: 'deny', organizationId: stack.principals.clinician.organizationId, sensitiveData: ['PSY'] });
    expect(denied.body.data?.grantConsent.ok).toBe(true);
    expect(await conditionsOf(clinician, 'TREAT')).not.toContain(psyConditionId);
    // Reading for emergency treatment without a grant that names it changes nothing: a deny covers every purpose.
    expect(await conditionsOf(clinician, 'ETREAT')).not.toContain(psyConditionId);
    // The patient's own access is never restricted by their consents.
    expect(await conditionsOf(patient)).toContain(psyConditionId);
    const opened = await post<{ openEmergencyAccess: { ok: boolean } }>(
      stack.gatewayUrl,
      'mutation($input: OpenEmergencyAccessInput!) { openEmergencyAccess(input: $input) { ok } }',
      { token: clinician, variables: { input: { patientId: treated, reason: 'Acute psychiatric emergency, needs mental health history now', sensitiveData: ['PSY'], minutes: 5 } }, headers: { [PURPOSE_HEADER]: 'ETREAT' } },
    );
    expect(opened.body.data?.openEmergencyAccess.ok).toBe(true);
    expect(await conditionsOf(clinician, 'ETREAT')).toContain(psyConditionId);
    expect(await conditionsOf(clinician, 'TREAT')).not.toContain(psyConditionId);
    const consentId = denied.body.data?.grantConsent.consent?.id ?? '';
    expect((await revoke(patient, consentId)).body.data?.revokeConsent.ok).toBe(true);
    expect(await conditionsOf(clinician, 'TREAT')).toContain(psyConditionId);
  });
});

describe('who may write which consent', () => {
  it('refuses what a consent cannot say, writing nothing', async () => {
    const patient = await patientToken();
    const before = await stack.sql<{ n: number }>('select count(*)::int as n from consent');
    const cases: [Record<string, unknown>, string][] = [
      [{ scope: 'partnerSharing', decision: 'deny', organizationId: partnerOrganization, sensitiveData: ['SUD'] }, 'input.decision'],
      [{ scope: 'treatment', organizationId: stack.principals.clinician.organizationId }, 'input.sensitiveData'],
      [{ scope: 'treatment', organizationId: partnerOrganization, sensitiveData: ['SUD'] }, 'input.organizationId'],
      [{ scope: 'partnerSharing', organizationId: stack.principals.clinician.organizationId }, 'input.organizationId'],
      [{ scope: 'research', organizationId: partnerOrganization }, 'input.organizationId'],
      [{ scope: 'treatment', organizationId: stack.principals.clinician.organizationId, sensitiveData: ['SUD'], purposes: ['HRESCH'] }, 'input.purposes'],
      [{ scope: 'treatment', organizationId: stack.principals.clinician.organizationId, sensitiveData: ['SUD'], purposes: ['BOGUS'] }, 'input.purposes'],
      [{ scope: 'partnerSharing', organizationId: partnerOrganization, actorRole: 'clinician' }, 'input.actorRole'],
      [{ scope: 'partnerSharing', organizationId: partnerOrganization, periodEnd: '2020-01-01T00:00:00Z' }, 'input.periodEnd'],
      [{ scope: 'treatment', decision: 'deny', organizationId: stack.principals.clinician.organizationId, sensitiveData: ['PSY'], purposes: ['TREAT'] }, 'input.purposes'],
    ];
    for (const [input, field] of cases) {
      const response = await grant(patient, input);
      expect(response.body.data?.grantConsent.error?.code, JSON.stringify(input)).toBe('INVALID_INPUT');
      expect(response.body.data?.grantConsent.error?.inputErrors.map((error) => error.field), JSON.stringify(input)).toContain(field);
    }
    expect(await stack.sql<{ n: number }>('select count(*)::int as n from consent')).toEqual(before);
  });

  it('answers a patient token whose patient claim is not an id with no consents, not an error (nor a failed audit write)', async () => {
    const token = await stack.token('patient', { patientId: 'not-a-patient-id', organizationId: null });
    const response = await post<{ myConsents: { edges: unknown[] } }>(stack.gatewayUrl, '{ myConsents { edges { node { id } } } }', { token });
    expect(response.body.errors).toBeUndefined();
    expect(response.body.data?.myConsents.edges).toEqual([]);
  });

  it('gives a patient whose token names an organization no staff powers over the other patients of it', async () => {
    const [patient] = await stack.sql<{ managing_organization_id: string }>('select managing_organization_id from patient where id = ?', [patientId]);
    const [neighbour] = await stack.sql<{ id: string }>('select id from patient where managing_organization_id = ? and id <> ? limit 1', [patient?.managing_organization_id, patientId]);
    const token = await stack.token('patient', { patientId, organizationId: patient?.managing_organization_id ?? null });
    const read = await post<{ patientConsents: { edges: unknown[] } }>(stack.gatewayUrl, 'query($id: ID!) { patientConsents(patientId: $id) { edges { node { id } } } }', { token, variables: { id: neighbour?.id } });
    expect(read.body.data?.patientConsents.edges ?? []).toEqual([]);
    const before = await stack.sql<{ n: number }>('select count(*)::int as n from consent where patient_id = ?', [neighbour?.id]);
    const paper = await post<{ recordPaperConsent: { ok: boolean; error: { code: string } | null } }>(stack.gatewayUrl, 'mutation($input: RecordPaperConsentInput!) { recordPaperConsent(input: $input) { ok error { code } } }', {
      token,
      variables: { input: { patientId: neighbour?.id, scope: 'partnerSharing', organizationId: partnerOrganization, signedAt: new Date().toISOString(), documentReference: 'forged-0001' } },
    });
    expect(paper.body.data?.recordPaperConsent).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    const imported = await post<{ importConsents: { ok: boolean; error: { code: string } | null } }>(stack.gatewayUrl, 'mutation($input: ImportConsentsInput!) { importConsents(input: $input) { ok error { code } } }', {
      token,
      variables: { input: { patientId: neighbour?.id, resources: '[]', documentReference: 'forged-0002' } },
    });
    expect(imported.body.data?.importConsents).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(await stack.sql<{ n: number }>('select count(*)::int as n from consent where patient_id = ?', [neighbour?.id])).toEqual(before);
  });

  it('lets only the patient grant, only the patient or their organization\'s privacy officer revoke, and each read only theirs', async () => {
    const officer = await stack.token('privacyOfficer');
    expect((await grant(officer, { scope: 'research' })).body.data?.grantConsent.error?.code).toBe('NOT_FOUND');
    const [someone] = await stack.sql<{ id: string; patient_id: string }>(`select id, patient_id from consent where patient_id <> ? and status = 'active' limit 1`, [patientId]);
    expect((await revoke(await patientToken(), someone?.id ?? '')).body.data?.revokeConsent.error?.code).toBe('NOT_FOUND');
    const mine = await post<{ myConsents: { edges: { node: ConsentNode }[] } }>(stack.gatewayUrl, `{ myConsents(first: 100) { edges { node { ${CONSENT_FIELDS} } } } }`, { token: await patientToken() });
    expect(mine.body.errors).toBeUndefined();
    expect(mine.body.data?.myConsents.edges.length).toBeGreaterThan(0);
    for (const edge of mine.body.data?.myConsents.edges ?? []) expect(JSON.parse(edge.node.fhir)).toMatchObject({ resourceType: 'Consent', patient: { reference: `Patient/${patientId}` } });
    // Another organization's officer: the patient is not theirs.
    const stranger = await stack.token('privacyOfficer', { organizationId: partnerOrganization });
    const theirs = await post<{ patientConsents: { edges: unknown[] } }>(stack.gatewayUrl, 'query($id: ID!) { patientConsents(patientId: $id) { edges { node { id } } } }', { token: stranger, variables: { id: patientId } });
    expect(theirs.body.data?.patientConsents.edges).toEqual([]);
    // A clinician reads no consent.
    const clinician = await post(stack.gatewayUrl, '{ myConsents { edges { node { id } } } }', { token: await stack.token('clinician') });
    expect(clinician.body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
  });

  it('records a paper consent for a patient of the officer\'s organization, and imports and exports FHIR Consents, all or none', async () => {
    const [patient] = await stack.sql<{ id: string; managing_organization_id: string }>('select id, managing_organization_id from patient where id = ?', [patientId]);
    const officer = await stack.token('privacyOfficer', { organizationId: patient?.managing_organization_id ?? null });
    const paper = await post<{ recordPaperConsent: Payload }>(stack.gatewayUrl, `mutation($input: RecordPaperConsentInput!) { recordPaperConsent(input: $input) { ok error { code inputErrors { field } } consent { ${CONSENT_FIELDS} } } }`, {
      token: officer,
      variables: {
        input: { patientId, scope: 'treatment', organizationId: patient?.managing_organization_id, actorRole: 'clinician', sensitiveData: ['SUD'], purposes: ['TREAT'], signedAt: new Date(Date.now() - 86_400_000).toISOString(), documentReference: 'scan-2026-1187' },
      },
    });
    expect(paper.body.data?.recordPaperConsent).toMatchObject({ ok: true, consent: { source: 'paper', scope: 'treatment' } });
    const paperId = paper.body.data?.recordPaperConsent.consent?.id ?? '';
    // The patient hears of it (ids and times only).
    const notices = await stack.sql<{ payload: Record<string, unknown> }>(`select payload from notification_outbox where patient_id = ? and kind = 'consent-changed-by-staff'`, [patientId]);
    expect(notices.map((notice) => notice.payload['consentIds'])).toContainEqual([paperId]);
    // A form signed long ago is not recorded from staff memory.
    const stale = await post<{ recordPaperConsent: Payload }>(stack.gatewayUrl, 'mutation($input: RecordPaperConsentInput!) { recordPaperConsent(input: $input) { ok error { code inputErrors { field } } } }', {
      token: officer,
      variables: { input: { patientId, scope: 'research', signedAt: '2024-01-01T00:00:00Z', documentReference: 'scan-2024-0001' } },
    });
    expect(stale.body.data?.recordPaperConsent.error?.inputErrors.map((error) => error.field)).toEqual(['input.signedAt']);
    // The officer revokes what staff recorded, never what the patient granted through the API.
    const [granted] = await stack.sql<{ id: string }>(`select id from consent where patient_id = ? and source = 'patient' and status = 'active' limit 1`, [patientId]);
    expect((await revoke(officer, granted?.id ?? '')).body.data?.revokeConsent.error?.code).toBe('CONFLICT');
    const fhir = JSON.parse(paper.body.data?.recordPaperConsent.consent?.fhir ?? '{}') as Record<string, unknown>;
    expect(fhir).toMatchObject({
      resourceType: 'Consent',
      status: 'active',
      scope: { coding: [{ code: 'treatment' }] },
      provision: { type: 'permit', purpose: [{ code: 'TREAT' }], securityLabel: [{ code: 'SUD' }], actor: [{ reference: { reference: `Organization/${patient?.managing_organization_id}` } }] },
    });
    const importing = (resources: unknown) =>
      post<{ importConsents: { ok: boolean; error: { code: string; inputErrors: { field: string }[] } | null; consents: ConsentNode[] } }>(
        stack.gatewayUrl,
        `mutation($input: ImportConsentsInput!) { importConsents(input: $input) { ok error { code inputErrors { field } } consents { ${CONSENT_FIELDS} } } }`,
        { token: officer, variables: { input: { patientId, resources: JSON.stringify(resources), documentReference: 'export of the previous EHR, 2026-11-30' } } },
      );
    const count = async () => (await stack.sql<{ n: number }>('select count(*)::int as n from consent where patient_id = ?', [patientId]))[0]?.n;
    const before = await count();
    // One resource of another patient spoils the batch: nothing is written.
    const spoiled = await importing({ resourceType: 'Bundle', entry: [{ resource: fhir }, { resource: { ...fhir, patient: { reference: `Patient/${randomUUID()}` } } }] });
    expect(spoiled.body.errors, JSON.stringify(spoiled.body.errors)).toBeUndefined();
    expect(spoiled.body.data?.importConsents.error?.code).toBe('INVALID_INPUT');
    expect(spoiled.body.data?.importConsents.error?.inputErrors.map((error) => error.field)).toEqual(['input.resources[1].patient']);
    expect(await count()).toBe(before);
    const unknownLabel = await importing([{ ...fhir, provision: { ...(fhir['provision'] as object), securityLabel: [{ system: 'x', code: 'GENETIC' }] } }]);
    expect(unknownLabel.body.data?.importConsents.error?.inputErrors.map((error) => error.field)).toEqual(['input.resources[0].provision.securityLabel[0]']);
    // A role named in another code system, or the same consent twice: refused, not guessed.
    const foreignRole = await importing([{ ...fhir, provision: { ...(fhir['provision'] as object), actor: [{ role: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: 'PROV' }] }, reference: { reference: `Organization/${patient?.managing_organization_id}` } }] } }]);
    expect(foreignRole.body.data?.importConsents.error?.inputErrors.map((error) => error.field)).toEqual(['input.resources[0].provision.actor[0].role']);
    const twice = await importing([fhir, fhir]);
    expect(twice.body.data?.importConsents.error?.inputErrors.map((error) => error.field)).toEqual(['input.resources[1]']);
    const narrowed = await importing([{ ...fhir, provision: { ...(fhir['provision'] as object), data: [{ meaning: 'instance', reference: { reference: 'Condition/1' } }] } }]);
    expect(narrowed.body.data?.importConsents.error?.inputErrors.map((error) => error.field)).toEqual(['input.resources[0].provision.data']);
    const imported = await importing({ resourceType: 'Bundle', entry: [{ resource: fhir }] });
    expect(imported.body.data?.importConsents).toMatchObject({ ok: true, consents: [{ source: 'imported', scope: 'treatment', sensitiveData: ['SUD'], decision: 'permit' }] });
    expect(await count()).toBe((before ?? 0) + 1);
    // The officer's reading of the patient's consents is on the patient's trail.
    const listed = await post<{ patientConsents: { edges: { node: { id: string } }[] } }>(stack.gatewayUrl, 'query($id: ID!) { patientConsents(patientId: $id, first: 100) { edges { node { id } } } }', {
      token: officer,
      variables: { id: patientId },
    });
    expect(listed.body.data?.patientConsents.edges.map((edge) => edge.node.id)).toContain(paperId);
    const reads = await stack.sql<{ n: number }>(`select count(*)::int as n from audit_event where entity_type = 'Consent' and action = 'read' and patient_ids @> array[?]::uuid[]`, [patientId]);
    expect(reads[0]?.n).toBeGreaterThan(0);
    // And the paper consent's revocation, recorded by the officer from the patient's signed form, never without one.
    expect((await revoke(officer, paperId)).body.data?.revokeConsent.error?.inputErrors.map((error) => error.field)).toEqual(['input.documentReference']);
    expect((await revoke(officer, paperId, 'scan-2026-1203')).body.data?.revokeConsent).toMatchObject({ ok: true, consent: { status: 'revoked' } });
    // An officer of another organization imports nothing for this patient.
    const stranger = await stack.token('privacyOfficer', { organizationId: partnerOrganization });
    const refused = await post<{ importConsents: { error: { code: string } | null } }>(stack.gatewayUrl, 'mutation($input: ImportConsentsInput!) { importConsents(input: $input) { error { code } } }', {
      token: stranger,
      variables: { input: { patientId, resources: JSON.stringify(fhir), documentReference: 'their own export' } },
    });
    expect(refused.body.data?.importConsents.error?.code).toBe('NOT_FOUND');
  });
});
