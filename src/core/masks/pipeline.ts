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
  percentile,
  fillHoles,
  keepLargestComponents,
  openClose,
  removeSmallComponents,
  type Shape3,
  type ThresholdSpec,
} from './binary.js';
import { growBright, type GrowBrightOptions } from './grow.js';
import { pruneThin, type PruneThinOptions } from './prune.js';

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
  | { op: 'head-cut'; below: number }
  | ({ op: 'prune-thin'; withHeads?: boolean } & PruneThinOptions)
  | ({ op: 'grow-bright'; withHeads?: boolean } & GrowBrightOptions)
  | ({ op: 'refine' } & RefineOptions)
  | { op: 'max-area'; fraction: number }
  | { op: 'open'; iterations?: number; keepIfEmptied?: boolean }
  | { op: 'close'; iterations?: number };

/** Options of the `refine` constraint ({@link refineByIntensity}). */
export interface RefineOptions {
  /** Dilations of the coarse mask that make the search region (default 2). */
  dilate?: number;
  /** Keep components whose mean saliency is ≥ core × the best component's (default 0.7). */
  core?: number;
  /** Radius of a grey opening applied before the split (0: none), to flatten thin structures. */
  suppress?: number;
  /** Element of that opening: a square, or a vertical line (removes near-horizontal bands). */
  suppressShape?: 'square' | 'vertical';
  /** Which side of the split is the lesion: decided by saliency (`auto`, default), or fixed. */
  polarity?: 'auto' | 'bright' | 'dark';
  /**
   * The split must stand at least this many robust standard deviations (1.4826 × MAD) away from
   * the region's median (0, default: Otsu alone). Without it, a region that is nearly all
   * background is split inside its own texture.
   */
  minContrast?: number;
  /**
   * Radius of a closing of the picked components inside which pixels of the unsuppressed image on
   * the lesion's side of the split are restored (0, default: none) — the parts of ring walls and
   * lesion edges that `suppress` flattened.
   */
  bridge?: number;
}

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
 * The pipeline tuned for the chest phantoms at 256² (on a tuning set, seed 5555, that no test or
 * demo uses): the mean of the agreeing models' maps (the intersection is often empty when models
 * point at different lesions of one image), then `refine` to the lesions' own edges: opacities are
 * brighter than the lung (`polarity: bright`), at least 2 robust SDs above it, ribs (5–8 px thick
 * bands; lesions are ≥ 11 px across) flattened by a vertical opening and cavity walls restored by
 * the `bridge`; then fill the cavities' centres and open away thin leftovers (unless the opening
 * would empty the mask: a lone small nodule is kept). With mask heads, `head-cut` drops what the
 * heads call background and `prune-thin` opens each lesion with a radius scaled to its own depth (a
 * thinner structure joined to it goes), then `grow-bright` moves the edges one pixel out onto pixels
 * as bright as the mask's median (the lesions' flanks). Mean Dice 0.82 on the
 * tuning set, 0.81 on two held-out seeds (docs/annotate.md). The demo uses it.
 */
export const CHEST_PHANTOM_PIPELINE: MaskPipeline = {
  fusion: 'mean',
  threshold: { method: 'otsu' },
  constraints: [
    { op: 'restrict', to: 'roi' },
    { op: 'refine', dilate: 4, core: 0.6, suppress: 4, suppressShape: 'vertical', polarity: 'bright', minContrast: 2, bridge: 7 },
    { op: 'fill-holes' },
    { op: 'head-cut', below: 0.3 },
    { op: 'open', iterations: 3, keepIfEmptied: true },
    { op: 'prune-thin', fraction: 0.6, withHeads: true },
    { op: 'grow-bright', pixels: 1, percentile: 50, withHeads: true },
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
          'head-cut': op({ below: num(0, 1) }, ['below']),
          'prune-thin': op({ fraction: num(0, 1), minDepth: int(1), withHeads: { type: 'boolean' } }, ['fraction']),
          'grow-bright': op({ pixels: int(1), percentile: num(0, 100), withHeads: { type: 'boolean' } }),
          refine: op({
            dilate: int(0),
            core: num(0, 1),
            suppress: int(0),
            suppressShape: { type: 'string', enum: ['square', 'vertical'] },
            polarity: { type: 'string', enum: ['auto', 'bright', 'dark'] },
            minContrast: num(0),
            bridge: int(0),
          }),
          'max-area': op({ fraction: num(0, 1) }, ['fraction']),
          open: op({ iterations: int(1), keepIfEmptied: { type: 'boolean' } }),
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
 * (and the ROI), split the intensities (after the optional `suppress` opening) with Otsu — moved
 * to at least `minContrast` robust SDs from the region's median — and keep the lesion's side
 * (`polarity`; `auto`: the side whose mean saliency is higher). Then keep only its components
 * whose mean saliency is at least `core` × the best component's, so bright structures merely
 * passing through the region (ribs) are dropped, and with `bridge` restore what the opening
 * flattened next to them. CAMs are 8–32× coarser than the image; this recovers the lesion's own
 * edge — the role CRF refinement plays in weakly supervised segmentation. Hand-written: no
 * maintained JS library offers CRF or saliency-guided region refinement.
 */
export function refineByIntensity(mask: Uint8Array, fused: ArrayLike<number>, image: ArrayLike<number>, grid: Shape3, roi: ArrayLike<number> | undefined, opts: RefineOptions = {}): Uint8Array {
  if (!countOn(mask)) return mask;
  const dilate = opts.dilate ?? 2, core = opts.core ?? 0.7;
  const split = opts.suppress ? greyOpening(image, grid, opts.suppress, opts.suppressShape === 'vertical' ? 'y' : 'xy') : image;
  const region = dilate > 0 ? morph(mask, grid, 'dilate', dilate) : Uint8Array.from(mask);
  if (roi) for (let i = 0; i < region.length; i++) if (!roi[i]) region[i] = 0;
  const vals: number[] = [];
  for (let i = 0; i < region.length; i++) if (region[i]) vals.push(split[i]!);
  if (!vals.length) return mask;
  const otsu = otsuThreshold(vals);
  let hiMap = 0, hiN = 0, loMap = 0, loN = 0;
  for (let i = 0; i < region.length; i++) {
    if (!region[i]) continue;
    const m = fused[i]!;
    if (split[i]! > otsu) {
      hiMap += m;
      hiN++;
    } else {
      loMap += m;
      loN++;
    }
  }
  if (!hiN || !loN) return mask;
  const polarity = opts.polarity ?? 'auto';
  const bright = polarity === 'auto' ? hiMap / hiN >= loMap / loN : polarity === 'bright';
  let t = otsu;
  if (opts.minContrast) {
    const med = percentile(vals, 50);
    const sd = 1.4826 * percentile(vals.map((v) => Math.abs(v - med)), 50);
    t = bright ? Math.max(t, med + opts.minContrast * sd) : Math.min(t, med - opts.minContrast * sd);
  }
  const lesionSide = (v: number) => (bright ? v > t : v <= t);
  const picked = new Uint8Array(region.length);
  for (let i = 0; i < region.length; i++) if (region[i] && lesionSide(split[i]!)) picked[i] = 1;
  const comp = connectedComponents(picked, grid);
  const sum = new Float64Array(comp.count + 1);
  for (let i = 0; i < region.length; i++) if (comp.labels[i]) sum[comp.labels[i]!]! += fused[i]!;
  let best = 0;
  for (let l = 1; l <= comp.count; l++) best = Math.max(best, sum[l]! / comp.sizes[l]!);
  const keep = new Uint8Array(comp.count + 1);
  for (let l = 1; l <= comp.count; l++) keep[l] = sum[l]! / comp.sizes[l]! >= core * best ? 1 : 0;
  const out = new Uint8Array(region.length);
  for (let i = 0; i < out.length; i++) out[i] = keep[comp.labels[i]!]!;
  if (!countOn(out)) return mask;
  if (opts.bridge) {
    const near = openClose(out, grid, 'close', opts.bridge);
    for (let i = 0; i < out.length; i++) if (near[i] && (!roi || roi[i]) && lesionSide(image[i]!)) out[i] = 1;
  }
  return out;
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
  /**
   * Where the models point but the mask does not go: the fraction of the salient area (the mask
   * right after fusion and threshold, inside the ROI) farther than `reach` pixels from the final
   * mask (0 when nothing is salient). High values mean a lesion the constraints dropped.
   */
  outside: number;
}

/** Extra inputs of the constraints. */
export interface ConstraintContext {
  /** Region of interest (e.g. the lungs), 0/1. Without it "restrict to roi" is skipped and noted. */
  roi?: ArrayLike<number>;
  /** Body mask from intensity, 0/1. */
  body?: ArrayLike<number>;
  /** Image intensities (grey), for `refine`. */
  image?: ArrayLike<number>;
  /**
   * The mask heads' mean lesion probability per pixel (`annotate --mask-heads`), for `head-cut`.
   * Without it `head-cut` is skipped (the path without mask heads keeps its results).
   */
  head?: ArrayLike<number>;
  /** Distance (dilations) within which salient pixels count as explained by the mask (default 2.5 % of the image side). */
  reach?: number;
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
  const salient = Uint8Array.from(mask);
  if (ctx.roi) for (let i = 0; i < n; i++) if (!ctx.roi[i]) salient[i] = 0;
  const failures: string[] = [];
  const notes: string[] = [];
  for (const c of pipeline.constraints) {
    if (c.op === 'head-cut' && !ctx.head) {
      // no step in the trace: a run without mask heads gives exactly what it gave before head-cut existed
      notes.push('head-cut: skipped, no mask head given');
      continue;
    }
    if ((c.op === 'prune-thin' || c.op === 'grow-bright') && c.withHeads && !ctx.head) {
      // withHeads: the chest pipeline's path without mask heads keeps the results it had before these steps
      notes.push(`${c.op}: skipped, withHeads and no mask head given`);
      continue;
    }
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
        mask = refineByIntensity(mask, fused, ctx.image, grid, ctx.roi, c);
        break;
      }
      case 'fill-holes':
        mask = fillHoles(mask, grid);
        break;
      case 'head-cut': {
        const head = ctx.head!;
        if (head.length !== n) throw new MedmaskError('USAGE', `the mask heads' map has ${head.length} values, the image ${n}`, { hint: 'resample the head maps to the image grid first' });
        // the heads learned the lesions' extent from reviewed masks: bright structures that refine's
        // intensity split joined to a lesion (the heart's border, vessels) lie where they say background;
        // a cut that would empty the mask is not made (a lesion the heads miss is still the mask)
        const cut = Uint8Array.from(mask, (v, i) => (v && head[i]! >= c.below ? 1 : 0));
        if (countOn(cut)) mask = cut;
        break;
      }
      case 'grow-bright': {
        if (!ctx.image) {
          notes.push('grow-bright: skipped, no image intensities given');
          break;
        }
        mask = growBright(mask, ctx.image, grid, ctx.roi, c);
        break;
      }
      case 'prune-thin':
        mask = pruneThin(mask, grid, { fraction: c.fraction, ...(c.minDepth !== undefined ? { minDepth: c.minDepth } : {}) });
        break;
      case 'open': {
        // keepIfEmptied: a lone lesion smaller than the element (a small nodule) is the mask, not a leftover
        const opened = openClose(mask, grid, 'open', c.iterations ?? 1);
        if (!(c.keepIfEmptied && before > 0 && countOn(opened) === 0)) mask = opened;
        break;
      }
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
  return { mask, fused, thresholds, failures, notes, trace, outside: outsideFraction(salient, mask, grid, ctx.reach ?? defaultReach(grid)) };
}

/** 2.5 % of the larger in-plane side (6 pixels at 256²), at least 2. */
function defaultReach(grid: Shape3): number {
  return Math.max(2, Math.round(0.025 * Math.max(grid[0], grid[1])));
}

/**
 * Fraction of `salient` pixels farther than `reach` dilations from `mask` (0 when none is salient).
 * @example
 * outsideFraction(Uint8Array.of(1, 1, 0, 0, 1), Uint8Array.of(1, 0, 0, 0, 0), [5, 1, 1], 1); // 1/3
 */
export function outsideFraction(salient: Uint8Array, mask: Uint8Array, grid: Shape3, reach: number): number {
  const total = countOn(salient);
  if (!total) return 0;
  const near = countOn(mask) ? morph(mask, grid, 'dilate', reach) : mask;
  let out = 0;
  for (let i = 0; i < salient.length; i++) if (salient[i] && !near[i]) out++;
  return out / total;
}
