/** Why a value could not be decrypted. Never carries the value or key bytes. */
export type CryptoFailure =
  /** Not a ciphertext of a format this build reads. */
  | 'MALFORMED_CIPHERTEXT'
  /** Authentication failed: tampered, moved to another row or column, or the wrong key. */
  | 'DECRYPTION_FAILED'
  /** The value is under a key version that has been retired. */
  | 'KEY_RETIRED'
  /** The value names a key that this key ring does not have. */
  | 'KEY_UNKNOWN'
  /** An encrypted column whose row claims to be unencrypted: never read as plaintext (only `data:encrypt` turns such rows into ciphertext). */
  | 'NOT_ENCRYPTED';

export class CryptoError extends Error {
  constructor(
    readonly failure: CryptoFailure,
    detail: string,
  ) {
    super(`${failure}: ${detail}`);
    this.name = 'CryptoError';
  }
}
