/**
 * Attention maps of AbdomenAtlas-8K (Qu et al., *AbdomenAtlas-8K: Annotating 8,000 CT Volumes for
 * Multi-Organ Segmentation in Three Weeks*, NeurIPS 2023), per organ, as their public code
 * computes them (`create_attention.py`, `std_post_process`, `entropy_post_process`):
 *
 * - **inconsistency**: voxel-wise standard deviation (population, ddof 0, as `np.std`) of the
 *   models' probabilities, kept where `> 0.1`;
 * - **uncertainty**: entropy `−p ln p` (`torch.special.entr`) of each model's probability, averaged
 *   over the models, kept where `> 0.05`;
 * - each of the two masks cleaned by a binary opening with the 3×3×3 cube: 2 erosions then 2
 *   dilations (`border_value = 0`); the std and entropy values are zeroed outside their cleaned
 *   masks;
 * - **overlap**: voxels this organ's pseudo-label mask shares with another organ's (computed by
 *   {@link overlapMasks}; the public code uses each organ's binary average segmentation);
 * - **binary attention** = inconsistency ∨ uncertainty ∨ overlap;
 * - **heat map** = (std + entropy + overlap) / max over the volume (0 everywhere when the max is 0,
 *   where NumPy would give NaN).
 *
 * With one model the standard deviation is 0, so inconsistency is empty, as in the public code.
 *
 * Memory: probabilities are read from one typed array per model for the organ at hand (float32,
 * or uint8 read as value/255, the way AbdomenAtlas stores soft predictions); statistics are
 * computed voxel by voxel in double precision and kept as float32, masks as uint8. Call it one
 * organ at a time.
 * @module
 */
import { MedmaskError } from '../errors.js';
import { binaryOpening, checkShape, type Connectivity, type Shape3 } from './morphology.js';
import { dropSmallAttention, dropUnlikelyAttention, expectedErrorMap, type Spacing3 } from './attention-refine.js';

/**
 * Per-voxel probabilities of one organ from one model: float32 in [0, 1], or uint8 read as
 * value / 255 (as AbdomenAtlas's `soft_pred` files).
 */
export type ProbabilityArray = Float32Array | Uint8Array;

/** Thresholds and cleaning of {@link organAttention}; defaults are AbdomenAtlas's. */
export interface AttentionOptions {
  /** Inconsistency is kept where std > this (default 0.1). */
  stdThreshold?: number;
  /** Uncertainty is kept where the mean entropy −p ln p > this (default 0.05). */
  entropyThreshold?: number;
  /** Erosions of the opening (default 2). */
  erosions?: number;
  /** Dilations of the opening (default 2). */
  dilations?: number;
  /** Structuring element of the opening (default 3: the 3×3×3 cube). */
  connectivity?: Connectivity;
}

/** Attention of one organ. */
export interface OrganAttention {
  /** Cleaned inconsistency mask (std > threshold, opened), 0/1. */
  inconsistency: Uint8Array;
  /** Cleaned uncertainty mask (mean entropy > threshold, opened), 0/1. */
  uncertainty: Uint8Array;
  /** Overlap with other organs, 0/1 (all zero when none was given). */
  overlap: Uint8Array;
  /** inconsistency ∨ uncertainty ∨ overlap, 0/1. */
  binary: Uint8Array;
  /** (std · inconsistency + entropy · uncertainty + overlap) / max, in [0, 1]. */
  heat: Float32Array;
  /** Voxels set in `binary`. */
  voxels: number;
  /** Sum of `heat`. */
  heatSum: number;
  /** Maximum of std + entropy + overlap before normalisation (0 when nothing was flagged). */
  heatMax: number;
}

/**
 * Optional refinements after the opening (not in the paper; off unless given): drop attention
 * components smaller than `minComponentMm3`, or expecting less wrong volume than
 * `minExpectedErrorMm3` (core/atlas/attention-refine.ts).
 */
export interface AttentionRefinement {
  /** Voxel size in mm (x, y, z). */
  spacing: Spacing3;
  /** Smallest component of inconsistency ∨ uncertainty kept, in mm³ (0 or absent: keep all). */
  minComponentMm3?: number;
  /**
   * Smallest expected wrong volume of a component kept, in mm³: the sum of `min(p̄, 1 − p̄)` over
   * its voxels times the voxel volume (attention-refine.ts `dropUnlikelyAttention`; 0 or absent:
   * keep all).
   */
  minExpectedErrorMm3?: number;
}

/** The thresholds AbdomenAtlas's public code uses. */
export const ATLAS_ATTENTION_DEFAULTS: Required<AttentionOptions> = {
  stdThreshold: 0.1,
  entropyThreshold: 0.05,
  erosions: 2,
  dilations: 2,
  connectivity: 3,
};

/** Entropy term `−p ln p` (0 at p = 0), as `torch.special.entr` / `scipy.special.entr`. */
export function entr(p: number): number {
  return p > 0 ? -p * Math.log(p) + 0 : 0; // + 0 turns −0 (at p = 1) into 0
}

function checkThreshold(v: number, name: string): void {
  if (!Number.isFinite(v) || v < 0) throw new MedmaskError('USAGE', `${name} ${v} must be a finite number ≥ 0`, { hint: `AbdomenAtlas uses ${name === 'stdThreshold' ? 0.1 : 0.05}` });
}

/** Resolve options with defaults, checking them. */
export function attentionOptions(opts: AttentionOptions = {}): Required<AttentionOptions> {
  const o = { ...ATLAS_ATTENTION_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as Required<AttentionOptions>;
  checkThreshold(o.stdThreshold, 'stdThreshold');
  checkThreshold(o.entropyThreshold, 'entropyThreshold');
  return o;
}

/** Reads probability arrays of either type as numbers in [0, 1]. */
function reader(a: ProbabilityArray): (i: number) => number {
  return a instanceof Uint8Array ? (i) => a[i]! / 255 : (i) => a[i]!;
}

/**
 * Voxel-wise statistics of one organ over the models: population std (two-pass, as `np.std`) and
 * mean entropy `−p ln p`.
 * @param probs - one array per model, same length
 * @param n - voxels
 * @returns std and mean entropy as float32
 * @throws MedmaskError USAGE without models or with arrays of different lengths
 * @example
 * const { std, entropy } = ensembleStatistics([pA, pB, pC], pA.length);
 */
export function ensembleStatistics(probs: readonly ProbabilityArray[], n: number): { std: Float32Array; entropy: Float32Array } {
  const m = probs.length;
  if (m < 1) throw new MedmaskError('USAGE', 'no model predictions were given for this organ', { hint: 'pass one probability array per model' });
  probs.forEach((p, i) => {
    if (p.length !== n) throw new MedmaskError('USAGE', `model ${i}'s probabilities have ${p.length} voxels, expected ${n}`, { hint: 'every model must predict on the same grid' });
  });
  const get = probs.map(reader);
  const std = new Float32Array(n);
  const entropy = new Float32Array(n);
  const vals = new Float64Array(m);
  for (let v = 0; v < n; v++) {
    let sum = 0;
    let ent = 0;
    for (let k = 0; k < m; k++) {
      const p = get[k]!(v);
      vals[k] = p;
      sum += p;
      ent += entr(p);
    }
    const mean = sum / m;
    let ss = 0;
    for (let k = 0; k < m; k++) {
      const d = vals[k]! - mean;
      ss += d * d;
    }
    std[v] = Math.sqrt(ss / m);
    entropy[v] = ent / m;
  }
  return { std, entropy };
}

/** A box of voxels, lo inclusive, hi exclusive. */
interface Box3 {
  lo: [number, number, number];
  hi: [number, number, number];
}

const boxShape = (b: Box3): Shape3 => [b.hi[0] - b.lo[0], b.hi[1] - b.lo[1], b.hi[2] - b.lo[2]];

function cropBox(src: Uint8Array, shape: Shape3, b: Box3): Uint8Array {
  const [bx, by, bz] = boxShape(b);
  const out = new Uint8Array(bx * by * bz);
  for (let z = 0, o = 0; z < bz; z++) for (let y = 0; y < by; y++, o += bx) {
    const s = b.lo[0] + shape[0] * (b.lo[1] + y + shape[1] * (b.lo[2] + z));
    out.set(src.subarray(s, s + bx), o);
  }
  return out;
}

function pasteBox(crop: Uint8Array, dst: Uint8Array, shape: Shape3, b: Box3): void {
  const [bx, by, bz] = boxShape(b);
  for (let z = 0, o = 0; z < bz; z++) for (let y = 0; y < by; y++, o += bx) {
    dst.set(crop.subarray(o, o + bx), b.lo[0] + shape[0] * (b.lo[1] + y + shape[1] * (b.lo[2] + z)));
  }
}

/**
 * The attention of one organ from several models' probabilities (AbdomenAtlas-8K, Qu et al. 2023).
 * Thresholds compare the double-precision statistics, so results match a NumPy float64 reference
 * voxel for voxel.
 * @param probs - one probability array per model for this organ (x fastest)
 * @param shape - voxels along x, y, z
 * @param overlap - this organ's overlap mask from {@link overlapMasks}, or null for none
 * @param opts - thresholds and opening (defaults: 0.1, 0.05, 2 erosions, 2 dilations, 3×3×3)
 * @param refine - optional component filters in mm³ after the opening (absent: the paper's attention)
 * @returns masks, heat map and counts
 * @throws MedmaskError USAGE for arrays that do not fit the shape or bad thresholds
 * @example
 * const a = organAttention([unet.liver, segresnet.liver, resunet.liver], [96, 96, 60], overlaps[4]);
 * a.voxels; // flagged voxels
 */
export function organAttention(probs: readonly ProbabilityArray[], shape: Shape3, overlap: Uint8Array | null, opts: AttentionOptions = {}, refine?: AttentionRefinement): OrganAttention {
  const o = attentionOptions(opts);
  const n = checkShape(probs[0] ?? { length: -1 }, shape, 'probability map');
  if (overlap) checkShape(overlap, shape, 'overlap mask');
  const m = probs.length;
  probs.forEach((p, i) => {
    if (p.length !== n) throw new MedmaskError('USAGE', `model ${i}'s probabilities have ${p.length} voxels, expected ${n}`, { hint: 'every model must predict on the same grid' });
  });
  // Heat starts as the std, masks as raw thresholds; values kept in float32 but thresholds are
  // compared in double precision.
  const heat = new Float32Array(n);
  const entropy = new Float32Array(n);
  const inconsistency = new Uint8Array(n);
  const uncertainty = new Uint8Array(n);
  const vals = new Float64Array(m);
  const allBytes = probs.every((p) => p instanceof Uint8Array);
  // uint8 inputs: probabilities and entropy terms from 256-entry tables (no log per voxel).
  const P = new Float64Array(256), E = new Float64Array(256);
  for (let u = 0; u < 256; u++) {
    P[u] = u / 255;
    E[u] = entr(u / 255);
  }
  const get = probs.map(reader);
  const [nx, ny, nz] = shape;
  // Bounding box of the voxels any model gives a probability > 0: outside it std and entropy are 0.
  let x0 = nx, y0 = ny, z0 = nz, x1 = -1, y1 = -1, z1 = -1;
  for (let z = 0, v = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++, v++) {
    let sum = 0;
    let ent = 0;
    let any = false;
    if (allBytes) {
      for (let k = 0; k < m; k++) {
        const u = (probs[k] as Uint8Array)[v]!;
        if (u) any = true;
        vals[k] = P[u]!;
        sum += P[u]!;
        ent += E[u]!;
      }
    } else {
      for (let k = 0; k < m; k++) {
        const p = get[k]!(v);
        if (p) any = true;
        vals[k] = p;
        sum += p;
        ent += entr(p);
      }
    }
    // All models say 0: std 0, entropy 0, nothing to store (arrays start at 0).
    if (!any) continue;
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
    if (z < z0) z0 = z;
    if (z > z1) z1 = z;
    const mean = sum / m;
    let ss = 0;
    for (let k = 0; k < m; k++) {
      const d = vals[k]! - mean;
      ss += d * d;
    }
    const s = Math.sqrt(ss / m);
    const e = ent / m;
    heat[v] = s;
    entropy[v] = e;
    inconsistency[v] = s > o.stdThreshold ? 1 : 0;
    uncertainty[v] = e > o.entropyThreshold ? 1 : 0;
  }
  const open = { erosions: o.erosions, dilations: o.dilations, connectivity: o.connectivity };
  if (x1 >= 0) {
    // Open inside the box grown by the dilations (the masks are 0 outside the box, so erosion
    // there is the same as on the whole grid, and dilation cannot reach farther).
    const g = o.dilations;
    const box: Box3 = { lo: [Math.max(0, x0 - g), Math.max(0, y0 - g), Math.max(0, z0 - g)], hi: [Math.min(nx, x1 + g + 1), Math.min(ny, y1 + g + 1), Math.min(nz, z1 + g + 1)] };
    for (const mask of [inconsistency, uncertainty]) {
      const crop = cropBox(mask, shape, box);
      binaryOpening(crop, boxShape(box), { ...open, out: crop });
      pasteBox(crop, mask, shape, box);
    }
    if (refine?.minComponentMm3) dropSmallAttention({ inconsistency, uncertainty }, shape, refine.spacing, refine.minComponentMm3);
    if (refine?.minExpectedErrorMm3) dropUnlikelyAttention({ inconsistency, uncertainty }, shape, refine.spacing, expectedErrorMap(probs, n), refine.minExpectedErrorMm3);
  }
  const ov = overlap ? Uint8Array.from(overlap, (x) => (x ? 1 : 0)) : new Uint8Array(n);
  const binary = new Uint8Array(n);
  let voxels = 0;
  let max = 0;
  for (let v = 0; v < n; v++) {
    const b = inconsistency[v]! | uncertainty[v]! | ov[v]!;
    binary[v] = b;
    voxels += b;
    // Sum in double precision from the float32 values, as NumPy adds float arrays.
    const h = (inconsistency[v] ? heat[v]! : 0) + (uncertainty[v] ? entropy[v]! : 0) + ov[v]!;
    heat[v] = h;
    if (h > max) max = h;
  }
  let heatSum = 0;
  if (max > 0) {
    for (let v = 0; v < n; v++) {
      const h = heat[v]! / max;
      heat[v] = h;
      heatSum += heat[v]!;
    }
  }
  return { inconsistency, uncertainty, overlap: ov, binary, heat, voxels, heatSum, heatMax: max };
}

/**
 * Overlap masks: for each organ, the voxels its mask shares with at least one other organ's mask
 * (AbdomenAtlas: `average/segmentations/<organ>` summed with each surrounding organ's, `> 1`).
 * Masks come from thresholding each organ's mean probability on its own (sigmoid models), so
 * organs can claim the same voxel; label maps cannot overlap.
 * @param masks - one 0/1 mask per organ, same length
 * @param partners - which organs count as "another organ" (default all). The public code leaves
 *   vessels (aorta, postcava, portal vein, hepatic vessel) out of its partner list
 *   `ORGAN_NAME_OVERLAP`; pass false for them to do the same.
 * @returns one 0/1 overlap mask per organ
 * @throws MedmaskError USAGE for masks of different lengths
 * @example
 * const ov = overlapMasks(thresholdMasks(meanProbs), ORGANS.map((o) => o !== 'aorta' && o !== 'postcava'));
 */
export function overlapMasks(masks: readonly Uint8Array[], partners?: readonly boolean[]): Uint8Array[] {
  const n = masks[0]?.length ?? 0;
  masks.forEach((m, i) => {
    if (m.length !== n) throw new MedmaskError('USAGE', `organ mask ${i} has ${m.length} voxels, expected ${n}`, { hint: 'all organ masks must share one grid' });
  });
  if (partners && partners.length !== masks.length) {
    throw new MedmaskError('USAGE', `partners has ${partners.length} entries for ${masks.length} organs`, { hint: 'give one true/false per organ' });
  }
  const isPartner = masks.map((_, i) => partners?.[i] ?? true);
  const out = masks.map(() => new Uint8Array(n));
  // Count partner organs per voxel once; organ o overlaps where another partner is there too.
  const count = new Uint8Array(n);
  masks.forEach((m, i) => {
    if (!isPartner[i]) return;
    for (let v = 0; v < n; v++) if (m[v]) count[v] = Math.min(255, count[v]! + 1);
  });
  masks.forEach((m, i) => {
    const self = isPartner[i] ? 1 : 0;
    const o = out[i]!;
    for (let v = 0; v < n; v++) if (m[v] && count[v]! - self > 0) o[v] = 1;
  });
  return out;
}
