import { ROOT_CONTEXT, SpanKind, SpanStatusCode, propagation, trace, type Span } from '@opentelemetry/api';
import type { Logger } from './logger.js';

/**
 * OpenTelemetry traces, without PHI. One span per GraphQL request on the
 * gateway and on each subgraph; the gateway passes its span on to the
 * subgraphs it calls (W3C `traceparent`, forwarded with the other request
 * facts), so a request is one trace across the processes. Span attributes
 * are the server, the operation name (checked like the metrics' label), the
 * roles, the request id and the HTTP status: never the document, its
 * variables, a token, a subject or a value. No automatic instrumentation is
 * loaded: libraries' own spans (a database statement, an HTTP body) could
 * carry values.
 *
 * Off unless the standard variables turn it on: OTEL_TRACES_EXPORTER (e.g.
 * `otlp`, `console`) or OTEL_EXPORTER_OTLP_ENDPOINT /
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, read by the official Node SDK with the
 * rest of OTEL_* (service name, headers, sampler).
 */
const TRACER = 'phi-graph';

export interface RequestSpan {
  /** The headers that carry this span to the next process (empty when tracing is off). */
  carrier: Record<string, string>;
  end(attributes: Record<string, string | number>, failed: boolean): void;
}

export function startRequestSpan(server: string, headers: Record<string, string | string[] | undefined>): RequestSpan {
  const parent = propagation.extract(ROOT_CONTEXT, headers);
  const span: Span = trace.getTracer(TRACER).startSpan(`graphql ${server}`, { kind: SpanKind.SERVER, attributes: { 'phi_graph.server': server } }, parent);
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(parent, span), carrier);
  return {
    carrier,
    end(attributes, failed) {
      span.setAttributes(attributes);
      if (failed) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    },
  };
}

export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  const exporter = env['OTEL_TRACES_EXPORTER'];
  if (exporter) return exporter !== 'none';
  return Boolean(env['OTEL_EXPORTER_OTLP_ENDPOINT'] || env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);
}

/** Starts the Node SDK when OTEL_* asks for traces; returns its shutdown (which flushes). */
export async function startTracing(logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<() => Promise<void>> {
  if (!tracingRequested(env)) return () => Promise.resolve();
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const sdk = new NodeSDK({ serviceName: env['OTEL_SERVICE_NAME'] ?? 'phi-graph', instrumentations: [] });
  sdk.start();
  logger.info({ event: 'tracing-started', exporter: env['OTEL_TRACES_EXPORTER'] ?? 'otlp' }, 'OpenTelemetry traces are exported');
  return () => sdk.shutdown();
}
