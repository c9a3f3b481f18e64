// Hive Gateway (MIT, `npm i @graphql-hive/gateway`) serving phi-graph's committed supergraph:
//   PATIENT_SUBGRAPH_URL=… CLINICAL_SUBGRAPH_URL=… BILLING_SUBGRAPH_URL=… \
//     npx hive-gateway supergraph --config-path deploy/hive-gateway.config.mjs
// Each subgraph verifies the caller's token itself, so the gateway forwards it, with the request id the
// audit trail records. test/hive-gateway.test.ts runs exactly this file (CI installs Hive Gateway itself).
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';

// TLS to the subgraphs, from the same variables as phi-graph's own gateway (README, "Transport security"):
// the subgraphs' certificates verified against TLS_CA_FILE, and the gateway's client certificate presented to
// subgraphs that require it (SUBGRAPH_CLIENT_CA_FILE). Hive Gateway calls https:// subgraphs through this agent.
const pemOf = (variable) => (process.env[variable] ? readFileSync(process.env[variable]) : undefined);
const subgraphTls = {
  ca: pemOf('TLS_CA_FILE'),
  cert: pemOf('GATEWAY_CLIENT_CERT_FILE'),
  key: pemOf('GATEWAY_CLIENT_KEY_FILE'),
};
const tlsAgent =
  subgraphTls.ca || subgraphTls.cert
    ? new Agent({ ...Object.fromEntries(Object.entries(subgraphTls).filter(([, value]) => value)), minVersion: 'TLSv1.2', rejectUnauthorized: true, keepAlive: true })
    : undefined;

// Trusted documents (npm run documents:register) served by their id, as our gateway does: documentId
// (`sha256:<hex>`) or the persisted-query hash. TRUSTED_DOCUMENTS_ONLY=true refuses every other operation;
// the per-role requirement (TRUSTED_DOCUMENTS_REQUIRED_ROLES) needs the token, which only our gateway reads.
const manifestPath = process.env.TRUSTED_DOCUMENTS_FILE;
const trusted = new Map();
if (manifestPath) {
  for (const entry of JSON.parse(readFileSync(manifestPath, 'utf8')).documents) {
    trusted.set(entry.id, entry.document);
    trusted.set(entry.id.slice('sha256:'.length), entry.document);
  }
}

const url = (name, port) => process.env[`${name.toUpperCase()}_SUBGRAPH_URL`] ?? `http://127.0.0.1:${port}/graphql`;

export const gatewayConfig = {
  supergraph: process.env.SUPERGRAPH_PATH ?? new URL('../supergraph.graphql', import.meta.url).pathname,
  transportEntries: {
    patient: { location: url('patient', 4001) },
    clinical: { location: url('clinical', 4002) },
    billing: { location: url('billing', 4003) },
  },
  ...(manifestPath && {
    persistedDocuments: {
      getPersistedOperation: (id) => trusted.get(id) ?? null,
      allowArbitraryDocuments: process.env.TRUSTED_DOCUMENTS_ONLY !== 'true',
    },
  }),
  ...(tlsAgent && { customAgent: ({ url }) => (String(url).startsWith('https:') ? tlsAgent : undefined) }),
  propagateHeaders: {
    fromClientToSubgraphs: ({ request }) => ({
      authorization: request.headers.get('authorization') ?? '',
      'x-request-id': request.headers.get('x-request-id') ?? '',
    }),
  },
};
