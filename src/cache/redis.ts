import { Redis } from 'ioredis';
import { CacheUnavailableError, type Cache, type SetAddition } from './cache.js';
import { redisTlsOptions, redisUrlProblem, type RedisTlsFiles } from '../transport/redis-tls.js';

const CONNECT_TIMEOUT_MS = 2_000;
/** A command not answered within this fails: a request never waits on Redis longer. */
export const COMMAND_TIMEOUT_MS = 1_000;
/** Reconnection attempts back off up to this, and never stop: Redis coming back is picked up without a restart. */
const MAX_RECONNECT_DELAY_MS = 2_000;
const KEY_PREFIX = 'phi-graph:';

/** Cache on Redis. Keys are prefixed so the API can share a Redis instance. */
export class RedisCache implements Cache {
  readonly kind = 'redis' as const;
  readonly #client: Redis;

  private constructor(client: Redis) {
    this.#client = client;
  }

  /** Connects and checks the server answers; throws with the URL's host (never its password) if not. */
  static async connect(url: string, prefix = KEY_PREFIX, tlsFiles: RedisTlsFiles = {}): Promise<RedisCache> {
    const problem = redisUrlProblem(url);
    if (problem) throw new Error(problem);
    const tls = redisTlsOptions(url, tlsFiles);
    const client = new Redis(url, {
      keyPrefix: prefix,
      // rediss://: the server's certificate verified, the client certificate sent when configured (src/transport/redis-tls.ts).
      ...(tls && { tls }),
      lazyConnect: true,
      connectTimeout: CONNECT_TIMEOUT_MS,
      commandTimeout: COMMAND_TIMEOUT_MS,
      // While Redis is away a command fails at once instead of queueing (requests would pile up behind it for seconds).
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: (attempt) => Math.min(attempt * 200, MAX_RECONNECT_DELAY_MS),
    });
    // A lost connection is reported by the commands that fail meanwhile; the client reconnects by itself.
    // At start, the connection's own error says why (a certificate that did not verify, a refused handshake).
    let cause: Error | null = null;
    const noteCause = (error: Error) => (cause ??= error);
    client.on('error', noteCause);
    try {
      await client.connect();
      await client.ping();
    } catch (error) {
      client.disconnect();
      const { hostname, port } = new URL(url);
      const why = cause ?? (error as Error);
      const code = (why as { code?: unknown }).code;
      throw new Error(`Redis at ${hostname}:${port || 6379} is not reachable: ${why.message}${typeof code === 'string' && !why.message.includes(code) ? ` (${code})` : ''}`);
    } finally {
      client.off('error', noteCause);
    }
    client.on('error', () => undefined);
    return new RedisCache(client);
  }

  get(key: string): Promise<string | null> {
    return unavailableOnFailure('get', () => this.#client.get(key));
  }

  getMany(keys: readonly string[]): Promise<(string | null)[]> {
    return unavailableOnFailure('mget', () => this.#client.mget(...keys));
  }

  set(key: string, value: string, ttlSeconds?: number): Promise<void> {
    return unavailableOnFailure('set', async () => {
      if (ttlSeconds) await this.#client.set(key, value, 'EX', ttlSeconds);
      else await this.#client.set(key, value);
    });
  }

  delete(key: string): Promise<void> {
    return unavailableOnFailure('delete', async () => {
      await this.#client.del(key);
    });
  }

  increment(key: string, ttlSeconds: number, by = 1): Promise<number> {
    return unavailableOnFailure('increment', async () => {
      const results = (await this.#client.multi().incrby(key, by).expire(key, ttlSeconds, 'NX').exec()) as [Error | null, number][] | null;
      if (!results || results[0]?.[0]) throw results?.[0]?.[0] ?? new Error('no reply');
      return results[0]?.[1] ?? 0;
    });
  }

  addToSet(key: string, members: readonly string[], ttlSeconds: number): Promise<SetAddition> {
    return unavailableOnFailure('addToSet', async () => {
      if (members.length === 0) return { added: 0, size: await this.#client.scard(key) };
      const results = (await this.#client.multi().sadd(key, ...members).expire(key, ttlSeconds, 'NX').scard(key).exec()) as [Error | null, number][] | null;
      const failed = results?.find(([error]) => error !== null)?.[0];
      if (!results || failed) throw failed ?? new Error(`the set ${key} was not updated`);
      return { added: results[0]?.[1] ?? 0, size: results[2]?.[1] ?? 0 };
    });
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.#client.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.#client.quit().catch(() => this.#client.disconnect());
  }
}

/** Any failure of a Redis command (down, unreachable, timed out) is the cache being unavailable, said without Redis's own words. */
async function unavailableOnFailure<T>(operation: string, command: () => Promise<T>): Promise<T> {
  try {
    return await command();
  } catch {
    throw new CacheUnavailableError(operation);
  }
}
