/**
 * Seeded randomness for everything in medmask that must be reproducible: phantoms, MC Dropout
 * masks, validation splits. Same seed → same numbers on every platform (32-bit integer maths only,
 * no `Math.random`).
 * @module
 */

/**
 * A seeded PRNG (mulberry32): fast, 32-bit state, uniform in [0, 1).
 * @param seed - any integer
 * @returns a function giving the next number
 * @example
 * const rand = mulberry32(42); rand(); // same sequence for the same seed
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 32-bit FNV-1a of a string: turns a stream name into a seed component. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A seeded random stream with the draws medmask needs, and named, independent sub-streams
 * (`fork`), so that switching one part of a generator off (say the lesions of a phantom) leaves
 * every other part's numbers unchanged.
 * @example
 * const r = new Rng(7);
 * const anatomy = r.fork('anatomy'), noise = r.fork('noise');
 * anatomy.uniform(0.9, 1.1); noise.normal();
 */
export class Rng {
  private readonly next: () => number;
  private spare: number | undefined;

  /** @param seed - any integer; the same seed gives the same stream */
  constructor(readonly seed: number) {
    this.next = mulberry32(seed);
  }

  /** Uniform in [0, 1). */
  random(): number {
    return this.next();
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Integer uniform in [lo, hi] (both included). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** Standard normal (Box–Muller, the second value kept for the next call), times `sd`, plus `mean`. */
  normal(mean = 0, sd = 1): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return mean + sd * s;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return mean + sd * r * Math.cos(2 * Math.PI * v);
  }

  /** One element of a non-empty list, with optional weights. */
  pick<T>(items: readonly T[], weights?: readonly number[]): T {
    if (!weights) return items[Math.floor(this.next() * items.length)]!;
    const total = weights.reduce((a, b) => a + b, 0);
    let x = this.next() * total;
    for (let i = 0; i < items.length; i++) {
      x -= weights[i]!;
      if (x < 0) return items[i]!;
    }
    return items[items.length - 1]!;
  }

  /** A Fisher–Yates shuffle of a copy. */
  shuffle<T>(items: readonly T[]): T[] {
    const a = items.slice();
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a;
  }

  /**
   * An independent stream derived from this stream's seed and a name (not from its position), so
   * forks are stable however many numbers the parent has drawn.
   */
  fork(name: string | number): Rng {
    return new Rng((Math.imul(this.seed ^ 0x9e3779b9, 0x85ebca6b) ^ fnv1a(String(name))) >>> 0);
  }
}
