import { loadConfig } from '../config.js';
import { openDatabase } from './orm.js';
import { describeError } from '../errors.js';

/** `npm run migrate`: applies pending migrations (the production path; start does it in development). */
try {
  const config = loadConfig();
  const db = await openDatabase({ url: config.database.url, dataDir: config.database.dataDir });
  try {
    const applied = await db.migrate();
    console.log(applied.length ? `Applied ${applied.length} migration(s): ${applied.join(', ')}` : 'Database is up to date.');
  } finally {
    await db.close();
  }
} catch (error) {
  console.error(`Migration failed: ${describeError(error)}`);
  process.exit(1);
}
