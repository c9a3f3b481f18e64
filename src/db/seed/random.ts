/**
 * Deterministic pseudo-random numbers for the seeder. Never Math.random,
 * the clock or crypto: the same key always yields the same sequence, on
 * every platform, because only 32-bit integer arithmetic and exactly
 * rounded IEEE operations (+ - * /) are used (no Math.log, Math.cos, ...).
 *
 * The generator is sfc32 (Chris Doty-Humphrey's Small Fast Counting
 * generator); its 128-bit state is derived from a key of 32-bit words
 * through the murmur3 finaliser, so independent streams are cheap:
 * `new Random(seedLow, seedHigh, STREAM_PATIENT, patientIndex)`.
 */

const UINT32_RANGE = 0x1_0000_0000;
/** Rounds discarded after seeding so that similar keys give unrelated output. */
const WARM_UP_ROUNDS = 16;
const GOLDEN_RATIO_32 = 0x9e37_79b9;
/** Sum of this many uniforms approximates a normal distribution (Irwin–Hall). */
const IRWIN_HALL_TERMS = 6;
/** 1 / standard deviation of the sum of IRWIN_HALL_TERMS uniforms (sqrt(12 / 6)). */
const IRWIN_HALL_SCALE = Math.SQRT2;

/** murmur3 fmix32: a bijective 32-bit mixer. */
export function mix32(value: number): number {
  let hash = value >>> 0;
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85eb_ca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2_ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

/** Splits a safe integer seed into two 32-bit key words (low, high). */
export function seedWords(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  return [seed >>> 0, Math.floor(seed / UINT32_RANGE) >>> 0];
}

function hashKey(key: readonly number[], lane: number): number {
  let hash = mix32(Math.imul(lane + 1, GOLDEN_RATIO_32));
  for (const word of key) {
    hash = mix32(hash ^ mix32((word >>> 0) + lane));
    hash = (Math.imul(hash, 5) + 0xe654_6b64) >>> 0;
  }
  return mix32(hash ^ key.length);
}

/** Element `index` of `items`; throws instead of returning undefined. */
export function at<T>(items: readonly T[], index: number): T {
  const item = items[index];
  if (item === undefined) throw new RangeError(`index ${index} is outside a list of ${items.length}`);
  return item;
}

export type Weighted<T> = readonly (readonly [T, number])[];

export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** Every word of the key selects a stream; equal keys give equal sequences. */
  constructor(...key: number[]) {
    this.a = hashKey(key, 0);
    this.b = hashKey(key, 1);
    this.c = hashKey(key, 2);
    this.d = hashKey(key, 3);
    for (let round = 0; round < WARM_UP_ROUNDS; round++) this.uint32();
  }

  /** The next 32-bit unsigned integer (one sfc32 step). */
  uint32(): number {
    const result = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + result) >>> 0;
    return result;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.uint32() / UINT32_RANGE;
  }

  /** Uniform integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    if (max < min) throw new RangeError(`empty range [${min}, ${max}]`);
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** Uniform real in [min, max). */
  real(min: number, max: number): number {
    return min + this.next() * (max - min);
  }

  /** True with probability `probability`. */
  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    return at(items, this.int(0, items.length - 1));
  }

  /** One item, each with probability proportional to its weight. */
  weighted<T>(entries: Weighted<T>): T {
    let total = 0;
    for (const [, weight] of entries) total += weight;
    let target = this.next() * total;
    for (const [item, weight] of entries) {
      if (target < weight) return item;
      target -= weight;
    }
    return at(entries, entries.length - 1)[0];
  }

  /** Up to `count` distinct items, drawn without replacement, proportionally to their weights. */
  weightedSample<T>(entries: Weighted<T>, count: number): T[] {
    const remaining = [...entries];
    const chosen: T[] = [];
    while (chosen.length < count && remaining.length > 0) {
      const item = this.weighted(remaining);
      chosen.push(item);
      remaining.splice(
        remaining.findIndex(([candidate]) => candidate === item),
        1,
      );
    }
    return chosen;
  }

  /** Up to `count` distinct items, uniformly. */
  sample<T>(items: readonly T[], count: number): T[] {
    return this.weightedSample(
      items.map((item) => [item, 1] as const),
      count,
    );
  }

  /** Approximately normal (mean, standard deviation), clamped to [min, max]. */
  normal(mean: number, deviation: number, min = -Infinity, max = Infinity): number {
    let sum = 0;
    for (let term = 0; term < IRWIN_HALL_TERMS; term++) sum += this.next();
    const value = mean + (sum - IRWIN_HALL_TERMS / 2) * IRWIN_HALL_SCALE * deviation;
    return Math.min(max, Math.max(min, value));
  }

  /** `length` decimal digits (leading zeros allowed). */
  digits(length: number): string {
    let text = '';
    for (let position = 0; position < length; position++) text += String(this.int(0, 9));
    return text;
  }

  /** `length` upper-case ASCII letters. */
  letters(length: number): string {
    let text = '';
    for (let position = 0; position < length; position++) text += String.fromCharCode(65 + this.int(0, 25));
    return text;
  }

  /** A version 4 (random) UUID drawn from this stream. */
  uuid(): string {
    const words = [this.uint32(), this.uint32(), this.uint32(), this.uint32()];
    words[1] = ((at(words, 1) & 0xffff_0fff) | 0x0000_4000) >>> 0; // version 4
    words[2] = ((at(words, 2) & 0x3fff_ffff) | 0x8000_0000) >>> 0; // variant 10xx
    const hex = words.map((word) => word.toString(16).padStart(8, '0')).join('');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
  }
}

function greatestCommonDivisor(left: number, right: number): number {
  let x = left;
  let y = right;
  while (y !== 0) [x, y] = [y, x % y];
  return x;
}

const MULTIPLIER_MIN = 1_000_003;
const MULTIPLIER_MAX = 4_000_000;

/**
 * A bijection of [0, size) that looks scrambled: index -> (index * m + o) mod size
 * with m coprime to size. Used for identifiers that must be unique (MRN, SSN,
 * NPI) without remembering the ones already handed out.
 */
export class Permutation {
  private readonly multiplier: number;
  private readonly offset: number;

  constructor(
    readonly size: number,
    random: Random,
  ) {
    if (!Number.isSafeInteger(size * MULTIPLIER_MAX)) throw new RangeError(`permutation of ${size} is too large`);
    let multiplier = random.int(MULTIPLIER_MIN, MULTIPLIER_MAX);
    while (greatestCommonDivisor(multiplier, size) !== 1) multiplier++;
    this.multiplier = multiplier;
    this.offset = random.int(0, size - 1);
  }

  at(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) {
      throw new RangeError(`index ${index} is outside a permutation of ${this.size}`);
    }
    return (index * this.multiplier + this.offset) % this.size;
  }
}
