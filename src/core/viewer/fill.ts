/**
 * Flood fill for the editor: the connected region of the clicked pixel's label, in one plane
 * (4-connected) or through a range of planes (6-connected in the slab). A scanline fill that walks
 * only the seed's region, so filling a small organ in a 512×512×200 slab touches that organ's
 * voxels, not the whole slab. (Labelling every component, as `masks/binary.ts`'s
 * `connectedComponents` does for flagged regions, would cost the whole slab per click.)
 * @module
 */
import { MedmaskError } from '../errors.js';
import { fillHoles } from '../masks/binary.js';

/** Region found by a fill: spans as `[plane, row, x0, x1]` quadruples (x1 inclusive). */
export interface FillRegion {
  spans: Int32Array;
  /** Number of spans (spans.length / 4). */
  count: number;
  /** Pixels in the region. */
  pixels: number;
  /** The label value the region had. */
  label: number;
}

/**
 * The connected region of `seed`'s value across planes `first…last` (each `width × height`,
 * row-major; `planes(k)` returns plane k). 4-connected within a plane, and plane k connects to
 * k ± 1 at the same pixel.
 * @param planes - plane accessor (called once per plane in the range)
 * @param seed - start pixel {x, y, k}
 * @param range - [first, last] planes (inclusive); default the seed's plane only
 * @param maxPixels - stop with an error beyond this many pixels (default 2^28)
 * @returns spans of the region and its label
 * @example
 * const r = floodRegion(64, 64, () => plane, { x: 5, y: 5, k: 0 });
 */
export function floodRegion(width: number, height: number, planes: (k: number) => Uint8Array, seed: { x: number; y: number; k: number }, range: [number, number] = [seed.k, seed.k], maxPixels = 2 ** 28): FillRegion {
  const [k0, k1] = range;
  if (!(k0 <= seed.k && seed.k <= k1)) throw new MedmaskError('USAGE', `fill: plane ${seed.k} is outside the range ${k0}…${k1}`);
  if (seed.x < 0 || seed.y < 0 || seed.x >= width || seed.y >= height) throw new MedmaskError('USAGE', `fill: seed (${seed.x}, ${seed.y}) is outside the ${width}×${height} plane`);
  const depth = k1 - k0 + 1;
  const data: Uint8Array[] = [];
  for (let k = k0; k <= k1; k++) {
    const p = planes(k);
    if (p.length !== width * height) throw new MedmaskError('USAGE', `fill: plane ${k} has ${p.length} values, expected ${width * height}`);
    data.push(p);
  }
  const label = data[seed.k - k0]![seed.x + width * seed.y]!;
  const plane = width * height;
  const seen = new Uint8Array(plane * depth);
  let spans = new Int32Array(1024);
  let count = 0;
  let pixels = 0;
  const stack: number[] = [seed.x, seed.y, seed.k - k0];
  while (stack.length) {
    const kk = stack.pop()!;
    const y = stack.pop()!;
    const x = stack.pop()!;
    const d = data[kk]!;
    const base = kk * plane + y * width;
    if (seen[base + x] || d[y * width + x] !== label) continue;
    let a = x;
    while (a > 0 && !seen[base + a - 1] && d[y * width + a - 1] === label) a--;
    let b = x;
    while (b < width - 1 && !seen[base + b + 1] && d[y * width + b + 1] === label) b++;
    seen.fill(1, base + a, base + b + 1);
    if (4 * (count + 1) > spans.length) {
      const n = new Int32Array(spans.length * 2);
      n.set(spans);
      spans = n;
    }
    spans.set([kk + k0, y, a, b], 4 * count++);
    pixels += b - a + 1;
    if (pixels > maxPixels) throw new MedmaskError('USAGE', `fill: the region exceeds ${maxPixels} pixels`, { hint: 'narrow the slice range' });
    // neighbours: rows y ± 1 in this plane, row y in planes k ± 1; push the start of each run
    const next: [number, number][] = [];
    if (y > 0) next.push([kk, y - 1]);
    if (y < height - 1) next.push([kk, y + 1]);
    if (kk > 0) next.push([kk - 1, y]);
    if (kk < depth - 1) next.push([kk + 1, y]);
    for (const [nk, ny] of next) {
      const nd = data[nk]!;
      const nb = nk * plane + ny * width;
      let inRun = false;
      for (let q = a; q <= b; q++) {
        const ok = !seen[nb + q] && nd[ny * width + q] === label;
        if (ok && !inRun) stack.push(q, ny, nk);
        inRun = ok;
      }
    }
  }
  return { spans: spans.subarray(0, 4 * count), count, pixels, label };
}

/**
 * Pixels of a plane that are holes in `label`'s region: not `label`, and cut off from the plane's
 * border by it (as `scipy.ndimage.binary_fill_holes`, through `masks/binary.ts`'s `fillHoles`).
 * @returns indices (row-major) of the hole pixels
 * @example
 * holesInPlane(ring, 16, 16, 1); // the pixels inside the ring
 */
export function holesInPlane(plane: Uint8Array, width: number, height: number, label: number): Int32Array {
  const mask = new Uint8Array(plane.length);
  for (let i = 0; i < plane.length; i++) mask[i] = plane[i] === label ? 1 : 0;
  const filled = fillHoles(mask, [width, height, 1]);
  let n = 0;
  for (let i = 0; i < plane.length; i++) if (filled[i] && !mask[i]) n++;
  const out = new Int32Array(n);
  n = 0;
  for (let i = 0; i < plane.length; i++) if (filled[i] && !mask[i]) out[n++] = i;
  return out;
}
