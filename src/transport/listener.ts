import { createServer as createHttpServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../logger.js';
import { tlsCertificateExpiry, tlsHandshakeFailures } from '../metrics.js';
import { CertificateError, readCaBundle, readCertificatePair, registerReloadable, watchFiles, type CertificatePair, type LoadedCertificate } from './certificates.js';
import { HSTS_HEADER_VALUE, TLS_CIPHERS, TLS_MIN_VERSION } from './policy.js';

/** A listener's own certificate, and for mutual TLS the CAs its callers' certificates must chain to. */
export interface ListenerTls {
  certFile: string;
  keyFile: string;
  /** Set: a caller without a certificate signed by one of these CAs is refused at the handshake (SUBGRAPH_CLIENT_CA_FILE). */
  clientCaFile?: string;
  /**
   * With a client CA: the names (subject common name, DNS or URI subject alternative names) a caller's
   * certificate must carry, one of them (SUBGRAPH_CLIENT_NAMES); any certificate of the CA without it.
   */
  clientNames?: readonly string[];
  /** How often the files are looked at for a change (CERTIFICATE_POLL_MS by default). */
  pollMs?: number;
}

/** The names a peer certificate carries: its subject's common names and its DNS and URI subject alternative names. */
export function certificateNames(certificate: PeerCertificate): string[] {
  const commonName = certificate.subject?.CN;
  const alternative = (certificate.subjectaltname ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('DNS:') || entry.startsWith('URI:'))
    .map((entry) => entry.slice(4));
  return [...(Array.isArray(commonName) ? commonName : commonName ? [commonName] : []), ...alternative];
}

export interface Listener {
  server: Server;
  scheme: 'http' | 'https';
  /** Reads the files again; the certificate in use stays when they do not load. */
  reload(trigger: string): boolean;
  /** Stops watching the files (the server itself is closed by its owner). */
  close(): void;
}

interface Loaded extends CertificatePair, LoadedCertificate {
  clientCa?: string;
}

/** A handshake failure's reason as a metric label: OpenSSL's error codes are a fixed set; anything else is OTHER. */
function failureReason(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z0-9_]{1,80}$/.test(code) ? code : 'OTHER';
}

/**
 * The HTTP or HTTPS server of the gateway or a subgraph. With TLS: TLS 1.2
 * at least, the suites of policy.ts, the certificate read again on SIGHUP
 * or when its files change (setSecureContext: new handshakes get the new
 * certificate, open connections and requests in flight are not touched),
 * and, with a client CA, a caller without a certificate from that CA is
 * refused during the handshake: no HTTP request of it is ever read, so no
 * token either. Refused handshakes are counted by reason
 * (phi_graph_tls_handshake_failures_total).
 */
export function createListener(name: string, app: RequestListener, tls: ListenerTls | null, log: Logger): Listener {
  if (!tls) {
    return { server: createHttpServer(app), scheme: 'http', reload: () => true, close: () => undefined };
  }
  const load = (): Loaded => ({
    ...readCertificatePair(tls, { cert: 'TLS_CERT_FILE', key: 'TLS_KEY_FILE' }),
    ...(tls.clientCaFile && { clientCa: readCaBundle(tls.clientCaFile, 'SUBGRAPH_CLIENT_CA_FILE') }),
  });
  const contextOf = (loaded: Loaded) => ({ cert: loaded.cert, key: loaded.key, ...(loaded.clientCa && { ca: loaded.clientCa }), minVersion: TLS_MIN_VERSION, ciphers: TLS_CIPHERS });
  const noteExpiry = (loaded: Loaded) => tlsCertificateExpiry.set({ listener: name }, Math.floor(loaded.notAfter.getTime() / 1000));
  let current = load();
  noteExpiry(current);
  const mutual = current.clientCa !== undefined;
  const server = createHttpsServer({ ...contextOf(current), requestCert: mutual, rejectUnauthorized: mutual }, app);
  const allowedNames = new Set(mutual ? (tls.clientNames ?? []) : []);
  if (allowedNames.size > 0) {
    // Before the HTTP server's own listener: a certificate of the CA issued to another service is closed on before any request of it is read.
    server.prependListener('secureConnection', (socket: TLSSocket) => {
      const names = certificateNames(socket.getPeerCertificate());
      if (names.some((candidate) => allowedNames.has(candidate))) return;
      tlsHandshakeFailures.inc({ listener: name, reason: 'CLIENT_NAME_NOT_ALLOWED' });
      log.warn({ event: 'tls-client-refused', listener: name, reason: 'CLIENT_NAME_NOT_ALLOWED', clientNames: names.slice(0, 5), remoteAddress: socket.remoteAddress }, 'a client certificate of the CA that is not the gateway\'s was refused');
      socket.destroy();
    });
  }
  // Connections hold the trust of the client CA they were verified under: when it changes, the idle ones are
  // closed and a busy one is closed after the response it is sending (Connection: close), so a caller whose CA was
  // removed cannot go on over a kept-alive connection; it must shake hands again, under the new CA.
  let trustGeneration = 0;
  const verifiedUnder = new WeakMap<object, number>();
  if (mutual) {
    server.on('secureConnection', (socket: TLSSocket) => verifiedUnder.set(socket, trustGeneration));
    server.prependListener('request', (request: IncomingMessage, response: ServerResponse) => {
      if (verifiedUnder.get(request.socket) !== trustGeneration) response.setHeader('connection', 'close');
    });
  }
  server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
    const reason = failureReason(error);
    tlsHandshakeFailures.inc({ listener: name, reason });
    log.debug({ event: 'tls-handshake-refused', listener: name, reason, remoteAddress: socket.remoteAddress }, 'a TLS handshake was refused');
  });
  const reload = (trigger: string): boolean => {
    try {
      const next = load();
      // The whole files, not the leaf's fingerprint: a corrected chain (an intermediate) is a change too.
      if (next.cert === current.cert && next.key === current.key && next.clientCa === current.clientCa) return true;
      server.setSecureContext(contextOf(next));
      const trustChanged = next.clientCa !== current.clientCa;
      current = next;
      noteExpiry(next);
      if (trustChanged) {
        trustGeneration += 1;
        server.closeIdleConnections();
      }
      log.info({ event: 'tls-certificate-loaded', listener: name, trigger, fingerprint: next.fingerprint, subject: next.subject, notAfter: next.notAfter.toISOString() }, 'TLS certificate reloaded; new connections use it');
      return true;
    } catch (error) {
      const reason = error instanceof CertificateError ? error.reason : 'ERROR';
      log.error({ event: 'tls-certificate-reload-failed', listener: name, trigger, reason, message: error instanceof CertificateError ? error.message : undefined, fingerprint: current.fingerprint }, 'TLS certificate could not be reloaded; the one in use stays');
      return false;
    }
  };
  const stopWatching = watchFiles([tls.certFile, tls.keyFile, ...(tls.clientCaFile ? [tls.clientCaFile] : [])], () => reload('file-change'), tls.pollMs);
  const unregister = registerReloadable({ reload });
  return {
    server,
    scheme: 'https',
    reload,
    close() {
      stopWatching();
      unregister();
    },
  };
}

/** Strict-Transport-Security on responses that went over HTTPS: this process's own TLS, or a trusted proxy's (X-Forwarded-Proto). */
export function strictTransportSecurity(request: Request, response: Response, next: NextFunction): void {
  if (request.secure) response.setHeader('strict-transport-security', HSTS_HEADER_VALUE);
  next();
}

/**
 * Behind a proxy that terminates TLS (TLS_TERMINATED_UPSTREAM=true): a
 * request that did not come through it over HTTPS (X-Forwarded-Proto from
 * a TRUST_PROXY address) is refused with 403 HTTPS_REQUIRED, before its
 * token is read; a caller that reached the port directly, around the
 * proxy, sent its token and its data in the clear.
 */
export function requireHttps(request: Request, response: Response, next: NextFunction): void {
  if (request.secure) {
    next();
    return;
  }
  response.status(403).setHeader('cache-control', 'no-store').json({
    errors: [{ message: 'This API is served over HTTPS only: send the request to its TLS endpoint (the proxy in front of it).', extensions: { code: 'HTTPS_REQUIRED' } }],
  });
}
