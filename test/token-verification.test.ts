import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { loadConfig } from '../src/config.js';
import { createTokenVerifier, loadOrCreateDevelopmentKey, mintDevelopmentToken, AuthenticationError } from '../src/auth/index.js';
import { MemoryCache, revocationList } from '../src/cache/index.js';
import { generateKeyRingDocument } from '../src/crypto/index.js';

let dataDir: string;
const productionEnv = {
  NODE_ENV: 'production',
  AUTH_ISSUER: 'https://id.hospital.example',
  AUTH_AUDIENCE: 'phi-graph',
  DATABASE_URL: 'postgres://api@db.internal/phi?sslmode=verify-full',
  REDIS_URL: 'rediss://cache.internal:6379',
  TLS_TERMINATED_UPSTREAM: 'true',
  PHI_KEY_RING: JSON.stringify(generateKeyRingDocument(false)),
  AUDIT_SIGNING_KEY: generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
};

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-keys-'));
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('production token verification', () => {
  it('verifies tokens against the issuer\'s JWKS, and refuses a token whose key is not in it', async () => {
    const issuer = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(issuer.publicKey)), kid: 'issuer-key-1', alg: 'ES256', use: 'sig' };
    const server = createServer((_request, response) => {
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const config = loadConfig({ ...productionEnv, AUTH_JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json` });
      const verifier = await createTokenVerifier(config.auth, dataDir, revocationList(new MemoryCache()));
      const sign = (key: CryptoKey, kid: string) =>
        new SignJWT({ roles: ['billing'], org: 'org-9', amr: ['pwd', 'mfa'] })
          .setProtectedHeader({ alg: 'ES256', kid })
          .setSubject('billing-9')
          .setIssuer(config.auth.issuer)
          .setAudience(config.auth.audience)
          .setIssuedAt()
          .setExpirationTime('5m')
          .setJti('jti-9')
          .sign(key);
      const principal = await verifier.verifyAuthorization(`Bearer ${await sign(issuer.privateKey, 'issuer-key-1')}`);
      expect(principal).toMatchObject({ subject: 'billing-9', roles: ['billing'], organizationId: 'org-9' });
      const stranger = await generateKeyPair('ES256');
      await expect(verifier.verifyAuthorization(`Bearer ${await sign(stranger.privateKey, 'issuer-key-1')}`)).rejects.toBeInstanceOf(AuthenticationError);
    } finally {
      server.close();
    }
  });

  it('refuses to start when the configured public key is the development key', async () => {
    const developmentKey = await loadOrCreateDevelopmentKey(dataDir);
    const config = loadConfig({ ...productionEnv, AUTH_PUBLIC_KEY: await exportSPKI(developmentKey.publicKey) });
    await expect(createTokenVerifier(config.auth, dataDir, revocationList(new MemoryCache()))).rejects.toThrow(/development signing key/);
  });

  it('refuses to mint development tokens', async () => {
    const config = loadConfig({ ...productionEnv, AUTH_JWKS_URL: 'https://id.hospital.example/jwks' });
    await expect(
      mintDevelopmentToken(config.auth, dataDir, { subject: 's', roles: ['admin'], mfa: true, ttl: '5m' }),
    ).rejects.toThrow(/production/);
  });

  it('accepts a token from the configured issuer key and refuses one signed by the development key', async () => {
    const issuer = await generateKeyPair('RS256');
    const config = loadConfig({ ...productionEnv, AUTH_PUBLIC_KEY: await exportSPKI(issuer.publicKey), AUTH_ALGORITHMS: 'RS256' });
    const verifier = await createTokenVerifier(config.auth, dataDir, revocationList(new MemoryCache()));
    const sign = (key: CryptoKey, alg: string) =>
      new SignJWT({ roles: ['nurse'], org: 'org-1', amr: ['pwd', 'mfa'] })
        .setProtectedHeader({ alg })
        .setSubject('nurse-1')
        .setIssuer(config.auth.issuer)
        .setAudience(config.auth.audience)
        .setIssuedAt()
        .setExpirationTime('5m')
        .setJti('jti-1')
        .sign(key);
    const principal = await verifier.verifyAuthorization(`Bearer ${await sign(issuer.privateKey, 'RS256')}`);
    expect(principal).toMatchObject({ subject: 'nurse-1', roles: ['nurse'], organizationId: 'org-1', mfa: true });
    const developmentKey = await loadOrCreateDevelopmentKey(dataDir);
    await expect(verifier.verifyAuthorization(`Bearer ${await sign(developmentKey.privateKey, 'ES256')}`)).rejects.toBeInstanceOf(AuthenticationError);
  });
});

describe('token clock tolerance', () => {
  /** A development-key token whose `exp` passed `secondsAgo` seconds ago (jose directly: a ttl cannot be negative). */
  async function expiredToken(secondsAgo: number): Promise<string> {
    const key = await loadOrCreateDevelopmentKey(dataDir);
    const config = loadConfig({});
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ roles: ['clinician'], org: 'org-1', amr: ['pwd', 'mfa'] })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid })
      .setSubject('clinician-1')
      .setIssuer(config.auth.issuer)
      .setAudience(config.auth.audience)
      .setIssuedAt(now - 600)
      .setExpirationTime(now - secondsAgo)
      .setJti(`expired-${secondsAgo}`)
      .sign(key.privateKey);
  }

  async function verify(env: Record<string, string>, token: string) {
    const verifier = await createTokenVerifier(loadConfig(env).auth, dataDir, revocationList(new MemoryCache()));
    return verifier.verifyAuthorization(`Bearer ${token}`);
  }

  it('accepts a token that expired 20 s ago with the default 30 s tolerance', async () => {
    expect(loadConfig({}).auth.clockToleranceSeconds).toBe(30);
    await expect(verify({}, await expiredToken(20))).resolves.toMatchObject({ subject: 'clinician-1' });
  });

  it('refuses the same token as expired with AUTH_CLOCK_TOLERANCE_SECONDS=5', async () => {
    const refusal = await verify({ AUTH_CLOCK_TOLERANCE_SECONDS: '5' }, await expiredToken(20)).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(AuthenticationError);
    expect((refusal as AuthenticationError).reason).toBe('EXPIRED_TOKEN');
  });

  it('refuses with the default tolerance a token that expired a minute ago', async () => {
    await expect(verify({}, await expiredToken(60))).rejects.toMatchObject({ reason: 'EXPIRED_TOKEN' });
  });

  it('refuses with no tolerance at all (0) a token that expired 2 s ago', async () => {
    await expect(verify({ AUTH_CLOCK_TOLERANCE_SECONDS: '0' }, await expiredToken(2))).rejects.toMatchObject({ reason: 'EXPIRED_TOKEN' });
  });
});
