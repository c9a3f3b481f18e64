import { performance } from 'node:perf_hooks';
import type { Database } from '../src/db/index.js';
import type { PATIENT_TABLES } from '../src/db/seed/generate.js';

/**
 * Growing a seeded database to a multiple of its patients without running
 * the seeder again (which writes about 0.4k patients a second here, far too
 * slow for 100,000 in a ten-minute run): every patient is copied, with its
 * rows in the patient tables asked for, inside the database (INSERT ...
 * SELECT), `factor - 1` times.
 *
 * A copy's ids are its original's with the first eight hex digits replaced
 * by `ffffff` and the copy's number, so the copies of the patients sort
 * after every original patient and the keyset pages that start at the
 * beginning of the table (`patients(first: N)`) hold original patients only.
 * Row scopes, consents, care teams and organizations are copied alike, so
 * every organization and partner holds `factor` times its patients, in the
 * same proportions.
 *
 * The copies' encrypted columns are byte copies of their original's
 * ciphertext, which is bound to the original row id: they do not decrypt,
 * and nothing may read them. The copies' MRN blind index is rehashed (it is
 * unique); SSN and e-mail blind indexes repeat the original's.
 */

export type PatientTable = (typeof PATIENT_TABLES)[number];

/** Copied rows that a table's rows refer to (besides the patient): copied first. */
const TABLE_DEPENDENCIES: Partial<Record<PatientTable, PatientTable[]>> = {
  condition: ['encounter'],
  observation: ['encounter'],
  clinical_note: ['encounter'],
  claim: ['coverage', 'encounter'],
  invoice: ['claim'],
  payment: ['invoice'],
};

/** Columns that hold an id of a row copied along with the patient: remapped to the copy's id. */
const COPIED_ROW_REFERENCES = new Set(['id', 'patient_id', 'encounter_id', 'coverage_id', 'claim_id', 'invoice_id']);
/** Copies are numbered 1..MAX_COPIES: two hex digits of the id. */
const MAX_COPIES = 255;
/** The id prefix of the copies: an original patient id must sort before it. */
const COPY_ID_PREFIX = 'ffffff';

export interface Growth {
  patientsBefore: number;
  patientsAfter: number;
  /** Rows added per table. */
  rowsAdded: Record<string, number>;
  seconds: number;
}

/** The copy's id of an id column, as SQL. */
function copiedId(column: string): string {
  return `('${COPY_ID_PREFIX}' || lpad(to_hex(k), 2, '0') || substr("${column}"::text, 9))::uuid`;
}

/** Statements run at once while copying: one table each (the database server has two cores here). */
const LANES = 2;
/** How often a lane looks again for a table whose dependencies are copied. */
const DEPENDENCY_POLL_MS = 50;

/**
 * Copies every patient `factor - 1` times, with its rows in `tables` (the
 * patient table first, then any subset of PATIENT_TABLES in any order: a
 * table waits for the tables its rows refer to), then analyzes them.
 */
export async function growByCopying(db: Database, factor: number, tables: readonly PatientTable[], log: (message: string) => void): Promise<Growth> {
  if (!Number.isInteger(factor) || factor < 1 || factor - 1 > MAX_COPIES) throw new RangeError(`the growth factor must be an integer from 1 to ${MAX_COPIES + 1}, got ${factor}`);
  if (tables[0] !== 'patient') throw new Error('the patient table must be copied first (the other rows refer to it)');
  for (const table of tables) {
    const missing = (TABLE_DEPENDENCIES[table] ?? []).filter((dependency) => !tables.includes(dependency));
    if (missing.length > 0) throw new Error(`${table} rows refer to ${missing.join(', ')} rows: copy those tables too`);
  }
  const started = performance.now();
  const em = () => db.fork();
  const [before] = await em().execute<{ patients: number; last: string | null }[]>(
    `select count(*)::int as "patients", (select "id"::text from "patient" order by "id" desc limit 1) as "last" from "patient"`,
  );
  const patientsBefore = Number(before?.patients ?? 0);
  if (before?.last && before.last >= COPY_ID_PREFIX) {
    throw new Error(`patient id ${before.last} sorts among the copies' ids (${COPY_ID_PREFIX}...): the copies would not sort after the originals`);
  }
  const rowsAdded: Record<string, number> = {};
  const copyTable = async (table: PatientTable) => {
    const columns = await em().execute<{ column_name: string }[]>(
      `select "column_name" from information_schema.columns where "table_schema" = current_schema() and "table_name" = ? order by "ordinal_position"`,
      [table],
    );
    const names = columns.map((column) => column.column_name);
    const values = names.map((name) => {
      if (COPIED_ROW_REFERENCES.has(name)) return copiedId(name);
      if (name === 'mrn_index') return `sha256("mrn_index" || convert_to(k::text, 'UTF8'))`;
      // Patients' own accounts: the subject names the patient (a subject that does not is left as it is, and the unique constraint refuses the copy).
      if (table === 'app_user' && name === 'subject') return `replace("subject", "patient_id"::text, ${copiedId('patient_id')}::text)`;
      return `"${name}"`;
    });
    const onlyPatients = table === 'app_user' ? 'where "patient_id" is not null' : '';
    const tableStarted = performance.now();
    const inserted = await em().execute(
      `insert into "${table}" (${names.map((name) => `"${name}"`).join(', ')})
       select ${values.join(', ')} from "${table}" cross join generate_series(1, ${factor - 1}) as k ${onlyPatients}`,
      [],
      'run',
    );
    rowsAdded[table] = Number((inserted as { affectedRows?: number }).affectedRows ?? 0);
    await em().execute(`analyze "${table}"`, [], 'run');
    log(`grow: ${table}: +${rowsAdded[table]} rows in ${((performance.now() - tableStarted) / 1000).toFixed(1)} s`);
  };
  if (factor > 1) {
    await copyTable('patient');
    // Tables that refer to other copied rows wait for those; the rest go LANES at a time.
    const waiting = tables.slice(1);
    const done = new Set<PatientTable>(['patient']);
    const lane = async () => {
      for (;;) {
        const next = waiting.findIndex((table) => (TABLE_DEPENDENCIES[table] ?? []).every((dependency) => done.has(dependency)));
        if (next < 0) {
          if (waiting.length === 0) return;
          await new Promise((resolve) => setTimeout(resolve, DEPENDENCY_POLL_MS));
          continue;
        }
        const [table] = waiting.splice(next, 1) as [PatientTable];
        await copyTable(table);
        done.add(table);
      }
    };
    await Promise.all(Array.from({ length: LANES }, lane));
  }
  const [after] = await em().execute<{ patients: number }[]>('select count(*)::int as "patients" from "patient"');
  return { patientsBefore, patientsAfter: Number(after?.patients ?? 0), rowsAdded, seconds: (performance.now() - started) / 1000 };
}
