/**
 * The classifier **head**: the ONNX nodes between the CAM target activation and the logits
 * (pooling, normalisation, activations, dropout, linear layers), evaluated and differentiated by
 * medmask itself. One backbone pass gives the target activation; this module then gives the logits
 * and the exact gradient of any class score with respect to that activation, so Grad-CAM /
 * XGrad-CAM need no autograd framework, and Monte Carlo Dropout re-samples only the head.
 *
 * Tensors here are one sample (batch dimension 1), row-major as in ONNX (NCHW: x fastest within a
 * channel), held in Float64Array. A {@link HeadDescription} is plain JSON (read from the graph by
 * `src/runtime`); {@link compileHead} checks it and turns constants into typed arrays.
 * @module
 */
import { MedmaskError } from '../errors.js';

/** An attribute value of a head node (ONNX ints / floats / strings, already decoded). */
export type HeadAttr = number | string | number[];

/** One ONNX node of the head. Missing optional inputs are empty strings, as in ONNX. */
export interface HeadNodeDesc {
  /** ONNX operator type, e.g. "Gemm". */
  op: string;
  /** Node name in the graph (for error messages). */
  name: string;
  /** Input tensor names. */
  inputs: string[];
  /** Output tensor names. */
  outputs: string[];
  /** Decoded attributes. */
  attrs: Record<string, HeadAttr>;
}

/** A constant tensor (initializer or Constant node output) used by the head. */
export interface HeadConstant {
  /** Dimensions. */
  dims: number[];
  /** Values, row-major. */
  data: number[] | Float32Array | Float64Array;
}

/** The head as read from a graph: plain data, JSON-serialisable when `data` are arrays. */
export interface HeadDescription {
  /** Name of the target tensor (the CAM activation, a 4-D NCHW tensor). */
  target: string;
  /** Name of the output tensor (the logits). */
  output: string;
  /** Nodes from target to output, in topological order. */
  nodes: HeadNodeDesc[];
  /** Constant inputs by tensor name. */
  constants: Record<string, HeadConstant>;
}

/** A tensor value: shape and row-major data. */
export interface HeadTensor {
  shape: number[];
  data: Float64Array;
}

/** Operators the head evaluator can run forwards and differentiate. */
export const SUPPORTED_HEAD_OPS = [
  'Add', 'BatchNormalization', 'Div', 'Dropout', 'Flatten', 'Gemm', 'GlobalAveragePool', 'GlobalMaxPool',
  'Identity', 'MatMul', 'Mul', 'ReduceMean', 'ReduceSum', 'Relu', 'Reshape', 'Sigmoid', 'Softmax', 'Squeeze',
  'Sub', 'Unsqueeze',
] as const;

/** A head checked and ready to run (constants as Float64Array). */
export interface CompiledHead {
  readonly target: string;
  readonly output: string;
  readonly nodes: readonly HeadNodeDesc[];
  readonly constants: ReadonlyMap<string, HeadTensor>;
}

/** Options for {@link forwardHead}. */
export interface ForwardHeadOptions {
  /**
   * Multiplicative masks by tensor name, applied to that tensor right after it is computed (and in
   * the backward pass): how Monte Carlo Dropout samples enter. Values are usually 0 or 1/(1-p).
   */
  masks?: Record<string, Float64Array>;
  /**
   * A previous trace of the same head and activation: tensors that do not depend on any masked
   * tensor are taken from it instead of being recomputed.
   */
  reuse?: HeadTrace;
}

/** Every value computed in a forward pass, needed by {@link backwardHead}. */
export interface HeadTrace {
  /** Values by tensor name (the target, intermediates and the output). */
  values: Map<string, HeadTensor>;
  /** The output (logits) values. */
  output: HeadTensor;
  /** Masks applied, by tensor name. */
  masks: Record<string, Float64Array>;
}

const SUPPORTED = new Set<string>(SUPPORTED_HEAD_OPS);

function unsupported(node: HeadNodeDesc, why: string): MedmaskError {
  return new MedmaskError('MODEL_INVALID', `head node "${node.name}" (${node.op}): ${why}`, {
    hint:
      `the head evaluator supports ${SUPPORTED_HEAD_OPS.join(', ')}; choose a target tensor closer to the ` +
      'classifier (e.g. the input of the global pooling) with --target or the manifest field cam.target',
    details: { node: node.name, op: node.op },
  });
}

/**
 * Check a head description and prepare it for evaluation: every op supported, every input
 * produced by the target, an earlier node or a constant.
 * @param desc - the head as read from the graph
 * @returns the compiled head
 * @throws MedmaskError MODEL_INVALID naming the op and node when an op is not supported
 * @example
 * const head = compileHead(desc);
 * const trace = forwardHead(head, { shape: [1, 512, 7, 7], data: activation });
 */
export function compileHead(desc: HeadDescription): CompiledHead {
  const constants = new Map<string, HeadTensor>();
  for (const [name, c] of Object.entries(desc.constants)) {
    const n = c.dims.reduce((a, b) => a * b, 1);
    if (c.data.length !== n) {
      throw new MedmaskError('MODEL_INVALID', `head constant "${name}" has ${c.data.length} values for dims [${c.dims.join(', ')}]`);
    }
    constants.set(name, { shape: [...c.dims], data: Float64Array.from(c.data) });
  }
  const known = new Set<string>([desc.target, ...constants.keys()]);
  for (const node of desc.nodes) {
    if (!SUPPORTED.has(node.op)) throw unsupported(node, 'operator not supported');
    for (const i of node.inputs) {
      if (i !== '' && !known.has(i)) {
        throw new MedmaskError('MODEL_INVALID', `head node "${node.name}" (${node.op}) reads "${i}", which is neither computed from the target "${desc.target}" nor a constant`, {
          hint: 'the head must depend only on the target tensor and constants; choose a later target tensor',
          details: { node: node.name, op: node.op, input: i },
        });
      }
    }
    for (const o of node.outputs) if (o !== '') known.add(o);
  }
  if (!known.has(desc.output)) {
    throw new MedmaskError('MODEL_INVALID', `no head node produces the output "${desc.output}" from the target "${desc.target}"`);
  }
  return { target: desc.target, output: desc.output, nodes: desc.nodes.map((n) => ({ ...n })), constants };
}

// ---------------------------------------------------------------------------------------------
// helpers

const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

function attrNum(node: HeadNodeDesc, name: string, dflt: number): number {
  const v = node.attrs[name];
  if (v === undefined) return dflt;
  if (typeof v !== 'number') throw unsupported(node, `attribute ${name} should be a number, got ${JSON.stringify(v)}`);
  return v;
}

function attrInts(node: HeadNodeDesc, name: string): number[] | undefined {
  const v = node.attrs[name];
  if (v === undefined) return undefined;
  if (typeof v === 'number') return [v];
  if (!Array.isArray(v)) throw unsupported(node, `attribute ${name} should be a list of integers`);
  return v;
}

/** numpy broadcasting of two shapes. */
function broadcastShape(a: readonly number[], b: readonly number[], node: HeadNodeDesc): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw unsupported(node, `shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** For each flat index of `out`, the flat index of `inp` broadcast to it; undefined when equal shapes. */
function broadcastMap(out: readonly number[], inp: readonly number[]): Int32Array | undefined {
  if (out.length === inp.length && out.every((d, i) => d === inp[i])) return undefined;
  const n = out.length;
  const strides = new Array<number>(n).fill(0);
  let s = 1;
  for (let i = inp.length - 1; i >= 0; i--) {
    const oi = n - inp.length + i;
    strides[oi] = inp[i] === 1 ? 0 : s;
    s *= inp[i]!;
  }
  const total = size(out);
  const map = new Int32Array(total);
  const idx = new Array<number>(n).fill(0);
  let flat = 0;
  for (let t = 0; t < total; t++) {
    map[t] = flat;
    for (let d = n - 1; d >= 0; d--) {
      idx[d]!++;
      flat += strides[d]!;
      if (idx[d]! < out[d]!) break;
      flat -= strides[d]! * idx[d]!;
      idx[d] = 0;
    }
  }
  return map;
}

function normAxis(axis: number, rank: number, node: HeadNodeDesc): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw unsupported(node, `axis ${axis} out of range for rank ${rank}`);
  return a;
}

function constInts(t: HeadTensor | undefined): number[] | undefined {
  return t ? Array.from(t.data, (v) => Math.round(v)) : undefined;
}

// ---------------------------------------------------------------------------------------------
// forward

type Fwd = (node: HeadNodeDesc, x: (HeadTensor | undefined)[]) => HeadTensor[];

function need(node: HeadNodeDesc, x: (HeadTensor | undefined)[], i: number): HeadTensor {
  const t = x[i];
  if (!t) throw unsupported(node, `input ${i} is missing`);
  return t;
}

function elementwise(node: HeadNodeDesc, x: (HeadTensor | undefined)[], f: (a: number, b: number) => number): HeadTensor[] {
  const a = need(node, x, 0);
  const b = need(node, x, 1);
  const shape = broadcastShape(a.shape, b.shape, node);
  const ma = broadcastMap(shape, a.shape);
  const mb = broadcastMap(shape, b.shape);
  const out = new Float64Array(size(shape));
  for (let i = 0; i < out.length; i++) out[i] = f(a.data[ma ? ma[i]! : i]!, b.data[mb ? mb[i]! : i]!);
  return [{ shape, data: out }];
}

/** Reduce over axes; returns output shape and, per input element, its output index. */
function reducePlan(shape: readonly number[], axes: readonly number[], keep: boolean): { outShape: number[]; map: Int32Array; count: number } {
  const red = new Set(axes);
  const keptShape = shape.map((d, i) => (red.has(i) ? 1 : d));
  const map = broadcastMap(shape, keptShape) ?? Int32Array.from({ length: size(shape) }, (_, i) => i);
  const outShape = keep ? keptShape : shape.filter((_, i) => !red.has(i));
  const count = axes.reduce((a, i) => a * shape[i]!, 1);
  return { outShape, map, count };
}

function reduceAxes(node: HeadNodeDesc, x: (HeadTensor | undefined)[], rank: number): number[] {
  const fromInput = constInts(x[1]);
  const axes = attrInts(node, 'axes') ?? fromInput;
  if (!axes || axes.length === 0) {
    if (attrNum(node, 'noop_with_empty_axes', 0)) return [];
    return Array.from({ length: rank }, (_, i) => i);
  }
  return axes.map((a) => normAxis(a, rank, node));
}

function reshapeTo(node: HeadNodeDesc, a: HeadTensor, shape: number[]): HeadTensor[] {
  if (size(shape) !== a.data.length) throw unsupported(node, `cannot reshape [${a.shape.join(', ')}] to [${shape.join(', ')}]`);
  return [{ shape, data: a.data }];
}

const FORWARD: Record<string, Fwd> = {
  Identity: (n, x) => [need(n, x, 0)],
  Dropout: (n, x) => [need(n, x, 0), { shape: need(n, x, 0).shape, data: new Float64Array(need(n, x, 0).data.length).fill(1) }],
  Relu: (n, x) => {
    const a = need(n, x, 0);
    return [{ shape: a.shape, data: a.data.map((v) => (v > 0 ? v : 0)) }];
  },
  Sigmoid: (n, x) => {
    const a = need(n, x, 0);
    return [{ shape: a.shape, data: a.data.map((v) => 1 / (1 + Math.exp(-v))) }];
  },
  Add: (n, x) => elementwise(n, x, (a, b) => a + b),
  Sub: (n, x) => elementwise(n, x, (a, b) => a - b),
  Mul: (n, x) => elementwise(n, x, (a, b) => a * b),
  Div: (n, x) => elementwise(n, x, (a, b) => a / b),
  BatchNormalization: (n, x) => {
    if (attrNum(n, 'training_mode', 0)) throw unsupported(n, 'training_mode = 1 (batch statistics) is not an inference head');
    const a = need(n, x, 0);
    const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) => need(n, x, i).data) as [Float64Array, Float64Array, Float64Array, Float64Array];
    const eps = attrNum(n, 'epsilon', 1e-5);
    const c = a.shape[1] ?? 1;
    const inner = size(a.shape.slice(2));
    const out = new Float64Array(a.data.length);
    for (let b = 0; b < (a.shape[0] ?? 1); b++) {
      for (let k = 0; k < c; k++) {
        const g = scale[k]! / Math.sqrt(variance[k]! + eps);
        const off = bias[k]! - mean[k]! * g;
        const base = (b * c + k) * inner;
        for (let i = 0; i < inner; i++) out[base + i] = a.data[base + i]! * g + off;
      }
    }
    return [{ shape: a.shape, data: out }];
  },
  GlobalAveragePool: (n, x) => {
    // NCHW…: spatial axes are contiguous, so each (n, c) is one run of `inner` values
    const a = need(n, x, 0);
    const inner = size(a.shape.slice(2));
    const out = new Float64Array(a.data.length / inner);
    for (let j = 0; j < out.length; j++) {
      let s = 0;
      for (let i = j * inner; i < (j + 1) * inner; i++) s += a.data[i]!;
      out[j] = s / inner;
    }
    return [{ shape: [...a.shape.slice(0, 2), ...a.shape.slice(2).map(() => 1)], data: out }];
  },
  GlobalMaxPool: (n, x) => {
    const a = need(n, x, 0);
    const plan = reducePlan(a.shape, a.shape.map((_, i) => i).slice(2), true);
    const out = new Float64Array(size(plan.outShape)).fill(-Infinity);
    for (let i = 0; i < a.data.length; i++) if (a.data[i]! > out[plan.map[i]!]!) out[plan.map[i]!] = a.data[i]!;
    return [{ shape: plan.outShape, data: out }];
  },
  ReduceMean: (n, x) => reduce(n, x, true),
  ReduceSum: (n, x) => reduce(n, x, false),
  Flatten: (n, x) => {
    const a = need(n, x, 0);
    const axis = attrNum(n, 'axis', 1);
    const ax = axis < 0 ? axis + a.shape.length : axis;
    return reshapeTo(n, a, [size(a.shape.slice(0, ax)), size(a.shape.slice(ax))]);
  },
  Reshape: (n, x) => {
    const a = need(n, x, 0);
    const spec = constInts(x[1]) ?? attrInts(n, 'shape');
    if (!spec) throw unsupported(n, 'the target shape is not a constant');
    const allowzero = attrNum(n, 'allowzero', 0);
    const shape = spec.map((d, i) => (d === 0 && !allowzero ? a.shape[i]! : d));
    const neg = shape.indexOf(-1);
    if (neg >= 0) shape[neg] = a.data.length / size(shape.filter((d) => d !== -1));
    return reshapeTo(n, a, shape);
  },
  Squeeze: (n, x) => {
    const a = need(n, x, 0);
    const axes = (attrInts(n, 'axes') ?? constInts(x[1]))?.map((v) => normAxis(v, a.shape.length, n));
    const shape = a.shape.filter((d, i) => (axes ? !axes.includes(i) : d !== 1));
    return reshapeTo(n, a, shape);
  },
  Unsqueeze: (n, x) => {
    const a = need(n, x, 0);
    const axes = attrInts(n, 'axes') ?? constInts(x[1]);
    if (!axes) throw unsupported(n, 'axes are not constant');
    const rank = a.shape.length + axes.length;
    const ax = axes.map((v) => normAxis(v, rank, n));
    const shape: number[] = [];
    let j = 0;
    for (let i = 0; i < rank; i++) shape.push(ax.includes(i) ? 1 : a.shape[j++]!);
    return reshapeTo(n, a, shape);
  },
  Gemm: (n, x) => {
    const a = need(n, x, 0);
    const b = need(n, x, 1);
    const c = x[2];
    const g = gemmDims(n, a, b);
    const alpha = attrNum(n, 'alpha', 1);
    const beta = attrNum(n, 'beta', 1);
    const out = new Float64Array(g.M * g.N);
    for (let i = 0; i < g.M; i++) {
      if (g.tB) {
        // torch Linear layout: each output is a dot product with one contiguous row of B
        const row = g.tA ? Float64Array.from({ length: g.K }, (_, k) => a.data[k * g.M + i]!) : a.data.subarray(i * g.K, (i + 1) * g.K);
        for (let j = 0; j < g.N; j++) {
          let s = 0;
          const off = j * g.K;
          for (let k = 0; k < g.K; k++) s += row[k]! * b.data[off + k]!;
          out[i * g.N + j] = alpha * s;
        }
        continue;
      }
      for (let k = 0; k < g.K; k++) {
        const av = a.data[g.tA ? k * g.M + i : i * g.K + k]!;
        if (av === 0) continue;
        const s = alpha * av;
        for (let j = 0; j < g.N; j++) out[i * g.N + j] += s * b.data[k * g.N + j]!;
      }
    }
    if (c) {
      const m = broadcastMap([g.M, g.N], c.shape);
      for (let i = 0; i < out.length; i++) out[i] += beta * c.data[m ? m[i]! : i]!;
    }
    return [{ shape: [g.M, g.N], data: out }];
  },
  MatMul: (n, x) => {
    const a = need(n, x, 0);
    const b = need(n, x, 1);
    const { M, K, N, lead } = matmulDims(n, a, b);
    const out = new Float64Array(M * N);
    for (let i = 0; i < M; i++) {
      for (let k = 0; k < K; k++) {
        const av = a.data[i * K + k]!;
        if (av === 0) continue;
        for (let j = 0; j < N; j++) out[i * N + j] += av * b.data[k * N + j]!;
      }
    }
    return [{ shape: [...lead, N], data: out }];
  },
  Softmax: (n, x) => {
    const a = need(n, x, 0);
    const axis = normAxis(attrNum(n, 'axis', -1), a.shape.length, n);
    if (axis !== a.shape.length - 1) throw unsupported(n, 'softmax is supported over the last axis only');
    const L = a.shape[axis]!;
    const out = new Float64Array(a.data.length);
    for (let r = 0; r < a.data.length; r += L) {
      let mx = -Infinity;
      for (let i = 0; i < L; i++) mx = Math.max(mx, a.data[r + i]!);
      let s = 0;
      for (let i = 0; i < L; i++) s += out[r + i] = Math.exp(a.data[r + i]! - mx);
      for (let i = 0; i < L; i++) out[r + i]! /= s;
    }
    return [{ shape: a.shape, data: out }];
  },
};

function reduce(n: HeadNodeDesc, x: (HeadTensor | undefined)[], mean: boolean): HeadTensor[] {
  const a = need(n, x, 0);
  const axes = reduceAxes(n, x, a.shape.length);
  const plan = reducePlan(a.shape, axes, attrNum(n, 'keepdims', 1) !== 0);
  const out = new Float64Array(size(plan.outShape));
  for (let i = 0; i < a.data.length; i++) out[plan.map[i]!] += a.data[i]!;
  if (mean) for (let i = 0; i < out.length; i++) out[i]! /= plan.count;
  return [{ shape: plan.outShape, data: out }];
}

function gemmDims(n: HeadNodeDesc, a: HeadTensor, b: HeadTensor): { M: number; K: number; N: number; tA: boolean; tB: boolean } {
  if (a.shape.length !== 2 || b.shape.length !== 2) throw unsupported(n, `Gemm needs 2-D inputs, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`);
  const tA = attrNum(n, 'transA', 0) !== 0;
  const tB = attrNum(n, 'transB', 0) !== 0;
  const M = tA ? a.shape[1]! : a.shape[0]!;
  const K = tA ? a.shape[0]! : a.shape[1]!;
  const KB = tB ? b.shape[1]! : b.shape[0]!;
  const N = tB ? b.shape[0]! : b.shape[1]!;
  if (K !== KB) throw unsupported(n, `inner dimensions differ: ${K} vs ${KB}`);
  return { M, K, N, tA, tB };
}

function matmulDims(n: HeadNodeDesc, a: HeadTensor, b: HeadTensor): { M: number; K: number; N: number; lead: number[] } {
  if (a.shape.length < 1 || b.shape.length !== 2) throw unsupported(n, `MatMul is supported for [..., K] × [K, N], got [${a.shape.join(', ')}] × [${b.shape.join(', ')}]`);
  const K = a.shape[a.shape.length - 1]!;
  if (K !== b.shape[0]) throw unsupported(n, `inner dimensions differ: ${K} vs ${b.shape[0]}`);
  const lead = a.shape.slice(0, -1);
  return { M: size(lead), K, N: b.shape[1]!, lead };
}

// ---------------------------------------------------------------------------------------------
// backward: gradient of each input given the gradients of the outputs (undefined = zero)

type Bwd = (node: HeadNodeDesc, x: (HeadTensor | undefined)[], y: HeadTensor[], gy: Float64Array, needs: boolean[]) => (Float64Array | undefined)[];

function unbroadcast(g: Float64Array, outShape: number[], inShape: number[]): Float64Array {
  const m = broadcastMap(outShape, inShape);
  if (!m) return g;
  const r = new Float64Array(size(inShape));
  for (let i = 0; i < g.length; i++) r[m[i]!] += g[i]!;
  return r;
}

function bcast(t: HeadTensor, shape: number[]): Float64Array {
  const m = broadcastMap(shape, t.shape);
  if (!m) return t.data;
  return Float64Array.from(m, (j) => t.data[j]!);
}

const BACKWARD: Record<string, Bwd> = {
  Identity: (_n, _x, _y, gy) => [gy],
  Dropout: (_n, _x, _y, gy) => [gy],
  Relu: (_n, x, _y, gy) => [gy.map((g, i) => (x[0]!.data[i]! > 0 ? g : 0))],
  Sigmoid: (_n, _x, y, gy) => [gy.map((g, i) => g * y[0]!.data[i]! * (1 - y[0]!.data[i]!))],
  Add: (_n, x, y, gy, nd) => [nd[0] ? unbroadcast(gy, y[0]!.shape, x[0]!.shape) : undefined, nd[1] ? unbroadcast(gy, y[0]!.shape, x[1]!.shape) : undefined],
  Sub: (_n, x, y, gy, nd) => [nd[0] ? unbroadcast(gy, y[0]!.shape, x[0]!.shape) : undefined, nd[1] ? unbroadcast(gy.map((g) => -g), y[0]!.shape, x[1]!.shape) : undefined],
  Mul: (_n, x, y, gy, nd) => {
    const s = y[0]!.shape;
    return [
      nd[0] ? unbroadcast(mulArr(gy, bcast(x[1]!, s)), s, x[0]!.shape) : undefined,
      nd[1] ? unbroadcast(mulArr(gy, bcast(x[0]!, s)), s, x[1]!.shape) : undefined,
    ];
  },
  Div: (_n, x, y, gy, nd) => {
    const s = y[0]!.shape;
    const b = bcast(x[1]!, s);
    return [
      nd[0] ? unbroadcast(gy.map((g, i) => g / b[i]!), s, x[0]!.shape) : undefined,
      nd[1] ? unbroadcast(gy.map((g, i) => (-g * y[0]!.data[i]!) / b[i]!), s, x[1]!.shape) : undefined,
    ];
  },
  BatchNormalization: (n, x, _y, gy) => {
    const a = x[0]!;
    const scale = x[1]!.data;
    const variance = x[4]!.data;
    const eps = attrNum(n, 'epsilon', 1e-5);
    const c = a.shape[1] ?? 1;
    const inner = size(a.shape.slice(2));
    const gx = new Float64Array(gy.length);
    for (let b = 0; b < (a.shape[0] ?? 1); b++) {
      for (let k = 0; k < c; k++) {
        const g = scale[k]! / Math.sqrt(variance[k]! + eps);
        const base = (b * c + k) * inner;
        for (let i = 0; i < inner; i++) gx[base + i] = gy[base + i]! * g;
      }
    }
    return [gx];
  },
  GlobalAveragePool: (_n, x, _y, gy) => {
    const a = x[0]!;
    const inner = size(a.shape.slice(2));
    const gx = new Float64Array(a.data.length);
    for (let j = 0; j < gy.length; j++) gx.fill(gy[j]! / inner, j * inner, (j + 1) * inner);
    return [gx];
  },
  GlobalMaxPool: (_n, x, y, gy) => {
    const a = x[0]!;
    const plan = reducePlan(a.shape, a.shape.map((_, i) => i).slice(2), true);
    const gx = new Float64Array(a.data.length);
    const taken = new Uint8Array(y[0]!.data.length);
    for (let i = 0; i < a.data.length; i++) {
      const j = plan.map[i]!;
      if (!taken[j] && a.data[i] === y[0]!.data[j]) {
        gx[i] = gy[j]!;
        taken[j] = 1;
      }
    }
    return [gx];
  },
  ReduceMean: (n, x, _y, gy) => {
    const a = x[0]!;
    const plan = reducePlan(a.shape, reduceAxes(n, x, a.shape.length), true);
    return [Float64Array.from(plan.map, (j) => gy[j]! / plan.count)];
  },
  ReduceSum: (n, x, _y, gy) => {
    const a = x[0]!;
    const plan = reducePlan(a.shape, reduceAxes(n, x, a.shape.length), true);
    return [Float64Array.from(plan.map, (j) => gy[j]!)];
  },
  Flatten: (_n, _x, _y, gy) => [gy],
  Reshape: (_n, _x, _y, gy) => [gy],
  Squeeze: (_n, _x, _y, gy) => [gy],
  Unsqueeze: (_n, _x, _y, gy) => [gy],
  Gemm: (n, x, _y, gy, nd) => {
    const a = x[0]!;
    const b = x[1]!;
    const g = gemmDims(n, a, b);
    const alpha = attrNum(n, 'alpha', 1);
    const beta = attrNum(n, 'beta', 1);
    let ga: Float64Array | undefined;
    let gb: Float64Array | undefined;
    if (nd[0]) {
      ga = new Float64Array(a.data.length);
      for (let i = 0; i < g.M; i++) {
        for (let j = 0; j < g.N; j++) {
          const s = alpha * gy[i * g.N + j]!;
          if (s === 0) continue; // a one-hot class seed touches one row of B only
          for (let k = 0; k < g.K; k++) {
            const bv = g.tB ? b.data[j * g.K + k]! : b.data[k * g.N + j]!;
            ga[g.tA ? k * g.M + i : i * g.K + k] += s * bv;
          }
        }
      }
    }
    if (nd[1]) {
      gb = new Float64Array(b.data.length);
      for (let i = 0; i < g.M; i++) for (let j = 0; j < g.N; j++) {
        const s = alpha * gy[i * g.N + j]!;
        if (s === 0) continue;
        for (let k = 0; k < g.K; k++) {
          const av = g.tA ? a.data[k * g.M + i]! : a.data[i * g.K + k]!;
          gb[g.tB ? j * g.K + k : k * g.N + j] += s * av;
        }
      }
    }
    const gc = nd[2] && x[2] ? unbroadcast(gy.map((v) => v * beta), [g.M, g.N], x[2].shape) : undefined;
    return [ga, gb, gc];
  },
  MatMul: (n, x, _y, gy, nd) => {
    const a = x[0]!;
    const b = x[1]!;
    const { M, K, N } = matmulDims(n, a, b);
    let ga: Float64Array | undefined;
    let gb: Float64Array | undefined;
    if (nd[0]) {
      ga = new Float64Array(a.data.length);
      for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
        const s = gy[i * N + j]!;
        if (s === 0) continue;
        for (let k = 0; k < K; k++) ga[i * K + k] += s * b.data[k * N + j]!;
      }
    }
    if (nd[1]) {
      gb = new Float64Array(b.data.length);
      for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
        const s = gy[i * N + j]!;
        if (s === 0) continue;
        for (let k = 0; k < K; k++) gb[k * N + j] += s * a.data[i * K + k]!;
      }
    }
    return [ga, gb];
  },
  Softmax: (_n, _x, y, gy) => {
    const p = y[0]!;
    const L = p.shape[p.shape.length - 1]!;
    const gx = new Float64Array(gy.length);
    for (let r = 0; r < gy.length; r += L) {
      let dot = 0;
      for (let i = 0; i < L; i++) dot += gy[r + i]! * p.data[r + i]!;
      for (let i = 0; i < L; i++) gx[r + i] = p.data[r + i]! * (gy[r + i]! - dot);
    }
    return [gx];
  },
};

function mulArr(a: Float64Array, b: Float64Array): Float64Array {
  const r = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) r[i] = a[i]! * b[i]!;
  return r;
}

// ---------------------------------------------------------------------------------------------
// public evaluation

/**
 * Evaluate the head forwards from a target activation.
 * @param head - a compiled head
 * @param activation - the target tensor for one sample (shape starting with batch 1, e.g. [1, C, H, W])
 * @param opts - dropout masks by tensor name, and a trace to reuse for unmasked parts
 * @returns the trace: every intermediate value and the output
 * @example
 * const { output } = forwardHead(head, { shape: [1, 256, 4, 3], data });
 * console.log(output.data); // the logits
 */
export function forwardHead(head: CompiledHead, activation: HeadTensor, opts: ForwardHeadOptions = {}): HeadTrace {
  const masks = opts.masks ?? {};
  const values = new Map<string, HeadTensor>();
  const dirty = new Set<string>(Object.keys(masks));
  const setValue = (name: string, t: HeadTensor): void => {
    const m = masks[name];
    if (m) {
      if (m.length !== t.data.length) {
        throw new MedmaskError('USAGE', `dropout mask for "${name}" has ${m.length} values; the tensor has ${t.data.length}`);
      }
      t = { shape: t.shape, data: mulArr(t.data, m) };
    }
    values.set(name, t);
  };
  if (size(activation.shape) !== activation.data.length) {
    throw new MedmaskError('USAGE', `activation shape [${activation.shape.join(', ')}] does not match its ${activation.data.length} values`);
  }
  setValue(head.target, activation);
  for (const node of head.nodes) {
    const x = node.inputs.map((i) => (i === '' ? undefined : values.get(i) ?? head.constants.get(i)));
    const isDirty = node.inputs.some((i) => dirty.has(i));
    if (isDirty) for (const o of node.outputs) dirty.add(o);
    const prev = opts.reuse;
    if (prev && !isDirty && node.outputs.every((o) => o === '' || prev.values.has(o)) && !node.outputs.some((o) => masks[o])) {
      for (const o of node.outputs) if (o !== '') values.set(o, prev.values.get(o)!);
      continue;
    }
    const y = FORWARD[node.op]!(node, x);
    node.outputs.forEach((o, k) => {
      if (o !== '' && y[k]) setValue(o, y[k]);
    });
  }
  const output = values.get(head.output)!;
  return { values, output, masks };
}

/**
 * Reverse-mode gradient of a scalar function of the output with respect to the target activation.
 * @param head - the compiled head
 * @param trace - a forward trace of the same head
 * @param seed - a class index (gradient of that output element, batch 0) or the full gradient of
 *   the output
 * @returns ∂score/∂target, same layout as the activation
 * @example
 * const grad = backwardHead(head, trace, 3); // ∂ logit₃ / ∂A
 */
export function backwardHead(head: CompiledHead, trace: HeadTrace, seed: number | Float64Array): Float64Array {
  const out = trace.output;
  let gOut: Float64Array;
  if (typeof seed === 'number') {
    const classes = out.shape[out.shape.length - 1] ?? out.data.length;
    if (!Number.isInteger(seed) || seed < 0 || seed >= classes) {
      throw new MedmaskError('USAGE', `class index ${seed} is out of range: the model has ${classes} classes (0…${classes - 1})`);
    }
    gOut = new Float64Array(out.data.length);
    gOut[seed] = 1;
  } else {
    if (seed.length !== out.data.length) throw new MedmaskError('USAGE', `output gradient has ${seed.length} values; the output has ${out.data.length}`);
    gOut = seed;
  }
  // which tensors depend on the target (only those need gradients)
  const live = new Set<string>([head.target]);
  for (const node of head.nodes) if (node.inputs.some((i) => live.has(i))) for (const o of node.outputs) live.add(o);
  const grads = new Map<string, Float64Array>([[head.output, trace.masks[head.output] ? mulArr(gOut, trace.masks[head.output]!) : gOut]]);
  const accumulate = (name: string, g: Float64Array): void => {
    const m = trace.masks[name];
    if (m) g = mulArr(g, m);
    const prev = grads.get(name);
    if (!prev) grads.set(name, m ? g : Float64Array.from(g)); // own copy: ops may return shared arrays
    else for (let i = 0; i < g.length; i++) prev[i] += g[i]!;
  };
  for (let ni = head.nodes.length - 1; ni >= 0; ni--) {
    const node = head.nodes[ni]!;
    const gy = grads.get(node.outputs[0]!);
    if (!gy) continue;
    const x = node.inputs.map((i) => (i === '' ? undefined : trace.values.get(i) ?? head.constants.get(i)));
    const y = node.outputs.map((o) => trace.values.get(o)!);
    const needs = node.inputs.map((i) => i !== '' && live.has(i));
    const gx = BACKWARD[node.op]!(node, x, y, gy, needs);
    node.inputs.forEach((i, k) => {
      const g = gx[k];
      if (needs[k] && g) accumulate(i, g);
    });
  }
  // masks on the target itself were already applied when accumulating into it
  const g = grads.get(head.target);
  return g ?? new Float64Array(trace.values.get(head.target)!.data.length);
}

/**
 * Logits and, for one class, the gradient of its score with respect to the activation, in one call.
 * @param head - the compiled head
 * @param activation - target activation of one sample
 * @param classIndex - class whose score is differentiated; default: the arg-max of the logits
 * @param opts - masks for Monte Carlo Dropout (see {@link forwardHead})
 * @returns logits, the class used and the gradient
 * @example
 * const { logits, classIndex, gradient } = headGradient(head, { shape: [1, 512, 7, 7], data });
 */
export function headGradient(
  head: CompiledHead,
  activation: HeadTensor,
  classIndex?: number,
  opts: ForwardHeadOptions = {},
): { logits: Float64Array; classIndex: number; gradient: Float64Array; trace: HeadTrace } {
  const trace = forwardHead(head, activation, opts);
  const logits = trace.output.data;
  const c = classIndex ?? argmax(logits);
  return { logits, classIndex: c, gradient: backwardHead(head, trace, c), trace };
}

/**
 * Index of the largest value (the first when tied).
 * @param v - values
 * @returns the index, or -1 when empty
 * @example
 * argmax([0.1, 0.7, 0.2]); // 1
 */
export function argmax(v: ArrayLike<number>): number {
  let best = -1;
  let bv = -Infinity;
  for (let i = 0; i < v.length; i++) if (v[i]! > bv) {
    bv = v[i]!;
    best = i;
  }
  return best;
}

const PASS_THROUGH = new Set(['Flatten', 'Reshape', 'Squeeze', 'Unsqueeze', 'Identity', 'Dropout']);

/**
 * For a head that is global average pooling followed by one linear layer (reshapes, identity and
 * dropout allowed between), the classifier weights of one class: what CAM (Zhou et al. 2016)
 * weights the channels with. `undefined` for any other head.
 * @param head - a compiled head
 * @param classIndex - the class
 * @returns one weight per channel, or undefined
 * @example
 * const w = linearHeadWeights(head, 2); // Gemm row 2 of a ResNet head
 */
export function linearHeadWeights(head: CompiledHead, classIndex: number): Float64Array | undefined {
  const nodes = head.nodes;
  let i = 0;
  const pool = nodes[i++];
  const axesOk = (n: HeadNodeDesc): boolean => {
    const ax = attrInts(n, 'axes') ?? constInts(head.constants.get(n.inputs[1] ?? ''));
    return !!ax && ax.length === 2 && ax.map((a) => (a < 0 ? a + 4 : a)).sort().join() === '2,3';
  };
  if (!pool || !(pool.op === 'GlobalAveragePool' || (pool.op === 'ReduceMean' && axesOk(pool))) || pool.inputs[0] !== head.target) return undefined;
  while (i < nodes.length && PASS_THROUGH.has(nodes[i]!.op)) i++;
  const lin = nodes[i];
  if (!lin) return undefined;
  const w = head.constants.get(lin.inputs[1] ?? '');
  if (!w || w.shape.length !== 2) return undefined;
  let rows: number;
  let cols: number;
  let transposed: boolean;
  if (lin.op === 'Gemm' && !attrNum(lin, 'transA', 0)) {
    transposed = attrNum(lin, 'transB', 0) !== 0; // W is [classes, C]
    [rows, cols] = transposed ? [w.shape[0]!, w.shape[1]!] : [w.shape[1]!, w.shape[0]!];
  } else if (lin.op === 'MatMul') {
    transposed = false; // W is [C, classes]
    [rows, cols] = [w.shape[1]!, w.shape[0]!];
  } else return undefined;
  // after the linear layer only a bias Add / Identity may follow
  for (const n of nodes.slice(i + 1)) if (!(n.op === 'Add' || n.op === 'Identity')) return undefined;
  if (classIndex < 0 || classIndex >= rows) return undefined;
  const scale = lin.op === 'Gemm' ? attrNum(lin, 'alpha', 1) : 1;
  return Float64Array.from({ length: cols }, (_, k) => scale * (transposed ? w.data[classIndex * cols + k]! : w.data[k * rows + classIndex]!));
}
