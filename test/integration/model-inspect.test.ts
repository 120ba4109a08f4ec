import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { registerModelInspect } from '../../src/cli/model-inspect.js';
import { isMedmaskError } from '../../src/core/errors.js';
import { inspectModel } from '../../src/runtime/inspect.js';
import { camModelPath } from '../helpers/cam-fixtures.js';

test('inspect chooses the DenseNet tensor that feeds the global pooling (after the ReLU of forward) and lists it first', async () => {
  const r = await inspectModel(camModelPath('densenet'));
  assert.equal(r.target, '/Relu_output_0');
  assert.deepEqual(r.head.map((n) => n.op), ['GlobalAveragePool', 'Flatten', 'Gemm']);
  assert.deepEqual(r.inputs[0]!.dims, ['batch', 3, 128, 96]);
  assert.deepEqual(Object.values(r.head.at(-1)!.constants), [[4, 32], [4]]);
  assert.deepEqual(r.candidates.map((c) => [c.tensor, c.activations, c.head]), [
    ['/Relu_output_0', [], 'ok'],
    // the pre-activation norm5 output stays a candidate, with the ReLU in its head
    ['/features/norm5/BatchNormalization_output_0', ['Relu'], 'ok'],
  ]);
  const pre = await inspectModel(camModelPath('densenet'), '/features/norm5/BatchNormalization_output_0');
  assert.deepEqual(pre.head.map((n) => n.op), ['Relu', 'GlobalAveragePool', 'Flatten', 'Gemm']);
  assert.equal(pre.candidates[0]!.tensor, '/features/norm5/BatchNormalization_output_0');
});

test('inspect on ResNet: the block output first, its pre-ReLU Add as a candidate', async () => {
  const r = await inspectModel(camModelPath('resnet'));
  assert.deepEqual(r.candidates.map((c) => [c.tensor, c.activations.join()]), [
    ['/layer4/layer4.0/relu_2/Relu_output_0', ''],
    ['/layer4/layer4.0/Add_output_0', 'Relu'],
  ]);
});

test('inspect lists EfficientNet squeeze-excitation poolings as candidates without a usable head, after the chosen one', async () => {
  const r = await inspectModel(camModelPath('efficientnet'));
  assert.equal(r.candidates[0]!.tensor, r.target);
  assert.equal(r.candidates[0]!.head, 'ok');
  assert.ok(r.candidates.length > 2);
  assert.ok(r.candidates.slice(1).every((c) => c.head !== 'ok'));
});

test('inspect on a missing file is NOT_FOUND', async () => {
  await assert.rejects(inspectModel('no-such-model.onnx'), (e: unknown) => isMedmaskError(e) && e.code === 'NOT_FOUND');
});

test('registerModelInspect adds `model inspect <model> [--target] [--json]`', () => {
  const program = new Command('medmask');
  registerModelInspect(program);
  const inspect = program.commands.find((c) => c.name() === 'model')?.commands.find((c) => c.name() === 'inspect');
  assert.ok(inspect);
  assert.deepEqual(inspect.options.map((o) => o.long), ['--target', '--json']);
});

test('inspect by manifest or folder uses the manifest\'s cam.target', async () => {
  const { mkdtempSync, copyFileSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const d = mkdtempSync(join(tmpdir(), 'medmask-inspect-'));
  try {
    copyFileSync(camModelPath('densenet'), join(d, 'model.onnx'));
    writeFileSync(join(d, 'model.json'), JSON.stringify({
      format: 'medmask-model/1', name: 'd', task: 'classify', model: 'model.onnx',
      input: { height: 128, width: 96, channels: 3 }, classes: ['a', 'b', 'c', 'd'],
      cam: { target: '/features/denseblock4/Concat_output_0' },
    }));
    for (const p of [d, join(d, 'model.json')]) {
      const r = await inspectModel(p);
      assert.equal(r.target, '/features/denseblock4/Concat_output_0');
      assert.equal(r.path, join(d, 'model.onnx'));
    }
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
