import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toBuffer } from '../src/crypto/index.js';
import { post, startTestStack, type TestStack } from './support/stack.js';
import { resolveServices } from './support/services.js';

/**
 * Rotation on a running deployment: a server started before the rotation
 * keeps answering every read while `keys:rotate`, `keys:reencrypt`,
 * `keys:rotate-data`, `keys:reencrypt` and `keys:retire` run as separate
 * processes (the commands an operator types), and writes under the new
 * keys afterwards, without a restart. Before issue 14, every encrypted
 * field answered KEY_UNKNOWN here until a restart.
 *
 * PostgreSQL only: with PGlite the commands could not open the database
 * the server holds.
 */
const run = promisify(execFile);
const services = await resolveServices();

let stack: TestStack;

beforeAll(async () => {
  if (!services.postgresUrl) return;
  stack = await startTestStack({ patients: 40, env: { KEY_REFRESH_SECONDS: '1' } });
});

afterAll(async () => {
  await stack?.stop();
});

async function keys(...args: string[]): Promise<string> {
  const { stdout } = await run('node_modules/.bin/tsx', ['src/cli/keys.ts', ...args], {
    env: { ...process.env, DATA_DIR: stack.config.database.dataDir, DATABASE_URL: stack.config.database.url ?? '', NODE_ENV: 'development', LOG_LEVEL: 'silent' },
  });
  return stdout;
}

const LIST = '{ patients(first: 40) { edges { node { id mrn name { text } ssn phone address { city postalCode } } } } }';

describe.skipIf(!services.postgresUrl)('rotation while the API serves (PostgreSQL)', () => {
  it('loses no read through keys:rotate, reencrypt, rotate-data, reencrypt and retire, and writes under the new keys without a restart', async () => {
    const token = await stack.token('billing');
    const reads = { count: 0, failed: [] as unknown[], values: new Set<string>() };
    let reading = true;
    const reader = (async () => {
      while (reading) {
        const response = await post<{ patients: { edges: { node: Record<string, unknown> }[] } }>(stack.gatewayUrl, LIST, { token });
        reads.count += 1;
        if (response.body.errors || response.status !== 200) reads.failed.push({ status: response.status, errors: response.body.errors });
        reads.values.add(JSON.stringify(response.body.data));
      }
    })();
    try {
      expect(await keys('rotate')).toMatch(/version 2 added/);
      expect(await keys('reencrypt', '--batch-size', '7')).toMatch(/Re-encrypted [1-9]\d* rows under key version 2/);
      expect(await keys('rotate-data')).toMatch(/new data keys/);
      expect(await keys('reencrypt', '--batch-size', '7')).toMatch(/Re-encrypted [1-9]\d* rows under key version 2/);
      expect(await keys('retire', '--version', '1')).toMatch(/retired/);
    } finally {
      reading = false;
      await reader;
    }
    expect(reads.count).toBeGreaterThan(5);
    expect(reads.failed).toEqual([]);
    // Every read saw the same data: nothing changed but the keys.
    expect(reads.values.size).toBe(1);

    // The running server now writes under KEK version 2 and the newest data key of the scope (it learns it within KEY_REFRESH_SECONDS).
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(stack.api.sealer?.cipher.currentKekVersion()).toBe(2);
    const patient = await stack.token('patient');
    const written = await post<{ updateMyContact: { ok: boolean } }>(stack.gatewayUrl, 'mutation { updateMyContact(input: { phone: "+1-617-555-0199" }) { ok } }', { token: patient });
    expect(written.body.errors).toBeUndefined();
    const [row] = await stack.sql<{ phone: Uint8Array }>('select phone from patient where id = ?', [stack.principals.patient.patientId]);
    const keyId = toBuffer(row?.phone as Uint8Array).readUInt32BE(2);
    const [newest] = await stack.sql<{ id: number; kek_version: number }>(`select id, kek_version from data_key where scope = 'patient/contact' order by id desc limit 1`);
    expect(keyId).toBe(Number(newest?.id));
    expect(Number(newest?.kek_version)).toBe(2);
    const mine = await post<{ patient: { phone: string } }>(stack.gatewayUrl, 'query($id: ID!) { patient(id: $id) { phone } }', {
      token: patient,
      variables: { id: stack.principals.patient.patientId },
    });
    expect(mine.body.errors).toBeUndefined();
    expect(mine.body.data?.patient.phone).toBe('+1-617-555-0199');
  });
});
