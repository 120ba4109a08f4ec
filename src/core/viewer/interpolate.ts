/**
 * "Fill between slices": the slices between two edited slices of a label, interpolated from their
 * shapes. Each edited slice becomes a signed Euclidean distance map (negative inside); the slice
 * at fraction t between them is where (1 − t)·d₀ + t·d₁ ≤ 0 — shape-based interpolation (Raya &
 * Udupa 1990; Herman et al. 1992), the closed form of what morphological contour interpolation
 * (Albu et al. 2008, 3D Slicer's "Fill between slices") approximates by dilations for shapes that
 * overlap. The distance transform is Felzenszwalb & Huttenlocher's exact two-pass one (no library
 * in the browser bundle offers it, hence hand-written).
 * @module
 */

const INF = 1e20;

/** Exact 1D squared distance transform of f (in place via out), spacing s. */
function dt1d(f: Float64Array, n: number, s2: number, out: Float64Array, v: Int32Array, z: Float64Array): void {
  let k = 0;
  v[0] = 0;
  z[0] = -INF;
  z[1] = INF;
  for (let q = 1; q < n; q++) {
    const cut = (p: number) => (f[q]! + s2 * q * q - (f[p]! + s2 * p * p)) / (2 * s2 * (q - p));
    let sq = cut(v[k]!);
    while (sq <= z[k]!) sq = cut(v[--k]!); // z[0] = −∞ ends the loop
    k++;
    v[k] = q;
    z[k] = sq;
    z[k + 1] = INF;
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    while (z[k + 1]! < q) k++;
    const p = v[k]!;
    out[q] = s2 * (q - p) * (q - p) + f[p]!;
  }
}

/**
 * Squared Euclidean distance (in mm²) of every pixel to the nearest pixel where `inside(p)` holds.
 * @param width - plane width
 * @param height - plane height
 * @param inside - the feature pixels (distance 0)
 * @param spacing - pixel size [x, y] in mm (default 1)
 * @returns width · height squared distances (1e20 everywhere when no pixel is inside)
 */
export function squaredDistance(width: number, height: number, inside: (p: number) => boolean, spacing: readonly [number, number] = [1, 1]): Float64Array {
  const n = Math.max(width, height);
  const f = new Float64Array(n), out = new Float64Array(n), z = new Float64Array(n + 1);
  const v = new Int32Array(n);
  const d = new Float64Array(width * height);
  for (let p = 0; p < d.length; p++) d[p] = inside(p) ? 0 : INF;
  const sx2 = spacing[0] ** 2, sy2 = spacing[1] ** 2;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) f[x] = d[x + width * y]!;
    dt1d(f, width, sx2, out, v, z);
    for (let x = 0; x < width; x++) d[x + width * y] = out[x]!;
  }
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) f[y] = d[x + width * y]!;
    dt1d(f, height, sy2, out, v, z);
    for (let y = 0; y < height; y++) d[x + width * y] = out[y]!;
  }
  return d;
}

/**
 * Signed distance to the boundary of the pixels labelled `label`: negative inside (distance to
 * the nearest outside pixel), positive outside; pixel-centre distances shifted by half a pixel so
 * that a one-pixel shape has a boundary between pixels.
 */
export function signedDistance(plane: ArrayLike<number>, width: number, height: number, label: number, spacing: readonly [number, number] = [1, 1]): Float64Array {
  const toIn = squaredDistance(width, height, (p) => plane[p] === label, spacing);
  const toOut = squaredDistance(width, height, (p) => plane[p] !== label, spacing);
  const h = Math.min(spacing[0], spacing[1]) / 2;
  const out = new Float64Array(width * height);
  for (let p = 0; p < out.length; p++) out[p] = plane[p] === label ? -(Math.sqrt(toOut[p]!) - h) : Math.sqrt(toIn[p]!) - h;
  return out;
}

/**
 * The masks of `label` on the slices between two edited slices.
 * @param a - the first edited slice's labels (x fastest)
 * @param b - the second's
 * @param width - slice width
 * @param height - slice height
 * @param label - the label to interpolate
 * @param between - slices strictly between the two (e.g. 3 for slices 10 and 14)
 * @param spacing - in-plane pixel size in mm
 * @returns `between` masks (1 = inside), nearest to `a` first
 * @example
 * const mids = interpolateSlices(p10, p14, 512, 512, 5, 3);
 */
export function interpolateSlices(a: ArrayLike<number>, b: ArrayLike<number>, width: number, height: number, label: number, between: number, spacing: readonly [number, number] = [1, 1]): Uint8Array[] {
  const da = signedDistance(a, width, height, label, spacing);
  const db = signedDistance(b, width, height, label, spacing);
  const out: Uint8Array[] = [];
  for (let s = 1; s <= between; s++) {
    const t = s / (between + 1);
    const m = new Uint8Array(width * height);
    for (let p = 0; p < m.length; p++) if ((1 - t) * da[p]! + t * db[p]! <= 0) m[p] = 1;
    out.push(m);
  }
  return out;
}
