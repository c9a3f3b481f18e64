import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEntries } from '../src/audit/index.js';
import { createLogger } from '../src/logger.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * An administrator changes who is on a care team, and so who sees which
 * patients. Tried as an escalation: an admin whose own account is linked to
 * a practitioner adds that practitioner (itself) to the care team of a
 * patient, directly and through the gateway; an admin token that also
 * carries a clinical role adds anyone. Both are refused with nothing
 * written, and every attempt, refused or accepted, is in the audit trail
 * (care team and practitioner ids, no values) and raises an access alert.
 */

let stack: TestStack;
/** Every line the API logged at warn and above, parsed. */
const logged: Record<string, unknown>[] = [];

interface Payload {
  ok: boolean;
  error: { code: string; message: string; inputErrors: { field: string; message: string }[] } | null;
}

/** A patient with a care team, in the sample admin's organization, and physicians of that organization who are not on the team. */
let patientId: string;
let careTeamId: string;
/** Linked to the admin's own account in beforeAll. */
let ownPractitionerId: string;
let otherPractitionerId: string;
let otherPractitionerSubject: string;

beforeAll(async () => {
  stack = await startTestStack({
    patients: 60,
    logger: createLogger('warn', {
      write: (line: string) => {
        logged.push(JSON.parse(line) as Record<string, unknown>);
      },
    }),
  });
  const organizationId = stack.principals.admin.organizationId;
  const [patient] = await stack.sql<{ id: string; care_team_id: string }>(
    'select id, care_team_id from patient where managing_organization_id = ? and care_team_id is not null order by id limit 1',
    [organizationId],
  );
  if (!patient) throw new Error('no patient with a care team in the admin organization');
  patientId = patient.id;
  careTeamId = patient.care_team_id;
  const outsiders = await stack.sql<{ id: string; subject: string }>(
    `select pr.id, u.subject from practitioner pr join app_user u on u.practitioner_id = pr.id
      where pr.organization_id = ? and pr.qualification = 'physician'
        and pr.id not in (select practitioner_id from care_team_member where care_team_id = ?)
      order by pr.id limit 2`,
    [organizationId, careTeamId],
  );
  if (outsiders.length < 2) throw new Error('not enough physicians outside the care team');
  ownPractitionerId = outsiders[0]?.id ?? '';
  otherPractitionerId = outsiders[1]?.id ?? '';
  otherPractitionerSubject = outsiders[1]?.subject ?? '';
  // The seed links no staff account to a practitioner: this admin is also that physician.
  await stack.sql('update app_user set practitioner_id = ? where subject = ?', [ownPractitionerId, stack.principals.admin.subject]);
});

afterAll(async () => {
  await stack?.stop();
});

async function addCareTeamMember(url: string, token: string, practitionerId: string): Promise<{ payload: Payload | null; errors: unknown[] }> {
  const response = await post<{ addCareTeamMember: Payload | null }>(
    url,
    'mutation($input: AddCareTeamMemberInput!) { addCareTeamMember(input: $input) { ok error { code message inputErrors { field message } } } }',
    { token, variables: { input: { careTeamId, practitionerId } } },
  );
  return { payload: response.body.data?.addCareTeamMember ?? null, errors: response.body.errors ?? [] };
}

async function memberships(practitionerId: string): Promise<number> {
  const [row] = await stack.sql<{ n: string }>('select count(*) as n from care_team_member where care_team_id = ? and practitioner_id = ?', [careTeamId, practitionerId]);
  return Number(row?.n);
}

/** What a clinician token for this subject sees of the patient (a clinician reads it only through its care teams). */
async function clinicianSees(subject: string): Promise<boolean> {
  const token = await stack.token('clinician', { subject, organizationId: stack.principals.admin.organizationId });
  const response = await post<{ patient: { id: string } | null }>(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { id } }', { token, variables: { id: patientId } });
  return response.body.data?.patient?.id === patientId;
}

interface RecordedField {
  field: string;
  outcome: string;
  reason?: string;
}

/** The audit events of a subject about this care team, a practitioner, or an alert: entity, entity id and fields. */
async function recorded(subject: string): Promise<{ entity: string; fields: RecordedField[] }[]> {
  const rows = await stack.sql<{ entity_type: string; entity_id: string | null; fields: RecordedField[] | string }>(
    `select entry.entity_type, entry.entity_id, entry.fields from ${auditEntries('e.subject = ?')} as entry
      where entry.entity_type in ('CareTeam', 'Practitioner', 'AccessAlert') order by entry.id, entry.position`,
    [subject],
  );
  return rows.map((row) => ({
    entity: row.entity_id ? `${row.entity_type}/${row.entity_id}` : row.entity_type,
    fields: typeof row.fields === 'string' ? (JSON.parse(row.fields) as RecordedField[]) : row.fields,
  }));
}

function alertLines(kind: string): Record<string, unknown>[] {
  return logged.filter((line) => line['event'] === 'access-alert' && line['alert'] === kind);
}

describe('an administrator adding a practitioner to a care team', () => {
  it('is refused when the practitioner is linked to its own account, writes nothing, and the account still cannot read the team patients', async () => {
    const subject = stack.principals.admin.subject;
    expect(await clinicianSees(subject)).toBe(false);
    const admin = await stack.token('admin');
    // Through the gateway, and straight to the patient subgraph: the same refusal.
    for (const url of [stack.gatewayUrl, stack.subgraphUrl('patient')]) {
      const { payload, errors } = await addCareTeamMember(url, admin, ownPractitionerId);
      expect(errors, url).toEqual([]);
      expect(payload?.ok, url).toBe(false);
      expect(payload?.error?.code, url).toBe('INVALID_INPUT');
      expect(payload?.error?.inputErrors.map((problem) => problem.field), url).toEqual(['input.practitionerId']);
    }
    expect(await memberships(ownPractitionerId)).toBe(0);
    expect(await clinicianSees(subject)).toBe(false);

    const events = await recorded(subject);
    const refusal = { field: 'CareTeam.members', outcome: 'denied', reason: 'SELF_GRANT' };
    expect(events.filter((event) => event.entity === `CareTeam/${careTeamId}`).map((event) => event.fields)).toContainEqual(expect.arrayContaining([refusal]));
    expect(events.filter((event) => event.entity === `Practitioner/${ownPractitionerId}`).map((event) => event.fields)).toContainEqual([refusal]);
    const alerts = events.filter((event) => event.entity === 'AccessAlert').flatMap((event) => event.fields);
    expect(alerts).toContainEqual({ field: 'alert:care-team-change-refused', outcome: 'denied', reason: `SELF_GRANT careTeam=${careTeamId} practitioner=${ownPractitionerId}` });
    const [line] = alertLines('care-team-change-refused').filter((each) => each['subject'] === subject);
    expect(line).toMatchObject({ level: 40, careTeamId, practitionerId: ownPractitionerId, refusal: 'SELF_GRANT', subject });
    // Ids and the reason only: nothing about the patients the team treats.
    expect(Object.keys(line ?? {}).sort()).toEqual(['alert', 'careTeamId', 'event', 'level', 'msg', 'practitionerId', 'refusal', 'requestId', 'service', 'subgraph', 'subject', 'time'].sort());
  });

  it('is refused, whoever is added, when the token also carries a role that sees patients through care teams', async () => {
    for (const role of ['clinician', 'nurse'] as const) {
      const subject = `staff:admin-and-${role}`;
      const token = await stack.token('admin', { subject, roles: ['admin', role] });
      const { payload } = await addCareTeamMember(stack.gatewayUrl, token, otherPractitionerId);
      expect(payload?.ok, role).toBe(false);
      expect(payload?.error?.code, role).toBe('CONFLICT');
      expect(await memberships(otherPractitionerId), role).toBe(0);
      const events = await recorded(subject);
      expect(events.filter((event) => event.entity === `Practitioner/${otherPractitionerId}`).map((event) => event.fields), role).toEqual([
        [{ field: 'CareTeam.members', outcome: 'denied', reason: 'SEPARATION_OF_DUTIES' }],
      ]);
      expect(alertLines('care-team-change-refused').filter((line) => line['subject'] === subject), role).toMatchObject([{ refusal: 'SEPARATION_OF_DUTIES', careTeamId, practitionerId: otherPractitionerId }]);
    }
  });

  it('adds another practitioner of its organization, on the record with both ids and alerted', async () => {
    const subject = stack.principals.admin.subject;
    expect(await clinicianSees(otherPractitionerSubject)).toBe(false);
    const { payload } = await addCareTeamMember(stack.gatewayUrl, await stack.token('admin'), otherPractitionerId);
    expect(payload).toEqual({ ok: true, error: null });
    expect(await memberships(otherPractitionerId)).toBe(1);
    expect(await clinicianSees(otherPractitionerSubject)).toBe(true);

    const events = await recorded(subject);
    const change = { field: 'CareTeam.members', outcome: 'allowed' };
    // The team's event also names the mutation that asked (the field decision), by field name only.
    expect(events.filter((event) => event.entity === `CareTeam/${careTeamId}`).map((event) => event.fields)).toContainEqual(
      expect.arrayContaining([change, { field: 'Mutation.addCareTeamMember:members', outcome: 'allowed' }]),
    );
    expect(events.filter((event) => event.entity === `Practitioner/${otherPractitionerId}`).map((event) => event.fields)).toContainEqual([change]);
    expect(events.filter((event) => event.entity === 'AccessAlert').flatMap((event) => event.fields)).toContainEqual({
      field: 'alert:care-team-change',
      outcome: 'allowed',
      reason: `careTeam=${careTeamId} practitioner=${otherPractitionerId}`,
    });
    expect(alertLines('care-team-change').filter((line) => line['subject'] === subject)).toMatchObject([{ level: 40, careTeamId, practitionerId: otherPractitionerId }]);
  });
});
