import { createCipheriv, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEntries } from '../src/audit/index.js';
import { toBuffer } from '../src/crypto/index.js';
import type { LocalKeyManagement } from '../src/crypto/key-management.js';
import { openSealer, reencryptOldRows } from '../src/db/encryption.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * An insider who can add, copy and edit rows of `data_key` and of the
 * encrypted tables, but holds no key: found by the review of issue 14's
 * first cut, each attack here now fails. The data key's own id is bound
 * into its wrapping, so a copy of a key under a new id does not unwrap;
 * keys that do not unwrap are skipped, never written with; re-encryption
 * moves values to the keys the cipher really writes with, visits each row
 * once, and steps over a value that does not decrypt instead of stopping.
 */
let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 10 });
});

afterAll(async () => {
  await stack?.stop();
});

const keyIdOf = (stored: Uint8Array) => toBuffer(stored).readUInt32BE(2);

describe('data_key rows an insider adds', () => {
  it('a copy of a rotated-away key under a new id is never made current: new PHI is not written under the old key', async () => {
    const db = stack.api.db!;
    const [old] = await stack.sql<{ id: number; wrapped: Uint8Array }>(`select id, wrapped from data_key where scope = 'patient/contact' order by id desc limit 1`);
    const operator = await openSealer(db, stack.config.keys);
    await operator.cipher.startNewDataKeys();
    expect((await reencryptOldRows(db, operator)).unreadable).toEqual([]);
    const [planted] = await stack.sql<{ id: number }>(
      `insert into data_key (kek_version, scope, wrapped, created_at) select kek_version, scope, wrapped, now() from data_key where id = ? returning id`,
      [old!.id],
    );
    await stack.api.sealer!.cipher.refresh(); // what the timer does
    expect(stack.api.sealer!.cipher.unusableKeys.map((key) => key.id)).toContain(Number(planted!.id));
    const patient = await stack.token('patient');
    const written = await post(stack.gatewayUrl, 'mutation { updateMyContact(input: { phone: "+1-617-555-0142" }) { ok } }', { token: patient });
    expect(written.body.errors).toBeUndefined();
    const [row] = await stack.sql<{ phone: Uint8Array }>('select phone from patient where id = ?', [stack.principals.patient.patientId]);
    expect(keyIdOf(row!.phone)).not.toBe(Number(planted!.id));
    const [usedKey] = await stack.sql<{ wrapped: Uint8Array }>('select wrapped from data_key where id = ?', [keyIdOf(row!.phone)]);
    expect(toBuffer(usedKey!.wrapped).equals(toBuffer(old!.wrapped))).toBe(false);
    // Re-encryption does not move values onto it either.
    await reencryptOldRows(db, await openSealer(db, stack.config.keys));
    const id = Buffer.alloc(4);
    id.writeUInt32BE(Number(planted!.id));
    const [onPlanted] = await stack.sql<{ n: number }>(`select count(*)::int as n from patient where substring(phone from 3 for 4) = ?`, [id]);
    expect(onPlanted!.n).toBe(0);
  });

  it('a data key from before scopes (AES key wrap), copied into rows with scopes, unwraps for none of them', async () => {
    const db = stack.api.db!;
    const kms = stack.api.sealer!.cipher.keyService as LocalKeyManagement;
    const version = kms.currentVersion();
    const kw = createCipheriv('id-aes256-wrap', kms.ring.keyBytes(version)!, Buffer.from('A6A6A6A6A6A6A6A6', 'hex'));
    const legacyWrapped = Buffer.concat([kw.update(randomBytes(32)), kw.final()]);
    const [legacy] = await stack.sql<{ id: number }>(`insert into data_key (kek_version, scope, wrapped, created_at) values (?, null, ?, now()) returning id`, [version, legacyWrapped]);
    try {
      for (const scope of ['clinical_note/clinicalNote', 'patient/ssn']) {
        await stack.sql(`insert into data_key (kek_version, scope, wrapped, created_at) select kek_version, ?, wrapped, now() from data_key where id = ?`, [scope, legacy!.id]);
      }
      const victim = await openSealer(db, stack.config.keys);
      expect(victim.cipher.unusableKeys.map((key) => key.scope)).toEqual(expect.arrayContaining(['clinical_note/clinicalNote', 'patient/ssn']));
      const note = await victim.cipher.encrypt('note text', { table: 'clinical_note', column: 'text', rowId: 'r1' });
      const ssn = await victim.cipher.encrypt('123-45-6789', { table: 'patient', column: 'ssn', rowId: 'r2' });
      const rows = await stack.sql<{ wrapped: Uint8Array; scope: string }>('select wrapped, scope from data_key where id in (?, ?)', [keyIdOf(note), keyIdOf(ssn)]);
      expect(rows.some((row) => toBuffer(row.wrapped).equals(legacyWrapped))).toBe(false);
      expect(rows.map((row) => row.scope).sort()).toEqual(['clinical_note/clinicalNote', 'patient/ssn']);
    } finally {
      await stack.sql(`delete from data_key where wrapped = ?`, [legacyWrapped]);
    }
  });

  it('a junk key row with the highest id makes no new key per refresh, and re-encryption still ends', async () => {
    const db = stack.api.db!;
    const scope = 'observation/observation';
    await stack.sql(`insert into data_key (id, kek_version, scope, wrapped, created_at) values (2147483000, 1, ?, ?, now())`, [scope, randomBytes(61)]);
    try {
      const count = async () => (await stack.sql<{ n: number }>('select count(*)::int as n from data_key where scope = ?', [scope]))[0]!.n;
      const sealer = await openSealer(db, stack.config.keys);
      const before = await count();
      for (let refresh = 0; refresh < 3; refresh += 1) await sealer.cipher.refresh();
      expect(await count()).toBe(before);
      expect(sealer.cipher.unusableKeys.map((key) => key.id)).toContain(2147483000);
      await sealer.cipher.startNewDataKeys();
      const [{ n: rows }] = (await stack.sql<{ n: number }>('select count(*)::int as n from observation where value is not null')) as [{ n: number }];
      let rewrites = 0;
      await reencryptOldRows(db, sealer, { batchSize: 2, onProgress: ({ table, done }) => table === 'observation' && (rewrites = done) });
      expect(rewrites).toBeGreaterThan(0);
      expect(rewrites).toBeLessThanOrEqual(rows);
      expect((await reencryptOldRows(db, sealer)).rows).toBe(0);
    } finally {
      await stack.sql('delete from data_key where id = 2147483000');
    }
  });
});

describe('stored values an insider edits', () => {
  it('one tampered value is reported by keys:reencrypt, which moves every other row', async () => {
    const db = stack.api.db!;
    const operator = await openSealer(db, stack.config.keys);
    const oldIds = new Set((await stack.sql<{ id: number }>('select id from data_key')).map((row) => Number(row.id)));
    await operator.cipher.startNewDataKeys();
    const [first] = await stack.sql<{ id: string; ssn: Uint8Array }>('select id, ssn from patient where ssn is not null order by id limit 1');
    const tampered = Buffer.from(toBuffer(first!.ssn));
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 1;
    await stack.sql('update patient set ssn = ? where id = ?', [tampered, first!.id]);
    try {
      const result = await reencryptOldRows(db, await openSealer(db, stack.config.keys));
      expect(result.unreadable).toEqual([{ table: 'patient', column: 'ssn', rowId: first!.id, reason: 'DECRYPTION_FAILED' }]);
      expect(result.rows).toBeGreaterThan(0);
      const notes = await stack.sql<{ text: Uint8Array }>('select text from clinical_note where text is not null');
      expect(notes.length).toBeGreaterThan(0);
      expect(notes.filter((note) => oldIds.has(keyIdOf(note.text)))).toEqual([]);
      // Run again: only the tampered row is left, reported again, nothing else to do.
      const again = await reencryptOldRows(db, await openSealer(db, stack.config.keys));
      expect(again).toEqual({ rows: 0, unreadable: result.unreadable });
    } finally {
      await stack.sql('update patient set ssn = ? where id = ?', [toBuffer(first!.ssn), first!.id]);
    }
  });

  it('a header naming a data key nobody has fails as DECRYPTION_FAILED and is audited as failed', async () => {
    const [target] = await stack.sql<{ id: string; ssn: Uint8Array }>('select id, ssn from patient where managing_organization_id = ? and ssn is not null order by id limit 1', [
      stack.principals.billing.organizationId,
    ]);
    const edited = Buffer.from(toBuffer(target!.ssn));
    edited.writeUInt32BE(0xffffffff, 2);
    await stack.sql('update patient set ssn = ? where id = ?', [edited, target!.id]);
    try {
      const requestId = `unknown-key-${Date.now()}`;
      const token = await stack.token('billing');
      const response = await post(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { id ssn } }', { token, variables: { id: target!.id }, headers: { 'x-request-id': requestId } });
      const audited = await stack.sql<{ outcome: string; reason: string }>(
        `select f->>'outcome' as outcome, f->>'reason' as reason from ${auditEntries()} as entry, jsonb_array_elements(entry.fields) as f where request_id = ? and f->>'field' = 'Patient.ssn'`,
        [requestId],
      );
      expect(response.body.errors?.map((error) => [error.extensions?.['code'], error.extensions?.['reason']])).toEqual([['DECRYPTION_FAILED', 'KEY_UNKNOWN']]);
      expect(audited).toEqual([{ outcome: 'failed', reason: 'KEY_UNKNOWN' }]);
    } finally {
      await stack.sql('update patient set ssn = ? where id = ?', [toBuffer(target!.ssn), target!.id]);
    }
  });
});
