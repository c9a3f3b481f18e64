/**
 * What TLS costs a request: the same API served twice on one PostgreSQL
 * database, once over plain HTTP and once with HTTPS to the gateway and
 * mutual TLS between the gateway and the subgraphs (throwaway CA, EC P-256
 * certificates), measured round by round, interleaved, so both see the same
 * machine. Two client modes:
 *
 * - kept-alive: one connection reused, as a partner's client or a browser
 *   does (TLS costs its record encryption only; the gateway's connections
 *   to the subgraphs are kept alive in both variants);
 * - new connection per request: the client's full TLS handshake each time.
 *
 *   npm run bench:transport [-- --rounds 10 --requests 40 --patients 200]
 *
 * Needs PostgreSQL (DATABASE_URL or 127.0.0.1:5432) and openssl. Writes to stdout only.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { mintDevelopmentToken } from '../src/auth/index.js';
import { readDevelopmentPrincipals } from '../src/db/seed/index.js';
import { startApi, type Api } from '../src/runtime.js';
import { createAuthority, issueCertificate, LOOPBACK_NAMES } from '../src/transport/development-certificates.js';
import { createScratchDatabase, LOCAL_POSTGRES } from './support.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '10' }, requests: { type: 'string', default: '40' }, patients: { type: 'string', default: '200' } } });
const rounds = Number(values.rounds);
const requests = Number(values.requests);

const QUERY = '{ patients(first: 20) { edges { node { id name { text } birthDate conditions(first: 5) { edges { node { id code { code } } } } } } } }';

function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function percentile(samples: readonly number[], share: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * share))] ?? Number.NaN;
}

interface Client {
  post(body: string): Promise<number>;
}

function clientFor(url: string, token: string, ca: string | undefined, keepAlive: boolean): Client {
  const target = new URL(url);
  const secure = target.protocol === 'https:';
  const agent = keepAlive ? (secure ? new HttpsAgent({ keepAlive: true, maxSockets: 1, ca }) : new HttpAgent({ keepAlive: true, maxSockets: 1 })) : false;
  const send = secure ? httpsRequest : httpRequest;
  return {
    post: (body) =>
      new Promise((resolve, reject) => {
        const started = process.hrtime.bigint();
        const request = send(
          { host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent, ...(secure && { ca, servername: 'localhost' }), headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
          (response) => {
            response.resume();
            response.on('end', () => {
              if (response.statusCode !== 200) reject(new Error(`HTTP ${response.statusCode}`));
              else resolve(Number(process.hrtime.bigint() - started) / 1e6);
            });
          },
        );
        request.once('error', reject);
        request.end(body);
      }),
  };
}

const serverUrl = process.env['DATABASE_URL'] || LOCAL_POSTGRES;
const folder = await mkdtemp(join(tmpdir(), 'phi-bench-transport-'));
const scratch = await createScratchDatabase(serverUrl);
const apis: Api[] = [];
try {
  const ca = createAuthority(join(folder, 'tls'), 'phi-graph bench CA');
  const server = issueCertificate(ca, join(folder, 'tls'), { name: 'server', ...LOOPBACK_NAMES, usage: 'server' });
  const gatewayClient = issueCertificate(ca, join(folder, 'tls'), { name: 'gateway-client', commonName: 'phi-graph-gateway', usage: 'client' });
  const common = {
    NODE_ENV: 'test',
    PORT: '0',
    PATIENT_SUBGRAPH_PORT: '0',
    CLINICAL_SUBGRAPH_PORT: '0',
    BILLING_SUBGRAPH_PORT: '0',
    DATA_DIR: join(folder, 'data'),
    DATABASE_URL: scratch.url,
    LOG_LEVEL: 'silent',
    RATE_LIMIT_REQUESTS_PER_MINUTE: '10000000',
    RATE_LIMIT_IN_FLIGHT: '100000',
    RATE_LIMIT_PATIENTS_PER_HOUR: '10000000',
  };
  const tls = {
    TLS_CERT_FILE: server.certFile,
    TLS_KEY_FILE: server.keyFile,
    TLS_CA_FILE: ca.certFile,
    SUBGRAPH_CLIENT_CA_FILE: ca.certFile,
    SUBGRAPH_CLIENT_NAMES: 'phi-graph-gateway',
    GATEWAY_CLIENT_CERT_FILE: gatewayClient.certFile,
    GATEWAY_CLIENT_KEY_FILE: gatewayClient.keyFile,
  };
  const logger = createLogger('silent');
  const plainConfig = loadConfig(common);
  console.log(`seeding ${values.patients} patients on ${new URL(serverUrl).host}`);
  apis.push(await startApi(plainConfig, logger, { seedPatients: Number(values.patients) }));
  apis.push(await startApi(loadConfig({ ...common, ...tls }), logger, { seedPatients: 0 }));
  const principals = await readDevelopmentPrincipals(plainConfig.database.dataDir);
  if (!principals) throw new Error('no development principals');
  const sample = principals.clinician;
  const token = await mintDevelopmentToken(plainConfig.auth, plainConfig.database.dataDir, { subject: sample.subject, roles: ['clinician'], organizationId: sample.organizationId, patientId: null, study: null, mfa: true, ttl: '30m' });
  const caPem = await readFile(ca.certFile, 'utf8');
  const body = JSON.stringify({ query: QUERY });
  const urls = { plain: apis[0]?.gateway?.url ?? '', tls: apis[1]?.gateway?.url ?? '' };
  console.log(`plain: ${urls.plain}\ntls:   ${urls.tls} (HTTPS, mutual TLS to the subgraphs)\n${rounds} rounds x ${requests} sequential requests per variant and mode, interleaved\n`);

  for (const keepAlive of [true, false]) {
    const clients = { plain: clientFor(urls.plain, token, undefined, keepAlive), tls: clientFor(urls.tls, token, caPem, keepAlive) };
    const samples: Record<'plain' | 'tls', number[]> = { plain: [], tls: [] };
    const ratios: number[] = [];
    // A warm-up round each, not counted (JIT, pools, data keys, the gateway's connections to the subgraphs).
    for (const name of ['plain', 'tls'] as const) for (let index = 0; index < requests; index++) await clients[name].post(body);
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? (['plain', 'tls'] as const) : (['tls', 'plain'] as const);
      const roundMedians: Record<string, number> = {};
      for (const name of order) {
        const times: number[] = [];
        for (let index = 0; index < requests; index++) times.push(await clients[name].post(body));
        samples[name].push(...times);
        roundMedians[name] = median(times);
      }
      ratios.push((roundMedians['tls'] ?? 0) / (roundMedians['plain'] ?? 1));
    }
    const mode = keepAlive ? 'kept-alive connection' : 'new connection per request';
    console.log(`${mode}:`);
    for (const name of ['plain', 'tls'] as const) {
      console.log(`  ${name.padEnd(5)} median ${median(samples[name]).toFixed(2)} ms, p95 ${percentile(samples[name], 0.95).toFixed(2)} ms (${samples[name].length} requests)`);
    }
    console.log(`  tls / plain, median of the per-round ratios: ${median(ratios).toFixed(3)} (rounds: ${ratios.map((ratio) => ratio.toFixed(2)).join(' ')})\n`);
  }
} finally {
  for (const api of apis.reverse()) await api.stop().catch(() => undefined);
  await scratch.drop();
  await rm(folder, { recursive: true, force: true });
}
