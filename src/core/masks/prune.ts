/**
 * Pruning of thin attachments: each component of a mask is opened with an element scaled to its own
 * thickness, so a compact lesion keeps its body while a thinner structure joined to it (a rib, a
 * vessel, the heart's border that an intensity split merged with the lesion) is cut away. A fixed
 * opening cannot do this: an element wide enough for a rib erases a small nodule.
 */
import { connectedComponents, countOn, morph, type Shape3 } from './binary.js';

/** Options of {@link pruneThin}. */
export interface PruneThinOptions {
  /** Opening radius as a fraction of the component's depth (its largest inscribed square's half side), in (0, 1]. */
  fraction: number;
  /** Components shallower than this many erosions are left alone (default 3). */
  minDepth?: number;
}

/**
 * Erosion depth of every pixel: how many erosions with the full square/cube element it survives,
 * plus one (0 off the mask). The chessboard distance to the background, border counting as background.
 * @example
 * erosionDepth(new Uint8Array(25).fill(1), [5, 5, 1]); // 1 on the border ring, 2 inside it, 3 at the centre
 */
export function erosionDepth(mask: ArrayLike<number>, grid: Shape3): Uint8Array {
  const depth = new Uint8Array(mask.length);
  let cur: Uint8Array = Uint8Array.from(mask, (v) => (v ? 1 : 0));
  for (let d = 1; d < 255 && countOn(cur); d++) {
    for (let i = 0; i < cur.length; i++) if (cur[i]) depth[i] = d;
    cur = morph(cur, grid, 'erode', 1);
  }
  return depth;
}

/**
 * Open each connected component with radius ⌊fraction × its depth⌋ (erode that many times, dilate
 * back, within the component). A component shallower than `minDepth` is kept whole, and so is a
 * component the opening would empty (it cannot: its deepest pixel survives every radius below its depth).
 * @param mask - 0/1 mask on `grid`
 * @param grid - the grid
 * @param opts - fraction of the depth and the smallest depth pruned
 * @returns the pruned mask (a new array)
 * @example
 * // a 9×9 square with a 2-px-wide, 8-px-long tail: the tail goes, the square stays
 * pruneThin(mask, [20, 20, 1], { fraction: 0.6 });
 */
export function pruneThin(mask: ArrayLike<number>, grid: Shape3, opts: PruneThinOptions): Uint8Array {
  const minDepth = opts.minDepth ?? 3;
  const out = Uint8Array.from(mask, (v) => (v ? 1 : 0));
  const depth = erosionDepth(out, grid);
  const comp = connectedComponents(out, grid);
  const deepest = new Uint8Array(comp.count + 1);
  for (let i = 0; i < out.length; i++) {
    const l = comp.labels[i]!;
    if (l && depth[i]! > deepest[l]!) deepest[l] = depth[i]!;
  }
  const [nx, ny] = grid;
  // each component is opened on its own bounding box (its radius is its own; boxes keep the dilations small)
  const lo = new Int32Array(3 * (comp.count + 1)).fill(2 ** 30), hi = new Int32Array(3 * (comp.count + 1)).fill(-1);
  for (let i = 0; i < out.length; i++) {
    const l = comp.labels[i]!;
    if (!l) continue;
    const c = [i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))];
    for (let a = 0; a < 3; a++) {
      lo[3 * l + a] = Math.min(lo[3 * l + a]!, c[a]!);
      hi[3 * l + a] = Math.max(hi[3 * l + a]!, c[a]!);
    }
  }
  for (let l = 1; l <= comp.count; l++) {
    if (deepest[l]! < minDepth) continue;
    const r = Math.floor(opts.fraction * deepest[l]!);
    if (!r) continue;
    const [x0, y0, z0] = [lo[3 * l]!, lo[3 * l + 1]!, lo[3 * l + 2]!];
    const box: Shape3 = [hi[3 * l]! - x0 + 1, hi[3 * l + 1]! - y0 + 1, hi[3 * l + 2]! - z0 + 1];
    const at = (x: number, y: number, z: number) => x0 + x + nx * (y0 + y + ny * (z0 + z));
    const core = new Uint8Array(box[0] * box[1] * box[2]);
    for (let z = 0, j = 0; z < box[2]; z++) for (let y = 0; y < box[1]; y++) for (let x = 0; x < box[0]; x++, j++) {
      const i = at(x, y, z);
      if (comp.labels[i] === l && depth[i]! > r) core[j] = 1;
    }
    const opened = morph(core, box, 'dilate', r);
    for (let z = 0, j = 0; z < box[2]; z++) for (let y = 0; y < box[1]; y++) for (let x = 0; x < box[0]; x++, j++) {
      const i = at(x, y, z);
      if (comp.labels[i] === l && !opened[j]) out[i] = 0;
    }
  }
  return out;
}
