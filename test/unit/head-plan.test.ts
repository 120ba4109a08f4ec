/**
 * The fast path of explanations and head MC (head-plan.ts) against the general head evaluator:
 * same logits, maps, MC statistics and per-pixel std, for torchvision heads (from the fixture
 * graphs) and synthetic ones covering every pointwise op, pooling, both tails and both sparse
 * branches (rate below and above ½).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import type { CamMethod } from '../../src/core/explain/cam.js';
import { explainActivation, type ActivationExplanation } from '../../src/core/explain/explain.js';
import { compileHead, type CompiledHead, type HeadDescription, type HeadNodeDesc } from '../../src/core/explain/head.js';
import { planHead } from '../../src/core/explain/head-plan.js';
import { dropoutSite, mulberry32 } from '../../src/core/uncertainty/mc-dropout.js';
import { decodeOnnx, defaultTarget, extractHead } from '../../src/runtime/onnx-graph.js';
import { camModelPath, relErr } from '../helpers/cam-fixtures.js';

const rand = mulberry32(777);
const randn = (n: number, s = 1): number[] => Array.from({ length: n }, () => s * (rand() + rand() + rand() - 1.5) * 2);
const node = (op: string, inputs: string[], outputs: string[], attrs: HeadNodeDesc['attrs'] = {}): HeadNodeDesc => ({ op, name: `/${op}_${outputs[0]}`, inputs, outputs, attrs });

function same(a: ActivationExplanation, b: ActivationExplanation, what: string): void {
  assert.ok(relErr(a.logits, b.logits) < 1e-6, `${what}: logits ${relErr(a.logits, b.logits)}`);
  assert.deepEqual(a.maps.map((m) => m.classIndex), b.maps.map((m) => m.classIndex));
  a.maps.forEach((m, i) => {
    const o = b.maps[i]!;
    assert.ok(relErr(m.raw, o.raw) < 1e-6, `${what} class ${m.classIndex}: raw ${relErr(m.raw, o.raw)}`);
    assert.ok(relErr(m.normalized, o.normalized) < 1e-6, `${what} class ${m.classIndex}: normalized`);
    if (o.std) assert.ok(relErr(m.std!, o.std) < 1e-5, `${what} class ${m.classIndex}: std ${relErr(m.std!, o.std)}`);
  });
  if (b.mc) {
    for (const k of ['predictiveEntropy', 'expectedEntropy', 'mutualInformation'] as const) {
      assert.ok(Math.abs(a.mc![k] - b.mc[k]) < 1e-5 * Math.max(1, b.mc[k]), `${what}: ${k} ${a.mc![k]} vs ${b.mc[k]}`);
    }
    assert.ok(relErr(a.mc!.meanProbability, b.mc.meanProbability) < 1e-5, `${what}: mean probability`);
  }
}

/** Run fast and general on one head and compare every output. */
function agree(head: CompiledHead, C: number, h: number, w: number, N: number, methods: CamMethod[], what: string, probability?: 'softmax' | 'sigmoid'): void {
  const site = dropoutSite(head);
  assert.ok(planHead(head, C, site), `${what}: the fast path applies`);
  const data = Float32Array.from(randn(C * h * w), (v, i) => v + 0.4 + 0.3 * Math.sin(i));
  const classNames = Array.from({ length: N }, (_, i) => `c${i}`);
  for (const method of methods) {
    for (const rate of [0.3, 0.7]) {
      const opts = { classNames, method, classes: 'all', ...(probability ? { probability } : {}), mc: { samples: 7, rate, seed: 11 } } as const;
      const fast = explainActivation(head, { shape: [1, C, h, w], data }, opts);
      const gen = explainActivation(head, { shape: [1, C, h, w], data }, { ...opts, general: true });
      same(fast, gen, `${what} ${method} p=${rate}`);
    }
  }
}

const C = 12, H = 3, W = 4, N = 5;
const gemm = (transB: boolean) => ({ W: { dims: transB ? [N, C] : [C, N], data: randn(N * C) }, b: { dims: [N], data: randn(N) } });

test('torchvision heads from the fixture graphs: ResNet (GAP → Gemm), DenseNet (GAP → Gemm; at norm5 BN → ReLU → GAP → Gemm), EfficientNet', () => {
  for (const [m, C2, h, w] of [['resnet', 512, 4, 3], ['densenet', 32, 4, 3], ['efficientnet', 320, 4, 3]] as const) {
    const model = decodeOnnx(readFileSync(camModelPath(m)));
    const head = compileHead(extractHead(model, defaultTarget(model)));
    agree(head, C2, h, w, 4, ['xgradcam', 'gradcam', 'gradcampp', 'cam'], m);
  }
  const dense = decodeOnnx(readFileSync(camModelPath('densenet')));
  const norm5 = compileHead(extractHead(dense, '/features/norm5/BatchNormalization_output_0'));
  agree(norm5, 32, 4, 3, 4, ['xgradcam', 'gradcam', 'gradcampp'], 'densenet norm5');
});

test('pointwise ops before the pooling: BatchNorm, Sigmoid, per-channel Add/Sub/Mul/Div; ReduceMean keepdims 0 → MatMul → Add', () => {
  const desc: HeadDescription = {
    target: 'A', output: 'y',
    nodes: [
      node('BatchNormalization', ['A', 's', 'bb', 'mu', 'var'], ['bn'], { epsilon: 1e-3 }),
      node('Sub', ['bn', 'k1'], ['s1']),
      node('Relu', ['s1'], ['r']),
      node('Mul', ['k2', 'r'], ['m']),
      node('Div', ['m', 'k3'], ['d']),
      node('Sigmoid', ['d'], ['sg']),
      node('ReduceMean', ['sg'], ['p'], { axes: [2, 3], keepdims: 0 }),
      node('MatMul', ['p', 'W'], ['mm']),
      node('Add', ['b', 'mm'], ['y']),
    ],
    constants: {
      s: { dims: [C], data: randn(C) }, bb: { dims: [C], data: randn(C) }, mu: { dims: [C], data: randn(C) }, var: { dims: [C], data: randn(C).map((v) => v * v + 0.1) },
      k1: { dims: [1, C, 1, 1], data: randn(C) }, k2: { dims: [C, 1, 1], data: randn(C) }, k3: { dims: [1], data: [1.7] },
      W: { dims: [C, N], data: randn(C * N) }, b: { dims: [N], data: randn(N) },
    },
  };
  agree(compileHead(desc), C, H, W, N, ['xgradcam', 'gradcam', 'gradcampp'], 'pointwise');
});

test('GlobalMaxPool; Gemm without transB, alpha and beta; sigmoid outputs (multi-label statistics)', () => {
  const desc: HeadDescription = {
    target: 'A', output: 'y',
    nodes: [node('GlobalMaxPool', ['A'], ['p']), node('Flatten', ['p'], ['f'], { axis: 1 }), node('Gemm', ['f', 'W', 'b'], ['y'], { alpha: 0.7, beta: 1.3 })],
    constants: gemm(false),
  };
  agree(compileHead(desc), C, H, W, N, ['xgradcam', 'gradcam', 'gradcampp'], 'max-pool', 'sigmoid');
});

test('a non-linear tail (hidden ReLU layer, then Softmax in the graph) takes the general tail with the same masks', () => {
  const Hd = 7;
  const desc: HeadDescription = {
    target: 'A', output: 'y',
    nodes: [
      node('GlobalAveragePool', ['A'], ['p']),
      node('Flatten', ['p'], ['f'], { axis: 1 }),
      node('Gemm', ['f', 'W1', 'b1'], ['h1'], { transB: 1 }),
      node('Relu', ['h1'], ['r1']),
      node('Gemm', ['r1', 'W2', 'b2'], ['z'], { transB: 1 }),
      node('Softmax', ['z'], ['y'], { axis: -1 }),
    ],
    constants: { W1: { dims: [Hd, C], data: randn(Hd * C) }, b1: { dims: [Hd], data: randn(Hd) }, W2: { dims: [N, Hd], data: randn(N * Hd) }, b2: { dims: [N], data: randn(N) } },
  };
  const head = compileHead(desc);
  const plan = planHead(head, C, dropoutSite(head))!;
  assert.equal(plan.linear, undefined);
  agree(head, C, H, W, N, ['xgradcam', 'gradcampp'], 'mlp');
});

test('heads outside the fast path are refused by planHead (and explained by the general evaluator)', () => {
  const silu: HeadDescription = {
    target: 'A', output: 'y',
    nodes: [node('Sigmoid', ['A'], ['s']), node('Mul', ['A', 's'], ['m']), node('GlobalAveragePool', ['m'], ['p']), node('Flatten', ['p'], ['f'], { axis: 1 }), node('Gemm', ['f', 'W', 'b'], ['y'], { transB: 1 })],
    constants: gemm(true),
  };
  const head = compileHead(silu);
  assert.equal(planHead(head, C, 'f'), undefined);
  const e = explainActivation(head, { shape: [1, C, H, W], data: Float32Array.from(randn(C * H * W)) }, { classNames: ['a', 'b', 'c', 'd', 'e'], mc: { samples: 3, rate: 0.2 } });
  assert.equal(e.maps.length, 1);
  assert.ok(e.mc && e.maps[0]!.std);
});
