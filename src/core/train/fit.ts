/**
 * The training loop of `medmask train-head`: mini-batch Adam on the class-weighted cross-entropy
 * of a {@link HeadParams} head over cached pooled features, dropout on the pooled features (and on
 * the hidden layer), L2 weight decay, a seeded stratified validation split and early stopping on
 * the validation loss (the best epoch's weights are kept). Everything is seeded: the same inputs
 * and options give the same head, bit for bit.
 *
 * Features are standardised per channel with the training rows' mean and standard deviation
 * (random or ImageNet backbones give channels of very different scales and offsets), and dropout
 * acts on the standardised features. The exported head keeps that order — GlobalAveragePool →
 * Flatten → Sub(mean) → Div(std) → Dropout → Gemm … — so medmask's head Monte Carlo Dropout samples
 * masks exactly where training did. (Dropout on the raw pooled features, with the standardisation
 * folded into the first layer, was tried: pooled ReLU features have a large mean next to a small
 * spread, so dropping one shifts the input by many standard deviations; on the striped-disc test
 * task the held-out AUROC fell from ≈1.0 to ≈0.93.) {@link FitHeadResult.rawParams} is the same
 * head with the standardisation folded in ({@link foldStandardization}), for raw features.
 * @module
 */
import { MedmaskError } from '../errors.js';
import { mulberry32 } from '../random.js';
import { adamStep, createAdamState } from './adam.js';
import { cloneHeadParams, foldStandardization, headLoss, initHeadParams, type HeadParams } from './head-net.js';
import { accuracy, argmaxRows, balancedAccuracy, confusionMatrix, multiclassAuroc, type MulticlassAuroc } from './metrics.js';
import { balancedClassWeights, classCounts, featureStats, shuffleInPlace, stratifiedSplit, type FeatureStats, type Split } from './split.js';

/** The data a head is trained on. */
export interface FitHeadData {
  /** Pooled features, row-major rows × dim. */
  features: ArrayLike<number>;
  /** Features per row (channels of the target activation). */
  dim: number;
  /** Class index per row. */
  labels: ArrayLike<number>;
  /** Number of classes. */
  classes: number;
}

/** Options for {@link fitHead}; defaults as `medmask train-head`. */
export interface FitHeadOptions {
  /** Hidden units; 0 (default) = one linear layer. */
  hidden?: number;
  /** Dropout rate on the pooled features and the hidden layer (default 0.3). */
  dropout?: number;
  /** Maximum epochs (default 100). */
  epochs?: number;
  /** Adam learning rate (default 1e-3). */
  lr?: number;
  /** L2 weight decay λ (default 1e-4). */
  weightDecay?: number;
  /** Validation share per class when `split` is not given (default 0.2). */
  val?: number;
  /** Explicit train / validation rows (overrides `val`). */
  split?: Split;
  /** Epochs without a lower validation loss before stopping; 0 = never stop early (default 10). */
  patience?: number;
  /** Seed of the split, initialisation, shuffling and dropout (default 0). */
  seed?: number;
  /** Mini-batch size (default 32). */
  batch?: number;
  /** 'balanced' (default): n / (k · n_c) from the training rows; 'none'; or one weight per class. */
  classWeights?: 'balanced' | 'none' | ArrayLike<number>;
  /** Called after every epoch; may throw to abort. */
  onEpoch?: (e: EpochRecord) => void;
  /** Polled between epochs; true stops training (an error is thrown by the caller's choice). */
  shouldStop?: () => boolean;
}

/** One epoch of the loss curve. */
export interface EpochRecord {
  /** 1-based epoch. */
  epoch: number;
  /** Mean class-weighted cross-entropy over the epoch's mini-batches (dropout on, no penalty). */
  trainLoss: number;
  /** Class-weighted cross-entropy on the validation rows (dropout off); NaN without validation. */
  valLoss: number;
  /** Validation accuracy; NaN without validation. */
  valAccuracy: number;
  /** True when this epoch has the lowest validation loss so far (its weights are kept). */
  best: boolean;
}

/** Metrics of a head on a set of rows. */
export interface HeadEvaluation {
  /** Rows evaluated (indices into the data). */
  rows: Int32Array;
  /** Probabilities, rows × classes. */
  probabilities: Float64Array;
  /** Predicted class per row. */
  predicted: Int32Array;
  /** True class per row. */
  labels: Int32Array;
  /** Class-weighted cross-entropy. */
  loss: number;
  accuracy: number;
  balancedAccuracy: number;
  auroc: MulticlassAuroc;
  /** Rows = true class, columns = predicted. */
  confusion: number[][];
}

/** Result of {@link fitHead}. */
export interface FitHeadResult {
  /** The head as trained: it takes standardised features (x − stats.mean) / stats.std. */
  params: HeadParams;
  /** Per-feature mean and standard deviation of the training rows (the standardisation). */
  stats: FeatureStats;
  /** The same head for raw pooled features (standardisation folded into the first layer). */
  rawParams: HeadParams;
  split: Split;
  classWeights: Float64Array;
  history: EpochRecord[];
  /** Epoch whose weights were kept (1-based; the last one without validation). */
  bestEpoch: number;
  epochsRun: number;
  /** True when early stopping ended training before `epochs`. */
  stoppedEarly: boolean;
  /** Metrics of the kept head on the validation rows (undefined when there are none). */
  validation?: HeadEvaluation;
  /** Metrics of the kept head on the training rows. */
  training: HeadEvaluation;
}

function checkData(d: FitHeadData): number {
  const n = d.labels.length;
  if (!Number.isInteger(d.dim) || d.dim < 1) throw new MedmaskError('USAGE', `feature dimension must be a positive integer, got ${d.dim}`);
  if (d.features.length !== n * d.dim) {
    throw new MedmaskError('USAGE', `${d.features.length} feature values for ${n} rows × ${d.dim} features`);
  }
  for (let i = 0; i < n; i++) {
    const y = d.labels[i]!;
    if (!Number.isInteger(y) || y < 0 || y >= d.classes) throw new MedmaskError('USAGE', `label ${y} of row ${i} is outside 0…${d.classes - 1}`);
  }
  const present = classCounts(d.labels, d.classes).filter((c) => c > 0).length;
  if (present < 2) {
    throw new MedmaskError('DATASET_INVALID', `the labels hold ${present} class${present === 1 ? '' : 'es'}; a classifier needs examples of at least 2`, {
      hint: 'add images of the other class(es)',
    });
  }
  return n;
}

/** z = m ⊙ (x − μ) / σ for the given rows: x/σ pre-scaled in `xs`, μ/σ in `c`. */
function gatherRows(xs: Float64Array, c: Float64Array, dim: number, rows: ArrayLike<number>, mask?: Float64Array): Float64Array {
  const out = new Float64Array(rows.length * dim);
  for (let r = 0; r < rows.length; r++) {
    const src = rows[r]! * dim;
    const dst = r * dim;
    if (mask) for (let k = 0; k < dim; k++) out[dst + k] = mask[dst + k]! * (xs[src + k]! - c[k]!);
    else for (let k = 0; k < dim; k++) out[dst + k] = xs[src + k]! - c[k]!;
  }
  return out;
}

function dropoutMaskInto(m: Float64Array, rate: number, rand: () => number): Float64Array {
  const keep = 1 / (1 - rate);
  for (let i = 0; i < m.length; i++) m[i] = rand() < rate ? 0 : keep;
  return m;
}

/** Evaluate head parameters on rows of standardised features. */
function evaluate(p: HeadParams, xs: Float64Array, c: Float64Array, dim: number, labels: ArrayLike<number>, rows: Int32Array, cw: ArrayLike<number>): HeadEvaluation {
  const K = p.shape.classes;
  const y = Int32Array.from(rows, (r) => labels[r]!);
  const z = gatherRows(xs, c, dim, rows);
  const r = headLoss(p, z, y, { classWeights: cw, gradient: false });
  const predicted = argmaxRows(r.probabilities, K);
  return {
    rows,
    probabilities: r.probabilities,
    predicted,
    labels: y,
    loss: r.dataLoss,
    accuracy: accuracy(predicted, y),
    balancedAccuracy: balancedAccuracy(predicted, y, K),
    auroc: multiclassAuroc(r.probabilities, y, K),
    confusion: confusionMatrix(predicted, y, K),
  };
}

/**
 * Train a head on pooled features with Adam, weight decay, class weights, a seeded validation
 * split and early stopping.
 * @param data - features, labels, number of classes
 * @param opts - hyper-parameters (see {@link FitHeadOptions})
 * @returns the trained head with its standardisation, its loss curve and validation metrics
 * @throws MedmaskError DATASET_INVALID when fewer than 2 classes have rows; USAGE for bad options
 * @example
 * const r = fitHead({ features, dim: 512, labels, classes: 3 }, { seed: 0, hidden: 0 });
 * console.log(r.validation?.accuracy, r.bestEpoch);
 */
export function fitHead(data: FitHeadData, opts: FitHeadOptions = {}): FitHeadResult {
  const it = fitHeadSteps(data, opts);
  for (;;) {
    const r = it.next();
    if (r.done) return r.value;
  }
}

/**
 * {@link fitHead} one epoch at a time: a generator that yields each epoch's record and returns
 * the result. A caller can await between epochs (so a Node process stays responsive to Ctrl-C
 * during a long training) without the core knowing about event loops.
 * @param data - features, labels, number of classes
 * @param opts - hyper-parameters (see {@link FitHeadOptions})
 * @returns a generator of epoch records whose return value is the result
 * @example
 * const it = fitHeadSteps(data, opts);
 * let r = it.next();
 * while (!r.done) { await new Promise((ok) => setImmediate(ok)); r = it.next(); }
 * const result = r.value;
 */
export function* fitHeadSteps(data: FitHeadData, opts: FitHeadOptions = {}): Generator<EpochRecord, FitHeadResult, void> {
  const n = checkData(data);
  const K = data.classes;
  const dim = data.dim;
  const hidden = opts.hidden ?? 0;
  const rate = opts.dropout ?? 0.3;
  const epochs = opts.epochs ?? 100;
  const lr = opts.lr ?? 1e-3;
  const wd = opts.weightDecay ?? 1e-4;
  const patience = opts.patience ?? 10;
  const batch = opts.batch ?? 32;
  const seed = opts.seed ?? 0;
  if (!(rate >= 0 && rate < 1)) throw new MedmaskError('USAGE', `dropout ${rate} must be in [0, 1)`, { hint: 'e.g. --dropout 0.3' });
  if (!Number.isInteger(epochs) || epochs < 1) throw new MedmaskError('USAGE', `epochs must be a positive integer, got ${epochs}`);
  if (!Number.isInteger(batch) || batch < 1) throw new MedmaskError('USAGE', `batch size must be a positive integer, got ${batch}`);
  if (!(wd >= 0)) throw new MedmaskError('USAGE', `weight decay must be ≥ 0, got ${wd}`);
  if (!Number.isInteger(patience) || patience < 0) throw new MedmaskError('USAGE', `patience must be a non-negative integer, got ${patience}`);

  // independent seeded streams, so e.g. changing the dropout rate leaves the split unchanged
  const splitRand = mulberry32(seed * 4 + 1);
  const initRand = mulberry32(seed * 4 + 2);
  const shuffleRand = mulberry32(seed * 4 + 3);
  const dropRand = mulberry32(seed * 4 + 4);

  const split = opts.split ?? stratifiedSplit(data.labels, K, opts.val ?? 0.2, splitRand);
  if (!split.train.length) throw new MedmaskError('DATASET_INVALID', 'no rows left for training after the validation split', { hint: 'lower --val' });
  const trainLabels = Int32Array.from(split.train, (r) => data.labels[r]!);
  if (classCounts(trainLabels, K).filter((c) => c > 0).length < 2) {
    throw new MedmaskError('DATASET_INVALID', 'the training rows hold only one class after the validation split', { hint: 'add images, or lower --val' });
  }
  const cwOpt = opts.classWeights ?? 'balanced';
  const classWeights = cwOpt === 'balanced'
    ? balancedClassWeights(trainLabels, K)
    : cwOpt === 'none' ? new Float64Array(K).fill(1) : Float64Array.from(cwOpt);
  if (classWeights.length !== K) throw new MedmaskError('USAGE', `${classWeights.length} class weights for ${K} classes`);

  const stats = featureStats(data.features, dim, split.train);
  const xs = new Float64Array(n * dim);
  for (let i = 0; i < n; i++) for (let k = 0; k < dim; k++) xs[i * dim + k] = data.features[i * dim + k]! / stats.std[k]!;
  const c = Float64Array.from(stats.mean, (m, k) => m / stats.std[k]!);

  const params = initHeadParams({ inputs: dim, hidden, classes: K }, initRand);
  const adam = createAdamState(params.data.length);
  let best = cloneHeadParams(params);
  let bestLoss = Infinity;
  let bestEpoch = 0;
  let sinceBest = 0;
  const history: EpochRecord[] = [];
  const order = Int32Array.from(split.train);
  const inMask = new Float64Array(batch * dim);
  const hidMask = new Float64Array(batch * hidden);
  let stoppedEarly = false;
  let epoch = 0;
  for (epoch = 1; epoch <= epochs; epoch++) {
    if (opts.shouldStop?.()) break;
    shuffleInPlace(order, shuffleRand);
    let lossSum = 0;
    let weightSum = 0;
    for (let s = 0; s < order.length; s += batch) {
      const rows = order.subarray(s, Math.min(s + batch, order.length));
      const m = rows.length;
      const im = rate > 0 ? dropoutMaskInto(inMask.subarray(0, m * dim), rate, dropRand) : undefined;
      const hm = rate > 0 && hidden > 0 ? dropoutMaskInto(hidMask.subarray(0, m * hidden), rate, dropRand) : undefined;
      const z = gatherRows(xs, c, dim, rows, im);
      const y = Int32Array.from(rows, (r) => data.labels[r]!);
      const r = headLoss(params, z, y, { classWeights, weightDecay: wd, ...(hm ? { hiddenMask: hm } : {}) });
      adamStep(adam, params.data, r.grad, { lr });
      let bw = 0;
      for (const yi of y) bw += classWeights[yi]!;
      lossSum += r.dataLoss * bw;
      weightSum += bw;
    }
    const trainLoss = weightSum ? lossSum / weightSum : NaN;
    let valLoss = NaN;
    let valAccuracy = NaN;
    let isBest = false;
    if (split.val.length) {
      const ev = evaluate(params, xs, c, dim, data.labels, split.val, classWeights);
      valLoss = ev.loss;
      valAccuracy = ev.accuracy;
      if (valLoss < bestLoss) {
        bestLoss = valLoss;
        bestEpoch = epoch;
        best = cloneHeadParams(params);
        sinceBest = 0;
        isBest = true;
      } else sinceBest++;
    } else {
      best = cloneHeadParams(params);
      bestEpoch = epoch;
      isBest = true;
    }
    const rec: EpochRecord = { epoch, trainLoss, valLoss, valAccuracy, best: isBest };
    history.push(rec);
    opts.onEpoch?.(rec);
    yield rec;
    if (patience > 0 && split.val.length && sinceBest >= patience) {
      stoppedEarly = epoch < epochs;
      break;
    }
  }
  const epochsRun = history.length;
  if (!epochsRun) throw new MedmaskError('USAGE', 'training stopped before the first epoch');
  const validation = split.val.length ? evaluate(best, xs, c, dim, data.labels, split.val, classWeights) : undefined;
  const training = evaluate(best, xs, c, dim, data.labels, split.train, classWeights);
  return {
    params: best,
    stats,
    rawParams: foldStandardization(best, stats.mean, stats.std),
    split,
    classWeights,
    history,
    bestEpoch,
    epochsRun,
    stoppedEarly,
    ...(validation ? { validation } : {}),
    training,
  };
}
