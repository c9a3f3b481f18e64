// Hive Gateway (MIT, `npm i @graphql-hive/gateway`) serving phi-graph's committed supergraph:
//   PATIENT_SUBGRAPH_URL=… CLINICAL_SUBGRAPH_URL=… BILLING_SUBGRAPH_URL=… \
//     npx hive-gateway supergraph --config-path deploy/hive-gateway.config.mjs
// Each subgraph verifies the caller's token itself, so the gateway forwards it, with the request id the
// audit trail records. test/hive-gateway.test.ts runs exactly this file (CI installs Hive Gateway itself).
const url = (name, port) => process.env[`${name.toUpperCase()}_SUBGRAPH_URL`] ?? `http://127.0.0.1:${port}/graphql`;

export const gatewayConfig = {
  supergraph: process.env.SUPERGRAPH_PATH ?? new URL('../supergraph.graphql', import.meta.url).pathname,
  transportEntries: {
    patient: { location: url('patient', 4001) },
    clinical: { location: url('clinical', 4002) },
    billing: { location: url('billing', 4003) },
  },
  propagateHeaders: {
    fromClientToSubgraphs: ({ request }) => ({
      authorization: request.headers.get('authorization') ?? '',
      'x-request-id': request.headers.get('x-request-id') ?? '',
    }),
  },
};
