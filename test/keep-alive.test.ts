import { Agent, request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from './support/stack.js';

/**
 * The gateway keeps idle connections to the subgraphs and reuses them. A
 * subgraph that closed idle connections after Node's default 5 s raced the
 * reuse: the request sent on a connection being closed failed with
 * ECONNRESET. An idle connection must stay usable well past that.
 */
let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 5 });
});

afterAll(async () => {
  await stack?.stop();
});

function get(url: string, agent: Agent): Promise<{ status: number; reusedSocket: boolean }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { agent }, (response) => {
      response.resume();
      response.on('end', () => resolve({ status: response.statusCode ?? 0, reusedSocket: outgoing.reusedSocket }));
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

describe('an idle keep-alive connection', () => {
  it('to a subgraph and to the gateway is still served after 6 s without traffic', { timeout: 30_000 }, async () => {
    for (const graphqlUrl of [stack.subgraphUrl('patient'), stack.gatewayUrl]) {
      const health = new URL('/healthz', graphqlUrl).toString();
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        expect((await get(health, agent)).status).toBe(200);
        await sleep(6000);
        const second = await get(health, agent);
        expect(second.status).toBe(200);
        expect(second.reusedSocket, `${health}: the idle connection was closed`).toBe(true);
      } finally {
        agent.destroy();
      }
    }
  });
});
