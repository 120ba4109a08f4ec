// AbdomenAtlas-8K attention maps and morphology against the NumPy / SciPy reference written by
// tools/fixtures/make_atlas_fixtures.py (scipy.ndimage.binary_erosion / binary_dilation with
// generate_binary_structure(3, c), border_value 0; np.std; scipy.special.entr).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { binaryDilation, binaryErosion, binaryOpening, type Connectivity, type Shape3 } from '../../src/core/atlas/morphology.js';
import { entr, ensembleStatistics, organAttention, overlapMasks, type ProbabilityArray } from '../../src/core/atlas/attention.js';
import { meanProbability, thresholdMasks } from '../../src/core/atlas/pseudo-label.js';
import { isMedmaskError } from '../../src/core/errors.js';

const dir = new URL('../fixtures/atlas/', import.meta.url);
interface Index {
  shape: [number, number, number];
  models: number;
  organs: number;
  cases: Record<string, { stdThreshold: number; entropyThreshold: number; erosions: number; dilations: number; connectivity: Connectivity; partners: boolean[]; voxels: number[] }>;
  arrays: Record<string, { dtype: 'float32' | 'uint8'; offset: number; length: number }>;
}
const index = JSON.parse(readFileSync(new URL('index.json', dir), 'utf8')) as Index;
const blob = readFileSync(new URL('arrays.bin', dir));
const buf = blob.buffer.slice(blob.byteOffset, blob.byteOffset + blob.byteLength);
function f32(name: string): Float32Array {
  const a = index.arrays[name];
  assert.ok(a && a.dtype === 'float32', `fixture ${name} missing or not float32`);
  return new Float32Array(buf, a.offset, a.length);
}
function u8(name: string): Uint8Array {
  const a = index.arrays[name];
  assert.ok(a && a.dtype === 'uint8', `fixture ${name} missing or not uint8`);
  return new Uint8Array(buf, a.offset, a.length);
}
const shape = index.shape as Shape3;

function sameMask(got: Uint8Array, want: Uint8Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let diff = 0, first = -1;
  for (let i = 0; i < got.length; i++) if ((got[i] ? 1 : 0) !== want[i]) { diff++; if (first < 0) first = i; }
  assert.equal(diff, 0, `${what}: ${diff} voxels differ from SciPy (first at ${first})`);
}

test('morphology: erosion and dilation equal SciPy voxel for voxel (connectivity 1, 2, 3; 1–3 iterations; border 0)', () => {
  const input = u8('morph/input');
  for (const c of [1, 2, 3] as const) {
    for (const it of [1, 2, 3]) {
      sameMask(binaryErosion(input, shape, { connectivity: c, iterations: it }), u8(`morph/erode/${c}/${it}`), `erode c${c} ×${it}`);
      sameMask(binaryDilation(input, shape, { connectivity: c, iterations: it }), u8(`morph/dilate/${c}/${it}`), `dilate c${c} ×${it}`);
    }
    sameMask(binaryOpening(input, shape, { connectivity: c }), u8(`morph/open/${c}`), `open c${c}`);
  }
  // The fixtures are not trivial: erosion removes voxels and dilation adds some.
  const count = (a: Uint8Array) => a.reduce((s, x) => s + x, 0);
  assert.ok(count(u8('morph/erode/3/2')) > 0 && count(u8('morph/erode/3/2')) < count(input) && count(u8('morph/dilate/3/1')) > count(input));
});

test('morphology: separable full cube equals brute-force iteration; in-place output; input untouched', () => {
  const input = u8('morph/input');
  const copy = input.slice();
  for (const it of [1, 2, 4]) {
    // Brute force: iterate the 26-neighbour step by hand.
    let e: Uint8Array = copy.slice();
    let d: Uint8Array = copy.slice();
    for (let k = 0; k < it; k++) {
      e = binaryErosion(e, shape, { connectivity: 3, iterations: 1 });
      d = binaryDilation(d, shape, { connectivity: 3, iterations: 1 });
    }
    sameMask(binaryErosion(input, shape, { iterations: it }), e, `cube erosion ×${it}`);
    sameMask(binaryDilation(input, shape, { iterations: it }), d, `cube dilation ×${it}`);
  }
  assert.deepEqual(input, copy);
  const inPlace = copy.slice();
  binaryOpening(inPlace, shape, { out: inPlace });
  sameMask(inPlace, u8('morph/open/3'), 'in-place opening');
});

test('morphology: a single voxel dilates to a (2k+1)³ cube clipped at the border; a full grid erodes from the border', () => {
  const s: Shape3 = [7, 6, 5];
  const m = new Uint8Array(7 * 6 * 5);
  m[0] = 1; // corner (0, 0, 0)
  const d = binaryDilation(m, s, { iterations: 2 });
  for (let z = 0; z < 5; z++) for (let y = 0; y < 6; y++) for (let x = 0; x < 7; x++) {
    assert.equal(d[x + 7 * (y + 6 * z)], x <= 2 && y <= 2 && z <= 2 ? 1 : 0);
  }
  const full = new Uint8Array(7 * 6 * 5).fill(1);
  const e = binaryErosion(full, s, { iterations: 2 });
  for (let z = 0; z < 5; z++) for (let y = 0; y < 6; y++) for (let x = 0; x < 7; x++) {
    assert.equal(e[x + 7 * (y + 6 * z)], x >= 2 && x <= 4 && y >= 2 && y <= 3 && z === 2 ? 1 : 0);
  }
  // 6-neighbourhood: a single voxel dilates to an L1 ball.
  const c = new Uint8Array(7 * 6 * 5);
  c[3 + 7 * (3 + 6 * 2)] = 1;
  const dd = binaryDilation(c, s, { connectivity: 1, iterations: 2 });
  for (let z = 0; z < 5; z++) for (let y = 0; y < 6; y++) for (let x = 0; x < 7; x++) {
    assert.equal(dd[x + 7 * (y + 6 * z)], Math.abs(x - 3) + Math.abs(y - 3) + Math.abs(z - 2) <= 2 ? 1 : 0);
  }
});

test('morphology: bad shapes and options are MedmaskErrors naming the value', () => {
  assert.throws(() => binaryErosion(new Uint8Array(10), [2, 2, 2]), (e) => isMedmaskError(e) && /10 voxels/.test(e.message) && /2×2×2/.test(e.message));
  assert.throws(() => binaryErosion(new Uint8Array(8), [2, 2, 2], { connectivity: 4 as Connectivity }), (e) => isMedmaskError(e) && /connectivity 4/.test(e.message));
  assert.throws(() => binaryOpening(new Uint8Array(8), [2, 2, 2], { erosions: -1 }), (e) => isMedmaskError(e) && /erosions -1/.test(e.message));
});

function probs(kind: 'f32' | 'u8', organ: number): ProbabilityArray[] {
  return Array.from({ length: index.models }, (_, k) => (kind === 'f32' ? f32(`prob/f32/${organ}/${k}`) : u8(`prob/u8/${organ}/${k}`)));
}

for (const [name, kind] of [['default', 'f32'], ['uint8', 'u8'], ['custom', 'f32']] as const) {
  test(`attention (${name}): inconsistency, uncertainty, overlap, binary and heat equal the NumPy reference`, () => {
    const c = index.cases[name]!;
    // Organ masks from the mean probability, as the public code's average segmentations.
    const means = Array.from({ length: index.organs }, (_, o) => meanProbability(probs(kind, o)));
    const masks = thresholdMasks(means, 0.5);
    masks.forEach((m, o) => sameMask(m, u8(`${name}/${o}/organ_mask`), `${name} organ ${o} mask (mean > 0.5)`));
    const overlaps = overlapMasks(masks, c.partners);
    for (let o = 0; o < index.organs; o++) {
      const a = organAttention(probs(kind, o), shape, overlaps[o]!, c);
      sameMask(a.inconsistency, u8(`${name}/${o}/std_mask`), `${name} organ ${o} inconsistency`);
      sameMask(a.uncertainty, u8(`${name}/${o}/ent_mask`), `${name} organ ${o} uncertainty`);
      sameMask(a.overlap, u8(`${name}/${o}/overlap`), `${name} organ ${o} overlap`);
      sameMask(a.binary, u8(`${name}/${o}/binary`), `${name} organ ${o} binary`);
      assert.equal(a.voxels, c.voxels[o]);
      const heat = f32(`${name}/${o}/heat`);
      let worst = 0, sum = 0;
      for (let v = 0; v < heat.length; v++) {
        worst = Math.max(worst, Math.abs(a.heat[v]! - heat[v]!));
        sum += heat[v]!;
      }
      assert.ok(worst < 1e-6, `${name} organ ${o} heat differs by ${worst}`);
      assert.ok(Math.abs(a.heatSum - sum) < 1e-3 * Math.max(1, sum), `heat sum ${a.heatSum} vs ${sum}`);
    }
  });
}

test('ensemble statistics: std and mean entropy equal np.std and mean entr to float32 precision', () => {
  const n = shape[0] * shape[1] * shape[2];
  for (let o = 0; o < index.organs; o++) {
    const { std, entropy } = ensembleStatistics(probs('f32', o), n);
    const rs = f32(`default/${o}/std`), re = f32(`default/${o}/entropy`);
    for (let v = 0; v < n; v++) {
      assert.equal(std[v], rs[v], `std at ${v}`);
      assert.ok(Math.abs(entropy[v]! - re[v]!) <= 2e-7 * Math.max(1, re[v]!), `entropy at ${v}: ${entropy[v]} vs ${re[v]}`);
    }
  }
});

test('attention: closed forms — one model has no inconsistency; identical confident models flag nothing; entr', () => {
  assert.equal(entr(0), 0);
  assert.equal(entr(1), 0);
  assert.ok(Math.abs(entr(Math.exp(-1)) - Math.exp(-1)) < 1e-15); // the maximum 1/e at p = 1/e
  const s: Shape3 = [9, 9, 9];
  const n = 729;
  // A uniform p = 0.5 everywhere from one model: std 0, entropy 0.5 ln 2 ≈ 0.347 > 0.05 everywhere,
  // and the full grid opened (erode 2 then dilate 2) is the full grid again.
  const half = new Float32Array(n).fill(0.5);
  const one = organAttention([half], s, null);
  assert.equal(one.inconsistency.reduce((a, b) => a + b, 0), 0);
  assert.equal(one.uncertainty.reduce((a, b) => a + b, 0), n);
  assert.equal(one.voxels, n);
  assert.ok(Math.abs(one.heatMax - 0.5 * Math.LN2) < 1e-7 && one.heat.every((h) => Math.abs(h - 1) < 1e-6));
  // Confident identical models: nothing flagged; the heat map is all 0 (NumPy would give NaN).
  const sure = new Float32Array(n).fill(0.999);
  const none = organAttention([sure, sure, sure], s, null);
  assert.equal(none.voxels, 0);
  assert.equal(none.heatMax, 0);
  assert.ok(none.heat.every((h) => h === 0));
  // Models 0 / 1 / 1 in a 5³ block: std = √2/3 ≈ 0.47 > 0.1 there; a 5³ block survives the opening
  // exactly; entropy is 0 (entr(0) = entr(1) = 0). Heat = std / std = 1 inside.
  const a = new Float32Array(n), b = new Float32Array(n);
  for (let z = 2; z < 7; z++) for (let y = 2; y < 7; y++) for (let x = 2; x < 7; x++) b[x + 9 * (y + 9 * z)] = 1;
  const blk = organAttention([a, b, b], s, null);
  assert.equal(blk.voxels, 125);
  assert.deepEqual(blk.inconsistency, Uint8Array.from(b));
  assert.ok(Math.abs(blk.heatMax - Math.sqrt(2) / 3) < 1e-7);
  // A 4³ block does not survive 2 erosions with the 3×3×3 cube.
  const c = new Float32Array(n);
  for (let z = 2; z < 6; z++) for (let y = 2; y < 6; y++) for (let x = 2; x < 6; x++) c[x + 9 * (y + 9 * z)] = 1;
  assert.equal(organAttention([a, c, c], s, null).voxels, 0);
  // …but does with one erosion and one dilation.
  assert.equal(organAttention([a, c, c], s, null, { erosions: 1, dilations: 1 }).voxels, 64);
});

test('overlap: voxels claimed by this organ and another partner organ', () => {
  const A = Uint8Array.from([1, 1, 1, 0, 0, 1]);
  const B = Uint8Array.from([0, 1, 1, 1, 0, 0]);
  const C = Uint8Array.from([0, 0, 1, 1, 1, 1]);
  assert.deepEqual(overlapMasks([A, B, C]), [Uint8Array.from([0, 1, 1, 0, 0, 1]), Uint8Array.from([0, 1, 1, 1, 0, 0]), Uint8Array.from([0, 0, 1, 1, 0, 1])]);
  // C (a vessel, say) is not a partner: A and B no longer overlap where only C is; C still overlaps A and B.
  assert.deepEqual(overlapMasks([A, B, C], [true, true, false]), [Uint8Array.from([0, 1, 1, 0, 0, 0]), Uint8Array.from([0, 1, 1, 0, 0, 0]), Uint8Array.from([0, 0, 1, 1, 0, 1])]);
  assert.throws(() => overlapMasks([A, new Uint8Array(3)]), (e) => isMedmaskError(e) && /3 voxels/.test(e.message));
});

test('attention: bad input names the value', () => {
  assert.throws(() => organAttention([new Float32Array(8)], [2, 2, 3], null), (e) => isMedmaskError(e) && /8 voxels/.test(e.message));
  assert.throws(() => organAttention([new Float32Array(8), new Float32Array(7)], [2, 2, 2], null), (e) => isMedmaskError(e) && /model 1/.test(e.message));
  assert.throws(() => organAttention([new Float32Array(8)], [2, 2, 2], null, { stdThreshold: -1 }), (e) => isMedmaskError(e) && /stdThreshold -1/.test(e.message));
  assert.throws(() => organAttention([], [2, 2, 2], null), (e) => isMedmaskError(e));
});
