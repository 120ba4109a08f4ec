// Window placement of the sliding window: by default the grid of the whole volume (the windows a
// plain sliding window runs) with tissue-free windows skipped; `crop: true` lays the grid over the
// body's bounding box instead. A pointwise model (1×1×1 Conv) gives the closed form wherever a
// window ran, whatever the placement.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pointwiseModel } from '../helpers/onnx-seg.js';
import { Segmenter } from '../../src/runtime/segment.js';
import { createVolume, type Vec3 } from '../../src/core/volume.js';
import { Rng } from '../../src/core/random.js';

test('segment: windows of the whole grid minus tissue-free ones by default; crop lays them over the body box', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-seg-crop-'));
  try {
    const W = [-4, 6, 3], B = [1.5, -2, -0.5];
    writeFileSync(join(dir, 'model.onnx'), pointwiseModel(W, B));
    writeFileSync(join(dir, 'model.json'), JSON.stringify({
      format: 'medmask-model/1', name: 'pointwise', task: 'segment', model: 'model.onnx',
      input: { name: 'input', layout: 'NCDHW', patch: [16, 12, 8], channels: 1 },
      preprocess: { intensity: { mode: 'ct-window', center: 40, width: 400 } }, output: { name: 'logits', activation: 'softmax' }, labels: { 1: 'liver', 2: 'spleen' },
    }));
    const shape: Vec3 = [60, 50, 24];
    const rng = new Rng(3);
    const inBody = (x: number, y: number) => x >= 10 && x < 31 && y >= 12 && y < 29;
    const data = new Int16Array(60 * 50 * 24);
    for (let z = 0, v = 0; z < 24; z++) for (let y = 0; y < 50; y++) for (let x = 0; x < 60; x++, v++) data[v] = inBody(x, y) ? Math.round(rng.uniform(-300, 400)) : -1000;
    const ct = createVolume(shape, 'int16', { data, spacing: [1, 1, 2], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] });
    const seg = await Segmenter.load(dir, { threads: 1 });
    const all = await seg.predict(ct, { skipEmpty: false, precision: 'float32' });
    const plain = await seg.predict(ct, { precision: 'float32' });
    const crop = await seg.predict(ct, { precision: 'float32', crop: true });
    assert.equal(plain.windows.total, all.windows.total, 'the default keeps the whole grid');
    assert.ok(plain.windows.skipped > 0 && plain.windows.run < all.windows.run, JSON.stringify(plain.windows));
    assert.ok(crop.windows.total < plain.windows.total, `cropped grid ${JSON.stringify(crop.windows)} vs ${JSON.stringify(plain.windows)}`);
    const softmax = (hu: number) => {
      const x = Math.fround(Math.min(1, Math.max(0, (hu + 160) / 400)));
      const z = W.map((w, c) => Math.fround(w * x + B[c]!));
      const m = Math.max(...z), e = z.map((t) => Math.exp(t - m)), s = e.reduce((a, b) => a + b, 0);
      return e.map((t) => t / s);
    };
    for (const p of [all, plain, crop]) {
      for (let z = 0, v = 0; z < 24; z++) for (let y = 0; y < 50; y++) for (let x = 0; x < 60; x++, v++) {
        if (!inBody(x, y)) continue;
        const want = softmax(data[v]!);
        for (let c = 0; c < 3; c++) assert.ok(Math.abs(p.channels[c]![v]! - want[c]!) < 2e-6, `voxel (${x},${y},${z}) channel ${c}`);
      }
    }
    await seg.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
