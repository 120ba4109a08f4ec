// Sliding-window inference through onnxruntime-node with a pointwise model (a 1×1×1 Conv): the
// blended result must equal one whole-volume pass, computed here in closed form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pointwiseModel } from '../helpers/onnx-seg.js';
import { Segmenter } from '../../src/runtime/segment.js';
import { createVolume, type Mat3, type Vec3 } from '../../src/core/volume.js';
import { gridAtSpacing, resampleToGrid } from '../../src/core/atlas/resample.js';
import { isMedmaskError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/random.js';

const W = [-4, 6, 3], B = [1.5, -2, -0.5];
const window = { center: 40, width: 400 };
const norm = (hu: number) => Math.min(1, Math.max(0, (hu - (window.center - window.width / 2)) / window.width));
function softmax3(x: number): number[] {
  const z = W.map((w, c) => Math.fround(w * Math.fround(x) + B[c]!));
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

function writeModel(dir: string, extra: Record<string, unknown> = {}, activation = 'softmax', labels: Record<string, string> = { 1: 'liver', 2: 'spleen' }): string {
  writeFileSync(join(dir, 'model.onnx'), activation === 'softmax' ? pointwiseModel(W, B) : pointwiseModel(W.slice(1), B.slice(1)));
  writeFileSync(join(dir, 'model.json'), JSON.stringify({
    format: 'medmask-model/1', name: 'pointwise', task: 'segment', model: 'model.onnx',
    input: { name: 'input', layout: 'NCDHW', patch: [16, 12, 8], channels: 1 },
    preprocess: { intensity: { mode: 'ct-window', ...window } },
    output: { name: 'logits', activation },
    labels,
    ...extra,
  }));
  return dir;
}

function phantomCt(shape: Vec3, direction: Mat3, air: (z: number) => boolean = () => false) {
  const rng = new Rng(4);
  const n = shape[0] * shape[1] * shape[2];
  const data = Int16Array.from({ length: n }, (_, v) => (air(Math.floor(v / (shape[0] * shape[1]))) ? -1000 : Math.round(rng.uniform(-300, 400))));
  return createVolume(shape, 'int16', { data, spacing: [1.5, 1.5, 2.5], origin: [-20, 30, -400], direction });
}

test('segment: a pointwise model through overlapping Gaussian-blended windows equals one whole-volume pass (float32 and uint8 storage, any orientation)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-seg-'));
  try {
    const seg = await Segmenter.load(writeModel(dir), { threads: 1 });
    for (const direction of [[1, 0, 0, 0, 1, 0, 0, 0, 1], [-1, 0, 0, 0, -1, 0, 0, 0, 1], [0, 0, 1, -1, 0, 0, 0, -1, 0]] as Mat3[]) {
      const ct = phantomCt([37, 29, 21], direction);
      const n = ct.data.length;
      let progress = 0;
      const f32 = await seg.predict(ct, { precision: 'float32', skipEmpty: false, batch: 3, onProgress: (d) => (progress = d) });
      assert.deepEqual(f32.names, ['background', 'liver', 'spleen']);
      assert.ok(f32.windows.run > 8, `${f32.windows.run} windows`);
      assert.equal(progress, f32.windows.run);
      let worst = 0;
      const probs = [0, 1, 2].map((c) => f32.toOriginal(c));
      for (let v = 0; v < n; v++) {
        const want = softmax3(norm(ct.data[v]!));
        for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(probs[c]![v]! - want[c]!));
      }
      assert.ok(worst < 2e-6, `float32: max difference ${worst}`);
      const u8 = await seg.predict(ct, { skipEmpty: false });
      const lm = u8.labelMap();
      let worstU8 = 0, labelErrors = 0;
      const p8 = [0, 1, 2].map((c) => u8.toOriginal(c));
      for (let v = 0; v < n; v++) {
        const want = softmax3(norm(ct.data[v]!));
        for (let c = 0; c < 3; c++) worstU8 = Math.max(worstU8, Math.abs(p8[c]![v]! - Math.round(want[c]! * 255)));
        const arg = want.indexOf(Math.max(...want));
        // Ties after uint8 rounding may go either way; otherwise the label is the argmax.
        const sorted = [...want].sort((a, b) => b - a);
        if (lm[v] !== [0, 1, 2][arg] && sorted[0]! - sorted[1]! > 2 / 255) labelErrors++;
      }
      assert.ok(worstU8 <= 1, `uint8: max difference ${worstU8} steps`);
      assert.equal(labelErrors, 0);
    }
    await seg.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('segment: skipped air windows give background; at a coarser model spacing the result is the resampled pointwise map', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-seg-'));
  try {
    const seg = await Segmenter.load(writeModel(dir, { spacing: [3, 3, 5] }), { threads: 1 });
    // Tissue in the lowest and highest slices, air between: windows in the middle hold no tissue.
    const ct = phantomCt([40, 30, 80], [1, 0, 0, 0, 1, 0, 0, 0, 1], (z) => z >= 8 && z < 72);
    const pred = await seg.predict(ct, { precision: 'float32' });
    assert.deepEqual(pred.grid.shape, [Math.floor(39 * 1.5 / 3) + 1, Math.floor(29 * 1.5 / 3) + 1, Math.floor(79 * 2.5 / 5) + 1]);
    assert.ok(pred.windows.skipped > 0, JSON.stringify(pred.windows));
    // Expected on the model grid: the resampled image, windowed, through the pointwise model;
    // voxels of skipped windows (all air) are background.
    const img = resampleToGrid(ct.data, ct, gridAtSpacing(ct, [3, 3, 5])) as Float32Array;
    let worst = 0, air = 0;
    for (let v = 0; v < img.length; v++) {
      const want = img[v]! > -999 ? softmax3(norm(img[v]!)) : null;
      if (!want) {
        // Air slices far from tissue: either skipped (background 1) or covered by a window with tissue.
        const p = [0, 1, 2].map((c) => pred.channels[c]![v]!);
        const pw = softmax3(norm(img[v]!));
        const ok = (p[0] === 1 && p[1] === 0 && p[2] === 0) || p.every((x, c) => Math.abs(x - pw[c]!) < 2e-6);
        assert.ok(ok, `air voxel ${v}: ${p}`);
        if (p[0] === 1 && p[1] === 0) air++;
        continue;
      }
      for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(pred.channels[c]![v]! - want[c]!));
    }
    assert.ok(worst < 2e-6, `max difference ${worst}`);
    assert.ok(air > 0, 'some air voxels came from skipped windows');
    // Back on the original grid: same shape as the CT.
    assert.equal(pred.toOriginal(1).length, ct.data.length);
    assert.equal(pred.labelMap().length, ct.data.length);
    await seg.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('segment: bad models are MedmaskErrors naming the problem', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-seg-'));
  try {
    // Labels say 3 organs, the graph outputs 3 channels = background + 2.
    const seg = await Segmenter.load(writeModel(dir, {}, 'softmax', { 1: 'a', 2: 'b', 3: 'c' }));
    const ct = phantomCt([20, 16, 10], [1, 0, 0, 0, 1, 0, 0, 0, 1]);
    await assert.rejects(seg.predict(ct), (e) => isMedmaskError(e) && e.code === 'MODEL_INVALID' && /dims \[\d+, 3, 8, 12, 16\]/.test(e.message) && /expected \[\d+, 4,/.test(e.message));
    await seg.release();
    await assert.rejects(Segmenter.load(join(dir, 'nothing-here')), (e) => isMedmaskError(e) && e.code === 'NOT_FOUND');
    writeFileSync(join(dir, 'model.json'), JSON.stringify({ format: 'medmask-model/1', name: 'c', task: 'classify', model: 'model.onnx', input: { height: 8, width: 8, channels: 1 }, classes: ['a', 'b'] }));
    await assert.rejects(Segmenter.load(dir), (e) => isMedmaskError(e) && /task is "classify"/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('segment: outputs written to NIfTI keep the source affine (nibabel fixtures: flipped, rotated, oblique), at the model spacing and back', async () => {
  const { readVolume, writeVolume } = await import('../../src/io/index.js');
  const { voxelToRas } = await import('../../src/core/volume.js');
  const fixtures = new URL('../fixtures/nifti/', import.meta.url).pathname;
  const expected = JSON.parse((await import('node:fs')).readFileSync(join(fixtures, 'expected.json'), 'utf8')) as Record<string, { affine: number[][]; shape: number[] }>;
  const dir = mkdtempSync(join(tmpdir(), 'medmask-seg-'));
  try {
    const seg = await Segmenter.load(writeModel(dir, { spacing: [1.3, 1.1, 2.2] }), { threads: 1 });
    for (const name of ['flipped_int16.nii.gz', 'label_uint8.nii.gz', 'oblique_int16.nii.gz']) {
      const vol = await readVolume(join(fixtures, name));
      const pred = await seg.predict(vol, { skipEmpty: false });
      const labels = pred.labelMap();
      const out = join(dir, `labels-${name}`);
      await writeVolume(createVolume(vol.shape, 'uint8', { data: labels, spacing: vol.spacing, origin: vol.origin, direction: vol.direction }), out, { labelMap: true });
      const back = await readVolume(out);
      assert.deepEqual(back.shape, expected[name]!.shape.slice(0, 3));
      const ras = voxelToRas(back);
      const want = expected[name]!.affine.flat();
      for (let i = 0; i < 16; i++) assert.ok(Math.abs(ras[i]! - want[i]!) < 1e-4, `${name}: affine[${i}] ${ras[i]} vs nibabel ${want[i]}`);
      assert.equal(pred.toOriginal(1).length, vol.data.length);
    }
    await seg.release();
    // Without a model spacing only the reorientation happens: the labels on the original voxels
    // equal the pointwise argmax of each voxel's own value (oblique axes included).
    const dir2 = mkdtempSync(join(tmpdir(), 'medmask-seg-'));
    const seg2 = await Segmenter.load(writeModel(dir2), { threads: 1 });
    for (const name of ['flipped_int16.nii.gz', 'label_uint8.nii.gz', 'oblique_int16.nii.gz']) {
      const vol = await readVolume(join(fixtures, name));
      const lm = (await seg2.predict(vol, { skipEmpty: false, precision: 'float32' })).labelMap();
      for (let v = 0; v < lm.length; v++) {
        const p = softmax3(norm(vol.data[v]!));
        assert.equal(lm[v], p.indexOf(Math.max(...p)), `${name} voxel ${v}`);
      }
    }
    await seg2.release();
    rmSync(dir2, { recursive: true, force: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
