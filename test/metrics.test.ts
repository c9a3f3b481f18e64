import express from 'express';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricsRoute } from '../src/metrics.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * Prometheus metrics on /metrics of the gateway and each subgraph: requests,
 * latency, field decisions, audit writes, refusals, key cache, dependencies;
 * names, codes and counts, never a value, an id or a token.
 */
let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 10 });
});

afterAll(async () => {
  await stack?.stop();
});

const metricsUrl = (graphqlUrl: string) => graphqlUrl.replace(/\/graphql$/, '/metrics');

async function scrape(graphqlUrl: string): Promise<string> {
  const response = await fetch(metricsUrl(graphqlUrl));
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('text/plain');
  return response.text();
}

/** The value of one sample, by its exact label set (order as prom-client writes it). */
function sample(text: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{`) && wanted.every((label) => candidate.includes(label)));
  return line ? Number(line.split(' ').at(-1)) : Number.NaN;
}

describe('/metrics', () => {
  it('counts requests, field decisions, audit writes, refusals and key lookups, with no PHI value, id or token in it', async () => {
    const token = await stack.token('billing');
    const page = await post<{ patients: { edges: { node: { id: string; mrn: string; name: { text: string }; ssn: string | null } }[] } }>(
      stack.gatewayUrl,
      'query Dashboard { patients(first: 10) { edges { node { id mrn name { text } ssn } } } }',
      { token },
    );
    expect(page.body.errors).toBeUndefined();
    const rows = page.body.data?.patients.edges.map(({ node }) => node) ?? [];
    expect(rows.length).toBeGreaterThan(0);
    await post(stack.gatewayUrl, '{ viewer { subject } }');
    const aliases = Array.from({ length: 40 }, (_, index) => `a${index}: viewer { subject }`).join(' ');
    const limited = await post(stack.gatewayUrl, `query Aliases { ${aliases} }`, { token });
    expect(limited.body.errors?.[0]?.extensions?.['code']).toBe('OPERATION_LIMIT');

    const gateway = await scrape(stack.gatewayUrl);
    expect(sample(gateway, 'phi_graph_requests_total', { server: 'gateway', operation: 'Dashboard', role: 'billing', status: '200' })).toBeGreaterThanOrEqual(1);
    expect(sample(gateway, 'phi_graph_requests_total', { server: 'gateway', operation: 'anonymous', role: 'none', status: '401' })).toBeGreaterThanOrEqual(1);
    expect(sample(gateway, 'phi_graph_request_duration_seconds_count', { server: 'gateway', operation: 'Dashboard', status: '200' })).toBeGreaterThanOrEqual(1);
    expect(sample(gateway, 'phi_graph_refusals_total', { kind: 'operation_limit', reason: 'rootFields' })).toBeGreaterThanOrEqual(1);

    const patient = await scrape(stack.subgraphUrl('patient'));
    expect(sample(patient, 'phi_graph_field_decisions_total', { field: 'Patient.ssn', role: 'billing', outcome: 'masked' })).toBeGreaterThanOrEqual(rows.length);
    expect(sample(patient, 'phi_graph_field_decisions_total', { field: 'Patient.mrn', role: 'billing', outcome: 'allowed' })).toBeGreaterThanOrEqual(rows.length);
    expect(sample(patient, 'phi_graph_audit_write_duration_seconds_count', { subgraph: 'patient' })).toBeGreaterThanOrEqual(1);
    expect(sample(patient, 'phi_graph_data_key_cache_lookups', { result: 'hit' })).toBeGreaterThan(0);
    expect(sample(patient, 'phi_graph_dependency_up', { dependency: 'database' })).toBe(1);
    expect(sample(patient, 'phi_graph_dependency_up', { dependency: 'cache' })).toBe(1);
    expect(patient).toContain('phi_graph_process_resident_memory_bytes');

    for (const text of [gateway, patient]) {
      for (const row of rows) {
        expect(text).not.toContain(row.id);
        expect(text).not.toContain(row.mrn);
        expect(text).not.toContain(row.name.text);
        if (row.ssn) expect(text).not.toContain(row.ssn);
      }
      expect(text).not.toContain(token);
      expect(text).not.toContain(stack.principals.billing.subject);
    }
  });

  it('answers only loopback, or a bearer of METRICS_TOKEN when one is set', async () => {
    const app = express();
    metricsRoute(app, 'a-metrics-token-of-some-length');
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
    try {
      expect((await fetch(url)).status).toBe(404);
      expect((await fetch(url, { headers: { authorization: 'Bearer wrong-token-of-the-same-len' } })).status).toBe(404);
      const allowed = await fetch(url, { headers: { authorization: 'Bearer a-metrics-token-of-some-length' } });
      expect(allowed.status).toBe(200);
      expect(await allowed.text()).toContain('phi_graph_requests_total');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
