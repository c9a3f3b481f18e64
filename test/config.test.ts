import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { DEVELOPMENT_KEY_RING_FILE, generateKeyRingDocument, loadOrCreateDevelopmentKeyRing } from '../src/crypto/index.js';
import { openKeyService } from '../src/crypto/key-service.js';

describe('configuration', () => {
  it('starts with no configuration at all on the embedded defaults', () => {
    const config = loadConfig({});
    expect(config.database.url).toBeUndefined();
    expect(config.redisUrl).toBeUndefined();
    expect(config.gateway.port).toBe(4000);
    expect(config.auth.allowDevelopmentKey).toBe(true);
  });

  it('refuses production without real keys, issuer, database and Redis, listing every problem at once', () => {
    let error: unknown;
    try {
      loadConfig({ NODE_ENV: 'production' }, { serving: true });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    expect(problems).toContain('AUTH_JWKS_URL');
    expect(problems).toContain('AUTH_ISSUER');
    expect(problems).toContain('DATABASE_URL');
    expect(problems).toContain('REDIS_URL');
    expect(problems).toContain('PHI_KEY_RING');
    expect(problems).toContain('AUDIT_SIGNING_KEY');
    expect(problems).toContain('TLS_CERT_FILE');
  });

  it('refuses the development key ring in production', () => {
    expect(() =>
      loadConfig({
        NODE_ENV: 'production',
        AUTH_JWKS_URL: 'https://id.hospital.example/.well-known/jwks.json',
        AUTH_ISSUER: 'https://id.hospital.example',
        DATABASE_URL: 'postgres://api@db.internal/phi?sslmode=verify-full',
        REDIS_URL: 'rediss://cache.internal:6379',
        TLS_TERMINATED_UPSTREAM: 'true',
        PHI_KEY_RING: JSON.stringify(generateKeyRingDocument(true)),
      }),
    ).toThrow(/development key ring/);
  });

  it('never lets production use the development signing key', () => {
    const config = loadConfig({
      NODE_ENV: 'production',
      AUTH_JWKS_URL: 'https://id.hospital.example/.well-known/jwks.json',
      AUTH_ISSUER: 'https://id.hospital.example',
      DATABASE_URL: 'postgres://api@db.internal/phi?sslmode=verify-full',
      REDIS_URL: 'rediss://cache.internal:6379',
      TLS_TERMINATED_UPSTREAM: 'true',
      PHI_KEY_RING: JSON.stringify(generateKeyRingDocument(false)),
      AUDIT_SIGNING_KEY: generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    });
    expect(config.auth.allowDevelopmentKey).toBe(false);
  });

  it('refuses symmetric and unsigned algorithms', () => {
    expect(() => loadConfig({ AUTH_ALGORITHMS: 'HS256' })).toThrow(/HS256/);
    expect(() => loadConfig({ AUTH_ALGORITHMS: 'none' })).toThrow(/none/);
  });

  it('chooses who decrypts from PHI_NATIVE_CRYPTO (auto by default) and refuses anything else by name', () => {
    expect(loadConfig({}).keys.nativeCrypto).toBe('auto');
    expect(loadConfig({ PHI_NATIVE_CRYPTO: 'off' }).keys.nativeCrypto).toBe('off');
    expect(() => loadConfig({ PHI_NATIVE_CRYPTO: 'fast' })).toThrow(/PHI_NATIVE_CRYPTO/);
  });

  it('reports a malformed port by name', () => {
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT/);
  });

  describe('token clock tolerance (AUTH_CLOCK_TOLERANCE_SECONDS)', () => {
    it('is 30 seconds by default, and an empty value means the default', () => {
      expect(loadConfig({}).auth.clockToleranceSeconds).toBe(30);
      expect(loadConfig({ AUTH_CLOCK_TOLERANCE_SECONDS: '' }).auth.clockToleranceSeconds).toBe(30);
    });

    it('accepts 0 to 300 seconds', () => {
      expect(loadConfig({ AUTH_CLOCK_TOLERANCE_SECONDS: '0' }).auth.clockToleranceSeconds).toBe(0);
      expect(loadConfig({ AUTH_CLOCK_TOLERANCE_SECONDS: '300' }).auth.clockToleranceSeconds).toBe(300);
    });

    it('refuses more than 300 seconds, a negative value, a fraction or a word, naming the variable', () => {
      for (const value of ['301', '86400', '-1', '1.5', 'thirty']) {
        let error: unknown;
        try {
          loadConfig({ AUTH_CLOCK_TOLERANCE_SECONDS: value });
        } catch (caught) {
          error = caught;
        }
        expect(error, value).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).problems.join('\n'), value).toMatch(/^AUTH_CLOCK_TOLERANCE_SECONDS: /);
      }
      expect(() => loadConfig({ AUTH_CLOCK_TOLERANCE_SECONDS: '301' })).toThrow(/at most 300 seconds/);
      expect(() => loadConfig({ AUTH_CLOCK_TOLERANCE_SECONDS: '-1' })).toThrow(/must not be negative/);
    });
  });
});

describe('the key-encryption keys in production', () => {
  const production = {
    NODE_ENV: 'production',
    AUTH_JWKS_URL: 'https://id.hospital.example/.well-known/jwks.json',
    AUTH_ISSUER: 'https://id.hospital.example',
    DATABASE_URL: 'postgres://api@db.internal/phi?sslmode=verify-full',
    REDIS_URL: 'rediss://cache.internal:6379',
    TLS_TERMINATED_UPSTREAM: 'true',
    AUDIT_SIGNING_KEY: generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };

  it('refuses the development ring copied into PHI_KEY_RING without its marker, because it holds the data folder ring keys', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'phi-graph-ring-'));
    try {
      const development = await loadOrCreateDevelopmentKeyRing(dataDir);
      const { development: _marker, ...unmarked } = development;
      const config = loadConfig({ ...production, DATA_DIR: dataDir, PHI_KEY_RING: JSON.stringify(unmarked) });
      await expect(openKeyService(config.keys)).rejects.toThrow(/development key ring/);
      // A ring of its own is accepted next to it.
      const own = loadConfig({ ...production, DATA_DIR: dataDir, PHI_KEY_RING: JSON.stringify(generateKeyRingDocument(false)) });
      await expect(openKeyService(own.keys)).resolves.toMatchObject({ kms: { description: 'key ring' } });
      // The development ring's own file, named as PHI_KEY_RING_FILE, is refused by its name as well.
      const byFile = loadConfig({ ...production, DATA_DIR: tmpdir(), PHI_KEY_RING_FILE: join(dataDir, DEVELOPMENT_KEY_RING_FILE) });
      await expect(openKeyService(byFile.keys)).rejects.toThrow(/development key ring/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('takes an HSM instead of a ring, with the PIN from a file, never from the environment', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'phi-graph-pin-'));
    try {
      await writeFile(join(folder, 'pin'), '1234\n', { mode: 0o600 });
      const hsm = { ...production, PHI_KMS: 'pkcs11', PKCS11_MODULE: '/usr/lib/softhsm/libsofthsm2.so', PKCS11_TOKEN_LABEL: 'phi' };
      const config = loadConfig({ ...hsm, PKCS11_PIN_FILE: join(folder, 'pin') });
      expect(config.keys.service).toBe('pkcs11');
      expect(config.keys.pkcs11?.pin).toBe('1234');
      expect(() => loadConfig({ ...hsm, PKCS11_PIN: '1234' })).toThrow(/PKCS11_PIN_FILE/);
      expect(() => loadConfig({ ...production, PHI_KMS: 'pkcs11' })).toThrow(/PKCS11_MODULE/);
      let problems = '';
      try {
        loadConfig({ ...hsm, PKCS11_PIN_FILE: join(folder, 'missing') });
      } catch (error) {
        problems = (error as ConfigError).problems.join('\n');
      }
      expect(problems).toMatch(/PKCS11_PIN_FILE: cannot read/);
      expect(problems).not.toContain('1234');
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});

describe('the data folder', () => {
  it('defaults to a folder of its own per database, so development files of one are never read against another', () => {
    const embedded = loadConfig({});
    const one = loadConfig({ DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/one' });
    const again = loadConfig({ DATABASE_URL: 'postgres://someone:secret@127.0.0.1:5432/one' });
    const two = loadConfig({ DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/two' });
    expect(embedded.database.dataDir).toBe(resolve('.data'));
    expect(one.database.dataDir).toMatch(/\.data\/postgres-[0-9a-f]{12}$/);
    expect(again.database.dataDir).toBe(one.database.dataDir);
    expect(new Set([embedded.database.dataDir, one.database.dataDir, two.database.dataDir]).size).toBe(3);
    expect(one.keys.dataDir).toBe(one.database.dataDir);
    // An explicit DATA_DIR is the operator's choice.
    expect(loadConfig({ DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/one', DATA_DIR: '/srv/phi' }).database.dataDir).toBe('/srv/phi');
  });
});
