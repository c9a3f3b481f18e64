import { parseArgs } from 'node:util';
import { resolve, join, relative } from 'node:path';
import { createAuthority, issueCertificate, LOOPBACK_NAMES, DEVELOPMENT_CA_NAME } from '../transport/development-certificates.js';
import { describeError } from '../errors.js';

/**
 * `npm run tls:dev-certs [-- --dir .data/tls --host api.example.test]`: a
 * development CA and the certificates of the README's worked example
 * ("Transport security"): the servers' certificate (localhost, 127.0.0.1,
 * ::1 and each --host) and the gateway's client certificate for mutual TLS.
 * Refused when NODE_ENV=production: production certificates come from the
 * organization's CA.
 */
try {
  if (process.env['NODE_ENV'] === 'production') throw new Error('development certificates are refused when NODE_ENV=production; use certificates from your organization\'s CA');
  const { values } = parseArgs({ options: { dir: { type: 'string', default: join('.data', 'tls') }, host: { type: 'string', multiple: true, default: [] } }, strict: true });
  const folder = resolve(values.dir);
  const hosts = values.host;
  const authority = createAuthority(folder, DEVELOPMENT_CA_NAME);
  const server = issueCertificate(authority, folder, {
    name: 'server',
    commonName: 'phi-graph development server',
    dnsNames: [...LOOPBACK_NAMES.dnsNames, ...hosts.filter((host) => !/^[\d.:]+$/.test(host))],
    ipAddresses: [...LOOPBACK_NAMES.ipAddresses, ...hosts.filter((host) => /^[\d.:]+$/.test(host))],
    usage: 'server',
  });
  const client = issueCertificate(authority, folder, { name: 'gateway-client', commonName: 'phi-graph-gateway', usage: 'client' });
  const shown = (path: string) => relative(process.cwd(), path) || path;
  console.log(`Development certificates in ${shown(folder)} (valid 30 days; the CA is "${DEVELOPMENT_CA_NAME}"):
  CA:                      ${shown(authority.certFile)}
  servers (TLS_CERT_FILE): ${shown(server.certFile)} and ${shown(server.keyFile)}
  gateway's client cert:   ${shown(client.certFile)} and ${shown(client.keyFile)}

Serve every hop over TLS, with mutual TLS between the gateway and the subgraphs:
  export TLS_CERT_FILE=${shown(server.certFile)} TLS_KEY_FILE=${shown(server.keyFile)} TLS_CA_FILE=${shown(authority.certFile)} \\
    SUBGRAPH_CLIENT_CA_FILE=${shown(authority.certFile)} SUBGRAPH_CLIENT_NAMES=phi-graph-gateway GATEWAY_CLIENT_CERT_FILE=${shown(client.certFile)} GATEWAY_CLIENT_KEY_FILE=${shown(client.keyFile)}
  npm start
  curl --cacert ${shown(authority.certFile)} https://127.0.0.1:4000/healthz`);
} catch (error) {
  console.error(`tls:dev-certs: ${describeError(error)}`);
  process.exit(1);
}
