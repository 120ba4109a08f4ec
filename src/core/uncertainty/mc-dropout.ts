/**
 * Monte Carlo Dropout (Gal & Ghahramani 2016, "Dropout as a Bayesian Approximation"): T stochastic
 * passes with dropout on approximate the predictive distribution. From the T class-probability
 * vectors p_t:
 * - mean probability  p̄ = (1/T) Σ_t p_t
 * - predictive entropy  H[p̄] = −Σ_c p̄_c ln p̄_c   (total uncertainty, nats)
 * - expected entropy  E_t H[p_t]                   (aleatoric part)
 * - mutual information  MI = H[p̄] − E_t H[p_t]     (epistemic part; 0 ≤ MI ≤ H[p̄])
 * and, per pixel, the standard deviation of the T saliency maps.
 *
 * **Head MC** (the default in medmask) samples dropout masks on the pooled features before the
 * classifier and re-evaluates only the head: T samples cost T head evaluations, not T backbone
 * passes. Pure functions; the masks come from a small seeded PRNG, so results are reproducible.
 * @module
 */
import { MedmaskError } from '../errors.js';
import { computeCam, type CamMethod } from '../explain/cam.js';
import { mulberry32 } from '../random.js';
import { argmax, backwardHead, forwardHead, type CompiledHead, type HeadTensor, type HeadTrace } from '../explain/head.js';

export { mulberry32 } from '../random.js';

/**
 * An inverted-dropout mask: each entry 0 with probability `rate`, else 1/(1 − rate) (as
 * torch.nn.Dropout and ONNX Dropout scale), so the expectation of masked values is unchanged.
 * @param n - number of entries
 * @param rate - drop probability in [0, 1)
 * @param rand - uniform [0, 1) source
 * @returns the mask
 * @example
 * const m = dropoutMask(512, 0.2, mulberry32(1));
 */
export function dropoutMask(n: number, rate: number, rand: () => number): Float64Array {
  if (!(rate >= 0 && rate < 1)) throw new MedmaskError('USAGE', `dropout rate ${rate} must be in [0, 1)`);
  const keep = 1 / (1 - rate);
  const m = new Float64Array(n);
  for (let i = 0; i < n; i++) m[i] = rand() < rate ? 0 : keep;
  return m;
}

/**
 * Softmax of a logit vector (numerically stable).
 * @param logits - values
 * @returns probabilities summing to 1
 * @example
 * softmax([0, 0]); // [0.5, 0.5]
 */
export function softmax(logits: ArrayLike<number>): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < logits.length; i++) mx = Math.max(mx, logits[i]!);
  const out = new Float64Array(logits.length);
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += out[i] = Math.exp(logits[i]! - mx);
  for (let i = 0; i < out.length; i++) out[i]! /= s;
  return out;
}

/**
 * Shannon entropy in nats, with 0 · ln 0 = 0.
 * @param p - a probability vector
 * @returns −Σ p ln p
 * @example
 * entropy([0.5, 0.5]); // ln 2
 */
export function entropy(p: ArrayLike<number>): number {
  let h = 0;
  for (let i = 0; i < p.length; i++) if (p[i]! > 0) h -= p[i]! * Math.log(p[i]!);
  return h;
}

/** Summary of T Monte Carlo samples. */
export interface McStatistics {
  /** Number of samples T. */
  samples: number;
  /** p̄, the mean class probability. */
  meanProbability: Float64Array;
  /** Standard deviation of each class probability over the samples. */
  probabilityStd: Float64Array;
  /** arg max of p̄. */
  predicted: number;
  /** H[p̄] in nats. */
  predictiveEntropy: number;
  /** E_t H[p_t] in nats. */
  expectedEntropy: number;
  /** H[p̄] − E_t H[p_t] in nats (clamped at 0 against rounding). */
  mutualInformation: number;
}

/**
 * Mean probability, predictive entropy, expected entropy and mutual information of T samples
 * (Gal & Ghahramani 2016; the decomposition as in Gal's thesis / BALD).
 * @param probabilities - T probability vectors of equal length
 * @returns the statistics
 * @example
 * mcStatistics([[0.9, 0.1], [0.1, 0.9]]).mutualInformation; // ln 2 − H(0.9, 0.1) ≈ 0.368
 */
export function mcStatistics(probabilities: readonly ArrayLike<number>[]): McStatistics {
  return summarizeSamples(probabilities, entropy);
}

/**
 * The statistics both MC flavours share, given how the entropy of one probability vector is
 * measured (categorical for softmax outputs, a sum of Bernoulli entropies for multi-label ones).
 */
function summarizeSamples(probabilities: readonly ArrayLike<number>[], entropyOf: (p: ArrayLike<number>) => number): McStatistics {
  const T = probabilities.length;
  if (T === 0) throw new MedmaskError('USAGE', 'Monte Carlo statistics need at least one sample');
  const K = probabilities[0]!.length;
  const mean = new Float64Array(K);
  const sq = new Float64Array(K);
  let eh = 0;
  for (const p of probabilities) {
    if (p.length !== K) throw new MedmaskError('USAGE', `samples have ${p.length} and ${K} classes`);
    for (let k = 0; k < K; k++) {
      mean[k] += p[k]! / T;
      sq[k] += (p[k]! * p[k]!) / T;
    }
    eh += entropyOf(p) / T;
  }
  const h = entropyOf(mean);
  return {
    samples: T,
    meanProbability: mean,
    probabilityStd: sq.map((v, k) => Math.sqrt(Math.max(0, v - mean[k]! * mean[k]!))),
    predicted: argmax(mean),
    predictiveEntropy: h,
    expectedEntropy: eh,
    mutualInformation: Math.max(0, h - eh),
  };
}

/** How a head's output becomes class probabilities. */
export type ProbabilityMode = 'softmax' | 'sigmoid' | 'none';

/**
 * Class probabilities from a head output: `softmax` (one class per image), `sigmoid` (each class
 * on its own, multi-label), or `none` (the output already holds probabilities).
 * @param output - logits (or probabilities for `none`)
 * @param mode - the output activation
 * @returns probabilities
 * @example
 * toProbabilities([0, 0], 'sigmoid'); // [0.5, 0.5]
 */
export function toProbabilities(output: ArrayLike<number>, mode: ProbabilityMode): Float64Array {
  if (mode === 'softmax') return softmax(output);
  if (mode === 'sigmoid') return Float64Array.from(output as ArrayLike<number>, (v) => 1 / (1 + Math.exp(-v)));
  return Float64Array.from(output as ArrayLike<number>);
}

/** Binary entropy −p ln p − (1−p) ln(1−p), nats. */
function binaryEntropy(p: number): number {
  let h = 0;
  if (p > 0) h -= p * Math.log(p);
  if (p < 1) h -= (1 - p) * Math.log(1 - p);
  return h;
}

/**
 * Monte Carlo statistics for multi-label (sigmoid) outputs: each class is its own Bernoulli
 * variable; entropies and mutual information are sums over classes of the binary ones (the labels
 * treated as independent), so 0 ≤ MI ≤ predictive entropy still holds class by class.
 * @param probabilities - T vectors of per-class probabilities
 * @returns the statistics (`predicted`: the class with the highest mean probability)
 * @example
 * mcStatisticsMultiLabel([[0.9], [0.1]]).mutualInformation; // ln 2 − H(0.9)
 */
export function mcStatisticsMultiLabel(probabilities: readonly ArrayLike<number>[]): McStatistics {
  return summarizeSamples(probabilities, (p) => {
    let h = 0;
    for (let k = 0; k < p.length; k++) h += binaryEntropy(p[k]!);
    return h;
  });
}

/**
 * Per-pixel (population) standard deviation of T maps of equal size.
 * @param maps - T maps
 * @returns one value per pixel
 * @example
 * pixelStd([[0, 1], [2, 1]]); // [1, 0]
 */
export function pixelStd(maps: readonly ArrayLike<number>[]): Float64Array {
  const T = maps.length;
  if (T === 0) throw new MedmaskError('USAGE', 'pixelStd needs at least one map');
  const n = maps[0]!.length;
  const mean = new Float64Array(n);
  const sq = new Float64Array(n);
  for (const m of maps) {
    if (m.length !== n) throw new MedmaskError('USAGE', `maps have ${m.length} and ${n} pixels`);
    for (let i = 0; i < n; i++) {
      mean[i] += m[i]! / T;
      sq[i] += (m[i]! * m[i]!) / T;
    }
  }
  return sq.map((s, i) => Math.sqrt(Math.max(0, s - mean[i]! * mean[i]!)));
}

/**
 * Where head MC applies dropout: the input tensor of the head's first linear layer (Gemm or
 * MatMul) — the pooled features, as in the classifier Dropout of torchvision's EfficientNet.
 * @param head - a compiled head
 * @returns the tensor name
 * @throws MedmaskError MODEL_INVALID when the head has no linear layer
 * @example
 * dropoutSite(head); // "/Flatten_output_0"
 */
export function dropoutSite(head: CompiledHead): string {
  const lin = head.nodes.find((n) => n.op === 'Gemm' || n.op === 'MatMul');
  if (!lin) {
    throw new MedmaskError('MODEL_INVALID', `the head after "${head.target}" has no linear layer (Gemm / MatMul) to apply dropout before`, {
      hint: 'name the dropout tensor explicitly, or use full MC for models exported with Dropout nodes',
    });
  }
  return lin.inputs[0]!;
}

/** Options for {@link headMonteCarlo}. */
export interface HeadMcOptions {
  /** Number of samples T (default 30). */
  samples?: number;
  /** Dropout rate (the manifest's). */
  rate: number;
  /** PRNG seed (default 0). */
  seed?: number;
  /** Tensor to drop out (default {@link dropoutSite}). */
  site?: string;
  /** Class for the maps (default: the deterministic pass's prediction). */
  classIndex?: number;
  /** When set, each sample's map by this method (with its own gradient), and their per-pixel std. */
  method?: CamMethod;
  /**
   * How outputs become probabilities (default: `none` when the head ends in Softmax, else
   * `softmax`); `sigmoid` uses {@link mcStatisticsMultiLabel}.
   */
  probability?: ProbabilityMode;
}

/** Result of {@link headMonteCarlo}. */
export interface HeadMcResult {
  /** Statistics over the samples. */
  statistics: McStatistics;
  /** Logits (or probabilities, for heads ending in Softmax) of each sample. */
  outputs: Float64Array[];
  /** Probabilities of each sample. */
  probabilities: Float64Array[];
  /** Deterministic (no dropout) probabilities. */
  deterministic: Float64Array;
  /** Class of the maps. */
  classIndex: number;
  /** Per-sample normalised maps, when `method` was given. */
  maps?: Float64Array[];
  /** Per-pixel std of the normalised maps, when `method` was given. */
  mapStd?: Float64Array;
}

/**
 * Head Monte Carlo Dropout: T samples of the head with seeded dropout masks at the dropout site,
 * from one backbone activation; optionally each sample's CAM (own gradient) and their spread.
 * @param head - a compiled head
 * @param activation - target activation of one sample ([1, C, h, w])
 * @param opts - samples, rate, seed, site, class, CAM method
 * @returns per-sample outputs and the statistics
 * @example
 * const r = headMonteCarlo(head, act, { rate: 0.2, samples: 30, seed: 7, method: 'xgradcam' });
 * r.statistics.mutualInformation; r.mapStd;
 */
export function headMonteCarlo(head: CompiledHead, activation: HeadTensor, opts: HeadMcOptions): HeadMcResult {
  const T = opts.samples ?? 30;
  if (!Number.isInteger(T) || T < 1) throw new MedmaskError('USAGE', `MC samples must be a positive integer, got ${T}`);
  const site = opts.site ?? dropoutSite(head);
  const mode = opts.probability ?? (head.nodes[head.nodes.length - 1]?.op === 'Softmax' ? 'none' : 'softmax');
  const toProb = (v: Float64Array): Float64Array => toProbabilities(v, mode);
  const base: HeadTrace = forwardHead(head, activation);
  const siteValue = base.values.get(site);
  if (!siteValue) throw new MedmaskError('USAGE', `dropout site "${site}" is not a tensor of the head`);
  const deterministic = toProb(base.output.data);
  const classIndex = opts.classIndex ?? argmax(deterministic);
  const rand = mulberry32(opts.seed ?? 0);
  const outputs: Float64Array[] = [];
  const probabilities: Float64Array[] = [];
  const maps: Float64Array[] = [];
  const [, C = 1, h = 1, w = 1] = activation.shape;
  for (let t = 0; t < T; t++) {
    const mask = dropoutMask(siteValue.data.length, opts.rate, rand);
    const trace = forwardHead(head, activation, { masks: { [site]: mask }, reuse: base });
    outputs.push(trace.output.data);
    probabilities.push(toProb(trace.output.data));
    if (opts.method) {
      const g = backwardHead(head, trace, classIndex);
      maps.push(computeCam(opts.method, { activation: activation.data, gradient: g, channels: C, height: h, width: w }).normalized);
    }
  }
  const statistics = mode === 'sigmoid' ? mcStatisticsMultiLabel(probabilities) : mcStatistics(probabilities);
  const result: HeadMcResult = { statistics, outputs, probabilities, deterministic, classIndex };
  if (opts.method) {
    result.maps = maps;
    result.mapStd = pixelStd(maps);
  }
  return result;
}
