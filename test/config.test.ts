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
});
