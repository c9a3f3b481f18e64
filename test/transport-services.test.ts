import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { openDatabase } from '../src/db/index.js';
import { RedisCache } from '../src/cache/index.js';
import { sqlOn } from './support/fixtures.js';
import { startTestStack } from './support/stack.js';
import { createTestPki, postTls, type TestPki } from './support/tls.js';
import { startTlsPostgres, startTlsRedis, type TlsPostgres, type TlsRedis } from './support/tls-services.js';

/**
 * TLS to the data stores, against servers this file starts itself: a
 * PostgreSQL cluster with ssl=on that refuses plaintext, and a Redis with a
 * TLS port only that asks for client certificates. The connection is
 * verified (the CA, and with verify-full the host name) or refused; then
 * the whole API runs with TLS on every hop.
 */

const required = process.env['REQUIRE_SERVICES'] === '1';
let pki: TestPki;
let folder: string;
let postgres: TlsPostgres | null = null;
let redis: TlsRedis | null = null;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'phi-graph-tls-services-'));
  pki = createTestPki(folder);
  postgres = await startTlsPostgres(folder, pki.ca);
  redis = await startTlsRedis(folder, pki.ca);
  if (required && (!postgres || !redis)) throw new Error('REQUIRE_SERVICES=1 but the PostgreSQL server programs (initdb, pg_ctl) or redis-server are not installed');
}, 60_000);

afterAll(async () => {
  await postgres?.stop();
  await redis?.stop();
  if (folder) await rm(folder, { recursive: true, force: true });
});

const sslOf = async (url: string) => {
  const db = await openDatabase({ url, dataDir: folder });
  try {
    const [row] = await sqlOn(db)<{ ssl: boolean; version: string }>('select ssl, version from pg_stat_ssl where pid = pg_backend_pid()');
    return row;
  } finally {
    await db.close();
  }
};

describe('PostgreSQL over TLS', () => {
  it('connects with sslmode=verify-full and the CA file, encrypted', async ({ skip }) => {
    if (!postgres) return skip();
    const row = await sslOf(postgres.url(`sslmode=verify-full&sslrootcert=${pki.ca.certFile}`));
    expect(row).toMatchObject({ ssl: true, version: 'TLSv1.3' });
  });

  it('refuses a server whose certificate is not from the configured CA, without the password in the error', async ({ skip }) => {
    if (!postgres) return skip();
    const url = postgres.url(`sslmode=verify-full&sslrootcert=${pki.otherCa.certFile}`).replace('postgres@', 'postgres:db-password-123@');
    const error = await sslOf(url).then(
      () => null,
      (caught: unknown) => caught as Error,
    );
    expect(error).not.toBeNull();
    expect(`${error?.message} ${(error as { code?: string } | null)?.code}`).toMatch(/certificate|CERT/i);
    expect(String(error?.message)).not.toContain('db-password-123');
  });

  it('refuses a certificate that does not name the host with verify-full, which verify-ca accepts', async ({ skip }) => {
    if (!postgres) return skip();
    // The server's certificate names localhost, not 127.0.0.1.
    await expect(sslOf(postgres.url(`sslmode=verify-full&sslrootcert=${pki.ca.certFile}`, '127.0.0.1'))).rejects.toThrow(/IP: 127\.0\.0\.1 is not in the cert's list|altnames/);
    expect(await sslOf(postgres.url(`sslmode=verify-ca&sslrootcert=${pki.ca.certFile}`, '127.0.0.1'))).toMatchObject({ ssl: true });
  });

  it('is refused by a server that accepts TLS only when asked for plaintext', async ({ skip }) => {
    if (!postgres) return skip();
    await expect(sslOf(postgres.url('sslmode=disable'))).rejects.toThrow(/no encryption|pg_hba/);
  });
});

describe('Redis over TLS', () => {
  it('connects with rediss://, the CA and the client certificate', async ({ skip }) => {
    if (!redis) return skip();
    const cache = await RedisCache.connect(redis.url, 'tls-test:', { caFile: pki.ca.certFile, certFile: pki.gatewayClient.certFile, keyFile: pki.gatewayClient.keyFile });
    try {
      await cache.set('probe', 'over-tls', 10);
      expect(await cache.get('probe')).toBe('over-tls');
    } finally {
      await cache.close();
    }
  });

  it('refuses a server from another CA, a missing client certificate, a plaintext URL, a certificate for another host name and query parameters', async ({ skip }) => {
    if (!redis) return skip();
    const url = redis.url;
    const unreachable = /^Redis at (localhost|127\.0\.0\.1):\d+ is not reachable: /;
    const attempts: [() => Promise<RedisCache>, RegExp][] = [
      [() => RedisCache.connect(url, 'tls-test:', { caFile: pki.otherCa.certFile, certFile: pki.gatewayClient.certFile, keyFile: pki.gatewayClient.keyFile }), /certificate/],
      // Redis closes on a client without a certificate once the handshake is done (TLS 1.3): a reset, or its alert.
      [() => RedisCache.connect(url, 'tls-test:', { caFile: pki.ca.certFile }), /ECONNRESET|certificate required|ERR_SSL|Connection is closed/],
      // Plaintext on a TLS port: the server resets the connection that did not start with a handshake.
      [() => RedisCache.connect(url.replace('rediss:', 'redis:'), 'tls-test:'), /ECONNRESET|Connection is closed|EPIPE/],
      // ?tls= would mean plaintext under rediss:// to ioredis: refused before any connection.
      [() => RedisCache.connect(`${url}/?tls=`, 'tls-test:', { caFile: pki.ca.certFile }), /no query parameters/],
      // The certificate names localhost, not 127.0.0.1.
      [() => RedisCache.connect(url.replace('localhost', '127.0.0.1'), 'tls-test:', { caFile: pki.ca.certFile, certFile: pki.gatewayClient.certFile, keyFile: pki.gatewayClient.keyFile }), /IP: 127\.0\.0\.1 is not in the cert's list/],
    ];
    for (const [attempt, reason] of attempts) {
      const error = await attempt().then(
        async (cache) => {
          await cache.close();
          return null;
        },
        (caught: unknown) => caught as Error,
      );
      expect(error?.message).toMatch(reason);
      if (!reason.source.includes('query parameters')) expect(error?.message).toMatch(unreachable);
    }
  }, 20_000);
});

describe('the API with TLS on every hop', () => {
  it('serves a query over HTTPS, mutual TLS to the subgraphs, verified TLS to PostgreSQL and to Redis', async ({ skip }) => {
    if (!postgres || !redis) return skip();
    const stack = await startTestStack({
      patients: 8,
      env: {
        DATABASE_URL: postgres.url(`sslmode=verify-full&sslrootcert=${pki.ca.certFile}`),
        REDIS_URL: redis.url,
        REDIS_CA_FILE: pki.ca.certFile,
        REDIS_CLIENT_CERT_FILE: pki.gatewayClient.certFile,
        REDIS_CLIENT_KEY_FILE: pki.gatewayClient.keyFile,
        TLS_CERT_FILE: pki.server.certFile,
        TLS_KEY_FILE: pki.server.keyFile,
        TLS_CA_FILE: pki.ca.certFile,
        SUBGRAPH_CLIENT_CA_FILE: pki.ca.certFile,
        GATEWAY_CLIENT_CERT_FILE: pki.gatewayClient.certFile,
        GATEWAY_CLIENT_KEY_FILE: pki.gatewayClient.keyFile,
      },
    });
    try {
      const response = await postTls<{ patients: { edges: { node: { id: string } }[] } }>(
        stack.gatewayUrl,
        '{ patients(first: 3) { edges { node { id conditions(first: 1) { edges { node { id } } } } } } }',
        { ca: readFileSync(pki.ca.certFile, 'utf8'), token: await stack.token('clinician') },
      );
      expect(response.status).toBe(200);
      expect(response.json.errors).toBeUndefined();
      expect(response.json.data?.patients.edges.length).toBeGreaterThan(0);
      // Every connection of the API to PostgreSQL is encrypted.
      const [connections] = await stack.sql<{ plain: number; total: number }>(
        "select count(*) filter (where not s.ssl)::int as plain, count(*)::int as total from pg_stat_ssl s join pg_stat_activity a using (pid) where a.backend_type = 'client backend'",
      );
      expect(connections?.total).toBeGreaterThan(0);
      expect(connections?.plain).toBe(0);
      // The revocation list, rate counters and the rest went to the TLS-only Redis.
      const inspector = new Redis(redis.url, { tls: { ca: readFileSync(pki.ca.certFile, 'utf8'), cert: readFileSync(pki.gatewayClient.certFile, 'utf8'), key: readFileSync(pki.gatewayClient.keyFile, 'utf8'), servername: 'localhost' }, lazyConnect: true });
      try {
        await inspector.connect();
        expect(await inspector.dbsize()).toBeGreaterThan(0);
      } finally {
        inspector.disconnect();
      }
    } finally {
      await stack.stop();
    }
  }, 120_000);
});
