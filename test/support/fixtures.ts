import type { AuditEventRecord } from '../../src/audit/index.js';
import type { Database } from '../../src/db/index.js';

/** Test data helpers shared by the integration tests. */

/** Runs one SQL statement on the test database (reading raw rows, or breaking things on purpose). */
export function sqlOn(db: Database) {
  return <T>(text: string, params: unknown[] = []): Promise<T[]> => db.fork().execute<T[]>(text, params);
}

/** A patient of the clinician's organization that none of the clinician's care teams treats. */
export async function patientOutsideCareTeams(db: Database, clinician: { subject: string; organizationId: string | null }): Promise<string> {
  const [row] = await sqlOn(db)<{ id: string }>(
    `select p.id from patient p where p.managing_organization_id = ? and (p.care_team_id is null or p.care_team_id not in
      (select m.care_team_id from care_team_member m join app_user u on u.practitioner_id = m.practitioner_id where u.subject = ?)) order by p.id limit 1`,
    [clinician.organizationId, clinician.subject],
  );
  if (!row) throw new Error('no patient outside the care teams');
  return row.id;
}

/** A minimal audit event, for exercising the store and the chain directly. */
export function testAuditEvent(requestId: string, overrides: Partial<AuditEventRecord> = {}): AuditEventRecord {
  return {
    recordedAt: new Date().toISOString(),
    requestId,
    subgraph: 'test',
    subject: 'writer',
    roles: ['auditor'],
    organizationId: null,
    clientName: null,
    clientVersion: null,
    ip: null,
    operationName: null,
    operationHash: 'x',
    patientId: null,
    entityType: 'Test',
    entityId: null,
    action: 'read',
    fields: [{ field: 'Test.field', outcome: 'allowed' }],
    emergency: false,
    emergencyGrantId: null,
    ...overrides,
  };
}
