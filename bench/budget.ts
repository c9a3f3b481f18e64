import { markdownTable } from './support.js';

/**
 * The performance budget (issue 16; 1.5x in issue 6): full protection
 * (field rules and masking, field encryption, the audit trail) may cost at
 * most `maxRatio` times the unprotected API's median latency, measured in
 * the same run, on the partner page and on the dashboard (both forms).
 * `npm run bench -- --check` exits non-zero when a ratio exceeds it; it is
 * not part of `npm test`. TARGETS are reported beside it, not enforced.
 */

export const BUDGET = {
  /** Median latency of `variant` divided by that of `baseline`, at most. */
  maxRatio: 1.2,
  variant: 'full',
  baseline: 'unprotected',
  /** The workloads (suite names) the budget applies to. */
  workloads: ['partner', 'dashboard', 'dashboard-subgraph'],
} as const;

export interface BudgetLine {
  workload: string;
  /** Undefined when the workload was not run (e.g. --only left it out). */
  ratio: number | undefined;
  pass: boolean | undefined;
}

/** The budget applied to each budgeted workload's median ratio (`medianRatio(workload)` undefined when not measured). */
export function checkBudget(medianRatio: (workload: string) => number | undefined): BudgetLine[] {
  return BUDGET.workloads.map((workload) => {
    const ratio = medianRatio(workload);
    return { workload, ratio, pass: ratio === undefined ? undefined : ratio <= BUDGET.maxRatio };
  });
}

/** True when every measured line passes (lines not measured neither pass nor fail). */
export function budgetHolds(lines: readonly BudgetLine[]): boolean {
  return lines.every((line) => line.pass !== false);
}

/** Issue 16's other targets, reported with a verdict in the budget section. */
export const TARGETS = {
  /** The full variant's median on the 1,000-row dashboard through the gateway, at most (ms). */
  dashboardMedianMs: 100,
  /** Requests per second of the full variant over the unprotected one at the throughput phase's concurrency, at least, on every workload. */
  minThroughputRatio: 0.8,
} as const;

export interface TargetLine {
  target: string;
  measured: string;
  pass: boolean | undefined;
}

export function targetTable(lines: readonly TargetLine[]): string {
  return markdownTable(
    ['target (reported, not enforced by --check)', 'measured', 'verdict'],
    lines.map((line) => [line.target, line.measured, line.pass === undefined ? 'not measured' : line.pass ? 'pass' : '**not met**']),
    ['l', 'r', 'l'],
  );
}

export function budgetTable(lines: readonly BudgetLine[]): string {
  return markdownTable(
    ['workload', `${BUDGET.variant}/${BUDGET.baseline} median`, 'limit', 'verdict'],
    lines.map((line) => [
      line.workload,
      // Three decimals: a ratio just over the limit must not read as the limit.
      line.ratio === undefined ? '-' : `${line.ratio.toFixed(3)}x`,
      `${BUDGET.maxRatio.toFixed(2)}x`,
      line.pass === undefined ? 'not measured' : line.pass ? 'pass' : '**FAIL**',
    ]),
    ['l', 'r', 'r', 'l'],
  );
}
