/**
 * The TLS every listener and client of this API speaks: TLS 1.2 at least,
 * and, for TLS 1.2, only forward-secret AEAD suites (Mozilla's
 * "intermediate" list); TLS 1.3's suites are all of that kind.
 */
export const TLS_MIN_VERSION = 'TLSv1.2' as const;

export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * Strict-Transport-Security on every response that went over HTTPS (this
 * process's TLS, or a trusted proxy's): browsers use HTTPS only for a year.
 * Not `includeSubDomains`: other services of the organization's domain are
 * not this API's to decide.
 */
export const HSTS_HEADER_VALUE = 'max-age=31536000';
