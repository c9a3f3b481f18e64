import { createHmac } from 'node:crypto';

/**
 * Keyed blind indexes: HMAC-SHA-256 under a key of its own over a
 * normalized value. Equal inputs give equal indexes, so an exact lookup
 * (patientByMrn) is an indexed equality without decrypting anything. What
 * it leaks: which rows share a value (equality), nothing about the value
 * itself without the key.
 */
export type Normalizer = (value: string) => string;

export const normalize = {
  mrn: (value: string) => value.trim().toUpperCase(),
  ssn: (value: string) => value.replace(/\D/g, ''),
  email: (value: string) => value.trim().toLowerCase(),
} satisfies Record<string, Normalizer>;

export function blindIndex(key: Buffer, purpose: keyof typeof normalize, value: string): Buffer {
  return createHmac('sha256', key).update(`${purpose}\u0000${normalize[purpose](value)}`, 'utf8').digest();
}
