/**
 * Organ-level shape priors for attention: where an ensemble is **confidently wrong** (every model
 * misses a tumour inside the liver, or all paint the same stray blob on a metal streak), the
 * AbdomenAtlas attention — disagreement and uncertainty — stays silent. Organs have a known shape:
 * one solid piece, no cavity. Two priors flag what breaks that:
 *
 * - **holes**: background voxels (pseudo-label 0) enclosed by the organ in an axial slice (a 2D
 *   fill of each slice of the organ's mask, face connectivity for the background, as
 *   `scipy.ndimage.binary_fill_holes` per slice). A missed lesion inside an organ is such a hole.
 * - **stray pieces**: connected components (26-connectivity) of the organ's mask other than the
 *   largest one: an organ is one piece, so a second piece is either a false positive or a part of
 *   the organ cut off by a miss. (A kidney, liver or spleen in two pieces is very rare on real CT;
 *   the option can be switched off per organ.)
 *
 * Pure: typed arrays and a shape. Used by `atlasAttention({ shapePriors: true })`; the default
 * attention stays the AbdomenAtlas definition.
 * @module
 */
import { connectedComponents, fillHoles } from '../masks/binary.js';
import { checkShape, type Shape3 } from './morphology.js';

/** Which priors to apply. */
export interface ShapePriorOptions {
  /** Enclosed background in an axial slice (default true). */
  holes?: boolean;
  /** Components other than the largest (default true). */
  strays?: boolean;
}

/** What the priors flag for one organ. */
export interface ShapePriorFlags {
  holes: Uint8Array;
  strays: Uint8Array;
  /** holes ∨ strays. */
  mask: Uint8Array;
  voxels: number;
}

/**
 * Shape-prior flags of one organ in a pseudo-label map.
 * @param pseudo - the label map (0 background)
 * @param value - the organ's label value
 * @param shape - voxels along x, y, z
 * @param opts - which priors
 * @returns the flagged voxels
 * @throws MedmaskError USAGE for a map that does not fit the shape
 * @example
 * shapePriorFlags(pseudo, 5, [96, 96, 60]).voxels; // liver holes + stray liver pieces
 */
export function shapePriorFlags(pseudo: ArrayLike<number>, value: number, shape: Shape3, opts: ShapePriorOptions = {}): ShapePriorFlags {
  const n = checkShape(pseudo, shape, 'pseudo-label map');
  const [nx, ny, nz] = shape;
  const plane = nx * ny;
  const organ = new Uint8Array(n);
  let any = false;
  for (let v = 0; v < n; v++) if (pseudo[v] === value) {
    organ[v] = 1;
    any = true;
  }
  const holes = new Uint8Array(n), strays = new Uint8Array(n);
  if (any && opts.holes !== false) {
    for (let z = 0; z < nz; z++) {
      const slice = organ.subarray(z * plane, (z + 1) * plane);
      let on = false;
      for (let i = 0; i < plane; i++) if (slice[i]) { on = true; break; }
      if (!on) continue;
      const filled = fillHoles(slice, [nx, ny, 1]);
      for (let i = 0; i < plane; i++) if (filled[i] && !slice[i] && pseudo[z * plane + i] === 0) holes[z * plane + i] = 1;
    }
  }
  if (any && opts.strays !== false) {
    const c = connectedComponents(organ, shape);
    if (c.count > 1) {
      let big = 1;
      for (let k = 2; k <= c.count; k++) if (c.sizes[k]! > c.sizes[big]!) big = k;
      for (let v = 0; v < n; v++) if (c.labels[v] && c.labels[v] !== big) strays[v] = 1;
    }
  }
  const mask = new Uint8Array(n);
  let voxels = 0;
  for (let v = 0; v < n; v++) if (holes[v] || strays[v]) { mask[v] = 1; voxels++; }
  return { holes, strays, mask, voxels };
}
