import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyRuns, autoWindow, canvasToSlice, capsuleSpans, changeRectInView, checkRuns, composeRgba, CT_PRESETS, extractViewSlice, fitViewport, flaggedRegions, floodRegion,
  holesInPlane, jetLut256, labelLut, LabelEdits, legendFor, MaskEditor, organLegend, presetWindow, runsBetween, runsFromSorted, sliceToCanvas, viewDims, viewToVoxel,
  voxelToView, windowToGrey, windowValue, zoomAbout, ActiveTimer, EditHistory, ChangeBuilder, type ViewAxis,
} from '../../src/core/viewer/index.js';
import { jet } from '../../src/core/explain/overlay.js';
import { ABDOMEN_LABELS } from '../../src/core/phantom/abdomen.js';
import { Rng } from '../../src/core/random.js';
import { createVolume } from '../../src/core/volume.js';
import { extractSlice } from '../../src/server/slices.js';

const AXES: ViewAxis[] = ['x', 'y', 'z'];

test('windowing: the int16 and uint8 lookup tables and the float path equal the closed form', () => {
  const all = new Int16Array(65536);
  for (let k = 0; k < 65536; k++) all[k] = k - 32768;
  for (const [lo, hi] of [presetWindow(CT_PRESETS[0]!), [-1000, 1000], [0, 1]] as [number, number][]) {
    const out = new Uint8Array(all.length);
    windowToGrey(all, out, [lo, hi]);
    for (let k = 0; k < 65536; k += 7) {
      const v = all[k]!;
      const ref = v <= lo ? 0 : v >= hi ? 255 : Math.round(((v - lo) / (hi - lo)) * 255);
      assert.equal(out[k], ref, `int16 ${v} in [${lo}, ${hi}]`);
    }
  }
  assert.deepEqual(presetWindow({ width: 400, level: 40 }), [-160, 240]);
  const f = Float32Array.of(-1, 0, 0.25, 0.5, 2);
  const g = new Uint8Array(5);
  windowToGrey(f, g, [0, 1]);
  assert.deepEqual([...g], [0, 0, 64, 128, 255]);
  const u = Uint8Array.of(0, 10, 20, 30);
  windowToGrey(u, g, [10, 30], 0, 4);
  assert.deepEqual([...g.subarray(0, 4)], [0, 0, 128, 255]);
  assert.equal(windowValue(5, 5, 5), 0);
  assert.deepEqual(autoWindow(Uint8Array.of(3, 4)), [0, 255]);
  const ramp = Float32Array.from({ length: 1001 }, (_, i) => i);
  assert.deepEqual(autoWindow(ramp), [5, 995]);
});

test('colour maps: nine organ colours, all distinct, named as AbdomenAtlas; jet table equals jet()', () => {
  const leg = organLegend();
  assert.deepEqual(leg.map((e) => e.name), Object.values(ABDOMEN_LABELS));
  assert.equal(new Set(leg.map((e) => e.color.join(','))).size, 9);
  const lut = labelLut(leg);
  assert.equal(lut[3], 0, 'background is transparent');
  for (const e of leg) assert.deepEqual([...lut.subarray(4 * e.value, 4 * e.value + 4)], [...e.color, 255]);
  const j = jetLut256();
  for (const k of [0, 64, 128, 200, 255]) assert.deepEqual([...j.subarray(3 * k, 3 * k + 3)], jet(k / 255).map((c) => Math.round(255 * c)));
  assert.deepEqual(legendFor('lesion', [1]).map((e) => e.name), ['lesion']);
  assert.equal(legendFor('organs').length, 9);
});

test('compose: labels and heat blended with their opacities (float reference), outline only on borders', () => {
  const w = 4, h = 3;
  const grey = new Uint8Array(w * h).fill(100);
  const labels = new Uint8Array(w * h);
  labels.fill(5, 4, 8); // row 1 = liver
  const heat = new Uint8Array(w * h);
  heat[0] = 255;
  heat[1] = 10; // below the floor
  const lut = labelLut(organLegend());
  const out = new Uint8ClampedArray(w * h * 4);
  composeRgba(out, w, h, { grey, labels, labelLut: lut, labelOpacity: 0.5, heat, heatLut: jetLut256(), heatOpacity: 0.25 });
  const liver = organLegend()[4]!.color;
  for (let c = 0; c < 3; c++) assert.ok(Math.abs(out[4 * 5 + c]! - (100 * 0.5 + liver[c]! * 0.5)) <= 1, 'label blend');
  const hot = [128, 0, 0];
  for (let c = 0; c < 3; c++) assert.ok(Math.abs(out[c]! - (100 * 0.75 + hot[c]! * 0.25)) <= 1, 'heat blend');
  assert.deepEqual([...out.subarray(4, 8)], [100, 100, 100, 255], 'under the heat floor');
  // outline: a 3×3 block in a 5×5 plane → its 8 border pixels, not the centre
  const L = new Uint8Array(25);
  for (const p of [6, 7, 8, 11, 12, 13, 16, 17, 18]) L[p] = 1;
  const o2 = new Uint8ClampedArray(100);
  composeRgba(o2, 5, 5, { grey: new Uint8Array(25), labels: L, labelLut: labelLut(legendFor('lesion')), labelOutline: true });
  const coloured = [...Array(25).keys()].filter((p) => o2[4 * p] !== 0);
  assert.deepEqual(coloured, [6, 7, 8, 11, 13, 16, 17, 18]);
  // dirty rectangle: only that part is written
  const o3 = new Uint8ClampedArray(w * h * 4);
  composeRgba(o3, w, h, { grey }, { x: 1, y: 1, w: 2, h: 1 });
  assert.equal(o3.filter((v) => v !== 0).length, 8);
});

function distToSegment(px: number, py: number, x0: number, y0: number, x1: number, y1: number): number {
  const dx = x1 - x0, dy = y1 - y0;
  const L = dx * dx + dy * dy;
  const t = L ? Math.max(0, Math.min(1, ((px - x0) * dx + (py - y0) * dy) / L)) : 0;
  return Math.hypot(px - (x0 + t * dx), py - (y0 + t * dy));
}

test('brush: the capsule between two mouse positions equals brute-force distance to the segment', () => {
  const rng = new Rng(7);
  const W = 40, H = 30;
  for (let trial = 0; trial < 400; trial++) {
    const x0 = rng.uniform(-5, W + 5), y0 = rng.uniform(-5, H + 5);
    const fast = trial % 3 === 0;
    const x1 = fast ? rng.uniform(-5, W + 5) : x0 + rng.uniform(-3, 3), y1 = fast ? rng.uniform(-5, H + 5) : y0 + rng.uniform(-3, 3);
    const r = trial % 5 === 0 ? 0.5 : rng.uniform(0.3, 6);
    const got = new Uint8Array(W * H);
    capsuleSpans(W, H, x0, y0, x1, y1, r, (y, a, b) => {
      for (let x = a; x <= b; x++) {
        assert.equal(got[x + W * y], 0, 'each pixel visited once');
        got[x + W * y] = 1;
      }
    });
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      const d = distToSegment(x + 0.5, y + 0.5, x0, y0, x1, y1);
      if (Math.abs(d - r) < 1e-6) continue; // on the boundary: either is right
      assert.equal(got[x + W * y], d < r ? 1 : 0, `trial ${trial} pixel (${x}, ${y}) d=${d} r=${r}`);
    }
  }
  // a fast stroke is continuous: a 1-pixel brush from left to right paints the whole row
  const row = new Uint8Array(100);
  capsuleSpans(100, 1, 0.5, 0.5, 99.5, 0.5, 0.5, (_y, a, b) => row.fill(1, a, b + 1));
  assert.equal(row.reduce((s, v) => s + v, 0), 100);
});

function bfsRegion(planes: Uint8Array[], w: number, h: number, seed: [number, number, number]): Set<string> {
  const [sx, sy, sk] = seed;
  const lab = planes[sk]![sx + w * sy];
  const seen = new Set<string>([`${sk},${sy},${sx}`]);
  const q: [number, number, number][] = [[sx, sy, sk]];
  while (q.length) {
    const [x, y, k] = q.shift()!;
    for (const [dx, dy, dk] of [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]] as const) {
      const X = x + dx, Y = y + dy, K = k + dk;
      if (X < 0 || Y < 0 || K < 0 || X >= w || Y >= h || K >= planes.length) continue;
      const key = `${K},${Y},${X}`;
      if (seen.has(key) || planes[K]![X + w * Y] !== lab) continue;
      seen.add(key);
      q.push([X, Y, K]);
    }
  }
  return seen;
}

test('flood fill: the scanline region equals a plain BFS, in a plane and through a slice range', () => {
  const rng = new Rng(3);
  const w = 23, h = 17, d = 6;
  for (let trial = 0; trial < 30; trial++) {
    const planes = Array.from({ length: d }, () => Uint8Array.from({ length: w * h }, () => (rng.uniform(0, 1) < 0.35 ? 1 : 0)));
    const seed: [number, number, number] = [Math.floor(rng.uniform(0, w)), Math.floor(rng.uniform(0, h)), 2];
    for (const range of [[2, 2], [0, d - 1], [1, 4]] as [number, number][]) {
      const sub = planes.slice(range[0], range[1] + 1);
      const ref = bfsRegion(sub, w, h, [seed[0], seed[1], seed[2] - range[0]]);
      const got = floodRegion(w, h, (k) => planes[k]!, { x: seed[0], y: seed[1], k: seed[2] }, range);
      const keys = new Set<string>();
      for (let s = 0; s < got.count; s++) {
        const [k, y, a, b] = got.spans.subarray(4 * s, 4 * s + 4);
        for (let x = a!; x <= b!; x++) keys.add(`${k! - range[0]},${y},${x}`);
      }
      assert.equal(got.pixels, ref.size);
      assert.deepEqual([...keys].sort(), [...ref].sort());
    }
  }
  // holes: a ring of label 2 around a 2×2 hole; the outside is not a hole
  const p = new Uint8Array(36);
  for (let y = 1; y <= 4; y++) for (let x = 1; x <= 4; x++) p[x + 6 * y] = 2;
  for (const q of [14, 15, 20, 21]) p[q] = 0;
  assert.deepEqual([...holesInPlane(p, 6, 6, 2)], [14, 15, 20, 21]);
});

test('slicing: view ↔ voxel round trip, and slices equal the server\'s extractSlice', () => {
  const shape: [number, number, number] = [5, 4, 3];
  const data = Int16Array.from({ length: 60 }, (_, i) => i * 3 - 50);
  const vol = createVolume(shape, 'int16', { data });
  for (const axis of AXES) {
    const { width, height, depth } = viewDims(shape, axis);
    for (let index = 0; index < depth; index++) {
      const mine = extractViewSlice(data, shape, axis, index);
      const server = extractSlice(vol, axis, index);
      assert.equal(server.width, width);
      assert.equal(server.height, height);
      assert.deepEqual([...mine], [...server.data]);
      for (let r = 0; r < height; r++) for (let q = 0; q < width; q++) {
        const v = viewToVoxel(shape, axis, index, q, r);
        const i = v % 5, j = Math.floor(v / 5) % 4, k = Math.floor(v / 20);
        assert.deepEqual(voxelToView(axis, i, j, k), { index, q, r });
      }
    }
  }
});

test('runs: from sorted indices, between planes, applied back; bad runs are refused with the run named', () => {
  assert.deepEqual(runsFromSorted([3, 4, 5, 9], [1, 1, 2, 1]), [3, 2, 1, 5, 1, 2, 9, 1, 1]);
  const rng = new Rng(11);
  for (let t = 0; t < 20; t++) {
    const a = Uint8Array.from({ length: 300 }, () => (rng.uniform(0, 1) < 0.3 ? 1 : 0));
    const b = Uint8Array.from(a, (v, i) => (i > 100 && i < 180 ? 3 : rng.uniform(0, 1) < 0.05 ? 2 : v));
    const runs = runsBetween(a, b);
    checkRuns(runs, 300);
    const c = a.slice();
    applyRuns(c, 0, runs);
    assert.deepEqual(c, b);
  }
  assert.throws(() => checkRuns([5, 2, 1, 6, 1, 1], 100), /run 1 starts at 6, before the end 7/);
  assert.throws(() => checkRuns([98, 5, 1], 100), /past the plane's 100/);
  assert.throws(() => checkRuns([0, 1, 300], 100), /value 0…255/);
  assert.throws(() => checkRuns([0, 1], 100), /triples/);
});

test('sparse edits equal a dense reference in every orientation; runs and snapshots reproduce them', () => {
  const shape: [number, number, number] = [7, 6, 5];
  const n = 7 * 6 * 5;
  const rng = new Rng(5);
  const base = Uint8Array.from({ length: n }, () => Math.floor(rng.uniform(0, 3)));
  const dense = base.slice();
  const e = new LabelEdits(shape);
  for (let t = 0; t < 400; t++) {
    const v = Math.floor(rng.uniform(0, n));
    const val = Math.floor(rng.uniform(0, 4));
    e.set(v, val, dense[v]!);
    dense[v] = val;
  }
  let changed = 0;
  for (let i = 0; i < n; i++) if (dense[i] !== base[i]) changed++;
  assert.equal(e.size, changed, 'voxels set back to their base value leave the overlay');
  for (const axis of AXES) for (let index = 0; index < viewDims(shape, axis).depth; index++) {
    const s = extractViewSlice(base, shape, axis, index);
    e.applyToSlice(axis, index, s);
    assert.deepEqual(s, extractViewSlice(dense, shape, axis, index), `${axis} ${index}`);
  }
  const applied = base.slice();
  for (const p of e.toPlaneRuns()) {
    checkRuns(p.runs, 42);
    applyRuns(applied, p.z * 42, p.runs);
  }
  assert.deepEqual(applied, dense);
  const back = LabelEdits.fromSnapshot(structuredClone(e.snapshot()));
  assert.deepEqual(back.toPlaneRuns(), e.toPlaneRuns());
});

test('editor: strokes, fills and holes are undoable far beyond 8 steps, redo re-applies, and the diff covers only the strokes', () => {
  const shape: [number, number, number] = [32, 32, 4];
  const base = new Uint8Array(32 * 32 * 4);
  const ed = new MaskEditor(shape);
  const plane = (k: number) => {
    const s = extractViewSlice(base, shape, 'z', k);
    ed.edits.applyToSlice('z', k, s);
    return s;
  };
  const view = { axis: 'z' as const, index: 1, labels: plane(1) };
  for (let s = 0; s < 30; s++) {
    ed.begin('brush');
    ed.brush(view, { x: 2.5 + (s % 28), y: 2.5 }, { x: 2.5 + (s % 28), y: 27.5 }, 0.5, { value: 1 + (s % 3) });
    ed.end();
  }
  assert.equal(ed.history.depth, 30);
  const afterStrokes = plane(1);
  assert.deepEqual(afterStrokes, view.labels, 'the plane on screen equals base + edits');
  // every changed voxel lies on a stroke column in plane 1
  for (const p of ed.edits.toPlaneRuns()) {
    assert.equal(p.z, 1);
    for (let t = 0; t < p.runs.length; t += 3) for (let i = p.runs[t]!; i < p.runs[t]! + p.runs[t + 1]!; i++) {
      const x = i % 32, y = Math.floor(i / 32);
      assert.ok(x >= 2 && x <= 29 && y >= 2 && y <= 27, `voxel (${x}, ${y}) is under a stroke`);
    }
  }
  for (let s = 0; s < 30; s++) assert.ok(ed.undo());
  assert.equal(ed.edits.size, 0, 'all 30 steps undone');
  assert.equal(ed.undo(), undefined);
  for (let s = 0; s < 30; s++) ed.redo();
  assert.deepEqual(plane(1), afterStrokes);
  // range fill: background of planes 0…2 around the strokes
  const cache = new Map<number, Uint8Array>([[1, view.labels]]);
  const at = (k: number) => cache.get(k) ?? (cache.set(k, plane(k)), cache.get(k)!);
  ed.begin('fill');
  const f = ed.fill(view, { x: 0.5, y: 0.5 }, { value: 9 }, [0, 2], at);
  const step = ed.end()!;
  assert.equal(f.pixels, step.voxels.length);
  assert.ok(plane(0).every((v) => v === 9), 'plane 0 (empty) filled whole');
  assert.ok(plane(3).every((v) => v === 0), 'plane 3 outside the range untouched');
  assert.deepEqual(changeRectInView(step, shape, 'z', 3), null);
  assert.deepEqual(changeRectInView(step, shape, 'z', 0), { x: 0, y: 0, w: 32, h: 32 });
  ed.undo();
  assert.ok(plane(0).every((v) => v === 0));
  // keepOthers: the brush does not paint over another label
  const v2 = { axis: 'y' as const, index: 5, labels: (() => { const s = extractViewSlice(base, shape, 'y', 5); ed.edits.applyToSlice('y', 5, s); return s; })() };
  ed.begin('brush');
  ed.brush(v2, { x: 0, y: 1.5 }, { x: 32, y: 1.5 }, 0.5, { value: 4, keepOthers: true });
  ed.end();
  assert.equal(plane(1)[5 + 32 * 5], 1, 'stroke label at (5, 5) kept');
  assert.equal(plane(1)[0 + 32 * 5], 4, 'background painted');
  // hole fill
  ed.reset();
  const v3 = { axis: 'z' as const, index: 2, labels: plane(2) };
  ed.begin('ring');
  for (const [a, b] of [[[4, 4], [12, 4]], [[12, 4], [12, 12]], [[12, 12], [4, 12]], [[4, 12], [4, 4]]] as [[number, number], [number, number]][]) {
    ed.brush(v3, { x: a[0] + 0.5, y: a[1] + 0.5 }, { x: b[0] + 0.5, y: b[1] + 0.5 }, 0.5, { value: 3 });
  }
  ed.end();
  const holes = ed.fillHoles(v3, 3);
  assert.equal(holes.pixels, 7 * 7);
});

test('history: bounded by bytes, not steps; a new step clears redo', () => {
  const h = new EditHistory(20_000);
  const mk = (n: number) => ({ label: 's', voxels: new Uint32Array(n), before: new Uint8Array(n), after: new Uint8Array(n) });
  for (let i = 0; i < 100; i++) h.push(mk(10));
  assert.equal(h.depth, 100, '100 small steps fit');
  h.push(mk(2000));
  assert.ok(h.bytes <= 20_000, 'the budget holds');
  assert.equal(h.depth + h.dropped, 101, 'oldest steps dropped first');
  assert.equal(h.undo()!.voxels.length, 2000, 'the newest step is kept');
  h.redo();
  h.undo();
  assert.ok(h.canRedo);
  h.push(mk(1));
  assert.ok(!h.canRedo);
  const b = new ChangeBuilder('x');
  b.record(3, 0, 1);
  b.record(3, 1, 0);
  assert.equal(b.build(), null, 'a voxel painted and erased in one step is no change');
});

test('flagged regions: components of the thresholded map with sizes, bounds, centroids and peaks', () => {
  const grid: [number, number, number] = [20, 10, 4];
  const map = new Uint8Array(800);
  const put = (i: number, j: number, k: number, v: number) => (map[i + 20 * (j + 10 * k)] = v);
  for (let k = 1; k <= 2; k++) for (let j = 2; j <= 4; j++) for (let i = 2; i <= 5; i++) put(i, j, k, 200); // 24 voxels
  put(3, 3, 2, 255);
  for (let i = 15; i <= 17; i++) put(i, 8, 3, 150); // 3 voxels
  put(10, 0, 0, 50); // below threshold
  const r = flaggedRegions(map, grid, { threshold: 100 });
  assert.equal(r.length, 2);
  assert.equal(r[0]!.voxels, 24);
  assert.deepEqual(r[0]!.min, [2, 2, 1]);
  assert.deepEqual(r[0]!.max, [5, 4, 2]);
  assert.deepEqual(r[0]!.centroid, [3.5, 3, 1.5]);
  assert.deepEqual(r[0]!.peakAt, [3, 3, 2]);
  assert.equal(r[0]!.peak, 255);
  assert.deepEqual(r[1]!.centroid, [16, 8, 3]);
  assert.equal(flaggedRegions(map, grid, { threshold: 100, minVoxels: 5 }).length, 1);
  assert.deepEqual(flaggedRegions(new Uint8Array(800), grid), []);
});

test('viewport: canvas ↔ slice round trip with aspect, flip and zoom about the cursor', () => {
  const vp = fitViewport(1000, 800, 512, 200, 2.5, 1.5, [10, -20], true);
  for (const [x, y] of [[0, 0], [511.5, 199], [100.25, 50.75]]) {
    const c = sliceToCanvas(vp, x!, y!);
    const s = canvasToSlice(vp, c.x, c.y);
    assert.ok(Math.abs(s.x - x!) < 1e-9 && Math.abs(s.y - y!) < 1e-9);
  }
  const fit = fitViewport(1024, 1024, 512, 512);
  assert.equal(fit.scaleX, 2);
  assert.deepEqual(canvasToSlice(fit, 512, 512), { x: 256, y: 256 });
  const before = fitViewport(800, 600, 256, 256, 1, 1, [0, 0]);
  const under = canvasToSlice(before, 300, 200);
  const z = zoomAbout(1, [0, 0], 2, 300, 200, 800, 600);
  const after = fitViewport(800, 600, 256, 256, 1, z.zoom, z.pan);
  const still = canvasToSlice(after, 300, 200);
  assert.ok(Math.abs(still.x - under.x) < 1e-9 && Math.abs(still.y - under.y) < 1e-9);
});

test('time on case counts visible, active time only', () => {
  let now = 0;
  const t = new ActiveTimer(() => now, 60_000);
  now = 30_000;
  t.activity();
  now = 50_000;
  assert.equal(t.elapsedMs(), 50_000);
  t.setVisible(false);
  now = 500_000;
  t.setVisible(true);
  now = 510_000;
  assert.equal(t.elapsedMs(), 60_000, 'hidden time not counted');
  now = 1_000_000; // idle since 500 000: counts 60 s of it
  assert.equal(t.elapsedMs(), 50_000 + 60_000);
});
