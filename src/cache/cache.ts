/**
 * The shared key-value store behind revocation lists, counters and (later)
 * membership caches. Redis in production; an in-process implementation of
 * the same interface when REDIS_URL is not set.
 */
export interface SetAddition {
  added: number;
  size: number;
}

export interface Cache {
  readonly kind: 'redis' | 'memory';
  get(key: string): Promise<string | null>;
  /** Several keys in one round trip, in order. */
  getMany(keys: readonly string[]): Promise<(string | null)[]>;
  /** Stores a value; with ttlSeconds it expires by itself. */
  set(key: string, value: string, ttlSeconds?: number): Promise<void>;
  delete(key: string): Promise<void>;
  /** Increments a counter (by 1 or `by`), starting its expiry window on first increment. */
  increment(key: string, ttlSeconds: number, by?: number): Promise<number>;
  /** Adds members to a set (the window starts on first add): how many were new, and the set's size after. */
  addToSet(key: string, members: readonly string[], ttlSeconds: number): Promise<SetAddition>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * The cache did not answer (Redis down, unreachable or slow): raised by
 * every operation of a cache that could not do it. Callers decide: a
 * revocation, an emergency grant or a sharing agreement is never taken as
 * absent (the request is refused, 503 CACHE_UNAVAILABLE); what the
 * database knows as well (care-team membership) is read from it instead.
 */
export class CacheUnavailableError extends Error {
  constructor(operation: string) {
    super(`the cache did not answer (${operation})`);
    this.name = 'CacheUnavailableError';
  }
}
