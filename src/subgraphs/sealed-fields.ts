import { Sealed, type SealedPart } from '../crypto/index.js';
import { CRYPTO_VERSION_ENCRYPTED } from '../db/encryption.js';

/**
 * What resolvers of @encrypted fields return: the stored bytes, sealed,
 * with how to build the field's value from the plaintext. The policy step
 * (policy/shield.ts) opens it only after the field's rule allowed the read.
 *
 * The return type is the field's value type on purpose: the generated
 * resolver types describe what the client receives, and the policy step
 * guarantees the Sealed never reaches the client unopened (a test and the
 * Sealed's own toJSON make sure).
 */
export function sealed<T>(
  table: string,
  row: { id: string; cryptoVersion: number },
  columns: Readonly<Record<string, Uint8Array | null | undefined>>,
  open: (plaintext: Readonly<Record<string, string>>) => T,
): T | null {
  const names = Object.keys(columns);
  const parts: SealedPart[] = [];
  for (const column of names) {
    const stored = columns[column];
    if (stored === null || stored === undefined) return null;
    parts.push({ stored, location: { table, column, rowId: row.id }, encrypted: row.cryptoVersion === CRYPTO_VERSION_ENCRYPTED });
  }
  return new Sealed(parts, (plaintexts) => open(Object.fromEntries(names.map((name, index) => [name, plaintexts[index] ?? ''])))) as unknown as T;
}
