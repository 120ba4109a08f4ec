/**
 * Class activation maps from a target activation A (C channels of h × w) and the gradient
 * G = ∂y_c/∂A of a class score: pure functions over typed arrays.
 *
 * Every method forms channel weights w_k and the map `ReLU(Σ_k w_k A_k)`; they differ in w_k:
 * - **CAM** (Zhou et al. 2016): w_k = the classifier's weight for class c and channel k (for a head
 *   that is global average pooling followed by a linear layer).
 * - **Grad-CAM** (Selvaraju et al. 2017): w_k = mean_ij G_kij.
 * - **XGrad-CAM** (Fu et al. 2020, "Axiom-based Grad-CAM"): w_k = Σ_ij G_kij A_kij / (Σ_ij A_kij + ε).
 * - **Grad-CAM++** (Chattopadhay et al. 2018): w_k = Σ_ij α_kij ReLU(G_kij) with
 *   α = G² / (2 G² + (Σ_ij A_kij) G³ + ε), α = 0 where G = 0 (the closed form pytorch-grad-cam uses).
 * Normalisation follows pytorch-grad-cam: `(m − min) / (max − min + 1e-7)` after the ReLU.
 *
 * Layout: A and G are [C, h, w] row-major (ONNX NCHW without the batch), so a map is h × w with x
 * fastest — the same order as a medmask 2D volume.
 * @module
 */
import { MedmaskError } from '../errors.js';

/** CAM methods by name. */
export type CamMethod = 'cam' | 'gradcam' | 'xgradcam' | 'gradcampp';

/** Method names accepted by {@link computeCam}. */
export const CAM_METHODS: readonly CamMethod[] = ['xgradcam', 'gradcam', 'gradcampp', 'cam'];

/** Input of {@link computeCam}. */
export interface CamInput {
  /** Target activation, [C, h, w] row-major. */
  activation: ArrayLike<number>;
  /** ∂y_c/∂activation, same layout (not needed for `cam`). */
  gradient?: ArrayLike<number>;
  /** Number of channels C. */
  channels: number;
  /** Map height h. */
  height: number;
  /** Map width w. */
  width: number;
  /** For `cam`: the classifier weights of the chosen class, one per channel. */
  classWeights?: ArrayLike<number>;
}

/** Output of {@link computeCam}. */
export interface CamResult {
  /** The method used. */
  method: CamMethod;
  /** Channel weights w_k. */
  weights: Float64Array;
  /** ReLU(Σ_k w_k A_k), h × w, x fastest, not normalised. */
  raw: Float64Array;
  /** `raw` min-max normalised to [0, 1] as pytorch-grad-cam does. */
  normalized: Float64Array;
  /** Map height. */
  height: number;
  /** Map width. */
  width: number;
}

/** ε of XGrad-CAM's denominator (pytorch-grad-cam's value). */
export const XGRADCAM_EPS = 1e-7;
/** ε of Grad-CAM++'s α denominator (pytorch-grad-cam's value). */
export const GRADCAMPP_EPS = 1e-6;

function checkSizes(input: CamInput, needGrad: boolean): number {
  const { channels: C, height: h, width: w } = input;
  for (const [k, v] of Object.entries({ channels: C, height: h, width: w })) {
    if (!Number.isInteger(v) || v < 1) throw new MedmaskError('USAGE', `CAM ${k} must be a positive integer, got ${v}`);
  }
  const n = C * h * w;
  if (input.activation.length !== n) {
    throw new MedmaskError('USAGE', `activation has ${input.activation.length} values; ${C}×${h}×${w} = ${n} expected`);
  }
  if (needGrad && input.gradient?.length !== n) {
    throw new MedmaskError('USAGE', `gradient has ${input.gradient?.length ?? 0} values; ${C}×${h}×${w} = ${n} expected`);
  }
  return h * w;
}

/**
 * Channel weights w_k of a CAM method.
 * @param method - `cam`, `gradcam`, `xgradcam` or `gradcampp`
 * @param input - activation, gradient (and class weights for `cam`), with sizes
 * @returns C weights
 * @example
 * const w = camWeights('xgradcam', { activation: A, gradient: G, channels: 512, height: 7, width: 7 });
 */
export function camWeights(method: CamMethod, input: CamInput): Float64Array {
  const C = input.channels;
  const hw = checkSizes(input, method !== 'cam');
  const A = input.activation;
  const G = input.gradient ?? [];
  const w = new Float64Array(C);
  switch (method) {
    case 'cam': {
      const cw = input.classWeights;
      if (!cw || cw.length !== C) {
        throw new MedmaskError('USAGE', `CAM needs the classifier weights of the class (${C} values), got ${cw?.length ?? 0}`, {
          hint: 'CAM applies to heads of global pooling + one linear layer; use xgradcam or gradcam otherwise',
        });
      }
      for (let k = 0; k < C; k++) w[k] = cw[k]!;
      return w;
    }
    case 'gradcam':
      for (let k = 0; k < C; k++) {
        let s = 0;
        for (let i = k * hw; i < (k + 1) * hw; i++) s += G[i]!;
        w[k] = s / hw;
      }
      return w;
    case 'xgradcam':
      for (let k = 0; k < C; k++) {
        let ga = 0;
        let a = 0;
        for (let i = k * hw; i < (k + 1) * hw; i++) {
          ga += G[i]! * A[i]!;
          a += A[i]!;
        }
        w[k] = ga / (a + XGRADCAM_EPS);
      }
      return w;
    case 'gradcampp':
      for (let k = 0; k < C; k++) {
        let sa = 0;
        for (let i = k * hw; i < (k + 1) * hw; i++) sa += A[i]!;
        let s = 0;
        for (let i = k * hw; i < (k + 1) * hw; i++) {
          const g = G[i]!;
          if (g <= 0) continue; // ReLU(G) = 0, and α = 0 where G = 0
          const g2 = g * g;
          s += (g2 / (2 * g2 + sa * g2 * g + GRADCAMPP_EPS)) * g;
        }
        w[k] = s;
      }
      return w;
    default:
      throw new MedmaskError('USAGE', `unknown CAM method "${String(method)}"; use one of ${CAM_METHODS.join(', ')}`);
  }
}

/**
 * Weighted channel sum followed by a ReLU: `max(0, Σ_k w_k A_k)`.
 * @param activation - [C, h, w] row-major
 * @param weights - C weights
 * @param hw - h · w
 * @returns the h × w map
 * @example
 * const raw = weightedMap(A, w, 7 * 7);
 */
export function weightedMap(activation: ArrayLike<number>, weights: ArrayLike<number>, hw: number): Float64Array {
  const out = new Float64Array(hw);
  for (let k = 0; k < weights.length; k++) {
    const wk = weights[k]!;
    if (wk === 0) continue;
    const base = k * hw;
    for (let i = 0; i < hw; i++) out[i] += wk * activation[base + i]!;
  }
  for (let i = 0; i < hw; i++) if (!(out[i]! > 0)) out[i] = 0;
  return out;
}

/**
 * Min-max normalisation as pytorch-grad-cam's `scale_cam_image`: `(m − min) / (max − min + 1e-7)`.
 * A constant map becomes all zeros.
 * @param map - values
 * @returns values in [0, 1)
 * @example
 * normalizeMap(Float64Array.of(0, 2, 4)); // ≈ [0, 0.5, 1]
 */
export function normalizeMap(map: ArrayLike<number>): Float64Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < map.length; i++) {
    if (map[i]! < lo) lo = map[i]!;
    if (map[i]! > hi) hi = map[i]!;
  }
  const out = new Float64Array(map.length);
  if (!(hi >= lo)) return out;
  const d = hi - lo + 1e-7;
  for (let i = 0; i < map.length; i++) out[i] = (map[i]! - lo) / d;
  return out;
}

/**
 * A class activation map by the named method (see the module documentation for the formulas).
 * @param method - `xgradcam` (Fu et al. 2020), `gradcam` (Selvaraju et al. 2017), `gradcampp`
 *   (Chattopadhay et al. 2018) or `cam` (Zhou et al. 2016)
 * @param input - activation, gradient, sizes (and class weights for `cam`)
 * @returns weights, raw map and normalised map at activation resolution
 * @example
 * const { normalized } = computeCam('xgradcam', { activation: A, gradient: G, channels: 512, height: 7, width: 7 });
 */
export function computeCam(method: CamMethod, input: CamInput): CamResult {
  const weights = camWeights(method, input);
  const raw = weightedMap(input.activation, weights, input.height * input.width);
  return { method, weights, raw, normalized: normalizeMap(raw), height: input.height, width: input.width };
}
