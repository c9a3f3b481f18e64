import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatabaseAuditStore, auditEntries, verifyAuditChain } from '../src/audit/index.js';
import { toBuffer } from '../src/crypto/index.js';
import { post, startTestStack, type TestStack } from './support/stack.js';
import { patientOutsideCareTeams, testAuditEvent } from './support/fixtures.js';

const run = promisify(execFile);
let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 30 });
});

afterAll(async () => {
  await stack?.stop();
});

interface EventRow {
  patient_id: string | null;
  entity_type: string;
  entity_id: string | null;
  action: string;
  fields: { field: string; outcome: string; reason?: string }[] | string;
  subject: string;
  roles: string[];
  operation_name: string | null;
  operation_hash: string;
  client_name: string | null;
  ip: string | null;
  subgraph: string;
}

const fieldsOf = (row: EventRow) => (typeof row.fields === 'string' ? (JSON.parse(row.fields) as { field: string; outcome: string; reason?: string }[]) : row.fields);

describe('the audit trail', () => {
  it('records every PHI field read and refused, per patient, with who, what operation and from where, and no values', async () => {
    const requestId = `audit-test-${Date.now()}`;
    const query = 'query Roster { patients(first: 5) { edges { node { id gender mrn name { text } ssn clinicalNotes { edges { node { text } } } } } } }';
    const response = await post<{ patients: { edges: { node: { id: string; mrn: string; name: { text: string }; ssn: string } }[] } }>(stack.gatewayUrl, query, {
      token: await stack.token('billing'),
      headers: { 'x-request-id': requestId, 'apollographql-client-name': 'billing-portal', 'apollographql-client-version': '2.3.1' },
    });
    const patients = response.body.data?.patients.edges.map((edge) => edge.node) ?? [];
    expect(patients).toHaveLength(5);

    const rows = await stack.sql<EventRow>(`select * from ${auditEntries()} as entry where request_id = ? order by id, position`, [requestId]);
    for (const patient of patients) {
      const events = rows.filter((row) => row.patient_id === patient.id && row.entity_type === 'Patient');
      const outcomes = new Map(events.flatMap(fieldsOf).map((field) => [field.field, `${field.outcome}${field.reason ? `:${field.reason}` : ''}`]));
      expect(outcomes.get('Patient.mrn')).toBe('allowed');
      expect(outcomes.get('Patient.name')).toBe('allowed');
      expect(outcomes.get('Patient.ssn')).toBe('masked');
      expect(outcomes.get('Patient.gender')).toBe('allowed');
      expect(outcomes.get('Patient.clinicalNotes')).toBe('denied:ROLE_DENIED');
      expect(outcomes.has('Patient.id')).toBe(false);
    }
    // The five patients were read alike: their events share one stored row (the insert does not grow with the page), and each is still listed on its own above.
    const [stored] = await stack.sql<{ rows: number; events: number }>(
      `select count(*)::int as rows, coalesce(sum(cardinality(patient_ids)), 0)::int as events from audit_event where request_id = ? and subgraph = 'patient' and entity_type = 'Patient'`,
      [requestId],
    );
    expect(stored).toEqual({ rows: 1, events: 5 });
    const first = rows[0] as EventRow;
    expect(first).toMatchObject({ subject: stack.principals.billing.subject, operation_name: 'Roster', client_name: 'billing-portal', action: 'read' });
    expect(first.operation_hash).toBe(createHash('sha256').update(query).digest('hex'));
    expect(first.ip).toMatch(/127\.0\.0\.1/);
    expect(new Set(rows.map((row) => row.subgraph))).toEqual(new Set(['patient', 'clinical']));

    const everything = JSON.stringify(rows);
    for (const patient of patients) {
      expect(everything).not.toContain(patient.mrn);
      expect(everything).not.toContain(patient.name.text);
      expect(everything).not.toContain(patient.ssn.slice(-4) + '"');
    }
  });

  it('records mutations by field name, and reads under break-the-glass as emergency access', async () => {
    const token = await stack.token('patient');
    const requestId = `audit-mutation-${Date.now()}`;
    await post(stack.gatewayUrl, 'mutation { updateMyContact(input: { phone: "+1-617-555-0111" }) { ok } }', { token, headers: { 'x-request-id': requestId } });
    const [row] = await stack.sql<EventRow>(`select * from ${auditEntries()} as entry where request_id = ? and action = 'update'`, [requestId]);
    expect(row?.patient_id).toBe(stack.principals.patient.patientId);
    expect(fieldsOf(row!).map((field) => field.field)).toEqual(['Mutation.updateMyContact:phone']);
    expect(JSON.stringify(row)).not.toContain('555-0111');

    const clinician = await stack.token('clinician');
    const outside = { id: await patientOutsideCareTeams(stack.api.db!, stack.principals.clinician) };
    const opened = await post<{ openEmergencyAccess: { grant: { id: string } } }>(
      stack.gatewayUrl,
      'mutation($id: ID!) { openEmergencyAccess(input: { patientId: $id, reason: "Unresponsive in the emergency department" }) { grant { id } } }',
      { token: clinician, variables: { id: outside?.id } },
    );
    const grantId = opened.body.data?.openEmergencyAccess.grant.id;
    const readId = `audit-emergency-${Date.now()}`;
    await post(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { name { text } } }', { token: clinician, variables: { id: outside?.id }, headers: { 'x-request-id': readId } });
    const [read] = await stack.sql<{ emergency: boolean; emergency_grant_id: string }>(
      `select emergency, emergency_grant_id from ${auditEntries()} as entry where request_id = ? and patient_id = ?`,
      [readId, outside?.id],
    );
    expect(read).toEqual({ emergency: true, emergency_grant_id: grantId });
  });

  it('fails closed: when the audit cannot be written, no data leaves (503, AUDIT_UNAVAILABLE), and it resumes after', async () => {
    await stack.sql(`create or replace function phi_graph_test_break_audit() returns trigger language plpgsql as $$ begin raise exception 'audit store down'; end $$`);
    await stack.sql('create trigger phi_graph_test_break_audit before insert on audit_event for each statement execute function phi_graph_test_break_audit()');
    const failuresBefore = stack.api.auditMetrics.failures;
    try {
      const token = await stack.token('clinician');
      const query = 'query($id: ID!) { patient(id: $id) { id mrn name { text } conditions { edges { node { code { code } } } } } }';
      const response = await post(stack.gatewayUrl, query, { token, variables: { id: stack.principals.patient.patientId } });
      expect(response.status).toBe(503);
      expect(response.body.data ?? null).toBeNull();
      expect(response.body.errors?.map((error) => error.extensions?.['code'])).toEqual(['AUDIT_UNAVAILABLE']);
      const direct = await post(stack.subgraphUrl('patient'), query.replace(/conditions \{[^}]*\}[^}]*\}[^}]*\} \}/, ''), { token, variables: { id: stack.principals.patient.patientId } });
      expect(direct.status).toBe(503);
      // The refusal replaces the response's headers: it still tells caches to keep nothing.
      expect(direct.headers.get('cache-control')).toBe('no-store');
      expect(direct.headers.get('retry-after')).toBe('5');
      expect(JSON.stringify(direct.body)).not.toMatch(/MRN\d/);
      expect(stack.api.auditMetrics.failures).toBeGreaterThan(failuresBefore);
    } finally {
      await stack.sql('drop trigger phi_graph_test_break_audit on audit_event');
    }
    const again = await post(stack.gatewayUrl, '{ patients(first: 1) { edges { node { mrn } } } }', { token: await stack.token('billing') });
    expect(again.status).toBe(200);
  });

  it('is append-only in the database itself, for every role', async () => {
    const refused = async (statement: string) => {
      try {
        await stack.sql(statement);
        return false;
      } catch (error) {
        return /append-only|only moves forward|cannot be/.test((error as Error).message);
      }
    };
    expect(await refused("update audit_event set subject = 'someone else'")).toBe(true);
    expect(await refused('delete from audit_event')).toBe(true);
    expect(await refused('truncate audit_event')).toBe(true);
    expect(await refused('delete from audit_batch')).toBe(true);
    expect(await refused('update audit_chain set retention_days = 1')).toBe(true);
    expect(await refused('delete from audit_chain')).toBe(true);
  });
});

describe('the hash chain', () => {
  it('stays one valid chain under concurrent writers', async () => {
    const store = new DatabaseAuditStore(stack.api.db!);
    const [before] = await stack.sql<{ sequence: string }>('select sequence from audit_chain where id = 1');
    const writes: Promise<unknown>[] = Array.from({ length: 20 }, (_, index) => store.append([testAuditEvent(`concurrent-${index}`)]));
    const url = stack.config.database.url;
    if (url) {
      // Other processes too, on the same database.
      for (const label of ['writer-a', 'writer-b']) writes.push(run('node_modules/.bin/tsx', ['test/support/append-audit.ts', url, '10', label]));
    }
    await Promise.all(writes);
    const [after] = await stack.sql<{ sequence: string }>('select sequence from audit_chain where id = 1');
    expect(Number(after?.sequence) - Number(before?.sequence)).toBe(url ? 40 : 20);
    const report = await verifyAuditChain(stack.api.db!);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
  }, 120_000);

  it('reports an edited, a deleted and a reordered row, each by its batch', async () => {
    const store = new DatabaseAuditStore(stack.api.db!);
    const edited = await store.append([testAuditEvent('edited')]);
    const deleted = await store.append([testAuditEvent('deleted'), testAuditEvent('deleted-2')]);
    const swappedA = await store.append([testAuditEvent('swap-a')]);
    const swappedB = await store.append([testAuditEvent('swap-b')]);
    expect((await verifyAuditChain(stack.api.db!)).ok).toBe(true);
    // Someone with the owner's rights switches the triggers off and tampers.
    await stack.sql('alter table audit_event disable trigger user');
    await stack.sql('alter table audit_batch disable trigger user');
    try {
      await stack.sql("update audit_event set subject = 'innocent' where batch_sequence = ?", [edited]);
      await stack.sql("delete from audit_event where request_id = 'deleted-2'");
      const [a] = await stack.sql<{ previous_hash: Uint8Array; hash: Uint8Array; payload_digest: Uint8Array }>('select * from audit_batch where sequence = ?', [swappedA]);
      const [b] = await stack.sql<{ previous_hash: Uint8Array; hash: Uint8Array; payload_digest: Uint8Array }>('select * from audit_batch where sequence = ?', [swappedB]);
      await stack.sql('update audit_event set batch_sequence = -1 where batch_sequence = ?', [swappedA]);
      await stack.sql('update audit_event set batch_sequence = ? where batch_sequence = ?', [swappedA, swappedB]);
      await stack.sql('update audit_event set batch_sequence = ? where batch_sequence = -1', [swappedB]);
      await stack.sql('update audit_batch set payload_digest = ?, hash = ? where sequence = ?', [toBuffer(b!.payload_digest), toBuffer(b!.hash), swappedA]);
      await stack.sql('update audit_batch set payload_digest = ?, hash = ? where sequence = ?', [toBuffer(a!.payload_digest), toBuffer(a!.hash), swappedB]);
    } finally {
      await stack.sql('alter table audit_event enable trigger user');
      await stack.sql('alter table audit_batch enable trigger user');
    }
    const report = await verifyAuditChain(stack.api.db!);
    expect(report.ok).toBe(false);
    const broken = new Set(report.problems.map((problem) => problem.sequence));
    expect(broken.has(edited)).toBe(true);
    expect(broken.has(deleted)).toBe(true);
    expect(broken.has(swappedA) || broken.has(swappedB)).toBe(true);
    expect(report.problems.find((problem) => problem.sequence === deleted)?.problem).toMatch(/deleted/);

    const cli = await run('node_modules/.bin/tsx', ['src/cli/audit.ts', 'verify'], {
      env: { ...process.env, DATA_DIR: stack.config.database.dataDir, DATABASE_URL: stack.config.database.url ?? '' },
    }).catch((error: { code: number; stderr: string }) => error);
    if (stack.config.database.url) {
      expect((cli as { code: number }).code).toBe(1);
      expect((cli as { stderr: string }).stderr).toContain(`batch ${edited}:`);
    }
  }, 120_000);
});
