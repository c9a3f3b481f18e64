import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { patientOutsideCareTeams } from './support/fixtures.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 80 });
});

afterAll(async () => {
  await stack?.stop();
});

interface Payload {
  ok: boolean;
  error: { code: string; message: string; inputErrors: { field: string; message: string }[] } | null;
  [key: string]: unknown;
}

const INPUT_TYPES: Record<string, string> = { updateMyContact: 'UpdateContactInput' };

async function mutate(name: string, input: Record<string, unknown>, token: string, selection = '') {
  const inputType = INPUT_TYPES[name] ?? `${name[0]?.toUpperCase()}${name.slice(1)}Input`;
  const response = await post<Record<string, Payload | null>>(
    stack.gatewayUrl,
    `mutation($input: ${inputType}!) { ${name}(input: $input) { ok error { code message inputErrors { field message } } ${selection} } }`,
    { token, variables: { input } },
  );
  return { payload: response.body.data?.[name] ?? null, errors: response.body.errors ?? [], status: response.status };
}

describe('updateMyContact', () => {
  const input = { phone: '+1-617-555-0199', email: 'New.Address@Example.test', address: { line: ['1 Main St', 'Apt 2'], city: 'Boston', state: 'MA', postalCode: '02118' } };

  it('lets a patient change their own phone, email and address', async () => {
    const { payload, errors } = await mutate('updateMyContact', input, await stack.token('patient'), 'patient { id phone email address { line city state postalCode } }');
    expect(errors).toEqual([]);
    expect(payload?.ok).toBe(true);
    expect(payload?.['patient']).toEqual({ id: stack.principals.patient.patientId, phone: input.phone, email: 'new.address@example.test', address: input.address });
  });

  it('refuses invalid input field by field and writes nothing', async () => {
    const [before] = await stack.sql<{ phone: Uint8Array }>('select phone from patient where id = ?', [stack.principals.patient.patientId]);
    const { payload } = await mutate('updateMyContact', { phone: '+1-617-555-0100', email: 'not-an-email', address: { line: [], city: 'Boston', state: 'ZZ', postalCode: '2118' } }, await stack.token('patient'));
    expect(payload?.ok).toBe(false);
    expect(payload?.error?.code).toBe('INVALID_INPUT');
    expect(payload?.error?.inputErrors.map((problem) => problem.field).sort()).toEqual(['input.address.line', 'input.address.postalCode', 'input.address.state', 'input.email']);
    const [after] = await stack.sql<{ phone: Uint8Array }>('select phone from patient where id = ?', [stack.principals.patient.patientId]);
    expect(Buffer.from(after?.phone ?? []).equals(Buffer.from(before?.phone ?? []))).toBe(true);
  });

  it('is refused to every other role, and to a patient token without MFA', async () => {
    for (const role of ['clinician', 'billing', 'admin', 'nurse'] as const) {
      const { payload, errors } = await mutate('updateMyContact', input, await stack.token(role));
      expect(payload, role).toBeNull();
      expect(errors[0]?.extensions?.['code'], role).toBe('FORBIDDEN');
    }
    const { errors } = await mutate('updateMyContact', input, await stack.token('patient', { mfa: false }));
    // Its input fields are PHI written: without MFA the operation is refused before it runs, for its arguments.
    expect(errors[0]?.extensions).toMatchObject({ code: 'FORBIDDEN', reason: 'ARGUMENT_DENIED', cause: 'MFA_REQUIRED' });
  });
});

describe('addClinicalNote and addCondition', () => {
  it('let a clinician add a note and a diagnosis to a patient of their care team', async () => {
    const token = await stack.token('clinician');
    const patientId = stack.principals.patient.patientId;
    const note = await mutate('addClinicalNote', { patientId, typeCode: '11506-3', text: 'Seen today; stable.' }, token, 'note { id text type { code display } author { id } }');
    expect(note.errors).toEqual([]);
    expect(note.payload?.ok).toBe(true);
    expect(note.payload?.['note']).toMatchObject({ text: 'Seen today; stable.', type: { code: '11506-3', display: 'Progress note' } });
    const condition = await mutate('addCondition', { patientId, code: 'J06.9', display: 'Acute upper respiratory infection', clinicalStatus: 'active', onsetDate: '2026-01-02' }, token, 'condition { id code { code } recordedDate }');
    expect(condition.payload?.ok).toBe(true);
    const chart = await post<{ patient: { clinicalNotes: { edges: { node: { text: string } }[] } } }>(
      stack.gatewayUrl,
      'query($id: ID!) { patient(id: $id) { clinicalNotes(first: 100) { edges { node { text } } } } }',
      { token, variables: { id: patientId } },
    );
    expect(chart.body.data?.patient.clinicalNotes.edges.map((edge) => edge.node.text)).toContain('Seen today; stable.');
  });

  it('answer NOT_FOUND for a patient outside the care teams, and write nothing', async () => {
    const patientId = await patientOutsideCareTeams(stack.api.db!, stack.principals.clinician);
    const [before] = await stack.sql<{ count: string }>('select count(*) as count from clinical_note where patient_id = ?', [patientId]);
    const { payload } = await mutate('addClinicalNote', { patientId, typeCode: '11506-3', text: 'x' }, await stack.token('clinician'));
    expect(payload?.error?.code).toBe('NOT_FOUND');
    const [after] = await stack.sql<{ count: string }>('select count(*) as count from clinical_note where patient_id = ?', [patientId]);
    expect(after?.count).toBe(before?.count);
  });

  it('validate codes, dates and the encounter', async () => {
    const token = await stack.token('clinician');
    const patientId = stack.principals.patient.patientId;
    const badCode = await mutate('addCondition', { patientId, code: 'diabetes', display: 'x', clinicalStatus: 'active', onsetDate: '2999-01-01' }, token);
    expect(badCode.payload?.error?.inputErrors.map((problem) => problem.field).sort()).toEqual(['input.code', 'input.onsetDate']);
    const [foreign] = await stack.sql<{ id: string }>('select id from encounter where patient_id <> ? limit 1', [patientId]);
    const wrongEncounter = await mutate('addClinicalNote', { patientId, encounterId: foreign?.id, typeCode: '11506-3', text: 'x' }, token);
    expect(wrongEncounter.payload?.error?.code).toBe('NOT_FOUND');
    const badType = await mutate('addClinicalNote', { patientId, typeCode: '99999-9', text: '' }, token);
    expect(badType.payload?.error?.inputErrors.map((problem) => problem.field).sort()).toEqual(['input.text', 'input.typeCode']);
  });

  it('are refused to nurses, billing and patients', async () => {
    for (const role of ['nurse', 'billing', 'patient'] as const) {
      const { payload, errors } = await mutate('addClinicalNote', { patientId: stack.principals.patient.patientId, typeCode: '11506-3', text: 'x' }, await stack.token(role));
      expect(payload, role).toBeNull();
      expect(errors[0]?.extensions?.['code'], role).toBe('FORBIDDEN');
    }
  });
});

describe('recordPayment', () => {
  async function openInvoice(minimumCents: number): Promise<{ id: string; balance: number }> {
    const [row] = await stack.sql<{ id: string; balance_cents: number }>(
      `select i.id, i.balance_cents from invoice i join patient p on p.id = i.patient_id where p.managing_organization_id = ?
       and i.status in ('issued', 'partially_paid') and i.balance_cents >= ? order by i.id limit 1`,
      [stack.principals.billing.organizationId, minimumCents],
    );
    if (!row) throw new Error('no open invoice');
    return { id: row.id, balance: Number(row.balance_cents) };
  }

  it('records a payment and lowers the invoice balance', async () => {
    const invoice = await openInvoice(200);
    const { payload } = await mutate('recordPayment', { invoiceId: invoice.id, amountCents: 100, method: 'card' }, await stack.token('billing'), 'payment { amount { cents } invoice { id balance { cents } status } }');
    expect(payload?.ok).toBe(true);
    expect(payload?.['payment']).toEqual({ amount: { cents: 100 }, invoice: { id: invoice.id, balance: { cents: invoice.balance - 100 }, status: 'partially_paid' } });
  });

  it('refuses more than the balance and writes nothing', async () => {
    const invoice = await openInvoice(1);
    const [before] = await stack.sql<{ count: string }>('select count(*) as count from payment where invoice_id = ?', [invoice.id]);
    const { payload } = await mutate('recordPayment', { invoiceId: invoice.id, amountCents: invoice.balance + 1, method: 'ach' }, await stack.token('billing'));
    expect(payload?.error?.code).toBe('INVALID_INPUT');
    const [after] = await stack.sql<{ count: string }>('select count(*) as count from payment where invoice_id = ?', [invoice.id]);
    expect(after?.count).toBe(before?.count);
  });

  it('lets only one of two concurrent full payments through, never below zero', async () => {
    const invoice = await openInvoice(1);
    const token = await stack.token('billing');
    const results = await Promise.all([1, 2, 3].map(() => mutate('recordPayment', { invoiceId: invoice.id, amountCents: invoice.balance, method: 'check' }, token)));
    expect(results.filter((result) => result.payload?.ok)).toHaveLength(1);
    for (const result of results.filter((each) => !each.payload?.ok)) expect(['CONFLICT', 'INVALID_INPUT']).toContain(result.payload?.error?.code);
    const [row] = await stack.sql<{ balance_cents: number; status: string }>('select balance_cents, status from invoice where id = ?', [invoice.id]);
    expect(Number(row?.balance_cents)).toBe(0);
    expect(row?.status).toBe('paid');
  });

  it('is refused to clinicians', async () => {
    const invoice = await openInvoice(1);
    const { errors } = await mutate('recordPayment', { invoiceId: invoice.id, amountCents: 1, method: 'card' }, await stack.token('clinician'));
    expect(errors[0]?.extensions?.['code']).toBe('FORBIDDEN');
  });
});

describe('addCareTeamMember', () => {
  it('lets an admin add a clinician to a care team, who sees its patients on the very next request', async () => {
    const [team] = await stack.sql<{ care_team_id: string; patient_id: string; organization_id: string }>(
      `select p.care_team_id, p.id as patient_id, p.managing_organization_id as organization_id from patient p where p.care_team_id is not null order by p.id limit 1`,
    );
    const [outsider] = await stack.sql<{ practitioner_id: string; subject: string }>(
      `select pr.id as practitioner_id, u.subject from practitioner pr join app_user u on u.practitioner_id = pr.id
       where pr.organization_id = ? and pr.qualification = 'physician'
       and pr.id not in (select practitioner_id from care_team_member where care_team_id = ?) order by pr.id limit 1`,
      [team?.organization_id, team?.care_team_id],
    );
    const clinician = await stack.token('clinician', { subject: outsider?.subject, organizationId: team?.organization_id });
    const read = () => post<{ patient: { id: string } | null }>(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { id } }', { token: clinician, variables: { id: team?.patient_id } });
    expect((await read()).body.data?.patient).toBeNull(); // also fills the membership cache
    const admin = await stack.token('admin', { organizationId: team?.organization_id });
    const added = await mutate('addCareTeamMember', { careTeamId: team?.care_team_id, practitionerId: outsider?.practitioner_id }, admin, 'careTeam { id members { id } }');
    expect(added.payload?.ok).toBe(true);
    expect((added.payload?.['careTeam'] as { members: { id: string }[] }).members.map((member) => member.id)).toContain(outsider?.practitioner_id);
    expect((await read()).body.data?.patient?.id).toBe(team?.patient_id);
    const again = await mutate('addCareTeamMember', { careTeamId: team?.care_team_id, practitionerId: outsider?.practitioner_id }, admin);
    expect(again.payload?.error?.code).toBe('CONFLICT');
  });

  it('answers NOT_FOUND for a care team of another organization, and is refused to clinicians', async () => {
    const [foreign] = await stack.sql<{ id: string }>('select id from care_team where organization_id <> ? limit 1', [stack.principals.admin.organizationId]);
    const [practitioner] = await stack.sql<{ id: string }>("select id from practitioner where organization_id = ? and qualification = 'nurse' limit 1", [stack.principals.admin.organizationId]);
    const { payload } = await mutate('addCareTeamMember', { careTeamId: foreign?.id, practitionerId: practitioner?.id }, await stack.token('admin'));
    expect(payload?.error?.code).toBe('NOT_FOUND');
    const { errors } = await mutate('addCareTeamMember', { careTeamId: foreign?.id, practitionerId: practitioner?.id }, await stack.token('clinician'));
    expect(errors[0]?.extensions?.['code']).toBe('FORBIDDEN');
  });
});

describe('break the glass', () => {
  it('opens time-boxed access to a patient outside the care teams, with a reason, on the record', async () => {
    const token = await stack.token('clinician');
    const patientId = await patientOutsideCareTeams(stack.api.db!, stack.principals.clinician);
    const read = () => post<{ patient: { id: string; name: { text: string } } | null }>(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { id name { text } } }', { token, variables: { id: patientId } });
    expect((await read()).body.data?.patient).toBeNull();

    const short = await mutate('openEmergencyAccess', { patientId, reason: 'urgent' }, token);
    expect(short.payload?.error?.inputErrors[0]?.field).toBe('input.reason');

    const reason = 'Unconscious patient in the emergency department, allergies unknown';
    const opened = await mutate('openEmergencyAccess', { patientId, reason, minutes: 30 }, token, 'grant { id patientId expiresAt }');
    expect(opened.payload?.ok).toBe(true);
    const grant = opened.payload?.['grant'] as { id: string; patientId: string; expiresAt: string };
    expect(grant.patientId).toBe(patientId);
    const minutes = (Date.parse(grant.expiresAt) - Date.now()) / 60_000;
    expect(minutes).toBeGreaterThan(29);
    expect(minutes).toBeLessThanOrEqual(30);

    expect((await read()).body.data?.patient?.id).toBe(patientId);
    // Reads under the grant are marked; reads of the caller's own care-team patients are not.
    const direct = await post<{ patient: { id: string } }>(stack.subgraphUrl('patient'), 'query($id: ID!) { patient(id: $id) { id } }', { token, variables: { id: patientId } });
    expect(direct.body).toMatchObject({ extensions: { emergencyAccess: { grants: [grant.id] } } });
    const own = await post(stack.subgraphUrl('patient'), 'query($id: ID!) { patient(id: $id) { id } }', { token, variables: { id: stack.principals.patient.patientId } });
    expect((own.body as { extensions?: unknown }).extensions).toBeUndefined();
    const viewer = await post<{ viewer: { emergencyAccess: { id: string }[] } }>(stack.gatewayUrl, '{ viewer { emergencyAccess { id patientId expiresAt } } }', { token });
    expect(viewer.body.data?.viewer.emergencyAccess.map((each) => each.id)).toContain(grant.id);

    const [record] = await stack.sql<{ subject: string; reason: string }>('select subject, reason from emergency_access where id = ?', [grant.id]);
    expect(record).toEqual({ subject: stack.principals.clinician.subject, reason });
    if (stack.api.cache.kind === 'redis') {
      const ttl = await ttlOf(`${stack.config.redisKeyPrefix}emergency-access:${stack.principals.clinician.subject}`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(30 * 60);
    }
  });

  it('ends with its expiry: a grant past its time reaches nothing', async () => {
    const token = await stack.token('clinician', { subject: stack.principals.nurse.subject });
    const [patient] = await stack.sql<{ id: string }>('select id from patient where managing_organization_id = ? order by id desc limit 1', [stack.principals.clinician.organizationId]);
    await stack.api.cache.set(`emergency-access:${stack.principals.nurse.subject}`, JSON.stringify({ [patient?.id ?? '']: { id: 'expired', expiresAt: Date.now() - 1000 } }), 60);
    const read = await post<{ patient: unknown }>(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { id } }', { token, variables: { id: patient?.id } });
    const inCareTeam = await stack.sql<{ n: string }>(
      'select count(*) as n from patient p join care_team_member m on m.care_team_id = p.care_team_id join app_user u on u.practitioner_id = m.practitioner_id where u.subject = ? and p.id = ?',
      [stack.principals.nurse.subject, patient?.id],
    );
    if (Number(inCareTeam[0]?.n) === 0) expect(read.body.data?.patient).toBeNull();
  });

  it('answers NOT_FOUND for a patient of another organization, and is refused to nurses', async () => {
    const [foreign] = await stack.sql<{ id: string }>('select id from patient where managing_organization_id <> ? limit 1', [stack.principals.clinician.organizationId]);
    const reason = 'Transferred patient arriving by ambulance now';
    const opened = await mutate('openEmergencyAccess', { patientId: foreign?.id, reason }, await stack.token('clinician'));
    expect(opened.payload?.error?.code).toBe('NOT_FOUND');
    const nurse = await mutate('openEmergencyAccess', { patientId: foreign?.id, reason }, await stack.token('nurse'));
    expect(nurse.errors[0]?.extensions?.['code']).toBe('FORBIDDEN');
  });
});

async function ttlOf(key: string): Promise<number> {
  const { Redis } = await import('ioredis');
  const client = new Redis(stack.config.redisUrl ?? 'redis://127.0.0.1:6379');
  try {
    return await client.ttl(key);
  } finally {
    client.disconnect();
  }
}
