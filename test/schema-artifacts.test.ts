import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { composeSupergraph, readCommittedSupergraph } from '../src/gateway/compose.js';
import { openDatabase } from '../src/db/index.js';
import { loadApiSchema } from '../src/gateway/api-schema.js';
import { renderAccessMatrix } from '../src/policy/index.js';
import { createScratchDatabase, resolveServices } from './support/services.js';

const run = promisify(execFile);

describe('the committed supergraph.graphql', () => {
  it('is what composing the three subgraph schemas gives today (run npm run compose if not)', async () => {
    expect(await readCommittedSupergraph()).toBe(await composeSupergraph());
  });
});

describe('docs/access-matrix.md', () => {
  it('is what the policy and the supergraph give today (run npm run policy:matrix if not)', async () => {
    const committed = await readFile(new URL('../docs/access-matrix.md', import.meta.url), 'utf8');
    expect(committed).toBe(renderAccessMatrix(loadApiSchema()));
  });
});

describe('the generated resolver types', () => {
  it('are up to date with schema/ (run npm run codegen if not)', async () => {
    await expect(run('npx', ['graphql-codegen', '--config', 'codegen.ts', '--check'], { cwd: process.cwd() })).resolves.toBeDefined();
  }, 120_000);
});

describe('the migrations', () => {
  it('create exactly the schema the entities describe', async () => {
    const services = await resolveServices();
    const dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-migrations-'));
    const scratch = services.postgresUrl ? await createScratchDatabase(services.postgresUrl) : null;
    const db = await openDatabase({ url: scratch?.url, dataDir });
    try {
      expect((await db.pendingMigrations()).length).toBeGreaterThan(0);
      await db.migrate();
      expect(await db.pendingMigrations()).toHaveLength(0);
      expect(await db.orm.schema.getUpdateSchemaSQL({ wrap: false })).toBe('');
      expect(await db.migrate()).toEqual([]);
    } finally {
      await db.close();
      await scratch?.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('the migration files', () => {
  it('are listed in order in migrations/index.ts', async () => {
    const index = await readFile(new URL('../src/db/migrations/index.ts', import.meta.url), 'utf8');
    const names = [...index.matchAll(/name: '(Migration\d{14}\w*)'/g)].map((match) => match[1]);
    expect(names.length).toBeGreaterThan(0);
    expect([...names].sort()).toEqual(names);
  });
});
