/**
 * One image's explanation from one backbone activation: class probabilities, a class activation
 * map for each chosen class (XGrad-CAM by default — Fu et al. 2020), and optionally head Monte
 * Carlo Dropout (Gal & Ghahramani 2016) with the per-pixel spread of the maps. Pure; the runtime
 * supplies the activation, the pipeline writes the files.
 * @module
 */
import { MedmaskError } from '../errors.js';
import { computeCam, normalizeMap, type CamMethod } from './cam.js';
import { resolveClasses, type ClassSpec } from './class-select.js';
import { argmax, backwardHead, forwardHead, linearHeadWeights, type CompiledHead, type HeadTensor } from './head.js';
import { planForward, planHead, planMap, planMonteCarlo, prepareActivation, type HeadPlan } from './head-plan.js';
import {
  dropoutSite,
  headMonteCarlo,
  mcStatistics,
  mcStatisticsMultiLabel,
  mulberry32,
  pixelStd,
  toProbabilities,
  type McStatistics,
  type ProbabilityMode,
} from '../uncertainty/mc-dropout.js';

/** Head Monte Carlo Dropout settings. */
export interface ExplainMcOptions {
  /** Number of samples T. */
  samples: number;
  /** Dropout rate at the site. */
  rate: number;
  /** PRNG seed (default 0): same seed, same masks. */
  seed?: number;
  /** Tensor dropped out (default: the input of the head's first linear layer). */
  site?: string;
  /** Compute the per-pixel std of the T maps (default true); without it no per-sample map is made. */
  pixelStd?: boolean;
  /**
   * Keep flags and the T head outputs computed elsewhere for them (onnxruntime's GEMM for heads with
   * many classes; see `drawKeepFlags`); used where the fast path applies with a linear tail.
   */
  precomputed?: { keep: Uint8Array; outputs: ArrayLike<number> };
}

/** Options for {@link explainActivation}. */
export interface ExplainActivationOptions {
  /** CAM method (default `xgradcam`). */
  method?: CamMethod;
  /** Classes to explain (default: the predicted one). */
  classes?: ClassSpec | string;
  /** Class names in output order (for names in `classes` and in the result). */
  classNames: readonly string[];
  /** Output activation (default: `none` when the head ends in Softmax, else `softmax`). */
  probability?: ProbabilityMode;
  /** Head MC Dropout; omitted: none. */
  mc?: ExplainMcOptions;
  /**
   * The head output for this sample as onnxruntime computed it (the graph's output): spares
   * recomputing a linear classifier with many classes. Ignored on the general path.
   */
  output?: ArrayLike<number>;
  /**
   * Use the general evaluator even where the fast path applies (for tests comparing the two;
   * results agree to float32 rounding).
   */
  general?: boolean;
}

/** Summary of a per-pixel std map. */
export interface StdSummary {
  mean: number;
  max: number;
  p95: number;
}

/** The map of one class. */
export interface ClassMap {
  classIndex: number;
  className: string;
  /** Deterministic probability of this class. */
  probability: number;
  /** Channel weights w_k. */
  weights: Float64Array;
  /** ReLU(Σ w_k A_k) at activation resolution, not normalised. */
  raw: Float64Array;
  /** `raw` min-max normalised (pytorch-grad-cam's scaling). */
  normalized: Float64Array;
  /** Head MC: per-pixel std of the T normalised maps, activation resolution. */
  std?: Float64Array;
  /** Head MC: summary of `std`. */
  stdSummary?: StdSummary;
}

/** Result of {@link explainActivation}. */
export interface ActivationExplanation {
  /** Head output of the deterministic pass. */
  logits: Float64Array;
  /** Deterministic class probabilities. */
  probabilities: Float64Array;
  /** arg max of `probabilities`. */
  predicted: number;
  /** Activation channels, height and width. */
  channels: number;
  height: number;
  width: number;
  method: CamMethod;
  maps: ClassMap[];
  /** Head MC statistics (mean probability, predictive / expected entropy, MI). */
  mc?: McStatistics & { rate: number; seed: number };
}

/**
 * Summary of a std map: mean, maximum and 95th percentile.
 * @param std - per-pixel values
 * @returns the summary
 * @example
 * summarizeStd(Float64Array.of(0, 1)); // { mean: 0.5, max: 1, p95: 1 }
 */
export function summarizeStd(std: ArrayLike<number>): StdSummary {
  const s = Float64Array.from(std as ArrayLike<number>).sort();
  const n = s.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += s[i]!;
  return { mean: n ? sum / n : 0, max: n ? s[n - 1]! : 0, p95: n ? s[Math.min(n - 1, Math.ceil(0.95 * n) - 1)]! : 0 };
}

/** The probability mode a head implies when none is given. */
export function defaultProbabilityMode(head: CompiledHead): ProbabilityMode {
  const last = head.nodes[head.nodes.length - 1]?.op;
  return last === 'Softmax' || last === 'Sigmoid' ? 'none' : 'softmax';
}

/**
 * Explain one sample from its target activation.
 * @param head - the compiled head
 * @param activation - the target activation of one sample, [1, C, h, w]
 * @param opts - method, classes, class names, probability mode, head MC
 * @returns probabilities, one map per chosen class, MC statistics
 * @throws MedmaskError USAGE for a bad class choice; MODEL_INVALID when `cam` is asked of a head
 *   that is not pooling + one linear layer, or the output size differs from the class names
 * @example
 * const e = explainActivation(session.head, { shape: [1, 2048, 7, 7], data }, { classNames, mc: { samples: 30, rate: 0.2 } });
 * e.maps[0].normalized; e.mc?.mutualInformation;
 */
export function explainActivation(
  head: CompiledHead,
  activation: { shape: number[]; data: Float64Array | Float32Array },
  opts: ExplainActivationOptions,
): ActivationExplanation {
  const [, C = 1, h = 1, w = 1] = activation.shape;
  if (activation.shape.length !== 4 || activation.shape[0] !== 1) {
    throw new MedmaskError('MODEL_INVALID', `the CAM target "${head.target}" has shape [${activation.shape.join(', ')}]; a 4-D [1, C, H, W] activation is needed`, {
      hint: 'choose a 4-D target tensor (medmask model inspect lists candidates)',
    });
  }
  if (activation.data.length !== C * h * w) {
    throw new MedmaskError('USAGE', `activation shape [${activation.shape.join(', ')}] does not match its ${activation.data.length} values`);
  }
  const plan = opts.general ? undefined : planFor(head, C, opts.mc?.site);
  if (plan) return explainWithPlan(plan, activation.data, [C, h, w], opts);
  const data = activation.data instanceof Float64Array ? activation.data : Float64Array.from(activation.data);
  return explainGeneral(head, { shape: activation.shape, data }, opts);
}

const plans = new WeakMap<CompiledHead, Map<string, HeadPlan | null>>();

/**
 * The fast-path plan of a head (see head-plan.ts), cached per head, channel count and site.
 * @param head - the compiled head
 * @param C - channels of the target activation
 * @param site - dropout site (default: the input of the first linear layer)
 * @returns the plan, or undefined when the head takes the general path
 * @example
 * const plan = headPlanFor(session.head, 2048); plan?.linear?.classes;
 */
export function headPlanFor(head: CompiledHead, C: number, site?: string): HeadPlan | undefined {
  return planFor(head, C, site);
}

function planFor(head: CompiledHead, C: number, site?: string): HeadPlan | undefined {
  let s = site;
  if (!s) {
    try {
      s = dropoutSite(head);
    } catch {
      return undefined;
    }
  }
  let byKey = plans.get(head);
  if (!byKey) plans.set(head, (byKey = new Map()));
  const key = `${C}\u0000${s}`;
  if (!byKey.has(key)) byKey.set(key, planHead(head, C, s) ?? null);
  return byKey.get(key) ?? undefined;
}

function checkOutputs(n: number, classNames: readonly string[]): void {
  if (n !== classNames.length) {
    throw new MedmaskError('MODEL_INVALID', `the model gives ${n} outputs, the manifest names ${classNames.length} classes`, {
      hint: `list ${n} class names in the manifest's "classes"`,
    });
  }
}

function camWeightsOf(head: CompiledHead, c: number): Float64Array {
  const cw = linearHeadWeights(head, c);
  if (!cw) {
    throw new MedmaskError('MODEL_INVALID', `CAM needs a head of global average pooling and one linear layer; the head after "${head.target}" is ${head.nodes.map((n) => n.op).join(' → ')}`, {
      hint: 'use --method xgradcam (or gradcam, gradcampp), which work with any supported head',
    });
  }
  return cw;
}

/** The fast path (see head-plan.ts): same results as {@link explainGeneral}, to float32 rounding. */
function explainWithPlan(plan: HeadPlan, data: Float32Array | Float64Array, [C, h, w]: number[], opts: ExplainActivationOptions): ActivationExplanation {
  const method = opts.method ?? 'xgradcam';
  const head = plan.head;
  const mode = opts.probability ?? defaultProbabilityMode(head);
  const prep = prepareActivation(plan, data, h! * w!);
  const fwd = planForward(plan, prep.features, opts.output);
  const logits = fwd.output;
  checkOutputs(logits.length, opts.classNames);
  const probabilities = toProbabilities(logits, mode);
  const predicted = argmax(probabilities);
  const chosen = resolveClasses(opts.classes, opts.classNames, probabilities);
  const maps: ClassMap[] = chosen.map((c) => {
    let weights: Float64Array;
    let raw: Float64Array;
    if (method === 'cam') {
      const cam = computeCam('cam', { activation: prep.A, classWeights: camWeightsOf(head, c), channels: C!, height: h!, width: w! });
      ({ weights, raw } = cam);
    } else ({ weights, raw } = planMap(method, fwd.gradient(c), prep, plan));
    return { classIndex: c, className: opts.classNames[c]!, probability: probabilities[c]!, weights, raw, normalized: normalizeMap(raw) };
  });
  const out: ActivationExplanation = { logits, probabilities, predicted, channels: C!, height: h!, width: w!, method, maps };
  if (opts.mc) {
    const seed = opts.mc.seed ?? 0;
    const T = opts.mc.samples;
    if (!Number.isInteger(T) || T < 1) throw new MedmaskError('USAGE', `MC samples must be a positive integer, got ${T}`);
    const probs: Float64Array[] = [];
    const pre = plan.linear ? opts.mc.precomputed : undefined;
    const std = planMonteCarlo(plan, prep, {
      samples: T,
      rate: opts.mc.rate,
      ...(pre ? { keep: pre.keep, outputs: pre.outputs } : { rand: mulberry32(seed) }),
      ...(opts.mc.pixelStd ?? true ? { maps: { classes: chosen, method } } : {}),
      onOutput: (o) => probs.push(toProbabilities(o, mode)),
    });
    for (const m of maps) {
      const s = std.get(m.classIndex);
      if (s) {
        m.std = s;
        m.stdSummary = summarizeStd(s);
      }
    }
    const stats = mode === 'sigmoid' ? mcStatisticsMultiLabel(probs) : mcStatistics(probs);
    out.mc = { ...stats, rate: opts.mc.rate, seed };
  }
  return out;
}

/** The general path: the head evaluator forwards and backwards, for any supported head. */
function explainGeneral(head: CompiledHead, activation: HeadTensor, opts: ExplainActivationOptions): ActivationExplanation {
  const method = opts.method ?? 'xgradcam';
  const [, C = 1, h = 1, w = 1] = activation.shape;
  const mode = opts.probability ?? defaultProbabilityMode(head);
  const trace = forwardHead(head, activation);
  const logits = trace.output.data;
  checkOutputs(logits.length, opts.classNames);
  const probabilities = toProbabilities(logits, mode);
  const predicted = argmax(probabilities);
  const chosen = resolveClasses(opts.classes, opts.classNames, probabilities);
  const maps: ClassMap[] = chosen.map((c) => {
    const classWeights = method === 'cam' ? camWeightsOf(head, c) : undefined;
    const gradient = method === 'cam' ? undefined : backwardHead(head, trace, c);
    const cam = computeCam(method, { activation: activation.data, ...(gradient ? { gradient } : {}), ...(classWeights ? { classWeights } : {}), channels: C, height: h, width: w });
    return { classIndex: c, className: opts.classNames[c]!, probability: probabilities[c]!, weights: cam.weights, raw: cam.raw, normalized: cam.normalized };
  });
  const out: ActivationExplanation = { logits, probabilities, predicted, channels: C, height: h, width: w, method, maps };
  if (opts.mc) {
    const seed = opts.mc.seed ?? 0;
    const wantStd = opts.mc.pixelStd ?? true;
    let stats: McStatistics | undefined;
    for (const m of maps) {
      const r = headMonteCarlo(head, activation, {
        samples: opts.mc.samples,
        rate: opts.mc.rate,
        seed,
        classIndex: m.classIndex,
        probability: mode,
        ...(opts.mc.site ? { site: opts.mc.site } : {}),
        // for a pooling + linear head, the normalised Grad-CAM map of a sample is the CAM of its masked classifier
        ...(wantStd ? { method: method === 'cam' ? 'gradcam' : method } : {}),
      });
      stats ??= r.statistics;
      if (r.mapStd) {
        m.std = r.mapStd;
        m.stdSummary = summarizeStd(r.mapStd);
      }
      if (!wantStd) break;
    }
    stats ??= headMonteCarlo(head, activation, { samples: opts.mc.samples, rate: opts.mc.rate, seed, probability: mode, ...(opts.mc.site ? { site: opts.mc.site } : {}) }).statistics;
    out.mc = { ...stats, rate: opts.mc.rate, seed };
  }
  return out;
}

/** One full-MC sample as the runtime gives it: the activation and the dropout masks drawn in the head. */
export interface FullMcSample {
  activation: HeadTensor;
  masks?: Record<string, Float64Array>;
}

/**
 * Full Monte Carlo Dropout statistics from T backbone passes with dropout on: probabilities of
 * each pass (the head evaluated with the masks onnxruntime drew, so each sample's gradient uses
 * its own mask), the statistics, and per class the per-pixel std of the T normalised maps.
 * @param head - the compiled head
 * @param samples - T samples
 * @param opts - method, the classes (indices) to map, probability mode, whether to make maps
 * @returns statistics and, per class index, the std map and its summary
 * @example
 * const r = fullMcStatistics(head, runs, { method: 'xgradcam', classes: [2], probability: 'softmax' });
 */
export function fullMcStatistics(
  head: CompiledHead,
  samples: readonly FullMcSample[],
  opts: { method: CamMethod; classes: readonly number[]; probability: ProbabilityMode; pixelStd?: boolean },
): { statistics: McStatistics; std: Map<number, { std: Float64Array; summary: StdSummary }> } {
  const probs: Float64Array[] = [];
  const maps = new Map<number, Float64Array[]>(opts.classes.map((c) => [c, []]));
  // for a pooling + linear head, the normalised Grad-CAM map of a sample is the CAM of its masked classifier
  const method = opts.method === 'cam' ? 'gradcam' : opts.method;
  for (const s of samples) {
    const trace = forwardHead(head, s.activation, s.masks ? { masks: s.masks } : {});
    probs.push(toProbabilities(trace.output.data, opts.probability));
    if (opts.pixelStd === false) continue;
    const [, C = 1, h = 1, w = 1] = s.activation.shape;
    for (const c of opts.classes) {
      const g = backwardHead(head, trace, c);
      maps.get(c)!.push(computeCam(method, { activation: s.activation.data, gradient: g, channels: C, height: h, width: w }).normalized);
    }
  }
  const statistics = opts.probability === 'sigmoid' ? mcStatisticsMultiLabel(probs) : mcStatistics(probs);
  const std = new Map<number, { std: Float64Array; summary: StdSummary }>();
  if (opts.pixelStd !== false) for (const [c, m] of maps) {
    const s = pixelStd(m);
    std.set(c, { std: s, summary: summarizeStd(s) });
  }
  return { statistics, std };
}
