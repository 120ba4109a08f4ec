/**
 * The mask head: a per-pixel lesion classifier on a classifier's frozen CAM target activation,
 * trained from masks experts accepted or corrected (issue 16, "learn from reviewed masks").
 *
 * Architecture: standardise each channel of the activation A (C × h × w) with the training
 * pixels' mean / std → Dropout → 1×1 convolution to one logit per cell → upsample the logit map
 * to the image exactly as the CAMs are (`mapToImage`: bilinear to the model input, crop, resize to
 * the image) → sigmoid. Because upsampling is linear with weights summing to 1, the upsampled
 * logit at pixel p equals the 1×1 convolution applied to the upsampled activation at p. So the
 * head trains as train-head's linear classifier ({@link fitHeadSteps}, two classes, softmax
 * cross-entropy = logistic loss on the logit difference) on rows = sampled image pixels, features
 * = the activation interpolated at those pixels; {@link pixelInterpolation} gives the
 * interpolation weights by pushing one-hot cell maps through `mapToImage`, so training and
 * inference upsample identically.
 *
 * Monte Carlo Dropout: dropout on the standardised activation (one keep flag per channel and
 * cell), T samples, per-pixel mean and standard deviation of the probability.
 * Pure functions, no Node APIs.
 * @module
 */
import { MedmaskError } from '../errors.js';
import { mapToImage, resizeBilinear, type InputGeometry } from '../preprocess.js';
import { mulberry32 } from '../random.js';
import type { FitHeadResult } from './fit.js';
import type { Split } from './split.js';

/** Format tag of a serialised mask head. */
export const MASK_HEAD_FORMAT = 'medmask-mask-head/1';

/** A trained mask head (standardised space: logit = Σ_k weight_k (a_k − mean_k) / std_k + bias). */
export interface MaskHead {
  format: typeof MASK_HEAD_FORMAT;
  /** Channels C of the target activation. */
  channels: number;
  /** Per-channel mean of the training pixels' activations. */
  mean: number[];
  /** Per-channel standard deviation (> 0). */
  std: number[];
  /** 1×1 convolution weights on the standardised channels (float32-exact values). */
  weight: number[];
  /** Logit bias (float32-exact). */
  bias: number;
  /** Dropout rate on the standardised activation (MC Dropout at inference). */
  dropout: number;
  /**
   * Hypercolumn: earlier, finer layers read beside the CAM target (absent = the target alone).
   * The head's input is then {@link hypercolumn} of [target, ...layers]: each map resized
   * bilinearly to the finest one's size, channels concatenated in that order (`channels` counts
   * them all), so the head predicts at the finer layer's resolution.
   */
  layers?: { tensor: string; channels: number }[];
}

/** A C × h × w feature map (channel planes, x fastest). */
export interface FeatureMap {
  data: ArrayLike<number>;
  channels: number;
  width: number;
  height: number;
}

/**
 * The hypercolumn of several feature maps of one image: every map resized to the largest width
 * and height with `resizeBilinear` (half-pixel centres, edges clamped — ONNX `Resize` linear
 * `half_pixel`, which the exported head uses), channels concatenated in the given order.
 * @param maps - the CAM target first, then earlier layers
 * @returns the concatenated map
 * @throws MedmaskError USAGE for an empty list or a map whose data does not fit its size
 * @example
 * const x = hypercolumn([{ data: act16, channels: 128, width: 16, height: 16 }, { data: act32, channels: 32, width: 32, height: 32 }]);
 */
export function hypercolumn(maps: readonly FeatureMap[]): FeatureMap & { data: Float32Array } {
  if (!maps.length) throw new MedmaskError('USAGE', 'a hypercolumn needs at least one feature map');
  const W = Math.max(...maps.map((m) => m.width));
  const H = Math.max(...maps.map((m) => m.height));
  const C = maps.reduce((a, m) => a + m.channels, 0);
  const data = new Float32Array(C * W * H);
  let o = 0;
  for (const m of maps) {
    if (m.data.length !== m.channels * m.width * m.height) throw new MedmaskError('USAGE', `a feature map holds ${m.data.length} values, not ${m.channels} × ${m.height} × ${m.width}`);
    data.set(m.width === W && m.height === H ? m.data : resizeBilinear(m.data, m.width, m.height, W, H, { channels: m.channels }), o);
    o += m.channels * W * H;
  }
  return { data, channels: C, width: W, height: H };
}

/**
 * Interpolation of activation cells onto image pixels, in compressed rows: pixel p reads cells
 * `cells[rowStart[p] … rowStart[p+1])` with `weights` of the same range.
 */
export interface PixelInterpolation {
  /** Image pixels (imageWidth × imageHeight). */
  pixels: number;
  /** Activation cells (w × h). */
  cells: number;
  rowStart: Int32Array;
  cellIndex: Int32Array;
  weights: Float32Array;
}

/**
 * The weights with which `mapToImage` spreads each activation cell over the image: cell c's
 * contribution to every pixel is `mapToImage(onehot_c)`. Cheap enough to compute per geometry
 * (h·w resizes) and exact by construction.
 * @param width - activation width w
 * @param height - activation height h
 * @param geometry - the preprocessing geometry (as for the CAMs)
 * @returns the sparse interpolation
 * @example
 * const interp = pixelInterpolation(16, 16, pass.pre.geometry);
 */
export function pixelInterpolation(width: number, height: number, geometry: InputGeometry): PixelInterpolation {
  const cells = width * height;
  const P = geometry.imageWidth * geometry.imageHeight;
  const lists: { c: number[]; w: number[] }[] = Array.from({ length: P }, () => ({ c: [], w: [] }));
  const onehot = new Float32Array(cells);
  for (let c = 0; c < cells; c++) {
    onehot.fill(0);
    onehot[c] = 1;
    const img = mapToImage(onehot, width, height, geometry).image;
    for (let p = 0; p < P; p++) {
      const v = img[p]!;
      if (v !== 0) {
        lists[p]!.c.push(c);
        lists[p]!.w.push(v);
      }
    }
  }
  const rowStart = new Int32Array(P + 1);
  for (let p = 0; p < P; p++) rowStart[p + 1] = rowStart[p]! + lists[p]!.c.length;
  const cellIndex = new Int32Array(rowStart[P]!);
  const weights = new Float32Array(rowStart[P]!);
  for (let p = 0; p < P; p++) {
    cellIndex.set(lists[p]!.c, rowStart[p]!);
    weights.set(lists[p]!.w, rowStart[p]!);
  }
  return { pixels: P, cells, rowStart, cellIndex, weights };
}

/**
 * The activation interpolated at some image pixels: rows × C features (row r = pixel pixels[r]).
 * @param activation - C × h × w, channel planes
 * @param channels - C
 * @param interp - from {@link pixelInterpolation}
 * @param pixels - image pixel indices (x + width · y)
 * @returns row-major pixels.length × C
 * @example
 * const x = pixelFeatures(pass.activation.data, 128, interp, sample.pixels);
 */
export function pixelFeatures(activation: ArrayLike<number>, channels: number, interp: PixelInterpolation, pixels: ArrayLike<number>): Float64Array {
  if (activation.length !== channels * interp.cells) {
    throw new MedmaskError('USAGE', `activation holds ${activation.length} values, expected ${channels} × ${interp.cells}`);
  }
  const out = new Float64Array(pixels.length * channels);
  const hw = interp.cells;
  for (let r = 0; r < pixels.length; r++) {
    const p = pixels[r]!;
    if (!(p >= 0 && p < interp.pixels)) throw new MedmaskError('USAGE', `pixel ${p} is outside the image (${interp.pixels} pixels)`);
    const o = r * channels;
    for (let j = interp.rowStart[p]!; j < interp.rowStart[p + 1]!; j++) {
      const cell = interp.cellIndex[j]!;
      const w = interp.weights[j]!;
      for (let k = 0; k < channels; k++) out[o + k]! += w * activation[k * hw + cell]!;
    }
  }
  return out;
}

/** Options of {@link samplePixels}. */
export interface PixelSampleOptions {
  /** At most this many lesion and this many background pixels (default 256 each). */
  perClass?: number;
  /** Background pixels come from inside this region only (e.g. the lungs); default the image. */
  roi?: ArrayLike<number>;
  /** Uniform [0, 1) source. */
  rand: () => number;
}

/**
 * A seeded sample of an image's pixels for training: up to `perClass` lesion pixels (mask on) and
 * as many background pixels (mask off, inside the ROI when given), without replacement.
 * @param mask - the reviewed mask, one value per pixel (non-zero = lesion)
 * @param opts - sample size, ROI, random source
 * @returns pixel indices and their labels (1 lesion, 0 background)
 * @example
 * const s = samplePixels(mask, { perClass: 256, roi: lungs, rand: mulberry32(1) });
 */
export function samplePixels(mask: ArrayLike<number>, opts: PixelSampleOptions): { pixels: Int32Array; labels: Int32Array } {
  const per = opts.perClass ?? 256;
  if (!Number.isInteger(per) || per < 1) throw new MedmaskError('USAGE', `pixels per class must be a positive integer, got ${per}`);
  if (opts.roi && opts.roi.length !== mask.length) throw new MedmaskError('USAGE', `ROI has ${opts.roi.length} pixels, the mask ${mask.length}`);
  const fg: number[] = [];
  const bg: number[] = [];
  for (let p = 0; p < mask.length; p++) {
    if (mask[p]) fg.push(p);
    else if (!opts.roi || opts.roi[p]) bg.push(p);
  }
  const pick = (from: number[]): number[] => {
    const k = Math.min(per, from.length);
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(opts.rand() * (from.length - i));
      const t = from[i]!;
      from[i] = from[j]!;
      from[j] = t;
    }
    return from.slice(0, k);
  };
  const f = pick(fg);
  const b = pick(bg);
  return { pixels: Int32Array.from([...f, ...b]), labels: Int32Array.from([...f.map(() => 1), ...b.map(() => 0)]) };
}

/**
 * Train / validation rows split by image (pixels of one image never land on both sides, so the
 * validation loss that picks the kept epoch is not flattered by neighbouring pixels).
 * @param imageOfRow - image index of each row
 * @param images - number of images
 * @param fraction - share of images for validation (at least one when there are ≥ 2 images and fraction > 0)
 * @param rand - uniform [0, 1) source
 * @returns the split
 * @example
 * const split = splitByImage(rowImage, 25, 0.2, mulberry32(0));
 */
export function splitByImage(imageOfRow: ArrayLike<number>, images: number, fraction: number, rand: () => number): Split {
  if (!(fraction >= 0 && fraction < 1)) throw new MedmaskError('USAGE', `validation share ${fraction} must be in [0, 1)`);
  const order = Array.from({ length: images }, (_, i) => i);
  for (let i = images - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const nVal = fraction > 0 && images >= 2 ? Math.max(1, Math.round(fraction * images)) : 0;
  const isVal = new Uint8Array(images);
  for (const i of order.slice(0, nVal)) isVal[i] = 1;
  const train: number[] = [];
  const val: number[] = [];
  for (let r = 0; r < imageOfRow.length; r++) (isVal[imageOfRow[r]!] ? val : train).push(r);
  return { train: Int32Array.from(train), val: Int32Array.from(val) };
}

/**
 * The mask head of a two-class {@link fitHeadSteps} result (class 1 = lesion): the logit
 * difference of the standardised linear layer, weights rounded to float32 so the ONNX export
 * computes with exactly the same numbers.
 * @param fit - result of fitHead on pixel rows (hidden 0, 2 classes)
 * @param dropout - the dropout rate it was trained with
 * @returns the head
 * @throws MedmaskError USAGE for a head with a hidden layer or other than 2 classes
 * @example
 * const head = maskHeadFromFit(fitHead(data, { hidden: 0 }), 0.3);
 */
export function maskHeadFromFit(fit: FitHeadResult, dropout: number, layers?: { tensor: string; channels: number }[]): MaskHead {
  const l = fit.params.layers;
  if (l.length !== 1 || l[0]!.rows !== 2) throw new MedmaskError('USAGE', 'a mask head is one linear layer with 2 classes (background, lesion)');
  const { w, b, cols } = l[0]!;
  return {
    format: MASK_HEAD_FORMAT,
    channels: cols,
    mean: Array.from(fit.stats.mean, Math.fround),
    std: Array.from(fit.stats.std, Math.fround),
    weight: Array.from({ length: cols }, (_, k) => Math.fround(w[cols + k]! - w[k]!)),
    bias: Math.fround(b[1]! - b[0]!),
    dropout,
    ...(layers?.length ? { layers } : {}),
  };
}

/**
 * Check a parsed mask head (e.g. read from `mask-head.json`).
 * @param v - the parsed value
 * @param source - file name for messages
 * @returns the head
 * @throws MedmaskError MODEL_INVALID naming the bad field
 */
export function validateMaskHead(v: unknown, source: string): MaskHead {
  const h = v as Partial<MaskHead>;
  const bad = (what: string): never => {
    throw new MedmaskError('MODEL_INVALID', `${source}: ${what}`, { hint: 'write it again with medmask train-mask-head' });
  };
  if (!h || typeof h !== 'object' || h.format !== MASK_HEAD_FORMAT) bad(`format must be "${MASK_HEAD_FORMAT}"`);
  const C = h.channels;
  if (!Number.isInteger(C) || C! < 1) bad('channels must be a positive integer');
  for (const k of ['mean', 'std', 'weight'] as const) {
    const a = h[k];
    if (!Array.isArray(a) || a.length !== C || !a.every((x) => Number.isFinite(x))) bad(`${k} must hold ${C} finite numbers`);
  }
  if (!h.std!.every((s) => s > 0)) bad('std must be positive');
  if (!Number.isFinite(h.bias)) bad('bias must be a finite number');
  if (!(typeof h.dropout === 'number' && h.dropout >= 0 && h.dropout < 1)) bad('dropout must be in [0, 1)');
  if (h.layers !== undefined) {
    if (!Array.isArray(h.layers) || !h.layers.every((l) => l && typeof l.tensor === 'string' && l.tensor !== '' && Number.isInteger(l.channels) && l.channels >= 1)) {
      bad('layers must list { tensor, channels } with a tensor name and a positive channel count');
    }
    if (h.layers.reduce((a, l) => a + l.channels, 0) >= C!) bad(`the layers' ${h.layers.reduce((a, l) => a + l.channels, 0)} channels leave none of the ${C} for the CAM target`);
  }
  return h as MaskHead;
}

/**
 * Logit per activation cell: Σ_k weight_k · keep_k,c/(1 − rate) · (a_k,c − mean_k)/std_k + bias.
 * @param head - the head
 * @param activation - C × cells
 * @param keep - optional C × cells keep flags (MC Dropout); absent = deterministic
 * @returns one logit per cell
 * @example
 * const logits = maskHeadLogits(head, pass.activation.data);
 */
export function maskHeadLogits(head: MaskHead, activation: ArrayLike<number>, keep?: Uint8Array): Float64Array {
  const C = head.channels;
  if (activation.length % C) throw new MedmaskError('USAGE', `activation holds ${activation.length} values, not a multiple of the head's ${C} channels`);
  const cells = activation.length / C;
  if (keep && keep.length !== activation.length) throw new MedmaskError('USAGE', `${keep.length} keep flags for ${activation.length} activation values`);
  const out = new Float64Array(cells).fill(head.bias);
  const scale = keep ? 1 / (1 - head.dropout) : 1;
  for (let k = 0; k < C; k++) {
    const a = head.weight[k]! / head.std[k]!;
    const m = head.mean[k]!;
    const o = k * cells;
    if (keep) {
      for (let c = 0; c < cells; c++) if (keep[o + c]) out[c]! += a * scale * (activation[o + c]! - m);
    } else for (let c = 0; c < cells; c++) out[c]! += a * (activation[o + c]! - m);
  }
  return out;
}

function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

/** Result of {@link maskHeadMaps}. */
export interface MaskHeadMaps {
  /** Lesion probability per image pixel (deterministic head). */
  probability: Float32Array;
  /** MC Dropout mean probability per pixel (absent when samples = 0). */
  mcMean?: Float32Array;
  /** MC Dropout standard deviation of the probability per pixel. */
  std?: Float32Array;
}

/**
 * The head's lesion probability over the image, the logits upsampled as the CAMs are, and
 * optionally its MC Dropout spread.
 * @param head - the head
 * @param activation - C × h × w
 * @param width - activation width w
 * @param height - activation height h
 * @param geometry - preprocessing geometry of the image
 * @param mc - T samples (0 = none) and a seed
 * @returns probability maps on the image grid
 * @example
 * const m = maskHeadMaps(head, pass.activation.data, 16, 16, pass.pre.geometry, { samples: 20, seed: 0 });
 */
export function maskHeadMaps(head: MaskHead, activation: ArrayLike<number>, width: number, height: number, geometry: InputGeometry, mc: { samples: number; seed: number } = { samples: 0, seed: 0 }): MaskHeadMaps {
  if (activation.length !== head.channels * width * height) {
    throw new MedmaskError('MODEL_INVALID', `the mask head reads ${head.channels} channels, the activation has ${activation.length / (width * height)}`, {
      hint: 'the mask head belongs to another model (or target layer); train it on this model with medmask train-mask-head',
    });
  }
  const up = (logits: Float64Array): Float32Array => {
    const img = mapToImage(logits, width, height, geometry).image;
    for (let i = 0; i < img.length; i++) img[i] = sigmoid(img[i]!);
    return img;
  };
  const probability = up(maskHeadLogits(head, activation));
  const T = mc.samples;
  if (!(T > 0) || head.dropout <= 0) return { probability };
  const rand = mulberry32(mc.seed);
  const keep = new Uint8Array(activation.length);
  const sum = new Float64Array(probability.length);
  const sq = new Float64Array(probability.length);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < keep.length; i++) keep[i] = rand() < head.dropout ? 0 : 1;
    const p = up(maskHeadLogits(head, activation, keep));
    for (let i = 0; i < p.length; i++) {
      sum[i]! += p[i]!;
      sq[i]! += p[i]! * p[i]!;
    }
  }
  const mcMean = new Float32Array(sum.length);
  const std = new Float32Array(sum.length);
  for (let i = 0; i < sum.length; i++) {
    const m = sum[i]! / T;
    mcMean[i] = m;
    std[i] = Math.sqrt(Math.max(0, sq[i]! / T - m * m));
  }
  return { probability, mcMean, std };
}

/**
 * How a mask head's lesion probability P joins its model's normalised CAM C (both in [0, 1], per
 * pixel): `or` — `1 − (1 − C)(1 − w·P)`, a lesion either signal finds is kept at the level of the
 * stronger one, so a second lesion the CAM ranks low but the head finds survives the pipeline's
 * relative rules (Otsu threshold, refine's `core`); `linear` — `w·P + (1 − w)·C`, the first pass's
 * rule. Measured on the tuning phantoms in docs/annotate.md.
 */
export type MaskHeadFusion = 'or' | 'linear';

/** The fusion rules, in the order the CLI lists them. */
export const MASK_HEAD_FUSIONS: readonly MaskHeadFusion[] = ['or', 'linear'];

/** Default fusion rule (chosen on the tuning phantoms, seed 5555). */
export const DEFAULT_MASK_HEAD_FUSION: MaskHeadFusion = 'or';

/**
 * Default weight w of a fusion rule (`or`: 1, `linear`: 0.3; chosen on the tuning phantoms).
 * @param rule - the fusion rule
 * @returns w
 */
export function defaultMaskHeadWeight(rule: MaskHeadFusion): number {
  return rule === 'or' ? 1 : 0.3;
}

/**
 * Fuse a mask head's probability map into its model's CAM map ({@link MaskHeadFusion}), and
 * propagate the two MC standard deviations to first order (|∂map/∂C|·sd_C + |∂map/∂P|·sd_P, the
 * bound that adds them linearly): `or` → (1 − w·P)·sd_C + w·(1 − C)·sd_P; `linear` →
 * (1 − w)·sd_C + w·sd_P.
 * @param cam - normalised CAM per pixel, in [0, 1]
 * @param probability - the head's lesion probability per pixel
 * @param w - weight of the head, in [0, 1]
 * @param rule - the fusion rule
 * @param std - MC standard deviations per pixel of the CAM and of the head's probability, when known
 * @returns the fused map, and its std when either std is given
 * @throws MedmaskError USAGE for maps of different sizes or w outside [0, 1]
 * @example
 * const { map } = fuseMaskHead(cam, head.probability, 1, 'or');
 */
export function fuseMaskHead(cam: ArrayLike<number>, probability: ArrayLike<number>, w: number, rule: MaskHeadFusion, std: { cam?: ArrayLike<number>; head?: ArrayLike<number> } = {}): { map: Float32Array; std?: Float32Array } {
  const n = cam.length;
  if (probability.length !== n) throw new MedmaskError('USAGE', `the head's map has ${probability.length} pixels, the CAM ${n}`);
  if (!(w >= 0 && w <= 1)) throw new MedmaskError('USAGE', `mask head weight ${w} must be in [0, 1]`);
  for (const s of [std.cam, std.head]) if (s && s.length !== n) throw new MedmaskError('USAGE', `a std map has ${s.length} pixels, the CAM ${n}`);
  const map = new Float32Array(n);
  const out = std.cam || std.head ? new Float32Array(n) : undefined;
  for (let q = 0; q < n; q++) {
    const c = cam[q]!, p = probability[q]!;
    const sc = std.cam ? std.cam[q]! : 0, sp = std.head ? std.head[q]! : 0;
    if (rule === 'or') {
      map[q] = 1 - (1 - c) * (1 - w * p);
      if (out) out[q] = Math.abs(1 - w * p) * sc + w * Math.abs(1 - c) * sp;
    } else {
      map[q] = w * p + (1 - w) * c;
      if (out) out[q] = (1 - w) * sc + w * sp;
    }
  }
  return out ? { map, std: out } : { map };
}
