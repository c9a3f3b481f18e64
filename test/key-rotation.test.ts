import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addKeyVersion, loadOrCreateDevelopmentKeyRing, retireKeyVersions, saveDevelopmentKeyRing, toBuffer } from '../src/crypto/index.js';
import { ENCRYPTED_TABLES, boundRowId, countRowsUnderKeyVersion, reencryptOldRows } from '../src/db/encryption.js';
import { post, startTestStack, type TestStack } from './support/stack.js';

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ patients: 40 });
});

afterAll(async () => {
  await stack?.stop();
});

/** Every encrypted value of the database, decrypted, by table.column.id. */
async function decryptEverything(): Promise<Map<string, string>> {
  const values = new Map<string, string>();
  const cipher = stack.api.sealer!.cipher;
  for (const [table, spec] of Object.entries(ENCRYPTED_TABLES)) {
    const rows = await stack.api.db!.fork().execute<Record<string, unknown>[]>(`select * from "${table}"`);
    for (const row of rows) {
      for (const column of spec.columns) {
        const stored = row[column] as Uint8Array | null;
        if (stored) values.set(`${table}.${column}.${String(row['id'])}`, await cipher.decrypt(toBuffer(stored), { table, column, rowId: boundRowId(spec, row) }));
      }
    }
  }
  return values;
}

describe('key rotation', () => {
  it('re-encrypts every value under the new key while reads go on, loses nothing, and lets the old version retire', async () => {
    const before = await decryptEverything();
    expect(before.size).toBeGreaterThan(300);
    const dataDir = stack.config.database.dataDir;

    await saveDevelopmentKeyRing(dataDir, addKeyVersion(await loadOrCreateDevelopmentKeyRing(dataDir)));
    await stack.restart();
    expect(stack.api.sealer!.cipher.currentKekVersion()).toBe(2);
    expect(await countRowsUnderKeyVersion(stack.api.db!, 1)).toBeGreaterThan(100);

    const token = await stack.token('billing');
    const query = '{ patients(first: 50) { edges { node { id mrn name { text } ssn } } } }';
    let reading = true;
    const failures: unknown[] = [];
    let reads = 0;
    const reader = (async () => {
      while (reading) {
        const response = await post(stack.gatewayUrl, query, { token });
        reads += 1;
        if (response.body.errors) failures.push(response.body.errors);
      }
    })();
    const { rows: rewritten, unreadable } = await reencryptOldRows(stack.api.db!, stack.api.sealer!, { batchSize: 7 });
    reading = false;
    await reader;

    expect(rewritten).toBeGreaterThan(0);
    expect(unreadable).toEqual([]);
    expect(reads).toBeGreaterThan(0);
    expect(failures).toEqual([]);
    expect(await countRowsUnderKeyVersion(stack.api.db!, 1)).toBe(0);
    expect((await reencryptOldRows(stack.api.db!, stack.api.sealer!)).rows).toBe(0);
    expect(await decryptEverything()).toEqual(before);

    await saveDevelopmentKeyRing(dataDir, retireKeyVersions(await loadOrCreateDevelopmentKeyRing(dataDir), [1]));
    await stack.restart();
    const after = await post<{ patients: { edges: unknown[] } }>(stack.gatewayUrl, query, { token });
    expect(after.body.errors).toBeUndefined();
    expect(after.body.data?.patients.edges.length).toBeGreaterThan(0);
    expect(await decryptEverything()).toEqual(before);
  });
});
