/**
 * What the audit trail costs: the same operations, on the same data, sent
 * to the fully protected API (field rules, masking, field encryption) with
 * its audit plugin ("audited": each subgraph request writes one hash-chained
 * batch of audit events in one SQL statement at willSendResponse, and the
 * response waits) and without it ("unaudited", unauditedForBenchmark),
 * both running at once on one database, interleaved request by request.
 * Counts the audit rows written per request and verifies the hash chain at
 * the end.
 *
 *   npm run bench:audit -- [--patients 3000] [--rounds 20] [--warmup 3]
 *                          [--database pglite|postgres] [--json results.json]
 *                          [--only dashboard-1000,chart]
 *
 * See bench/README.md for what each workload is and how to read the figures.
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { verifyAuditChain, type ChainReport } from '../src/audit/index.js';
import type { Database } from '../src/db/index.js';
import {
  LOCAL_POSTGRES,
  UsageError,
  commandLine,
  describeDatabase,
  edgesAt,
  environmentFacts,
  formatMs,
  integer,
  largestOrganization,
  loadAverage,
  markdownTable,
  metaLines,
  percentile,
  prepareWorkload,
  progress,
  roundRatios,
  runInterleaved,
  runMain,
  startVariants,
  summarize,
  timedPost,
  workloadNames,
  writeJson,
  type BenchStack,
  type DatabaseChoice,
  type Meta,
  type Variant,
  type VariantSpec,
  type Workload,
  type WorkloadResult,
} from './support.js';

/** Both variants are the fully protected API (field rules, masking, decryption step); only the audit plugin differs. */
const AUDITED = 'audited';
const UNAUDITED = 'unaudited';
const VARIANTS: VariantSpec[] = [
  { name: AUDITED, unprotected: false, unaudited: false },
  { name: UNAUDITED, unprotected: false, unaudited: true },
];
/** Ratios are variant / BASELINE. */
const BASELINE = UNAUDITED;

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

interface Options {
  patients: number;
  rounds: number;
  warmup: number;
  database: DatabaseChoice;
  json: string | undefined;
  only: string[] | undefined;
}

const USAGE = 'usage: npm run bench:audit -- [--patients N] [--rounds N] [--warmup N] [--database pglite|postgres] [--json PATH] [--only NAME,...]';

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      patients: { type: 'string', default: '3000' },
      rounds: { type: 'string', default: '20' },
      warmup: { type: 'string', default: '3' },
      database: { type: 'string' },
      json: { type: 'string' },
      only: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const database = values.database ?? (process.env['DATABASE_URL'] ? 'postgres' : 'pglite');
  if (database !== 'postgres' && database !== 'pglite') throw new UsageError(`--database must be pglite or postgres, got ${database}`);
  return {
    patients: integer('patients', values.patients, 1),
    rounds: integer('rounds', values.rounds, 1),
    warmup: integer('warmup', values.warmup, 0),
    database,
    json: values.json,
    only: workloadNames(
      values.only,
      WORKLOADS.map((workload) => workload.name),
    ),
  };
}

// ---------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------

interface Context {
  stack: BenchStack;
  organization: Awaited<ReturnType<typeof largestOrganization>>;
}

const DASHBOARD_SIZE = 1000;
/** Ten patient fields (as in the encryption benchmark's dashboard-1000); the SSN is masked for billing. */
const DASHBOARD_FIELDS = 'id mrn name { given family } birthDate gender ssn address { city state postalCode } phone email';
/** Eight patient fields a billing list shows. */
const LIST_FIELDS = 'id mrn name { given family } birthDate gender address { city state postalCode } phone email';
/** The authorization benchmark's chart: six lists from the clinical and billing subgraphs. */
const CHART_LISTS = {
  encounters: 'id status class period { start end }',
  conditions: 'id clinicalStatus code { code display } onsetDate',
  medicationRequests: 'id status medication { code display } authoredOn',
  observations: 'id code { code display } value unit effectiveAt',
  clinicalNotes: 'id type { display } createdAt',
  coverages: 'id payer plan status period { start end }',
} as const;

async function billingToken(context: Context): Promise<string> {
  const { stack, organization } = context;
  return stack.token('billing', {
    organizationId: organization.id,
    ...(organization.billingSubject && { subject: organization.billingSubject }),
  });
}

const WORKLOADS: Workload<Context>[] = [
  {
    name: 'dashboard-1000',
    description: `billing: patients(first: ${DASHBOARD_SIZE}), 10 fields (SSN masked), through the gateway`,
    async prepare(context) {
      const expected = Math.min(DASHBOARD_SIZE, context.organization.patients);
      return {
        url: (variant) => variant.gatewayUrl,
        token: await billingToken(context),
        query: `query Dashboard { patients(first: ${DASHBOARD_SIZE}) { edges { node { ${DASHBOARD_FIELDS} } } } }`,
        rows: (data) => edgesAt(data, 'patients'),
        sameBody: true,
        notes: [
          `billing token of ${context.organization.name} (${context.organization.patients} patients): ${expected} rows per response` +
            (expected < DASHBOARD_SIZE ? ` (fewer than ${DASHBOARD_SIZE}: raise --patients for a full page)` : ''),
        ],
      };
    },
  },
  {
    name: 'partner-list',
    description: 'billing: patients(first: 50), 8 fields, through the gateway',
    async prepare(context) {
      return {
        url: (variant) => variant.gatewayUrl,
        token: await billingToken(context),
        query: `query PartnerList { patients(first: 50) { edges { node { ${LIST_FIELDS} } } } }`,
        rows: (data) => edgesAt(data, 'patients'),
        sameBody: true,
      };
    },
  },
  {
    name: 'chart',
    description: 'clinician: one patient with six lists (first 10 of each) from all three subgraphs, through the gateway',
    async prepare({ stack }) {
      const patientId = stack.principals.patient.patientId;
      if (!patientId) throw new Error('the development principals name no sample patient');
      const lists = Object.entries(CHART_LISTS)
        .map(([field, selection]) => `${field}(first: 10) { edges { node { ${selection} } } }`)
        .join(' ');
      return {
        url: (variant) => variant.gatewayUrl,
        // The sample clinician is on the sample patient's care team.
        token: await stack.token('clinician'),
        query: `query Chart($id: ID!) { patient(id: $id) { id name { given family } ${lists} } }`,
        variables: { id: patientId },
        rows: (data) => (data['patient'] ? 1 + Object.keys(CHART_LISTS).reduce((sum, field) => sum + edgesAt(data, 'patient', field), 0) : 0),
        sameBody: true,
        notes: ["sample clinician, sample patient (on that clinician's care team)"],
      };
    },
  },
];

// ---------------------------------------------------------------------------
// Audit rows
// ---------------------------------------------------------------------------

/** What the audit tables and the variants' audit plugins hold at one moment. */
interface AuditCounts {
  events: number;
  batches: number;
  /** Batches holding AccessAlert events (written by the access watch, not by the plugin's own write). */
  alertBatches: number;
  /** Variant name -> batches its audit plugins wrote / failed to write so far. */
  writes: Record<string, number>;
  failures: Record<string, number>;
}

async function auditCounts(db: Database, variants: readonly Variant[]): Promise<AuditCounts> {
  const [row] = await db.fork().execute<{ events: number; batches: number; alert_batches: number }[]>(
    `select (select count(*) from "audit_event")::int as "events", (select count(*) from "audit_batch")::int as "batches",
            (select count(distinct "batch_sequence") from "audit_event" where "entity_type" = 'AccessAlert')::int as "alert_batches"`,
  );
  if (!row) throw new Error('the audit tables could not be counted');
  return {
    events: Number(row.events),
    batches: Number(row.batches),
    alertBatches: Number(row.alert_batches),
    writes: Object.fromEntries(variants.map((variant) => [variant.name, variant.auditMetrics.writes])),
    failures: Object.fromEntries(variants.map((variant) => [variant.name, variant.auditMetrics.failures])),
  };
}

/** Audit rows written during a workload's timed rounds. */
interface AuditWritten {
  /** Timed requests sent to the audited variant. */
  requests: number;
  events: number;
  batches: number;
  alertBatches: number;
  /** Variant name -> batches its audit plugins wrote. */
  writes: Record<string, number>;
}

/**
 * The change across the timed rounds, checked: the unaudited variant wrote
 * nothing, no write failed, and every new batch is one the audited
 * variant's plugin wrote or an access alert it raised, so the rows are all
 * the audited variant's.
 */
function written(name: string, before: AuditCounts, after: AuditCounts, requests: number): AuditWritten {
  const writes = Object.fromEntries(Object.keys(after.writes).map((variant) => [variant, (after.writes[variant] ?? 0) - (before.writes[variant] ?? 0)]));
  for (const variant of Object.keys(after.failures)) {
    const failed = (after.failures[variant] ?? 0) - (before.failures[variant] ?? 0);
    if (failed !== 0) throw new Error(`${name}: variant "${variant}" failed to write ${failed} audit batches`);
  }
  const result = {
    requests,
    events: after.events - before.events,
    batches: after.batches - before.batches,
    alertBatches: after.alertBatches - before.alertBatches,
    writes,
  };
  if ((writes[UNAUDITED] ?? 0) !== 0) throw new Error(`${name}: the unaudited variant wrote ${writes[UNAUDITED]} audit batches`);
  if ((writes[AUDITED] ?? 0) < requests) throw new Error(`${name}: the audited variant wrote ${writes[AUDITED]} audit batches for ${requests} requests`);
  if (result.batches - result.alertBatches !== writes[AUDITED]) {
    throw new Error(`${name}: ${result.batches} new audit batches (${result.alertBatches} of alerts), but the audited variant wrote ${writes[AUDITED]}`);
  }
  return result;
}

/**
 * The variants must really differ before anything is timed: a request to
 * the unaudited API adds no audit row, the same request to the audited API
 * adds at least one batch.
 */
async function checkVariantsDiffer(stack: BenchStack, context: Context): Promise<void> {
  const token = await billingToken(context);
  const query = 'query Probe { patients(first: 5) { edges { node { id mrn } } } }';
  for (const variant of stack.variants) {
    const before = await auditCounts(stack.db, stack.variants);
    const response = await timedPost(variant.gatewayUrl, token, query);
    if (response.status !== 200 || response.body.errors) throw new Error(`the probe failed on "${variant.name}": ${response.text.slice(0, 500)}`);
    const after = await auditCounts(stack.db, stack.variants);
    const added = after.batches - before.batches;
    if (variant.name === UNAUDITED ? added !== 0 : added < 1) {
      throw new Error(`variant "${variant.name}" does not behave as ${variant.name} (one request added ${added} audit batches)`);
    }
  }
}

/** Bytes of the audit tables (heap, TOAST and indexes). */
async function auditBytes(db: Database): Promise<number> {
  const [row] = await db
    .fork()
    .execute<{ bytes: string }[]>(`select (pg_total_relation_size('"audit_event"') + pg_total_relation_size('"audit_batch"'))::bigint::text as "bytes"`);
  return Number(row?.bytes ?? 0);
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

interface Facts {
  chain: ChainReport;
  verifySeconds: number;
  auditBytes: number;
  auditEvents: number;
}

function perRequest(count: number, requests: number): string {
  if (requests === 0) return '-';
  const value = count / requests;
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}

function countCell(median: number, min: number, max: number): string {
  return min === max ? String(median) : `${median} (${min}-${max})`;
}

function report(meta: Meta, facts: Facts, results: WorkloadResult[], audit: Record<string, AuditWritten>): string {
  const names = VARIANTS.map((variant) => variant.name);
  const header = [
    'workload',
    'rows',
    ...names.flatMap((name) => [`${name} median ms`, `${name} p90 ms`]),
    `ratio ${AUDITED}/${BASELINE}`,
    'round ratios p25-p75',
    `+ms ${AUDITED}`,
    `SQL/request (${names.join(' / ')})`,
    'audit events/request',
    'audit batches/request',
    'KiB/response',
  ];
  const rows = results.map((result) => {
    const summaries = names.map((name) => summarize(result.samples[name] ?? []));
    const audited = summarize(result.samples[AUDITED] ?? []);
    const baseline = summarize(result.samples[BASELINE] ?? []);
    const ratios = roundRatios(result.samples[AUDITED] ?? [], result.samples[BASELINE] ?? []);
    const rowsWritten = audit[result.name];
    return [
      result.name,
      String(summaries[0]?.rows ?? 0),
      ...summaries.flatMap((summary) => [formatMs(summary.median), formatMs(summary.p90)]),
      `${(audited.median / baseline.median).toFixed(2)}x`,
      `${percentile(ratios, 25).toFixed(2)}-${percentile(ratios, 75).toFixed(2)}`,
      formatMs(audited.median - baseline.median),
      summaries.map((summary) => countCell(summary.statements, summary.statementsMin, summary.statementsMax)).join(' / '),
      rowsWritten ? perRequest(rowsWritten.events, rowsWritten.requests) : '-',
      rowsWritten ? perRequest(rowsWritten.batches, rowsWritten.requests) : '-',
      (audited.bytes / 1024).toFixed(1),
    ];
  });
  const alerts = results.flatMap((result) => {
    const rowsWritten = audit[result.name];
    return rowsWritten && rowsWritten.alertBatches > 0 ? [`${result.name}: ${rowsWritten.alertBatches} access-alert batch(es) among them`] : [];
  });
  const { chain } = facts;
  const lines = [
    '# Audit trail benchmark',
    '',
    ...metaLines(meta),
    '',
    markdownTable(header, rows, header.map((_, index) => (index === 0 ? 'l' : 'r'))),
    '',
    'Workloads:',
    ...results.map((result) => `- \`${result.name}\`: ${result.description}${result.notes.length > 0 ? `; ${result.notes.join('; ')}` : ''}`),
    '',
    'Both variants returned byte-identical bodies in every round, warm-up included (checked). ' +
      'Audit events and batches per request: rows added to `audit_event` / `audit_batch` during the timed rounds, divided by the requests sent to the audited variant; ' +
      'the unaudited variant wrote none (checked), and every new batch was written by the audited variant' +
      (alerts.length > 0 ? ` (${alerts.join('; ')})` : '') +
      '.',
    '',
    `Audit chain at the end: ${chain.ok ? 'intact' : 'BROKEN'}, ${chain.batches} batches, ${chain.events} events, verified in ${facts.verifySeconds.toFixed(1)} s. ` +
      `Audit tables: ${(facts.auditBytes / 1024 / 1024).toFixed(1)} MiB` +
      (facts.auditEvents > 0 ? ` (${Math.round(facts.auditBytes / facts.auditEvents)} bytes per event, indexes included).` : '.'),
    '',
    'Latency is wall clock around fetch and reading the body. Ratios compare medians of the same run; compare ratios across runs, not milliseconds.',
  ];
  if (meta.seconds !== undefined) lines.push('', `Run time: ${meta.seconds.toFixed(0)} s.`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

runMain(USAGE, async ({ onStop }) => {
  const argv = process.argv.slice(2);
  const options = parseOptions(argv);
  const began = performance.now();
  const postgresUrl = process.env['DATABASE_URL'] || LOCAL_POSTGRES;
  if (options.database === 'pglite' && !process.env['DATABASE_URL']) {
    progress('using PGlite (set DATABASE_URL or pass --database postgres for the PostgreSQL figures)');
  }
  const stack = await startVariants({
    database: options.database,
    postgresUrl,
    redisUrl: process.env['REDIS_URL'] || undefined,
    patients: options.patients,
    variants: VARIANTS,
    log: progress,
    onStop,
  });
  const context: Context = { stack, organization: await largestOrganization(stack.db) };
  await checkVariantsDiffer(stack, context);
  const database = await describeDatabase(stack, postgresUrl);

  const results: WorkloadResult[] = [];
  const audit: Record<string, AuditWritten> = {};
  const loadBefore = loadAverage();
  for (const workload of WORKLOADS.filter((candidate) => !options.only || options.only.includes(candidate.name))) {
    const prepared = await prepareWorkload(workload, context);
    let before: AuditCounts | undefined;
    const result = await runInterleaved(prepared, stack.variants, {
      rounds: options.rounds,
      warmup: options.warmup,
      log: progress,
      beforeTimedRounds: async () => {
        before = await auditCounts(stack.db, stack.variants);
      },
    });
    if (!before) throw new Error(`${workload.name}: the audit rows were not counted before the timed rounds`);
    const requests = result.samples[AUDITED]?.length ?? 0;
    audit[workload.name] = written(workload.name, before, await auditCounts(stack.db, stack.variants), requests);
    results.push(result);
  }
  const loadAfter = loadAverage();

  progress('verifying the audit chain');
  const verifying = performance.now();
  const chain = await verifyAuditChain(stack.db);
  const verifySeconds = (performance.now() - verifying) / 1000;
  const finalCounts = await auditCounts(stack.db, stack.variants);
  const facts: Facts = { chain, verifySeconds, auditBytes: await auditBytes(stack.db), auditEvents: finalCounts.events };

  const meta: Meta = {
    command: commandLine(argv),
    date: new Date().toISOString(),
    ...environmentFacts(),
    load: [loadBefore, loadAfter],
    database,
    sharing: stack.sharing,
    cache: stack.cacheKind,
    patients: options.patients,
    rounds: options.rounds,
    warmup: options.warmup,
    seconds: (performance.now() - began) / 1000,
  };
  console.log(report(meta, facts, results, audit));
  if (options.json) {
    await writeJson(options.json, {
      meta,
      baseline: BASELINE,
      facts,
      workloads: results.map((result) => ({
        ...result,
        audit: audit[result.name],
        summary: Object.fromEntries(Object.entries(result.samples).map(([name, samples]) => [name, summarize(samples)])),
      })),
    });
    progress(`raw results written to ${options.json}`);
  }
  if (!chain.ok || chain.events !== finalCounts.events || chain.batches !== finalCounts.batches) {
    const shown = chain.problems.slice(0, 5).map((problem) => `batch ${problem.sequence}: ${problem.problem}`);
    throw new Error(
      `the audit chain is broken: ${chain.problems.length} problem(s)${shown.length > 0 ? ` (${shown.join('; ')})` : ''}; ` +
        `verified ${chain.batches} batches / ${chain.events} events of ${finalCounts.batches} / ${finalCounts.events} stored`,
    );
  }
});
