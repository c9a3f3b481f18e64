import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CryptoError, FORMAT_VERSION, generateKeyRingDocument, toBuffer } from '../src/crypto/index.js';
import { ENCRYPTED_TABLES, blindIndexOf, boundRowId, openSealer, type Sealer } from '../src/db/encryption.js';
import { openDatabase, type Database } from '../src/db/orm.js';
import {
  DEFAULT_SEED,
  DEVELOPMENT_ROLES,
  PARTNER_ORGANIZATIONS,
  STORED_COLUMNS,
  SeedRefusedError,
  generateDirectory,
  generatePatient,
  isDatabaseEmpty,
  readDevelopmentPrincipals,
  seedDatabase,
  writeDevelopmentPrincipals,
  type SeedSummary,
} from '../src/db/seed/index.js';

/**
 * The synthetic data seeder on PGlite: three fresh databases, two seeded
 * identically (with different batch sizes, under one key ring) and one with
 * another seed (under its own development key ring). The PHI columns hold
 * ciphertext, so checks on them decrypt with the database's sealer.
 */

const PATIENTS = 40;
const SEED = 7;
const OTHER_SEED = 8;
/** A researcher, an auditor, an administrator, an integrator and a privacy officer. */
const STAFF_ACCOUNTS = 5;
/** A pharmacy, a payer and a care-coordination service, one account each. */
const PARTNER_ACCOUNTS = 3;
const TABLES = [
  'organization',
  'practitioner',
  'care_team',
  'care_team_member',
  'patient',
  'encounter',
  'condition',
  'medication_request',
  'observation',
  'allergy_intolerance',
  'clinical_note',
  'coverage',
  'claim',
  'invoice',
  'payment',
  'consent',
  'app_user',
] as const;
/** Tables hashed to compare two seeded databases (ordered by primary key, encrypted columns decrypted). */
const DIGEST_TABLES = [
  'organization', 'practitioner', 'patient', 'encounter', 'condition', 'observation', 'clinical_note', 'coverage', 'claim', 'invoice', 'payment', 'consent', 'app_user',
] as const;
/** The encrypted tables, each with its patient column (for rows of chosen patients). */
const ENCRYPTED_TABLE_PATIENT: Readonly<Record<string, string>> = {
  patient: 'id',
  clinical_note: 'patient_id',
  condition: 'patient_id',
  observation: 'patient_id',
  coverage: 'patient_id',
  claim: 'patient_id',
};
/**
 * Plaintexts at least this long are checked not to occur in their
 * ciphertext: random bytes contain a given 5-byte sequence with odds of
 * about 2^-40 per value, while 1- or 2-byte values (a digit, a state code)
 * would occur by chance in some ciphertexts.
 */
const DISTINCTIVE_PLAINTEXT_BYTES = 5;
/** Format version, data key id, nonce, then ciphertext as long as the plaintext, then the tag. */
const ENVELOPE_OVERHEAD_BYTES = 1 + 1 + 4 + 12 + 16;
/** A consent the partner and researcher row scopes honour, against the real clock (consent alias c). */
const IN_FORCE_NOW = `c.status = 'active' and c.period_start <= now() and (c.period_end is null or c.period_end > now())`;

interface FreshDatabase {
  db: Database;
  dataDir: string;
  sealer: Sealer;
}

interface SeededDatabase extends FreshDatabase {
  summary: SeedSummary;
}

type DbRow = Record<string, unknown>;

const opened: { db: Database; dataDir: string }[] = [];
let primary: SeededDatabase;
let twin: SeededDatabase;
let other: SeededDatabase;
let otherWasEmptyBeforeSeeding: boolean;

/** A migrated PGlite database; without `keyRingJson`, under a development key ring created in its data folder. */
async function openFreshDatabase(keyRingJson?: string): Promise<FreshDatabase> {
  const dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-seed-'));
  const db = await openDatabase({ url: undefined, dataDir });
  opened.push({ db, dataDir });
  await db.migrate();
  const sealer = await openSealer(db, { service: 'ring', ringJson: keyRingJson, dataDir, allowDevelopmentRing: true });
  return { db, dataDir, sealer };
}

async function rows<T>(db: Database, sql: string, params: unknown[] = []): Promise<T[]> {
  return db.fork().execute<T[]>(sql, params);
}

async function count(db: Database, sql: string, params: unknown[] = []): Promise<number> {
  const [row] = await rows<{ n: number }>(db, `select count(*)::int as n from (${sql}) as counted`, params);
  return row?.n ?? Number.NaN;
}

/** The plaintext of an encrypted column of a row read from the database (null stays null). */
async function plain(database: FreshDatabase, table: string, column: string, row: DbRow): Promise<string | null> {
  const stored = row[column];
  if (stored === null) return null;
  if (!(stored instanceof Uint8Array)) throw new Error(`${table}.${column} was not read as bytes`);
  // In labelled tables the row's labels are bound with its id (src/policy/sensitivity.ts).
  const spec = ENCRYPTED_TABLES[table];
  return database.sealer.cipher.decrypt(toBuffer(stored), { table, column, rowId: spec ? boundRowId(spec, row) : String(row['id']) });
}

/** Like `plain`, for a column that is never null. */
async function plainText(database: FreshDatabase, table: string, column: string, row: DbRow): Promise<string> {
  const value = await plain(database, table, column, row);
  if (value === null) throw new Error(`${table}.${column} is null`);
  return value;
}

/**
 * Rows of a table ordered by id, every encrypted column decrypted and the
 * blind-index columns left out (they depend on the key ring; tested apart).
 */
async function decryptedRows(database: FreshDatabase, table: string, where = '', params: unknown[] = []): Promise<DbRow[]> {
  const stored = await rows<DbRow>(database.db, `select * from "${table}" ${where} order by id`, params);
  const spec = ENCRYPTED_TABLES[table];
  if (!spec) return stored;
  const indexColumns = new Set(Object.keys(spec.blindIndexes).map((column) => `${column}_index`));
  return Promise.all(
    stored.map(async (row) => {
      const decrypted: DbRow = {};
      for (const [column, value] of Object.entries(row)) {
        if (indexColumns.has(column)) continue;
        decrypted[column] = spec.columns.includes(column) ? await plain(database, table, column, row) : value;
      }
      return decrypted;
    }),
  );
}

async function digest(database: FreshDatabase): Promise<string> {
  const hash = createHash('sha256');
  for (const table of DIGEST_TABLES) {
    hash.update(table);
    hash.update(JSON.stringify(await decryptedRows(database, table)));
  }
  return hash.digest('hex');
}

/** A value read or decrypted from the database that must be text. */
function asText(value: unknown): string {
  if (typeof value !== 'string') throw new Error(`expected text, got ${typeof value}`);
  return value;
}

function hex(value: unknown): string {
  if (!(value instanceof Uint8Array)) throw new Error('not bytes');
  return toBuffer(value).toString('hex');
}

/** NPI check: Luhn over the 80840 prefix and all ten digits (written independently of the generator). */
function isLuhnValidNpi(npi: string): boolean {
  if (!/^\d{10}$/.test(npi)) return false;
  const digits = `80840${npi}`.split('').map(Number).reverse();
  const sum = digits.reduce((total, digit, position) => {
    if (position % 2 === 0) return total + digit;
    const doubled = digit * 2;
    return total + (doubled > 9 ? doubled - 9 : doubled);
  }, 0);
  return sum % 10 === 0;
}

beforeAll(async () => {
  // One key ring for the identical pair, so their blind indexes can be compared.
  const sharedKeyRing = JSON.stringify(generateKeyRingDocument(true));
  const first = await openFreshDatabase(sharedKeyRing);
  primary = { ...first, summary: await seedDatabase(first.db, { patients: PATIENTS, seed: SEED, batchSize: 16, sealer: first.sealer }) };
  const second = await openFreshDatabase(sharedKeyRing);
  twin = { ...second, summary: await seedDatabase(second.db, { patients: PATIENTS, seed: SEED, sealer: second.sealer }) };
  const third = await openFreshDatabase();
  otherWasEmptyBeforeSeeding = await isDatabaseEmpty(third.db);
  other = { ...third, summary: await seedDatabase(third.db, { patients: PATIENTS, seed: OTHER_SEED, sealer: third.sealer }) };
}, 120_000);

afterAll(async () => {
  for (const { db, dataDir } of opened) {
    await db.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});

describe('seedDatabase', () => {
  it('fills every table with sensible row counts', async () => {
    const { db, summary } = primary;
    expect(summary.patients).toBe(PATIENTS);
    for (const table of TABLES) {
      const inDatabase = await count(db, `select 1 from "${table}"`);
      expect(inDatabase, table).toBeGreaterThan(0);
      expect(summary.rows[table], table).toBe(inDatabase);
    }
    const rowsOf = (table: (typeof TABLES)[number]) => summary.rows[table] ?? 0;
    expect(rowsOf('patient')).toBe(PATIENTS);
    expect(rowsOf('encounter')).toBeGreaterThanOrEqual(PATIENTS);
    expect(rowsOf('encounter')).toBeLessThanOrEqual(5 * PATIENTS);
    expect(rowsOf('condition')).toBeGreaterThanOrEqual(PATIENTS);
    expect(rowsOf('observation')).toBeGreaterThanOrEqual(3 * PATIENTS);
    expect(rowsOf('app_user')).toBe(rowsOf('practitioner') + PATIENTS + STAFF_ACCOUNTS + PARTNER_ACCOUNTS);

    const organizations = await rows<{ type: string; n: number }>(db, 'select type, count(*)::int as n from organization group by type order by type');
    expect(organizations).toEqual([
      { type: 'partner', n: PARTNER_ACCOUNTS },
      { type: 'payer', n: 2 },
      { type: 'provider', n: 4 },
    ]);
    const qualifications = await rows<{ qualification: string }>(db, 'select distinct qualification from practitioner order by 1');
    expect(qualifications.map((row) => row.qualification)).toEqual(['billing_specialist', 'nurse', 'physician']);
  });

  it('gives every care team one or two physicians and one or two nurses', async () => {
    const teams = await rows<{ physicians: number; nurses: number }>(
      primary.db,
      `select count(*) filter (where p.qualification = 'physician')::int as physicians,
              count(*) filter (where p.qualification = 'nurse')::int as nurses
         from care_team t join care_team_member m on m.care_team_id = t.id join practitioner p on p.id = m.practitioner_id
        where p.organization_id = t.organization_id
        group by t.id`,
    );
    expect(teams.length).toBe(primary.summary.rows.care_team);
    for (const team of teams) {
      expect(team.physicians).toBeGreaterThanOrEqual(1);
      expect(team.physicians).toBeLessThanOrEqual(2);
      expect(team.nurses).toBeGreaterThanOrEqual(1);
      expect(team.nurses).toBeLessThanOrEqual(2);
    }
  });

  it('spreads patients over organizations and care teams of their own organization, including the very old', async () => {
    const { db } = primary;
    expect(await count(db, 'select distinct managing_organization_id from patient')).toBeGreaterThan(1);
    expect(await count(db, 'select 1 from patient where care_team_id is not null')).toBeGreaterThanOrEqual(0.75 * PATIENTS);
    expect(
      await count(db, 'select 1 from patient p join care_team t on t.id = p.care_team_id where t.organization_id <> p.managing_organization_id'),
    ).toBe(0);
    const birthDates = (await decryptedRows(primary, 'patient')).flatMap((patient) => (patient['birth_date'] === null ? [] : [asText(patient['birth_date'])]));
    expect(birthDates.length).toBeGreaterThan(0.8 * PATIENTS);
    for (const birthDate of birthDates) expect(birthDate).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    // ISO dates compare as strings: 90 and 101 years before 2026-01-01.
    expect(birthDates.filter((birthDate) => birthDate <= '1936-01-01').length).toBeGreaterThan(0);
    expect(birthDates.filter((birthDate) => birthDate > '2026-01-01' || birthDate < '1925-01-01')).toEqual([]);
  });

  it('is deterministic: the same seed gives identical (decrypted) data, another seed different data', async () => {
    const [primaryDigest, twinDigest, otherDigest] = await Promise.all([digest(primary), digest(twin), digest(other)]);
    expect(twinDigest).toBe(primaryDigest);
    expect(otherDigest).not.toBe(primaryDigest);
    expect(twin.summary).toEqual(primary.summary);
    expect(other.summary.principals).not.toEqual(primary.summary.principals);
  });

  it('writes unique, well-formed MRNs and obviously synthetic, unique SSNs', async () => {
    const patients = (await decryptedRows(primary, 'patient')) as {
      mrn: string;
      ssn: string | null;
      phone: string | null;
      email: string | null;
      state: string | null;
      postal_code: string | null;
    }[];
    expect(patients.length).toBe(PATIENTS);
    const mrns = patients.map((patient) => patient.mrn);
    expect(new Set(mrns).size).toBe(mrns.length);
    for (const mrn of mrns) expect(mrn).toMatch(/^MRN\d{8}$/);
    const ssns = patients.flatMap((patient) => (patient.ssn ? [patient.ssn] : []));
    expect(ssns.length).toBeGreaterThan(0.8 * PATIENTS);
    expect(new Set(ssns).size).toBe(ssns.length);
    for (const ssn of ssns) expect(ssn).toMatch(/^9\d{2}-(?!00)\d{2}-(?!0000)\d{4}$/);
    for (const patient of patients) {
      if (patient.phone) expect(patient.phone).toMatch(/^\+1-555-\d{3}-\d{4}$/);
      if (patient.email) expect(patient.email).toMatch(/^[a-z]+\.[a-z]+\.\d+@example\.test$/);
      if (patient.state) expect(patient.state).toMatch(/^[A-Z]{2}$/);
      if (patient.postal_code) expect(patient.postal_code).toMatch(/^\d{5}$/);
    }
  });

  it('gives practitioners NPIs that pass the Luhn check with the 80840 prefix', async () => {
    expect(isLuhnValidNpi('1234567893')).toBe(true); // the CMS example
    expect(isLuhnValidNpi('1234567890')).toBe(false);
    const npis = (await rows<{ npi: string }>(primary.db, 'select npi from practitioner')).map((row) => row.npi);
    expect(npis.length).toBeGreaterThan(0);
    for (const npi of npis) expect(isLuhnValidNpi(npi), npi).toBe(true);
  });

  it("bills only the patient's own conditions, encounters and coverage", async () => {
    const { db } = primary;
    const conditionCodes = new Map<string, Set<string>>();
    for (const condition of await decryptedRows(primary, 'condition')) {
      const patientId = asText(condition['patient_id']);
      conditionCodes.set(patientId, (conditionCodes.get(patientId) ?? new Set()).add(asText(condition['code'])));
    }
    const claims = await decryptedRows(primary, 'claim');
    expect(claims.length).toBeGreaterThan(0);
    const foreignCodes: { id: unknown; code: string }[] = [];
    for (const claim of claims) {
      const codes: unknown = JSON.parse(asText(claim['diagnosis_codes']));
      expect(Array.isArray(codes), asText(claim['id'])).toBe(true);
      expect((codes as unknown[]).length, asText(claim['id'])).toBeGreaterThan(0);
      for (const code of codes as string[]) {
        if (!conditionCodes.get(asText(claim['patient_id']))?.has(code)) foreignCodes.push({ id: claim['id'], code });
      }
    }
    expect(foreignCodes).toEqual([]);
    const crossPatientLinks = await rows(
      db,
      `select c.id from claim c
         left join encounter e on e.id = c.encounter_id
         left join coverage v on v.id = c.coverage_id
        where e.patient_id <> c.patient_id or v.patient_id <> c.patient_id
       union all
       select i.id from invoice i join claim c on c.id = i.claim_id where c.patient_id <> i.patient_id
       union all
       select p.id from payment p join invoice i on i.id = p.invoice_id where i.patient_id <> p.patient_id`,
    );
    expect(crossPatientLinks).toEqual([]);
    expect(await count(db, `select 1 from claim where currency <> 'USD' or total_cents <= 0`)).toBe(0);
  });

  it('never takes more in payments than an invoice is for, and keeps balances consistent', async () => {
    const invoices = await rows<{ status: string; total_cents: number; balance_cents: number; paid: number; payments: number }>(
      primary.db,
      `select i.status, i.total_cents, i.balance_cents, coalesce(sum(p.amount_cents), 0)::int as paid, count(p.id)::int as payments
         from invoice i left join payment p on p.invoice_id = i.id
        group by i.id`,
    );
    expect(invoices.length).toBeGreaterThan(0);
    for (const invoice of invoices) {
      expect(invoice.paid).toBeLessThanOrEqual(invoice.total_cents);
      if (invoice.status === 'cancelled') {
        expect(invoice.payments).toBe(0);
        expect(invoice.balance_cents).toBe(0);
        continue;
      }
      expect(invoice.balance_cents).toBe(invoice.total_cents - invoice.paid);
      if (invoice.status === 'paid') expect(invoice.balance_cents).toBe(0);
      if (invoice.status === 'issued') expect(invoice.payments).toBe(0);
      if (invoice.status === 'partially_paid') expect(invoice.paid).toBeGreaterThan(0);
    }
    expect(await count(primary.db, 'select 1 from payment where amount_cents <= 0')).toBe(0);
  });

  it('refuses to seed a database that already has patients', async () => {
    expect(otherWasEmptyBeforeSeeding).toBe(true);
    expect(await isDatabaseEmpty(primary.db)).toBe(false);
    await expect(seedDatabase(primary.db, { patients: 5, sealer: primary.sealer })).rejects.toBeInstanceOf(SeedRefusedError);
    await expect(seedDatabase(primary.db, { patients: 5, sealer: primary.sealer })).rejects.toThrow(/fresh database/);
    expect(await count(primary.db, 'select 1 from patient')).toBe(PATIENTS);
    expect(await count(primary.db, 'select 1 from organization')).toBe(primary.summary.rows.organization);
  });

  it('names, for every role, an existing account with that role', async () => {
    const { db, summary } = primary;
    for (const role of DEVELOPMENT_ROLES) {
      const principal = summary.principals[role];
      const [account] = await rows<{ roles: string[]; organization_id: string | null; practitioner_id: string | null; patient_id: string | null }>(
        db,
        'select roles, organization_id, practitioner_id, patient_id from app_user where subject = ?',
        [principal.subject],
      );
      expect(account, role).toBeDefined();
      expect(account?.roles, role).toContain(role);
      expect(account?.organization_id, role).toBe(principal.organizationId);
      expect(account?.practitioner_id, role).toBe(principal.practitionerId);
      expect(account?.patient_id, role).toBe(principal.patientId);
    }
  });

  it('picks a sample patient with clinical and billing data, cared for by the sample clinician and nurse', async () => {
    const { db, summary } = primary;
    const patientId = summary.principals.patient.patientId;
    for (const table of ['encounter', 'condition', 'observation', 'clinical_note', 'claim', 'invoice', 'payment'] as const) {
      expect(await count(db, `select 1 from "${table}" where patient_id = ?`, [patientId]), table).toBeGreaterThan(0);
    }
    for (const role of ['clinician', 'nurse'] as const) {
      const practitionerId = summary.principals[role].practitionerId;
      const shared = await count(
        db,
        'select 1 from patient p join care_team_member m on m.care_team_id = p.care_team_id where p.id = ? and m.practitioner_id = ?',
        [patientId, practitionerId],
      );
      expect(shared, role).toBe(1);
    }
    const [billing] = await rows<{ qualification: string; organization_id: string }>(
      db,
      'select qualification, organization_id from practitioner where id = ?',
      [summary.principals.billing.practitionerId],
    );
    expect(billing).toEqual({ qualification: 'billing_specialist', organization_id: summary.principals.patient.organizationId });
  });

  it('records research consents without an organization and partner-sharing consents with partner organizations', async () => {
    const { db } = primary;
    expect(await count(db, `select 1 from consent where scope = 'research'`)).toBeGreaterThan(0);
    expect(await count(db, `select 1 from consent where scope = 'partner-sharing'`)).toBeGreaterThan(0);
    expect(await count(db, `select 1 from consent where scope = 'research' and organization_id is not null`)).toBe(0);
    expect(
      await count(
        db,
        `select 1 from consent c left join organization o on o.id = c.organization_id
          where c.scope = 'partner-sharing' and (o.id is null or o.type <> 'partner')`,
      ),
    ).toBe(0);
    expect(await count(db, `select distinct organization_id from consent where scope = 'partner-sharing'`)).toBe(PARTNER_ACCOUNTS);
    // Some consents exist but are out of force: revoked, or active outside their period.
    expect(await count(db, `select 1 from consent where status = 'revoked'`)).toBeGreaterThan(0);
    expect(await count(db, `select 1 from consent c where c.status = 'active' and not (${IN_FORCE_NOW})`)).toBeGreaterThan(0);
  });

  it('gives consents periods that are unambiguously past or future for any test run from mid-2026 on', async () => {
    const ambiguous = await rows(
      primary.db,
      `select id, period_start, period_end from consent
        where period_start < timestamptz '2020-01-01T00:00:00Z'
           or (period_start >= timestamptz '2026-07-01T00:00:00Z' and period_start < timestamptz '2099-01-01T00:00:00Z')
           or period_end <= period_start
           or (period_end >= timestamptz '2026-01-01T00:00:00Z' and period_end < timestamptz '2099-01-01T00:00:00Z')`,
    );
    expect(ambiguous).toEqual([]);
  });

  it('gives the sample patient consents in force for research and for sharing with every partner, the sample partner first among them', async () => {
    const { db, summary } = primary;
    const patientId = summary.principals.patient.patientId;
    expect(summary.principals.partner).toEqual(summary.principals.partners.pharmacy);
    const research = await count(
      db,
      `select 1 from consent c where c.patient_id = ? and c.scope = 'research' and c.organization_id is null and ${IN_FORCE_NOW}`,
      [patientId],
    );
    expect(research).toBeGreaterThanOrEqual(1);
    for (const [kind, partner] of Object.entries(summary.principals.partners)) {
      expect(partner.organizationId, kind).not.toBeNull();
      const sharing = await count(
        db,
        `select 1 from consent c join organization o on o.id = c.organization_id
          where c.patient_id = ? and c.scope = 'partner-sharing' and c.organization_id = ? and o.type = 'partner' and ${IN_FORCE_NOW}`,
        [patientId, partner.organizationId],
      );
      expect(sharing, kind).toBeGreaterThanOrEqual(1);
    }
  });

  it('stores each partner organization with the categories its sharing agreement grants, and an account for it; no one else is granted any', async () => {
    const { db, summary } = primary;
    const stored = await rows<{ id: string; name: string; type: string; shared_categories: string[] }>(db, 'select id, name, type, shared_categories from organization order by name');
    for (const definition of PARTNER_ORGANIZATIONS) {
      const organization = stored.find((row) => row.name === definition.name);
      expect(organization?.type, definition.name).toBe('partner');
      expect([...(organization?.shared_categories ?? [])].sort(), definition.name).toEqual([...definition.sharedCategories].sort());
      const principal = summary.principals.partners[definition.kind];
      expect(principal.organizationId, definition.kind).toBe(organization?.id);
      const [account] = await rows<{ roles: string[]; organization_id: string }>(db, 'select roles, organization_id from app_user where subject = ?', [principal.subject]);
      expect(account, definition.kind).toEqual({ roles: ['partner'], organization_id: organization?.id });
    }
    expect(stored.filter((row) => row.type !== 'partner').every((row) => row.shared_categories.length === 0)).toBe(true);
  });

  it("leaves some patients of the sample clinician's care team without any consent in force", async () => {
    const { db, summary } = primary;
    const team = await rows<{ id: string; in_force: boolean }>(
      db,
      `select p.id, exists (select 1 from consent c where c.patient_id = p.id and ${IN_FORCE_NOW}) as in_force
         from patient p join care_team_member m on m.care_team_id = p.care_team_id
        where m.practitioner_id = ?`,
      [summary.principals.clinician.practitionerId],
    );
    expect(team.map((patient) => patient.id)).toContain(summary.principals.patient.patientId);
    expect(team.filter((patient) => !patient.in_force).length).toBeGreaterThanOrEqual(1);
  });
});

describe('field encryption of the seeded data', () => {
  it('writes every column of the encrypted tables, with crypto_version 1 on every row', async () => {
    for (const [table, spec] of Object.entries(ENCRYPTED_TABLES)) {
      const columns: readonly string[] = STORED_COLUMNS[table as keyof typeof STORED_COLUMNS];
      expect(columns, table).toEqual(expect.arrayContaining([...spec.columns, ...Object.keys(spec.blindIndexes).map((column) => `${column}_index`), 'crypto_version']));
      expect(await count(primary.db, `select 1 from "${table}"`), table).toBeGreaterThan(0);
      expect(await count(primary.db, `select 1 from "${table}" where crypto_version <> 1`), table).toBe(0);
    }
    expect(STORED_COLUMNS.patient).not.toContain('given_names');
  });

  it('stores exactly the generated plaintext: name and address lines as JSON, birth date as YYYY-MM-DD, diagnosis codes as a JSON array', async () => {
    const directory = generateDirectory(SEED, PATIENTS);
    const generated = Array.from({ length: PATIENTS }, (_, index) => generatePatient(directory, index));
    const patients = new Map(generated.flatMap((rows) => rows.patient).map((patient) => [patient.id, patient]));
    const storedPatients = await decryptedRows(primary, 'patient');
    expect(storedPatients.length).toBe(patients.size);
    for (const row of storedPatients) {
      const patient = patients.get(asText(row['id']));
      if (!patient) throw new Error(`patient ${asText(row['id'])} was not generated`);
      expect(JSON.parse(asText(row['name']))).toEqual({ given: patient.given_names, family: patient.family_name });
      expect(row['address_lines'] === null ? null : JSON.parse(asText(row['address_lines']))).toEqual(patient.address_lines);
      const { mrn, birth_date, ssn, city, state, postal_code, phone, email } = patient;
      expect({
        mrn: row['mrn'],
        birth_date: row['birth_date'],
        ssn: row['ssn'],
        city: row['city'],
        state: row['state'],
        postal_code: row['postal_code'],
        phone: row['phone'],
        email: row['email'],
      }).toEqual({ mrn, birth_date, ssn, city, state, postal_code, phone, email });
    }
    for (const table of ['clinical_note', 'condition', 'observation', 'coverage'] as const) {
      const expected = new Map(generated.flatMap((rows) => rows[table] as readonly Readonly<Record<string, unknown> & { id: string }>[]).map((row) => [row.id, row]));
      const decrypted = await decryptedRows(primary, table);
      expect(decrypted.length, table).toBe(expected.size);
      for (const row of decrypted) {
        const source = expected.get(asText(row['id']));
        for (const column of ENCRYPTED_TABLES[table]?.columns ?? []) expect(row[column], `${table}.${column}`).toBe(source?.[column]);
      }
    }
    const claims = new Map(generated.flatMap((rows) => rows.claim).map((claim) => [claim.id, claim]));
    const storedClaims = await decryptedRows(primary, 'claim');
    expect(storedClaims.length).toBe(claims.size);
    for (const row of storedClaims) {
      expect(JSON.parse(asText(row['diagnosis_codes']))).toEqual(claims.get(asText(row['id']))?.diagnosis_codes);
    }
  });

  it('never stores a plaintext: every encrypted value of 20 patients is an envelope that does not contain its value', async () => {
    const patientIds = (await rows<{ id: string }>(primary.db, 'select id from patient order by id limit 20')).map((row) => row.id);
    expect(patientIds.length).toBe(20);
    const checked = new Set<string>();
    let values = 0;
    for (const [table, spec] of Object.entries(ENCRYPTED_TABLES)) {
      const patientColumn = ENCRYPTED_TABLE_PATIENT[table];
      if (!patientColumn) throw new Error(`no patient column for ${table}`);
      const stored = await rows<DbRow>(primary.db, `select * from "${table}" where "${patientColumn}" in (${patientIds.map(() => '?').join(', ')})`, patientIds);
      expect(stored.length, table).toBeGreaterThan(0);
      for (const row of stored) {
        for (const column of spec.columns) {
          const raw = row[column];
          if (raw === null) continue;
          if (!(raw instanceof Uint8Array)) throw new Error(`${table}.${column} was not read as bytes`);
          const bytes = toBuffer(raw);
          const plaintext = Buffer.from(await plainText(primary, table, column, row), 'utf8');
          values += 1;
          expect(bytes[0], `${table}.${column}`).toBe(FORMAT_VERSION);
          expect(bytes.length, `${table}.${column}`).toBe(ENVELOPE_OVERHEAD_BYTES + plaintext.length);
          expect(bytes.equals(plaintext), `${table}.${column}`).toBe(false);
          if (plaintext.length >= DISTINCTIVE_PLAINTEXT_BYTES) {
            expect(bytes.includes(plaintext), `${table}.${column} contains its plaintext`).toBe(false);
            checked.add(`${table}.${column}`);
          }
        }
      }
    }
    expect(values).toBeGreaterThan(20 * 10);
    // Every column but the two-letter state had values long enough to look for.
    const everyColumn = Object.entries(ENCRYPTED_TABLES).flatMap(([table, spec]) => spec.columns.map((column) => `${table}.${column}`));
    expect([...checked].sort()).toEqual(everyColumn.filter((column) => column !== 'patient.state').sort());
  });

  it('encrypts the same value differently every time: in two seedings of the same data, and in two rows of one', async () => {
    let compared = 0;
    for (const [table, spec] of Object.entries(ENCRYPTED_TABLES)) {
      const [first, second] = await Promise.all([primary, twin].map((database) => rows<DbRow>(database.db, `select * from "${table}" order by id`)));
      expect(second?.map((row) => row['id']), table).toEqual(first?.map((row) => row['id']));
      for (const [position, row] of (first ?? []).entries()) {
        const twinRow = second?.[position] ?? {};
        for (const column of spec.columns) {
          if (row[column] === null) continue;
          expect(await plain(twin, table, column, twinRow), `${table}.${column}`).toBe(await plain(primary, table, column, row));
          expect(hex(twinRow[column]), `${table}.${column}`).not.toBe(hex(row[column]));
          compared += 1;
        }
      }
      // Within one database: no two ciphertexts alike, though plaintexts repeat (condition codes, states, ...).
      const ciphertexts = (first ?? []).flatMap((row) => spec.columns.flatMap((column) => (row[column] === null ? [] : [hex(row[column])])));
      expect(new Set(ciphertexts).size, table).toBe(ciphertexts.length);
    }
    expect(compared).toBeGreaterThan(PATIENTS * 10);
    const codes = (await decryptedRows(primary, 'condition')).map((row) => asText(row['code']));
    expect(new Set(codes).size).toBeLessThan(codes.length);
  });

  it('binds each ciphertext to its row and column', async () => {
    const [first, second] = await rows<DbRow>(primary.db, 'select id, mrn, ssn from patient where ssn is not null order by id limit 2');
    if (!first || !second) throw new Error('two patients with an SSN are needed');
    expect(await plainText(primary, 'patient', 'mrn', first)).toMatch(/^MRN\d{8}$/);
    await expect(plain(primary, 'patient', 'mrn', { ...first, id: second['id'] })).rejects.toBeInstanceOf(CryptoError);
    await expect(plain(primary, 'patient', 'ssn', { ...first, ssn: first['mrn'] })).rejects.toBeInstanceOf(CryptoError);
    await expect(plain(primary, 'coverage', 'mrn', first)).rejects.toBeInstanceOf(CryptoError);
  });

  it('writes blind indexes of the normalized values: unique MRN indexes, equal under one key ring, different under another', async () => {
    const select = 'select id, mrn, mrn_index, ssn, ssn_index, email, email_index from patient order by id';
    const [stored, twinStored] = await Promise.all([rows<DbRow>(primary.db, select), rows<DbRow>(twin.db, select)]);
    const ring = primary.sealer.indexKeys;
    const index = (purpose: 'mrn' | 'ssn' | 'email', value: string) => blindIndexOf(ring, purpose, value).toString('hex');
    let ssns = 0;
    let emails = 0;
    for (const [position, row] of stored.entries()) {
      const mrn = await plainText(primary, 'patient', 'mrn', row);
      expect(toBuffer(row['mrn_index'] as Uint8Array).length).toBe(32);
      expect(hex(row['mrn_index'])).toBe(index('mrn', mrn));
      expect(hex(row['mrn_index'])).toBe(index('mrn', ` ${mrn.toLowerCase()} `));
      expect(hex(row['mrn_index'])).not.toBe(blindIndexOf(other.sealer.indexKeys, 'mrn', mrn).toString('hex'));
      const ssn = await plain(primary, 'patient', 'ssn', row);
      if (ssn === null) {
        expect(row['ssn_index']).toBeNull();
      } else {
        ssns += 1;
        expect(hex(row['ssn_index'])).toBe(index('ssn', ssn));
        expect(hex(row['ssn_index'])).toBe(index('ssn', ssn.replaceAll('-', '')));
      }
      const email = await plain(primary, 'patient', 'email', row);
      if (email === null) {
        expect(row['email_index']).toBeNull();
      } else {
        emails += 1;
        expect(hex(row['email_index'])).toBe(index('email', email));
        expect(hex(row['email_index'])).toBe(index('email', email.toUpperCase()));
      }
      const twinRow = twinStored[position] ?? {};
      expect(twinRow['id']).toBe(row['id']);
      for (const column of ['mrn_index', 'ssn_index', 'email_index']) {
        expect(twinRow[column] === null ? null : hex(twinRow[column]), column).toBe(row[column] === null ? null : hex(row[column]));
      }
    }
    expect(ssns).toBeGreaterThan(0);
    expect(emails).toBeGreaterThan(0);
    expect(await count(primary.db, 'select distinct mrn_index from patient')).toBe(PATIENTS);
    expect(await count(primary.db, 'select 1 from patient where mrn_index is null')).toBe(0);
    expect(await count(primary.db, 'select distinct ssn_index from patient where ssn_index is not null')).toBe(ssns);
  });
});

describe('consent generation', () => {
  const PATIENT_SAMPLE = 2_000;

  it('draws research and partner-sharing consents at the intended rates, spread over the partners', () => {
    const directory = generateDirectory(DEFAULT_SEED, PATIENT_SAMPLE);
    const partnerIds = directory.partners.map((partner) => partner.id);
    const consents = Array.from({ length: PATIENT_SAMPLE }, (_, index) => generatePatient(directory, index).consent).flat();
    const research = consents.filter((consent) => consent.scope === 'research');
    const sharing = consents.filter((consent) => consent.scope === 'partner-sharing');
    expect(new Set(research.map((consent) => consent.patient_id)).size).toBe(research.length);
    expect(new Set(sharing.map((consent) => consent.patient_id)).size).toBe(sharing.length);
    expect(research.length / PATIENT_SAMPLE).toBeGreaterThan(0.55);
    expect(research.length / PATIENT_SAMPLE).toBeLessThan(0.65);
    expect(sharing.length / PATIENT_SAMPLE).toBeGreaterThan(0.3);
    expect(sharing.length / PATIENT_SAMPLE).toBeLessThan(0.4);
    expect(research.every((consent) => consent.organization_id === null)).toBe(true);
    for (const partnerId of partnerIds) {
      // A third each, give or take.
      const share = sharing.filter((consent) => consent.organization_id === partnerId).length / sharing.length;
      expect(share).toBeGreaterThan(0.28);
      expect(share).toBeLessThan(0.39);
    }
    expect(sharing.every((consent) => consent.organization_id !== null && partnerIds.includes(consent.organization_id))).toBe(true);
    for (const group of [research, sharing]) {
      const revoked = group.filter((consent) => consent.status === 'revoked').length / group.length;
      expect(revoked).toBeGreaterThan(0.05);
      expect(revoked).toBeLessThan(0.15);
      const active = group.filter((consent) => consent.status === 'active');
      expect(active.some((consent) => consent.period_end !== null && consent.period_end < '2026-01-01')).toBe(true);
      expect(active.filter((consent) => consent.period_end === null).length).toBeGreaterThan(0.8 * active.length);
    }
    expect(sharing.some((consent) => consent.status === 'active' && consent.period_start >= '2099')).toBe(true);
    expect(research.some((consent) => consent.period_start >= '2099')).toBe(false);
  });
});

describe('development principals file', () => {
  it('round-trips through <dataDir>/dev-principals.json and is absent before the first write', async () => {
    expect(await readDevelopmentPrincipals(primary.dataDir)).toBeUndefined();
    await writeDevelopmentPrincipals(primary.dataDir, primary.summary.principals);
    expect(await readDevelopmentPrincipals(primary.dataDir)).toEqual(primary.summary.principals);
  });
});
