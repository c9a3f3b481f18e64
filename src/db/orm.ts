import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { EntityManager } from '@mikro-orm/sql';
import { MikroORM as PostgreSqlOrm } from '@mikro-orm/postgresql';
import { MikroORM as PgliteOrm } from '@mikro-orm/pglite';
import { Migrator } from '@mikro-orm/migrations';
import { ENTITIES } from './entities.js';
import { MIGRATIONS } from './migrations/index.js';

export type DatabaseKind = 'postgresql' | 'pglite';

export interface DatabaseOptions {
  /** PostgreSQL connection URL; without it the embedded PGlite database in `dataDir` is used. */
  url: string | undefined;
  dataDir: string;
  /** Called for every SQL statement sent (tests and benchmarks count them). */
  onStatement?: (sql: string) => void;
  poolSize?: number;
}

export interface Database {
  kind: DatabaseKind;
  orm: PostgreSqlOrm | PgliteOrm;
  /** A fresh unit of work; one per request. */
  fork(): EntityManager;
  migrate(): Promise<string[]>;
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
    debug: false,
    ...(options.onStatement && {
      onQuery: (sql: string) => {
        options.onStatement?.(sql);
        return sql;
      },
    }),
  };
  let orm: PostgreSqlOrm | PgliteOrm;
  let kind: DatabaseKind;
  if (options.url) {
    kind = 'postgresql';
    orm = await PostgreSqlOrm.init({
      ...common,
      clientUrl: options.url,
      pool: { min: 0, max: options.poolSize ?? DEFAULT_POOL_SIZE },
    });
  } else {
    kind = 'pglite';
    const folder = join(options.dataDir, PGLITE_FOLDER);
    mkdirSync(folder, { recursive: true });
    orm = await PgliteOrm.init({ ...common, dbName: folder });
  }
  return {
    kind,
    orm,
    fork: () => orm.em.fork() as unknown as EntityManager,
    async migrate() {
      const applied = await orm.migrator.up();
      return applied.map((migration) => migration.name);
    },
    async ping() {
      try {
        await orm.em.fork().getConnection().execute('select 1');
        return true;
      } catch {
        return false;
      }
    },
    close: () => orm.close(true),
  };
}
