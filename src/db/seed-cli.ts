import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { openSealer } from './encryption.js';
import { openDatabase } from './orm.js';
import { describeError } from '../errors.js';
import {
  DEFAULT_BATCH_SIZE,
  DEFAULT_SEED,
  MAX_PATIENTS,
  SeedRefusedError,
  seedDatabase,
  writeDevelopmentPrincipals,
  type SeedSummary,
} from './seed/index.js';

/**
 * `npm run seed -- [--patients N] [--seed S] [--batch-size B]`: migrates the
 * configured database (DATABASE_URL, or PGlite in DATA_DIR) and fills it with
 * synthetic patients, their PHI encrypted under the key ring (PHI_KEY_RING, or
 * outside production the development key ring in DATA_DIR, created when
 * absent). Refuses a database that already has data. Writes one
 * sample account per role to <DATA_DIR>/dev-principals.json for `npm run token`.
 */

const DEFAULT_PATIENTS = 300;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
const USAGE = `usage: npm run seed -- [--patients N (default ${DEFAULT_PATIENTS}, at most ${MAX_PATIENTS})] [--seed S (default ${DEFAULT_SEED})] [--batch-size B (default ${DEFAULT_BATCH_SIZE})]`;

class UsageError extends Error {}

function integerOption(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^-?\d+$/.test(text.trim())) throw new UsageError(`--${name} must be an integer, got "${text}"`);
  return Number(text);
}

function parseArguments(): { patients: number; seed: number; batchSize: number } | undefined {
  const { values } = parseArgs({
    options: {
      patients: { type: 'string', short: 'n' },
      seed: { type: 'string' },
      'batch-size': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return undefined;
  return {
    patients: integerOption('patients', values.patients, DEFAULT_PATIENTS),
    seed: integerOption('seed', values.seed, DEFAULT_SEED),
    batchSize: integerOption('batch-size', values['batch-size'], DEFAULT_BATCH_SIZE),
  };
}

function progressReporter(): (done: number, total: number) => void {
  const interactive = process.stderr.isTTY;
  return (done, total) => {
    const line = `seeding: ${done}/${total} patients (${Math.floor((100 * done) / total)}%)`;
    if (interactive) process.stderr.write(`\r${line}${done === total ? '\n' : ''}`);
    else process.stderr.write(`${line}\n`);
  };
}

function describe(summary: SeedSummary, seconds: number, principalsPath: string): string {
  const rows = Object.values(summary.rows).reduce((sum, count) => sum + count, 0);
  const tables = Object.values(summary.rows).filter((count) => count > 0).length;
  return `Seeded ${summary.patients} patients (${rows} rows in ${tables} tables) in ${seconds.toFixed(1)} s; development principals in ${principalsPath}`;
}

let exitCode = 0;
try {
  const options = parseArguments();
  if (!options) {
    console.log(USAGE);
  } else {
    const config = loadConfig();
    const db = await openDatabase({ url: config.database.url, dataDir: config.database.dataDir });
    try {
      const applied = await db.migrate();
      if (applied.length > 0) console.error(`Applied ${applied.length} migration(s): ${applied.join(', ')}`);
      const sealer = await openSealer(db, config.keys);
      const started = performance.now();
      const summary = await seedDatabase(db, { ...options, sealer, onProgress: progressReporter() });
      const seconds = (performance.now() - started) / 1000;
      const principalsPath = await writeDevelopmentPrincipals(config.database.dataDir, summary.principals);
      console.log(describe(summary, seconds, principalsPath));
    } finally {
      await db.close();
    }
  }
} catch (error) {
  const message = describeError(error);
  if (error instanceof UsageError || (error instanceof Error && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))) {
    console.error(`seed: ${message}\n${USAGE}`);
    exitCode = EXIT_USAGE;
  } else if (error instanceof SeedRefusedError) {
    console.error(
      `seed: refused: ${message}.\nUse a fresh database: point DATA_DIR at an empty folder (PGlite) or DATABASE_URL at an empty database, then run "npm run seed" again.`,
    );
    exitCode = EXIT_FAILURE;
  } else if (error instanceof RangeError) {
    console.error(`seed: ${message}\n${USAGE}`);
    exitCode = EXIT_USAGE;
  } else {
    console.error(`seed: failed: ${message}`);
    exitCode = EXIT_FAILURE;
  }
}
process.exitCode = exitCode;
