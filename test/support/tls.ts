import { X509Certificate, createHash } from 'node:crypto';
import { request as httpsRequest, type Agent } from 'node:https';
import { connect, type ConnectionOptions, type PeerCertificate, type TLSSocket } from 'node:tls';
import { createAuthority, issueCertificate, LOOPBACK_NAMES, type Authority, type IssuedCertificate } from '../../src/transport/development-certificates.js';

/** A throwaway PKI for one test file: the deployment's CA and, to be refused, another one. */
export interface TestPki {
  folder: string;
  ca: Authority;
  otherCa: Authority;
  /** The servers' certificate (gateway and subgraphs): localhost, 127.0.0.1, ::1. */
  server: IssuedCertificate;
  /** The gateway's client certificate (clientAuth only). */
  gatewayClient: IssuedCertificate;
  /** A client certificate from the other CA. */
  strangerClient: IssuedCertificate;
}

export function createTestPki(folder: string): TestPki {
  const ca = createAuthority(folder, 'phi-graph test CA');
  const otherCa = createAuthority(folder, 'somebody else CA', 'other-ca');
  return {
    folder,
    ca,
    otherCa,
    server: issueCertificate(ca, folder, { name: 'server', ...LOOPBACK_NAMES, usage: 'server' }),
    gatewayClient: issueCertificate(ca, folder, { name: 'gateway-client', commonName: 'phi-graph-gateway', usage: 'client' }),
    strangerClient: issueCertificate(otherCa, folder, { name: 'stranger-client', commonName: 'phi-graph-gateway', usage: 'client' }),
  };
}

export function fingerprintOf(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
}

function peerFingerprint(certificate: PeerCertificate): string {
  return createHash('sha256').update(certificate.raw).digest('hex');
}

export interface Handshake {
  fingerprint: string;
  protocol: string | null;
  cipher: string;
}

/**
 * A bare TLS connection to a listener, then `GET /healthz`: what certificate
 * it served, once it answered. Refused when the handshake fails or (TLS 1.3
 * checks a client certificate after the client's side is done) when the
 * server closes with an alert instead of answering.
 */
export function handshake(port: number, options: ConnectionOptions = {}): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ...options });
    let result: Handshake | null = null;
    socket.setTimeout(5_000, () => socket.destroy(new Error('no answer within 5 s')));
    socket.once('secureConnect', () => {
      result = { fingerprint: peerFingerprint(socket.getPeerCertificate()), protocol: socket.getProtocol(), cipher: socket.getCipher().name };
      socket.write('GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n');
    });
    socket.once('data', () => {
      socket.destroy();
      if (result) resolve(result);
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed without an answer')));
  });
}

export interface HttpsResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** The certificate the server presented on the connection this response came on. */
  fingerprint: string;
}

/** One HTTPS request, trusting `ca`, with an optional client certificate and agent (a kept-alive connection). */
export function httpsCall(
  url: string,
  options: { ca: string; cert?: string; key?: string; method?: string; headers?: Record<string, string>; body?: string; agent?: Agent },
): Promise<HttpsResponse> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const request = httpsRequest(
      {
        host: target.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: target.port,
        path: target.pathname,
        method: options.method ?? 'GET',
        headers: options.headers,
        ca: options.ca,
        servername: 'localhost',
        ...(options.cert && { cert: options.cert, key: options.key }),
        ...(options.agent ? { agent: options.agent } : { agent: false }),
        timeout: 10_000,
      },
      (response) => {
        const socket = response.socket as TLSSocket;
        const fingerprint = peerFingerprint(socket.getPeerCertificate());
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body, fingerprint }));
      },
    );
    request.on('timeout', () => request.destroy(new Error('request timed out')));
    request.once('error', reject);
    request.end(options.body);
  });
}

/** POSTs a GraphQL operation over HTTPS. */
export async function postTls<T = Record<string, unknown>>(
  url: string,
  query: string,
  options: { ca: string; token?: string; cert?: string; key?: string; headers?: Record<string, string>; agent?: Agent },
): Promise<HttpsResponse & { json: { data?: T | null; errors?: { message: string; extensions?: Record<string, unknown> }[] } }> {
  const response = await httpsCall(url, {
    ...options,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(options.token && { authorization: `Bearer ${options.token}` }), ...options.headers },
    body: JSON.stringify({ query }),
  });
  return { ...response, json: JSON.parse(response.body) as { data?: T | null; errors?: { message: string; extensions?: Record<string, unknown> }[] } };
}

/** Asks `check` every 100 ms (a failed check counts as not yet) until it gives a value, or fails after `timeoutMs`. */
export async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
