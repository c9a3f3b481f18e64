/**
 * The audit trail across instances: how many hash-chained batches a second
 * the one chain head lets through, with 1, 4 and 16 concurrent writers
 * spread over 2 processes (each its own connection pool), on PostgreSQL.
 * Every batch is one statement that locks the head row, links the batch to
 * the previous hash and moves the head (src/audit/store.ts), so writers in
 * every process queue on that lock. The run ends with `audit:verify`'s
 * check of the whole chain, which must hold every batch written.
 *
 *   npm run bench:audit-chain -- [--writers 1,4,16] [--processes 2] [--seconds 5] [--rounds 3]
 *                                [--events 10] [--out bench/BENCHMARKS.md|-]
 *
 * Whether the one head is what limits them is measured against the design
 * that would replace it, a chain per process: the same writers, each
 * process appending to a chain of its own (here: a database of its own on
 * the same server, so nothing but the server is shared). If a chain per
 * process is no faster, the head is not the limit on this machine.
 *
 * Writers append back to back (a closed loop: a writer's next batch waits
 * for its last); each level runs `rounds` times, in turn, the order reversed
 * each round; the report gives medians and ranges. A batch holds `events`
 * read events of one request, as a subgraph writes for a short list.
 * Needs DATABASE_URL (or PostgreSQL on 127.0.0.1:5432): PGlite has one
 * writer by construction.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { DatabaseAuditStore, verifyAuditChain, type AuditEventRecord } from '../src/audit/index.js';
import { openDatabase } from '../src/db/index.js';
import { createScratchDatabase, type ScratchDatabase, environmentFacts, integer, loadAverage, LOCAL_POSTGRES, markdownTable, median, medianRange, percentile, progress, writeReportSection } from './support.js';

const SECTION_START = '<!-- audit-chain:start -->';
const SECTION_END = '<!-- audit-chain:end -->';

interface Options {
  writers: number[];
  processes: number;
  seconds: number;
  rounds: number;
  events: number;
  out: string;
}

interface ChildResult {
  batches: number;
  latenciesMs: number[];
  failures: number;
}

type ChainMode = 'shared' | 'per-process';

interface LevelRound {
  mode: ChainMode;
  writers: number;
  batchesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  failures: number;
}

function parseOptions(argv: readonly string[]): Options {
  const values = new Map<string, string>();
  for (let index = 0; index < argv.length; index += 2) {
    const name = argv[index] ?? '';
    if (!name.startsWith('--') || argv[index + 1] === undefined) throw new Error(`usage: npm run bench:audit-chain -- [--writers 1,4,16] [--processes 2] [--seconds 5] [--rounds 3] [--events 10] [--out PATH|-]; got ${name}`);
    values.set(name.slice(2), argv[index + 1] ?? '');
  }
  const writers = (values.get('writers') ?? '1,4,16').split(',').map((text) => integer('writers', text, 1));
  return {
    writers,
    processes: integer('processes', values.get('processes') ?? '2', 1),
    seconds: integer('seconds', values.get('seconds') ?? '5', 1),
    rounds: integer('rounds', values.get('rounds') ?? '3', 1),
    events: integer('events', values.get('events') ?? '10', 1),
    out: values.get('out') ?? 'bench/BENCHMARKS.md',
  };
}

/** One request's read events: `count` patients' rows with the same fields, as a subgraph records a short list. */
function batch(count: number, writer: string): AuditEventRecord[] {
  const recordedAt = new Date().toISOString();
  const requestId = randomUUID();
  return Array.from({ length: count }, () => {
    const patientId = randomUUID();
    return {
      recordedAt,
      requestId,
      subgraph: 'patient',
      subject: `bench-writer-${writer}`,
      roles: ['clinician'],
      organizationId: null,
      clientName: 'bench',
      clientVersion: null,
      ip: '127.0.0.1',
      operationName: 'AuditChainBench',
      operationHash: 'f'.repeat(64),
      patientId,
      entityType: 'Patient',
      entityId: patientId,
      action: 'read',
      fields: [
        { field: 'Patient.name', outcome: 'allowed' },
        { field: 'Patient.birthDate', outcome: 'allowed' },
      ],
      emergency: false,
      emergencyGrantId: null,
    };
  });
}

/** A child process: `writers` writers, each appending batches back to back from `startAt` (epoch ms) for `seconds`. */
async function child(url: string, writers: number, startAt: number, seconds: number, events: number): Promise<void> {
  const db = await openDatabase({ url, dataDir: '', poolSize: writers + 2 });
  const store = new DatabaseAuditStore(db);
  const result: ChildResult = { batches: 0, latenciesMs: [], failures: 0 };
  // Connections opened before the clock starts.
  await Promise.all(Array.from({ length: writers }, () => db.ping()));
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, startAt - Date.now())));
  const endAt = startAt + seconds * 1000;
  await Promise.all(
    Array.from({ length: writers }, async (_, index) => {
      const name = `${process.pid}-${index}`;
      while (Date.now() < endAt) {
        const events_ = batch(events, name);
        const started = performance.now();
        try {
          await store.append(events_);
          result.batches += 1;
          result.latenciesMs.push(performance.now() - started);
        } catch {
          result.failures += 1;
        }
      }
    }),
  );
  await db.close();
  process.stdout.write(JSON.stringify(result));
}

function runChild(url: string, writers: number, startAt: number, options: Options): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', JSON.stringify({ url, writers, startAt, seconds: options.seconds, events: options.events })], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), (options.seconds + 60) * 1000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`a writer process exited with ${code}`));
      else resolve(JSON.parse(output) as ChildResult);
    });
  });
}

/** `writers` writers over `processes` processes (as evenly as they go; 1 writer is 1 process); `urls[i]` is process i's chain. */
async function runLevel(mode: ChainMode, urls: readonly string[], writers: number, options: Options): Promise<LevelRound> {
  const processes = Math.min(options.processes, writers);
  const shares = Array.from({ length: processes }, (_, index) => Math.floor(writers / processes) + (index < writers % processes ? 1 : 0));
  // Every process starts together, after the slowest has loaded and connected.
  const startAt = Date.now() + 4000;
  const results = await Promise.all(shares.map((share, index) => runChild(mode === 'shared' ? (urls[0] as string) : (urls[index] as string), share, startAt, options)));
  const batches = results.reduce((sum, result) => sum + result.batches, 0);
  const latencies = results.flatMap((result) => result.latenciesMs);
  return {
    mode,
    writers,
    batchesPerSecond: batches / options.seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    failures: results.reduce((sum, result) => sum + result.failures, 0),
  };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    const { url, writers, startAt, seconds, events } = JSON.parse(argv[1] ?? '{}') as { url: string; writers: number; startAt: number; seconds: number; events: number };
    await child(url, writers, startAt, seconds, events);
    return;
  }
  const options = parseOptions(argv);
  const server = process.env.DATABASE_URL ?? LOCAL_POSTGRES;
  // One database per process: index 0 is also the shared chain.
  const scratches: ScratchDatabase[] = [];
  const dropAll = () => Promise.all(scratches.map((scratch) => scratch.drop()));
  const interrupted = () => void dropAll().finally(() => process.exit(130));
  process.once('SIGINT', interrupted);
  try {
    for (let index = 0; index < options.processes; index++) {
      const scratch = await createScratchDatabase(server);
      scratches.push(scratch);
      const db = await openDatabase({ url: scratch.url, dataDir: '' });
      await db.migrate();
      await db.close();
    }
    const urls = scratches.map((scratch) => scratch.url);
    progress(`${scratches.length} scratch databases migrated; ${options.rounds} rounds of ${options.writers.join(', ')} writers over ${options.processes} processes, ${options.seconds} s each, one shared chain and a chain per process`);
    const loadAtStart = loadAverage();
    const rounds: LevelRound[] = [];
    const levels = (['shared', 'per-process'] as const).flatMap((mode) => options.writers.filter((writers) => mode === 'shared' || writers > 1).map((writers) => ({ mode, writers })));
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? levels : [...levels].reverse();
      for (const { mode, writers } of order) {
        const result = await runLevel(mode, urls, writers, options);
        rounds.push(result);
        progress(`round ${round + 1}: ${mode} chain, ${writers} writers: ${result.batchesPerSecond.toFixed(0)} batches/s, p50 ${result.p50Ms.toFixed(1)} ms, p99 ${result.p99Ms.toFixed(1)} ms${result.failures ? `, ${result.failures} failed` : ''}`);
      }
    }
    const started = performance.now();
    let verified = { batches: 0, events: 0 };
    for (const url of urls) {
      const verifyDb = await openDatabase({ url, dataDir: '' });
      const chain = await verifyAuditChain(verifyDb).finally(() => verifyDb.close());
      if (!chain.ok) throw new Error(`a chain does not verify: ${JSON.stringify(chain.problems.slice(0, 3))}`);
      verified = { batches: verified.batches + chain.batches, events: verified.events + chain.events };
    }
    const verifyMs = performance.now() - started;
    const written = rounds.reduce((sum, round) => sum + round.batchesPerSecond * options.seconds, 0);
    if (verified.batches !== Math.round(written)) throw new Error(`the chains hold ${verified.batches} batches; ${written} were written`);
    const chain = verified;

    const single = median(rounds.filter((round) => round.mode === 'shared' && round.writers === options.writers[0]).map((round) => round.batchesPerSecond));
    const rows = levels.map(({ mode, writers }) => {
      const level = rounds.filter((round) => round.mode === mode && round.writers === writers);
      const throughput = level.map((round) => round.batchesPerSecond);
      return [
        mode === 'shared' ? 'one, shared' : 'one per process',
        String(writers),
        String(Math.min(options.processes, writers)),
        medianRange(throughput),
        medianRange(throughput.map((value) => value * options.events)),
        `${(median(throughput) / single).toFixed(2)}x`,
        medianRange(level.map((round) => round.p50Ms), 1),
        medianRange(level.map((round) => round.p99Ms), 1),
        String(level.reduce((sum, round) => sum + round.failures, 0)),
      ];
    });
    const { node, cpu, cores } = environmentFacts();
    const report = [
      SECTION_START,
      '## The audit chain across instances: batches a second by concurrent writers',
      '',
      `- command: \`npm run bench:audit-chain -- ${argv.join(' ')}\``.replace(' -- `', '`'),
      `- date: ${new Date().toISOString()}; node ${node}; ${cpu} (${cores} cores); load average ${loadAtStart.toFixed(2)} at the start, ${loadAverage().toFixed(2)} at the end`,
      `- PostgreSQL at ${new URL(server).host}, scratch databases; writers share the cores with it`,
      `- each writer appends batches of ${options.events} read events back to back (src/audit/store.ts, one statement each) for ${options.seconds} s; ${options.rounds} rounds per level, levels in turn; medians (range)`,
      `- afterwards every chain verified (the check of \`npm run audit:verify\`): ${chain.batches} batches, ${chain.events} events, all there and intact, in ${(verifyMs / 1000).toFixed(1)} s`,
      '',
      markdownTable(['chain', 'writers', 'processes', 'batches/s', 'events/s', 'vs 1 writer', 'append p50 ms', 'append p99 ms', 'failed'], rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r']),
      SECTION_END,
    ].join('\n');
    process.stdout.write(`${report}\n`);
    if (options.out !== '-') await writeReportSection(options.out, SECTION_START, SECTION_END, report);
  } finally {
    await dropAll();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
