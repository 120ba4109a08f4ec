/**
 * Finding a model on disk: by manifest, by .onnx (manifest beside it), by folder, or a bare .onnx
 * with defaults from the graph; manifest and graph must agree.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isMedmaskError } from '../../src/core/errors.js';
import { findManifest, resolveModel } from '../../src/runtime/manifest.js';
import { camModelPath } from '../helpers/cam-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'medmask-manifest-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const manifest = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  format: 'medmask-model/1', name: 'r', task: 'classify', model: 'model.onnx',
  input: { height: 128, width: 96, channels: 3 },
  classes: ['a', 'b', 'c', 'd'],
  ...extra,
});

test('a bare .onnx gets its input size from the graph and class_0… names', async () => {
  const m = await resolveModel(camModelPath('resnet'));
  assert.equal(m.manifestPath, undefined);
  assert.deepEqual(m.manifest.input, { name: 'input', layout: 'NCHW', height: 128, width: 96, channels: 3 });
  assert.deepEqual(m.manifest.classes, ['class_0', 'class_1', 'class_2', 'class_3']);
  assert.ok(m.defaults.length > 0);
});

test('model.json beside the .onnx is found from the .onnx path, the .json path and the folder', async () => {
  const d = mkdtempSync(join(dir, 'a-'));
  copyFileSync(camModelPath('resnet'), join(d, 'model.onnx'));
  writeFileSync(join(d, 'model.json'), JSON.stringify(manifest()));
  for (const p of [join(d, 'model.onnx'), join(d, 'model.json'), d]) {
    const m = await resolveModel(p);
    assert.equal(m.manifestPath, join(d, 'model.json'), p);
    assert.deepEqual(m.manifest.classes, ['a', 'b', 'c', 'd']);
  }
  // <name>.json wins; a model.json naming another file is not this model's
  copyFileSync(camModelPath('resnet'), join(d, 'other.onnx'));
  assert.equal(await findManifest(join(d, 'other.onnx')), undefined);
  writeFileSync(join(d, 'other.json'), JSON.stringify(manifest({ model: 'other.onnx', classes: ['w', 'x', 'y', 'z'] })));
  assert.deepEqual((await resolveModel(join(d, 'other.onnx'))).manifest.classes, ['w', 'x', 'y', 'z']);
});

async function rejects(p: string, re: RegExp, code = 'MODEL_INVALID'): Promise<void> {
  await assert.rejects(resolveModel(p), (e: unknown) => {
    assert.ok(isMedmaskError(e), String(e));
    assert.equal(e.code, code);
    assert.match(e.message, re);
    return true;
  });
}

test('manifest and graph must agree: input size, class count, names; bad JSON says where', async () => {
  const d = mkdtempSync(join(dir, 'b-'));
  copyFileSync(camModelPath('resnet'), join(d, 'model.onnx'));
  const put = (m: unknown): string => {
    writeFileSync(join(d, 'model.json'), typeof m === 'string' ? m : JSON.stringify(m));
    return join(d, 'model.json');
  };
  await rejects(put(manifest({ input: { height: 224, width: 96, channels: 3 } })), /input\.height: the manifest says 224, the graph input "input" has 128/);
  await rejects(put(manifest({ classes: ['a', 'b'] })), /classes: the manifest names 2 classes, the graph output "logits" has 4/);
  await rejects(put(manifest({ input: { name: 'image', height: 128, width: 96, channels: 3 } })), /input\.name: "image" is not an input of the graph \(inputs: input\)/);
  await rejects(put('{\n  "format": "medmask-model/1",\n  "name": "r",\n}'), /not valid JSON at line 4/);
  await rejects(put(manifest({ model: 'missing.onnx' })), /model: "missing\.onnx" does not exist/, 'NOT_FOUND');
  await rejects(put(manifest({ task: 'segment', input: { patch: [8, 8, 8], channels: 1 }, labels: { 1: 'x' }, classes: undefined })), /needs a classifier/);
  await rejects(join(d, 'nothing.onnx'), /does not exist/, 'NOT_FOUND');
});

test('a corrupt .onnx is MODEL_INVALID', async () => {
  const p = join(dir, 'corrupt.onnx');
  writeFileSync(p, Buffer.from('this is not a protobuf at all, just text that claims to be a model'));
  await rejects(p, /not a readable ONNX model|no graph nodes/);
});
