/**
 * What field-level encryption costs: the same operations, on the same data,
 * sent to the protected API serving a database whose PHI columns hold
 * AES-256-GCM ciphertext ("encrypted", crypto_version 1) and to an identical
 * API serving an identical copy of that database whose PHI columns hold the
 * UTF-8 plaintext ("plaintext", crypto_version 0, as rows stored before
 * encryption are served), interleaved request by request in one run. Also
 * prices one decryption alone, in a tight loop.
 *
 *   npm run bench:encryption -- [--patients 3000] [--rounds 20] [--warmup 3]
 *                               [--database pglite|postgres] [--json results.json]
 *                               [--only dashboard-1000,chart] [--values 10000] [--runs 5]
 *
 * See bench/README.md for how the two databases are made and how to read the figures.
 */
import { performance } from 'node:perf_hooks';
import { createCipheriv, randomBytes } from 'node:crypto';
import { nativeGcm, nodeCryptoGcm, type GcmDecryptor } from '../src/crypto/aes-gcm.js';
import { envelopeHeader, openPlaintextForBenchmark, Sealed, toBuffer, unseal, type FieldCipher, type FieldLocation } from '../src/crypto/index.js';
import { CRYPTO_VERSION_ENCRYPTED, ENCRYPTED_TABLES } from '../src/db/encryption.js';
import type { Database } from '../src/db/index.js';
import {
  compact,
  cryptoVersions,
  describeDatabase,
  expectOnly,
  integer,
  markdownTable,
  median,
  parseBenchOptions,
  progress,
  runMain,
  runMeta,
  runWorkloads,
  startRun,
  startVariantsOnCopies,
  storeAsPlaintext,
  summarize,
  tableBytes,
  type BenchOptions,
  type Meta,
  type Row,
  type VariantSpec,
  type Workload,
  type WorkloadResult,
} from './support.js';
import { comparisonTable, countCell, reportText, responseKibColumn, statementsColumn, writeResultsJson, type Column } from './report.js';
import { DASHBOARD_SIZE, buildContext, chart, dashboard, partnerList, type Context } from './workloads.js';

/** Both variants are the protected API (field rules, masking, decryption step); only the stored form differs. */
const ENCRYPTED = 'encrypted';
const PLAINTEXT = 'plaintext';
const VARIANTS: VariantSpec[] = [
  { name: ENCRYPTED, unprotected: false },
  { name: PLAINTEXT, unprotected: false, plaintext: true },
];
/** Ratios are variant / BASELINE. */
const BASELINE = PLAINTEXT;

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

interface Options extends BenchOptions {
  /** Values decrypted per run of the per-value measurement. */
  values: number;
  /** Runs of the per-value measurement (the median is reported). */
  runs: number;
  /** Rows per batch when the plaintext copy is written. */
  batch: number;
}

const USAGE =
  'usage: npm run bench:encryption -- [--patients N] [--rounds N] [--warmup N] [--database pglite|postgres] [--json PATH] [--only NAME,...] [--values N] [--runs N] [--batch N]';

function parseOptions(argv: string[]): Options {
  const { extra, ...options } = parseBenchOptions(argv, {
    usage: USAGE,
    patients: '3000',
    rounds: '20',
    workloads: WORKLOADS.map((workload) => workload.name),
    extra: { values: '10000', runs: '5', batch: '500' },
  });
  return {
    ...options,
    values: integer('values', extra.values, 1),
    runs: integer('runs', extra.runs, 1),
    // 500 rows of patient (11 parameters each) stay far below the parameter limits of both drivers.
    batch: Math.min(integer('batch', extra.batch, 1), 2000),
  };
}

// ---------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------

/**
 * Nine patient fields (the authorization benchmark's dashboard without
 * managingOrganization), seven of them @encrypted: mrn, name, birthDate, ssn
 * (masked for billing, after decryption), address (city, state and
 * postalCode, three encrypted columns), phone, email. Up to nine
 * decryptions a row; fewer where a column is null.
 */
const DASHBOARD_FIELDS = 'id mrn name { given family } birthDate gender ssn address { city state postalCode } phone email';
/** Per list of the chart: an @encrypted field of each encrypted clinical and billing table. */
const CHART_LISTS = {
  clinicalNotes: 'id type { display } text createdAt',
  conditions: 'id code { code display } clinicalStatus onsetDate',
  observations: 'id code { code display } value unit effectiveAt',
  coverages: 'id payer memberId status',
  claims: 'id status diagnosisCodes',
} as const;

const WORKLOADS: Workload<Context>[] = [
  dashboard({
    name: 'dashboard-1000',
    description: `billing: patients(first: ${DASHBOARD_SIZE}), 9 fields, 7 of them encrypted (up to 9 encrypted columns a row; SSN masked after decryption), through the gateway`,
    fields: DASHBOARD_FIELDS,
    sameBody: true,
  }),
  // The list's eight patient fields hold six @encrypted ones (up to eight decryptions a row).
  partnerList({
    description: 'billing: patients(first: 50), 8 fields, 6 of them encrypted (up to 8 encrypted columns a row), through the gateway',
    sameBody: true,
  }),
  chart({
    description:
      'patient: their own record with clinicalNotes text, conditions code, observations value, coverages memberId, claims diagnosisCodes (first 10 of each), through the gateway',
    lists: CHART_LISTS,
    // The patient role is the one role allowed every one of these fields (clinicians do not see diagnosis codes of claims, billing no clinical content).
    role: 'patient',
    sameBody: true,
    notes: ['sample patient, own token (the one role allowed all five encrypted fields), first 10 of each list'],
  }),
];

/** The variants must really differ: the encrypted one decrypts, the plaintext one never does. */
function checkDecryptions(result: WorkloadResult): void {
  const encrypted = summarize(result.samples[ENCRYPTED] ?? []);
  const plaintext = summarize(result.samples[PLAINTEXT] ?? []);
  if (encrypted.decryptionsMin === 0) throw new Error(`${result.name}: the encrypted API decrypted nothing for some request; it is not serving ciphertext`);
  if (plaintext.decryptionsMax !== 0) throw new Error(`${result.name}: the plaintext API decrypted ${plaintext.decryptionsMax} values for a request; its copy is not plaintext`);
}

// ---------------------------------------------------------------------------
// One decryption alone
// ---------------------------------------------------------------------------

interface PerValueResult {
  name: string;
  description: string;
  /** Microseconds per value, one per run. */
  runs: number[];
}

interface StoredValue {
  stored: Buffer;
  location: FieldLocation;
  plaintext: Buffer;
}

/**
 * `count` stored values of the patient table (the columns the dashboard
 * reads), their ciphertext from the encrypted copy and their bytes from the
 * plaintext copy, repeated when there are fewer.
 */
async function sampleValues(encrypted: Database, plaintext: Database, count: number): Promise<StoredValue[]> {
  const columns = ENCRYPTED_TABLES['patient']?.columns ?? [];
  const limit = Math.ceil(count / columns.length) * 2;
  const query = `select "id", ${columns.map((column) => `"${column}"`).join(', ')} from "patient" order by "id" limit ?`;
  const [sealedRows, plainRows] = await Promise.all([encrypted.fork().execute<Row[]>(query, [limit]), plaintext.fork().execute<Row[]>(query, [limit])]);
  const distinct: StoredValue[] = [];
  for (const [index, row] of sealedRows.entries()) {
    const plain = plainRows[index];
    if (!plain || plain['id'] !== row['id']) throw new Error('the two copies do not hold the same patients in the same order');
    for (const column of columns) {
      const stored = row[column] as Uint8Array | null;
      const bytes = plain[column] as Uint8Array | null;
      if (stored === null || bytes === null) continue;
      distinct.push({ stored: toBuffer(stored), location: { table: 'patient', column, rowId: String(row['id']) }, plaintext: toBuffer(bytes) });
    }
  }
  if (distinct.length === 0) throw new Error('no patient values to decrypt');
  return Array.from({ length: count }, (_, index) => distinct[index % distinct.length] as StoredValue);
}

/**
 * Microseconds per value, median of `runs` runs over the same values after
 * one untimed run: FieldCipher.decrypt awaited value by value (the AES-GCM
 * work with its data-key lookup), then the API's per-field step `unseal`
 * for an encrypted and for a plaintext (crypto_version 0) field.
 */
async function perValueCost(cipher: FieldCipher, values: readonly StoredValue[], runs: number): Promise<PerValueResult[]> {
  const sealedOf = (value: StoredValue, encrypted: boolean) =>
    new Sealed([{ stored: encrypted ? value.stored : value.plaintext, location: value.location, encrypted }], (plaintexts) => plaintexts[0]);
  // Built beforehand, so the loops time the step alone.
  const encryptedFields = values.map((value) => sealedOf(value, true));
  const plaintextFields = values.map((value) => sealedOf(value, false));
  const paths: { name: string; description: string; run: () => Promise<number> }[] = [
    {
      name: 'cipher.decrypt',
      description: 'FieldCipher.decrypt of one stored value, awaited one after the other (AES-256-GCM, data key cached)',
      run: async () => {
        let length = 0;
        for (const value of values) length += (await cipher.decrypt(value.stored, value.location)).length;
        return length;
      },
    },
    {
      name: 'unseal encrypted',
      description: 'unseal() of a one-column encrypted field, the step the API runs per @encrypted field (crypto_version 1)',
      run: async () => {
        let length = 0;
        for (const field of encryptedFields) length += ((await unseal(field, cipher)) ?? '').length;
        return length;
      },
    },
    {
      name: 'plaintext read',
      description: 'the same field stored as plaintext (crypto_version 0) read as the benchmark\'s plaintext copies are: UTF-8 decoding only',
      run: () => {
        let length = 0;
        for (const field of plaintextFields) length += (openPlaintextForBenchmark(field) ?? '').length;
        return Promise.resolve(length);
      },
    },
    ...gcmPaths(values),
  ];
  const results: PerValueResult[] = [];
  for (const path of paths) {
    const expected = await path.run();
    const times: number[] = [];
    for (let run = 0; run < runs; run++) {
      const started = performance.now();
      const length = await path.run();
      times.push(((performance.now() - started) * 1000) / values.length);
      if (length !== expected) throw new Error(`${path.name}: the values changed between runs`);
    }
    results.push({ name: path.name, description: path.description, runs: times });
  }
  return results;
}

/**
 * The AES-256-GCM step alone, with each decryptor of src/crypto/aes-gcm.ts:
 * the same plaintexts (the sampled values') sealed under one random key as
 * the API seals them, opened one after the other. The native addon keeps
 * one OpenSSL context per key; node:crypto makes a decipher per value.
 */
function gcmPaths(values: readonly StoredValue[]): { name: string; description: string; run: () => Promise<number> }[] {
  const key = randomBytes(32);
  const head = envelopeHeader(1);
  const sealedValues = values.map((value) => {
    const location = `\u0000${value.location.table}\u0000${value.location.column}\u0000${value.location.rowId}`;
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(Buffer.concat([head, Buffer.from(location, 'utf8')]));
    const ciphertext = Buffer.concat([cipher.update(value.plaintext), cipher.final()]);
    return { stored: Buffer.concat([head, nonce, ciphertext, cipher.getAuthTag()]), location };
  });
  const native = nativeGcm();
  const decryptors: GcmDecryptor[] = 'reason' in native ? [nodeCryptoGcm] : [nodeCryptoGcm, native];
  return decryptors.map((gcm) => ({
    name: `AES-GCM ${gcm.kind}`,
    description: `the AES-256-GCM step alone with the ${gcm.kind === 'native' ? 'native addon (native/aead: one OpenSSL context per key)' : 'node:crypto decipher (one per value)'}${'reason' in native ? ` (native addon not measured: ${native.reason})` : ''}`,
    run: () => {
      let length = 0;
      for (const value of sealedValues) {
        const plaintext = gcm.open(key, value.stored, head.length, value.location);
        if (plaintext === null) throw new Error(`${gcm.kind}: a value did not authenticate`);
        length += plaintext.length;
      }
      return Promise.resolve(length);
    },
  }));
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

interface Facts {
  converted: Record<string, number>;
  conversionSeconds: number;
  bytes: Record<string, number>;
  values: number;
  valueBytes: number;
}

function report(meta: Meta, facts: Facts, results: WorkloadResult[], perValue: PerValueResult[]): string {
  const names = VARIANTS.map((variant) => variant.name);
  const decryptionsColumn: Column = {
    header: `decryptions/request (${names.join(' / ')})`,
    cell: ({ summaries }) => summaries.map((summary) => countCell(summary.decryptions, summary.decryptionsMin, summary.decryptionsMax)).join(' / '),
  };
  const perDecryptionColumn: Column = {
    header: 'µs per decryption (+ms / decryptions)',
    cell: ({ of }) => {
      const encrypted = of(ENCRYPTED);
      const extra = encrypted.median - of(BASELINE).median;
      // Meaningless when a few decryptions drown in the noise of the round.
      return encrypted.decryptions >= 100 && extra > 0 ? ((extra * 1000) / encrypted.decryptions).toFixed(1) : '-';
    },
  };
  const perValueRows = perValue.map((path) => [
    `\`${path.name}\``,
    median(path.runs).toFixed(2),
    `${Math.min(...path.runs).toFixed(2)}-${Math.max(...path.runs).toFixed(2)}`,
    path.description,
  ]);
  const mib = (bytes: number | undefined) => (bytes === undefined ? '?' : `${(bytes / 1024 / 1024).toFixed(1)} MiB`);
  return reportText({
    title: 'Field encryption benchmark',
    meta,
    facts: [
      `- plaintext copy: ${Object.entries(facts.converted)
        .map(([table, count]) => `${table} ${count}`)
        .join(', ')} rows decrypted and stored as plaintext in ${facts.conversionSeconds.toFixed(1)} s; both copies then VACUUM FULL + ANALYZE; ` +
        `encrypted tables ${mib(facts.bytes[ENCRYPTED])} (${ENCRYPTED}) vs ${mib(facts.bytes[PLAINTEXT])} (${PLAINTEXT})`,
    ],
    table: comparisonTable(results, names, BASELINE, [decryptionsColumn, perDecryptionColumn, statementsColumn(names), responseKibColumn(ENCRYPTED)]),
    results,
    sections: [
      'Both variants returned byte-identical bodies in every round (checked). The plaintext API decrypted nothing; the encrypted one decrypted every @encrypted field it served.',
      [
        `One value at a time (${facts.values} patient values of ${(facts.valueBytes / facts.values).toFixed(0)} stored bytes on average, in the encrypted API's process, after the timed rounds; median of ${perValue[0]?.runs.length ?? 0} runs):`,
        '',
        markdownTable(['path', 'µs per value', 'runs min-max', 'what'], perValueRows, ['l', 'r', 'r', 'l']),
      ].join('\n'),
    ],
  });
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

runMain(USAGE, async ({ onStop }) => {
  const argv = process.argv.slice(2);
  const options = parseOptions(argv);
  const run = await startRun(argv, options, VARIANTS, onStop, startVariantsOnCopies);
  const { stack } = run;
  const [encryptedApi, plaintextApi] = stack.apis;
  if (!encryptedApi?.db || !encryptedApi.sealer || !plaintextApi?.db || !plaintextApi.sealer) throw new Error('both APIs need a database and a cipher');

  // The plaintext API is running, so it will not encrypt these rows again (it does so at start only).
  const converting = performance.now();
  const converted = await storeAsPlaintext(plaintextApi.db, plaintextApi.sealer.cipher, options.batch, progress);
  const conversionSeconds = (performance.now() - converting) / 1000;
  for (const api of [encryptedApi, plaintextApi]) await compact(api.db as Database);
  expectOnly(await cryptoVersions(encryptedApi.db), CRYPTO_VERSION_ENCRYPTED, ENCRYPTED);
  expectOnly(await cryptoVersions(plaintextApi.db), 0, PLAINTEXT);
  const bytes = { [ENCRYPTED]: await tableBytes(encryptedApi.db), [PLAINTEXT]: await tableBytes(plaintextApi.db) };
  progress('both copies compacted; the encrypted copy holds ciphertext only, the plaintext copy plaintext only');

  const context = await buildContext(stack);
  const database = await describeDatabase(stack, run.postgresUrl);
  const { results, load } = await runWorkloads(WORKLOADS, context, stack.variants, options, { afterWorkload: checkDecryptions });

  progress(`decrypting ${options.values} values ${options.runs} times`);
  const values = await sampleValues(encryptedApi.db, plaintextApi.db, options.values);
  const perValue = await perValueCost(encryptedApi.sealer.cipher, values, options.runs);

  const meta = runMeta(run, database, load);
  const facts: Facts = { converted, conversionSeconds, bytes, values: values.length, valueBytes: values.reduce((sum, value) => sum + value.stored.length, 0) };
  console.log(report(meta, facts, results, perValue));
  await writeResultsJson(options.json, {
    meta,
    baseline: BASELINE,
    facts,
    results,
    extra: { perValue: perValue.map((path) => ({ ...path, medianMicroseconds: median(path.runs) })) },
  });
});
