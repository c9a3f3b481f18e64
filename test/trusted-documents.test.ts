import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { documentId } from '../src/gateway/trusted-documents.js';
import { startTestStack, type TestStack } from './support/stack.js';

/**
 * Trusted documents: operations registered for a client after the policy
 * check of its roles; a role that must use them can run nothing else, and a
 * document runs only for the roles it was checked for. Its id is the
 * SHA-256 the audit trail records as the operation's hash.
 */
const run = promisify(execFile);
const PARTNER_PAGE = 'query PartnerPage { patients(first: 5) { edges { node { id name { text } } } } }';
const PARTNER_SSN = 'query PartnerSsn { patients(first: 5) { edges { node { id ssn } } } }';

let folder: string;
let manifest: string;
let stack: TestStack;

async function register(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run('node_modules/.bin/tsx', ['src/cli/documents.ts', 'register', ...args], { env: { ...process.env, TRUSTED_DOCUMENTS_FILE: manifest, DATA_DIR: folder } }).then(
    (done) => ({ code: 0, ...done }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
}

async function send(token: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const response = await fetch(stack.gatewayUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers }, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as { data?: Record<string, unknown> | null; errors?: { extensions?: Record<string, unknown> }[] } };
}

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'phi-graph-documents-'));
  manifest = join(folder, 'trusted-documents.json');
  await writeFile(join(folder, 'page.graphql'), PARTNER_PAGE);
  await writeFile(join(folder, 'ssn.graphql'), PARTNER_SSN);
});

afterAll(async () => {
  await stack?.stop();
  await rm(folder, { recursive: true, force: true });
});

describe('npm run documents:register', () => {
  it('refuses an operation with a field the role may not read, and registers nothing of that run', async () => {
    const refused = await register('--client', 'portal', '--role', 'partner', join(folder, 'page.graphql'), join(folder, 'ssn.graphql'));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/REFUSED .*ssn\.graphql for partner: field .*ssn.* is denied/);
    await expect(readFile(manifest, 'utf8')).rejects.toThrow();
  }, 60_000);

  it('registers an operation the role may run in full, by its SHA-256', async () => {
    const done = await register('--client', 'portal', '--role', 'partner', join(folder, 'page.graphql'));
    expect(done.code).toBe(0);
    const written = JSON.parse(await readFile(manifest, 'utf8')) as { documents: { id: string; client: string; roles: string[] }[] };
    expect(written.documents).toEqual([expect.objectContaining({ id: documentId(PARTNER_PAGE), client: 'portal', roles: ['partner'] })]);
  }, 60_000);
});

describe('a gateway with trusted documents required for partners', () => {
  beforeAll(async () => {
    stack = await startTestStack({ patients: 12, env: { TRUSTED_DOCUMENTS_FILE: manifest, TRUSTED_DOCUMENTS_REQUIRED_ROLES: 'partner' } });
  });

  it('refuses a partner ad-hoc operation, even one it may read in full', async () => {
    const partner = await stack.token('partner');
    const answer = await send(partner, { query: PARTNER_PAGE });
    expect(answer.status).toBe(400);
    expect(answer.body.errors?.[0]?.extensions?.['code']).toBe('PERSISTED_QUERY_REQUIRED');
    expect(answer.body.data ?? null).toBeNull();
  });

  it('runs the registered document by its persisted-query hash or its documentId, and the audit names it', async () => {
    const partner = await stack.token('partner');
    const hash = documentId(PARTNER_PAGE).slice('sha256:'.length);
    const requestId = `trusted-${Date.now()}`;
    const byHash = await send(partner, { extensions: { persistedQuery: { version: 1, sha256Hash: hash } } }, { 'x-request-id': requestId });
    expect(byHash.status).toBe(200);
    expect(byHash.body.data?.['patients']).toBeTruthy();
    expect(JSON.stringify(byHash.body.errors ?? [])).not.toContain('PERSISTED');
    const byId = await send(partner, { documentId: documentId(PARTNER_PAGE) });
    expect(byId.status).toBe(200);
    expect(byId.body.data?.['patients']).toEqual(byHash.body.data?.['patients']);
    const hashes = await stack.sql<{ operation_hash: string }>('select distinct operation_hash from audit_event where request_id = ?', [requestId]);
    expect(hashes.map((row) => row.operation_hash)).toEqual([hash]);
  });

  it('answers an unknown id, or a document registered for other roles, the same: PERSISTED_QUERY_NOT_FOUND', async () => {
    const partner = await stack.token('partner');
    const clinician = await stack.token('clinician');
    const unknown = await send(partner, { documentId: documentId('{ viewer { subject } }') });
    expect(unknown.body.errors?.[0]?.extensions?.['code']).toBe('PERSISTED_QUERY_NOT_FOUND');
    const otherRole = await send(clinician, { documentId: documentId(PARTNER_PAGE) });
    expect(otherRole.body.errors?.[0]?.extensions?.['code']).toBe('PERSISTED_QUERY_NOT_FOUND');
    const mismatch = await send(partner, { documentId: documentId(PARTNER_PAGE), query: PARTNER_SSN });
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.errors?.[0]?.extensions?.['code']).toBe('BAD_REQUEST');
  });

  it('takes an automatic-persisted-query request with its text as ad-hoc (stores nothing), refused to a partner, with a wrong hash refused', async () => {
    const query = '{ viewer { roles } }';
    const hash = documentId(query).slice('sha256:'.length);
    const clinician = await stack.token('clinician');
    const adHoc = await send(clinician, { query, extensions: { persistedQuery: { version: 1, sha256Hash: hash } } });
    expect(adHoc.body.data?.['viewer']).toEqual({ roles: ['clinician'] });
    const replay = await send(clinician, { extensions: { persistedQuery: { version: 1, sha256Hash: hash } } });
    expect(replay.body.errors?.[0]?.extensions?.['code']).toBe('PERSISTED_QUERY_NOT_FOUND');
    const wrong = await send(clinician, { query, extensions: { persistedQuery: { version: 1, sha256Hash: '0'.repeat(64) } } });
    expect(wrong.body.errors?.[0]?.extensions?.['code']).toBe('BAD_REQUEST');
    const partner = await send(await stack.token('partner'), { query: PARTNER_PAGE, extensions: { persistedQuery: { version: 1, sha256Hash: documentId(PARTNER_PAGE).slice(7) } } });
    expect(partner.status).toBe(200); // registered: runs
    const partnerAdHoc = await send(await stack.token('partner'), { query, extensions: { persistedQuery: { version: 1, sha256Hash: hash } } });
    expect(partnerAdHoc.body.errors?.[0]?.extensions?.['code']).toBe('PERSISTED_QUERY_REQUIRED');
  });

  it('still serves ad-hoc operations of roles not required to use trusted documents', async () => {
    const answer = await send(await stack.token('clinician'), { query: '{ viewer { roles } }' });
    expect(answer.status).toBe(200);
    expect(answer.body.data?.['viewer']).toEqual({ roles: ['clinician'] });
  });
});
