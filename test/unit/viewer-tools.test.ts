import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../src/core/random.js';
import {
  boundedFill, dragWindow, interpolateSlices, labelsAfterRuns, LabelEdits, loadLabelsAsEdits, MaskEditor, parseWindow, restoreSnapshot, seedRange, signedDistance, sphereOffsets, sphereVoxels,
  squaredDistance, windowLevel,
} from '../../src/core/viewer/index.js';

test('W/L drag: right widens, down raises the level, dragging back restores; typed W/L and ranges parse', () => {
  const start: [number, number] = [-160, 240];
  const range: [number, number] = [-1024, 3071];
  const wider = dragWindow(start, 50, 0, range);
  assert.ok(windowLevel(wider).width > 400 && Math.abs(windowLevel(wider).level - 40) < 1e-9);
  const lower = dragWindow(start, 0, 30, range);
  assert.ok(windowLevel(lower).level > 40 && Math.abs(windowLevel(lower).width - 400) < 1e-9);
  const back = dragWindow(dragWindow(start, 37, -12, range), -37, 12, range);
  assert.ok(Math.abs(back[0] - start[0]) < 1e-9 && Math.abs(back[1] - start[1]) < 1e-9);
  // a full-range drag of 512 px moves the level by the whole range, whatever the image
  assert.ok(Math.abs(windowLevel(dragWindow([0, 255], 0, 512, [0, 255])).level - (127.5 + 255)) < 1e-9);
  assert.ok(windowLevel(dragWindow(start, -10_000, 0, range)).width > 0, 'never inverted');
  assert.deepEqual(parseWindow('400/40'), [-160, 240]);
  assert.deepEqual(parseWindow('W1500 L-600'), [-1350, 150]);
  assert.deepEqual(parseWindow('-100…300'), [-100, 300]);
  assert.deepEqual(parseWindow('0..255'), [0, 255]);
  assert.equal(parseWindow('wide'), null);
  assert.equal(parseWindow('0/40'), null);
  assert.equal(parseWindow('300..100'), null);
});

/** 4-connected breadth-first reference of pixels with value in [lo, hi] reachable from the seed. */
function bfsRegion(img: Float32Array, w: number, h: number, sx: number, sy: number, lo: number, hi: number): Set<number> {
  const inR = (p: number) => img[p]! >= lo && img[p]! <= hi;
  const out = new Set<number>();
  if (!inR(sx + w * sy)) return out;
  const q = [sx + w * sy];
  out.add(q[0]!);
  while (q.length) {
    const p = q.shift()!;
    const x = p % w, y = (p - x) / w;
    for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {
      const nx = x + dx!, ny = y + dy!;
      if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
      const n = nx + w * ny;
      if (!out.has(n) && inR(n)) (out.add(n), q.push(n));
    }
  }
  return out;
}

test('bounded fill: equals a breadth-first reference on random images, stops at an edge, the guard refuses a flood', () => {
  const rng = new Rng(7);
  for (let trial = 0; trial < 20; trial++) {
    const w = 20 + rng.int(0, 20), h = 15 + rng.int(0, 20);
    const img = Float32Array.from({ length: w * h }, () => rng.int(0, 9));
    const [sx, sy] = [rng.int(0, w - 1), rng.int(0, h - 1)];
    const r = boundedFill(img, w, h, { x: sx + 0.4, y: sy + 0.7 }, [3, 7]);
    assert.deepEqual(new Set(r.pixels), bfsRegion(img, w, h, sx, sy, 3, 7), `trial ${trial}`);
  }
  // a bright disc (organ) in a noisy dark background: the seed's range fills exactly the disc
  const w = 64, h = 64;
  const img = new Float32Array(w * h);
  const disc = new Set<number>();
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const inside = (x - 30) ** 2 + (y - 34) ** 2 <= 12 ** 2;
    img[x + w * y] = (inside ? 200 : 20) + rng.uniform(-5, 5);
    if (inside) disc.add(x + w * y);
  }
  const range = seedRange(img, w, h, { x: 30, y: 34 }, [0, 255]);
  assert.ok(range[0] > 60 && range[1] < 260, `range ${range}`);
  const r = boundedFill(img, w, h, { x: 30, y: 34 }, range, 0.25 * w * h);
  assert.equal(r.guarded, false);
  assert.deepEqual(new Set(r.pixels), disc);
  const bg = boundedFill(img, w, h, { x: 2, y: 2 }, seedRange(img, w, h, { x: 2, y: 2 }, [0, 255]), 0.25 * w * h);
  assert.equal(bg.guarded, true, 'the background is larger than a quarter of the slice');
  assert.equal(bg.pixels.length, 0);
  // locked pixels are never part of the region
  const locked = boundedFill(img, w, h, { x: 30, y: 34 }, range, Infinity, (p) => p % w !== 30);
  assert.ok(locked.pixels.every((p) => p % w !== 30) && locked.count < disc.size);
});

test('sphere brush: voxel count within 10 % of 4/3·π·r³ / voxel volume on anisotropic grids, clipped at the borders', () => {
  for (const [r, sp] of [[5, [1, 1, 1]], [6, [0.8, 0.8, 2.5]], [10, [0.7, 0.7, 1.5]], [3, [0.5, 0.5, 0.5]]] as [number, [number, number, number]][]) {
    const n = sphereOffsets(r, sp).length / 3;
    const ideal = (4 / 3) * Math.PI * r ** 3 / (sp[0] * sp[1] * sp[2]);
    assert.ok(Math.abs(n - ideal) / ideal < 0.1, `r ${r} mm on ${sp}: ${n} voxels vs ${ideal.toFixed(1)}`);
    // brute force over the bounding box: exactly the voxels whose centres are within r
    let brute = 0;
    const R = Math.ceil(r / Math.min(...sp)) + 1;
    for (let k = -R; k <= R; k++) for (let j = -R; j <= R; j++) for (let i = -R; i <= R; i++) if ((i * sp[0]) ** 2 + (j * sp[1]) ** 2 + (k * sp[2]) ** 2 <= r * r) brute++;
    assert.equal(n, brute);
  }
  const inside = sphereVoxels([20, 20, 10], 4, [1, 1, 1], [40, 40, 20]);
  const corner = sphereVoxels([0, 0, 0], 4, [1, 1, 1], [40, 40, 20]);
  assert.equal(inside.length, sphereOffsets(4, [1, 1, 1]).length / 3);
  const octant = [...sphereOffsets(4, [1, 1, 1])].filter((_, t, a) => t % 3 === 0 && a[t]! >= 0 && a[t + 1]! >= 0 && a[t + 2]! >= 0).length;
  assert.equal(corner.length, octant, 'only the octant inside the volume');
});

test('distance transform: equals brute force (anisotropic); signed distance is negative inside', () => {
  const rng = new Rng(3);
  const w = 17, h = 13;
  const pts = Array.from({ length: 5 }, () => rng.int(0, w * h - 1));
  const d = squaredDistance(w, h, (p) => pts.includes(p), [0.7, 1.9]);
  for (let p = 0; p < w * h; p++) {
    const x = p % w, y = (p - x) / w;
    const ref = Math.min(...pts.map((q) => ((q % w) - x) ** 2 * 0.49 + (Math.floor(q / w) - y) ** 2 * 3.61));
    assert.ok(Math.abs(d[p]! - ref) < 1e-9, `pixel ${p}: ${d[p]} vs ${ref}`);
  }
  const plane = new Uint8Array(w * h);
  plane[5 + w * 6] = 2;
  const sd = signedDistance(plane, w, h, 2);
  assert.ok(sd[5 + w * 6]! < 0 && sd[0]! > 0);
});

test('interpolation between slices: discs of radius 10 and 20 give discs of the linear radii between', () => {
  const w = 64, h = 64;
  const disc = (r: number) => Uint8Array.from({ length: w * h }, (_, p) => ((p % w) - 32) ** 2 + (Math.floor(p / w) - 32) ** 2 <= r * r ? 3 : 0);
  const mids = interpolateSlices(disc(10), disc(20), w, h, 3, 3);
  assert.equal(mids.length, 3);
  for (const [s, m] of mids.entries()) {
    const r = 10 + (10 * (s + 1)) / 4;
    const area = m.reduce((a, v) => a + v, 0);
    assert.ok(Math.abs(area - Math.PI * r * r) / (Math.PI * r * r) < 0.06, `slice ${s + 1}: area ${area} vs π·${r}²`);
    assert.equal(m[32 + w * 32], 1);
  }
  // two equal shapes: the slices between are the same shape
  const same = interpolateSlices(disc(8), disc(8), w, h, 3, 2);
  for (const m of same) assert.deepEqual([...m], [...disc(8)].map((v) => (v ? 1 : 0)));
  // a shifted square: the middle slice's centre of mass is halfway
  const sq = (x0: number) => Uint8Array.from({ length: w * h }, (_, p) => (p % w) >= x0 && (p % w) < x0 + 12 && Math.floor(p / w) >= 20 && Math.floor(p / w) < 32 ? 1 : 0);
  const [mid] = interpolateSlices(sq(10), sq(16), w, h, 1, 1);
  let sx = 0, n = 0;
  for (let p = 0; p < w * h; p++) if (mid![p]) (sx += p % w), n++;
  assert.ok(Math.abs(sx / n - (13 + 5.5)) < 0.6, `centre ${sx / n}`);
});

test('restored edits are one undoable step; a loaded draft shows exactly its labels and undoes back', () => {
  const shape: [number, number, number] = [6, 5, 4];
  const N = 120;
  const rng = new Rng(11);
  const base = Uint8Array.from({ length: N }, () => rng.int(0, 2));
  const kept = new LabelEdits(shape);
  for (let t = 0; t < 30; t++) {
    const v = rng.int(0, N - 1);
    kept.set(v, rng.int(0, 4), kept.get(v) ?? base[v]!);
  }
  const ed = new MaskEditor(shape);
  const step = restoreSnapshot(ed, kept.snapshot());
  assert.ok(step);
  assert.equal(ed.edits.size, kept.size);
  for (let v = 0; v < N; v++) assert.equal(ed.edits.get(v), kept.get(v));
  assert.equal(ed.history.depth, 1);
  ed.undo();
  assert.equal(ed.edits.size, 0, 'undo takes the restored edits back');
  ed.redo();
  assert.equal(ed.edits.size, kept.size);
  assert.throws(() => restoreSnapshot(new MaskEditor([6, 5, 3]), kept.snapshot()), /6×5×4 volume, the case is 6×5×3/);

  const draft = Uint8Array.from({ length: N }, () => rng.int(0, 3));
  const before = Uint8Array.from(base, (b, v) => ed.edits.get(v) ?? b);
  const c = loadLabelsAsEdits(ed, base, draft, 'load draft');
  assert.ok(c);
  for (let v = 0; v < N; v++) assert.equal(ed.edits.get(v) ?? base[v], draft[v], `voxel ${v} shows the draft`);
  assert.equal(c.voxels.length, draft.reduce((a, d, v) => a + (d !== before[v] ? 1 : 0), 0));
  ed.undo();
  for (let v = 0; v < N; v++) assert.equal(ed.edits.get(v) ?? base[v], before[v]);
  assert.equal(loadLabelsAsEdits(ed, base, before, 'same'), null);
  assert.deepEqual(labelsAfterRuns([1, 7], [{ runs: [0, 3, 5, 10, 2, 0] }, { runs: [4, 1, 2] }]), [1, 2, 5, 7]);
});

test('orientation letters: identity LPS gives the radiological convention; a rotated grid follows its direction', async () => {
  const { orientationLabels, flipRows } = await import('../../src/core/viewer/index.js');
  const I = [1, 0, 0, 0, 1, 0, 0, 0, 1];
  assert.deepEqual(orientationLabels(I, 'z', flipRows(I, 'z')), { left: 'R', right: 'L', top: 'A', bottom: 'P' });
  assert.deepEqual(orientationLabels(I, 'y', flipRows(I, 'y')), { left: 'R', right: 'L', top: 'S', bottom: 'I' });
  assert.deepEqual(orientationLabels(I, 'x', flipRows(I, 'x')), { left: 'A', right: 'P', top: 'S', bottom: 'I' });
  // i runs to the patient's right (RAS-stored image read as LPS with a flipped x): letters swap
  const flipped = [-1, 0, 0, 0, -1, 0, 0, 0, 1];
  assert.deepEqual(orientationLabels(flipped, 'z', false), { left: 'L', right: 'R', top: 'P', bottom: 'A' });
});

test('locked labels: brush and fill never change a locked label', () => {
  const ed = new MaskEditor([10, 10, 1]);
  const labels = new Uint8Array(100);
  for (let x = 0; x < 10; x++) labels[x + 10 * 5] = 2; // a locked line across
  const locked = new Set([2]);
  ed.begin('brush');
  ed.brush({ axis: 'z', index: 0, labels }, { x: 5, y: 0 }, { x: 5, y: 9.5 }, 1.5, { value: 1, locked });
  ed.end();
  for (let x = 0; x < 10; x++) assert.equal(labels[x + 10 * 5], 2);
  assert.ok(labels[5 + 10 * 2] === 1 && labels[5 + 10 * 8] === 1, 'painted elsewhere');
  ed.begin('fill');
  const r = ed.fill({ axis: 'z', index: 0, labels }, { x: 5, y: 5 }, { value: 3, locked });
  assert.equal(r.pixels, 0);
});

test('cancel takes an open step back without a history entry', () => {
  const ed = new MaskEditor([8, 8, 1]);
  const labels = new Uint8Array(64);
  ed.begin('fill');
  ed.fill({ axis: 'z', index: 0, labels }, { x: 1, y: 1 }, { value: 4 });
  assert.equal(ed.edits.size, 64);
  const c = ed.cancel();
  assert.equal(c?.voxels.length, 64);
  assert.equal(ed.edits.size, 0);
  assert.equal(ed.history.canUndo, false);
  assert.equal(ed.history.canRedo, false);
});

test('heat-map palette: magma from black to pale yellow with steadily rising luminance, no hue of the organ legend', async () => {
  const { magmaLut256, ORGAN_COLORS } = await import('../../src/core/viewer/index.js');
  const m = magmaLut256();
  assert.deepEqual([...m.subarray(0, 3)], [0, 0, 4]);
  assert.deepEqual([...m.subarray(765, 768)], [252, 253, 191]);
  const lum = (k: number) => 0.2126 * m[3 * k]! + 0.7152 * m[3 * k + 1]! + 0.0722 * m[3 * k + 2]!;
  for (let k = 1; k < 256; k++) assert.ok(lum(k) >= lum(k - 1) - 0.5, `luminance falls at ${k}`);
  // above the drawing floor (0.1) no colour of the map is within 40 (RGB distance) of blue, green or cyan organs
  for (const v of [4, 8, 9]) {
    const c = ORGAN_COLORS[v]!;
    for (let k = 26; k < 256; k++) assert.ok(Math.hypot(m[3 * k]! - c[0], m[3 * k + 1]! - c[1], m[3 * k + 2]! - c[2]) > 40, `level ${k} looks like organ ${v}`);
  }
});

test('threshold brush: paints exactly the capsule ∩ {value in [lo, hi]}, respects locks, one undoable step; the seed range brackets the clicked tissue', () => {
  const W = 48, H = 40;
  const rng = new Rng(18);
  // two tissues: a bright band (rows 10..25, 180 ± 8) in a dark field (40 ± 8)
  const image = new Int16Array(W * H);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) image[x + W * y] = (y >= 10 && y <= 25 ? 180 : 40) + Math.round(rng.uniform(-8, 8));
  const labels = new Uint8Array(W * H);
  labels[20 + W * 12] = 7; // a locked voxel inside the band
  const locked = new Set([7]);
  const a = { x: 8.3, y: 17.2 }, b = { x: 37.9, y: 19.6 }, radius = 9;
  const range = seedRange(image, W, H, { x: 20, y: 18 }, [0, 255]);
  assert.ok(range[0] > 60 && range[0] < 172 && range[1] > 188 && range[1] < 300, `seed range ${range} brackets the band only`);
  const ed = new MaskEditor([W, H, 1]);
  ed.begin('threshold');
  const dirty = ed.brush({ axis: 'z', index: 0, labels }, a, b, radius, { value: 3, locked, within: { image, range } });
  ed.end();
  // reference: distance of each pixel centre to the segment, by projection
  const seg = (px: number, py: number) => {
    const dx = b.x - a.x, dy = b.y - a.y;
    const t = Math.max(0, Math.min(1, ((px - a.x) * dx + (py - a.y) * dy) / (dx * dx + dy * dy)));
    return Math.hypot(px - a.x - t * dx, py - a.y - t * dy);
  };
  let expected = 0, inCapsuleDark = 0;
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const q = x + W * y;
    const inCaps = seg(x + 0.5, y + 0.5) <= radius;
    const inRange = image[q]! >= range[0] && image[q]! <= range[1];
    const want = q === 20 + W * 12 ? 7 : inCaps && inRange ? 3 : 0;
    if (want === 3) expected++;
    if (inCaps && !inRange) inCapsuleDark++;
    assert.equal(labels[q], want, `pixel ${x},${y}`);
  }
  assert.ok(expected > 300 && inCapsuleDark > 50, `both tissues under the brush (${expected} painted, ${inCapsuleDark} left)`);
  assert.ok(dirty && dirty.y >= 10 && dirty.y + dirty.h - 1 <= 25, 'the changed rectangle stays in the band');
  assert.equal(ed.edits.size, expected);
  ed.undo();
  assert.equal(ed.edits.size, 0, 'one undo takes the whole stroke back');
});
