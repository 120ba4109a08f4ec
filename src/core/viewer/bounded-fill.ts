/**
 * Intensity-bounded flood fill (3D Slicer's "Flood filling", ITK-SNAP's "bubble" without the
 * speed image): from a clicked pixel, every 4-connected pixel whose image value lies in a range,
 * the range picked from the seed's neighbourhood and editable. A guard stops a fill that would
 * change more than a set share of the slice (one click must not paint the whole background).
 * @module
 */

/** What a bounded fill found. */
export interface BoundedFillResult {
  /** In-plane indices of the region (empty when guarded). */
  pixels: Int32Array;
  /** True when the region grew past `maxPixels` (nothing should be written). */
  guarded: boolean;
  /** Pixels found (up to maxPixels + 1 when guarded). */
  count: number;
}

/**
 * The intensity range around a seed: its 5 × 5 neighbourhood's mean ± max(3·sd, 2% of the image
 * range, 1) — tight enough to stop at an organ's edge, loose enough for noise inside it.
 * @param image - the slice's values, x fastest
 * @param width - slice width
 * @param height - slice height
 * @param seed - the clicked pixel
 * @param imageRange - the image's value range (for the floor of the tolerance)
 * @example
 * seedRange(ct, 512, 512, { x: 200, y: 240 }, [-1024, 3071]); // e.g. [38, 82]
 */
export function seedRange(image: ArrayLike<number>, width: number, height: number, seed: { x: number; y: number }, imageRange: readonly [number, number]): [number, number] {
  const x0 = Math.floor(seed.x), y0 = Math.floor(seed.y);
  let s = 0, s2 = 0, n = 0;
  for (let y = Math.max(0, y0 - 2); y <= Math.min(height - 1, y0 + 2); y++) {
    for (let x = Math.max(0, x0 - 2); x <= Math.min(width - 1, x0 + 2); x++) {
      const v = image[x + width * y]!;
      s += v;
      s2 += v * v;
      n++;
    }
  }
  const mean = s / n;
  const sd = Math.sqrt(Math.max(0, s2 / n - mean * mean));
  const tol = Math.max(3 * sd, 0.02 * (imageRange[1] - imageRange[0]), 1);
  return [mean - tol, mean + tol];
}

/**
 * The 4-connected region of pixels with values in [lo, hi] that holds the seed (scanline fill).
 * @param image - the slice's values, x fastest
 * @param width - slice width
 * @param height - slice height
 * @param seed - the clicked pixel (its own value must be in range, else the result is empty)
 * @param range - [lo, hi], inclusive
 * @param maxPixels - guard: stop and report `guarded` once the region is larger
 * @param allowed - optional per-pixel filter (e.g. locked labels), true = may be filled
 * @example
 * const r = boundedFill(ct, 512, 512, { x: 200, y: 240 }, [40, 80], 0.25 * 512 * 512);
 */
export function boundedFill(image: ArrayLike<number>, width: number, height: number, seed: { x: number; y: number }, range: readonly [number, number], maxPixels = Infinity, allowed?: (p: number) => boolean): BoundedFillResult {
  const x = Math.floor(seed.x), y = Math.floor(seed.y);
  const [lo, hi] = range;
  const empty = { pixels: new Int32Array(0), guarded: false, count: 0 };
  if (x < 0 || y < 0 || x >= width || y >= height) return empty;
  const ok = (p: number) => {
    const v = image[p]!;
    return v >= lo && v <= hi && (!allowed || allowed(p));
  };
  if (!ok(x + width * y)) return empty;
  const seen = new Uint8Array(width * height);
  const out: number[] = [];
  const stack: number[] = [x, y];
  while (stack.length) {
    const sy = stack.pop()!, sx = stack.pop()!;
    const row = sy * width;
    if (seen[row + sx]) continue;
    let a = sx, b = sx;
    while (a > 0 && !seen[row + a - 1] && ok(row + a - 1)) a--;
    while (b < width - 1 && !seen[row + b + 1] && ok(row + b + 1)) b++;
    for (let q = a; q <= b; q++) {
      seen[row + q] = 1;
      out.push(row + q);
    }
    if (out.length > maxPixels) return { pixels: new Int32Array(0), guarded: true, count: out.length };
    for (const ny of [sy - 1, sy + 1]) {
      if (ny < 0 || ny >= height) continue;
      const nrow = ny * width;
      let inRun = false;
      for (let q = a; q <= b; q++) {
        const p = nrow + q;
        const good = !seen[p] && ok(p);
        if (good && !inRun) stack.push(q, ny);
        inRun = good;
      }
    }
  }
  return { pixels: Int32Array.from(out), guarded: false, count: out.length };
}
