import type { Cache } from './cache.js';
import { MemoryCache } from './memory.js';
import { RedisCache } from './redis.js';

export type { Cache, SetAddition } from './cache.js';
export { CacheUnavailableError } from './cache.js';
export { MemoryCache } from './memory.js';
export { RedisCache } from './redis.js';

export async function openCache(redisUrl: string | undefined, prefix?: string): Promise<Cache> {
  return redisUrl ? RedisCache.connect(redisUrl, prefix) : new MemoryCache();
}

const REVOKED_PREFIX = 'revoked-token:';

/** Token revocation on top of the cache: a revoked jti stays listed until the token would have expired. */
export function revocationList(cache: Cache) {
  return {
    async isRevoked(tokenId: string): Promise<boolean> {
      return (await cache.get(`${REVOKED_PREFIX}${tokenId}`)) !== null;
    },
    async revoke(tokenId: string, ttlSeconds: number): Promise<void> {
      await cache.set(`${REVOKED_PREFIX}${tokenId}`, '1', Math.max(1, Math.ceil(ttlSeconds)));
    },
  };
}
