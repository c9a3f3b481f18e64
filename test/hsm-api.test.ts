import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVELOPMENT_KEY_RING_FILE, toBuffer } from '../src/crypto/index.js';
import { WRAPPED_BYTES } from '../src/crypto/key-management.js';
import { Pkcs11KeyManagement } from '../src/crypto/pkcs11-key-management.js';
import { ENCRYPTED_TABLES, INDEX_KEY_SCOPE, openSealer, reencryptOldRows } from '../src/db/encryption.js';
import { createSoftHsmToken, hsmMissing, reportHsmPrerequisites, softHsmModule } from './support/softhsm.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

/**
 * The whole API with its key-encryption keys in an HSM (SoftHSM2 over
 * PKCS#11): seeded, served, and rotated in the HSM while reads go on. No key
 * ring exists anywhere; the blind-index key is a data key wrapped by the HSM.
 */
reportHsmPrerequisites();

const LABEL = 'phi-api';
const PIN = '2468-api-pin';

let folder: string;
let stack: TestStack;

beforeAll(async () => {
  if (hsmMissing.length > 0) return;
  folder = await mkdtemp(join(tmpdir(), 'phi-hsm-api-'));
  process.env.SOFTHSM2_CONF = createSoftHsmToken(folder, LABEL, PIN, '13579135');
  const first = await Pkcs11KeyManagement.open({ modulePath: softHsmModule, tokenLabel: LABEL, pin: PIN, allowEmpty: true });
  expect(await first.generateNextKek()).toBe(1);
  await first.close();
  stack = await startTestStack({
    patients: 12,
    env: { PHI_KMS: 'pkcs11', PKCS11_MODULE: softHsmModule, PKCS11_TOKEN_LABEL: LABEL, PKCS11_PIN: PIN, KEY_REFRESH_SECONDS: '1' },
  });
});

afterAll(async () => {
  await stack?.stop();
  if (folder) await rm(folder, { recursive: true, force: true });
});

const LIST = '{ patients(first: 12) { edges { node { id mrn name { text } ssn phone } } } }';

describe.skipIf(hsmMissing.length > 0)('the API with its KEKs in an HSM (SoftHSM2)', () => {
  it('seeds and serves encrypted data, with every data key wrapped on the token and no key ring anywhere', async () => {
    expect(stack.api.sealer?.cipher.keyService.description).toContain(LABEL);
    expect(existsSync(join(stack.config.database.dataDir, DEVELOPMENT_KEY_RING_FILE))).toBe(false);
    const token = await stack.token('billing');
    const response = await post<{ patients: { edges: { node: { mrn: string; name: { text: string } } }[] } }>(stack.gatewayUrl, LIST, { token });
    expect(response.body.errors).toBeUndefined();
    expect(response.body.data?.patients.edges.length).toBeGreaterThan(0);
    expect(response.body.data?.patients.edges[0]?.node.name.text).toMatch(/\w+ \w+/);
    // The blind index works (its key is a data key of its own, wrapped by the HSM).
    const mrn = response.body.data?.patients.edges[0]?.node.mrn ?? '';
    const byMrn = await post<{ patientByMrn: { mrn: string } | null }>(stack.gatewayUrl, 'query($mrn: String!) { patientByMrn(mrn: $mrn) { mrn } }', { token, variables: { mrn } });
    expect(byMrn.body.data?.patientByMrn?.mrn).toBe(mrn);

    const keys = await stack.sql<{ scope: string | null; kek_version: number; wrapped: Uint8Array }>('select scope, kek_version, wrapped from data_key');
    expect(keys.map((key) => key.scope)).toContain(INDEX_KEY_SCOPE);
    expect(keys.filter((key) => key.scope === null)).toEqual([]);
    for (const key of keys) expect(toBuffer(key.wrapped).length).toBe(WRAPPED_BYTES);
    expect(stack.api.sealer?.cipher.keyService.calls.unwrap).toBeGreaterThan(0);
  });

  it('learns a KEK generated in the HSM while it runs, and loses no read while values move to it', async () => {
    const token = await stack.token('billing');
    const before = await post(stack.gatewayUrl, LIST, { token });
    const rotation = await Pkcs11KeyManagement.open({ modulePath: softHsmModule, tokenLabel: LABEL, pin: PIN });
    try {
      expect(await rotation.generateNextKek()).toBe(2);
    } finally {
      await rotation.close();
    }
    const failed: unknown[] = [];
    let reading = true;
    const reader = (async () => {
      while (reading) {
        const response = await post(stack.gatewayUrl, LIST, { token });
        if (response.body.errors) failed.push(response.body.errors);
        else expect(response.body.data).toEqual(before.body.data);
      }
    })();
    try {
      const db = stack.api.db;
      if (!db) throw new Error('no database');
      const sealer = await openSealer(db, stack.config.keys);
      try {
        expect(sealer.cipher.currentKekVersion()).toBe(2);
        expect((await reencryptOldRows(db, sealer, { batchSize: 5 })).rows).toBeGreaterThan(0);
      } finally {
        await sealer.cipher.keyService.close?.();
      }
    } finally {
      reading = false;
      await reader;
    }
    expect(failed).toEqual([]);
    const versions = await stack.sql<{ kek_version: number }>('select distinct d.kek_version from data_key d');
    expect(versions.map((row) => Number(row.kek_version)).sort()).toEqual([1, 2]);
    // Every stored value is now under a data key of KEK version 2.
    for (const [table, spec] of Object.entries(ENCRYPTED_TABLES)) {
      const [row] = await stack.sql<{ count: number }>(
        `select count(*)::int as count from "${table}" t where ${spec.columns.map((column) => `exists (select 1 from data_key d where d.kek_version = 1 and substring(t."${column}" from 3 for 4) = int4send(d.id))`).join(' or ')}`,
      );
      expect(row?.count, table).toBe(0);
    }
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(stack.api.sealer?.cipher.currentKekVersion()).toBe(2);
  });

  it('keeps starting when an insider plants a blind-index key wrapping that does not unwrap', async () => {
    await stack.sql(`insert into data_key (kek_version, scope, wrapped, created_at) values (1, ?, ?, now())`, [INDEX_KEY_SCOPE, randomBytes(WRAPPED_BYTES)]);
    const db = stack.api.db;
    if (!db) throw new Error('no database');
    const sealer = await openSealer(db, stack.config.keys);
    try {
      expect(sealer.indexKeys.blindIndexKey().equals(stack.api.sealer?.indexKeys.blindIndexKey() ?? Buffer.alloc(0))).toBe(true);
    } finally {
      await sealer.cipher.keyService.close?.();
    }
  });
});
