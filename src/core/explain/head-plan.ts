/**
 * The fast path for the heads real classifiers have — pointwise ops (ReLU, BatchNorm, sigmoid,
 * per-channel affine) → global pooling → reshapes → [dropout site] → one linear layer (Gemm, or
 * MatMul + Add) — used by `explainActivation` for CAMs and head Monte Carlo Dropout.
 *
 * Why it is fast, and still exact:
 * - Before the site each pooled feature f_k depends on channel k of the activation only, so the
 *   gradient of a class score is G_kij = g_k · H_kij, with g = ∂y_c/∂f and H_kij = ∂f_k/∂A_kij
 *   fixed for the image. Grad-CAM and XGrad-CAM weights are linear in G, hence w_k = g_k · d_k
 *   with d_k computed once per image (XGrad-CAM: d_k = Σ_ij H_kij A_kij / (Σ_ij A_kij + ε)).
 * - A dropout sample t multiplies f by m_t ∈ {0, s}^C (s = 1/(1 − p)); through a linear layer
 *   y_t = s (W f − Σ_{k dropped} f_k W_{·k}) + b: the T samples cost T·p·C·N multiply-adds, not
 *   T·C·N, and their class gradients are g_t = s · m_t ⊙ W_c.
 * - The map of sample t before its ReLU is P_t = s (P − Σ_{k dropped} u_k A_k) with u = W_c ⊙ d
 *   and P the deterministic map: again only the dropped channels are touched.
 * All of it in float32 buffers allocated once per call; per-sample maps are formed only when the
 * per-pixel std is asked for. Grad-CAM++ (non-linear in G) and other tails take the general route
 * through the same masks, so every path gives the same numbers as `headMonteCarlo`.
 * @module
 */
import { MedmaskError } from '../errors.js';
import { GRADCAMPP_EPS, XGRADCAM_EPS, type CamMethod } from './cam.js';
import { backwardHead, compileHead, forwardHead, type CompiledHead, type HeadNodeDesc, type HeadTensor } from './head.js';

/** A per-channel affine or pointwise op before the pooling. */
type PointOp = { kind: 'relu' } | { kind: 'sigmoid' } | { kind: 'affine'; a: Float64Array; b: Float64Array };

/** The linear classifier after the site: y = alpha · W f + b. */
export interface LinearTail {
  /** N × K, row c = the weights of class c (K contiguous). */
  byClass: Float32Array;
  /** K × N, row k = the weights of feature k for every class (N contiguous). */
  byFeature: Float32Array;
  /** N biases (0 when none). */
  bias: Float64Array;
  classes: number;
  features: number;
}

/** A head split at the dropout site, prepared once per model. */
export interface HeadPlan {
  head: CompiledHead;
  /** The dropout site (pooled features, C values). */
  site: string;
  /** Pointwise ops before the pooling, in order. */
  point: PointOp[];
  /** Pooling kind. */
  pool: 'mean' | 'max';
  /** The part after the site as its own head (target = site). */
  tail: CompiledHead;
  /** Set when the tail is one linear layer. */
  linear?: LinearTail;
  /** Channels C. */
  channels: number;
  /** Shape of the site tensor for one sample, e.g. [1, C]. */
  siteShape: number[];
}

const RESHAPES = new Set(['Flatten', 'Reshape', 'Squeeze', 'Unsqueeze', 'Identity', 'Dropout']);

function constOf(head: CompiledHead, name: string | undefined): HeadTensor | undefined {
  return name ? head.constants.get(name) : undefined;
}

function intsAttr(n: HeadNodeDesc, head: CompiledHead): number[] | undefined {
  const a = n.attrs.axes;
  if (Array.isArray(a)) return a;
  if (typeof a === 'number') return [a];
  const c = constOf(head, n.inputs[1]);
  return c ? Array.from(c.data, Math.round) : undefined;
}

/** Per-channel values of a constant broadcast over [1, C, h, w], or undefined when it varies over space. */
function perChannel(t: HeadTensor, C: number): Float64Array | undefined {
  const n = t.data.length;
  if (n === 1) return new Float64Array(C).fill(t.data[0]!);
  if (n !== C) return undefined;
  const s = t.shape;
  // [C], [C,1,1], [1,C,1,1]: the C values sit on the channel axis (rank-aligned from the right)
  const ok = (s.length === 3 && s[0] === C) || (s.length === 4 && s[1] === C) || (s.length === 1 && C === 1);
  return ok ? Float64Array.from(t.data) : undefined;
}

/**
 * Split a head at its dropout site and check it fits the fast path.
 * @param head - a compiled head
 * @param channels - C of the target activation
 * @param site - the dropout site (the tensor the plan samples masks on)
 * @returns the plan, or undefined when the head has another shape (callers then use the general path)
 * @example
 * const plan = planHead(session.head, 2048, dropoutSite(session.head));
 */
export function planHead(head: CompiledHead, channels: number, site: string): HeadPlan | undefined {
  const nodes = head.nodes;
  let cur = head.target;
  let i = 0;
  const point: PointOp[] = [];
  const C = channels;
  // pointwise chain
  for (; i < nodes.length; i++) {
    const n = nodes[i]!;
    if (n.inputs[0] !== cur && !(n.inputs[1] === cur && (n.op === 'Add' || n.op === 'Mul'))) break;
    const other = n.inputs[0] === cur ? n.inputs[1] : n.inputs[0];
    let op: PointOp | undefined;
    if (n.op === 'Relu') op = { kind: 'relu' };
    else if (n.op === 'Sigmoid') op = { kind: 'sigmoid' };
    else if (n.op === 'Identity' || n.op === 'Dropout') op = { kind: 'affine', a: new Float64Array(C).fill(1), b: new Float64Array(C) };
    else if (n.op === 'BatchNormalization') {
      if (n.attrs.training_mode) return undefined;
      const [sc, bi, mu, va] = [1, 2, 3, 4].map((k) => constOf(head, n.inputs[k]));
      if (!sc || !bi || !mu || !va || sc.data.length !== C) return undefined;
      const eps = typeof n.attrs.epsilon === 'number' ? n.attrs.epsilon : 1e-5;
      const a = new Float64Array(C);
      const b = new Float64Array(C);
      for (let k = 0; k < C; k++) {
        a[k] = sc.data[k]! / Math.sqrt(va.data[k]! + eps);
        b[k] = bi.data[k]! - mu.data[k]! * a[k]!;
      }
      op = { kind: 'affine', a, b };
    } else if (n.op === 'Add' || n.op === 'Sub' || n.op === 'Mul' || n.op === 'Div') {
      const c = constOf(head, other);
      const v = c && perChannel(c, C);
      if (!v) return undefined;
      const first = n.inputs[0] === cur;
      if (n.op === 'Add') op = { kind: 'affine', a: new Float64Array(C).fill(1), b: v };
      else if (n.op === 'Sub') op = first ? { kind: 'affine', a: new Float64Array(C).fill(1), b: v.map((x) => -x) } : { kind: 'affine', a: new Float64Array(C).fill(-1), b: v };
      else if (n.op === 'Mul') op = { kind: 'affine', a: v, b: new Float64Array(C) };
      else if (first) op = { kind: 'affine', a: v.map((x) => 1 / x), b: new Float64Array(C) };
      else return undefined; // c / x is not affine
    } else break;
    point.push(op);
    cur = n.outputs[0]!;
  }
  // global pooling over H, W
  const p = nodes[i];
  if (!p || p.inputs[0] !== cur) return undefined;
  let pool: 'mean' | 'max';
  if (p.op === 'GlobalAveragePool') pool = 'mean';
  else if (p.op === 'GlobalMaxPool') pool = 'max';
  else if (p.op === 'ReduceMean') {
    const ax = intsAttr(p, head)?.map((a) => (a < 0 ? a + 4 : a)).sort();
    if (!ax || ax.join() !== '2,3') return undefined;
    pool = 'mean';
  } else return undefined;
  const pooled = p.outputs[0]!;
  const keepdims = p.op !== 'ReduceMean' || p.attrs.keepdims === undefined || p.attrs.keepdims !== 0;
  cur = pooled;
  i++;
  // reshapes up to the site
  const reshapes: HeadNodeDesc[] = [];
  while (cur !== site) {
    const n = nodes[i];
    if (!n || !RESHAPES.has(n.op) || n.inputs[0] !== cur) return undefined;
    reshapes.push(n);
    cur = n.outputs[0]!;
    i++;
  }
  let siteShape = keepdims ? [1, C, 1, 1] : [1, C];
  if (reshapes.length) {
    try {
      const consts: Record<string, { dims: number[]; data: Float64Array }> = {};
      for (const n of reshapes) for (const x of n.inputs.slice(1)) if (head.constants.has(x)) consts[x] = { dims: head.constants.get(x)!.shape, data: head.constants.get(x)!.data };
      const sub = compileHead({ target: pooled, output: site, nodes: reshapes.map((n) => ({ ...n })), constants: consts });
      siteShape = forwardHead(sub, { shape: siteShape, data: new Float64Array(C) }).output.shape;
    } catch {
      return undefined;
    }
  }
  const tailNodes = nodes.slice(i);
  // the tail may read only the site, its own tensors and constants
  const known = new Set<string>([site]);
  for (const n of tailNodes) {
    for (const x of n.inputs) if (x !== '' && !known.has(x) && !head.constants.has(x)) return undefined;
    for (const o of n.outputs) known.add(o);
  }
  const constants: Record<string, { dims: number[]; data: Float64Array }> = {};
  for (const n of tailNodes) for (const x of n.inputs) if (head.constants.has(x)) constants[x] = { dims: head.constants.get(x)!.shape, data: head.constants.get(x)!.data };
  let tail: CompiledHead;
  try {
    tail = compileHead({ target: site, output: head.output, nodes: tailNodes.map((n) => ({ ...n })), constants });
  } catch {
    return undefined;
  }
  const plan: HeadPlan = { head, site, point, pool, tail, channels: C, siteShape };
  const lin = linearTail(head, tailNodes, site, C);
  if (lin) plan.linear = lin;
  return plan;
}

/** The tail as one linear layer: Gemm(site, W, b?) or MatMul(site, W) [+ Add b], then Identity only. */
function linearTail(head: CompiledHead, tail: HeadNodeDesc[], site: string, K: number): LinearTail | undefined {
  const core = tail.filter((n) => n.op !== 'Identity');
  const first = core[0];
  if (!first || first.inputs[0] !== site) return undefined;
  const W = constOf(head, first.inputs[1]);
  if (!W || W.shape.length !== 2) return undefined;
  let N: number;
  let byClass: Float32Array;
  let bias: Float64Array;
  let alpha = 1;
  let rest = core.slice(1);
  const fromKN = (w: Float64Array, n: number): Float32Array => {
    const r = new Float32Array(n * K);
    for (let k = 0; k < K; k++) for (let c = 0; c < n; c++) r[c * K + k] = w[k * n + c]!;
    return r;
  };
  if (first.op === 'Gemm') {
    if (first.attrs.transA) return undefined;
    alpha = typeof first.attrs.alpha === 'number' ? first.attrs.alpha : 1;
    const beta = typeof first.attrs.beta === 'number' ? first.attrs.beta : 1;
    const tB = !!first.attrs.transB;
    if ((tB ? W.shape[1] : W.shape[0]) !== K) return undefined;
    N = tB ? W.shape[0]! : W.shape[1]!;
    byClass = tB ? Float32Array.from(W.data) : fromKN(W.data, N);
    const b = constOf(head, first.inputs[2]);
    if (b && b.data.length !== N && b.data.length !== 1) return undefined;
    bias = b ? Float64Array.from({ length: N }, (_, c) => beta * b.data[b.data.length === 1 ? 0 : c]!) : new Float64Array(N);
  } else if (first.op === 'MatMul') {
    if (W.shape[0] !== K) return undefined;
    N = W.shape[1]!;
    byClass = fromKN(W.data, N);
    bias = new Float64Array(N);
    const add = rest[0];
    if (add?.op === 'Add' && add.inputs.includes(first.outputs[0]!)) {
      const b = constOf(head, add.inputs.find((x) => x !== first.outputs[0]));
      if (!b || (b.data.length !== N && b.data.length !== 1)) return undefined;
      bias = Float64Array.from({ length: N }, (_, c) => b.data[b.data.length === 1 ? 0 : c]!);
      rest = rest.slice(1);
    }
  } else return undefined;
  if (rest.length) return undefined;
  if (alpha !== 1) for (let i = 0; i < byClass.length; i++) byClass[i]! *= alpha;
  const byFeature = new Float32Array(K * N);
  for (let c = 0; c < N; c++) for (let k = 0; k < K; k++) byFeature[k * N + c] = byClass[c * K + k]!;
  return { byClass, byFeature, bias, classes: N, features: K };
}

/** What one image's activation gives once: pooled features and the per-channel CAM factors. */
export interface PreparedActivation {
  /** Activation as float32, C × hw. */
  A: Float32Array;
  C: number;
  hw: number;
  /** Pooled features f (the site values), C. */
  features: Float64Array;
  /** XGrad-CAM factor d_k = Σ_ij H_kij A_kij / (Σ_ij A_kij + ε). */
  dX: Float64Array;
  /** Grad-CAM factor d_k = Σ_ij H_kij / hw. */
  dG: Float64Array;
  /** Σ_ij A_kij (Grad-CAM++). */
  sumA: Float64Array;
}

/**
 * Pool the activation and compute the per-channel factors (one pass over A).
 * @param plan - the plan
 * @param data - activation of one sample, C·h·w values (float32 or float64)
 * @param hw - h · w
 * @returns the prepared activation
 * @example
 * const prep = prepareActivation(plan, run.activation.subarray(0, C * hw), hw);
 */
export function prepareActivation(plan: HeadPlan, data: ArrayLike<number>, hw: number): PreparedActivation {
  const C = plan.channels;
  const A = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
  const features = new Float64Array(C);
  const dX = new Float64Array(C);
  const dG = new Float64Array(C);
  const sumA = new Float64Array(C);
  const ops = plan.point;
  const pure = ops.length === 0;
  for (let k = 0; k < C; k++) {
    const base = k * hw;
    let sa = 0;
    let sf = 0;
    let sh = 0;
    let sha = 0;
    let mx = -Infinity;
    let arg = 0;
    let hArg = 0;
    for (let i = 0; i < hw; i++) {
      const a = A[base + i]!;
      sa += a;
      let v = a;
      let dv = 1;
      if (!pure) {
        // inlined pointwise(): no tuple per element
        for (let o = 0; o < ops.length; o++) {
          const op = ops[o]!;
          if (op.kind === 'relu') {
            if (v <= 0) {
              v = 0;
              dv = 0;
            }
          } else if (op.kind === 'sigmoid') {
            v = 1 / (1 + Math.exp(-v));
            dv *= v * (1 - v);
          } else {
            v = op.a[k]! * v + op.b[k]!;
            dv *= op.a[k]!;
          }
        }
      }
      if (plan.pool === 'mean') {
        sf += v;
        sh += dv;
        sha += dv * a;
      } else if (v > mx) {
        mx = v;
        arg = i;
        hArg = dv;
      }
    }
    sumA[k] = sa;
    if (plan.pool === 'mean') {
      features[k] = sf / hw;
      dG[k] = sh / hw / hw;
      dX[k] = sha / hw / (sa + XGRADCAM_EPS);
    } else {
      features[k] = mx;
      dG[k] = hArg / hw;
      dX[k] = (hArg * A[base + arg]!) / (sa + XGRADCAM_EPS);
    }
  }
  return { A, C, hw, features, dX, dG, sumA };
}

/** Pointwise ops applied to one value of channel k: [φ(a), φ'(a)]. */
function pointwise(ops: readonly PointOp[], k: number, a: number): [number, number] {
  let v = a;
  let dv = 1;
  for (const op of ops) {
    if (op.kind === 'relu') {
      if (v <= 0) {
        v = 0;
        dv = 0;
      }
    } else if (op.kind === 'sigmoid') {
      v = 1 / (1 + Math.exp(-v));
      dv *= v * (1 - v);
    } else {
      v = op.a[k]! * v + op.b[k]!;
      dv *= op.a[k]!;
    }
  }
  return [v, dv];
}

/** ∂f_k/∂A_kij for every element (Grad-CAM++ needs it element-wise). */
function elementH(plan: HeadPlan, p: PreparedActivation): Float32Array {
  const { A, C, hw } = p;
  const H = new Float32Array(C * hw);
  for (let k = 0; k < C; k++) {
    let mx = -Infinity;
    let arg = 0;
    let dArg = 0;
    for (let i = 0; i < hw; i++) {
      const [v, dv] = pointwise(plan.point, k, A[k * hw + i]!);
      if (plan.pool === 'mean') H[k * hw + i] = dv / hw;
      else if (v > mx) {
        mx = v;
        arg = i;
        dArg = dv;
      }
    }
    if (plan.pool === 'max') H[k * hw + arg] = dArg; // the first maximum, as the general evaluator
  }
  return H;
}

/**
 * Channel weights from the class gradient at the site: w_k = g_k d_k for Grad-CAM / XGrad-CAM,
 * the α closed form over G = g_k H_k for Grad-CAM++.
 * @param method - `xgradcam`, `gradcam` or `gradcampp`
 * @param g - ∂y_c/∂f, C values
 * @param p - the prepared activation
 * @param H - element-wise ∂f/∂A (Grad-CAM++ only)
 * @param out - destination, C values
 */
function weightsFrom(method: CamMethod, g: ArrayLike<number>, p: PreparedActivation, H: Float32Array | undefined, out: Float64Array): void {
  const { C, hw } = p;
  if (method === 'gradcampp') {
    for (let k = 0; k < C; k++) {
      const gk = g[k]!;
      let s = 0;
      if (gk !== 0) {
        const sa = p.sumA[k]!;
        for (let i = k * hw; i < (k + 1) * hw; i++) {
          const G = gk * H![i]!;
          if (G <= 0) continue;
          const g2 = G * G;
          s += (g2 / (2 * g2 + sa * g2 * G + GRADCAMPP_EPS)) * G;
        }
      }
      out[k] = s;
    }
    return;
  }
  const d = method === 'xgradcam' ? p.dX : p.dG;
  for (let k = 0; k < C; k++) out[k] = g[k]! * d[k]!;
}

/** Σ_k w_k A_k (before the ReLU) into `out` (hw). */
function combine(A: Float32Array, w: ArrayLike<number>, C: number, hw: number, out: Float64Array): void {
  out.fill(0);
  for (let k = 0; k < C; k++) {
    const wk = w[k]!;
    if (wk === 0) continue;
    const base = k * hw;
    for (let i = 0; i < hw; i++) out[i]! += wk * A[base + i]!;
  }
}

/** ReLU + pytorch-grad-cam min-max normalisation, in place. */
function reluNormalize(m: Float64Array): void {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < m.length; i++) {
    const v = m[i]! > 0 ? m[i]! : 0;
    m[i] = v;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const d = hi - lo + 1e-7;
  for (let i = 0; i < m.length; i++) m[i] = (m[i]! - lo) / d;
}

/** Deterministic head output and class gradients at the site. */
export interface PlanOutputs {
  /** Head output (logits, or what the graph outputs). */
  output: Float64Array;
  /** ∂output_c/∂f for class c. */
  gradient(c: number): Float64Array;
}

/**
 * The deterministic head output from the pooled features, and class gradients at the site.
 * @param plan - the plan
 * @param features - f, C values
 * @param given - the head output already computed by onnxruntime (used instead of recomputing a
 *   linear tail)
 * @returns output and a gradient function
 */
export function planForward(plan: HeadPlan, features: Float64Array, given?: ArrayLike<number>): PlanOutputs {
  const lin = plan.linear;
  if (lin) {
    const { byClass, bias, classes: N, features: K } = lin;
    const gradient = (c: number): Float64Array => Float64Array.from(byClass.subarray(c * K, (c + 1) * K));
    if (given && given.length === N) return { output: Float64Array.from(given as ArrayLike<number>), gradient };
    const out = Float64Array.from(bias);
    for (let c = 0; c < N; c++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += byClass[c * K + k]! * features[k]!;
      out[c]! += s;
    }
    return { output: out, gradient };
  }
  const trace = forwardHead(plan.tail, { shape: plan.siteShape, data: features });
  return { output: Float64Array.from(trace.output.data), gradient: (c) => backwardHead(plan.tail, trace, c) };
}

/**
 * A class map from the site gradient (Grad-CAM, XGrad-CAM, Grad-CAM++; CAM uses its own weights).
 * @param method - the method
 * @param g - ∂y_c/∂f
 * @param p - the prepared activation
 * @param plan - the plan (for Grad-CAM++'s element-wise H)
 * @returns weights and the raw map ReLU(Σ w_k A_k)
 */
export function planMap(method: CamMethod, g: ArrayLike<number>, p: PreparedActivation, plan: HeadPlan): { weights: Float64Array; raw: Float64Array } {
  const weights = new Float64Array(p.C);
  weightsFrom(method, g, p, method === 'gradcampp' ? elementH(plan, p) : undefined, weights);
  const raw = new Float64Array(p.hw);
  combine(p.A, weights, p.C, p.hw, raw);
  for (let i = 0; i < raw.length; i++) if (!(raw[i]! > 0)) raw[i] = 0;
  return { weights, raw };
}

/** Options of {@link planMonteCarlo}. */
export interface PlanMcOptions {
  samples: number;
  rate: number;
  /** Uniform [0, 1) source: masks are drawn in the order of `dropoutMask` (sample by sample, feature by feature). */
  rand?: () => number;
  /** Keep flags drawn beforehand ({@link drawKeepFlags}), instead of `rand`. */
  keep?: Uint8Array;
  /**
   * The T head outputs for those keep flags, computed elsewhere (T × N, e.g. by onnxruntime's GEMM
   * for classifiers with many classes); linear tails only.
   */
  outputs?: ArrayLike<number>;
  /** Classes whose per-pixel std is wanted, with the method (none: statistics only). */
  maps?: { classes: readonly number[]; method: CamMethod };
  /** Called with each sample's head output (a view, reused: copy what you keep). */
  onOutput: (output: Float64Array, t: number) => void;
}

/**
 * Inverted-dropout keep flags for T samples of C features, drawn in the order `dropoutMask` draws
 * them (sample by sample, feature by feature): 0 with probability `rate`.
 * @param samples - T
 * @param channels - C
 * @param rate - drop probability in [0, 1)
 * @param rand - uniform [0, 1) source
 * @returns T × C flags (1 = kept)
 * @example
 * const keep = drawKeepFlags(30, 2048, 0.2, mulberry32(0));
 */
export function drawKeepFlags(samples: number, channels: number, rate: number, rand: () => number): Uint8Array {
  if (!(rate >= 0 && rate < 1)) throw new MedmaskError('USAGE', `dropout rate ${rate} must be in [0, 1)`);
  const keep = new Uint8Array(samples * channels);
  for (let i = 0; i < keep.length; i++) keep[i] = rand() < rate ? 0 : 1;
  return keep;
}

/**
 * Head Monte Carlo Dropout on the plan: T masks on the pooled features, the T head outputs, and per
 * class the per-pixel standard deviation of the T normalised maps (each with its own gradient).
 * @param plan - the plan
 * @param p - the prepared activation
 * @param opts - samples, rate, PRNG, classes and method for the maps, output callback
 * @returns per class the std map (hw values)
 * @example
 * const std = planMonteCarlo(plan, prep, { samples: 30, rate: 0.2, rand: mulberry32(0), maps: { classes: [c], method: 'xgradcam' }, onOutput });
 */
export function planMonteCarlo(plan: HeadPlan, p: PreparedActivation, opts: PlanMcOptions): Map<number, Float64Array> {
  const { C, hw, A } = p;
  const T = opts.samples;
  const rate = opts.rate;
  if (!(rate >= 0 && rate < 1)) throw new MedmaskError('USAGE', `dropout rate ${rate} must be in [0, 1)`);
  const s = 1 / (1 - rate);
  // keep flags, T × C, drawn in dropoutMask's order
  if (!opts.keep && !opts.rand) throw new MedmaskError('USAGE', 'head MC needs a random source or keep flags');
  const keep = opts.keep ?? drawKeepFlags(T, C, rate, opts.rand!);
  if (keep.length !== T * C) throw new MedmaskError('USAGE', `keep flags: ${keep.length} values for ${T} samples × ${C} features`);
  const f = p.features;
  const lin = plan.linear;
  if (opts.outputs && (!lin || opts.outputs.length !== T * lin.classes)) {
    throw new MedmaskError('USAGE', `precomputed MC outputs need a linear tail and ${T} × ${lin?.classes ?? '?'} values; got ${opts.outputs.length}`);
  }
  const N = lin ? lin.classes : 0;
  const out = new Float64Array(lin ? N : 0);
  const dropped = new Int32Array(C);
  const keptIdx = new Int32Array(C);
  const wantMaps = opts.maps && opts.maps.classes.length > 0;
  const method = opts.maps?.method === 'cam' ? 'gradcam' : (opts.maps?.method ?? 'xgradcam');
  const classes = opts.maps?.classes ?? [];
  // per class accumulators of the normalised maps
  const sum = classes.map(() => new Float64Array(hw));
  const sq = classes.map(() => new Float64Array(hw));
  const m = new Float64Array(hw);
  const w = new Float64Array(C);
  const H = wantMaps && method === 'gradcampp' ? elementH(plan, p) : undefined;
  // linear fast path for Grad-CAM / XGrad-CAM: u = W_c ⊙ d, P = Σ u_k A_k once per class
  const sparse = !!lin && wantMaps && method !== 'gradcampp';
  const u: Float64Array[] = [];
  const P: Float64Array[] = [];
  if (sparse) {
    const d = method === 'xgradcam' ? p.dX : p.dG;
    for (const c of classes) {
      const uc = new Float64Array(C);
      for (let k = 0; k < C; k++) uc[k] = lin.byClass[c * C + k]! * d[k]!;
      const pc = new Float64Array(hw);
      combine(A, uc, C, hw, pc);
      u.push(uc);
      P.push(pc);
    }
  }
  const full = lin && !opts.outputs ? planForward(plan, f).output : undefined; // W f + b
  const masked = new Float64Array(C);
  const g = new Float64Array(C);
  for (let t = 0; t < T; t++) {
    const kt = keep.subarray(t * C, (t + 1) * C);
    let nd = 0;
    let nk = 0;
    for (let k = 0; k < C; k++) {
      if (kt[k]) keptIdx[nk++] = k;
      else dropped[nd++] = k;
    }
    let trace: ReturnType<typeof forwardHead> | undefined;
    if (lin && opts.outputs) {
      for (let c = 0; c < N; c++) out[c] = opts.outputs[t * N + c]!;
      opts.onOutput(out, t);
    } else if (lin) {
      // y = b + s (W f − Σ_dropped f_k W_·k), or b + s Σ_kept f_k W_·k when fewer are kept
      const W = lin.byFeature;
      if (nd <= nk) {
        for (let c = 0; c < N; c++) out[c] = full![c]! - lin.bias[c]!;
        for (let j = 0; j < nd; j++) {
          const k = dropped[j]!;
          const fk = f[k]!;
          if (fk === 0) continue;
          for (let c = 0; c < N; c++) out[c]! -= fk * W[k * N + c]!;
        }
      } else {
        out.fill(0);
        for (let j = 0; j < nk; j++) {
          const k = keptIdx[j]!;
          const fk = f[k]!;
          if (fk === 0) continue;
          for (let c = 0; c < N; c++) out[c]! += fk * W[k * N + c]!;
        }
      }
      for (let c = 0; c < N; c++) out[c] = lin.bias[c]! + s * out[c]!;
      opts.onOutput(out, t);
    } else {
      for (let k = 0; k < C; k++) masked[k] = kt[k] ? f[k]! * s : 0;
      trace = forwardHead(plan.tail, { shape: plan.siteShape, data: masked });
      opts.onOutput(trace.output.data, t);
    }
    if (!wantMaps) continue;
    classes.forEach((c, ci) => {
      if (sparse) {
        // P_t = s (P − Σ_dropped u_k A_k)  or  s Σ_kept u_k A_k
        const uc = u[ci]!;
        if (nd <= nk) {
          m.set(P[ci]!);
          for (let j = 0; j < nd; j++) {
            const k = dropped[j]!;
            const uk = uc[k]!;
            if (uk === 0) continue;
            const base = k * hw;
            for (let i = 0; i < hw; i++) m[i]! -= uk * A[base + i]!;
          }
        } else {
          m.fill(0);
          for (let j = 0; j < nk; j++) {
            const k = keptIdx[j]!;
            const uk = uc[k]!;
            if (uk === 0) continue;
            const base = k * hw;
            for (let i = 0; i < hw; i++) m[i]! += uk * A[base + i]!;
          }
        }
        for (let i = 0; i < hw; i++) m[i]! *= s;
      } else {
        // general: g_t = ∂y_c/∂(masked f) ⊙ mask, then the method's weights
        if (lin) for (let k = 0; k < C; k++) g[k] = kt[k] ? s * lin.byClass[c * C + k]! : 0;
        else {
          const gt = backwardHead(plan.tail, trace!, c);
          for (let k = 0; k < C; k++) g[k] = kt[k] ? s * gt[k]! : 0;
        }
        weightsFrom(method, g, p, H, w);
        combine(A, w, C, hw, m);
      }
      reluNormalize(m);
      const su = sum[ci]!;
      const sqq = sq[ci]!;
      for (let i = 0; i < hw; i++) {
        su[i]! += m[i]!;
        sqq[i]! += m[i]! * m[i]!;
      }
    });
  }
  const std = new Map<number, Float64Array>();
  classes.forEach((c, ci) => {
    const r = new Float64Array(hw);
    for (let i = 0; i < hw; i++) {
      const mean = sum[ci]![i]! / T;
      r[i] = Math.sqrt(Math.max(0, sq[ci]![i]! / T - mean * mean));
    }
    std.set(c, r);
  });
  return std;
}
