import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './logger.js';
import { startTracing } from './tracing.js';
import type { Api, Mode } from './runtime.js';
import { prepareInChild, superviseApi, type ChildMessage, type Supervisor } from './supervisor.js';
import { isSubgraphName, SUBGRAPH_NAMES } from './subgraphs/catalog.js';
import { describeError } from './errors.js';
import { reloadCertificates } from './transport/certificates.js';

/**
 * The entry point. `npm start` serves the gateway and the three subgraphs
 * in separate processes under a supervisor (supervisor.ts);
 * `--single-process` serves them all in this one; `--subgraph <name>` serves
 * one subgraph alone, `--subgraphs` the three, and `--gateway` the gateway
 * alone (subgraph URLs from the environment). `--supervised` marks a child
 * of the supervisor: it reports ready over IPC and stops with its parent.
 */

const USAGE = `usage: npm start [-- --single-process | -- --subgraph ${SUBGRAPH_NAMES.join('|')} | -- --subgraphs | -- --gateway]`;

interface Launch {
  mode: Mode;
  supervise: boolean;
  supervised: boolean;
  /** The supervisor's one-off child: prepare the storage, report, exit. */
  prepareOnly?: boolean;
}

function parseLaunch(): Launch {
  const { values } = parseArgs({
    options: { subgraph: { type: 'string' }, subgraphs: { type: 'boolean' }, gateway: { type: 'boolean' }, 'single-process': { type: 'boolean' }, supervised: { type: 'boolean' }, prepare: { type: 'boolean' } },
    strict: true,
  });
  const supervised = values.supervised === true;
  if (values.prepare) return { mode: { kind: 'all' }, supervise: false, supervised: true, prepareOnly: true };
  if (values.subgraph !== undefined) {
    if (!isSubgraphName(values.subgraph)) throw new Error(`unknown subgraph "${values.subgraph}"; ${USAGE}`);
    return { mode: { kind: 'subgraph', name: values.subgraph }, supervise: false, supervised };
  }
  if (values.subgraphs) return { mode: { kind: 'subgraphs' }, supervise: false, supervised };
  if (values.gateway) return { mode: { kind: 'gateway' }, supervise: false, supervised };
  return { mode: { kind: 'all' }, supervise: values['single-process'] !== true, supervised: false };
}

interface Served {
  gateway: string | null;
  subgraphs: { name: string; url: string }[];
  seeded: number;
  storeKind: 'pglite' | 'postgresql' | null;
  cacheKind: string;
  processes?: string;
}

function printBanner(served: Served, config: Config): void {
  const lines: string[] = [];
  const store = served.storeKind === 'pglite' ? `embedded PGlite in ${config.database.dataDir}` : served.storeKind ? 'PostgreSQL' : 'no database (gateway only)';
  lines.push(`phi-graph is up (${config.environment}; ${store}; ${served.cacheKind}${served.processes ? `; ${served.processes}` : ''}).`);
  if (served.gateway) lines.push(`  Gateway:   ${served.gateway}`);
  for (const server of served.subgraphs) lines.push(`  Subgraph:  ${server.name.padEnd(9)} ${server.url}`);
  if (served.seeded > 0) lines.push(`  Seeded ${served.seeded} synthetic patients into the empty database.`);
  if (served.gateway && !config.isProduction) {
    const query = '{ viewer { subject roles } patients(first: 3) { edges { node { id mrn name { text } birthDate } } } }';
    lines.push(
      '',
      'Mint a development token and make a first query:',
      '  TOKEN=$(npm run -s token -- --role clinician)',
      `  curl -s${caOption(served.gateway, config)} ${served.gateway} -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \\`,
      `    -d '${JSON.stringify({ query })}'`,
      '',
      'Roles: clinician nurse billing patient researcher partner auditor admin integrator. Ctrl-C stops.',
    );
  }
  // One write, on stderr: stdout carries the JSON log lines only (a log collector reads it whole), and the banner is never split by them.
  process.stderr.write(`${lines.join('\n')}\n`);
}

/** curl's --cacert for an HTTPS gateway whose CA this configuration names (TLS_CA_FILE). */
function caOption(url: string, config: Config): string {
  const ca = config.transport.gatewayClient.caFile;
  return url.startsWith('https:') && ca ? ` --cacert ${ca}` : '';
}

let config: Config;
try {
  config = loadConfig(process.env, { serving: true });
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : String(error));
  process.exit(1);
}
const logger = createLogger(config.logLevel);
let launch: Launch;
try {
  launch = parseLaunch();
} catch (error) {
  console.error((error as Error).message);
  process.exit(2);
}

if (launch.prepareOnly) {
  try {
    const { prepareStorage } = await import('./runtime.js');
    const prepared: ChildMessage = { type: 'prepared', seeded: await prepareStorage(config, logger) };
    // Exit once the message is out (an IPC send is asynchronous); awaited, so nothing below (the servers) ever starts here.
    const send = process.send?.bind(process);
    if (send) await new Promise<void>((resolve) => send(prepared, () => resolve()));
    process.exit(0);
  } catch (error) {
    console.error(`phi-graph could not prepare its database: ${describeError(error)}`);
    process.exit(1);
  }
}

let stop: () => Promise<void>;
/** SIGHUP: the certificates are read again (this process's, or each supervised child's). */
let hangUp: () => void = () => reloadCertificates('SIGHUP');
// Without a handler SIGHUP would end the process (even while it starts); here it reloads the TLS certificates (README, "Transport security").
process.on('SIGHUP', () => hangUp());
try {
  // Traces come from the processes that serve (each exports its own spans), not from the supervisor.
  const stopTracing = launch.supervise ? () => Promise.resolve() : await startTracing(logger);
  const stopServing = launch.supervise ? await runSupervisor(config) : await runServers(config, launch);
  stop = async () => {
    await stopServing();
    await stopTracing().catch(() => undefined);
  };
} catch (error) {
  console.error(`phi-graph could not start: ${describeError(error)}`);
  process.exit(1);
}

let stopping = false;
function shutDown(reason: string): void {
  if (stopping) return;
  stopping = true;
  logger.info({ reason }, 'shutting down: finishing in-flight requests');
  stop().then(
    () => process.exit(0),
    (error: unknown) => {
      logger.error({ err: (error as Error).name }, 'shutdown failed');
      process.exit(1);
    },
  );
}
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => shutDown(signal));
// A supervised child whose supervisor is gone stops too, rather than serve unwatched.
if (launch.supervised) process.on('disconnect', () => shutDown('supervisor gone'));

async function runSupervisor(config: Config): Promise<() => Promise<void>> {
  const seeded = await prepareInChild(config);
  const supervisor: Supervisor = await superviseApi(config, logger);
  hangUp = () => supervisor.reloadCertificates();
  const children = supervisor.children();
  const servers = children.flatMap((child) => child.servers);
  printBanner(
    {
      gateway: servers.find((server) => server.name === 'gateway')?.url ?? null,
      subgraphs: servers.filter((server) => server.name !== 'gateway'),
      seeded,
      storeKind: config.database.url ? 'postgresql' : 'pglite',
      cacheKind: config.redisUrl ? 'Redis' : 'in-process cache',
      processes: `${children.length} processes of at most ${config.processHeapMb} MiB heap each, supervised`,
    },
    config,
  );
  return () => supervisor.stop();
}

async function runServers(config: Config, launch: Launch): Promise<() => Promise<void>> {
  // Loaded here, not at the top: the supervisor never loads the servers, the database driver or the key ring (it stays small).
  const { startApi } = await import('./runtime.js');
  const api: Api = await startApi(config, logger, { mode: launch.mode, prepared: launch.supervised });
  const subgraphs = Object.values(api.subgraphs).map((server) => ({ name: server.name, url: server.url }));
  if (launch.supervised) {
    const ready: ChildMessage = { type: 'ready', servers: [...(api.gateway ? [{ name: 'gateway', url: api.gateway.url }] : []), ...subgraphs] };
    process.send?.(ready);
  } else {
    printBanner({ gateway: api.gateway?.url ?? null, subgraphs, seeded: api.seeded, storeKind: api.db?.kind === 'pglite' ? 'pglite' : api.db ? 'postgresql' : null, cacheKind: api.cache.kind === 'redis' ? 'Redis' : 'in-process cache' }, config);
  }
  return () => api.stop();
}
