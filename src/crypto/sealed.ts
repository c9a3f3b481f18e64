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

/** Decrypts every part and builds the value; plaintext exists only inside this call's result. */
export async function unseal<T>(sealed: Sealed<T>, cipher: FieldCipher): Promise<T> {
  const plaintexts = await Promise.all(
    sealed.parts.map((part) => (part.encrypted ? cipher.decrypt(toBuffer(part.stored), part.location) : Promise.resolve(toBuffer(part.stored).toString('utf8')))),
  );
  return sealed.open(plaintexts);
}
