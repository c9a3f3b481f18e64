import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { openDatabase } from '../db/index.js';
import { ensureDatabaseRoles, roleNames } from '../db/roles.js';
import { describeError } from '../errors.js';

/**
 * `npm run db:roles [-- --prefix phi_graph]`, connected (DATABASE_URL) as a
 * superuser: creates or updates the owner, API and retention roles
 * (src/db/roles.ts). Passwords, when wanted, come from DB_OWNER_PASSWORD,
 * DB_API_PASSWORD and DB_RETENTION_PASSWORD. Idempotent: run it again after
 * every migration, so new tables are granted too.
 */
try {
  const { values } = parseArgs({ options: { prefix: { type: 'string', default: 'phi_graph' } }, strict: true });
  const config = loadConfig();
  if (!config.database.url) throw new Error('DATABASE_URL is required: roles are a PostgreSQL feature (the embedded database has one role)');
  const roles = roleNames(values.prefix);
  const db = await openDatabase({ url: config.database.url, dataDir: config.database.dataDir });
  try {
    await ensureDatabaseRoles(db, roles, {
      ...(process.env['DB_OWNER_PASSWORD'] && { owner: process.env['DB_OWNER_PASSWORD'] }),
      ...(process.env['DB_API_PASSWORD'] && { api: process.env['DB_API_PASSWORD'] }),
      ...(process.env['DB_RETENTION_PASSWORD'] && { retention: process.env['DB_RETENTION_PASSWORD'] }),
    });
  } finally {
    await db.close();
  }
  console.log(
    [
      `Roles ready: ${roles.owner} (owns the tables; run migrations as it), ${roles.api} (the API's DATABASE_URL), ${roles.retention} (npm run audit:purge).`,
      'Run this again after each migration.',
    ].join('\n'),
  );
} catch (error) {
  console.error(`db:roles: ${describeError(error)}`);
  process.exit(1);
}
