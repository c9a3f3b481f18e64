/**
 * What a call to the key-encryption keys costs: wrapping and unwrapping a
 * data key with the key ring (in memory) and with an HSM over PKCS#11
 * (SoftHSM2, a software token: a network HSM adds its round trip on top),
 * interleaved call by call so both see the same machine. Data keys are
 * cached once unwrapped (at most 64, 15 minutes), so this is paid once per
 * data key per process per 15 minutes, not per value.
 *
 *   npm run bench:keys [-- --calls 400]
 *
 * Needs softhsm2-util and the pkcs11js package for the HSM column (skipped
 * with a message otherwise). Writes to stdout only.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { generateKeyRingDocument, KeyRing } from '../src/crypto/key-ring.js';
import { LocalKeyManagement, type KeyManagementService } from '../src/crypto/key-management.js';
import { dataKeyContext } from '../src/crypto/field-cipher.js';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '400' } } });
const calls = Number(values.calls);
const MODULE = process.env.SOFTHSM2_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so';

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - started) / 1000;
}

const ring = new LocalKeyManagement(KeyRing.fromDocument(generateKeyRingDocument(false)));
const services: { name: string; kms: KeyManagementService }[] = [{ name: 'key ring (memory)', kms: ring }];
const folder = await mkdtemp(join(tmpdir(), 'phi-bench-keys-'));
try {
  try {
    execFileSync('bash', [resolve(import.meta.dirname, '../scripts/softhsm-token.sh'), folder, 'bench', '1234', '5678'], { stdio: 'ignore' });
    process.env.SOFTHSM2_CONF = join(folder, 'softhsm2.conf');
    const { Pkcs11KeyManagement } = await import('../src/crypto/pkcs11-key-management.js');
    const hsm = await Pkcs11KeyManagement.open({ modulePath: MODULE, tokenLabel: 'bench', pin: '1234', allowEmpty: true });
    await hsm.generateNextKek();
    services.push({ name: 'PKCS#11 (SoftHSM2)', kms: hsm });
  } catch (error) {
    console.error(`HSM column skipped: ${(error as Error).message}`);
  }
  const context = dataKeyContext(1, 1, 'patient/ssn');
  const samples = new Map(services.map(({ name }) => [name, { wrap: [] as number[], unwrap: [] as number[] }]));
  for (let call = 0; call < calls; call += 1) {
    for (const { name, kms } of services) {
      const dataKey = randomBytes(32);
      let wrapped: Buffer = Buffer.alloc(0);
      const wrap = await timed(async () => ({ wrapped } = await kms.wrapDataKey(dataKey, context)));
      const unwrap = await timed(() => kms.unwrapDataKey(1, wrapped, context));
      if (call >= 20) {
        samples.get(name)?.wrap.push(wrap);
        samples.get(name)?.unwrap.push(unwrap);
      }
    }
  }
  console.log(`Key service calls: median microseconds of ${calls - 20} calls each (20 warm-up calls not counted), interleaved. Node ${process.version}.`);
  console.log('| key service | wrap (µs) | unwrap (µs) | unwrap vs the ring |');
  console.log('|---|---|---|---|');
  const base = median(samples.get(services[0]?.name ?? '')?.unwrap ?? []);
  for (const { name, kms } of services) {
    const measured = samples.get(name);
    const unwrap = median(measured?.unwrap ?? []);
    console.log(`| ${name} | ${median(measured?.wrap ?? []).toFixed(1)} | ${unwrap.toFixed(1)} | ${(unwrap / base).toFixed(1)}x |`);
    console.log(`<!-- ${name}: ${JSON.stringify(kms.calls)} -->`);
  }
  for (const { kms } of services) await kms.close?.();
} finally {
  await rm(folder, { recursive: true, force: true });
}
