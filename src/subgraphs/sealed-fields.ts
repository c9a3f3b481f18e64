import { Sealed, SealedColumn, type SealedPart } from '../crypto/index.js';
import { CRYPTO_VERSION_ENCRYPTED } from '../db/encryption.js';
import { labelBinding } from '../policy/sensitivity.js';

/** A stored row: its id, its crypto version and, in labelled tables, its sensitivity labels (bound with the id). */
interface StoredRow {
  id: string;
  cryptoVersion: number;
  securityLabels?: readonly string[] | null;
}

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
  row: StoredRow,
  columns: Readonly<Record<string, Uint8Array | null | undefined>>,
  open: (plaintext: Readonly<Record<string, string>>) => T,
): T | null {
  const names = Object.keys(columns);
  const rowId = labelBinding(row.id, row.securityLabels);
  const parts: SealedPart[] = [];
  for (const column of names) {
    const stored = columns[column];
    if (stored === null || stored === undefined) return null;
    parts.push({ stored, location: { table, column, rowId }, encrypted: row.cryptoVersion === CRYPTO_VERSION_ENCRYPTED });
  }
  return new Sealed(parts, (plaintexts) => open(Object.fromEntries(names.map((name, index) => [name, plaintexts[index] ?? ''])))) as unknown as T;
}

/**
 * `sealed` for a field read from one column, the common case, without
 * the per-value objects of the general form: a list of a thousand rows
 * makes one of these per encrypted field of each row.
 */
export function sealedColumn<T>(
  table: string,
  row: StoredRow,
  column: string,
  stored: Uint8Array | null | undefined,
  open: (plaintext: string) => T,
): T | null {
  if (stored === null || stored === undefined) return null;
  return new SealedColumn(stored, table, column, labelBinding(row.id, row.securityLabels), row.cryptoVersion === CRYPTO_VERSION_ENCRYPTED, open) as unknown as T;
}

/** The plaintext as it is: the open step of most text columns. */
export const asText = (plaintext: string): string => plaintext;

/** A JSON array of strings (address lines, diagnosis codes). */
export const asStringArray = (plaintext: string): string[] => JSON.parse(plaintext || '[]') as string[];
