import type { Database } from './index.js';

/**
 * Least privilege in PostgreSQL: three roles, so the append-only triggers
 * of the audit trail bind the API instead of being a convention.
 * - the owner (`<prefix>_owner`) owns every table and function and runs the
 *   migrations; only it (or a superuser) can alter tables or disable triggers;
 * - the API (`<prefix>_api`) reads and writes the tables the API needs, but
 *   of the audit trail may only SELECT and INSERT events and batches and move
 *   the chain head (UPDATE of its sequence, hash and retention only); it is
 *   no superuser and no owner, so it cannot UPDATE, DELETE or TRUNCATE audit
 *   rows, ALTER TABLE … DISABLE TRIGGER, or SET session_replication_role;
 * - retention (`<prefix>_retention`), for `npm run audit:purge`: SELECT and
 *   DELETE of audit rows (the triggers still refuse rows within retention)
 *   and the chain's purge checkpoint.
 * Created (or brought up to date) by `npm run db:roles`, as a superuser.
 */

export interface DatabaseRoles {
  owner: string;
  api: string;
  retention: string;
}

export function roleNames(prefix = 'phi_graph'): DatabaseRoles {
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(prefix)) throw new Error('the role prefix must be lowercase letters, digits and _ (at most 40)');
  return { owner: `${prefix}_owner`, api: `${prefix}_api`, retention: `${prefix}_retention` };
}

const AUDIT_ROWS = ['audit_event', 'audit_batch'];

/** Idempotent: creates the roles that are missing, gives every table to the owner, and grants each role what it needs. */
export async function ensureDatabaseRoles(db: Database, roles: DatabaseRoles, passwords: Partial<Record<keyof DatabaseRoles, string>> = {}): Promise<void> {
  const em = db.fork();
  const run = (sql: string, params: unknown[] = []) => em.execute(sql, params, 'run');
  for (const [kind, role] of Object.entries(roles) as [keyof DatabaseRoles, string][]) {
    const [exists] = await em.execute<{ found: number }[]>('select 1 as found from pg_roles where rolname = ?', [role]);
    if (!exists) await run(`create role "${role}" login nosuperuser nocreatedb nocreaterole noreplication`);
    const password = passwords[kind];
    if (password !== undefined) await run(`alter role "${role}" password '${password.replace(/'/g, "''")}'`);
  }
  const database = (await em.execute<{ name: string }[]>('select current_database() as name'))[0]?.name ?? '';
  await run(`grant connect on database "${database}" to "${roles.owner}", "${roles.api}", "${roles.retention}"`);
  await run(`grant usage, create on schema public to "${roles.owner}"`);
  await run(`grant usage on schema public to "${roles.api}", "${roles.retention}"`);
  const tables = (await em.execute<{ name: string }[]>(`select tablename as name from pg_tables where schemaname = 'public'`)).map((row) => row.name);
  for (const table of tables) await run(`alter table "${table}" owner to "${roles.owner}"`);
  const functions = await em.execute<{ signature: string }[]>(
    `select p.oid::regprocedure::text as signature from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public' and p.proname like 'phi_graph_%'`,
  );
  for (const { signature } of functions) await run(`alter function ${signature} owner to "${roles.owner}"`);

  // The API: the data tables whole; the audit trail append-only.
  for (const table of tables) {
    await run(`revoke all on "${table}" from "${roles.api}", "${roles.retention}"`);
    if (table === 'audit_chain') continue;
    if (AUDIT_ROWS.includes(table)) await run(`grant select, insert on "${table}" to "${roles.api}"`);
    else if (table.startsWith('mikro_orm_migrations')) await run(`grant select on "${table}" to "${roles.api}"`);
    else await run(`grant select, insert, update, delete on "${table}" to "${roles.api}"`);
  }
  await run(`grant select, update ("sequence", "hash", "retention_days") on "audit_chain" to "${roles.api}"`);
  await run(`grant usage, select on all sequences in schema public to "${roles.api}"`);
  // Retention: the purge of batches past retention, and its checkpoint.
  for (const table of AUDIT_ROWS) await run(`grant select, delete on "${table}" to "${roles.retention}"`);
  await run(`grant select, update ("checkpoint_sequence", "checkpoint_previous_hash") on "audit_chain" to "${roles.retention}"`);
}

/**
 * Why this connection may not serve in production, or null: a superuser,
 * or the owner of the audit tables, can disable the triggers that keep the
 * audit trail append-only.
 */
export async function databaseRoleProblem(db: Database): Promise<string | null> {
  const em = db.fork();
  const [me] = await em.execute<{ name: string; superuser: boolean }[]>('select current_user as name, rolsuper as superuser from pg_roles where rolname = current_user');
  if (!me) return null;
  if (me.superuser) return `the API connects as ${me.name}, a superuser: connect as the API's own role (npm run db:roles)`;
  const [owner] = await em.execute<{ owner: string }[]>(`select tableowner as owner from pg_tables where schemaname = 'public' and tablename = 'audit_event'`);
  if (owner?.owner === me.name) return `the API connects as ${me.name}, the owner of the audit tables: connect as the API's own role (npm run db:roles)`;
  return null;
}
