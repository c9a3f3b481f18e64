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
import { performance } from 'node:perf_hooks';
import { verifyAuditChain, type ChainReport } from '../src/audit/index.js';
import type { Database } from '../src/db/index.js';
import {
  describeDatabase,
  parseBenchOptions,
  progress,
  runMain,
  runMeta,
  runWorkloads,
  startRun,
  startVariants,
  timedPost,
  type BenchStack,
  type Meta,
  type Variant,
  type VariantSpec,
  type Workload,
  type WorkloadResult,
} from './support.js';
import { comparisonTable, reportText, responseKibColumn, statementsColumn, writeResultsJson, type Column } from './report.js';
import { CLINICIAN_CHART_LISTS, DASHBOARD_SIZE, billingToken, buildContext, chart, dashboard, partnerList, type Context } from './workloads.js';

/** Both variants are the fully protected API (field rules, masking, decryption step); only the audit plugin differs. */
const AUDITED = 'audited';
const UNAUDITED = 'unaudited';
const VARIANTS: VariantSpec[] = [
  { name: AUDITED, unprotected: false, unaudited: false },
  { name: UNAUDITED, unprotected: false, unaudited: true },
];
/** Ratios are variant / BASELINE. */
const BASELINE = UNAUDITED;

const USAGE = 'usage: npm run bench:audit -- [--patients N] [--rounds N] [--warmup N] [--database pglite|postgres] [--json PATH] [--only NAME,...]';

// ---------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------

/** Ten patient fields (as in the encryption benchmark's dashboard-1000); the SSN is masked for billing. */
const DASHBOARD_FIELDS = 'id mrn name { given family } birthDate gender ssn address { city state postalCode } phone email';

const WORKLOADS: Workload<Context>[] = [
  dashboard({
    name: 'dashboard-1000',
    description: `billing: patients(first: ${DASHBOARD_SIZE}), 10 fields (SSN masked), through the gateway`,
    fields: DASHBOARD_FIELDS,
    sameBody: true,
  }),
  partnerList({ description: 'billing: patients(first: 50), 8 fields, through the gateway', sameBody: true }),
  // The authorization benchmark's chart: six lists from the clinical and billing subgraphs.
  chart({
    description: 'clinician: one patient with six lists (first 10 of each) from all three subgraphs, through the gateway',
    lists: CLINICIAN_CHART_LISTS,
    // The sample clinician is on the sample patient's care team.
    role: 'clinician',
    sameBody: true,
    notes: ["sample clinician, sample patient (on that clinician's care team)"],
  }),
];

// ---------------------------------------------------------------------------
// Audit rows
// ---------------------------------------------------------------------------

/** What the audit tables and the variants' audit plugins hold at one moment. */
interface AuditCounts {
  /** Events: a stored row of grouped events counts as many. */
  events: number;
  /** Stored audit_event rows. */
  rows: number;
  batches: number;
  /** Batches holding AccessAlert events (written by the access watch, not by the plugin's own write). */
  alertBatches: number;
  /** Variant name -> batches its audit plugins wrote / failed to write so far. */
  writes: Record<string, number>;
  failures: Record<string, number>;
}

async function auditCounts(db: Database, variants: readonly Variant[]): Promise<AuditCounts> {
  const [row] = await db.fork().execute<{ events: number; rows: number; batches: number; alert_batches: number }[]>(
    `select (select coalesce(sum(coalesce(cardinality("patient_ids"), 1)), 0) from "audit_event")::int as "events", (select count(*) from "audit_event")::int as "rows",
            (select count(*) from "audit_batch")::int as "batches",
            (select count(distinct "batch_sequence") from "audit_event" where "entity_type" = 'AccessAlert')::int as "alert_batches"`,
  );
  if (!row) throw new Error('the audit tables could not be counted');
  return {
    events: Number(row.events),
    rows: Number(row.rows),
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
  rows: number;
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
    rows: after.rows - before.rows,
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

function report(meta: Meta, facts: Facts, results: WorkloadResult[], audit: Record<string, AuditWritten>): string {
  const names = VARIANTS.map((variant) => variant.name);
  const auditColumn = (header: string, count: (rowsWritten: AuditWritten) => number): Column => ({
    header,
    cell: ({ result }) => {
      const rowsWritten = audit[result.name];
      return rowsWritten ? perRequest(count(rowsWritten), rowsWritten.requests) : '-';
    },
  });
  const alerts = results.flatMap((result) => {
    const rowsWritten = audit[result.name];
    return rowsWritten && rowsWritten.alertBatches > 0 ? [`${result.name}: ${rowsWritten.alertBatches} access-alert batch(es) among them`] : [];
  });
  const { chain } = facts;
  return reportText({
    title: 'Audit trail benchmark',
    meta,
    table: comparisonTable(results, names, BASELINE, [
      statementsColumn(names),
      auditColumn('audit events/request', (rowsWritten) => rowsWritten.events),
      auditColumn('audit rows/request', (rowsWritten) => rowsWritten.rows),
      auditColumn('audit batches/request', (rowsWritten) => rowsWritten.batches),
      responseKibColumn(AUDITED),
    ]),
    results,
    sections: [
      'Both variants returned byte-identical bodies in every round, warm-up included (checked). ' +
        'Audit events, rows and batches per request: events (a row of grouped events counts as many) and rows added to `audit_event`, and rows added to `audit_batch`, during the timed rounds, divided by the requests sent to the audited variant; ' +
        'the unaudited variant wrote none (checked), and every new batch was written by the audited variant' +
        (alerts.length > 0 ? ` (${alerts.join('; ')})` : '') +
        '.',
      `Audit chain at the end: ${chain.ok ? 'intact' : 'BROKEN'}, ${chain.batches} batches, ${chain.events} events, verified in ${facts.verifySeconds.toFixed(1)} s. ` +
        `Audit tables: ${(facts.auditBytes / 1024 / 1024).toFixed(1)} MiB` +
        (facts.auditEvents > 0 ? ` (${Math.round(facts.auditBytes / facts.auditEvents)} bytes per event, indexes included).` : '.'),
    ],
  });
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

runMain(USAGE, async ({ onStop }) => {
  const argv = process.argv.slice(2);
  const options = parseBenchOptions(argv, {
    usage: USAGE,
    patients: '3000',
    rounds: '20',
    workloads: WORKLOADS.map((workload) => workload.name),
  });
  const run = await startRun(argv, options, VARIANTS, onStop, startVariants);
  const { stack } = run;
  const context = await buildContext(stack);
  await checkVariantsDiffer(stack, context);
  const database = await describeDatabase(stack, run.postgresUrl);

  const audit: Record<string, AuditWritten> = {};
  /** The audit rows when the current workload's timed rounds began. */
  let before: AuditCounts | undefined;
  const { results, load } = await runWorkloads(WORKLOADS, context, stack.variants, options, {
    beforeTimedRounds: async () => {
      before = await auditCounts(stack.db, stack.variants);
    },
    afterWorkload: async (result) => {
      if (!before) throw new Error(`${result.name}: the audit rows were not counted before the timed rounds`);
      const requests = result.samples[AUDITED]?.length ?? 0;
      audit[result.name] = written(result.name, before, await auditCounts(stack.db, stack.variants), requests);
      before = undefined;
    },
  });

  progress('verifying the audit chain');
  const verifying = performance.now();
  const chain = await verifyAuditChain(stack.db);
  const verifySeconds = (performance.now() - verifying) / 1000;
  const finalCounts = await auditCounts(stack.db, stack.variants);
  const facts: Facts = { chain, verifySeconds, auditBytes: await auditBytes(stack.db), auditEvents: finalCounts.events };

  const meta = runMeta(run, database, load);
  console.log(report(meta, facts, results, audit));
  await writeResultsJson(options.json, { meta, baseline: BASELINE, facts, results, perWorkload: (result) => ({ audit: audit[result.name] }) });
  if (!chain.ok || chain.events !== finalCounts.events || chain.batches !== finalCounts.batches) {
    const shown = chain.problems.slice(0, 5).map((problem) => `batch ${problem.sequence}: ${problem.problem}`);
    throw new Error(
      `the audit chain is broken: ${chain.problems.length} problem(s)${shown.length > 0 ? ` (${shown.join('; ')})` : ''}; ` +
        `verified ${chain.batches} batches / ${chain.events} events of ${finalCounts.batches} / ${finalCounts.events} stored`,
    );
  }
});
