/**
 * medmask's runtime + head evaluator + CAM methods against torch autograd references
 * (tools/fixtures/make_cam_fixtures.py: torchvision ResNet / DenseNet / EfficientNet with seeded
 * weights, hooks on pytorch-grad-cam's target layers).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { computeCam, type CamMethod } from '../../src/core/explain/cam.js';
import { backwardHead, compileHead, forwardHead, linearHeadWeights } from '../../src/core/explain/head.js';
import { isMedmaskError } from '../../src/core/errors.js';
import { decodeOnnx, extractHead, findTargetCandidates } from '../../src/runtime/onnx-graph.js';
import { ClassifierSession } from '../../src/runtime/session.js';
import { camIndex, camModelPath, camTensor, correlation, relErr } from '../helpers/cam-fixtures.js';

/** ONNX tensor for each torch module hooked by the fixture script (torch.onnx scope names). */
const ONNX_TENSOR: Record<string, Record<string, string>> = {
  resnet: { 'layer4[-1]': '/layer4/layer4.0/relu_2/Relu_output_0' },
  densenet: {
    'features[-1]': '/features/norm5/BatchNormalization_output_0',
    'features.denseblock4': '/features/denseblock4/Concat_output_0',
  },
  efficientnet: {
    'features[-1]': '/features/features.8/features.8.2/Mul_output_0',
    // the BatchNorm features[-1][1] is fused into the preceding Conv by the eval export
    'features[-1][1]': '/features/features.8/features.8.0/Conv_output_0',
  },
};
/**
 * The default target of each model and the torch reference of its activation: the hooked module's
 * output; for DenseNet the tensor the pooling reads, i.e. norm5's output through the ReLU of
 * torchvision's `forward` (the fixture holds norm5's pre-ReLU output, cloned in the hook).
 */
const DEFAULT_TARGET: Record<string, { tensor: string; ref: string; relu?: boolean }> = {
  resnet: { tensor: ONNX_TENSOR.resnet!['layer4[-1]']!, ref: 'layer4[-1]' },
  densenet: { tensor: '/Relu_output_0', ref: 'features[-1]', relu: true },
  efficientnet: { tensor: ONNX_TENSOR.efficientnet!['features[-1]']!, ref: 'features[-1]' },
};

const index = camIndex();
const input = (i: number): { data: Float32Array; dims: number[] } => {
  const t = camTensor(`input${i}`);
  return { data: Float32Array.from(t.data), dims: [1, ...t.shape] };
};

for (const model of Object.keys(ONNX_TENSOR)) {
  describe(`${model} vs torch autograd`, () => {
    let session: ClassifierSession;
    before(async () => {
      session = await ClassifierSession.create(camModelPath(model), { threads: 2 });
    });
    after(async () => session.release());

    test('the default target is the tensor that feeds the global pooling', () => {
      assert.equal(session.target, DEFAULT_TARGET[model]!.tensor);
    });

    test('onnxruntime logits and target activation match torch (float64) to 1e-4 relative', async () => {
      for (const i of [0, 1]) {
        const x = input(i);
        const r = await session.run(x.data, x.dims);
        const { ref, relu } = DEFAULT_TARGET[model]!;
        const key = `${model}/${ref}/input${i}`;
        const act = camTensor(`${key}/activation`);
        assert.deepEqual(r.activationDims, [1, ...act.shape]);
        assert.ok(relErr(r.logits, camTensor(`${key}/logits`).data) < 1e-4);
        const expected = relu ? act.data.map((v) => Math.max(v, 0)) : act.data;
        assert.ok(relErr(r.activation, expected) < 1e-4);
      }
    });

    for (const [tname, tensor] of Object.entries(ONNX_TENSOR[model]!)) {
      const target = index.models[model]!.targets![tname]!;
      test(`target ${tname}: head logits, gradients (1e-4) and CAM maps (r > 0.999) match torch`, () => {
        const head = compileHead(extractHead(decodeOnnx(readFileSync(camModelPath(model))), tensor));
        for (const c of target.cases) {
          const key = `${model}/${tname}/input${c.input}`;
          const A = camTensor(`${key}/activation`);
          const trace = forwardHead(head, { shape: [1, ...A.shape], data: Float64Array.from(A.data) });
          assert.ok(relErr(trace.output.data, camTensor(`${key}/logits`).data) < 1e-4, 'logits');
          const g = backwardHead(head, trace, c.class);
          const gRef = camTensor(`${c.key}/grad`).data;
          const e = relErr(g, gRef);
          assert.ok(e < 1e-4, `gradient relative error ${e}`);
          const [C, h, w] = A.shape as [number, number, number];
          for (const method of c.methods as CamMethod[]) {
            const classWeights = method === 'cam' ? linearHeadWeights(head, c.class) : undefined;
            if (method === 'cam') assert.ok(classWeights, 'a pooling + linear head yields CAM weights');
            const cam = computeCam(method, { activation: A.data, gradient: g, channels: C, height: h, width: w, classWeights });
            const ref = camTensor(`${c.key}/${method}`).data;
            const refMax = Math.max(...ref);
            if (refMax === 0) {
              assert.ok(Math.max(...cam.raw) < 1e-6, `${method}: torch map is zero, so must ours be`);
              continue;
            }
            assert.ok(relErr(cam.raw, ref) < 1e-3, `${method} raw map relative error ${relErr(cam.raw, ref)}`);
            const r = correlation(cam.normalized, ref);
            assert.ok(r > 0.999, `${method} ${c.key}: correlation ${r}`);
          }
        }
      });
    }
  });
}

describe('graph reading and runtime errors', () => {
  test('candidates include the EfficientNet squeeze-excitation poolings, whose heads are refused', () => {
    const model = decodeOnnx(readFileSync(camModelPath('efficientnet')));
    const cands = findTargetCandidates(model);
    assert.ok(cands.length > 2);
    assert.equal(cands.at(-1)!.tensor, ONNX_TENSOR.efficientnet!['features[-1]']);
    assert.throws(() => extractHead(model, cands[0]!.tensor), (e: unknown) => isMedmaskError(e) && e.code === 'MODEL_INVALID' && /without the target/.test(e.message));
  });

  test('a ResNet target inside the last block (a skip connection bypasses it) is refused with a hint', () => {
    const model = decodeOnnx(readFileSync(camModelPath('resnet')));
    assert.throws(
      () => extractHead(model, '/layer4/layer4.0/conv3/Conv_output_0'),
      (e: unknown) => isMedmaskError(e) && e.code === 'MODEL_INVALID' && /skip connection/.test(e.message) && /branches join/.test(e.hint ?? ''),
    );
  });

  test('a corrupt .onnx is MODEL_INVALID', async () => {
    const bytes = readFileSync(camModelPath('densenet')).subarray(0, 5000);
    await assert.rejects(ClassifierSession.create(bytes, { source: 'cut.onnx' }), (e: unknown) => isMedmaskError(e) && e.code === 'MODEL_INVALID' && /cut\.onnx/.test(e.message));
  });

  test('an unknown target tensor and an out-of-range class are clear errors', async () => {
    await assert.rejects(ClassifierSession.create(camModelPath('densenet'), { target: 'nope' }), (e: unknown) => isMedmaskError(e) && /"nope" is not in the graph/.test(e.message));
    const s = await ClassifierSession.create(camModelPath('densenet'));
    const x = input(0);
    const r = await s.run(x.data, x.dims);
    const trace = forwardHead(s.head, { shape: r.activationDims, data: Float64Array.from(r.activation) });
    assert.throws(() => backwardHead(s.head, trace, index.numClasses), (e: unknown) => isMedmaskError(e) && e.code === 'USAGE' && /out of range/.test(e.message));
    await s.release();
  });

  test('a wrong input size is USAGE naming both shapes', async () => {
    const s = await ClassifierSession.create(camModelPath('densenet'));
    await assert.rejects(s.run(new Float32Array(3 * 64 * 64), [1, 3, 64, 64]), (e: unknown) => isMedmaskError(e) && e.code === 'USAGE' && /1, 3, 64, 64/.test(e.message));
    await s.release();
  });

  test('--device cuda without the CUDA execution provider is an ENVIRONMENT error', async (t) => {
    let s: ClassifierSession | undefined;
    try {
      s = await ClassifierSession.create(camModelPath('densenet'), { device: 'cuda' });
    } catch (e) {
      assert.ok(isMedmaskError(e) && e.code === 'ENVIRONMENT' && /CUDA/.test(e.message) && /--device cpu/.test(e.hint ?? ''));
      return;
    }
    t.diagnostic('CUDA execution provider present: session created');
    await s.release();
  });
});
