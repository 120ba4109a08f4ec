/**
 * The pure parts of sliding-window inference over a volume: the window grid, the Gaussian
 * importance map, cutting windows out of a volume, and a streaming blender that keeps only one
 * patch depth of slices in memory and hands finished slices on.
 *
 * - Window grid: along an axis of n voxels with patch p and overlap o, nnU-Net's rule (default):
 *   `k = ceil((n − p) / (p · (1 − o))) + 1` windows evenly spread, starts `round(i · (n − p) / (k − 1))`;
 *   or MONAI's `dense_patch_slices` (step `floor(p · (1 − o))`, the last window shifted back to end
 *   at n). When n < p one window, centred (it reads padding outside the volume).
 * - Importance map, as MONAI's `compute_importance_map(mode="gaussian", sigma_scale=0.125)`: the
 *   product over axes of `exp(−(i − (p − 1)/2)² / (2σ²))`, σ = p / 8; blended value =
 *   Σ w·y / Σ w over the windows covering a voxel.
 * @module
 */
import { MedmaskError } from '../errors.js';
import type { Vec3 } from '../volume.js';

/** Window grid rule. */
export type WindowGridRule = 'nnunet' | 'monai';

/**
 * Window starts along one axis.
 * @param n - voxels along the axis
 * @param p - patch size along the axis
 * @param overlap - fraction in [0, 1) (default 0.5)
 * @param rule - `nnunet` (default) or `monai`
 * @returns sorted starts (negative when n < p: the window is centred)
 * @throws MedmaskError USAGE for an overlap outside [0, 1) or sizes < 1
 * @example
 * windowStarts(100, 64, 0.5); // [0, 18, 36]
 */
export function windowStarts(n: number, p: number, overlap = 0.5, rule: WindowGridRule = 'nnunet'): number[] {
  if (!(overlap >= 0 && overlap < 1)) throw new MedmaskError('USAGE', `overlap ${overlap} must be in [0, 1)`, { hint: '0.5 is the usual choice (MONAI, nnU-Net)' });
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(p) || p < 1) throw new MedmaskError('USAGE', `axis of ${n} voxels with patch ${p}: both must be positive integers`);
  if (n <= p) return [n === p ? 0 : -Math.floor((p - n) / 2)];
  if (rule === 'monai') {
    const step = Math.max(1, Math.floor(p * (1 - overlap)));
    const out: number[] = [];
    for (let s = 0; ; s += step) {
      const start = Math.min(s, n - p);
      if (out[out.length - 1] !== start) out.push(start);
      if (s + p >= n) break;
    }
    return out;
  }
  if (rule !== 'nnunet') throw new MedmaskError('USAGE', `window grid "${String(rule)}" is unknown`, { hint: 'use nnunet or monai' });
  const k = Math.ceil((n - p) / (p * (1 - overlap))) + 1;
  const out = new Set<number>();
  for (let i = 0; i < k; i++) out.add(Math.round((i * (n - p)) / (k - 1)));
  return [...out].sort((a, b) => a - b);
}

/**
 * 1D Gaussian importance weights: `exp(−(i − (p − 1)/2)² / (2σ²))`, σ = p · sigmaScale.
 * @param p - patch size
 * @param sigmaScale - default 1/8
 * @returns p weights (max 1 when p is odd)
 */
export function gaussian1d(p: number, sigmaScale = 0.125): Float64Array {
  const sigma = p * sigmaScale;
  const c = (p - 1) / 2;
  const g = new Float64Array(p);
  for (let i = 0; i < p; i++) g[i] = Math.exp(-((i - c) ** 2) / (2 * sigma * sigma));
  return g;
}

/**
 * The Gaussian importance map of a patch (MONAI / nnU-Net blending), x fastest.
 * @param patch - [x, y, z] voxels
 * @param sigmaScale - σ as a fraction of the patch size (default 1/8)
 * @returns float32 weights, product of the three 1D Gaussians
 * @example
 * const w = gaussianImportance([64, 64, 32]);
 */
export function gaussianImportance(patch: Vec3, sigmaScale = 0.125): Float32Array {
  if (!(sigmaScale > 0)) throw new MedmaskError('USAGE', `sigma scale ${sigmaScale} must be > 0`, { hint: '0.125 (σ = patch / 8) as MONAI and nnU-Net' });
  const [gx, gy, gz] = patch.map((p) => gaussian1d(p, sigmaScale));
  const w = new Float32Array(patch[0] * patch[1] * patch[2]);
  for (let z = 0, v = 0; z < patch[2]; z++) for (let y = 0; y < patch[1]; y++) {
    const yz = gy![y]! * gz![z]!;
    for (let x = 0; x < patch[0]; x++, v++) w[v] = gx![x]! * yz;
  }
  return w;
}

/** An axis-aligned box of voxels, `lo` inclusive, `hi` exclusive. */
export interface Box {
  lo: Vec3;
  hi: Vec3;
}

/** Options of {@link planWindows}. */
export interface PlanOptions {
  /** Default 0.5. */
  overlap?: number;
  /** Default `nnunet`. */
  rule?: WindowGridRule;
  /** Only cover this box (e.g. the body's bounding box); default the whole volume. */
  region?: Box;
  /**
   * Tissue mask (x fastest, the volume's shape): windows holding no tissue voxel are skipped, and
   * voxels they alone cover get the blender's empty value.
   */
  tissue?: Uint8Array;
}

/** The windows to run. */
export interface WindowPlan {
  /** Window starts [x, y, z] in volume voxels, sorted by z, then y, then x. */
  windows: Vec3[];
  /** Windows of the full grid (before skipping). */
  total: number;
  /** Windows skipped for holding no tissue. */
  skipped: number;
  /** The region covered. */
  region: Box;
}

/**
 * Plan the windows of a sliding-window pass.
 * @param shape - volume voxels [x, y, z]
 * @param patch - model patch [x, y, z]
 * @param opts - overlap, grid rule, region, tissue mask
 * @returns windows sorted by z (the order the streaming blender needs)
 * @example
 * const plan = planWindows([90, 90, 50], [64, 64, 32], { tissue });
 */
export function planWindows(shape: Vec3, patch: Vec3, opts: PlanOptions = {}): WindowPlan {
  const region: Box = opts.region ?? { lo: [0, 0, 0], hi: [...shape] };
  for (let a = 0; a < 3; a++) {
    if (!(region.lo[a]! >= 0 && region.hi[a]! <= shape[a]! && region.lo[a]! < region.hi[a]!)) {
      throw new MedmaskError('USAGE', `region ${JSON.stringify(region)} does not lie inside the volume ${shape.join('×')}`, { hint: 'lo inclusive, hi exclusive, non-empty' });
    }
  }
  const starts = [0, 1, 2].map((a) => windowStarts(region.hi[a]! - region.lo[a]!, patch[a]!, opts.overlap ?? 0.5, opts.rule ?? 'nnunet').map((s) => s + region.lo[a]!));
  let sat: Uint32Array | undefined;
  if (opts.tissue) {
    if (opts.tissue.length !== shape[0] * shape[1] * shape[2]) throw new MedmaskError('USAGE', `tissue mask has ${opts.tissue.length} voxels, the volume ${shape.join('×')}`);
    sat = summedVolume(opts.tissue, shape);
  }
  const windows: Vec3[] = [];
  let total = 0;
  for (const z of starts[2]!) for (const y of starts[1]!) for (const x of starts[0]!) {
    total++;
    if (sat) {
      const lo: Vec3 = [Math.max(0, x), Math.max(0, y), Math.max(0, z)];
      const hi: Vec3 = [Math.min(shape[0], x + patch[0]), Math.min(shape[1], y + patch[1]), Math.min(shape[2], z + patch[2])];
      if (boxSum(sat, shape, lo, hi) === 0) continue;
    }
    windows.push([x, y, z]);
  }
  return { windows, total, skipped: total - windows.length, region };
}

/** Summed-volume table with a zero border: (nx+1)(ny+1)(nz+1) counts. */
function summedVolume(mask: Uint8Array, shape: Vec3): Uint32Array {
  const [nx, ny, nz] = shape;
  const X = nx + 1, Y = ny + 1;
  const s = new Uint32Array(X * Y * (nz + 1));
  for (let z = 1; z <= nz; z++) for (let y = 1; y <= ny; y++) {
    let row = 0;
    for (let x = 1; x <= nx; x++) {
      row += mask[(x - 1) + nx * ((y - 1) + ny * (z - 1))] ? 1 : 0;
      const i = x + X * (y + Y * z);
      s[i] = row + s[i - X]! + s[i - X * Y]! - s[i - X - X * Y]!;
    }
  }
  return s;
}

function boxSum(s: Uint32Array, shape: Vec3, lo: Vec3, hi: Vec3): number {
  const X = shape[0] + 1, Y = shape[1] + 1;
  const at = (x: number, y: number, z: number) => s[x + X * (y + Y * z)]!;
  return at(hi[0], hi[1], hi[2]) - at(lo[0], hi[1], hi[2]) - at(hi[0], lo[1], hi[2]) - at(hi[0], hi[1], lo[2])
    + at(lo[0], lo[1], hi[2]) + at(lo[0], hi[1], lo[2]) + at(hi[0], lo[1], lo[2]) - at(lo[0], lo[1], lo[2]);
}

/**
 * Bounding box of the nonzero voxels of a mask, or undefined when empty.
 * @example
 * const body = maskBox(ct.data.map((hu) => (hu > -500 ? 1 : 0)), ct.shape);
 */
export function maskBox(mask: ArrayLike<number>, shape: Vec3): Box | undefined {
  const [nx, ny] = shape;
  const lo: Vec3 = [Infinity, Infinity, Infinity];
  const hi: Vec3 = [-1, -1, -1];
  for (let v = 0; v < mask.length; v++) {
    if (!mask[v]) continue;
    const x = v % nx, y = Math.floor(v / nx) % ny, z = Math.floor(v / (nx * ny));
    if (x < lo[0]) lo[0] = x;
    if (y < lo[1]) lo[1] = y;
    if (z < lo[2]) lo[2] = z;
    if (x > hi[0]) hi[0] = x;
    if (y > hi[1]) hi[1] = y;
    if (z > hi[2]) hi[2] = z;
  }
  if (hi[0] < 0) return undefined;
  return { lo, hi: [hi[0] + 1, hi[1] + 1, hi[2] + 1] };
}

/**
 * Copy one window of a volume into a patch buffer (x fastest), with `pad` outside the volume.
 * @param src - volume, x fastest
 * @param shape - volume shape
 * @param start - window start (may be negative)
 * @param patch - patch size
 * @param out - destination, patch voxels
 * @param pad - value outside the volume (default 0)
 */
export function extractWindow(src: ArrayLike<number>, shape: Vec3, start: Vec3, patch: Vec3, out: Float32Array, pad = 0): void {
  const [nx, ny, nz] = shape;
  const [px, py, pz] = patch;
  const x0 = Math.max(0, -start[0]), x1 = Math.min(px, nx - start[0]);
  for (let z = 0, o = 0; z < pz; z++) {
    const Z = start[2] + z;
    for (let y = 0; y < py; y++, o += px) {
      const Y = start[1] + y;
      if (Z < 0 || Z >= nz || Y < 0 || Y >= ny || x1 <= x0) {
        out.fill(pad, o, o + px);
        continue;
      }
      if (x0 > 0) out.fill(pad, o, o + x0);
      const base = start[0] + nx * (Y + ny * Z);
      for (let x = x0; x < x1; x++) out[o + x] = src[base + x]!;
      if (x1 < px) out.fill(pad, o + Math.max(x0, x1), o + px);
    }
  }
}

/** Receives finished slices from {@link SlabBlender}. */
export type SliceSink = (z: number, slice: Float32Array) => void;

/**
 * Streaming Gaussian blending: accumulates Σ w·y and Σ w for C channels in a ring of `patch z`
 * slices, and, as windows move up in z, hands each finished slice (C planes of nx·ny blended
 * values, channel-major) to a sink. Memory: (C + 1) · nx · ny · pz float32, whatever the depth.
 * Windows must be added in non-decreasing z order ({@link planWindows} sorts them).
 * @example
 * const b = new SlabBlender(shape, patch, 10, gaussianImportance(patch), [1, 0, 0, …], (z, s) => …);
 * for (const w of plan.windows) b.add(w, probsOfWindow);
 * b.finish();
 */
export class SlabBlender {
  private readonly acc: Float32Array;
  private readonly wsum: Float32Array;
  private readonly plane: number;
  private readonly depth: number;
  /** Slices below this are finished and were handed on. */
  private done = 0;
  private readonly out: Float32Array;

  /**
   * @param shape - volume shape [x, y, z]
   * @param patch - patch [x, y, z]
   * @param channels - C
   * @param weights - importance map of the patch (x fastest)
   * @param empty - per channel value for voxels no window covered (e.g. background 1 for softmax)
   * @param sink - receives each finished slice
   */
  constructor(
    readonly shape: Vec3,
    readonly patch: Vec3,
    readonly channels: number,
    private readonly weights: Float32Array,
    private readonly empty: readonly number[],
    private readonly sink: SliceSink,
  ) {
    if (weights.length !== patch[0] * patch[1] * patch[2]) throw new MedmaskError('USAGE', `importance map has ${weights.length} weights for a ${patch.join('×')} patch`);
    if (empty.length !== channels) throw new MedmaskError('USAGE', `empty value has ${empty.length} channels, expected ${channels}`);
    this.plane = shape[0] * shape[1];
    this.depth = patch[2];
    this.acc = new Float32Array(channels * this.plane * this.depth);
    this.wsum = new Float32Array(this.plane * this.depth);
    this.out = new Float32Array(channels * this.plane);
  }

  /** Hand on every slice below z (they can receive no more windows). */
  flushBelow(z: number): void {
    const end = Math.min(z, this.shape[2]);
    const { plane, channels, acc, wsum, out, depth } = this;
    for (; this.done < end; this.done++) {
      const ring = this.done % depth;
      const wo = ring * plane;
      for (let p = 0; p < plane; p++) {
        const w = wsum[wo + p]!;
        for (let c = 0; c < channels; c++) {
          const ai = (c * depth + ring) * plane + p;
          out[c * plane + p] = w > 0 ? acc[ai]! / w : this.empty[c]!;
          acc[ai] = 0;
        }
        wsum[wo + p] = 0;
      }
      this.sink(this.done, out);
    }
  }

  /**
   * Blend one window's output.
   * @param start - window start [x, y, z]
   * @param y - C × patch values (channel-major, x fastest), e.g. one batch item of the model output
   * @param offset - where the window's values start in `y` (default 0)
   * @throws MedmaskError USAGE when windows come out of z order
   */
  add(start: Vec3, y: ArrayLike<number>, offset = 0): void {
    const zlo = Math.max(0, start[2]);
    if (zlo < this.done) throw new MedmaskError('INTERNAL', `window at z ${start[2]} arrived after slice ${this.done - 1} was finished`, { hint: 'add windows sorted by z' });
    this.flushBelow(zlo);
    const [nx, ny, nz] = this.shape;
    const [px, py, pz] = this.patch;
    const pv = px * py * pz;
    const { acc, wsum, plane, depth, weights, channels } = this;
    const x0 = Math.max(0, -start[0]), x1 = Math.min(px, nx - start[0]);
    for (let z = 0; z < pz; z++) {
      const Z = start[2] + z;
      if (Z < 0 || Z >= nz) continue;
      const ring = Z % depth;
      for (let yy = 0; yy < py; yy++) {
        const Y = start[1] + yy;
        if (Y < 0 || Y >= ny) continue;
        const wrow = px * (yy + py * z);
        const orow = ring * plane + nx * Y + start[0];
        for (let x = x0; x < x1; x++) wsum[orow + x] = wsum[orow + x]! + weights[wrow + x]!;
        for (let c = 0; c < channels; c++) {
          const arow = (c * depth) * plane + orow;
          const yrow = offset + c * pv + wrow;
          for (let x = x0; x < x1; x++) acc[arow + x] = acc[arow + x]! + weights[wrow + x]! * y[yrow + x]!;
        }
      }
    }
  }

  /** Hand on all remaining slices. */
  finish(): void {
    this.flushBelow(this.shape[2]);
  }
}
