/** A separate process appending audit batches (for the concurrent-writers test). argv: databaseUrl count label */
import { openDatabase } from '../../src/db/index.js';
import { DatabaseAuditStore } from '../../src/audit/index.js';
import { testAuditEvent } from './fixtures.js';

const [url, count, label] = process.argv.slice(2);
const db = await openDatabase({ url, dataDir: '/tmp/unused-audit-writer' });
const store = new DatabaseAuditStore(db);
for (let index = 0; index < Number(count); index += 1) {
  await store.append([testAuditEvent(`${label}-${index}`, { subject: label ?? 'writer' })]);
}
await db.close();
