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
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import {
  LOCAL_POSTGRES,
  UsageError,
  commandLine,
  describeDatabase,
  edgesAt,
  environmentFacts,
  integer,
  largestOrganization,
  loadAverage,
  formatMs,
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
  workloadNames,
  writeJson,
  type BenchStack,
  type DatabaseChoice,
  type Meta,
  type VariantSpec,
  type Workload,
  type WorkloadResult,
} from './support.js';

const VARIANTS: VariantSpec[] = [
  { name: 'protected', unprotected: false },
  { name: 'unprotected', unprotected: true },
];
/** Ratios are variant / BASELINE. */
const BASELINE = 'unprotected';

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

const USAGE = `usage: npm run bench -- [--patients N] [--rounds N] [--warmup N] [--database pglite|postgres] [--json PATH] [--only NAME,...]`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      patients: { type: 'string', default: '2000' },
      rounds: { type: 'string', default: '15' },
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
  const only = workloadNames(
    values.only,
    WORKLOADS.map((workload) => workload.name),
  );
  return {
    patients: integer('patients', values.patients, 1),
    rounds: integer('rounds', values.rounds, 1),
    warmup: integer('warmup', values.warmup, 0),
    database,
    json: values.json,
    only,
  };
}

// ---------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------

/** What the workloads need to build their operations and tokens. */
interface Context {
  stack: BenchStack;
  /** The organization holding the most patients, and a billing specialist account of it. */
  organization: { id: string; name: string; patients: number; billingSubject: string | undefined };
}

/** Eight patient fields a billing list shows. */
const LIST_FIELDS = 'id mrn name { given family } birthDate gender address { city state postalCode } phone email';
/** The same and two more: the organization (a second entity) and the SSN (masked for billing: the masking step runs). */
const DASHBOARD_FIELDS = `${LIST_FIELDS} managingOrganization { name } ssn`;

const DASHBOARD_SIZE = 1000;

async function billingToken(context: Context): Promise<string> {
  const { stack, organization } = context;
  return stack.token('billing', {
    organizationId: organization.id,
    ...(organization.billingSubject && { subject: organization.billingSubject }),
  });
}

function dashboard(name: string, description: string, target: 'gateway' | 'patient'): Workload<Context> {
  return {
    name,
    description,
    async prepare(context) {
      const expected = Math.min(DASHBOARD_SIZE, context.organization.patients);
      return {
        url: (variant) => (target === 'gateway' ? variant.gatewayUrl : variant.subgraphUrls.patient),
        token: await billingToken(context),
        query: `query Dashboard { patients(first: ${DASHBOARD_SIZE}) { edges { node { ${DASHBOARD_FIELDS} } } } }`,
        rows: (data) => edgesAt(data, 'patients'),
        notes: [
          `billing token of ${context.organization.name} (${context.organization.patients} patients): ${expected} rows per response` +
            (expected < DASHBOARD_SIZE ? ` (fewer than ${DASHBOARD_SIZE}: raise --patients for a full page)` : ''),
        ],
      };
    },
  };
}

const CHART_LISTS = {
  encounters: 'id status class period { start end }',
  conditions: 'id clinicalStatus code { code display } onsetDate',
  medicationRequests: 'id status medication { code display } authoredOn',
  observations: 'id code { code display } value unit effectiveAt',
  clinicalNotes: 'id type { display } createdAt',
  coverages: 'id payer plan status period { start end }',
} as const;

const WORKLOADS: Workload<Context>[] = [
  {
    name: 'partner-list',
    description: `billing: patients(first: 50), 8 fields, through the gateway`,
    async prepare(context) {
      return {
        url: (variant) => variant.gatewayUrl,
        token: await billingToken(context),
        query: `query PartnerList { patients(first: 50) { edges { node { ${LIST_FIELDS} } } } }`,
        rows: (data) => edgesAt(data, 'patients'),
      };
    },
  },
  dashboard('dashboard', `billing: patients(first: ${DASHBOARD_SIZE}), 10 fields, through the gateway`, 'gateway'),
  {
    name: 'chart',
    description: 'clinician: one patient with six lists from all three subgraphs, through the gateway',
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
        notes: ['sample clinician, sample patient (on that clinician\'s care team), first 10 of each list'],
      };
    },
  },
  dashboard('dashboard-subgraph', `the dashboard sent straight to the patient subgraph (no gateway)`, 'patient'),
];

async function buildContext(stack: BenchStack): Promise<Context> {
  return { stack, organization: await largestOrganization(stack.db) };
}

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
  const compared = names.filter((name) => name !== BASELINE);
  const header = [
    'workload',
    'rows',
    ...names.flatMap((name) => [`${name} median ms`, `${name} p90 ms`]),
    ...compared.map((name) => `ratio ${name}/${BASELINE}`),
    ...compared.map(() => 'round ratios p25-p75'),
    ...compared.map((name) => `+ms ${name}`),
    `SQL/request (${names.join(' / ')})`,
  ];
  const rows = results.map((result) => {
    const summaries = names.map((name) => summarize(result.samples[name] ?? []));
    const baseline = summarize(result.samples[BASELINE] ?? []);
    const statements = summaries.map((summary) =>
      summary.statementsMin === summary.statementsMax ? String(summary.statements) : `${summary.statements} (${summary.statementsMin}-${summary.statementsMax})`,
    );
    return [
      result.name,
      String(summaries[0]?.rows ?? 0),
      ...summaries.flatMap((summary) => [formatMs(summary.median), formatMs(summary.p90)]),
      ...compared.map((name) => `${(summarize(result.samples[name] ?? []).median / baseline.median).toFixed(2)}x`),
      ...compared.map((name) => {
        const ratios = roundRatios(result.samples[name] ?? [], result.samples[BASELINE] ?? []);
        return `${percentile(ratios, 25).toFixed(2)}-${percentile(ratios, 75).toFixed(2)}`;
      }),
      ...compared.map((name) => formatMs(summarize(result.samples[name] ?? []).median - baseline.median)),
      statements.join(' / '),
    ];
  });
  const lines = [
    '# Field authorization benchmark',
    '',
    ...metaLines(meta),
    '',
    markdownTable(header, rows, header.map((_, index) => (index === 0 ? 'l' : 'r'))),
    '',
    'Workloads:',
    ...results.map((result) => `- \`${result.name}\`: ${result.description}${result.notes.length > 0 ? `; ${result.notes.join('; ')}` : ''}`),
    '',
    `Latency is wall clock around fetch and reading the body. Ratios compare medians of the same run; compare ratios across runs, not milliseconds.`,
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
  await checkVariantsDiffer(stack);
  const context = await buildContext(stack);
  const database = await describeDatabase(stack, postgresUrl);
  const results: WorkloadResult[] = [];
  const loadBefore = loadAverage();
  for (const workload of WORKLOADS.filter((candidate) => !options.only || options.only.includes(candidate.name))) {
    const prepared = await prepareWorkload(workload, context);
    results.push(await runInterleaved(prepared, stack.variants, { rounds: options.rounds, warmup: options.warmup, log: progress }));
  }
  const meta: Meta = {
    command: commandLine(argv),
    date: new Date().toISOString(),
    ...environmentFacts(),
    load: [loadBefore, loadAverage()],
    database,
    sharing: stack.sharing,
    cache: stack.cacheKind,
    patients: options.patients,
    rounds: options.rounds,
    warmup: options.warmup,
    seconds: (performance.now() - began) / 1000,
  };
  console.log(report(meta, results));
  if (options.json) {
    await writeJson(options.json, {
      meta,
      baseline: BASELINE,
      workloads: results.map((result) => ({
        ...result,
        summary: Object.fromEntries(Object.entries(result.samples).map(([name, samples]) => [name, summarize(samples)])),
      })),
    });
    progress(`raw results written to ${options.json}`);
  }
});
