import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { SUBGRAPH_NAMES } from '../src/subgraphs/catalog.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

const run = promisify(execFile);
let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 30 });
});

afterAll(async () => {
  await stack?.stop();
});

function baseUrl(graphqlUrl: string): string {
  return graphqlUrl.replace(/\/graphql$/, '');
}

describe('health endpoints', () => {
  it('say alive and ready on the gateway and every subgraph, without a token', async () => {
    const urls = [stack.gatewayUrl, ...SUBGRAPH_NAMES.map((name) => stack.subgraphUrl(name))].map(baseUrl);
    for (const url of urls) {
      const alive = await fetch(`${url}/healthz`);
      expect(alive.status).toBe(200);
      const ready = await fetch(`${url}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ status: 'ready' });
    }
  });
});

describe('npm run token', () => {
  async function mint(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
    try {
      const { stdout, stderr } = await run('npx', ['tsx', 'src/auth/token-cli.ts', ...args], {
        env: { ...process.env, DATA_DIR: stack.config.database.dataDir, NODE_ENV: 'development' },
      });
      return { stdout, stderr, code: 0 };
    } catch (error) {
      const failed = error as { stdout: string; stderr: string; code: number };
      return { stdout: failed.stdout, stderr: failed.stderr, code: failed.code };
    }
  }

  it('prints a token alone on stdout for a seeded user that fits the role, and the gateway accepts it', async () => {
    const { stdout, code } = await mint('--role', 'clinician');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const token = stdout.trim();
    const claims = decodeJwt(token);
    expect(claims.sub).toBe(stack.principals.clinician.subject);
    expect(claims['roles']).toEqual(['clinician']);
    expect(claims['amr']).toContain('mfa');
    const response = await post<{ viewer: { subject: string } }>(stack.gatewayUrl, '{ viewer { subject } }', { token });
    expect(response.body.data?.viewer.subject).toBe(stack.principals.clinician.subject);
  }, 60_000);

  it('mints a patient token bound to a patient with data, without MFA when asked', async () => {
    const { stdout } = await mint('--role', 'patient', '--no-mfa', '--ttl', '5m');
    const claims = decodeJwt(stdout.trim());
    expect(claims['patient']).toBe(stack.principals.patient.patientId);
    expect(claims['amr']).not.toContain('mfa');
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(300);
  }, 60_000);

  it('takes several roles as one comma-separated --role, as the usage line shows', async () => {
    const { stdout, stderr, code } = await mint('--role', 'billing,auditor', '--sub', stack.principals.billing.subject, '--org', stack.principals.billing.organizationId ?? '');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(decodeJwt(stdout.trim())['roles']).toEqual(['billing', 'auditor']);
  }, 60_000);

  it('refuses an unknown role with a usage message and prints no token', async () => {
    const { stdout, stderr, code } = await mint('--role', 'superuser');
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain('unknown role');
  }, 60_000);
});

describe('npm run token:revoke', () => {
  it('revokes a token everywhere, in PostgreSQL and Redis, or refuses without them', async () => {
    const token = await stack.token('clinician');
    const result = await run('node_modules/.bin/tsx', ['src/cli/revoke-token.ts', '--token', token], {
      env: { ...process.env, DATABASE_URL: stack.config.database.url ?? '', REDIS_URL: stack.config.redisUrl ?? '', REDIS_KEY_PREFIX: stack.config.redisKeyPrefix, NODE_ENV: 'development' },
    }).then(
      (done) => ({ code: 0, ...done }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    const response = await post(stack.gatewayUrl, '{ viewer { subject } }', { token });
    if (stack.config.redisUrl && stack.config.database.url) {
      expect(result.code).toBe(0);
      expect(response.status).toBe(401);
      expect(response.body.errors?.[0]?.extensions?.['reason']).toBe('REVOKED_TOKEN');
      // Kept in the database too: it outlives the cache.
      expect(await stack.sql('select jti from revoked_token where jti = ?', [decodeJwt(token).jti])).toHaveLength(1);
    } else {
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/(DATABASE_URL|REDIS_URL) is required/);
      expect(response.status).toBe(200);
    }
  }, 60_000);
});

describe('shutdown', () => {
  it('lets an in-flight request finish, then refuses new connections', async () => {
    const own = await startTestStack({ patients: 30 });
    const token = await own.token('billing', { roles: ['billing', 'clinician'] });
    own.statements.count = 0;
    const inFlight = post<{ patients: { edges: unknown[] } }>(
      own.gatewayUrl,
      '{ patients(first: 30) { edges { node { id observations(first: 20) { edges { node { value } } } claims { edges { node { id } } } } } } }',
      { token },
    );
    while (own.statements.count === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    const stopped = own.stop();
    const response = await inFlight;
    await stopped;
    expect(response.status).toBe(200);
    expect(response.body.data?.patients.edges.length).toBeGreaterThan(0);
    await expect(fetch(`${baseUrl(own.gatewayUrl)}/healthz`)).rejects.toThrow();
  });
});
