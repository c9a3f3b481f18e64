/**
 * The synthetic data seeder: fills a fresh database with a deterministic,
 * realistic data set (see generate.ts for what is generated).
 *
 * Patients are generated and written in batches, each batch in its own
 * transaction with multi-row INSERTs, so memory stays flat however many
 * patients are asked for and a failure never leaves half a batch behind.
 * Every batch is sealed (PHI columns encrypted, see stored.ts and
 * db/encryption.ts) before its transaction opens, so the transaction holds
 * only the INSERTs; the first value sealed may create the database's data key
 * (its own statement, outside the batch: a data key alone is harmless).
 * The shared directory (organizations, practitioners, care teams, staff
 * accounts) is written in the first batch's transaction; the consents the
 * sample patient still needs (known only once every patient is generated) in
 * the last batch's.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { EntityManager } from '@mikro-orm/sql';
import { z } from 'zod';
import type { Sealer } from '../encryption.js';
import type { Database } from '../orm.js';
import {
  DEFAULT_SEED,
  MAX_PATIENTS,
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
  type TableName,
} from './generate.js';
import { STORED_COLUMNS, sealBatch, type StoredRow, type StoredRows } from './stored.js';

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
export { PARTNER_ORGANIZATIONS, type PartnerKind, type PartnerOrganizationDefinition } from './vocabulary.js';
export { STORED_COLUMNS, plaintextClaim, plaintextPatient, toPlaintextRow, type PlaintextClaimRow, type PlaintextPatientRow } from './stored.js';

export interface SeedOptions {
  patients: number;
  /** Encrypts the PHI columns (openSealer in db/encryption.ts). */
  sealer: Sealer;
  /**
   * Same seed and patient count give identical data (identical plaintext: the
   * ciphertext differs every time by design). Default DEFAULT_SEED (20261125).
   */
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
    await insertBatch(db, await sealBatch(batch, options.sealer));
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

/** Writes every row of the (sealed) batch in one transaction, table by table in foreign-key order. */
async function insertBatch(db: Database, batch: StoredRows): Promise<void> {
  await db.fork().transactional(async (em) => {
    for (const table of TABLE_NAMES) await insertRows(em, table, STORED_COLUMNS[table], batch[table]);
  });
}

/** What a column value can be: text[] columns take string arrays, bytea columns Buffers. */
type SqlParameter = string | number | null | Buffer;

/** Multi-row INSERTs of at most MAX_PARAMETERS_PER_STATEMENT values each. */
async function insertRows(em: EntityManager, table: string, columns: readonly string[], rows: readonly StoredRow[]): Promise<void> {
  if (rows.length === 0) return;
  const rowsPerStatement = Math.max(1, Math.floor(MAX_PARAMETERS_PER_STATEMENT / columns.length));
  const head = `insert into "${table}" (${columns.map((column) => `"${column}"`).join(', ')}) values `;
  const tuple = `(${columns.map(() => '?').join(', ')})`;
  for (let start = 0; start < rows.length; start += rowsPerStatement) {
    const chunk = rows.slice(start, start + rowsPerStatement);
    const params = chunk.flatMap((row) => columns.map((column) => toSqlParameter(table, column, row[column])));
    await em.execute(head + chunk.map(() => tuple).join(', '), params, 'run');
  }
}

/**
 * Buffers (ciphertext, blind indexes) pass through untouched: MikroORM sends
 * them as bytea literals on PGlite and PostgreSQL alike.
 */
function toSqlParameter(table: string, column: string, value: unknown): SqlParameter {
  if (value === undefined) throw new Error(`a ${table} row to write has no ${column}`);
  if (value === null || typeof value === 'string' || typeof value === 'number' || Buffer.isBuffer(value)) return value;
  if (isStringArray(value)) return toArrayLiteral(value);
  throw new Error(`${table}.${column}: a value of this kind cannot be written`);
}

function isStringArray(value: unknown): value is readonly string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
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
  privacyOfficer: principalSchema,
  partners: z.object({ pharmacy: principalSchema, payer: principalSchema, careCoordination: principalSchema }),
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
