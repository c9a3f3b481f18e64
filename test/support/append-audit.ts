/** A separate process appending audit batches (for the concurrent-writers test). argv: databaseUrl count label */
import { openDatabase } from '../../src/db/index.js';
import { DatabaseAuditStore, type AuditEventRecord } from '../../src/audit/index.js';

const [url, count, label] = process.argv.slice(2);
const db = await openDatabase({ url, dataDir: '/tmp/unused-audit-writer' });
const store = new DatabaseAuditStore(db);
for (let index = 0; index < Number(count); index += 1) {
  await store.append([auditEvent(`${label}-${index}`)]);
}
await db.close();

function auditEvent(requestId: string): AuditEventRecord {
  return {
    recordedAt: new Date().toISOString(),
    requestId,
    subgraph: 'test',
    subject: label ?? 'writer',
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
  };
}
