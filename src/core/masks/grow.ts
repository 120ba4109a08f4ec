/**
 * Growing a mask onto its lesions' bright flanks: the edges `refine` and the openings leave are
 * mostly a pixel inside the lesion (a round lesion's intensity falls towards its edge, and the
 * split sits above the lung's), so one dilation into pixels as bright as the mask's own typical
 * pixel puts the edge back where the lesion ends, without spreading into the darker lung.
 */
import { MedmaskError } from '../errors.js';
import { morph, percentile, type Shape3 } from './binary.js';

/** Options of {@link growBright}. */
export interface GrowBrightOptions {
  /** Dilations (default 1). */
  pixels?: number;
  /** A new pixel must be at least this percentile (0–100) of the mask's own intensities (default 50). */
  percentile?: number;
}

/**
 * Dilate the mask `pixels` times, each time adding only the neighbours (full square/cube element)
 * whose intensity is at least the given percentile of the intensities under the original mask
 * (and inside `roi` when given). An empty mask is returned unchanged.
 * @param mask - 0/1 mask on `grid`
 * @param image - intensities on `grid`
 * @param grid - the grid
 * @param roi - optional 0/1 region the mask may not leave
 * @param opts - dilations and percentile
 * @returns the grown mask (a new array)
 * @example
 * growBright(mask, image, [256, 256, 1], lungs, { pixels: 1, percentile: 50 });
 */
export function growBright(mask: ArrayLike<number>, image: ArrayLike<number>, grid: Shape3, roi: ArrayLike<number> | undefined, opts: GrowBrightOptions = {}): Uint8Array {
  const n = grid[0] * grid[1] * grid[2];
  for (const [name, a] of [['mask', mask], ['image', image]] as const) {
    if (a.length !== n) throw new MedmaskError('USAGE', `the ${name} has ${a.length} values, the grid ${grid.join('×')} needs ${n}`, { hint: 'resample it to the image grid first' });
  }
  let cur: Uint8Array = Uint8Array.from(mask, (v) => (v ? 1 : 0));
  const inside: number[] = [];
  for (let i = 0; i < cur.length; i++) if (cur[i]) inside.push(image[i]!);
  if (!inside.length) return cur;
  const level = percentile(inside, opts.percentile ?? 50);
  for (let k = 0; k < (opts.pixels ?? 1); k++) {
    const grown = morph(cur, grid, 'dilate', 1);
    for (let i = 0; i < cur.length; i++) if (grown[i] && !cur[i] && (image[i]! < level || (roi && !roi[i]))) grown[i] = 0;
    cur = grown;
  }
  return cur;
}
