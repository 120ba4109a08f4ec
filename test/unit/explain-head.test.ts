/**
 * The head evaluator's gradients against central finite differences on random heads covering every
 * supported op, and its errors.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isMedmaskError } from '../../src/core/errors.js';
import {
  backwardHead,
  compileHead,
  forwardHead,
  linearHeadWeights,
  type HeadDescription,
  type HeadNodeDesc,
  type HeadTensor,
} from '../../src/core/explain/head.js';
import { mulberry32 } from '../../src/core/uncertainty/mc-dropout.js';

const rand = mulberry32(12345);
const randn = (n: number, s = 1): number[] => Array.from({ length: n }, () => s * (rand() + rand() + rand() - 1.5) * 2);
const node = (op: string, inputs: string[], outputs: string[], attrs: HeadNodeDesc['attrs'] = {}): HeadNodeDesc => ({ op, name: `/${op}_${outputs[0]}`, inputs, outputs, attrs });
const C = 6, H = 4, W = 3, K = 5;

/** dL/dA by central differences of L = Σ seed · output. */
function finiteDiff(desc: HeadDescription, a: HeadTensor, seed: number[], masks?: Record<string, Float64Array>): Float64Array {
  const head = compileHead(desc);
  const f = (d: Float64Array): number => {
    const y = forwardHead(head, { shape: a.shape, data: d }, masks ? { masks } : {}).output.data;
    return y.reduce((s, v, i) => s + v * seed[i]!, 0);
  };
  const g = new Float64Array(a.data.length);
  const eps = 1e-6;
  for (let i = 0; i < a.data.length; i++) {
    const p = Float64Array.from(a.data);
    const m = Float64Array.from(a.data);
    p[i]! += eps;
    m[i]! -= eps;
    g[i] = (f(p) - f(m)) / (2 * eps);
  }
  return g;
}

function check(desc: HeadDescription, masks?: Record<string, Float64Array>): void {
  const head = compileHead(desc);
  const a: HeadTensor = { shape: [1, C, H, W], data: Float64Array.from(randn(C * H * W)) };
  const trace = forwardHead(head, a, masks ? { masks } : {});
  const K2 = trace.output.data.length;
  for (const seed of [Array.from({ length: K2 }, (_, i) => (i === 1 ? 1 : 0)), randn(K2)]) {
    const g = backwardHead(head, trace, Float64Array.from(seed));
    const fd = finiteDiff(desc, a, seed, masks);
    const scale = Math.max(...fd.map(Math.abs), 1e-12);
    for (let i = 0; i < g.length; i++) assert.ok(Math.abs(g[i]! - fd[i]!) / scale < 1e-6, `${desc.nodes.map((n) => n.op).join('→')}: element ${i}: ${g[i]} vs ${fd[i]}`);
  }
}

const gemmConsts = (k: number, c: number, transB: boolean) => ({
  W: { dims: transB ? [k, c] : [c, k], data: randn(k * c) },
  b: { dims: [k], data: randn(k) },
});

test('BatchNormalization → Relu → GlobalAveragePool → Flatten → Gemm(transB) (DenseNet head)', () => {
  const g = gemmConsts(K, C, true);
  check({
    target: 'A', output: 'y',
    nodes: [
      node('BatchNormalization', ['A', 's', 'bb', 'm', 'v'], ['bn'], { epsilon: 1e-5 }),
      node('Relu', ['bn'], ['r']),
      node('GlobalAveragePool', ['r'], ['p']),
      node('Flatten', ['p'], ['f'], { axis: 1 }),
      node('Gemm', ['f', 'W', 'b'], ['y'], { transB: 1 }),
    ],
    constants: {
      s: { dims: [C], data: randn(C) }, bb: { dims: [C], data: randn(C) }, m: { dims: [C], data: randn(C) },
      v: { dims: [C], data: randn(C).map((x) => x * x + 0.3) }, ...g,
    },
  });
});

test('Sigmoid · Mul (SiLU) → ReduceMean(keepdims 0) → MatMul → Add → Softmax', () => {
  check({
    target: 'A', output: 'y',
    nodes: [
      node('Sigmoid', ['A'], ['s']),
      node('Mul', ['A', 's'], ['silu']),
      node('ReduceMean', ['silu'], ['p'], { axes: [2, 3], keepdims: 0 }),
      node('MatMul', ['p', 'W'], ['mm']),
      node('Add', ['mm', 'b'], ['z']),
      node('Softmax', ['z'], ['y'], { axis: -1 }),
    ],
    constants: { W: { dims: [C, K], data: randn(C * K) }, b: { dims: [K], data: randn(K) } },
  });
});

test('GlobalMaxPool, Reshape, Dropout, Identity, Gemm(alpha, beta, no transB), hidden Relu layer, Sub/Div broadcasts', () => {
  const hidden = 7;
  check({
    target: 'A', output: 'y',
    nodes: [
      node('Sub', ['A', 'mu'], ['c']),
      node('Div', ['c', 'sd'], ['n']),
      node('GlobalMaxPool', ['n'], ['p']),
      node('Reshape', ['p', 'shape'], ['f']),
      node('Dropout', ['f', 'ratio'], ['d', 'dmask']),
      node('Gemm', ['d', 'W1', 'b1'], ['h1'], { alpha: 0.7, beta: 1.3 }),
      node('Relu', ['h1'], ['r1']),
      node('Identity', ['r1'], ['i1']),
      node('Gemm', ['i1', 'W2', 'b2'], ['y'], { transB: 1 }),
    ],
    constants: {
      mu: { dims: [1, C, 1, 1], data: randn(C) },
      sd: { dims: [C, 1, 1], data: randn(C).map((x) => Math.abs(x) + 0.5) },
      shape: { dims: [2], data: [1, -1] },
      ratio: { dims: [], data: [0.3] },
      W1: { dims: [C, hidden], data: randn(C * hidden) }, b1: { dims: [1, hidden], data: randn(hidden) },
      W2: { dims: [K, hidden], data: randn(K * hidden) }, b2: { dims: [K], data: randn(K) },
    },
  });
});

test('ReduceSum with axes as input, Squeeze / Unsqueeze, the target read twice (Add of two branches), a dropout mask', () => {
  const desc: HeadDescription = {
    target: 'A', output: 'y',
    nodes: [
      node('Relu', ['A'], ['r']),
      node('Add', ['A', 'r'], ['s']),
      node('ReduceSum', ['s', 'axes'], ['p'], { keepdims: 1 }),
      node('Squeeze', ['p', 'sq'], ['q']),
      node('Unsqueeze', ['q', 'uq'], ['u']),
      node('Flatten', ['u'], ['f']),
      node('Gemm', ['f', 'W', 'b'], ['y'], { transB: 1 }),
    ],
    constants: { axes: { dims: [2], data: [-1, -2] }, sq: { dims: [2], data: [2, 3] }, uq: { dims: [1], data: [2] }, ...gemmConsts(K, C, true) },
  };
  check(desc);
  const mask = Float64Array.from({ length: C }, (_, i) => (i % 3 === 0 ? 0 : 1.5));
  check(desc, { f: mask });
});

test('an unsupported op names the op and node, lists supported ops and suggests another target', () => {
  const desc: HeadDescription = {
    target: 'A', output: 'y',
    nodes: [node('Conv', ['A', 'k'], ['c']), node('GlobalAveragePool', ['c'], ['y'])],
    constants: { k: { dims: [1, C, 1, 1], data: randn(C) } },
  };
  assert.throws(() => compileHead(desc), (e: unknown) =>
    isMedmaskError(e) && e.code === 'MODEL_INVALID' && /\/Conv_c/.test(e.message) && /\(Conv\)/.test(e.message) &&
    /GlobalAveragePool/.test(e.hint ?? '') && /Gemm/.test(e.hint ?? '') && /target tensor/.test(e.hint ?? ''));
});

test('a head input that is neither from the target nor constant is refused', () => {
  const desc: HeadDescription = { target: 'A', output: 'y', nodes: [node('Add', ['A', 'skip'], ['y'])], constants: {} };
  assert.throws(() => compileHead(desc), (e: unknown) => isMedmaskError(e) && /"skip"/.test(e.message));
});

test('linearHeadWeights gives the class row of a pooling + linear head and nothing for other heads', () => {
  const g = gemmConsts(K, C, true);
  const head = compileHead({
    target: 'A', output: 'y',
    nodes: [node('GlobalAveragePool', ['A'], ['p']), node('Flatten', ['p'], ['f']), node('Gemm', ['f', 'W', 'b'], ['y'], { transB: 1 })],
    constants: g,
  });
  assert.deepEqual([...linearHeadWeights(head, 2)!], g.W.data.slice(2 * C, 3 * C));
  const relu = compileHead({
    target: 'A', output: 'y',
    nodes: [node('Relu', ['A'], ['r']), node('GlobalAveragePool', ['r'], ['p']), node('Flatten', ['p'], ['f']), node('Gemm', ['f', 'W', 'b'], ['y'], { transB: 1 })],
    constants: g,
  });
  assert.equal(linearHeadWeights(relu, 2), undefined);
});
