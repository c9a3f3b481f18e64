import { loadConfig } from '../config.js';
import { openDatabase } from '../db/index.js';
import { purgeExpiredAudit } from '../audit/index.js';
import { describeError } from '../errors.js';

/** `npm run audit:purge`: removes audit batches past retention and moves the chain checkpoint. */
try {
  const config = loadConfig();
  const db = await openDatabase({ url: config.database.url, dataDir: config.database.dataDir });
  try {
    const result = await purgeExpiredAudit(db);
    console.log(`Purged ${result.batches} batches (${result.events} events) past retention; the chain is verifiable from batch ${result.checkpoint}.`);
  } finally {
    await db.close();
  }
} catch (error) {
  console.error(`audit:purge: ${describeError(error)}`);
  process.exit(1);
}
