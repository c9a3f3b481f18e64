import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { generateKeyRingDocument } from '../src/crypto/index.js';

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
      loadConfig({ NODE_ENV: 'production' });
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
  });

  it('refuses the development key ring in production', () => {
    expect(() =>
      loadConfig({
        NODE_ENV: 'production',
        AUTH_JWKS_URL: 'https://id.hospital.example/.well-known/jwks.json',
        AUTH_ISSUER: 'https://id.hospital.example',
        DATABASE_URL: 'postgres://api@db.internal/phi',
        REDIS_URL: 'redis://cache.internal:6379',
        PHI_KEY_RING: JSON.stringify(generateKeyRingDocument(true)),
      }),
    ).toThrow(/development key ring/);
  });

  it('never lets production use the development signing key', () => {
    const config = loadConfig({
      NODE_ENV: 'production',
      AUTH_JWKS_URL: 'https://id.hospital.example/.well-known/jwks.json',
      AUTH_ISSUER: 'https://id.hospital.example',
      DATABASE_URL: 'postgres://api@db.internal/phi',
      REDIS_URL: 'redis://cache.internal:6379',
      PHI_KEY_RING: JSON.stringify(generateKeyRingDocument(false)),
      AUDIT_SIGNING_KEY: generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    });
    expect(config.auth.allowDevelopmentKey).toBe(false);
  });

  it('refuses symmetric and unsigned algorithms', () => {
    expect(() => loadConfig({ AUTH_ALGORITHMS: 'HS256' })).toThrow(/HS256/);
    expect(() => loadConfig({ AUTH_ALGORITHMS: 'none' })).toThrow(/none/);
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
