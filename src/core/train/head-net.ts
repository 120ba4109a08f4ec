/**
 * The trainable classifier head of `medmask train-head`: pooled features → dropout → linear, or
 * pooled features → dropout → linear → ReLU → dropout → linear, with a class-weighted softmax
 * cross-entropy loss and L2 weight decay, and its exact gradient (hand-written backward pass).
 *
 * Why hand-written: no maintained TypeScript library trains even this on CPU at a usable speed
 * here — TensorFlow.js CPU needs ~1.5 s per 64×64 image for a tiny CNN, `@tensorflow/tfjs-node`
 * cannot install (it downloads libtensorflow at install time), tfjs-wasm lacks the backward convs.
 * The head is a few small matrix products, so plain loops over Float64Array train it in
 * milliseconds per epoch; the backbone stays frozen and runs once per image in onnxruntime.
 *
 * Layout: features are row-major `n × inputs`; a layer's weights are row-major `rows × cols`
 * (output × input, as torch.nn.Linear and ONNX Gemm with transB = 1). Pure functions, no Node APIs.
 * @module
 */
import { MedmaskError } from '../errors.js';

/** Sizes of a head. */
export interface HeadShape {
  /** Input features (channels of the pooled target activation). */
  inputs: number;
  /** Units of the hidden layer; 0 = no hidden layer (one linear layer). */
  hidden: number;
  /** Output classes. */
  classes: number;
}

/** One linear layer: views into {@link HeadParams.data}. */
export interface LinearLayer {
  /** Weights, row-major `rows × cols` (out × in). */
  w: Float64Array;
  /** Bias, `rows`. */
  b: Float64Array;
  /** Output units. */
  rows: number;
  /** Input units. */
  cols: number;
}

/** All parameters of a head in one flat vector (so an optimiser treats them as one), with views. */
export interface HeadParams {
  shape: HeadShape;
  /** Every parameter; the layers' `w` and `b` are views into it. */
  data: Float64Array;
  /** The linear layers, input side first (1 or 2). */
  layers: LinearLayer[];
  /** Per parameter: 1 where weight decay applies (weights), 0 where it does not (biases). */
  decayMask: Float64Array;
}

function checkShape(s: HeadShape): void {
  for (const [k, v] of Object.entries(s)) {
    if (!Number.isInteger(v) || v < 0) throw new MedmaskError('USAGE', `head ${k} must be a non-negative integer, got ${v}`);
  }
  if (s.inputs < 1) throw new MedmaskError('USAGE', `a head needs at least one input feature, got ${s.inputs}`);
  if (s.classes < 2) throw new MedmaskError('USAGE', `a classifier head needs at least 2 classes, got ${s.classes}`);
}

/**
 * Parameters of a head, laid out in one vector, all zero.
 * @param shape - inputs, hidden units (0 = none), classes
 * @returns the parameters
 * @example
 * const p = allocHeadParams({ inputs: 512, hidden: 0, classes: 3 }); // p.layers[0].w: 3 × 512
 */
export function allocHeadParams(shape: HeadShape): HeadParams {
  checkShape(shape);
  const dims: [number, number][] = shape.hidden > 0
    ? [[shape.hidden, shape.inputs], [shape.classes, shape.hidden]]
    : [[shape.classes, shape.inputs]];
  const total = dims.reduce((a, [r, c]) => a + r * c + r, 0);
  const data = new Float64Array(total);
  const decayMask = new Float64Array(total);
  const layers: LinearLayer[] = [];
  let off = 0;
  for (const [rows, cols] of dims) {
    const w = data.subarray(off, off + rows * cols);
    decayMask.fill(1, off, off + rows * cols);
    off += rows * cols;
    const b = data.subarray(off, off + rows);
    off += rows;
    layers.push({ w, b, rows, cols });
  }
  return { shape: { ...shape }, data, layers, decayMask };
}

/**
 * A freshly initialised head, as torch.nn.Linear initialises: weights and biases uniform in
 * ±1/√fan_in.
 * @param shape - inputs, hidden units, classes
 * @param rand - uniform [0, 1) source (seeded, e.g. `mulberry32(seed)`)
 * @returns the parameters
 * @example
 * const p = initHeadParams({ inputs: 64, hidden: 32, classes: 2 }, mulberry32(0));
 */
export function initHeadParams(shape: HeadShape, rand: () => number): HeadParams {
  const p = allocHeadParams(shape);
  for (const l of p.layers) {
    const bound = 1 / Math.sqrt(l.cols);
    for (let i = 0; i < l.w.length; i++) l.w[i] = (2 * rand() - 1) * bound;
    for (let i = 0; i < l.b.length; i++) l.b[i] = (2 * rand() - 1) * bound;
  }
  return p;
}

/**
 * A deep copy of head parameters (views rebuilt on the copy).
 * @param p - parameters
 * @returns an independent copy
 * @example
 * const best = cloneHeadParams(params);
 */
export function cloneHeadParams(p: HeadParams): HeadParams {
  const q = allocHeadParams(p.shape);
  q.data.set(p.data);
  return q;
}

/**
 * y (n × rows) = x (n × cols) · Wᵀ + b. Four samples share each pass over a weight row (register
 * blocking): W is read n/4 times instead of n times, which is what bounds the speed for wide
 * layers (2048 → 256 on a ResNet50 backbone).
 */
function linearForward(x: Float64Array, n: number, l: LinearLayer): Float64Array {
  const { w, b, rows, cols } = l;
  const y = new Float64Array(n * rows);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const x0 = i * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
    for (let r = 0; r < rows; r++) {
      const wo = r * cols;
      // two accumulators per sample (even / odd k) keep eight independent add chains in flight
      let s0 = b[r]!, s1 = s0, s2 = s0, s3 = s0, t0 = 0, t1 = 0, t2 = 0, t3 = 0;
      let k = 0;
      for (; k + 2 <= cols; k += 2) {
        const wk = w[wo + k]!, wl = w[wo + k + 1]!;
        s0 += x[x0 + k]! * wk;
        s1 += x[x1 + k]! * wk;
        s2 += x[x2 + k]! * wk;
        s3 += x[x3 + k]! * wk;
        t0 += x[x0 + k + 1]! * wl;
        t1 += x[x1 + k + 1]! * wl;
        t2 += x[x2 + k + 1]! * wl;
        t3 += x[x3 + k + 1]! * wl;
      }
      if (k < cols) {
        const wk = w[wo + k]!;
        s0 += x[x0 + k]! * wk;
        s1 += x[x1 + k]! * wk;
        s2 += x[x2 + k]! * wk;
        s3 += x[x3 + k]! * wk;
      }
      y[i * rows + r] = s0 + t0;
      y[(i + 1) * rows + r] = s1 + t1;
      y[(i + 2) * rows + r] = s2 + t2;
      y[(i + 3) * rows + r] = s3 + t3;
    }
  }
  for (; i < n; i++) {
    const xo = i * cols;
    for (let r = 0; r < rows; r++) {
      const wo = r * cols;
      let s0 = b[r]!;
      for (let k = 0; k < cols; k++) s0 += x[xo + k]! * w[wo + k]!;
      y[i * rows + r] = s0;
    }
  }
  return y;
}

/** Intermediate values of a forward pass over a batch. */
export interface HeadForward {
  /** Logits, n × classes. */
  logits: Float64Array;
  /** Hidden layer after ReLU and dropout (n × hidden); absent without a hidden layer. */
  hidden?: Float64Array;
  /** Hidden layer before the ReLU (n × hidden). */
  hiddenPre?: Float64Array;
}

/**
 * Forward pass over a batch of features.
 * @param p - parameters
 * @param x - features, row-major n × inputs (already dropped out / standardised as the caller wants)
 * @param n - batch size
 * @param hiddenMask - optional multiplicative dropout mask on the hidden layer (n × hidden,
 *   entries 0 or 1/(1 − rate))
 * @returns logits and the hidden activations
 * @example
 * const { logits } = headForward(params, features, 16);
 */
export function headForward(p: HeadParams, x: Float64Array, n: number, hiddenMask?: Float64Array): HeadForward {
  if (x.length !== n * p.shape.inputs) {
    throw new MedmaskError('USAGE', `features hold ${x.length} values, expected ${n} × ${p.shape.inputs}`);
  }
  if (p.layers.length === 1) return { logits: linearForward(x, n, p.layers[0]!) };
  const pre = linearForward(x, n, p.layers[0]!);
  const h = new Float64Array(pre.length);
  if (hiddenMask && hiddenMask.length !== pre.length) {
    throw new MedmaskError('USAGE', `hidden dropout mask has ${hiddenMask.length} values, expected ${pre.length}`);
  }
  for (let i = 0; i < pre.length; i++) h[i] = (pre[i]! > 0 ? pre[i]! : 0) * (hiddenMask ? hiddenMask[i]! : 1);
  return { logits: linearForward(h, n, p.layers[1]!), hidden: h, hiddenPre: pre };
}

/** Row-wise softmax of n × k logits (numerically stable). */
export function softmaxRows(logits: Float64Array, k: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let o = 0; o < logits.length; o += k) {
    let mx = -Infinity;
    for (let j = 0; j < k; j++) mx = Math.max(mx, logits[o + j]!);
    let s = 0;
    for (let j = 0; j < k; j++) s += out[o + j] = Math.exp(logits[o + j]! - mx);
    for (let j = 0; j < k; j++) out[o + j]! /= s;
  }
  return out;
}

/** Options for {@link headLoss}. */
export interface HeadLossOptions {
  /** Weight of each class in the cross-entropy (default all 1). */
  classWeights?: ArrayLike<number>;
  /** L2 penalty λ: the loss gets (λ/2)·Σ w² over weights (not biases), i.e. λ·w in the gradient. */
  weightDecay?: number;
  /** Dropout mask on the hidden layer (see {@link headForward}). */
  hiddenMask?: Float64Array;
  /** Compute the gradient (default true). */
  gradient?: boolean;
}

/** Loss, gradient and probabilities of one batch. */
export interface HeadLossResult {
  /** Σ_i w_{y_i} CE_i / Σ_i w_{y_i} + (λ/2)·‖W‖². */
  loss: number;
  /** The cross-entropy part alone (without the penalty). */
  dataLoss: number;
  /** ∂loss/∂params, laid out as {@link HeadParams.data}; empty when `gradient: false`. */
  grad: Float64Array;
  /** Softmax probabilities, n × classes. */
  probabilities: Float64Array;
}

/**
 * Class-weighted softmax cross-entropy with L2 weight decay, and its exact gradient with respect
 * to every parameter. The cross-entropy is the weighted mean over the batch, as
 * `torch.nn.CrossEntropyLoss(weight=…)` computes it: Σ_i w_{y_i}·(−ln p_{i,y_i}) / Σ_i w_{y_i}.
 * @param p - parameters
 * @param x - features, n × inputs
 * @param labels - class index per row
 * @param opts - class weights, weight decay, hidden dropout mask
 * @returns loss, gradient and probabilities
 * @throws MedmaskError USAGE for a label outside 0…classes−1
 * @example
 * const { loss, grad } = headLoss(params, x, Int32Array.of(0, 1, 1), { weightDecay: 1e-4 });
 */
export function headLoss(p: HeadParams, x: Float64Array, labels: ArrayLike<number>, opts: HeadLossOptions = {}): HeadLossResult {
  const n = labels.length;
  const K = p.shape.classes;
  const fw = headForward(p, x, n, opts.hiddenMask);
  const prob = softmaxRows(fw.logits, K);
  const cw = opts.classWeights;
  if (cw && cw.length !== K) throw new MedmaskError('USAGE', `${cw.length} class weights for ${K} classes`);
  let wsum = 0;
  let ce = 0;
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    if (!Number.isInteger(y) || y < 0 || y >= K) throw new MedmaskError('USAGE', `label ${y} of row ${i} is outside 0…${K - 1}`);
    const wi = cw ? cw[y]! : 1;
    wsum += wi;
    ce -= wi * Math.log(Math.max(prob[i * K + y]!, 1e-300));
  }
  const dataLoss = n && wsum > 0 ? ce / wsum : 0;
  const lambda = opts.weightDecay ?? 0;
  let penalty = 0;
  if (lambda) for (let i = 0; i < p.data.length; i++) if (p.decayMask[i]) penalty += p.data[i]! * p.data[i]!;
  const loss = dataLoss + 0.5 * lambda * penalty;
  if (opts.gradient === false) return { loss, dataLoss, grad: new Float64Array(0), probabilities: prob };

  const grad = new Float64Array(p.data.length);
  const views = viewsOver(p, grad);
  // ∂CE/∂logits = w_{y_i} (p_i − onehot(y_i)) / Σw
  const dz = new Float64Array(n * K);
  if (wsum > 0) {
    for (let i = 0; i < n; i++) {
      const y = labels[i]!;
      const s = (cw ? cw[y]! : 1) / wsum;
      for (let j = 0; j < K; j++) dz[i * K + j] = s * (prob[i * K + j]! - (j === y ? 1 : 0));
    }
  }
  const last = p.layers.length - 1;
  const inputOfLast = last === 0 ? x : fw.hidden!;
  const dh = linearBackward(inputOfLast, n, p.layers[last]!, dz, views[last]!, last > 0);
  if (last === 1) {
    const pre = fw.hiddenPre!;
    const mask = opts.hiddenMask;
    for (let i = 0; i < dh!.length; i++) dh![i] = pre[i]! > 0 ? dh![i]! * (mask ? mask[i]! : 1) : 0;
    linearBackward(x, n, p.layers[0]!, dh!, views[0]!, false);
  }
  if (lambda) for (let i = 0; i < grad.length; i++) if (p.decayMask[i]) grad[i]! += lambda * p.data[i]!;
  return { loss, dataLoss, grad, probabilities: prob };
}

/** Layer views over another vector with the same layout as `p.data`. */
function viewsOver(p: HeadParams, v: Float64Array): LinearLayer[] {
  const out: LinearLayer[] = [];
  let off = 0;
  for (const l of p.layers) {
    const w = v.subarray(off, off + l.rows * l.cols);
    off += l.rows * l.cols;
    const b = v.subarray(off, off + l.rows);
    off += l.rows;
    out.push({ w, b, rows: l.rows, cols: l.cols });
  }
  return out;
}

/**
 * Accumulate ∂W, ∂b of y = x Wᵀ + b given ∂y; return ∂x when asked. Blocked by four samples as
 * {@link linearForward}.
 */
function linearBackward(x: Float64Array, n: number, l: LinearLayer, dy: Float64Array, g: LinearLayer, wantDx: boolean): Float64Array | undefined {
  const { rows, cols, w } = l;
  const gw = g.w;
  const dx = wantDx ? new Float64Array(n * cols) : undefined;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const x0 = i * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
    for (let r = 0; r < rows; r++) {
      const d0 = dy[i * rows + r]!, d1 = dy[(i + 1) * rows + r]!, d2 = dy[(i + 2) * rows + r]!, d3 = dy[(i + 3) * rows + r]!;
      if (d0 === 0 && d1 === 0 && d2 === 0 && d3 === 0) continue;
      g.b[r]! += d0 + d1 + d2 + d3;
      const wo = r * cols;
      for (let k = 0; k < cols; k++) gw[wo + k]! += d0 * x[x0 + k]! + d1 * x[x1 + k]! + d2 * x[x2 + k]! + d3 * x[x3 + k]!;
      if (dx) {
        for (let k = 0; k < cols; k++) {
          const wk = w[wo + k]!;
          dx[x0 + k]! += d0 * wk;
          dx[x1 + k]! += d1 * wk;
          dx[x2 + k]! += d2 * wk;
          dx[x3 + k]! += d3 * wk;
        }
      }
    }
  }
  for (; i < n; i++) {
    const xo = i * cols;
    for (let r = 0; r < rows; r++) {
      const d = dy[i * rows + r]!;
      if (d === 0) continue;
      g.b[r]! += d;
      const wo = r * cols;
      for (let k = 0; k < cols; k++) gw[wo + k]! += d * x[xo + k]!;
      if (dx) for (let k = 0; k < cols; k++) dx[xo + k]! += d * w[wo + k]!;
    }
  }
  return dx;
}

/**
 * Fold a per-feature standardisation z = (x − mean) / std into the first layer, so the head takes
 * raw pooled features: W' = W / std (column-wise), b' = b − W'·mean. The result computes exactly
 * what the head computed on standardised features.
 * @param p - parameters trained on standardised features
 * @param mean - per-feature mean
 * @param std - per-feature standard deviation (> 0)
 * @returns new parameters for raw features
 * @example
 * const exported = foldStandardization(best, stats.mean, stats.std);
 */
export function foldStandardization(p: HeadParams, mean: ArrayLike<number>, std: ArrayLike<number>): HeadParams {
  const q = cloneHeadParams(p);
  const l = q.layers[0]!;
  if (mean.length !== l.cols || std.length !== l.cols) {
    throw new MedmaskError('USAGE', `standardisation has ${mean.length} means and ${std.length} stds for ${l.cols} features`);
  }
  for (let r = 0; r < l.rows; r++) {
    let shift = 0;
    for (let k = 0; k < l.cols; k++) {
      const v = l.w[r * l.cols + k]! / std[k]!;
      l.w[r * l.cols + k] = v;
      shift += v * mean[k]!;
    }
    l.b[r]! -= shift;
  }
  return q;
}
