import assert from 'node:assert/strict';
import { test } from 'node:test';
import { displayRgb, jet, overlayHeatmap } from '../../src/core/explain/overlay.js';
import { createVolume, type Volume } from '../../src/core/volume.js';

test('jet: the MATLAB control points (dark blue, blue, cyan-green, yellow, red, dark red)', () => {
  assert.deepEqual(jet(0), [0, 0, 0.5]);
  assert.deepEqual(jet(0.125), [0, 0, 1]);
  assert.deepEqual(jet(0.5), [0.5, 1, 0.5]);
  assert.deepEqual(jet(0.875), [1, 0, 0]);
  assert.deepEqual(jet(1), [0.5, 0, 0]);
  assert.deepEqual(jet(2), jet(1));
});

test('overlay = uint8(255 · (0.5 jet + 0.5 img) / max), as show_cam_on_image', () => {
  const img = createVolume([2, 1, 1], 'uint8', { data: Uint8Array.of(0, 255) as never }) as Volume;
  const rgb = displayRgb(img);
  assert.deepEqual([...rgb], [0, 0, 0, 1, 1, 1]);
  const o = overlayHeatmap(rgb, [0, 1]);
  // mix: pixel 0 = 0.5·(0, 0, 0.5) = (0, 0, 0.25); pixel 1 = 0.5·(0.5, 0, 0) + 0.5 = (0.75, 0.5, 0.5); max 0.75
  assert.deepEqual([...o], [0, 0, 85, 255, 170, 170]);
});

test('display: 16-bit and float images scaled from their range; a CT window clips', () => {
  const ct = createVolume([3, 1, 1], 'int16', { data: Int16Array.of(-1000, 40, 1000) as never }) as Volume;
  assert.deepEqual([...displayRgb(ct)].filter((_, i) => i % 3 === 0).map((v) => +v.toFixed(3)), [0, 0.52, 1]);
  assert.deepEqual([...displayRgb(ct, [-160, 240])].filter((_, i) => i % 3 === 0).map((v) => +v.toFixed(3)), [0, 0.5, 1]);
});
