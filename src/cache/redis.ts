import { Redis } from 'ioredis';
import type { Cache, SetAddition } from './cache.js';

const CONNECT_TIMEOUT_MS = 2_000;
const KEY_PREFIX = 'phi-graph:';

/** Cache on Redis. Keys are prefixed so the API can share a Redis instance. */
export class RedisCache implements Cache {
  readonly kind = 'redis' as const;
  readonly #client: Redis;

  private constructor(client: Redis) {
    this.#client = client;
  }

  /** Connects and checks the server answers; throws with the URL's host (never its password) if not. */
  static async connect(url: string, prefix = KEY_PREFIX): Promise<RedisCache> {
    const client = new Redis(url, {
      keyPrefix: prefix,
      lazyConnect: true,
      connectTimeout: CONNECT_TIMEOUT_MS,
      maxRetriesPerRequest: 2,
      enableOfflineQueue: true,
    });
    try {
      await client.connect();
      await client.ping();
    } catch (error) {
      client.disconnect();
      const { host, port } = new URL(url);
      throw new Error(`Redis at ${host}:${port || 6379} is not reachable: ${(error as Error).message}`);
    }
    return new RedisCache(client);
  }

  get(key: string): Promise<string | null> {
    return this.#client.get(key);
  }

  async set(key: string, value: string, ttlSeconds?: number): Promise<void> {
    if (ttlSeconds) await this.#client.set(key, value, 'EX', ttlSeconds);
    else await this.#client.set(key, value);
  }

  async delete(key: string): Promise<void> {
    await this.#client.del(key);
  }

  async increment(key: string, ttlSeconds: number, by = 1): Promise<number> {
    const [[, count]] = (await this.#client.multi().incrby(key, by).expire(key, ttlSeconds, 'NX').exec()) as [[Error | null, number]];
    return count;
  }

  async addToSet(key: string, members: readonly string[], ttlSeconds: number): Promise<SetAddition> {
    if (members.length === 0) return { added: 0, size: await this.#client.scard(key) };
    const results = (await this.#client.multi().sadd(key, ...members).expire(key, ttlSeconds, 'NX').scard(key).exec()) as [Error | null, number][] | null;
    const failed = results?.find(([error]) => error !== null)?.[0];
    if (!results || failed) throw failed ?? new Error(`the set ${key} was not updated`);
    return { added: results[0]?.[1] ?? 0, size: results[2]?.[1] ?? 0 };
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
