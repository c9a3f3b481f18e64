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
  /** False for rows written before encryption (crypto_version 0): the bytes are UTF-8 plaintext. */
  encrypted: boolean;
}

export class Sealed<T = unknown> {
  constructor(
    readonly parts: readonly SealedPart[],
    readonly open: (plaintexts: string[]) => T,
  ) {}

  toJSON(): never {
    throw new Error('A sealed value reached the response without passing the decryption step');
  }

  toString(): string {
    return '[sealed]';
  }
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
export function unseal<T>(sealed: Sealed<T>, cipher: FieldCipher): T | Promise<T> {
  const plaintexts: string[] = [];
  for (const [index, part] of sealed.parts.entries()) {
    const plaintext = part.encrypted ? cipher.decryptIfKeyReady(toBuffer(part.stored), part.location) : toBuffer(part.stored).toString('utf8');
    if (plaintext === undefined) return unsealWaiting(sealed, cipher, plaintexts, index);
    plaintexts.push(plaintext);
  }
  return sealed.open(plaintexts);
}

/** The rest of `unseal` from part `from` on, waiting for keys. */
async function unsealWaiting<T>(sealed: Sealed<T>, cipher: FieldCipher, plaintexts: string[], from: number): Promise<T> {
  for (const part of sealed.parts.slice(from)) {
    plaintexts.push(part.encrypted ? await cipher.decrypt(toBuffer(part.stored), part.location) : toBuffer(part.stored).toString('utf8'));
  }
  return sealed.open(plaintexts);
}
