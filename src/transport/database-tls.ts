import { readFileSync } from 'node:fs';
import { checkServerIdentity, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { isLoopbackHost } from './endpoints.js';
import { TLS_MIN_VERSION } from './policy.js';

/**
 * TLS to PostgreSQL from the connection URL's libpq parameters: `sslmode`,
 * `sslrootcert`, `sslcert`, `sslkey`. MikroORM reads only the host, port,
 * user, password and database of DATABASE_URL and node-postgres maps
 * `sslmode=require` to a verified connection while libpq does not; so the
 * parameters are read here, as libpq documents them, and handed to the
 * driver as its `ssl` option, and the URL the ORM sees carries none of them.
 *
 * - `disable` (or none): no TLS.
 * - `require`: TLS, the server's certificate not checked (any server can answer).
 * - `verify-ca`: the certificate chains to `sslrootcert` (the host name is not checked).
 * - `verify-full`: `verify-ca`, and the certificate names the host connected to.
 *
 * `allow` and `prefer` fall back to plaintext when the server has no TLS:
 * node-postgres cannot, and a silent downgrade is what this is here to
 * stop, so they are refused.
 */

export const DATABASE_SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
export type DatabaseSslMode = (typeof DATABASE_SSL_MODES)[number];

export interface DatabaseTransport {
  /** The URL without its TLS parameters (what the ORM reads). */
  url: string;
  mode: DatabaseSslMode;
  host: string;
  /** The host is this machine (loopback or a Unix socket). */
  loopback: boolean;
  /** What node-postgres gets as `ssl`: false for no TLS. */
  ssl: ConnectionOptions | false;
}

/** A DATABASE_URL whose TLS parameters cannot be used; its message names the parameter, never the URL (it may hold a password). */
export class DatabaseTlsError extends Error {
  override readonly name = 'DatabaseTlsError';
}

/** Read here, never passed on (MikroORM ignores the query string; node-postgres must not see a second opinion). */
const STRIPPED_PARAMETERS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'ssl', 'uselibpqcompat', 'host'] as const;

function readPem(path: string, parameter: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new DatabaseTlsError(`DATABASE_URL ${parameter}: cannot read the file it names (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

export function databaseTransport(databaseUrl: string): DatabaseTransport {
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch {
    throw new DatabaseTlsError('DATABASE_URL is not a URL (postgres://user@host:5432/database?sslmode=verify-full&sslrootcert=/path/ca.pem)');
  }
  const parameters = url.searchParams;
  // MikroORM hands node-postgres the URL's host only; an empty one would make node-postgres use PGHOST, in plaintext.
  const host = decodeURIComponent(url.hostname);
  if (host === '') throw new DatabaseTlsError('DATABASE_URL needs a host (postgres://user@host:5432/database); a Unix socket path in ?host= is not supported');
  if (parameters.has('sslcrl') || parameters.has('sslcrldir')) throw new DatabaseTlsError('DATABASE_URL sslcrl is not supported: revoke by replacing the server certificate and its CA');
  const requested = parameters.get('sslmode') ?? (parameters.get('ssl') === 'true' ? 'verify-full' : 'disable');
  if (requested === 'allow' || requested === 'prefer') {
    throw new DatabaseTlsError(`DATABASE_URL sslmode=${requested} would fall back to plaintext without a word; use sslmode=verify-full (with sslrootcert), require, or disable`);
  }
  if (!(DATABASE_SSL_MODES as readonly string[]).includes(requested)) {
    throw new DatabaseTlsError(`DATABASE_URL sslmode must be one of ${DATABASE_SSL_MODES.join(', ')}`);
  }
  const mode = requested as DatabaseSslMode;
  const rootCert = parameters.get('sslrootcert');
  const clientCert = parameters.get('sslcert');
  const clientKey = parameters.get('sslkey');
  if ((clientCert === null) !== (clientKey === null)) throw new DatabaseTlsError('DATABASE_URL sslcert and sslkey go together (a client certificate and its key)');
  if (mode === 'disable' && (rootCert || clientCert)) throw new DatabaseTlsError('DATABASE_URL names certificates with sslmode=disable; set sslmode=verify-full');
  if ((mode === 'verify-ca' || mode === 'verify-full') && rootCert === 'system') {
    throw new DatabaseTlsError('DATABASE_URL sslrootcert=system is not supported: name the CA file');
  }
  for (const parameter of STRIPPED_PARAMETERS) parameters.delete(parameter);
  const stripped = url.toString();
  const loopback = isLoopbackHost(host);
  if (mode === 'disable') return { url: stripped, mode, host, loopback, ssl: false };
  const ssl: ConnectionOptions = {
    minVersion: TLS_MIN_VERSION,
    ...(clientCert && clientKey && { cert: readPem(clientCert, 'sslcert'), key: readPem(clientKey, 'sslkey') }),
  };
  // libpq: require with a root certificate file verifies the chain, as verify-ca does.
  if (mode === 'require' && !rootCert) return { url: stripped, mode, host, loopback, ssl: { ...ssl, rejectUnauthorized: false } };
  return {
    url: stripped,
    mode,
    host,
    loopback,
    ssl: {
      ...ssl,
      rejectUnauthorized: true,
      // Without sslrootcert, the system's CAs (libpq reads ~/.postgresql/root.crt; a server's own CA is the usual case: name it).
      ...(rootCert && { ca: readPem(rootCert, 'sslrootcert') }),
      // verify-ca: the chain only. verify-full: the certificate must name the host of the URL. node-postgres hands TLS
      // its socket, not the host, so Node's default check compares the certificate with "localhost" whenever the host
      // is an IP address (a certificate for localhost passed for 127.0.0.1, and would for any address): checked here.
      checkServerIdentity: mode !== 'verify-full' ? () => undefined : (_servername: string, certificate: PeerCertificate) => checkServerIdentity(host.replace(/^\[(.*)\]$/, '$1'), certificate),
    },
  };
}
