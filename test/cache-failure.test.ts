import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * Redis stopped under a running API: what needs it (the revocation check
 * of every token, emergency grants) fails within about a second with 503
 * CACHE_UNAVAILABLE (never "not revoked" because Redis did not answer, and
 * no queue of requests piling up), and everything recovers when Redis is
 * back, without a restart. The test runs a Redis server of its own on a
 * free port.
 */

const REDIS_SERVER = '/usr/bin/redis-server';
let stack: TestStack | undefined;
let redis: ChildProcess | undefined;
let port = 0;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function startRedis(): Promise<void> {
  redis = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = createServer().listen(port, '127.0.0.1');
      socket.once('listening', () => socket.close(() => resolve(false)));
      socket.once('error', () => resolve(true));
    });
    if (up) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('the test Redis did not start');
}

function stopRedis(): Promise<void> {
  return new Promise((resolve) => {
    if (!redis || redis.exitCode !== null) return resolve();
    redis.once('exit', () => resolve());
    redis.kill('SIGKILL');
  });
}

const CHART = 'query($id: ID!) { patient(id: $id) { name { family } } }';

beforeAll(async () => {
  if (!existsSync(REDIS_SERVER)) return;
  port = await freePort();
  await startRedis();
  stack = await startTestStack({ patients: 5, env: { REDIS_URL: `redis://127.0.0.1:${port}` } });
});

afterAll(async () => {
  await stack?.stop();
  await stopRedis();
});

describe('Redis stopped under a running API', () => {
  it('refuses within about a second with 503 CACHE_UNAVAILABLE, on the gateway and a subgraph, and recovers without a restart when Redis is back', async (context) => {
    context.skip(!stack, `needs ${REDIS_SERVER} (Debian package redis-server)`);
    const api = stack as TestStack;
    const token = await api.token('clinician');
    const variables = { id: api.principals.patient.patientId };
    expect((await post(api.gatewayUrl, CHART, { token, variables })).body.errors).toBeUndefined();

    await stopRedis();
    for (const url of [api.gatewayUrl, api.subgraphUrl('patient')]) {
      const started = Date.now();
      const response = await post(url, CHART, { token, variables });
      expect(Date.now() - started, url).toBeLessThan(2_500);
      expect(response.status, url).toBe(503);
      expect(response.headers.get('retry-after'), url).toBe('5');
      expect(response.body.errors?.[0]?.extensions?.['code'], url).toBe('CACHE_UNAVAILABLE');
      expect(JSON.stringify(response.body), url).not.toMatch(/redis|ECONN|writeable|127\.0\.0\.1/i);
    }

    await startRedis();
    const deadline = Date.now() + 15_000;
    let recovered = false;
    while (!recovered && Date.now() < deadline) {
      const response = await post(api.gatewayUrl, CHART, { token, variables });
      recovered = response.status === 200 && !response.body.errors;
      if (!recovered) await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(recovered).toBe(true);
  });
});
