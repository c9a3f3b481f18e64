import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { openDatabase } from '../db/index.js';
import { verifyAuditChain } from '../audit/index.js';

/**
 * npm run audit:verify   walks the audit hash chain and reports any edited, deleted or reordered row (exit 1).
 */
const { positionals } = parseArgs({ allowPositionals: true, strict: true });
const [command] = positionals;
const config = loadConfig();

try {
  const db = await openDatabase({ url: config.database.url, dataDir: config.database.dataDir });
  try {
    switch (command) {
      case 'verify': {
        const report = await verifyAuditChain(db);
        if (report.ok) {
          console.log(`Audit chain intact: ${report.batches} batches, ${report.events} events.`);
        } else {
          console.error(`Audit chain BROKEN (${report.problems.length} problems over ${report.batches} batches):`);
          for (const problem of report.problems) console.error(`  batch ${problem.sequence}: ${problem.problem}`);
          process.exitCode = 1;
        }
        break;
      }
      case undefined:
      default:
        throw new Error('usage: audit.ts verify');
    }
  } finally {
    await db.close();
  }
} catch (error) {
  console.error(`audit: ${(error as Error).message}`);
  process.exit(2);
}
