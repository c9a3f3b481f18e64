/**
 * Two of issue 16's directions for decrypting a large page, measured
 * against what the API does now (the addon opens each value in the request's
 * own thread):
 *
 * - one envelope per (row, policy category): the columns of a row that share
 *   a category (address lines and city, phone and email) sealed together, so
 *   a row needs fewer openings, each followed by a split of its values;
 * - a worker pool: the page's ciphertexts packed into one buffer, moved to
 *   1 or 2 worker threads that open them with the same addon, the plaintexts
 *   cloned back.
 *
 *   npm run bench:decrypt-page -- [--rows 1000] [--runs 30] [--out bench/BENCHMARKS.md|-]
 *
 * The page is the dashboard's: 1,000 rows of the nine encrypted patient
 * columns a billing list reads, with values as long as the seeded ones, each
 * under its own data key per category and bound to its row and column as the
 * API binds them. For each design the report gives the page's wall time and
 * the request thread's busy time (event-loop utilization while it waits for
 * workers): the busy time is what a request pays on a machine whose other
 * cores are taken by other requests; the wall time what one request waits
 * on an idle machine. Medians (and ranges) of `runs` pages, designs in turn.
 * Needs the native addon (`npm install` builds it); node:crypto rows are
 * given for reference.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { nativeGcm, nodeCryptoGcm, type GcmDecryptor } from '../src/crypto/aes-gcm.js';
import { NONCE_BYTES } from '../src/crypto/envelope.js';
import { ENCRYPTED_TABLES } from '../src/db/encryption.js';
import { environmentFacts, integer, loadAverage, markdownTable, median, medianRange, progress, writeReportSection } from './support.js';

const SECTION_START = '<!-- decrypt-page:start -->';
const SECTION_END = '<!-- decrypt-page:end -->';
const ADDON = fileURLToPath(new URL('../native/aead/build/Release/phi_aead.node', import.meta.url));
const HEADER_BYTES = 16;
/**
 * Joins a category's values in one envelope. The cheapest split there is
 * (String#split on one character; JSON.parse of an array cost 2.5 µs more
 * per envelope); a real format would prefix lengths, which costs more.
 */
const SEPARATOR = '\u0000';

/** The dashboard's encrypted columns and a seeded value's length for each. */
const COLUMNS: readonly { column: string; length: number }[] = [
  { column: 'mrn', length: 10 },
  { column: 'name', length: 38 },
  { column: 'birth_date', length: 10 },
  { column: 'address_lines', length: 24 },
  { column: 'city', length: 11 },
  { column: 'state', length: 2 },
  { column: 'postal_code', length: 5 },
  { column: 'phone', length: 12 },
  { column: 'email', length: 26 },
];

interface Value {
  /** Index into `keys`: one data key per category, as the key service scopes them. */
  key: number;
  stored: Buffer;
  location: string;
}

interface Page {
  keys: Buffer[];
  perColumn: Value[];
  perCategory: Value[];
  /** Plaintexts a page holds (per column), to check every design against. */
  expected: string[];
}

function seal(key: Buffer, header: Buffer, plaintext: string, location: string): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
  cipher.setAAD(Buffer.concat([header, Buffer.from(location, 'utf8')]));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([header, nonce, body, cipher.getAuthTag()]);
}

function text(length: number, row: number): string {
  return `${row}:`.padEnd(length, 'abcdefghij').slice(0, length);
}

function buildPage(rows: number): Page {
  const categories = ENCRYPTED_TABLES.patient?.categories ?? {};
  const categoryNames = [...new Set(COLUMNS.map(({ column }) => categories[column] ?? column))];
  const keys = categoryNames.map(() => randomBytes(32));
  const header = randomBytes(HEADER_BYTES);
  const perColumn: Value[] = [];
  const perCategory: Value[] = [];
  const expected: string[] = [];
  for (let row = 0; row < rows; row += 1) {
    const id = `0000${row}`.slice(-5).padStart(36, '9');
    const grouped = new Map<number, string[]>();
    for (const { column, length } of COLUMNS) {
      const key = categoryNames.indexOf(categories[column] ?? column);
      const plaintext = text(length, row);
      expected.push(plaintext);
      const location = `patient.${column}:${id}`;
      perColumn.push({ key, stored: seal(keys[key] as Buffer, header, plaintext, location), location });
      grouped.set(key, [...(grouped.get(key) ?? []), plaintext]);
    }
    for (const [key, values] of grouped) {
      const location = `patient.${categoryNames[key]}:${id}`;
      perCategory.push({ key, stored: seal(keys[key] as Buffer, header, values.join(SEPARATOR), location), location });
    }
  }
  return { keys, perColumn, perCategory, expected };
}

type Design = (page: Page) => Promise<string[]>;

function inline(gcm: GcmDecryptor): Design {
  return (page) => Promise.resolve(page.perColumn.map((value) => open(gcm, page, value)));
}

function inlineGrouped(gcm: GcmDecryptor): Design {
  return (page) => Promise.resolve(page.perCategory.flatMap((value) => open(gcm, page, value).split(SEPARATOR)));
}

function open(gcm: GcmDecryptor, page: Page, value: Value): string {
  const plaintext = gcm.open(page.keys[value.key] as Buffer, value.stored, HEADER_BYTES, value.location);
  if (plaintext === null) throw new Error(`${value.location} did not authenticate`);
  return plaintext;
}

/** A worker that opens a packed batch with the addon and answers the plaintexts. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const addon = require(workerData.addon);
parentPort.on('message', ({ keys, data, ends, keyOf, locations, headerBytes }) => {
  const handles = keys.map((key) => addon.key(Buffer.from(key)));
  const bytes = Buffer.from(data);
  const out = new Array(ends.length);
  let start = 0;
  for (let i = 0; i < ends.length; i += 1) {
    out[i] = addon.open(handles[keyOf[i]], bytes.subarray(start, ends[i]), headerBytes, locations[i]);
    start = ends[i];
  }
  parentPort.postMessage(out);
});`;

class Pool {
  readonly #workers: Worker[];
  constructor(size: number) {
    this.#workers = Array.from({ length: size }, () => new Worker(WORKER_SOURCE, { eval: true, workerData: { addon: ADDON } }));
  }
  get size(): number {
    return this.#workers.length;
  }
  /** Packs `values` into one buffer (transferred, not copied) and asks worker `index` to open them. */
  run(index: number, page: Page, values: Value[]): Promise<(string | null)[]> {
    const worker = this.#workers[index] as Worker;
    const total = values.reduce((sum, value) => sum + value.stored.length, 0);
    const data = new ArrayBuffer(total);
    const view = new Uint8Array(data);
    const ends = new Uint32Array(values.length);
    const keyOf = new Uint8Array(values.length);
    const locations = new Array<string>(values.length);
    let offset = 0;
    values.forEach((value, position) => {
      view.set(value.stored, offset);
      offset += value.stored.length;
      ends[position] = offset;
      keyOf[position] = value.key;
      locations[position] = value.location;
    });
    return new Promise((resolve, reject) => {
      const answered = (plaintexts: (string | null)[]) => {
        worker.off('error', failed);
        resolve(plaintexts);
      };
      const failed = (error: Error) => {
        worker.off('message', answered);
        reject(error);
      };
      worker.once('message', answered);
      worker.once('error', failed);
      worker.postMessage({ keys: page.keys.map((key) => new Uint8Array(key)), data, ends, keyOf, locations, headerBytes: HEADER_BYTES }, [data]);
    });
  }
  async close(): Promise<void> {
    await Promise.all(this.#workers.map((worker) => worker.terminate()));
  }
}

function pooled(pool: Pool): Design {
  return async (page) => {
    const share = Math.ceil(page.perColumn.length / pool.size);
    const parts = await Promise.all(Array.from({ length: pool.size }, (_, index) => pool.run(index, page, page.perColumn.slice(index * share, (index + 1) * share))));
    return parts.flat().map((plaintext, position) => {
      if (plaintext === null) throw new Error(`${page.perColumn[position]?.location ?? '?'} did not authenticate`);
      return plaintext;
    });
  };
}

interface Sample {
  wallMs: number;
  busyMs: number;
}

async function measure(design: Design, page: Page): Promise<Sample> {
  const before = performance.eventLoopUtilization();
  const start = performance.now();
  const result = await design(page);
  const wallMs = performance.now() - start;
  const busyMs = performance.eventLoopUtilization(before).active;
  if (result.length !== page.expected.length || result.some((plaintext, index) => plaintext !== page.expected[index])) throw new Error('a design answered other plaintexts');
  return { wallMs, busyMs };
}

interface Options {
  rows: number;
  runs: number;
  out: string;
}

function parseOptions(argv: readonly string[]): Options {
  const values = new Map<string, string>();
  for (let index = 0; index < argv.length; index += 2) {
    const name = argv[index] ?? '';
    if (!name.startsWith('--') || argv[index + 1] === undefined) throw new Error(`usage: npm run bench:decrypt-page -- [--rows 1000] [--runs 30] [--out PATH|-]; got ${name}`);
    values.set(name.slice(2), argv[index + 1] ?? '');
  }
  return {
    rows: integer('rows', values.get('rows') ?? '1000', 1),
    runs: integer('runs', values.get('runs') ?? '30', 3),
    out: values.get('out') ?? 'bench/BENCHMARKS.md',
  };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const options = parseOptions(argv);
  if (!existsSync(ADDON)) throw new Error(`${ADDON} was not built: run npm install (it builds the addon with node-gyp)`);
  const native = nativeGcm();
  if ('reason' in native) throw new Error(`the addon did not load: ${native.reason}`);
  const loadAtStart = loadAverage();
  const page = buildPage(options.rows);
  progress(`a page of ${options.rows} rows: ${page.perColumn.length} values, ${page.perCategory.length} envelopes per category`);
  const one = new Pool(1);
  const two = new Pool(2);
  const designs: { name: string; envelopes: number; design: Design }[] = [
    { name: 'now: each value in the request thread, addon', envelopes: page.perColumn.length, design: inline(native) },
    { name: 'one envelope per (row, category), addon (+ split)', envelopes: page.perCategory.length, design: inlineGrouped(native) },
    { name: 'worker pool of 1, addon (pack, transfer, clone back)', envelopes: page.perColumn.length, design: pooled(one) },
    { name: 'worker pool of 2, addon, half a page each', envelopes: page.perColumn.length, design: pooled(two) },
    { name: 'reference: each value in the request thread, node:crypto', envelopes: page.perColumn.length, design: inline(nodeCryptoGcm) },
    { name: 'reference: one envelope per (row, category), node:crypto', envelopes: page.perCategory.length, design: inlineGrouped(nodeCryptoGcm) },
  ];
  const samples = new Map<string, Sample[]>(designs.map(({ name }) => [name, []]));
  try {
    for (const { design } of designs) for (let warm = 0; warm < 3; warm += 1) await measure(design, page);
    for (let run = 0; run < options.runs; run += 1) {
      const order = run % 2 === 0 ? designs : [...designs].reverse();
      for (const { name, design } of order) samples.get(name)?.push(await measure(design, page));
    }
  } finally {
    await Promise.all([one.close(), two.close()]);
  }
  const baseline = median((samples.get(designs[0]?.name ?? '') ?? []).map((sample) => sample.busyMs));
  const rows = designs.map(({ name, envelopes }) => {
    const taken = samples.get(name) ?? [];
    const busy = taken.map((sample) => sample.busyMs);
    return [name, String(envelopes), medianRange(taken.map((sample) => sample.wallMs), 2), medianRange(busy, 2), `${(median(busy) / baseline).toFixed(2)}x`];
  });
  const { node, cpu, cores } = environmentFacts();
  const report = [
    SECTION_START,
    '## Decrypting a 1,000-row page: per category, on workers',
    '',
    `- command: \`npm run bench:decrypt-page -- ${argv.join(' ')}\``.replace(' -- `', '`'),
    `- date: ${new Date().toISOString()}; node ${node}; ${cpu} (${cores} cores); load average ${loadAtStart.toFixed(2)} at the start, ${loadAverage().toFixed(2)} at the end`,
    `- a page of ${options.rows} rows × ${COLUMNS.length} encrypted columns (the dashboard's), values as long as the seeded ones; every design's plaintexts checked; ${options.runs} pages per design, in turn; medians (range)`,
    '- request-thread busy: event-loop utilization of the thread that serves the request while the page is opened (for the pools: packing, posting, and taking the plaintexts back)',
    '',
    markdownTable(['design', 'openings', 'page wall ms', 'request thread busy ms', 'busy vs now'], rows, ['l', 'r', 'r', 'r', 'r']),
    SECTION_END,
  ].join('\n');
  process.stdout.write(`${report}\n`);
  if (options.out !== '-') await writeReportSection(join(process.cwd(), options.out), SECTION_START, SECTION_END, report);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
