export { CryptoError, type CryptoFailure } from './errors.js';
export { FORMAT_VERSION, LEGACY_FORMAT_VERSION, decodeEnvelope, encodeEnvelope, header as envelopeHeader, legacyHeader as legacyEnvelopeHeader } from './envelope.js';
export {
  DEVELOPMENT_KEY_RING_FILE,
  KeyRing,
  SecretIndexKeys,
  type IndexKeys,
  addKeyVersion,
  generateKeyRingDocument,
  keyRingSchema,
  loadOrCreateDevelopmentKeyRing,
  retireKeyVersions,
  saveDevelopmentKeyRing,
  type DerivedKeyPurpose,
  type KeyRingDocument,
} from './key-ring.js';
export { LocalKeyManagement, type KeyManagementService, type KeyServiceCalls } from './key-management.js';
export {
  COLUMN_SCOPES,
  DEFAULT_DATA_KEY_CACHE,
  FieldCipher,
  dataKeyContext,
  type DataKeyCacheOptions,
  type DataKeyStore,
  type FieldLocation,
  type KeyScopes,
  type StoredDataKey,
} from './field-cipher.js';
export { blindIndex, normalize } from './blind-index.js';
export { isSealed, openPlaintextForBenchmark, Sealed, SealedColumn, toBuffer, unseal, type AnySealed, type SealedPart } from './sealed.js';
export { CursorSealer, canonicalFilter, type CursorBinding } from './cursor.js';
export { StudyPseudonyms } from './pseudonym.js';
export { defaultGcm, nodeCryptoGcm, type GcmDecryptor, type NativeCryptoSetting } from './aes-gcm.js';
