/**
 * Preprocessing and the inverse geometry against closed forms: bilinear resampling reproduces a
 * linear ramp exactly (half-pixel centres), letterbox offsets, channel handling, intensity modes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isMedmaskError } from '../../src/core/errors.js';
import { inputGeometry, mapToImage, preprocessImage, resizeBilinear } from '../../src/core/preprocess.js';
import { createVolume, type Volume } from '../../src/core/volume.js';

const ramp = (w: number, h: number, f: (x: number, y: number) => number): Float32Array => {
  const a = new Float32Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) a[y * w + x] = f(x, y);
  return a;
};
const f = (x: number, y: number): number => 2 * x - 3 * y + 1;

function close(a: number, b: number, tol: number, what: string): void {
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);
}

test('upsampling reproduces a linear ramp at src = (dst + ½)·in/out − ½ wherever both taps are inside', () => {
  const [w, h, W, H] = [7, 5, 23, 16];
  const out = resizeBilinear(ramp(w, h, f), w, h, W, H);
  let checked = 0;
  for (let Y = 0; Y < H; Y++) for (let X = 0; X < W; X++) {
    const xs = (X + 0.5) * (w / W) - 0.5;
    const ys = (Y + 0.5) * (h / H) - 0.5;
    const clampedX = Math.min(w - 1, Math.max(0, xs));
    const clampedY = Math.min(h - 1, Math.max(0, ys));
    close(out[Y * W + X]!, f(clampedX, clampedY), 1e-4, `(${X}, ${Y})`); // edges: replicate, as cv2
    checked++;
  }
  assert.equal(checked, W * H);
});

test('antialiased shrinking by an integer factor keeps a ramp exact in the interior; plain bilinear too', () => {
  const [w, h] = [24, 18];
  for (const aa of [true, false]) {
    const out = resizeBilinear(ramp(w, h, f), w, h, 8, 6, { antialias: aa });
    for (let Y = 1; Y < 5; Y++) for (let X = 1; X < 7; X++) close(out[Y * 8 + X]!, f((X + 0.5) * 3 - 0.5, (Y + 0.5) * 3 - 0.5), 1e-4, `aa=${aa} (${X}, ${Y})`);
  }
  // antialias averages 5 taps (weights 1/9·[1,2,3,2,1]); plain bilinear takes the centre pixel only
  const spike = new Float32Array(9);
  spike[4] = 9;
  assert.deepEqual([...resizeBilinear(spike, 9, 1, 3, 1, { antialias: true })].map((v) => +v.toFixed(5)), [0, 3, 0]);
  assert.deepEqual([...resizeBilinear(spike, 9, 1, 3, 1, { antialias: false })], [0, 9, 0]);
});

test('several channels are resampled independently', () => {
  const two = new Float32Array([...ramp(4, 3, f), ...ramp(4, 3, (x, y) => -f(x, y))]);
  const out = resizeBilinear(two, 4, 3, 8, 6, { channels: 2 });
  for (let i = 0; i < 48; i++) close(out[i]!, -out[48 + i]!, 1e-5, `pixel ${i}`);
});

test('letterbox geometry: scale to fit, round, centre', () => {
  const s = { width: 64, height: 64, channels: 3 };
  assert.deepEqual(inputGeometry(100, 50, s, 'letterbox').box, { x: 0, y: 16, width: 64, height: 32 });
  assert.deepEqual(inputGeometry(30, 90, s, 'letterbox').box, { x: 21, y: 0, width: 21, height: 64 });
  assert.deepEqual(inputGeometry(30, 90, s, 'stretch').box, { x: 0, y: 0, width: 64, height: 64 });
});

const grey = (w: number, h: number, fn: (x: number, y: number) => number): Volume =>
  createVolume([w, h, 1], 'float32', { data: ramp(w, h, fn) as never }) as Volume;

test('letterbox pads with the image minimum before normalisation (min-max → 0) and places the content', () => {
  const img = grey(128, 64, (x) => 10 + x); // min 10, max 137
  const { data, geometry } = preprocessImage(img, { width: 64, height: 64, channels: 1 }, { resize: 'letterbox', intensity: { mode: 'min-max' } });
  assert.deepEqual(geometry.box, { x: 0, y: 16, width: 64, height: 32 });
  for (let y = 0; y < 64; y++) {
    const inside = y >= 16 && y < 48;
    if (!inside) for (let x = 0; x < 64; x++) assert.equal(data[y * 64 + x], 0, `pad (${x}, ${y})`);
  }
  // interior of the content: ramp shrunk 2× (antialiased), then min-max: x_src = (X + ½)·2 − ½
  for (const X of [5, 30, 58]) close(data[30 * 64 + X]!, ((X + 0.5) * 2 - 0.5) / 127, 1e-5, `content x=${X}`);
});

test('channels: grey → RGB copies, RGB → grey is ITU-R 601 luma, RGBA drops alpha; mismatches are clear errors', () => {
  const g = grey(2, 2, (x, y) => x + 2 * y);
  const rgb = preprocessImage(g, { width: 2, height: 2, channels: 3 }, { intensity: { mode: 'none' } }).data;
  assert.deepEqual([...rgb], [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
  const c = createVolume([1, 1, 1], 'uint8', { components: 4, data: Uint8Array.of(100, 50, 200, 7) as never }) as Volume;
  close(preprocessImage(c, { width: 1, height: 1, channels: 1 }, { intensity: { mode: 'none' } }).data[0]!, 0.299 * 100 + 0.587 * 50 + 0.114 * 200, 1e-4, 'luma');
  assert.deepEqual([...preprocessImage(c, { width: 1, height: 1, channels: 3 }, { intensity: { mode: 'none' } }).data], [100, 50, 200]);
  assert.throws(() => preprocessImage(g, { width: 2, height: 2, channels: 3 }, { channels: 'keep' }), (e: unknown) =>
    isMedmaskError(e) && /greyscale image .* cannot feed a 3-channel model input/.test(e.message) && /grey-to-rgb/.test(e.hint ?? ''));
  const vol3d = createVolume([2, 2, 3], 'uint8') as Volume;
  assert.throws(() => preprocessImage(vol3d, { width: 2, height: 2, channels: 1 }), /needs a 2D image; this volume has 3 slices/);
});

test('intensity: mean/std with scale, CT window, per-image min-max', () => {
  const c = createVolume([1, 1, 1], 'uint8', { components: 3, data: Uint8Array.of(255, 0, 128) as never }) as Volume;
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const d = preprocessImage(c, { width: 1, height: 1, channels: 3 }, { intensity: { mode: 'mean-std', mean, std, scale: 255 } }).data;
  [255, 0, 128].forEach((v, i) => close(d[i]!, (v / 255 - mean[i]!) / std[i]!, 1e-5, `channel ${i}`));
  const ct = createVolume([4, 1, 1], 'int16', { data: Int16Array.of(-1000, -160, 40, 500) as never }) as Volume;
  const w = preprocessImage(ct, { width: 4, height: 1, channels: 1 }, { intensity: { mode: 'ct-window', center: 40, width: 400 } }).data;
  assert.deepEqual([...w].map((v) => +v.toFixed(6)), [0, 0, 0.5, 1]);
  const flat = preprocessImage(grey(3, 3, () => 7), { width: 3, height: 3, channels: 1 }, { intensity: { mode: 'min-max' } }).data;
  assert.ok(flat.every((v) => v === 0));
  assert.throws(() => preprocessImage(c, { width: 1, height: 1, channels: 3 }, { intensity: { mode: 'mean-std', mean: [0, 0], std: [1] } }), /intensity\.mean: has 2 values/);
});

test('inverse geometry: a map on the letterboxed input comes back onto the image pixel for pixel', () => {
  // image 200×100 → input 64×64, content 64×32 at y = 16. A map whose value at each content pixel
  // is the image x of that pixel's centre must come back as exactly x (bilinear is exact on ramps).
  const geometry = inputGeometry(200, 100, { width: 64, height: 64, channels: 1 }, 'letterbox');
  const { box } = geometry;
  const map = new Float32Array(64 * 64).fill(-99); // the border must not leak in
  for (let y = box.y; y < box.y + box.height; y++) for (let x = 0; x < 64; x++) {
    map[y * 64 + x] = (x - box.x + 0.5) * (200 / box.width) - 0.5 + 1000 * ((y - box.y + 0.5) * (100 / box.height) - 0.5);
  }
  const { input, image } = mapToImage(map, 64, 64, geometry);
  assert.equal(input.length, 64 * 64);
  assert.equal(image.length, 200 * 100);
  for (let y = 2; y < 98; y++) for (let x = 2; x < 198; x++) close(image[y * 200 + x]!, x + 1000 * y, 2e-2, `(${x}, ${y})`);
});

test('inverse geometry, stretch: activation map → input size as cv2.resize, then to the image size', () => {
  const geometry = inputGeometry(30, 20, { width: 16, height: 16, channels: 1 }, 'stretch');
  const act = ramp(4, 4, f);
  const { input, image } = mapToImage(act, 4, 4, geometry);
  close(input[8 * 16 + 8]!, f((8.5 * 4) / 16 - 0.5, (8.5 * 4) / 16 - 0.5), 1e-5, 'input centre');
  // the composition is linear in the interior: image pixel (x, y) ↦ activation coordinate
  const toAct = (x: number, n: number): number => (((x + 0.5) * 16) / n - 0.5 + 0.5) * (4 / 16) - 0.5;
  for (const [x, y] of [[10, 8], [15, 10], [20, 11]] as const) close(image[y * 30 + x]!, f(toAct(x, 30), toAct(y, 20)), 1e-4, `(${x}, ${y})`);
});
