/**
 * The synthetic data seeder: fills a fresh database with a deterministic,
 * realistic data set (see generate.ts for what is generated).
 *
 * Patients are generated and written in batches, each batch in its own
 * transaction with multi-row INSERTs, so memory stays flat however many
 * patients are asked for and a failure never leaves half a batch behind.
 * The shared directory (organizations, practitioners, care teams, staff
 * accounts) is written in the first batch's transaction; the consents the
 * sample patient still needs (known only once every patient is generated) in
 * the last batch's.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { EntityManager } from '@mikro-orm/sql';
import { z } from 'zod';
import type { Database } from '../orm.js';
import {
  DEFAULT_SEED,
  MAX_PATIENTS,
  TABLE_COLUMNS,
  TABLE_NAMES,
  appendRows,
  betterHighlights,
  choosePrincipals,
  emptyRows,
  generateDirectory,
  generatePatient,
  highlightPatient,
  sampleConsents,
  type DevelopmentPrincipal,
  type DevelopmentPrincipals,
  type PatientHighlights,
  type SeedRows,
  type TableName,
} from './generate.js';

export {
  DEFAULT_SEED,
  DEVELOPMENT_ROLES,
  MAX_PATIENTS,
  generateDirectory,
  generatePatient,
  isValidNpi,
  type DevelopmentPrincipal,
  type DevelopmentPrincipals,
  type DevelopmentRole,
  type TableName,
} from './generate.js';

export interface SeedOptions {
  patients: number;
  /** Same seed and patient count give byte-identical data. Default DEFAULT_SEED (20261125). */
  seed?: number;
  /** Patients per batch (and per transaction). Default DEFAULT_BATCH_SIZE. */
  batchSize?: number;
  /** Called after every committed batch. */
  onProgress?: (done: number, total: number) => void;
}

export interface SeedSummary {
  patients: number;
  /** Table name -> rows inserted. */
  rows: Record<string, number>;
  principals: DevelopmentPrincipals;
}

export const DEFAULT_BATCH_SIZE = 500;
export const MAX_BATCH_SIZE = 5_000;
/** Bound on the values bound in one INSERT statement (PostgreSQL allows 65,535). */
export const MAX_PARAMETERS_PER_STATEMENT = 29_000;
export const DEVELOPMENT_PRINCIPALS_FILE = 'dev-principals.json';

/** The database already holds data; the seeder only fills a fresh one. */
export class SeedRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SeedRefusedError';
  }
}

// ---------------------------------------------------------------------------
// Seeding
// ---------------------------------------------------------------------------

/** True when the database has no patient rows. */
export async function isDatabaseEmpty(db: Database): Promise<boolean> {
  const [state] = await db.fork().execute<{ present: boolean }[]>('select exists (select 1 from "patient") as "present"');
  return state?.present !== true;
}

/**
 * Generates `options.patients` patients (with their clinical and billing
 * records, consents and accounts) plus the shared directory, and writes them
 * in batches.
 * Refuses (SeedRefusedError) when the database already has patients or
 * organizations, so data is never duplicated or mixed with real records.
 */
export async function seedDatabase(db: Database, options: SeedOptions): Promise<SeedSummary> {
  const { patients, seed, batchSize } = resolveOptions(options);
  await refuseUnlessFresh(db);
  const directory = generateDirectory(seed, patients);
  const counts = Object.fromEntries(TABLE_NAMES.map((table) => [table, 0])) as Record<TableName, number>;
  let sample: PatientHighlights | undefined;
  for (let first = 0; first < patients; first += batchSize) {
    const end = Math.min(first + batchSize, patients);
    const batch = emptyRows();
    if (first === 0) appendRows(batch, directory.rows);
    for (let index = first; index < end; index++) {
      const rows = generatePatient(directory, index);
      sample = betterHighlights(sample, highlightPatient(index, rows));
      appendRows(batch, rows);
    }
    if (end === patients) {
      if (!sample) throw new Error('no patient was generated');
      appendRows(batch, { consent: sampleConsents(directory, sample) });
    }
    await insertBatch(db, batch);
    for (const table of TABLE_NAMES) counts[table] += batch[table].length;
    options.onProgress?.(end, patients);
  }
  if (!sample) throw new Error('no patient was generated');
  return { patients, rows: counts, principals: choosePrincipals(directory, sample) };
}

function resolveOptions(options: SeedOptions): { patients: number; seed: number; batchSize: number } {
  const { patients, seed = DEFAULT_SEED, batchSize = DEFAULT_BATCH_SIZE } = options;
  if (!Number.isInteger(patients) || patients < 1 || patients > MAX_PATIENTS) {
    throw new RangeError(`patients must be an integer from 1 to ${MAX_PATIENTS}, got ${patients}`);
  }
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) {
    throw new RangeError(`batchSize must be an integer from 1 to ${MAX_BATCH_SIZE}, got ${batchSize}`);
  }
  return { patients, seed, batchSize };
}

async function refuseUnlessFresh(db: Database): Promise<void> {
  const [state] = await db
    .fork()
    .execute<{ patients: boolean; organizations: boolean }[]>(
      'select exists (select 1 from "patient") as "patients", exists (select 1 from "organization") as "organizations"',
    );
  if (state?.patients) {
    throw new SeedRefusedError('the database already has patients; the seeder only fills a fresh database and has added nothing');
  }
  if (state?.organizations) {
    throw new SeedRefusedError('the database already has organizations; the seeder only fills a fresh database and has added nothing');
  }
}

/** Writes every row of the batch in one transaction, table by table in foreign-key order. */
async function insertBatch(db: Database, batch: SeedRows): Promise<void> {
  await db.fork().transactional(async (em) => {
    for (const table of TABLE_NAMES) await insertRows(em, table, TABLE_COLUMNS[table], batch[table]);
  });
}

type SqlValue = string | number | null | readonly string[];

/** Multi-row INSERTs of at most MAX_PARAMETERS_PER_STATEMENT values each. */
async function insertRows(
  em: EntityManager,
  table: string,
  columns: readonly string[],
  rows: readonly Readonly<Record<string, SqlValue>>[],
): Promise<void> {
  if (rows.length === 0) return;
  const rowsPerStatement = Math.max(1, Math.floor(MAX_PARAMETERS_PER_STATEMENT / columns.length));
  const head = `insert into "${table}" (${columns.map((column) => `"${column}"`).join(', ')}) values `;
  const tuple = `(${columns.map(() => '?').join(', ')})`;
  for (let start = 0; start < rows.length; start += rowsPerStatement) {
    const chunk = rows.slice(start, start + rowsPerStatement);
    const params = chunk.flatMap((row) => columns.map((column) => toSqlParameter(row[column])));
    await em.execute(head + chunk.map(() => tuple).join(', '), params, 'run');
  }
}

function toSqlParameter(value: SqlValue | undefined): string | number | null {
  if (value === undefined) throw new Error('a generated row is missing a column');
  return isStringArray(value) ? toArrayLiteral(value) : value;
}

function isStringArray(value: SqlValue): value is readonly string[] {
  return Array.isArray(value);
}

/** A PostgreSQL array literal ({"a","b"}) for text[] columns; MikroORM inlines parameters as quoted strings. */
function toArrayLiteral(values: readonly string[]): string {
  const elements = values.map((value) => `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`);
  return `{${elements.join(',')}}`;
}

// ---------------------------------------------------------------------------
// Development principals file
// ---------------------------------------------------------------------------

const principalSchema = z.object({
  subject: z.string().min(1),
  organizationId: z.string().nullable(),
  patientId: z.string().nullable(),
  practitionerId: z.string().nullable(),
}) satisfies z.ZodType<DevelopmentPrincipal>;

const principalsSchema = z.object({
  clinician: principalSchema,
  nurse: principalSchema,
  billing: principalSchema,
  patient: principalSchema,
  researcher: principalSchema,
  partner: principalSchema,
  auditor: principalSchema,
  admin: principalSchema,
  integrator: principalSchema,
}) satisfies z.ZodType<DevelopmentPrincipals>;

export function developmentPrincipalsPath(dataDir: string): string {
  return join(dataDir, DEVELOPMENT_PRINCIPALS_FILE);
}

/** Writes `<dataDir>/dev-principals.json` (atomically) and returns its path. */
export async function writeDevelopmentPrincipals(dataDir: string, principals: DevelopmentPrincipals): Promise<string> {
  const path = developmentPrincipalsPath(dataDir);
  const temporary = `${path}.${process.pid}.tmp`;
  await mkdir(dataDir, { recursive: true });
  await writeFile(temporary, `${JSON.stringify(principals, null, 2)}\n`, { mode: 0o600 });
  await rename(temporary, path);
  return path;
}

/** The principals written by the last seeding, or undefined when there are none. */
export async function readDevelopmentPrincipals(dataDir: string): Promise<DevelopmentPrincipals | undefined> {
  const path = developmentPrincipalsPath(dataDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (error instanceof Error && 'code' in error && error.code === 'ENOENT') return undefined;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`${path} is not valid JSON; delete it and seed a fresh database`, { cause: error });
  }
  const result = principalsSchema.safeParse(parsed);
  if (!result.success) {
    throw new Error(`${path} does not hold development principals: ${z.prettifyError(result.error)}`);
  }
  return result.data;
}
