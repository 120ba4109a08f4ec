/**
 * Orientation letters at the edges of a view (R/L, A/P, S/I), from the image's direction matrix
 * (LPS: +x is the patient's left, +y posterior, +z superior), as 3D Slicer and OHIF draw them.
 * @module
 */
import type { ViewAxis } from './slicing.js';

const LETTERS: [string, string][] = [['R', 'L'], ['A', 'P'], ['I', 'S']];

/** The letter of the world direction closest to a vector (its largest LPS component). */
function letterOf(v: readonly [number, number, number]): string {
  let c = 0;
  for (let t = 1; t < 3; t++) if (Math.abs(v[t]!) > Math.abs(v[c]!)) c = t;
  return LETTERS[c]![v[c]! >= 0 ? 1 : 0]!;
}

/**
 * The letters at the four edges of a view.
 * @param direction - row-major 3×3, columns are the voxel axes' LPS directions
 * @param axis - the view's normal: z axial (columns i, rows j), y coronal (i, k), x sagittal (j, k)
 * @param flipY - rows drawn bottom-up (see `flipRows`)
 * @example
 * orientationLabels([1,0,0, 0,1,0, 0,0,1], 'z', false); // { left: 'R', right: 'L', top: 'A', bottom: 'P' }
 */
export function orientationLabels(direction: readonly number[], axis: ViewAxis, flipY: boolean): { left: string; right: string; top: string; bottom: string } {
  const col = (c: number): [number, number, number] => [direction[c] ?? (c === 0 ? 1 : 0), direction[3 + c] ?? (c === 1 ? 1 : 0), direction[6 + c] ?? (c === 2 ? 1 : 0)];
  const [u, w] = axis === 'z' ? [0, 1] : axis === 'y' ? [0, 2] : [1, 2];
  const cu = col(u), cw = col(w);
  const neg = (v: [number, number, number]): [number, number, number] => [-v[0], -v[1], -v[2]];
  // rows run down the screen unless flipped
  const down = flipY ? neg(cw) : cw;
  return { left: letterOf(neg(cu)), right: letterOf(cu), top: letterOf(neg(down)), bottom: letterOf(down) };
}
