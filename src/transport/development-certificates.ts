import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Throwaway certificates for development and the tests: a CA and the
 * certificates it signs, made with the `openssl` command (Debian's
 * `openssl` package), EC P-256 keys, short lifetimes. The CA is named
 * "phi-graph development CA"; nothing made here belongs in production
 * (`npm run tls:dev-certs` refuses NODE_ENV=production).
 */

export const DEVELOPMENT_CA_NAME = 'phi-graph development CA';

export interface Authority {
  name: string;
  certFile: string;
  keyFile: string;
}

export interface IssuedCertificate {
  certFile: string;
  keyFile: string;
}

export interface CertificateRequest {
  /** The file names' stem in the authority's folder, and the subject's common name unless `commonName` is given. */
  name: string;
  commonName?: string;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  /** What the certificate may be used for: a TLS server, a TLS client (mutual TLS), or both. */
  usage: 'server' | 'client' | 'both';
  days?: number;
}

const DEFAULT_DAYS = 30;
/** One openssl command makes one EC key or signs one certificate: well under a second; past this it is stuck. */
const OPENSSL_TIMEOUT_MS = 30_000;

function openssl(args: readonly string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: OPENSSL_TIMEOUT_MS });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('the openssl command is not installed (Debian: apt-get install openssl)');
    throw new Error(`openssl ${args[0]} failed: ${stderr ?? (error as Error).message}`);
  }
}

/** A subject with a common name (openssl's -subj syntax: `/` and `=` escaped). */
function subject(commonName: string): string {
  return `/CN=${commonName.replace(/([/=\\])/g, '\\$1')}`;
}

/** A new CA in `folder` (ca.pem, ca.key; the key readable by its owner only). */
export function createAuthority(folder: string, name = DEVELOPMENT_CA_NAME, stem = 'ca'): Authority {
  mkdirSync(folder, { recursive: true });
  const certFile = join(folder, `${stem}.pem`);
  const keyFile = join(folder, `${stem}.key`);
  openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile,
    '-days', String(DEFAULT_DAYS), '-subj', subject(name),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  chmodSync(keyFile, 0o600);
  return { name, certFile, keyFile };
}

/** A certificate signed by `authority`, written next to it as `<name>.pem` and `<name>.key`. */
export function issueCertificate(authority: Authority, folder: string, request: CertificateRequest): IssuedCertificate {
  mkdirSync(folder, { recursive: true });
  const certFile = join(folder, `${request.name}.pem`);
  const keyFile = join(folder, `${request.name}.key`);
  const csrFile = join(folder, `${request.name}.csr`);
  const extensionsFile = join(folder, `${request.name}.ext`);
  const names = [...(request.dnsNames ?? []).map((name) => `DNS:${name}`), ...(request.ipAddresses ?? []).map((address) => `IP:${address}`)];
  const usage = { server: 'serverAuth', client: 'clientAuth', both: 'serverAuth,clientAuth' }[request.usage];
  writeFileSync(
    extensionsFile,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      `extendedKeyUsage=${usage}`,
      ...(names.length > 0 ? [`subjectAltName=${names.join(',')}`] : []),
    ].join('\n') + '\n',
  );
  try {
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csrFile, '-subj', subject(request.commonName ?? request.name)]);
    chmodSync(keyFile, 0o600);
    openssl([
      'x509', '-req', '-in', csrFile, '-CA', authority.certFile, '-CAkey', authority.keyFile,
      '-set_serial', `0x${randomBytes(12).toString('hex')}`, '-days', String(request.days ?? DEFAULT_DAYS), '-extfile', extensionsFile, '-out', certFile,
    ]);
  } finally {
    rmSync(csrFile, { force: true });
    rmSync(extensionsFile, { force: true });
  }
  return { certFile, keyFile };
}

/** The names a development server certificate covers: this machine, however it is called. */
export const LOOPBACK_NAMES = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] } as const;
