import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type * as Pkcs11 from 'pkcs11js';
import { describe, it } from 'vitest';

/**
 * What the HSM tests need (SoftHSM2's tools and module, and the optional
 * pkcs11js package), found once per test file. Missing pieces skip the
 * tests with a warning, or fail them when REQUIRE_HSM=1 (CI).
 */
const ROOT = resolve(import.meta.dirname, '../..');
export const TOKEN_SCRIPT = join(ROOT, 'scripts/softhsm-token.sh');
const MODULE_CANDIDATES = [
  process.env.SOFTHSM2_MODULE,
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
  '/opt/homebrew/lib/softhsm/libsofthsm2.so',
];

export const pkcs11js: typeof Pkcs11 | undefined = await import('pkcs11js').then(
  (imported) => imported.default,
  () => undefined,
);
export const softHsmModule = MODULE_CANDIDATES.find((candidate) => candidate !== undefined && existsSync(candidate)) ?? '';
export const hsmMissing = [
  ...(spawnSync('softhsm2-util', ['--version']).status === 0 ? [] : ['softhsm2-util is not installed (apt-get install softhsm2)']),
  ...(softHsmModule ? [] : [`the SoftHSM2 PKCS#11 module is not in ${MODULE_CANDIDATES.filter(Boolean).join(', ')} (set SOFTHSM2_MODULE)`]),
  ...(pkcs11js ? [] : ['the optional package pkcs11js is not installed or did not build (npm install)']),
];

/** Warns (or, with REQUIRE_HSM=1, registers a failing test) when something is missing; call once at the top of a test file. */
export function reportHsmPrerequisites(): void {
  const required = process.env.REQUIRE_HSM === '1';
  if (hsmMissing.length > 0 && !required) {
    // eslint-disable-next-line no-console -- say why a whole feature's tests did not run
    console.warn(`HSM tests skipped: ${hsmMissing.join('; ')}. Set REQUIRE_HSM=1 to make this a failure.`);
  }
  if (hsmMissing.length > 0 && required) {
    describe('HSM test prerequisites', () => {
      it('are installed, since REQUIRE_HSM=1', () => {
        throw new Error(`REQUIRE_HSM=1 but ${hsmMissing.join('; ')}`);
      });
    });
  }
}

/** A throwaway SoftHSM2 token in `folder` (scripts/softhsm-token.sh); returns its SOFTHSM2_CONF path. */
export function createSoftHsmToken(folder: string, label: string, pin: string, soPin: string): string {
  execFileSync('bash', [TOKEN_SCRIPT, folder, label, pin, soPin], { encoding: 'utf8' });
  return join(folder, 'softhsm2.conf');
}
