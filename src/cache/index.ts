import { CacheUnavailableError, type Cache } from './cache.js';
import { MemoryCache } from './memory.js';
import { RedisCache } from './redis.js';
import type { RedisTlsFiles } from '../transport/redis-tls.js';

export type { Cache, SetAddition } from './cache.js';
export { CacheUnavailableError } from './cache.js';
export { MemoryCache } from './memory.js';
export { RedisCache } from './redis.js';

/** Redis when a URL is given (over TLS for rediss://, with these files: README, "Transport security"), the in-process cache otherwise. */
export async function openCache(redisUrl: string | undefined, prefix?: string, tls: RedisTlsFiles = {}): Promise<Cache> {
  return redisUrl ? RedisCache.connect(redisUrl, prefix, tls) : new MemoryCache();
}

const REVOKED_PREFIX = 'revoked-token:';
/** Set once the cache holds every revocation in force (from the database); gone when the cache was emptied. */
const LOADED_KEY = 'revocations-loaded';
const MILLISECONDS_PER_SECOND = 1000;

/** Where revocations are kept for good (PostgreSQL, src/db/revocations.ts); the cache holds a copy. */
export interface RevocationStore {
  record(tokenId: string, expiresAt: Date): Promise<void>;
  /** Every revocation whose token has not expired yet. */
  inForce(): Promise<{ tokenId: string; expiresAt: Date }[]>;
}

export type RevocationList = ReturnType<typeof revocationList>;

/**
 * Token revocation: kept in the database until the token would have
 * expired, and copied into the cache, which every request asks. A cache
 * emptied by a flush or a restart has lost its "loaded" mark: the next
 * check fills it again from the database before it answers, so a revoked
 * token never comes back to life. Without a store (a gateway alone, which
 * has no database) the cache is all there is; the subgraphs behind it check
 * every token again with their store.
 */
export function revocationList(cache: Cache, store?: RevocationStore) {
  const key = (tokenId: string) => `${REVOKED_PREFIX}${tokenId}`;
  const ttl = (expiresAt: Date) => Math.max(1, Math.ceil((expiresAt.getTime() - Date.now()) / MILLISECONDS_PER_SECOND));
  let reloading: Promise<void> | null = null;
  const reload = async (from: RevocationStore) => {
    for (const { tokenId, expiresAt } of await from.inForce()) await cache.set(key(tokenId), '1', ttl(expiresAt));
    await cache.set(LOADED_KEY, new Date().toISOString());
  };
  return {
    async isRevoked(tokenId: string): Promise<boolean> {
      // One round trip: the token's entry and whether the cache still holds every revocation.
      const [revoked, loaded] = await cache.getMany([key(tokenId), LOADED_KEY]);
      if (revoked !== null && revoked !== undefined) return true;
      if (!store || (loaded !== null && loaded !== undefined)) return false;
      // A database that does not answer leaves the list unknown: refused as when the cache does not answer (503), never taken as "not revoked".
      reloading ??= reload(store)
        .catch(() => {
          throw new CacheUnavailableError('revocations reload');
        })
        .finally(() => (reloading = null));
      await reloading;
      return (await cache.get(key(tokenId))) !== null;
    },
    /** In the database first (it outlives the cache), then in the cache. */
    async revoke(tokenId: string, expiresAt: Date): Promise<void> {
      await store?.record(tokenId, expiresAt);
      await cache.set(key(tokenId), '1', ttl(expiresAt));
    },
  };
}
