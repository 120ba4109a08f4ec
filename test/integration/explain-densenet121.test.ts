/**
 * The default CAM target of a DenseNet-121 (torchvision, seeded, reduced widths) against a reference
 * recorded the way pytorch-grad-cam records it (tools/fixtures/make_densenet121_cam_fixture.py:
 * hooks on `features[-1]`, torchvision's own forward with its in-place ReLU): whole `medmask explain`
 * runs (PNG → preprocessing → onnxruntime → head gradient → map → .npy) for XGrad-CAM, CAM, Grad-CAM
 * and Grad-CAM++.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { CamMethod } from '../../src/core/explain/cam.js';
import { backwardHead, forwardHead } from '../../src/core/explain/head.js';
import { softmax } from '../../src/core/uncertainty/mc-dropout.js';
import { decodeNpy } from '../../src/io/npy.js';
import { runExplain, type ImageModelResult } from '../../src/pipeline/explain.js';
import { inspectModel } from '../../src/runtime/inspect.js';
import { ClassifierSession } from '../../src/runtime/session.js';
import { correlation, densenet121Fixture, relErr } from '../helpers/cam-fixtures.js';

const fx = densenet121Fixture();
const POST_RELU = '/Relu_output_0';
const NORM5 = '/features/norm5/BatchNormalization_output_0';
const dir = mkdtempSync(join(tmpdir(), 'medmask-densenet121-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const image = join(fx.dir, 'input.png');
const classes = fx.index.cases.map((c) => c.class);

/** A model folder: the gunzipped ONNX and the fixture's manifest, with `cam` set when given. */
function modelFolder(name: string, cam?: Record<string, unknown>): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'model.onnx'), fx.onnx());
  const m = JSON.parse(readFileSync(join(fx.dir, 'model.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(d, 'model.json'), JSON.stringify({ ...m, name, ...(cam ? { cam } : {}) }));
  return d;
}

/** `medmask explain` on the fixture image; the raw map of each class. */
async function explain(folder: string, method: CamMethod): Promise<{ result: ImageModelResult; raw: Map<number, Float32Array> }> {
  const out = join(dir, `out-${folder.split('/').at(-1)}-${method}`);
  await runExplain({ models: [folder], images: image, out, classes: classes.join(','), method, threads: 2, overlay: false });
  const name = folder.split('/').at(-1)!;
  const result = JSON.parse(readFileSync(join(out, 'input', `${name}.json`), 'utf8')) as ImageModelResult;
  const raw = new Map(result.maps.map((m) => [m.index, decodeNpy(readFileSync(join(out, m.files.raw)), m.files.raw).data as Float32Array]));
  return { result, raw };
}

test('model inspect: the ReLU output that feeds the pooling is the default and listed first; norm5 stays a candidate', async () => {
  const r = await inspectModel(modelFolder('inspect'));
  assert.equal(r.target, POST_RELU);
  assert.deepEqual(r.head.map((n) => n.op), ['GlobalAveragePool', 'Flatten', 'Gemm']);
  assert.deepEqual(r.candidates.slice(0, 2).map((c) => [c.tensor, c.activations.join(), c.head]), [
    [POST_RELU, '', 'ok'],
    [NORM5, 'Relu', 'ok'],
  ]);
});

test('activation and gradient at the default target equal pytorch-grad-cam\'s activation and autograd\'s gradient', async () => {
  const s = await ClassifierSession.create(fx.onnx(), { threads: 2 });
  try {
    const x = fx.tensor('input');
    const r = await s.run(Float32Array.from(x.data), fx.index.inputShape);
    const A = fx.tensor('gradcam_hook/activation');
    assert.deepEqual(r.activationDims, [1, ...A.shape]);
    assert.ok(relErr(r.logits, fx.tensor('logits').data) < 1e-4, 'logits');
    assert.ok(relErr(r.activation, A.data) < 1e-4, `activation ${relErr(r.activation, A.data)}`);
    const trace = forwardHead(s.head, { shape: r.activationDims, data: Float64Array.from(r.activation) });
    for (const c of fx.index.cases) {
      const g = backwardHead(s.head, trace, c.class);
      assert.ok(relErr(g, fx.tensor(`${c.key}/grad`).data) < 1e-4, `gradient class ${c.class}`);
      // pytorch-grad-cam's hook gradient is the same gradient masked by the ReLU (taken before it)
      const masked = Array.from(g, (v, i) => (A.data[i]! > 0 ? v : 0));
      assert.ok(relErr(masked, fx.tensor(`${c.key}/grad_hook`).data) < 1e-4, `hook gradient class ${c.class}`);
    }
  } finally {
    await s.release();
  }
});

for (const [method, refName] of [
  ['xgradcam', 'pgc/xgradcam'], // pytorch-grad-cam's own numbers
  ['cam', 'cam'],
  ['gradcam', 'gradcam'],
  ['gradcampp', 'gradcampp'],
] as const) {
  test(`medmask explain --method ${method}: whole maps equal the reference ${refName} (relative error < 1e-3, r > 0.999)`, async () => {
    const { result, raw } = await explain(modelFolder(`d121-${method}`), method);
    assert.equal(result.target, POST_RELU);
    assert.deepEqual(result.activationShape, fx.tensor('gradcam_hook/activation').shape);
    assert.ok(relErr(Object.values(result.probabilities), softmax(fx.tensor('logits').data)) < 1e-4, 'probabilities');
    for (const c of fx.index.cases) {
      const ref = fx.tensor(`${c.key}/${refName}`).data;
      const map = raw.get(c.class)!;
      assert.ok(Math.max(...ref) > 0, 'a non-trivial reference map');
      assert.ok(relErr(map, ref) < 1e-3, `class ${c.class}: relative error ${relErr(map, ref)}`);
      assert.ok(correlation(map, ref) > 0.999, `class ${c.class}: r = ${correlation(map, ref)}`);
    }
  });
}

test('XGrad-CAM at the old target (norm5, before the ReLU; cam.target pins it) is a different map', async (t) => {
  const { result, raw } = await explain(modelFolder('d121-norm5', { target: NORM5 }), 'xgradcam');
  assert.equal(result.target, NORM5);
  const rs = fx.index.cases.map((c) => correlation(raw.get(c.class)!, fx.tensor(`${c.key}/pgc/xgradcam`).data));
  t.diagnostic(`r with pytorch-grad-cam at norm5: ${rs.map((r) => r.toFixed(3)).join(', ')}`);
  assert.ok(rs.some((r) => r < 0.99), 'the pre-ReLU maps differ from pytorch-grad-cam\'s');
});
