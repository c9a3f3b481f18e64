import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { post, startTestStack, type GraphQLResponse, type TestStack } from './support/stack.js';

/**
 * Budgets over time are refused, not only alerted: requests per minute,
 * requests in flight, and the exfiltration budget (distinct patients whose
 * data one principal received this hour). Small budgets are set for this
 * stack (RATE_LIMIT_*) so each trips within a few requests.
 */

const PER_MINUTE = 30;
const IN_FLIGHT = 2;
const PATIENTS = 5;
let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({
    patients: 30,
    env: { RATE_LIMIT_REQUESTS_PER_MINUTE: String(PER_MINUTE), RATE_LIMIT_IN_FLIGHT: String(IN_FLIGHT), RATE_LIMIT_PATIENTS_PER_HOUR: String(PATIENTS) },
  });
});

afterAll(async () => {
  await stack?.stop();
});

/** Waits until the current minute has at least `seconds` left, so a test's requests fall in one window. */
async function withinOneMinute(seconds: number): Promise<void> {
  const left = 60 - new Date().getUTCSeconds();
  if (left < seconds) await new Promise((resolve) => setTimeout(resolve, left * 1000 + 200));
}

function expectLimited(response: GraphQLResponse, reason: string): void {
  expect(response.status).toBe(429);
  expect(response.body.data ?? null).toBeNull();
  expect(response.body.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', reason });
  expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
}

describe('budgets over time', () => {
  it('refuses a principal past its requests per minute with 429 and the RateLimit headers, and serves another principal meanwhile', async () => {
    await withinOneMinute(20);
    const token = await stack.token('admin', { subject: 'rate-test:flood' });
    const statuses: number[] = [];
    let last: GraphQLResponse | undefined;
    for (let index = 0; index < PER_MINUTE + 5; index += 1) {
      last = await post(stack.gatewayUrl, '{ viewer { subject } }', { token });
      statuses.push(last.status);
    }
    expect(statuses.slice(0, PER_MINUTE).every((status) => status === 200)).toBe(true);
    expect(statuses.slice(PER_MINUTE)).toEqual(Array(5).fill(429));
    expectLimited(last as GraphQLResponse, 'REQUESTS_PER_MINUTE');
    expect(last?.headers.get('ratelimit-limit')).toBe(String(PER_MINUTE));
    expect(last?.headers.get('ratelimit-remaining')).toBe('0');
    const someoneElse = await post(stack.gatewayUrl, '{ viewer { subject } }', { token: await stack.token('admin', { subject: 'rate-test:quiet' }) });
    expect(someoneElse.status).toBe(200);
  });

  it('refuses requests past the principal\'s requests in flight', async () => {
    await withinOneMinute(10);
    const token = await stack.token('billing', { subject: 'rate-test:parallel' });
    const responses = await Promise.all(
      Array.from({ length: 10 }, () => post(stack.gatewayUrl, '{ patients(first: 3) { edges { node { id } } } }', { token })),
    );
    const limited = responses.filter((response) => response.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    for (const response of limited) expectLimited(response, 'IN_FLIGHT');
    expect(responses.some((response) => response.status === 200)).toBe(true);
  });

  it('withholds the response that passes the exfiltration budget, then refuses before running, on the gateway and straight to the subgraph', async () => {
    await withinOneMinute(10);
    const token = await stack.token('billing', { subject: 'rate-test:exfiltration' });
    const page = 'query($after: String) { patients(first: 3, after: $after) { edges { node { id name { family } } } pageInfo { endCursor } } }';
    const first = await post<{ patients: { edges: unknown[]; pageInfo: { endCursor: string } } }>(stack.gatewayUrl, page, { token });
    expect(first.status).toBe(200);
    expect(first.body.data?.patients.edges).toHaveLength(3);
    // Three more distinct patients: six in the hour, over the budget of five. Read, recorded, and not delivered.
    const second = await post(stack.gatewayUrl, page, { token, variables: { after: first.body.data?.patients.pageInfo.endCursor } });
    expectLimited(second, 'PATIENTS_PER_HOUR');
    for (const url of [stack.gatewayUrl, stack.subgraphUrl('patient')]) {
      const next = await post(url, page, { token });
      expectLimited(next, 'PATIENTS_PER_HOUR');
    }
  });
});
