import { propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tracingRequested } from '../src/tracing.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * One request, one trace across the gateway and the subgraphs it calls,
 * with the request id; no document, variable, token, subject or value in
 * any span attribute. The servers run in this process, so an in-memory
 * exporter sees every span.
 */
const exporter = new InMemorySpanExporter();
let stack: TestStack;

beforeAll(async () => {
  trace.setGlobalTracerProvider(new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }));
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  stack = await startTestStack({ patients: 8 });
});

afterAll(async () => {
  await stack?.stop();
  trace.disable();
  propagation.disable();
});

describe('traces', () => {
  it('join the gateway span and the subgraph spans of one request in one trace, with the request id and nothing of the data', async () => {
    exporter.reset();
    const token = await stack.token('clinician');
    const requestId = `trace-test-${Date.now()}`;
    const id = stack.principals.patient.patientId;
    const response = await post<{ patient: { name: { text: string }; ssn: string; phone: string; conditions: { edges: { node: { code: { code: string } } }[] } } }>(
      stack.gatewayUrl,
      'query Chart($id: ID!) { patient(id: $id) { name { text } ssn phone conditions(first: 5) { edges { node { code { code } } } } } }',
      { token, variables: { id }, headers: { 'x-request-id': requestId } },
    );
    expect(response.body.errors).toBeUndefined();
    const spans = exporter.getFinishedSpans().filter((span) => span.attributes['phi_graph.request_id'] === requestId);
    const gateway = spans.find((span) => span.attributes['phi_graph.server'] === 'gateway');
    const subgraphs = spans.filter((span) => span.attributes['phi_graph.server'] !== 'gateway');
    expect(gateway).toBeTruthy();
    expect(subgraphs.map((span) => span.attributes['phi_graph.server']).sort()).toEqual(expect.arrayContaining(['clinical', 'patient']));
    for (const span of subgraphs) {
      expect(span.spanContext().traceId).toBe(gateway?.spanContext().traceId);
      expect(span.parentSpanContext?.spanId).toBe(gateway?.spanContext().spanId);
    }
    expect(gateway?.attributes).toMatchObject({ 'graphql.operation.name': 'Chart', 'phi_graph.roles': 'clinician', 'http.response.status_code': 200 });

    const everything = JSON.stringify(exporter.getFinishedSpans().map((span) => ({ name: span.name, attributes: span.attributes, events: span.events, resource: span.resource.attributes })));
    const patient = response.body.data?.patient;
    for (const value of [patient?.name.text, patient?.ssn, patient?.phone, id, token, stack.principals.clinician.subject, ...(patient?.conditions.edges.map(({ node }) => node.code.code) ?? [])]) {
      if (value) expect(everything).not.toContain(value);
    }
  });

  it('are off unless the standard OTEL_* variables ask for them', () => {
    expect(tracingRequested({})).toBe(false);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toBe(false);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toBe(true);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'console' })).toBe(true);
  });
});
