import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './logger.js';
import { startApi, type Api, type Mode } from './runtime.js';
import { isSubgraphName, SUBGRAPH_NAMES } from './subgraphs/catalog.js';
import { describeError } from './errors.js';

/**
 * The entry point. `npm start` serves the gateway and the three subgraphs
 * in one process; `--subgraph <name>` serves one subgraph alone and
 * `--gateway` the gateway alone (subgraph URLs from the environment).
 */

const USAGE = `usage: npm start [-- --subgraph ${SUBGRAPH_NAMES.join('|')} | -- --gateway]`;

function parseMode(): Mode {
  const { values } = parseArgs({ options: { subgraph: { type: 'string' }, gateway: { type: 'boolean' } }, strict: true });
  if (values.subgraph !== undefined) {
    if (!isSubgraphName(values.subgraph)) throw new Error(`unknown subgraph "${values.subgraph}"; ${USAGE}`);
    return { kind: 'subgraph', name: values.subgraph };
  }
  return values.gateway ? { kind: 'gateway' } : { kind: 'all' };
}

function printBanner(api: Api, config: Config): void {
  const lines: string[] = [];
  const store = api.db?.kind === 'pglite' ? `embedded PGlite in ${config.database.dataDir}` : api.db ? 'PostgreSQL' : 'no database (gateway only)';
  lines.push(`phi-graph is up (${config.environment}; ${store}; ${api.cache.kind === 'redis' ? 'Redis' : 'in-process cache'}).`);
  if (api.gateway) lines.push(`  Gateway:   ${api.gateway.url}`);
  for (const server of Object.values(api.subgraphs)) lines.push(`  Subgraph:  ${server.name.padEnd(9)} ${server.url}`);
  if (api.seeded > 0) lines.push(`  Seeded ${api.seeded} synthetic patients into the empty database.`);
  if (api.gateway && !config.isProduction) {
    const query = '{ viewer { subject roles } patients(first: 3) { edges { node { id mrn name { text } birthDate } } } }';
    lines.push(
      '',
      'Mint a development token and make a first query:',
      '  TOKEN=$(npm run -s token -- --role clinician)',
      `  curl -s ${api.gateway.url} -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \\`,
      `    -d '${JSON.stringify({ query })}'`,
      '',
      'Roles: clinician nurse billing patient researcher partner auditor admin integrator. Ctrl-C stops.',
    );
  }
  console.log(lines.join('\n'));
}

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : String(error));
  process.exit(1);
}
const logger = createLogger(config.logLevel);
let api: Api;
try {
  api = await startApi(config, logger, { mode: parseMode() });
} catch (error) {
  console.error(`phi-graph could not start: ${describeError(error)}`);
  process.exit(1);
}
printBanner(api, config);

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    api.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: (error as Error).name }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
