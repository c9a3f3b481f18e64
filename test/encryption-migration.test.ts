import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toBuffer } from '../src/crypto/index.js';
import { openDatabase } from '../src/db/index.js';
import { blindIndexOf, encryptPlaintextRows, openSealer } from '../src/db/encryption.js';
import { createScratchDatabase, resolveServices } from './support/services.js';

/**
 * A database seeded before field encryption keeps working: the schema
 * migration keeps its values (as plaintext bytes, crypto_version 0), and the
 * data migration encrypts them in batches, resumable and idempotent.
 */
describe('the plaintext-to-ciphertext migration', () => {
  it('encrypts a database from before encryption in place, survives an interruption, and runs again as a no-op', async () => {
    const services = await resolveServices();
    const dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-encryption-migration-'));
    const scratch = services.postgresUrl ? await createScratchDatabase(services.postgresUrl) : null;
    const db = await openDatabase({ url: scratch?.url, dataDir });
    try {
      await db.orm.migrator.up({ to: 'Migration20261125130000EmergencyAccess' });
      const em = db.fork();
      const organization = randomUUID();
      await em.execute(`insert into organization (id, name, type) values (?, 'Old Hospital', 'provider')`, [organization]);
      const patients = Array.from({ length: 5 }, (_, index) => ({
        id: randomUUID(),
        mrn: `MRN0000000${index}`,
        ssn: `900-00-000${index}`,
        email: `old.patient.${index}@example.test`,
      }));
      for (const patient of patients) {
        await em.execute(
          `insert into patient (id, mrn, given_names, family_name, birth_date, gender, ssn, address_lines, city, state, postal_code, phone, email, managing_organization_id)
           values (?, ?, '{"Ada","Mae"}', 'Lovelace', '1950-12-10', 'female', ?, '{"1 Old Rd"}', 'Boston', 'MA', '02118', '+1-617-555-0100', ?, ?)`,
          [patient.id, patient.mrn, patient.ssn, patient.email, organization],
        );
        await em.execute(`insert into clinical_note (id, patient_id, type_code, type_display, text, created_at) values (?, ?, '11506-3', 'Progress note', 'Old note text', now())`, [randomUUID(), patient.id]);
        await em.execute(`insert into condition (id, patient_id, code, display, clinical_status, recorded_date) values (?, ?, 'I10', 'Essential hypertension', 'active', '2020-01-01')`, [randomUUID(), patient.id]);
        await em.execute(`insert into observation (id, patient_id, loinc_code, display, value, unit, effective_at) values (?, ?, '8480-6', 'Systolic', '128', 'mm[Hg]', now())`, [randomUUID(), patient.id]);
        await em.execute(`insert into coverage (id, patient_id, payer, member_id, plan, status, period_start) values (?, ?, 'Payer', 'XKJ123456789', 'Gold', 'active', now())`, [randomUUID(), patient.id]);
        await em.execute(`insert into claim (id, patient_id, status, total_cents, currency, diagnosis_codes, created_at) values (?, ?, 'submitted', 1000, 'USD', '{"I10"}', now())`, [randomUUID(), patient.id]);
      }

      await db.migrate();
      const [kept] = await db.fork().execute<{ name: Uint8Array; crypto_version: number }[]>('select name, crypto_version from patient where id = ?', [patients[0]?.id]);
      expect(Number(kept?.crypto_version)).toBe(0);
      expect(JSON.parse(toBuffer(kept!.name).toString('utf8'))).toEqual({ given: ['Ada', 'Mae'], family: 'Lovelace' });

      const sealer = await openSealer(db, { service: 'ring', dataDir, allowDevelopmentRing: true });
      let batches = 0;
      await expect(
        encryptPlaintextRows(db, sealer, {
          batchSize: 2,
          onProgress: () => {
            batches += 1;
            if (batches === 2) throw new Error('interrupted');
          },
        }),
      ).rejects.toThrow('interrupted');
      const [partial] = await db.fork().execute<{ plain: string }[]>('select count(*) as plain from patient where crypto_version = 0');
      expect(Number(partial?.plain)).toBeGreaterThan(0);
      expect(Number(partial?.plain)).toBeLessThan(patients.length);

      expect(await encryptPlaintextRows(db, sealer, { batchSize: 2 })).toBeGreaterThan(0);
      expect(await encryptPlaintextRows(db, sealer)).toBe(0);

      for (const patient of patients) {
        const [row] = await db.fork().execute<Record<string, Uint8Array | number>[]>('select * from patient where id = ?', [patient.id]);
        expect(Number(row?.['crypto_version'])).toBe(1);
        const open = (column: string) => sealer.cipher.decrypt(toBuffer(row![column] as Uint8Array), { table: 'patient', column, rowId: patient.id });
        expect(await open('mrn')).toBe(patient.mrn);
        expect(await open('ssn')).toBe(patient.ssn);
        expect(await open('birth_date')).toBe('1950-12-10');
        expect(JSON.parse(await open('address_lines'))).toEqual(['1 Old Rd']);
        expect(toBuffer(row!['mrn_index'] as Uint8Array).equals(blindIndexOf(sealer.indexKeys, 'mrn', patient.mrn))).toBe(true);
      }
      const [claim] = await db.fork().execute<{ id: string; diagnosis_codes: Uint8Array }[]>('select id, diagnosis_codes from claim limit 1');
      expect(JSON.parse(await sealer.cipher.decrypt(toBuffer(claim!.diagnosis_codes), { table: 'claim', column: 'diagnosis_codes', rowId: claim!.id }))).toEqual(['I10']);
      const [leftover] = await db.fork().execute<{ n: string }[]>(
        `select (select count(*) from patient where crypto_version = 0) + (select count(*) from clinical_note where crypto_version = 0)
          + (select count(*) from condition where crypto_version = 0) + (select count(*) from observation where crypto_version = 0)
          + (select count(*) from coverage where crypto_version = 0) + (select count(*) from claim where crypto_version = 0) as n`,
      );
      expect(Number(leftover?.n)).toBe(0);
    } finally {
      await db.close();
      await scratch?.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
