import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type Config } from '../src/config.js';
import { generateKeyRingDocument } from '../src/crypto/index.js';
import { createClientTls, databaseTransport, describeTransport, isLoopbackHost } from '../src/transport/index.js';
import { createLogger } from '../src/logger.js';
import { createAuthority, issueCertificate } from '../src/transport/development-certificates.js';

/**
 * What production refuses about transport, at start and with every problem
 * listed: plain HTTP without a proxy that terminates TLS, and plaintext or
 * unverified TLS to a database, a Redis or a subgraph on another host,
 * unless ALLOW_INSECURE_TRANSPORT names that hop (and then the start says so).
 */

const folder = mkdtempSync(join(tmpdir(), 'phi-graph-transport-config-'));
const ca = createAuthority(folder, 'transport config test CA');
afterAll(() => rmSync(folder, { recursive: true, force: true }));

/** A production environment whose every hop is verified TLS to other hosts. */
const secure = {
  NODE_ENV: 'production',
  AUTH_JWKS_URL: 'https://id.hospital.example/.well-known/jwks.json',
  AUTH_ISSUER: 'https://id.hospital.example',
  PHI_KEY_RING: JSON.stringify(generateKeyRingDocument(false)),
  AUDIT_SIGNING_KEY: generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  DATABASE_URL: `postgres://api@db.hospital.internal:5432/phi?sslmode=verify-full&sslrootcert=${ca.certFile}`,
  REDIS_URL: 'rediss://cache.hospital.internal:6380',
  REDIS_CA_FILE: ca.certFile,
  TLS_TERMINATED_UPSTREAM: 'true',
};

/** The problems a server (main.ts) is refused with. */
function problemsOf(environment: Record<string, string | undefined>): string[] {
  try {
    loadConfig(environment, { serving: true });
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.problems;
  }
}

describe('production transport settings', () => {
  it('starts with verified TLS on every hop to another host', () => {
    expect(problemsOf(secure)).toEqual([]);
    const config = loadConfig(secure, { serving: true });
    expect(describeTransport(config, { kind: 'all' }).filter((hop) => hop.insecure)).toEqual([]);
  });

  it('refuses to serve plain HTTP unless a proxy in front terminates TLS', () => {
    const { TLS_TERMINATED_UPSTREAM: _upstream, ...plain } = secure;
    expect(problemsOf(plain).join('\n')).toMatch(/TLS_CERT_FILE: production serves HTTPS/);
    expect(problemsOf({ ...plain, TLS_CERT_FILE: ca.certFile, TLS_KEY_FILE: ca.keyFile })).toEqual([]);
    // The command-line tools (npm run migrate, keys:*) listen on nothing: the same environment is theirs.
    expect(() => loadConfig(plain)).not.toThrow();
  });

  it('refuses plaintext and unverified TLS to a database on another host, and allows it only when the hop is named', () => {
    for (const mode of ['disable', 'require', 'verify-ca']) {
      const url = `postgres://api:secret-password@db.hospital.internal/phi?sslmode=${mode}`;
      const problems = problemsOf({ ...secure, DATABASE_URL: url }).join('\n');
      expect(problems).toContain(`not sslmode=${mode}`);
      expect(problems).not.toContain('secret-password');
      expect(problemsOf({ ...secure, DATABASE_URL: url, ALLOW_INSECURE_TRANSPORT: 'database' })).toEqual([]);
    }
    // No sslmode at all is plaintext (node-postgres's default), refused the same way.
    expect(problemsOf({ ...secure, DATABASE_URL: 'postgres://api@db.hospital.internal/phi' }).join('\n')).toContain('not sslmode=disable');
  });

  it('lets a database and a Redis on this machine go without TLS', () => {
    expect(problemsOf({ ...secure, DATABASE_URL: 'postgres://api@127.0.0.1:5432/phi', REDIS_URL: 'redis://localhost:6379', REDIS_CA_FILE: undefined })).toEqual([]);
    expect(problemsOf({ ...secure, DATABASE_URL: 'postgres://api@[::1]:5432/phi' })).toEqual([]);
  });

  it('refuses plaintext Redis on another host unless the hop is named, and says so at start when it is', () => {
    const plain = { ...secure, REDIS_URL: 'redis://cache.hospital.internal:6379', REDIS_CA_FILE: undefined };
    expect(problemsOf(plain).join('\n')).toMatch(/REDIS_URL: production connects to a Redis on another host over TLS/);
    const allowed = loadConfig({ ...plain, ALLOW_INSECURE_TRANSPORT: 'redis' });
    expect(describeTransport(allowed, { kind: 'all' }).filter((hop) => hop.insecure).map((hop) => hop.hop)).toEqual(['redis']);
  });

  it('refuses a subgraph on another host over http:// unless the hop is named', () => {
    const environment = { ...secure, CLINICAL_SUBGRAPH_URL: 'http://clinical.hospital.internal:4002/graphql' };
    expect(problemsOf(environment).join('\n')).toMatch(/CLINICAL_SUBGRAPH_URL: production calls a subgraph on another host over https/);
    expect(problemsOf({ ...environment, ALLOW_INSECURE_TRANSPORT: 'subgraphs' })).toEqual([]);
    expect(problemsOf({ ...secure, CLINICAL_SUBGRAPH_URL: 'https://clinical.hospital.internal:4002/graphql' })).toEqual([]);
  });
});

describe('production transport settings an attacker or a careless default would use', () => {
  it('refuses plaintext subgraphs on another interface, which the proxy of TLS_TERMINATED_UPSTREAM does not cover', () => {
    for (const host of ['10.0.0.5', '0.0.0.0', '::']) {
      expect(problemsOf({ ...secure, SUBGRAPH_HOST: host }).join('\n')).toContain(`SUBGRAPH_HOST: production subgraphs on ${host}`);
    }
    expect(problemsOf({ ...secure, SUBGRAPH_HOST: '10.0.0.5', TLS_CERT_FILE: ca.certFile, TLS_KEY_FILE: ca.keyFile })).toEqual([]);
    expect(problemsOf({ ...secure, SUBGRAPH_HOST: '10.0.0.5', ALLOW_INSECURE_TRANSPORT: 'subgraphs' })).toEqual([]);
    const allowed = loadConfig({ ...secure, SUBGRAPH_HOST: '10.0.0.5', ALLOW_INSECURE_TRANSPORT: 'subgraphs' }, { serving: true });
    expect(describeTransport(allowed, { kind: 'all' }).filter((hop) => hop.insecure).map((hop) => hop.hop)).toEqual(['subgraph-listener', 'subgraph-calls']);
  });

  it('refuses NODE_TLS_REJECT_UNAUTHORIZED=0, which would switch certificate checks off, for the servers and the tools', () => {
    expect(problemsOf({ ...secure, NODE_TLS_REJECT_UNAUTHORIZED: '0' }).join('\n')).toContain('NODE_TLS_REJECT_UNAUTHORIZED: production refuses 0');
    expect(() => loadConfig({ ...secure, NODE_TLS_REJECT_UNAUTHORIZED: '0' })).toThrow(/NODE_TLS_REJECT_UNAUTHORIZED/);
  });

  it('refuses query parameters in REDIS_URL, which ioredis would read ahead of the TLS settings (?tls= means plaintext)', () => {
    for (const url of ['rediss://cache.hospital.internal:6380/?tls=', 'rediss://cache.hospital.internal:6380/0?tls=x', 'redis://127.0.0.1:6379/?family=6']) {
      expect(problemsOf({ ...secure, REDIS_URL: url }).join('\n')).toContain('REDIS_URL: REDIS_URL takes no query parameters');
    }
  });

  it('refuses a database URL without a host (node-postgres would use PGHOST, in plaintext) and certificate revocation lists it cannot check', () => {
    expect(problemsOf({ ...secure, DATABASE_URL: 'postgres:///phi?host=/var/run/postgresql' }).join('\n')).toContain('DATABASE_URL needs a host');
    expect(problemsOf({ ...secure, DATABASE_URL: `postgres://api@db.hospital.internal/phi?sslmode=verify-full&sslrootcert=${ca.certFile}&sslcrl=/etc/crl.pem` }).join('\n')).toContain('sslcrl is not supported');
  });

  it('verifies the chain with sslmode=require when a root certificate is named, as libpq does', () => {
    const require = databaseTransport(`postgres://api@db.example/phi?sslmode=require&sslrootcert=${ca.certFile}`);
    expect(require.ssl && require.ssl.rejectUnauthorized).toBe(true);
  });

  it('refuses to fetch the issuer\'s keys in plaintext from another host (anyone on the path could mint any role)', () => {
    expect(problemsOf({ ...secure, AUTH_JWKS_URL: 'http://id.hospital.internal/.well-known/jwks.json' }).join('\n')).toContain('AUTH_JWKS_URL: production fetches the issuer');
    expect(problemsOf({ ...secure, AUTH_JWKS_URL: 'http://127.0.0.1:8080/.well-known/jwks.json' })).toEqual([]);
  });

  it('refuses a gateway client certificate made for servers only, and does not present the listener\'s in its place', () => {
    const server = issueCertificate(ca, folder, { name: 'server-only', dnsNames: ['localhost'], usage: 'server' });
    const client = issueCertificate(ca, folder, { name: 'client-only', commonName: 'phi-graph-gateway', usage: 'client' });
    const log = createLogger('silent');
    expect(() => createClientTls({ caFile: ca.certFile, certFile: server.certFile, keyFile: server.keyFile, certFromListener: false }, log)).toThrow(/not for TLS client authentication/);
    const fallback = createClientTls({ caFile: ca.certFile, certFile: server.certFile, keyFile: server.keyFile, certFromListener: true }, log);
    expect(fallback.options().cert).toBeUndefined();
    fallback.close();
    const explicit = createClientTls({ caFile: ca.certFile, certFile: client.certFile, keyFile: client.keyFile, certFromListener: false }, log);
    expect(explicit.options().cert).toContain('BEGIN CERTIFICATE');
    explicit.close();
  });

  it('needs a CA for the client names of mutual TLS', () => {
    expect(problemsOf({ SUBGRAPH_CLIENT_NAMES: 'phi-graph-gateway' }).join('\n')).toContain('set SUBGRAPH_CLIENT_CA_FILE too');
  });
});

describe('transport settings in every environment', () => {
  it('refuses sslmode=prefer and allow, which would fall back to plaintext without a word', () => {
    for (const mode of ['prefer', 'allow']) {
      expect(problemsOf({ DATABASE_URL: `postgres://api@127.0.0.1/phi?sslmode=${mode}` }).join('\n')).toContain(`sslmode=${mode} would fall back to plaintext`);
    }
  });

  it('refuses certificate files it cannot read, a certificate without its key, mutual TLS without TLS, and Redis CA files with redis://', () => {
    const problems = problemsOf({
      TLS_CERT_FILE: join(folder, 'missing.pem'),
      GATEWAY_CLIENT_CERT_FILE: ca.certFile,
      SUBGRAPH_CLIENT_CA_FILE: ca.certFile,
      REDIS_URL: 'redis://127.0.0.1:6379',
      REDIS_CA_FILE: ca.certFile,
      ALLOW_INSECURE_TRANSPORT: 'everything',
      TRUST_PROXY: 'loopback,not-an-address',
    }).join('\n');
    expect(problems).toContain('TLS_CERT_FILE: cannot read');
    expect(problems).toContain('TLS_KEY_FILE: TLS_CERT_FILE and TLS_KEY_FILE go together');
    expect(problems).toContain('GATEWAY_CLIENT_KEY_FILE: GATEWAY_CLIENT_CERT_FILE and GATEWAY_CLIENT_KEY_FILE go together');
    expect(problems).toContain('REDIS_CA_FILE is for Redis over TLS');
    expect(problems).toContain('ALLOW_INSECURE_TRANSPORT: must name hops among database, redis, subgraphs');
    expect(problems).toContain('TRUST_PROXY: must be loopback');
    expect(problemsOf({ SUBGRAPH_CLIENT_CA_FILE: ca.certFile }).join('\n')).toContain('mutual TLS needs the subgraphs to serve TLS');
  });

  it('reads a DATABASE_URL\'s TLS parameters as libpq does, and hands the ORM a URL without them', () => {
    const verified = databaseTransport(`postgres://api:pw@db.example:5432/phi?sslmode=verify-full&sslrootcert=${ca.certFile}&application_name=x`);
    expect(verified.mode).toBe('verify-full');
    expect(verified.url).toBe('postgres://api:pw@db.example:5432/phi?application_name=x');
    expect(verified.ssl && verified.ssl.rejectUnauthorized).toBe(true);
    expect(verified.ssl && verified.ssl.ca).toContain('BEGIN CERTIFICATE');
    const require = databaseTransport('postgres://api@db.example/phi?sslmode=require');
    expect(require.ssl && require.ssl.rejectUnauthorized).toBe(false);
    expect(databaseTransport('postgres://api@db.example/phi').ssl).toBe(false);
    expect(() => databaseTransport(`postgres://api@db.example/phi?sslmode=verify-full&sslrootcert=${join(folder, 'nope.pem')}`)).toThrow(/sslrootcert: cannot read the file it names \(ENOENT\)/);
  });

  it('knows which hosts are this machine', () => {
    for (const host of ['localhost', '127.0.0.1', '127.1.2.3', '::1', '[::1]', '0::1', '[::ffff:7f00:1]', new URL('http://[::ffff:127.0.0.1]/').hostname, '/var/run/postgresql']) expect(isLoopbackHost(host)).toBe(true);
    for (const host of ['db.internal', '10.0.0.5', '::ffff:10.0.0.1', '0.0.0.0', 'localhost.evil.example', 'db.localhost', 'localhost.', '']) expect(isLoopbackHost(host)).toBe(false);
  });

  it('describes each hop at start without passwords', () => {
    const config: Config = loadConfig({ ...secure, DATABASE_URL: 'postgres://api:hunter2-password@db.hospital.internal/phi?sslmode=verify-full', NODE_ENV: 'development' });
    const described = JSON.stringify(describeTransport(config, { kind: 'all' }));
    expect(described).toContain('sslmode=verify-full');
    expect(described).not.toContain('hunter2');
  });
});
