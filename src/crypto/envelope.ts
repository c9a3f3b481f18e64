import { CryptoError } from './errors.js';

/**
 * The stored form of an encrypted value (bytea):
 *
 *   offset  size  field
 *   0       1     format version (1)
 *   1       4     data key id, unsigned big-endian
 *   5       12    nonce (random per value)
 *   17      n     AES-256-GCM ciphertext
 *   17+n    16    GCM authentication tag
 *
 * The first five bytes are also authenticated (they are part of the
 * associated data), so the header cannot be altered either.
 */
export const FORMAT_VERSION = 1;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const HEADER_BYTES = 5;
const DATA_KEY_ID_OFFSET = 1;
const MINIMUM_BYTES = HEADER_BYTES + NONCE_BYTES + TAG_BYTES;

export interface Envelope {
  dataKeyId: number;
  nonce: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

export function header(dataKeyId: number): Buffer {
  const bytes = Buffer.alloc(HEADER_BYTES);
  bytes.writeUInt8(FORMAT_VERSION, 0);
  bytes.writeUInt32BE(dataKeyId, DATA_KEY_ID_OFFSET);
  return bytes;
}

export function encodeEnvelope(envelope: Envelope): Buffer {
  return Buffer.concat([header(envelope.dataKeyId), envelope.nonce, envelope.ciphertext, envelope.tag]);
}

export function decodeEnvelope(bytes: Buffer): Envelope {
  if (bytes.length < MINIMUM_BYTES) throw new CryptoError('MALFORMED_CIPHERTEXT', 'too short');
  if (bytes.readUInt8(0) !== FORMAT_VERSION) throw new CryptoError('MALFORMED_CIPHERTEXT', `format version ${bytes.readUInt8(0)}`);
  return {
    dataKeyId: bytes.readUInt32BE(DATA_KEY_ID_OFFSET),
    nonce: bytes.subarray(HEADER_BYTES, HEADER_BYTES + NONCE_BYTES),
    ciphertext: bytes.subarray(HEADER_BYTES + NONCE_BYTES, bytes.length - TAG_BYTES),
    tag: bytes.subarray(bytes.length - TAG_BYTES),
  };
}
