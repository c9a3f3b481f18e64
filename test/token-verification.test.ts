import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { loadConfig } from '../src/config.js';
import { createTokenVerifier, loadOrCreateDevelopmentKey, mintDevelopmentToken, AuthenticationError } from '../src/auth/index.js';
import { MemoryCache, revocationList } from '../src/cache/index.js';
import { generateKeyRingDocument } from '../src/crypto/index.js';

let dataDir: string;
const productionEnv = {
  NODE_ENV: 'production',
  AUTH_ISSUER: 'https://id.hospital.example',
  AUTH_AUDIENCE: 'phi-graph',
  DATABASE_URL: 'postgres://api@db.internal/phi',
  REDIS_URL: 'redis://cache.internal:6379',
  PHI_KEY_RING: JSON.stringify(generateKeyRingDocument(false)),
};

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-keys-'));
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('production token verification', () => {
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
