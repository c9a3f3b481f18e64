import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEntries, auditEventId, exportAuditEvents, exportAuditLines, type ExportedAuditEvent, type FhirAuditEvent } from '../src/audit/index.js';
import { post, startTestStack, type TestStack } from './support/stack.js';
import { patientOutsideCareTeams } from './support/fixtures.js';

const run = promisify(execFile);
let stack: TestStack;

/** Unique to this run, so the requests of this file are found by prefix. */
const PREFIX = `export-${randomBytes(4).toString('hex')}`;
const REQUEST = {
  billing: `${PREFIX}-billing`,
  clinician: `${PREFIX}-clinician`,
  denied: `${PREFIX}-denied`,
  emergencyOpen: `${PREFIX}-emergency-open`,
  emergencyRead: `${PREFIX}-emergency-read`,
};
let from: Date;
let to: Date;
let grantId: string;
let outsidePatient: string;

interface StoredField {
  field: string;
  outcome: string;
  reason?: string;
}

interface EventRow {
  id: string | number;
  position: string | number;
  recorded_at: Date | string;
  request_id: string;
  subject: string;
  roles: string[];
  patient_id: string | null;
  entity_type: string;
  entity_id: string | null;
  action: string;
  fields: StoredField[] | string;
  emergency: boolean;
  emergency_grant_id: string | null;
  subgraph: string;
  operation_hash: string;
  ip: string | null;
}

const fieldsOf = (row: EventRow): StoredField[] => (typeof row.fields === 'string' ? (JSON.parse(row.fields) as StoredField[]) : row.fields);

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of source) items.push(item);
  return items;
}

beforeAll(async () => {
  stack = await startTestStack({ patients: 30 });
  from = new Date();
  const billing = await post(
    stack.gatewayUrl,
    'query BillingRoster { patients(first: 3) { edges { node { id mrn ssn name { text } clinicalNotes { edges { node { id } } } } } } }',
    { token: await stack.token('billing'), headers: { 'x-request-id': REQUEST.billing, 'apollographql-client-name': 'billing-portal', 'apollographql-client-version': '2.3.1' } },
  );
  expect(billing.status).toBe(200);
  const clinician = await post(stack.gatewayUrl, 'query Chart($id: ID!) { patient(id: $id) { id mrn name { text } conditions(first: 2) { edges { node { id code { code } } } } } }', {
    token: await stack.token('clinician'),
    variables: { id: stack.principals.patient.patientId },
    headers: { 'x-request-id': REQUEST.clinician },
  });
  expect(clinician.body.errors).toBeUndefined();
  // A patient token without MFA: its own SSN is refused (MFA_REQUIRED), the rest is served.
  const denied = await post(stack.gatewayUrl, 'query Mine($id: ID!) { patient(id: $id) { id gender ssn } }', {
    token: await stack.token('patient', { mfa: false }),
    variables: { id: stack.principals.patient.patientId },
    headers: { 'x-request-id': REQUEST.denied },
  });
  expect(denied.body.errors?.[0]?.extensions?.['reason']).toBe('MFA_REQUIRED');

  const outside = { id: await patientOutsideCareTeams(stack.api.db!, stack.principals.clinician) };
  outsidePatient = outside.id;
  const token = await stack.token('clinician');
  const opened = await post<{ openEmergencyAccess: { grant: { id: string } } }>(
    stack.gatewayUrl,
    'mutation Open($id: ID!) { openEmergencyAccess(input: { patientId: $id, reason: "Unresponsive in the emergency department" }) { grant { id } } }',
    { token, variables: { id: outsidePatient }, headers: { 'x-request-id': REQUEST.emergencyOpen } },
  );
  grantId = opened.body.data?.openEmergencyAccess.grant.id ?? '';
  expect(grantId).not.toBe('');
  const read = await post(stack.gatewayUrl, 'query Emergency($id: ID!) { patient(id: $id) { id name { text } birthDate } }', {
    token,
    variables: { id: outsidePatient },
    headers: { 'x-request-id': REQUEST.emergencyRead },
  });
  expect(read.body.errors).toBeUndefined();
  // Each subgraph writes its batch before its response leaves, so every event is stamped by now.
  to = new Date(Date.now() + 1);
});

afterAll(async () => {
  await stack?.stop();
});

async function ourRows(): Promise<EventRow[]> {
  return stack.sql<EventRow>(`select * from ${auditEntries()} as entry where request_id like ? order by id, position`, [`${PREFIX}-%`]);
}

/** FHIR JSON has no nulls, empty strings, empty arrays or empty objects; codings have a system and a code. */
function wellFormedProblems(value: unknown, path = '$'): string[] {
  if (value === null || value === undefined) return [`${path} is ${String(value)}`];
  if (typeof value === 'string') return value.trim() === '' ? [`${path} is empty`] : [];
  if (typeof value === 'number' || typeof value === 'boolean') return [];
  if (Array.isArray(value)) {
    if (value.length === 0) return [`${path} is an empty array`];
    return value.flatMap((item, index) => wellFormedProblems(item, `${path}[${index}]`));
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value);
    if (entries.length === 0) return [`${path} is an empty object`];
    const problems = entries.flatMap(([key, item]) => wellFormedProblems(item, `${path}.${key}`));
    if ('code' in value) {
      const coding = value as { system?: unknown; code?: unknown };
      if (typeof coding.system !== 'string' || typeof coding.code !== 'string') problems.push(`${path} is a coding without system and code`);
    }
    return problems;
  }
  return [`${path} has a ${typeof value}`];
}

/** The R4 AuditEvent elements that are required (1..1 / 1..*), and the value sets this export binds. */
function r4Problems(resource: FhirAuditEvent): string[] {
  const problems = wellFormedProblems(resource);
  if (resource.resourceType !== 'AuditEvent') problems.push('resourceType');
  if (!/^[A-Za-z0-9\-.]{1,64}$/.test(resource.id)) problems.push('id');
  if (!resource.type?.system || !resource.type.code) problems.push('type (1..1 Coding)');
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(resource.recorded)) problems.push('recorded (1..1 instant)');
  if (!['C', 'R', 'U', 'D', 'E'].includes(resource.action)) problems.push('action');
  if (!['0', '4', '8', '12'].includes(resource.outcome)) problems.push('outcome');
  if (!Array.isArray(resource.agent) || resource.agent.length === 0) problems.push('agent (1..*)');
  for (const agent of resource.agent ?? []) if (typeof agent.requestor !== 'boolean') problems.push('agent.requestor (1..1)');
  if (!resource.source?.observer) problems.push('source.observer (1..1)');
  for (const entity of resource.entity ?? []) {
    for (const detail of entity.detail ?? []) if (typeof detail.type !== 'string' || typeof detail.valueString !== 'string') problems.push('entity.detail type/value[x]');
  }
  return problems;
}

describe('audit export', () => {
  it('exports every event of the range exactly once, as stored, across pages', async () => {
    const rows = await ourRows();
    for (const requestId of Object.values(REQUEST)) expect(rows.some((row) => row.request_id === requestId), requestId).toBe(true);
    const inRange = await stack.sql<{ id: string | number; position: string | number }>(
      `select id, position from ${auditEntries()} as entry where recorded_at >= ? and recorded_at < ? order by id, position`,
      [from, to],
    );

    // A page of 2 rows: the keyset paging is exercised many times over.
    const exported = await collect(exportAuditEvents(stack.api.db!, { from, to, pageSize: 2 }));
    const ids = exported.map(auditEventId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(inRange.map((row) => auditEventId({ id: Number(row.id), position: Number(row.position) })));
    expect(await collect(exportAuditEvents(stack.api.db!, { from, to }))).toEqual(exported);

    const byId = new Map(exported.map((event) => [auditEventId(event), event]));
    for (const row of rows) {
      const event = byId.get(auditEventId({ id: Number(row.id), position: Number(row.position) }));
      expect(event, `event ${row.id}`).toBeDefined();
      expect(event).toMatchObject({
        recordedAt: new Date(row.recorded_at).toISOString(),
        requestId: row.request_id,
        subject: row.subject,
        roles: row.roles,
        patientId: row.patient_id,
        entityType: row.entity_type,
        entityId: row.entity_id,
        action: row.action,
        emergency: row.emergency,
        emergencyGrantId: row.emergency_grant_id,
        subgraph: row.subgraph,
        operationHash: row.operation_hash,
        ip: row.ip,
      });
      expect(event?.fields).toEqual(fieldsOf(row));
    }

    const outcomes = (requestId: string) =>
      new Map(exported.filter((event) => event.requestId === requestId).flatMap((event) => event.fields.map((field) => [field.field, `${field.outcome}${field.reason ? `:${field.reason}` : ''}`])));
    expect(outcomes(REQUEST.billing).get('Patient.ssn')).toBe('masked');
    expect(outcomes(REQUEST.billing).get('Patient.clinicalNotes')).toBe('denied:ROLE_DENIED');
    expect(outcomes(REQUEST.denied).get('Patient.ssn')).toBe('denied:MFA_REQUIRED');
    const emergency = exported.filter((event) => event.requestId === REQUEST.emergencyRead && event.patientId === outsidePatient);
    expect(emergency.length).toBeGreaterThan(0);
    for (const event of emergency) expect(event).toMatchObject({ emergency: true, emergencyGrantId: grantId });
    expect(exported.find((event) => event.requestId === REQUEST.billing)).toMatchObject({ clientName: 'billing-portal', clientVersion: '2.3.1', operationName: 'BillingRoster' });
  });

  it('writes NDJSON lines with camelCase keys and the fields as an array', async () => {
    const lines = await collect(exportAuditLines(stack.api.db!, { from, to }, 'ndjson'));
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      expect(line.endsWith('\n')).toBe(true);
      expect(line.slice(0, -1)).not.toContain('\n');
      const event = JSON.parse(line) as Record<string, unknown>;
      expect(Object.keys(event).every((key) => /^[a-z][A-Za-z]*$/.test(key))).toBe(true);
      expect(Array.isArray(event['fields'])).toBe(true);
      expect(event).toHaveProperty('recordedAt');
      expect(event).toHaveProperty('operationHash');
    }
  });

  it('maps each event to a well-formed FHIR R4 AuditEvent', async () => {
    const events = new Map((await collect(exportAuditEvents(stack.api.db!, { from, to }))).map((event) => [auditEventId(event), event]));
    const resources = (await collect(exportAuditLines(stack.api.db!, { from, to }, 'fhir'))).map((line) => JSON.parse(line) as FhirAuditEvent);
    expect(resources.map((resource) => resource.id)).toEqual([...events.keys()]);
    let sawEmergency = false;
    let sawGrant = false;
    let sawDenied = false;
    for (const resource of resources) {
      const event = events.get(resource.id) as ExportedAuditEvent;
      expect(r4Problems(resource), resource.id).toEqual([]);
      expect(resource.resourceType).toBe('AuditEvent');
      expect(resource.recorded).toBe(event.recordedAt);
      if (event.entityType === 'AccessAlert') {
        // Alerts of the access watch are chained with the events: a security alert, not a use of a record.
        expect(resource.type).toMatchObject({ system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110113' });
        expect(resource.action).toBe('E');
      } else {
        expect(resource.type).toMatchObject({ system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110110' });
        expect(resource.subtype?.[0]).toEqual({ system: 'http://hl7.org/fhir/restful-interaction', code: event.action, display: event.action });
        expect(resource.action).toBe({ read: 'R', create: 'C', update: 'U', delete: 'D' }[event.action]);
      }
      expect(resource.agent[0]?.who.identifier?.value).toBe(event.subject);
      expect(resource.agent[0]?.requestor).toBe(true);
      expect(resource.agent[0]?.role?.map((role) => role.coding[0]?.code)).toEqual(event.roles);
      if (event.ip) expect(resource.agent[0]?.network).toEqual({ address: event.ip, type: '2' });
      expect(resource.source.observer.display).toBe(`phi-graph ${event.subgraph}`);

      const patient = resource.entity.find((entity) => entity.role?.code === '1');
      if (event.patientId) {
        expect(patient?.what?.reference).toBe(`Patient/${event.patientId}`);
        expect(patient?.role?.system).toBe('http://terminology.hl7.org/CodeSystem/object-role');
      } else {
        expect(patient).toBeUndefined();
      }
      const data = resource.entity.find((entity) => entity.role?.code === '4');
      const expectedWhat = event.entityId === null ? event.entityType : `${event.entityType}/${event.entityId}`;
      expect(data?.what?.reference ?? data?.what?.display).toBe(expectedWhat);
      expect(data?.detail?.map((detail) => [detail.type, detail.valueString])).toEqual(
        event.fields.map((field) => [field.field, field.reason ? `${field.outcome}:${field.reason}` : field.outcome]),
      );
      const denied = event.fields.some((field) => field.outcome === 'denied');
      expect(resource.outcome).toBe(denied ? '4' : '0');
      sawDenied ||= denied;

      const request = resource.entity.find((entity) => entity.type?.code === 'XrequestId');
      expect(request?.what?.identifier?.value).toBe(event.requestId);
      const operation = resource.entity.find((entity) => entity.role?.code === '24');
      expect(operation?.detail).toContainEqual({ type: 'operationHash', valueString: event.operationHash });

      // The request's purpose of use (every event recorded since purposes exist has one), as IHE BALP gives it.
      expect(event.purpose).toMatch(/^[A-Z]+$/);
      expect(resource.purposeOfEvent?.[0]?.coding).toEqual([expect.objectContaining({ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: event.purpose })]);
      expect(resource.agent[0]?.purposeOfUse).toEqual([resource.purposeOfEvent?.[0]]);
      if (event.emergency) {
        sawEmergency = true;
        expect(resource.purposeOfEvent?.[1]?.coding).toContainEqual(
          expect.objectContaining({ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'ETREAT' }),
        );
        if (event.emergencyGrantId) {
          expect(patient?.detail).toContainEqual({ type: 'emergencyGrantId', valueString: event.emergencyGrantId });
          sawGrant ||= event.emergencyGrantId === grantId;
        }
      } else {
        expect(resource.purposeOfEvent).toHaveLength(1);
      }
      // No value ever: the resource says nothing the stored row does not.
      expect(JSON.stringify(resource)).not.toMatch(/MRN\d|\d{3}-\d{2}-\d{4}/);
    }
    expect(sawEmergency).toBe(true);
    expect(sawGrant).toBe(true);
    expect(sawDenied).toBe(true);
  });

  it('yields nothing for a range that excludes the events', async () => {
    expect(await collect(exportAuditEvents(stack.api.db!, { from: new Date(from.getTime() - 3_600_000), to: from }))).toEqual([]);
    expect(await collect(exportAuditEvents(stack.api.db!, { from: to, to: new Date(to.getTime() + 3_600_000) }))).toEqual([]);
    expect(await collect(exportAuditEvents(stack.api.db!, { from: to, to: from }))).toEqual([]);
  });

  it('runs as a command (npm run audit:export) on PostgreSQL', async () => {
    // PGlite keeps one process per data folder: the running stack holds it, so the command can only run beside it on PostgreSQL.
    if (!stack.config.database.url) return;
    const env = { ...process.env, DATA_DIR: stack.config.database.dataDir, DATABASE_URL: stack.config.database.url };
    const expected = (await collect(exportAuditEvents(stack.api.db!, { from, to }))).map(auditEventId);

    const fhir = await run('node_modules/.bin/tsx', ['src/cli/audit.ts', 'export', '--from', from.toISOString(), '--to', to.toISOString(), '--format', 'fhir'], { env, maxBuffer: 64 * 1024 * 1024 });
    const lines = fhir.stdout.split('\n').filter((line) => line !== '');
    expect(lines.map((line) => (JSON.parse(line) as FhirAuditEvent).id)).toEqual(expected);
    for (const line of lines) expect((JSON.parse(line) as FhirAuditEvent).resourceType).toBe('AuditEvent');
    expect(fhir.stderr).toContain(`Exported ${expected.length} audit events`);

    const folder = await mkdtemp(join(tmpdir(), 'phi-graph-export-'));
    try {
      const out = join(folder, 'audit.ndjson');
      await run('node_modules/.bin/tsx', ['src/cli/audit.ts', 'export', '--from', from.toISOString(), '--to', to.toISOString(), '--out', out], { env });
      const written = (await readFile(out, 'utf8')).split('\n').filter((line) => line !== '');
      expect(written.map((line) => auditEventId(JSON.parse(line) as { id: number; position: number }))).toEqual(expected);

      const refused = await run('node_modules/.bin/tsx', ['src/cli/audit.ts', 'export', '--from', 'yesterday', '--to', to.toISOString()], { env }).catch(
        (error: { code: number; stderr: string }) => error,
      );
      expect((refused as { code: number }).code).toBe(2);
      expect((refused as { stderr: string }).stderr).toContain('--from must be an ISO 8601 date');
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  }, 120_000);
});
