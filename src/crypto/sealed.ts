import { CryptoError } from './errors.js';
import type { FieldCipher, FieldLocation } from './field-cipher.js';

/**
 * A value still in its stored form. Resolvers of encrypted fields return
 * one; only the policy step that runs after the field's rule allowed it
 * opens it (decrypts, then masks), so a denied or unrequested field is
 * never decrypted. A Sealed value that reached serialization is a bug and
 * fails loudly instead of printing anything.
 */
export interface SealedPart {
  stored: Uint8Array;
  location: FieldLocation;
  /**
   * False for a row marked as written before encryption (crypto_version 0). Such a value is never read:
   * the mark sits outside the envelope, so whoever can write the row could set it and plant a value.
   * `npm run data:encrypt` (and `npm start` outside production) encrypts those rows before they are served.
   */
  encrypted: boolean;
}

/** What every sealed form does when it is printed or serialized instead of opened. */
abstract class SealedValue {
  toJSON(): never {
    throw new Error('A sealed value reached the response without passing the decryption step');
  }

  toString(): string {
    return '[sealed]';
  }
}

export class Sealed<T = unknown> extends SealedValue {
  constructor(
    readonly parts: readonly SealedPart[],
    readonly open: (plaintexts: string[]) => T,
  ) {
    super();
  }
}

/**
 * One stored column's value, sealed, in one object: the common case (a
 * thousand-row page holds one per encrypted field of each row), without the
 * parts array, part and location objects of the general form. `parts` makes
 * them only when asked (an error's coordinate).
 */
export class SealedColumn<T = unknown> extends SealedValue {
  constructor(
    readonly stored: Uint8Array,
    readonly table: string,
    readonly column: string,
    readonly rowId: string,
    /** As SealedPart.encrypted. */
    readonly encrypted: boolean,
    readonly openOne: (plaintext: string) => T,
  ) {
    super();
  }

  get parts(): readonly SealedPart[] {
    return [{ stored: this.stored, location: { table: this.table, column: this.column, rowId: this.rowId }, encrypted: this.encrypted }];
  }
}

export type AnySealed<T = unknown> = Sealed<T> | SealedColumn<T>;

export function isSealed(value: unknown): value is AnySealed {
  return value instanceof SealedValue;
}

export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Decrypts every part and builds the value; plaintext exists only inside
 * this call's result. Synchronous while the data keys are in memory (the
 * usual case: a list of a thousand rows makes no promise per value); it
 * returns a promise only when a key has to be fetched or unwrapped first.
 */
export function unseal<T>(sealed: AnySealed<T>, cipher: FieldCipher): T | Promise<T> {
  if (sealed instanceof SealedColumn) {
    if (!sealed.encrypted) throw notEncrypted(sealed.table, sealed.column);
    const stored = toBuffer(sealed.stored);
    const plaintext = cipher.decryptColumnIfKeyReady(stored, sealed.table, sealed.column, sealed.rowId);
    if (plaintext !== undefined) return sealed.openOne(plaintext);
    return cipher.decrypt(stored, { table: sealed.table, column: sealed.column, rowId: sealed.rowId }).then(sealed.openOne);
  }
  const plaintexts: string[] = [];
  const { parts } = sealed;
  for (let index = 0; index < parts.length; index++) {
    const part = parts[index] as SealedPart;
    refuseUnencrypted(part);
    const plaintext = cipher.decryptIfKeyReady(toBuffer(part.stored), part.location);
    if (plaintext === undefined) return unsealWaiting(sealed, cipher, plaintexts, index);
    plaintexts.push(plaintext);
  }
  return sealed.open(plaintexts);
}

/** The rest of `unseal` from part `from` on, waiting for keys. */
async function unsealWaiting<T>(sealed: Sealed<T>, cipher: FieldCipher, plaintexts: string[], from: number): Promise<T> {
  for (const part of sealed.parts.slice(from)) {
    refuseUnencrypted(part);
    plaintexts.push(await cipher.decrypt(toBuffer(part.stored), part.location));
  }
  return sealed.open(plaintexts);
}

/**
 * Benchmarks only (the plaintext copies of `npm run bench`, whose rows are
 * marked crypto_version 0): the stored bytes read as UTF-8, to measure the
 * API without decryption. The runtime refuses the setting in production.
 */
export function openPlaintextForBenchmark<T>(sealed: AnySealed<T>): T {
  if (sealed instanceof SealedColumn) return sealed.openOne(toBuffer(sealed.stored).toString('utf8'));
  return sealed.open(sealed.parts.map((part) => toBuffer(part.stored).toString('utf8')));
}

/** An encrypted column never serves plaintext, whatever the row says of itself. */
function refuseUnencrypted(part: SealedPart): void {
  if (!part.encrypted) throw notEncrypted(part.location.table, part.location.column);
}

function notEncrypted(table: string, column: string): CryptoError {
  return new CryptoError('NOT_ENCRYPTED', `${table}.${column} of a row marked as not encrypted`);
}
