import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { MikroORM } from '@mikro-orm/core';
import type { AbstractSqlDriver, EntityManager } from '@mikro-orm/sql';
import { MikroORM as PostgreSqlOrm } from '@mikro-orm/postgresql';
import { MikroORM as PgliteOrm } from '@mikro-orm/pglite';
import { claimFolder } from './folder-owner.js';
import { Migrator } from '@mikro-orm/migrations';
import { ENTITIES } from './entities.js';
import { MIGRATIONS } from './migrations/index.js';
import { databaseTransport } from '../transport/database-tls.js';

/** Either driver's ORM, seen through what both share (SQL, PostgreSQL dialect). */
export type SqlOrm = MikroORM<AbstractSqlDriver, EntityManager>;

export type DatabaseKind = 'postgresql' | 'pglite';

export interface DatabaseOptions {
  /** PostgreSQL connection URL; without it the embedded PGlite database in `dataDir` is used. */
  url: string | undefined;
  dataDir: string;
  /** Called for every SQL statement sent (tests and benchmarks count them). */
  onStatement?: (sql: string) => void;
  poolSize?: number;
  /** Where MikroORM's own messages (migrations applied, warnings) go; silent by default. */
  log?: (message: string) => void;
  /** Deadlines of every PostgreSQL connection (the API's; command-line tools run without them). */
  timeouts?: DatabaseTimeouts;
}

/** How long one statement, one lock wait and one wait for a pooled connection may take, in milliseconds. */
export interface DatabaseTimeouts {
  statementMs: number;
  lockMs: number;
  acquireMs: number;
}

export const DEFAULT_DATABASE_TIMEOUTS: DatabaseTimeouts = { statementMs: 10_000, lockMs: 2_000, acquireMs: 3_000 };

export interface Database {
  kind: DatabaseKind;
  orm: SqlOrm;
  /** A fresh unit of work; one per request. */
  fork(): EntityManager;
  migrate(): Promise<string[]>;
  pendingMigrations(): Promise<string[]>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

const DEFAULT_POOL_SIZE = 10;
export const PGLITE_FOLDER = 'pglite';

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const common = {
    entities: ENTITIES,
    extensions: [Migrator],
    migrations: { migrationsList: MIGRATIONS, transactional: true, allOrNothing: true, snapshot: false },
    allowGlobalContext: false,
    // The audit trail's append-only triggers are hand-written in its migration, not entity metadata.
    schemaGenerator: { ignoreTriggers: true, ignoreRoutines: true },
    debug: false,
    colors: false,
    logger: (message: string) => options.log?.(message),
    ...(options.onStatement && {
      onQuery: (sql: string) => {
        options.onStatement?.(sql);
        return sql;
      },
    }),
  };
  let orm: SqlOrm;
  let release: () => void = () => undefined;
  let kind: DatabaseKind;
  if (options.url) {
    kind = 'postgresql';
    // TLS from the URL's libpq parameters (sslmode, sslrootcert, sslcert, sslkey), which MikroORM does not read: src/transport/database-tls.ts.
    const transport = databaseTransport(options.url);
    orm = (await PostgreSqlOrm.init({
      ...common,
      clientUrl: transport.url,
      pool: { min: 0, max: options.poolSize ?? DEFAULT_POOL_SIZE },
      driverOptions: {
        ssl: transport.ssl,
        // Set on every connection at its start (node-postgres sends them as session settings); the pool's wait for a connection is bounded too.
        ...(options.timeouts && {
          statement_timeout: options.timeouts.statementMs,
          lock_timeout: options.timeouts.lockMs,
          idle_in_transaction_session_timeout: options.timeouts.statementMs * 2,
          connectionTimeoutMillis: options.timeouts.acquireMs,
        }),
      },
    })) as SqlOrm;
  } else {
    kind = 'pglite';
    const folder = join(options.dataDir, PGLITE_FOLDER);
    mkdirSync(folder, { recursive: true });
    const releaseFolder = claimFolder(folder);
    try {
      orm = (await PgliteOrm.init({ ...common, dbName: folder })) as SqlOrm;
    } catch (error) {
      releaseFolder();
      throw error;
    }
    release = releaseFolder;
  }
  return {
    kind,
    orm,
    fork: () => orm.em.fork(),
    async migrate() {
      const applied = await orm.migrator.up();
      return applied.map((migration) => migration.name);
    },
    async pendingMigrations() {
      return (await orm.migrator.getPending()).map((migration) => migration.name);
    },
    async ping() {
      try {
        await orm.em.fork().getConnection().execute('select 1');
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      try {
        await orm.close(true);
      } finally {
        release();
      }
    },
  };
}
