import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { createSecureContext } from 'node:tls';

/**
 * Certificate files read from disk and read again when they change: a
 * listener's certificate and key (and the CAs it accepts client
 * certificates from), the gateway's client certificate. What is read is
 * checked before it replaces what is in use (the key matches the
 * certificate, the PEM parses), so a half-written renewal (the certificate
 * copied, the key not yet) leaves the old pair serving and is tried again
 * at the next change or SIGHUP.
 */

export interface CertificatePair {
  cert: string;
  key: string;
}

export interface LoadedCertificate {
  /** SHA-256 fingerprint of the leaf certificate (what a log or a client can compare). */
  fingerprint: string;
  subject: string;
  notAfter: Date;
}

/** A certificate file that cannot be used; the message names the file's variable and the reason, never the file's content. */
export class CertificateError extends Error {
  override readonly name = 'CertificateError';
  constructor(
    message: string,
    readonly reason: string,
  ) {
    super(message);
  }
}

export function readPemFile(path: string, variable: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new CertificateError(`${variable}: cannot read ${path} (${code})`, code);
  }
}

/** Reads a certificate and its key, and checks they belong together. */
export function readCertificatePair(files: { certFile: string; keyFile: string }, variables: { cert: string; key: string }): CertificatePair & LoadedCertificate {
  const cert = readPemFile(files.certFile, variables.cert);
  const key = readPemFile(files.keyFile, variables.key);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch {
    throw new CertificateError(`${variables.cert}: ${files.certFile} is not a PEM certificate`, 'CERT_UNREADABLE');
  }
  try {
    createSecureContext({ cert, key });
  } catch {
    throw new CertificateError(`${variables.key}: ${files.keyFile} is not the key of the certificate in ${variables.cert}`, 'KEY_MISMATCH');
  }
  return { cert, key, ...describeCertificate(leaf) };
}

/** Reads a PEM bundle of CA certificates; at least one must parse. */
export function readCaBundle(path: string, variable: string): string {
  const pem = readPemFile(path, variable);
  try {
    new X509Certificate(pem);
  } catch {
    throw new CertificateError(`${variable}: ${path} holds no PEM certificate`, 'CA_UNREADABLE');
  }
  return pem;
}

export function describeCertificate(leaf: X509Certificate): LoadedCertificate {
  return {
    fingerprint: createHash('sha256').update(leaf.raw).digest('hex'),
    subject: leaf.subject.replace(/\n/g, ', '),
    notAfter: new Date(leaf.validTo),
  };
}

/** How often certificate files are looked at for a change (a stat; a renewal is picked up within this). */
export const CERTIFICATE_POLL_MS = 2_000;
/** A renewal writes the certificate and the key one after the other: wait this long after a change before reading. */
const SETTLE_MS = 250;

/**
 * Calls `onChange` (once per burst) when any of the files changes, polling
 * their status: works for a file replaced by a rename or through a
 * symbolic link swapped by Kubernetes, where an inotify watch on the file
 * goes stale. Does not keep the process alive; an interval of 0 watches
 * nothing (SIGHUP only). Returns the stop function.
 */
export function watchFiles(paths: readonly string[], onChange: () => void, intervalMs = CERTIFICATE_POLL_MS): () => void {
  if (intervalMs <= 0) return () => undefined;
  let timer: NodeJS.Timeout | undefined;
  const changed = (current: { mtimeMs: number; ino: number; size: number }, previous: { mtimeMs: number; ino: number; size: number }) => {
    if (current.mtimeMs === previous.mtimeMs && current.ino === previous.ino && current.size === previous.size) return;
    clearTimeout(timer);
    timer = setTimeout(onChange, SETTLE_MS);
    timer.unref();
  };
  const unique = [...new Set(paths)];
  for (const path of unique) watchFile(path, { persistent: false, interval: intervalMs }, changed);
  return () => {
    clearTimeout(timer);
    for (const path of unique) unwatchFile(path, changed);
  };
}

/** What SIGHUP reloads: every listener and client certificate of this process. */
const reloadable = new Set<{ reload(trigger: string): boolean }>();

export function registerReloadable(target: { reload(trigger: string): boolean }): () => void {
  reloadable.add(target);
  return () => reloadable.delete(target);
}

/** Reads every certificate of this process again (SIGHUP); true when all of them loaded. */
export function reloadCertificates(trigger = 'SIGHUP'): boolean {
  let ok = true;
  for (const target of reloadable) ok = target.reload(trigger) && ok;
  return ok;
}
