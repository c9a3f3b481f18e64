import { formatMs, markdownTable, metaLines, percentile, progress, roundRatios, summarize, writeJson, type Meta, type VariantSummary, type WorkloadResult } from './support.js';

/**
 * The report and the JSON the benchmarks share: one table row per workload
 * comparing every variant with the baseline, then each benchmark's own
 * columns; the run facts, the workload list and the closing notes around it.
 */

/** A count per request: the median, with the range when the requests differed. */
export function countCell(median: number, min: number, max: number): string {
  return min === max ? String(median) : `${median} (${min}-${max})`;
}

/** One workload's figures, for the cells of its row. */
export interface ResultRow {
  result: WorkloadResult;
  /** One summary per variant, in the order of the table's variant names. */
  summaries: VariantSummary[];
  /** The summary of the named variant. */
  of: (name: string) => VariantSummary;
}

/** A column of a benchmark's own, after the shared ones. */
export interface Column {
  header: string;
  cell(row: ResultRow): string;
}

/** SQL statements per request of every variant. */
export function statementsColumn(names: readonly string[]): Column {
  return {
    header: `SQL/request (${names.join(' / ')})`,
    cell: ({ summaries }) => summaries.map((summary) => countCell(summary.statements, summary.statementsMin, summary.statementsMax)).join(' / '),
  };
}

/** The median size of the named variant's responses. */
export function responseKibColumn(name: string): Column {
  return { header: 'KiB/response', cell: ({ of }) => (of(name).bytes / 1024).toFixed(1) };
}

/**
 * The report's table, one row per workload: the rows returned, each
 * variant's median and p90 latency, and for each variant other than the
 * baseline the ratio of the medians, the p25-p75 of the round ratios and
 * the extra milliseconds; then `columns`.
 */
export function comparisonTable(results: readonly WorkloadResult[], names: readonly string[], baseline: string, columns: readonly Column[]): string {
  const compared = names.filter((name) => name !== baseline);
  const header = [
    'workload',
    'rows',
    ...names.flatMap((name) => [`${name} median ms`, `${name} p90 ms`]),
    ...compared.map((name) => `ratio ${name}/${baseline}`),
    ...compared.map(() => 'round ratios p25-p75'),
    ...compared.map((name) => `+ms ${name}`),
    ...columns.map((column) => column.header),
  ];
  const rows = results.map((result) => {
    const of = (name: string) => summarize(result.samples[name] ?? []);
    const summaries = names.map(of);
    const base = of(baseline);
    return [
      result.name,
      String(summaries[0]?.rows ?? 0),
      ...summaries.flatMap((summary) => [formatMs(summary.median), formatMs(summary.p90)]),
      ...compared.map((name) => `${(of(name).median / base.median).toFixed(2)}x`),
      ...compared.map((name) => {
        const ratios = roundRatios(result.samples[name] ?? [], result.samples[baseline] ?? []);
        return `${percentile(ratios, 25).toFixed(2)}-${percentile(ratios, 75).toFixed(2)}`;
      }),
      ...compared.map((name) => formatMs(of(name).median - base.median)),
      ...columns.map((column) => column.cell({ result, summaries, of })),
    ];
  });
  return markdownTable(header, rows, header.map((_, index) => (index === 0 ? 'l' : 'r')));
}

export interface ReportParts {
  title: string;
  meta: Meta;
  /** Run facts of the benchmark's own, after the shared ones. */
  facts?: string[];
  table: string;
  results: readonly WorkloadResult[];
  /** Paragraphs (or blocks of lines) between the workload list and the closing note. */
  sections?: string[];
}

/** The Markdown report: title, run facts, table, workloads, the benchmark's sections, the latency note and the run time. */
export function reportText(parts: ReportParts): string {
  const { meta, results } = parts;
  const lines = [
    `# ${parts.title}`,
    '',
    ...metaLines(meta),
    ...(parts.facts ?? []),
    '',
    parts.table,
    '',
    'Workloads:',
    ...results.map((result) => `- \`${result.name}\`: ${result.description}${result.notes.length > 0 ? `; ${result.notes.join('; ')}` : ''}`),
    '',
    ...(parts.sections ?? []).flatMap((section) => [section, '']),
    'Latency is wall clock around fetch and reading the body. Ratios compare medians of the same run; compare ratios across runs, not milliseconds.',
  ];
  if (meta.seconds !== undefined) lines.push('', `Run time: ${meta.seconds.toFixed(0)} s.`);
  return lines.join('\n');
}

export interface ResultsJson {
  meta: Meta;
  baseline: string;
  facts?: unknown;
  results: readonly WorkloadResult[];
  /** More of a workload's entry, between its samples and its summary. */
  perWorkload?: (result: WorkloadResult) => Record<string, unknown>;
  /** More entries after the workloads. */
  extra?: Record<string, unknown>;
}

/** With --json: every sample, with each workload's summaries, the run facts and the benchmark's own figures. */
export async function writeResultsJson(path: string | undefined, content: ResultsJson): Promise<void> {
  if (!path) return;
  await writeJson(path, {
    meta: content.meta,
    baseline: content.baseline,
    ...(content.facts !== undefined && { facts: content.facts }),
    workloads: content.results.map((result) => ({
      ...result,
      ...content.perWorkload?.(result),
      summary: Object.fromEntries(Object.entries(result.samples).map(([name, samples]) => [name, summarize(samples)])),
    })),
    ...content.extra,
  });
  progress(`raw results written to ${path}`);
}
