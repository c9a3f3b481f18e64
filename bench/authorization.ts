/**
 * What field-level authorization costs: the same operations, on the same
 * data, sent to the API with the access policy enforced ("protected") and
 * without the graphql-shield field rules ("unprotected"; row scopes still
 * apply), interleaved request by request in one run.
 *
 *   npm run bench -- [--patients 2000] [--rounds 15] [--warmup 3]
 *                    [--database pglite|postgres] [--json results.json]
 *                    [--only dashboard,chart]
 *
 * See bench/README.md for what each workload is and how to read the ratios.
 */
import {
  describeDatabase,
  parseBenchOptions,
  runMain,
  runMeta,
  runWorkloads,
  startRun,
  startVariants,
  type BenchStack,
  type Meta,
  type VariantSpec,
  type Workload,
  type WorkloadResult,
} from './support.js';
import { comparisonTable, reportText, statementsColumn, writeResultsJson } from './report.js';
import { CLINICIAN_CHART_LISTS, DASHBOARD_SIZE, LIST_FIELDS, buildContext, chart, dashboard, partnerList, type Context } from './workloads.js';

const VARIANTS: VariantSpec[] = [
  { name: 'protected', unprotected: false },
  { name: 'unprotected', unprotected: true },
];
/** Ratios are variant / BASELINE. */
const BASELINE = 'unprotected';

const USAGE = `usage: npm run bench -- [--patients N] [--rounds N] [--warmup N] [--database pglite|postgres] [--json PATH] [--only NAME,...]`;

// ---------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------

/** The list fields and two more: the organization (a second entity) and the SSN (masked for billing: the masking step runs). */
const DASHBOARD_FIELDS = `${LIST_FIELDS} managingOrganization { name } ssn`;

const WORKLOADS: Workload<Context>[] = [
  partnerList({ description: `billing: patients(first: 50), 8 fields, through the gateway` }),
  dashboard({ name: 'dashboard', description: `billing: patients(first: ${DASHBOARD_SIZE}), 10 fields, through the gateway`, fields: DASHBOARD_FIELDS }),
  chart({
    description: 'clinician: one patient with six lists from all three subgraphs, through the gateway',
    lists: CLINICIAN_CHART_LISTS,
    // The sample clinician is on the sample patient's care team.
    role: 'clinician',
    notes: ["sample clinician, sample patient (on that clinician's care team), first 10 of each list"],
  }),
  dashboard({
    name: 'dashboard-subgraph',
    description: `the dashboard sent straight to the patient subgraph (no gateway)`,
    fields: DASHBOARD_FIELDS,
    target: 'patient',
  }),
];

/** The variants must really differ: a billing token reading clinical data is refused by the protected API only. */
async function checkVariantsDiffer(stack: BenchStack): Promise<void> {
  const patientId = stack.principals.patient.patientId;
  const token = await stack.token('billing', { organizationId: stack.principals.patient.organizationId });
  for (const variant of stack.variants) {
    const response = await fetch(variant.gatewayUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: 'query($id: ID!) { patient(id: $id) { ssn encounters(first: 1) { edges { node { id } } } } }', variables: { id: patientId } }),
    });
    const body = (await response.json()) as { data?: { patient?: { ssn?: string | null } | null }; errors?: { extensions?: { code?: string } }[] };
    const refused = (body.errors ?? []).some((error) => error.extensions?.code === 'FORBIDDEN');
    const masked = body.data?.patient?.ssn?.startsWith('***') ?? false;
    const expectProtected = !VARIANTS.find((spec) => spec.name === variant.name)?.unprotected;
    if (refused !== expectProtected || masked !== expectProtected) {
      throw new Error(`variant "${variant.name}" does not behave as ${expectProtected ? 'protected' : 'unprotected'} (refused: ${refused}, masked SSN: ${masked})`);
    }
  }
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

function report(meta: Meta, results: WorkloadResult[]): string {
  const names = VARIANTS.map((variant) => variant.name);
  return reportText({
    title: 'Field authorization benchmark',
    meta,
    table: comparisonTable(results, names, BASELINE, [statementsColumn(names)]),
    results,
  });
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

runMain(USAGE, async ({ onStop }) => {
  const argv = process.argv.slice(2);
  const options = parseBenchOptions(argv, {
    usage: USAGE,
    patients: '2000',
    rounds: '15',
    workloads: WORKLOADS.map((workload) => workload.name),
  });
  const run = await startRun(argv, options, VARIANTS, onStop, startVariants);
  const { stack } = run;
  await checkVariantsDiffer(stack);
  const context = await buildContext(stack);
  const database = await describeDatabase(stack, run.postgresUrl);
  const { results, load } = await runWorkloads(WORKLOADS, context, stack.variants, options);
  const meta = runMeta(run, database, load);
  console.log(report(meta, results));
  await writeResultsJson(options.json, { meta, baseline: BASELINE, results });
});
