import { X509Certificate } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Logger } from '../logger.js';
import { tlsCertificateExpiry } from '../metrics.js';
import { CertificateError, readCaBundle, readCertificatePair, registerReloadable, watchFiles } from './certificates.js';
import { TLS_CIPHERS, TLS_MIN_VERSION } from './policy.js';

/** What the gateway trusts and presents when it calls the subgraphs over HTTPS. */
export interface ClientTlsFiles {
  /** The CAs a subgraph's certificate must chain to (TLS_CA_FILE); the system's CAs without it. */
  caFile?: string;
  /** The gateway's client certificate and key (GATEWAY_CLIENT_CERT_FILE, GATEWAY_CLIENT_KEY_FILE; TLS_CERT_FILE and TLS_KEY_FILE by default). */
  certFile?: string;
  keyFile?: string;
  /** The certificate is the listener's (TLS_CERT_FILE, no GATEWAY_CLIENT_CERT_FILE): not presented when it is for servers only. */
  certFromListener?: boolean;
  pollMs?: number;
}

/** Extended key usage "TLS client authentication". */
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** Whether a certificate may authenticate a TLS client: no extended key usage (any), or one naming client authentication. */
function allowsClientAuthentication(pem: string): boolean {
  const certificate = new X509Certificate(pem) as X509Certificate & { extKeyUsage?: string[] };
  const usages = certificate.extKeyUsage ?? certificate.keyUsage;
  return usages === undefined || usages.length === 0 || usages.includes(CLIENT_AUTH);
}

/** The TLS options of the gateway's HTTPS connections to the subgraphs. */
export interface ClientTlsOptions {
  ca?: string;
  cert?: string;
  key?: string;
  minVersion: typeof TLS_MIN_VERSION;
  ciphers: string;
  rejectUnauthorized: true;
}

export interface ClientTls {
  /** The options in force now. */
  options(): ClientTlsOptions;
  /**
   * The agent a subgraph request goes through: HTTPS with the options in force (a new agent after a reload, so
   * the next connection uses them), or plain HTTP for a subgraph on http://. Given to the fetch explicitly, so
   * no proxy from the environment (HTTPS_PROXY, HTTP_PROXY) is ever used and NODE_TLS_REJECT_UNAUTHORIZED=0
   * cannot switch the subgraphs' certificate checks off.
   */
  agentFor(url: string): HttpAgent;
  reload(trigger: string): boolean;
  close(): void;
}

/**
 * Idle connections to a subgraph are closed after this: shorter than a
 * listener's keep-alive (KEEP_ALIVE_TIMEOUT_MS, 75 s), so the gateway never
 * sends a request on a connection the subgraph is closing.
 */
const IDLE_SOCKET_MS = 60_000;

/**
 * The gateway's side of the hop to its subgraphs: the subgraph's
 * certificate is always verified (against TLS_CA_FILE or the system's CAs;
 * never switched off), and the gateway's own certificate is presented when
 * one is configured (mutual TLS). Read again on SIGHUP and when the files
 * change, like a listener's.
 */
export function createClientTls(files: ClientTlsFiles, log: Logger): ClientTls {
  const load = (): ClientTlsOptions => {
    let pair = files.certFile && files.keyFile ? readCertificatePair({ certFile: files.certFile, keyFile: files.keyFile }, { cert: 'GATEWAY_CLIENT_CERT_FILE', key: 'GATEWAY_CLIENT_KEY_FILE' }) : null;
    // A subgraph asking for a client certificate refuses one made for servers only: said at start, not as every request's 503.
    if (pair && !allowsClientAuthentication(pair.cert)) {
      if (!files.certFromListener) throw new CertificateError(`GATEWAY_CLIENT_CERT_FILE: ${files.certFile} is not for TLS client authentication (its extended key usage lacks clientAuth); subgraphs requiring client certificates would refuse it`, 'NOT_FOR_CLIENT_AUTH');
      pair = null;
    }
    if (pair) tlsCertificateExpiry.set({ listener: 'gateway-client' }, Math.floor(pair.notAfter.getTime() / 1000));
    return {
      ...(files.caFile && { ca: readCaBundle(files.caFile, 'TLS_CA_FILE') }),
      ...(pair && { cert: pair.cert, key: pair.key }),
      minVersion: TLS_MIN_VERSION,
      ciphers: TLS_CIPHERS,
      rejectUnauthorized: true,
    };
  };
  const httpsAgent = (options: ClientTlsOptions) => new HttpsAgent({ ...options, keepAlive: true, timeout: IDLE_SOCKET_MS });
  const plainAgent = new HttpAgent({ keepAlive: true, timeout: IDLE_SOCKET_MS });
  let current = load();
  let secureAgent = httpsAgent(current);
  const reload = (trigger: string): boolean => {
    try {
      const next = load();
      if (next.ca === current.ca && next.cert === current.cert && next.key === current.key) return true;
      current = next;
      // Requests in flight on the old agent's connections finish there; its idle ones close after IDLE_SOCKET_MS.
      secureAgent = httpsAgent(next);
      log.info({ event: 'tls-client-certificate-loaded', trigger }, 'the gateway\'s TLS client settings were reloaded; new connections to the subgraphs use them');
      return true;
    } catch (error) {
      log.error({ event: 'tls-client-certificate-reload-failed', trigger, reason: error instanceof CertificateError ? error.reason : 'ERROR', message: error instanceof CertificateError ? error.message : undefined }, 'the gateway\'s TLS client settings could not be reloaded; the ones in use stay');
      return false;
    }
  };
  const paths = [files.caFile, files.certFile, files.keyFile].filter((path): path is string => path !== undefined);
  const stopWatching = paths.length > 0 ? watchFiles(paths, () => reload('file-change'), files.pollMs) : () => undefined;
  const unregister = registerReloadable({ reload });
  return {
    options: () => current,
    agentFor: (url) => (url.startsWith('https:') ? secureAgent : plainAgent),
    reload,
    close() {
      stopWatching();
      unregister();
      secureAgent.destroy();
      plainAgent.destroy();
    },
  };
}
