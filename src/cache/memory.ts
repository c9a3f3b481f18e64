import type { Cache, SetAddition } from './cache.js';

interface Entry {
  value: string;
  expiresAt: number | null;
  /** Set members, for the keys addToSet writes (kept as a Set: no re-serialization per call). */
  members?: Set<string>;
}

const MILLISECONDS_PER_SECOND = 1000;

/** In-process Cache for development: same semantics as Redis, one process only. */
export class MemoryCache implements Cache {
  readonly kind = 'memory' as const;
  readonly #entries = new Map<string, Entry>();

  get(key: string): Promise<string | null> {
    return Promise.resolve(this.#live(key)?.value ?? null);
  }

  getMany(keys: readonly string[]): Promise<(string | null)[]> {
    return Promise.resolve(keys.map((key) => this.#live(key)?.value ?? null));
  }

  set(key: string, value: string, ttlSeconds?: number): Promise<void> {
    this.#entries.set(key, { value, expiresAt: ttlSeconds ? Date.now() + ttlSeconds * MILLISECONDS_PER_SECOND : null });
    return Promise.resolve();
  }

  delete(key: string): Promise<void> {
    this.#entries.delete(key);
    return Promise.resolve();
  }

  increment(key: string, ttlSeconds: number, by = 1): Promise<number> {
    const entry = this.#live(key);
    const next = (entry ? Number(entry.value) : 0) + by;
    this.#entries.set(key, {
      value: String(next),
      expiresAt: entry?.expiresAt ?? Date.now() + ttlSeconds * MILLISECONDS_PER_SECOND,
    });
    return Promise.resolve(next);
  }

  addToSet(key: string, members: readonly string[], ttlSeconds: number): Promise<SetAddition> {
    const entry = this.#live(key);
    const set = entry?.members ?? new Set<string>();
    const before = set.size;
    for (const member of members) set.add(member);
    this.#entries.set(key, { value: '', members: set, expiresAt: entry?.expiresAt ?? Date.now() + ttlSeconds * MILLISECONDS_PER_SECOND });
    return Promise.resolve({ added: set.size - before, size: set.size });
  }

  ping(): Promise<boolean> {
    return Promise.resolve(true);
  }

  close(): Promise<void> {
    this.#entries.clear();
    return Promise.resolve();
  }

  #live(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry?.expiresAt !== undefined && entry.expiresAt !== null && entry.expiresAt <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }
}
