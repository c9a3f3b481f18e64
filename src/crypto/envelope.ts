import { CryptoError } from './errors.js';

/**
 * The stored form of an encrypted value (bytea). Format 2, written now:
 *
 *   offset  size  field
 *   0       1     format version (2)
 *   1       1     algorithm (1: AES-256-GCM, 96-bit nonce, 128-bit tag)
 *   2       4     data key id, unsigned big-endian
 *   6       12    nonce (random per value)
 *   18      n     ciphertext
 *   18+n    16    authentication tag
 *
 * Format 1 (values written before format 2, read until re-encrypted) has no
 * algorithm byte: `1 | data key id (4) | nonce | ciphertext | tag`, always
 * AES-256-GCM.
 *
 * Everything that decides how the value is read (format, algorithm, data
 * key id) is in the header, and the header is the start of the associated
 * data: changing any byte of it (a downgrade to format 1, another algorithm
 * or key id) makes the value fail authentication. A format or algorithm this
 * build does not know is refused before any key is touched.
 */
export const FORMAT_VERSION = 2;
export const LEGACY_FORMAT_VERSION = 1;
export const ALGORITHM_AES_256_GCM = 1;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const HEADER_BYTES = 6;
export const LEGACY_HEADER_BYTES = 5;

export interface Envelope {
  format: number;
  /** Length of the header, which the associated data starts with. */
  headerBytes: number;
  dataKeyId: number;
  nonce: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

export function header(dataKeyId: number): Buffer {
  const bytes = Buffer.alloc(HEADER_BYTES);
  bytes.writeUInt8(FORMAT_VERSION, 0);
  bytes.writeUInt8(ALGORITHM_AES_256_GCM, 1);
  bytes.writeUInt32BE(dataKeyId, 2);
  return bytes;
}

/** The header of a format 1 value under a data key: how re-encryption and retirement find such values in SQL. */
export function legacyHeader(dataKeyId: number): Buffer {
  const bytes = Buffer.alloc(LEGACY_HEADER_BYTES);
  bytes.writeUInt8(LEGACY_FORMAT_VERSION, 0);
  bytes.writeUInt32BE(dataKeyId, 1);
  return bytes;
}

export function encodeEnvelope(envelope: Pick<Envelope, 'dataKeyId' | 'nonce' | 'ciphertext' | 'tag'>): Buffer {
  return Buffer.concat([header(envelope.dataKeyId), envelope.nonce, envelope.ciphertext, envelope.tag]);
}

/** The header of a stored envelope, checked (format, algorithm, length), without copying or slicing anything: read for every value. */
export function readEnvelopeHead(bytes: Buffer): Pick<Envelope, 'format' | 'headerBytes' | 'dataKeyId'> {
  const format = bytes.length > 0 ? bytes.readUInt8(0) : -1;
  if (format === FORMAT_VERSION) {
    if (bytes.length < HEADER_BYTES + NONCE_BYTES + TAG_BYTES) throw new CryptoError('MALFORMED_CIPHERTEXT', 'too short');
    const algorithm = bytes.readUInt8(1);
    if (algorithm !== ALGORITHM_AES_256_GCM) throw new CryptoError('MALFORMED_CIPHERTEXT', `algorithm ${algorithm}`);
    return { format, headerBytes: HEADER_BYTES, dataKeyId: bytes.readUInt32BE(2) };
  }
  if (format === LEGACY_FORMAT_VERSION) {
    if (bytes.length < LEGACY_HEADER_BYTES + NONCE_BYTES + TAG_BYTES) throw new CryptoError('MALFORMED_CIPHERTEXT', 'too short');
    return { format, headerBytes: LEGACY_HEADER_BYTES, dataKeyId: bytes.readUInt32BE(1) };
  }
  throw new CryptoError('MALFORMED_CIPHERTEXT', format < 0 ? 'empty' : `format version ${format}`);
}

export function decodeEnvelope(bytes: Buffer): Envelope {
  const { format, headerBytes, dataKeyId } = readEnvelopeHead(bytes);
  return {
    format,
    headerBytes,
    dataKeyId,
    nonce: bytes.subarray(headerBytes, headerBytes + NONCE_BYTES),
    ciphertext: bytes.subarray(headerBytes + NONCE_BYTES, bytes.length - TAG_BYTES),
    tag: bytes.subarray(bytes.length - TAG_BYTES),
  };
}
