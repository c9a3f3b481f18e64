import type { ConnectionOptions } from 'node:tls';
import { isIP } from 'node:net';
import { readCaBundle, readCertificatePair } from './certificates.js';
import { isLoopbackHost } from './endpoints.js';
import { TLS_MIN_VERSION } from './policy.js';

/** Redis over TLS: a `rediss://` URL, the CAs its certificate must chain to, and a client certificate when Redis asks for one (tls-auth-clients). */
export interface RedisTlsFiles {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

export interface RedisTransport {
  tls: boolean;
  host: string;
  loopback: boolean;
}

/**
 * Why a REDIS_URL cannot be used, or null. Query parameters are refused:
 * ioredis copies them into its options ahead of ours, so `?tls=` would
 * connect in plaintext under a rediss:// URL and `?tls=x` would drop the CA.
 */
export function redisUrlProblem(url: string): string | null {
  const parsed = new URL(url);
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') return 'REDIS_URL must start with redis:// or rediss://';
  if (parsed.search !== '') return 'REDIS_URL takes no query parameters (TLS comes from rediss:// with REDIS_CA_FILE, REDIS_CLIENT_CERT_FILE and REDIS_CLIENT_KEY_FILE)';
  if (parsed.hostname === '') return 'REDIS_URL needs a host';
  return null;
}

/** What a REDIS_URL says about its transport (the URL is checked by config.ts before). */
export function redisTransport(url: string): RedisTransport {
  const parsed = new URL(url);
  return { tls: parsed.protocol === 'rediss:', host: parsed.hostname, loopback: isLoopbackHost(parsed.hostname) };
}

/**
 * ioredis's `tls` option for a `rediss://` URL: the server's certificate is
 * verified (against REDIS_CA_FILE, or the system's CAs) and must name the
 * host connected to; the client certificate is sent when configured.
 * Undefined for `redis://` (config.ts refuses TLS files with it).
 */
export function redisTlsOptions(url: string, files: RedisTlsFiles): ConnectionOptions | undefined {
  const parsed = new URL(url);
  if (parsed.protocol !== 'rediss:') return undefined;
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  const pair = files.certFile && files.keyFile ? readCertificatePair({ certFile: files.certFile, keyFile: files.keyFile }, { cert: 'REDIS_CLIENT_CERT_FILE', key: 'REDIS_CLIENT_KEY_FILE' }) : null;
  return {
    minVersion: TLS_MIN_VERSION,
    rejectUnauthorized: true,
    // SNI takes a name, not an address; the certificate is checked against either.
    ...(isIP(host) === 0 && { servername: host }),
    ...(files.caFile && { ca: readCaBundle(files.caFile, 'REDIS_CA_FILE') }),
    ...(pair && { cert: pair.cert, key: pair.key }),
  };
}
