import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../src/db/index.js';
import { databaseRoleProblem, ensureDatabaseRoles, roleNames, type DatabaseRoles } from '../src/db/roles.js';
import { createScratchDatabase, resolveServices } from './support/services.js';
import { post } from './support/stack.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { startApi } from '../src/runtime.js';
import { mintDevelopmentToken } from '../src/auth/index.js';
import { readDevelopmentPrincipals } from '../src/db/seed/index.js';

/**
 * The API's own database role, as an insider who got hold of its
 * connection would use it: every statement that would defeat the audit
 * trail's append-only triggers is refused by PostgreSQL itself.
 */

let scratch: { url: string; drop: () => Promise<void> } | null = null;
let serverUrl: string | undefined;
let roles: DatabaseRoles;
let dataDir = '';
let db: Database | null = null;

function urlAs(role: string): string {
  const url = new URL(scratch?.url ?? '');
  url.username = role;
  url.password = '';
  return url.toString();
}

async function asRole<T>(role: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: urlAs(role) });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function refusal(client: pg.Client, statement: string): Promise<string | null> {
  try {
    await client.query(statement);
    return null;
  } catch (error) {
    return (error as { code?: string }).code ?? 'error';
  }
}

beforeAll(async () => {
  serverUrl = (await resolveServices()).postgresUrl;
  if (!serverUrl) return;
  scratch = await createScratchDatabase(serverUrl);
  dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-roles-'));
  db = await openDatabase({ url: scratch.url, dataDir });
  await db.migrate();
  roles = roleNames(`phi_t_${randomBytes(4).toString('hex')}`);
  await ensureDatabaseRoles(db, roles);
});

afterAll(async () => {
  await db?.close();
  await scratch?.drop();
  if (serverUrl && roles) {
    const admin = new pg.Client({ connectionString: serverUrl });
    await admin.connect();
    for (const role of Object.values(roles)) await admin.query(`drop role if exists "${role}"`).catch(() => undefined);
    await admin.end();
  }
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('the API\'s database role', () => {
  it('may read and append the audit trail, and write the tables the API needs', async (context) => {
    context.skip(!scratch, 'needs PostgreSQL: the embedded database has one role');
    await asRole(roles.api, async (client) => {
      expect(await refusal(client, 'select count(*) from audit_event')).toBeNull();
      expect(await refusal(client, 'select count(*) from patient')).toBeNull();
      expect(await refusal(client, `insert into revoked_token (jti, expires_at) values ('t-${Date.now()}', now() + interval '1 hour')`)).toBeNull();
    });
  });

  it('cannot UPDATE, DELETE or TRUNCATE audit rows, disable their triggers, or switch triggers off for its session', async (context) => {
    context.skip(!scratch, 'needs PostgreSQL: the embedded database has one role');
    await asRole(roles.api, async (client) => {
      const insufficient = '42501';
      expect(await refusal(client, `update audit_event set subject = 'someone else'`)).toBe(insufficient);
      expect(await refusal(client, 'delete from audit_event')).toBe(insufficient);
      expect(await refusal(client, 'delete from audit_batch')).toBe(insufficient);
      expect(await refusal(client, 'truncate audit_event')).toBe(insufficient);
      expect(await refusal(client, 'truncate audit_batch')).toBe(insufficient);
      expect(await refusal(client, 'alter table audit_event disable trigger user')).toBe(insufficient);
      expect(await refusal(client, 'alter table audit_batch disable trigger all')).toBe(insufficient);
      expect(await refusal(client, 'set session_replication_role = replica')).toBe(insufficient);
      // The chain head: its purge checkpoint is not the API's to move, and the head itself only moves forward.
      expect(await refusal(client, 'update audit_chain set checkpoint_sequence = checkpoint_sequence + 1')).toBe(insufficient);
      expect(await refusal(client, 'update audit_chain set sequence = sequence - 1')).toBe(insufficient);
      expect(await refusal(client, 'delete from audit_chain')).toBe(insufficient);
      expect(await refusal(client, 'drop table audit_event')).toBe(insufficient);
    });
  });

  it('serves the API: it starts, answers a read and records it, and writes a note with its audit event', async (context) => {
    context.skip(!scratch, 'needs PostgreSQL: the embedded database has one role');
    const config = loadConfig({ NODE_ENV: 'test', PORT: '0', PATIENT_SUBGRAPH_PORT: '0', CLINICAL_SUBGRAPH_PORT: '0', BILLING_SUBGRAPH_PORT: '0', DATA_DIR: dataDir, DATABASE_URL: urlAs(roles.api), LOG_LEVEL: 'silent' });
    const api = await startApi(config, createLogger('silent'), { seedPatients: 5 });
    try {
      const principals = await readDevelopmentPrincipals(dataDir);
      const token = await mintDevelopmentToken(config.auth, dataDir, { ...principals!.clinician, roles: ['clinician'], mfa: true, ttl: '5m' });
      const read = await post<{ patient: { id: string } | null }>(api.gateway!.url, 'query($id: ID!) { patient(id: $id) { id name { text } } }', { token, variables: { id: principals!.patient.patientId } });
      expect(read.status).toBe(200);
      const note = await post<{ addClinicalNote: { ok: boolean; note: { id: string } | null } }>(
        api.gateway!.url,
        'mutation($input: AddClinicalNoteInput!) { addClinicalNote(input: $input) { ok note { id } } }',
        { token, variables: { input: { patientId: principals!.patient.patientId, typeCode: '11506-3', text: 'Written as the API role.' } } },
      );
      expect(note.body.data?.addClinicalNote.ok).toBe(true);
      const [event] = await asRole(roles.api, async (client) =>
        (await client.query<{ count: string }>(`select count(*) as count from audit_event where action = 'create' and $1 = any(entity_ids)`, [note.body.data?.addClinicalNote.note?.id])).rows,
      );
      expect(Number(event?.count)).toBe(1);
    } finally {
      await api.stop();
    }
  }, 60_000);

  it('is the only kind of connection production accepts: a superuser or the tables\' owner is refused', async (context) => {
    context.skip(!scratch || !db, 'needs PostgreSQL: the embedded database has one role');
    expect(await databaseRoleProblem(db!)).toMatch(/superuser/);
    for (const [role, expected] of [
      [roles.owner, /owner of the audit tables/],
      [roles.api, null],
    ] as const) {
      const connection = await openDatabase({ url: urlAs(role), dataDir });
      try {
        const problem = await databaseRoleProblem(connection);
        if (expected) expect(problem).toMatch(expected);
        else expect(problem).toBeNull();
      } finally {
        await connection.close();
      }
    }
  });
});
