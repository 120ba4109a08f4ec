/**
 * From saliency maps to a candidate mask: fusion of the agreeing models' maps, a threshold, then
 * composable constraint functions, configured as plain JSON (or YAML parsed to the same object):
 *
 * ```json
 * { "fusion": "intersection", "threshold": { "method": "otsu" },
 *   "constraints": [ { "op": "restrict", "to": "roi" }, { "op": "remove-small", "minPixels": 20 },
 *                    { "op": "fill-holes" }, { "op": "keep-largest", "k": 3 }, { "op": "max-area", "fraction": 0.25 } ] }
 * ```
 * @module
 */
import { MedmaskError } from '../errors.js';
import { formatIssue, validateSchema, type ObjectSchema, type Schema } from '../schema.js';
import {
  binarize,
  connectedComponents,
  countOn,
  morph,
  otsuThreshold,
  fillHoles,
  keepLargestComponents,
  openClose,
  removeSmallComponents,
  type Shape3,
  type ThresholdSpec,
} from './binary.js';

/** How the maps of several models become one. */
export type FusionMethod = 'intersection' | 'mean' | 'confidence-weighted';
/** Fusion methods. */
export const FUSION_METHODS: readonly FusionMethod[] = ['intersection', 'mean', 'confidence-weighted'];

/** One constraint step. */
export type Constraint =
  | { op: 'restrict'; to: 'roi' | 'body' }
  | { op: 'remove-small'; minPixels: number }
  | { op: 'keep-largest'; k: number }
  | { op: 'fill-holes' }
  | { op: 'refine'; dilate?: number; core?: number; suppress?: number; suppressShape?: 'square' | 'vertical' }
  | { op: 'max-area'; fraction: number }
  | { op: 'open'; iterations?: number }
  | { op: 'close'; iterations?: number };

/** The mask pipeline configuration. */
export interface MaskPipeline {
  fusion: FusionMethod;
  threshold: ThresholdSpec;
  constraints: Constraint[];
}

/** The default: the paper's intersection, Otsu per map, then clean-up inside the ROI. */
export const DEFAULT_MASK_PIPELINE: MaskPipeline = {
  fusion: 'intersection',
  threshold: { method: 'otsu' },
  constraints: [{ op: 'restrict', to: 'roi' }, { op: 'open', iterations: 1 }, { op: 'remove-small', minPixels: 12 }, { op: 'fill-holes' }, { op: 'max-area', fraction: 0.3 }],
};

/**
 * The pipeline tuned for the chest phantoms at 256² (on a tuning set whose seed no test or demo
 * uses): the mean of the agreeing models' maps (the intersection is often empty when models point
 * at different lesions of one image), then `refine` to the lesions' own edges with rib
 * suppression (ribs are 5–8 px thick bands, lesions ≥ 11 px across). The demo uses it.
 */
export const CHEST_PHANTOM_PIPELINE: MaskPipeline = {
  fusion: 'mean',
  threshold: { method: 'otsu' },
  constraints: [
    { op: 'restrict', to: 'roi' },
    { op: 'refine', dilate: 2, core: 0.6, suppress: 4, suppressShape: 'vertical' },
    { op: 'close', iterations: 3 },
    { op: 'fill-holes' },
    { op: 'open', iterations: 1 },
    { op: 'restrict', to: 'roi' },
    { op: 'remove-small', minPixels: 12 },
    { op: 'max-area', fraction: 0.3 },
  ],
};

const num = (minimum = 0, maximum?: number): Schema => ({ type: 'number', minimum, ...(maximum !== undefined ? { maximum } : {}) });
const int = (minimum = 0): Schema => ({ type: 'integer', minimum });
const variant = (tag: string) => (properties: Record<string, Schema>, required: string[] = []): ObjectSchema => ({ type: 'object', properties: { [tag]: { type: 'string' }, ...properties }, required });
const op = variant('op');
const method = variant('method');

/** The schema of a mask pipeline file (JSON, or YAML parsed to the same object). */
export const MASK_PIPELINE_SCHEMA: ObjectSchema = {
  type: 'object',
  properties: {
    fusion: { type: 'string', enum: FUSION_METHODS, description: 'how the agreeing models\' maps become one' },
    threshold: {
      type: 'tagged',
      tag: 'method',
      variants: {
        fixed: method({ value: num(0, 1) }, ['value']),
        otsu: method({ bins: int(2) }),
        percentile: method({ p: num(0, 100) }, ['p']),
      },
    },
    constraints: {
      type: 'array',
      items: {
        type: 'tagged',
        tag: 'op',
        variants: {
          restrict: op({ to: { type: 'string', enum: ['roi', 'body'] } }, ['to']),
          'remove-small': op({ minPixels: int() }, ['minPixels']),
          'keep-largest': op({ k: int(1) }, ['k']),
          'fill-holes': op({}),
          refine: op({ dilate: int(0), core: num(0, 1), suppress: int(0), suppressShape: { type: 'string', enum: ['square', 'vertical'] } }),
          'max-area': op({ fraction: num(0, 1) }, ['fraction']),
          open: op({ iterations: int(1) }),
          close: op({ iterations: int(1) }),
        },
      },
    },
  },
};

/**
 * Validate a pipeline object (from JSON or YAML), filling defaults; every error names the field.
 * @param raw - the parsed file
 * @param source - file name for messages
 * @returns the pipeline
 * @throws MedmaskError USAGE listing every bad field with the bad value and a did-you-mean
 * @example
 * parseMaskPipeline({ fusion: 'mean', constraints: [{ op: 'fill-holes' }] });
 */
export function parseMaskPipeline(raw: unknown, source = 'pipeline'): MaskPipeline {
  const issues = validateSchema(MASK_PIPELINE_SCHEMA, raw);
  if (issues.length) {
    throw new MedmaskError('USAGE', `${source}: ${issues.map(formatIssue).join('; ')}`, { hint: 'see docs/annotate.md for the pipeline file format' });
  }
  const o = raw as Partial<MaskPipeline>;
  return {
    fusion: o.fusion ?? DEFAULT_MASK_PIPELINE.fusion,
    threshold: o.threshold ?? DEFAULT_MASK_PIPELINE.threshold,
    constraints: o.constraints ?? DEFAULT_MASK_PIPELINE.constraints,
  };
}

/**
 * Sharpen a coarse saliency mask with the image itself: inside the mask dilated `dilate` times
 * (and the ROI), split the intensities with Otsu, keep the side whose mean saliency is higher (the
 * lesion's polarity), then keep only its components whose mean saliency is at least `core` × the
 * best component's, so bright structures merely passing through the region (ribs) are dropped. CAMs are 8–32× coarser than the image; this recovers the lesion's own edge —
 * the role CRF refinement plays in weakly supervised segmentation.
 */
export function refineByIntensity(mask: Uint8Array, fused: ArrayLike<number>, image: ArrayLike<number>, grid: Shape3, roi: ArrayLike<number> | undefined, dilate: number, core: number): Uint8Array {
  if (!countOn(mask)) return mask;
  const region = dilate > 0 ? morph(mask, grid, 'dilate', dilate) : Uint8Array.from(mask);
  if (roi) for (let i = 0; i < region.length; i++) if (!roi[i]) region[i] = 0;
  const vals: number[] = [];
  for (let i = 0; i < region.length; i++) if (region[i]) vals.push(image[i]!);
  const t = otsuThreshold(vals);
  let hiMap = 0, hiN = 0, loMap = 0, loN = 0;
  for (let i = 0; i < region.length; i++) {
    if (!region[i]) continue;
    const m = fused[i]!;
    if (image[i]! > t) {
      hiMap += m;
      hiN++;
    } else {
      loMap += m;
      loN++;
    }
  }
  if (!hiN || !loN) return mask;
  const bright = hiMap / hiN >= loMap / loN;
  const picked = new Uint8Array(region.length);
  for (let i = 0; i < region.length; i++) if (region[i] && (image[i]! > t) === bright) picked[i] = 1;
  const comp = connectedComponents(picked, grid);
  const sum = new Float64Array(comp.count + 1);
  for (let i = 0; i < region.length; i++) if (comp.labels[i]) sum[comp.labels[i]!]! += fused[i]!;
  let best = 0;
  for (let l = 1; l <= comp.count; l++) best = Math.max(best, sum[l]! / comp.sizes[l]!);
  const keep = new Uint8Array(comp.count + 1);
  for (let l = 1; l <= comp.count; l++) keep[l] = sum[l]! / comp.sizes[l]! >= core * best ? 1 : 0;
  const out = new Uint8Array(region.length);
  for (let i = 0; i < out.length; i++) out[i] = keep[comp.labels[i]!]!;
  return countOn(out) ? out : mask;
}

/**
 * Grey-level opening with a (2r+1)² square, or with a vertical line of 2r+1 pixels (separable
 * running min, then max): bright structures thinner than the element (ribs crossing a lung — thin
 * across, long along; the vertical line removes near-horizontal bands while keeping the walls of
 * ring-shaped lesions) are flattened to their surroundings, wider ones (lesions) keep their level.
 * Used by `refine` with `suppress: r` and `suppressShape`.
 */
export function greyOpening(image: ArrayLike<number>, grid: Shape3, r: number, axes: 'xy' | 'y' = 'xy'): Float32Array {
  const [nx, ny] = grid;
  const planes = grid[2];
  const out = Float32Array.from(image as ArrayLike<number>);
  const tmp = new Float32Array(out.length);
  const pass = (src: Float32Array, dst: Float32Array, stride: number, len: number, lines: (f: (start: number) => void) => void, take: (a: number, b: number) => number) => {
    lines((start) => {
      for (let i = 0; i < len; i++) {
        let v = src[start + i * stride]!;
        const lo = Math.max(0, i - r), hi = Math.min(len - 1, i + r);
        for (let j = lo; j <= hi; j++) v = take(v, src[start + j * stride]!);
        dst[start + i * stride] = v;
      }
    });
  };
  const rows = (f: (s: number) => void) => { for (let z = 0; z < planes; z++) for (let y = 0; y < ny; y++) f(nx * (y + ny * z)); };
  const cols = (f: (s: number) => void) => { for (let z = 0; z < planes; z++) for (let x = 0; x < nx; x++) f(x + nx * ny * z); };
  if (axes === 'y') {
    pass(out, tmp, nx, ny, cols, Math.min);
    pass(tmp, out, nx, ny, cols, Math.max);
    return out;
  }
  pass(out, tmp, 1, nx, rows, Math.min);
  pass(tmp, out, nx, ny, cols, Math.min);
  pass(out, tmp, 1, nx, rows, Math.max);
  pass(tmp, out, nx, ny, cols, Math.max);
  return out;
}

/** One model's map for fusion. */
export interface FusionInput {
  /** Min-max normalised map in [0, 1] at image resolution. */
  map: ArrayLike<number>;
  /** The model's probability for the class (confidence-weighted fusion). */
  confidence: number;
}

/** Result of {@link buildMask}. */
export interface MaskResult {
  mask: Uint8Array;
  /** The fused map (mean or weighted mean; for intersection the mean, for display). */
  fused: Float32Array;
  /** Threshold(s) used: one per model for intersection, else one. */
  thresholds: number[];
  /** Constraint steps that changed nothing or emptied the mask, for the decision. */
  failures: string[];
  /** Steps skipped for lack of input (e.g. no ROI mask). */
  notes: string[];
  /** Foreground pixels after each step, for the report. */
  trace: { step: string; pixels: number }[];
}

/** Extra inputs of the constraints. */
export interface ConstraintContext {
  /** Region of interest (e.g. the lungs), 0/1. Without it "restrict to roi" is skipped and noted. */
  roi?: ArrayLike<number>;
  /** Body mask from intensity, 0/1. */
  body?: ArrayLike<number>;
  /** Image intensities (grey), for `refine`. */
  image?: ArrayLike<number>;
}

/**
 * Fuse maps, threshold and apply the constraints.
 * - `intersection` (the paper's): binarise each map with the threshold, keep pixels where all agree;
 * - `mean`: average the maps, then threshold;
 * - `confidence-weighted`: average weighted by each model's probability, then threshold.
 * @param inputs - one map per agreeing model (at least one)
 * @param grid - the image grid
 * @param pipeline - fusion, threshold, constraints
 * @param ctx - ROI and body masks
 * @returns the mask with its trace
 * @example
 * buildMask([{ map: camA, confidence: 0.9 }, { map: camB, confidence: 0.8 }], [256, 256, 1], DEFAULT_MASK_PIPELINE, { roi: lungs });
 */
export function buildMask(inputs: readonly FusionInput[], grid: Shape3, pipeline: MaskPipeline, ctx: ConstraintContext = {}): MaskResult {
  if (!inputs.length) throw new MedmaskError('USAGE', 'no maps to fuse', { hint: 'at least one model must agree with the label' });
  const n = grid[0] * grid[1] * grid[2];
  for (const [i, f] of inputs.entries()) if (f.map.length !== n) throw new MedmaskError('USAGE', `map ${i} has ${f.map.length} values, the image ${n}`, { hint: 'resample maps to the image grid first' });
  const fused = new Float32Array(n);
  const wsum = pipeline.fusion === 'confidence-weighted' ? inputs.reduce((s, f) => s + f.confidence, 0) || 1 : inputs.length;
  for (const f of inputs) {
    const w = pipeline.fusion === 'confidence-weighted' ? f.confidence : 1;
    for (let i = 0; i < n; i++) fused[i]! += (w * f.map[i]!) / wsum;
  }
  let mask: Uint8Array;
  const thresholds: number[] = [];
  if (pipeline.fusion === 'intersection') {
    mask = new Uint8Array(n).fill(1);
    for (const f of inputs) {
      const b = binarize(f.map, pipeline.threshold);
      thresholds.push(b.threshold);
      for (let i = 0; i < n; i++) mask[i]! &= b.mask[i]!;
    }
  } else {
    const b = binarize(fused, pipeline.threshold);
    thresholds.push(b.threshold);
    mask = b.mask;
  }
  const trace = [{ step: `fusion:${pipeline.fusion}`, pixels: countOn(mask) }];
  const failures: string[] = [];
  const notes: string[] = [];
  for (const c of pipeline.constraints) {
    const before = countOn(mask);
    switch (c.op) {
      case 'restrict': {
        const region = c.to === 'roi' ? ctx.roi : ctx.body;
        if (!region) {
          notes.push(`restrict to ${c.to}: skipped, no ${c.to} mask given`);
          break;
        }
        for (let i = 0; i < n; i++) if (!region[i]) mask[i] = 0;
        break;
      }
      case 'remove-small':
        mask = removeSmallComponents(mask, grid, c.minPixels);
        break;
      case 'keep-largest':
        mask = keepLargestComponents(mask, grid, c.k);
        break;
      case 'refine': {
        if (!ctx.image) {
          notes.push('refine: skipped, no image intensities given');
          break;
        }
        mask = refineByIntensity(mask, fused, c.suppress ? greyOpening(ctx.image, grid, c.suppress, c.suppressShape === 'vertical' ? 'y' : 'xy') : ctx.image, grid, ctx.roi, c.dilate ?? 2, c.core ?? 0.7);
        break;
      }
      case 'fill-holes':
        mask = fillHoles(mask, grid);
        break;
      case 'open':
      case 'close':
        mask = openClose(mask, grid, c.op, c.iterations ?? 1);
        break;
      case 'max-area': {
        const ref = ctx.roi ? countOn(ctx.roi) : n;
        if (before > c.fraction * ref) failures.push(`area ${(before / ref).toFixed(3)} of the ${ctx.roi ? 'ROI' : 'image'} exceeds ${c.fraction}`);
        break;
      }
    }
    const after = countOn(mask);
    trace.push({ step: c.op, pixels: after });
    if (before > 0 && after === 0) failures.push(`${c.op} removed the whole mask`);
  }
  if (countOn(mask) === 0 && !failures.some((f) => f.includes('whole mask'))) failures.push('empty mask');
  return { mask, fused, thresholds, failures, notes, trace };
}
