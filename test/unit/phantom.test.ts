import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chestPhantom, oodPhantom, OOD_KINDS, CHEST_LABELS } from '../../src/core/phantom/chest.js';
import { abdomenPhantom, assignSources, ORGANS, PHANTOM_SOURCES, SOURCE_NAMES, organLabel, type OrganName } from '../../src/core/phantom/abdomen.js';
import { Rng } from '../../src/core/random.js';
import { voxelToWorld } from '../../src/core/volume.js';

const sum = (a: ArrayLike<number>): number => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]!; return s; };

test('Rng: same seed, same stream; forks are independent of how much the parent drew; normal has mean 0 and sd 1', () => {
  const a = new Rng(5), b = new Rng(5);
  assert.deepEqual(Array.from({ length: 5 }, () => a.random()), Array.from({ length: 5 }, () => b.random()));
  const f1 = new Rng(5).fork('x').random();
  const p = new Rng(5);
  p.random(); p.random();
  assert.equal(p.fork('x').random(), f1);
  assert.notEqual(new Rng(5).fork('y').random(), f1);
  const r = new Rng(11);
  const xs = Array.from({ length: 20000 }, () => r.normal());
  const m = sum(xs) / xs.length, sd = Math.sqrt(sum(xs.map((x) => (x - m) ** 2)) / xs.length);
  assert.ok(Math.abs(m) < 0.03 && Math.abs(sd - 1) < 0.03, `mean ${m}, sd ${sd}`);
  const ints = Array.from({ length: 3000 }, () => r.int(2, 4));
  assert.deepEqual([...new Set(ints)].sort(), [2, 3, 4]);
});

test('chest: the same seed gives identical pixels; another seed does not', () => {
  const a = chestPhantom({ seed: 42, size: 96 }), b = chestPhantom({ seed: 42, size: 96 });
  assert.deepEqual(a.image, b.image);
  assert.deepEqual(a.mask, b.mask);
  assert.notDeepEqual(chestPhantom({ seed: 43, size: 96 }).image, a.image);
});

test('chest: the lesion mask is exactly the set of pixels the lesions change, and lies inside the lungs', () => {
  for (let seed = 0; seed < 24; seed++) {
    const label = CHEST_LABELS[seed % 4]!;
    const p = chestPhantom({ seed, size: 128, label, difficulty: (seed % 5) / 4 });
    const clean = chestPhantom({ seed, size: 128, label, difficulty: (seed % 5) / 4, lesions: false });
    let diff = 0;
    for (let i = 0; i < p.image.length; i++) {
      const changed = p.image[i] !== clean.image[i] ? 1 : 0;
      assert.equal(changed, p.mask[i], `seed ${seed} (${label}) pixel ${i}: changed ${changed}, mask ${p.mask[i]}`);
      if (p.mask[i]) assert.equal(p.lungs[i], 1, `seed ${seed}: lesion pixel ${i} outside the lungs`);
      diff += changed;
    }
    if (label === 'healthy') assert.equal(diff, 0);
    else assert.ok(diff > 0 && p.lesions.length > 0 && p.lesions.every((l) => l.kind === label), `seed ${seed}: ${label} has no lesion`);
  }
});

test('chest: nodule and cavity masks equal the union of the reported discs, clipped to the lungs', () => {
  for (const label of ['nodule', 'cavity'] as const) {
    for (let seed = 100; seed < 106; seed++) {
      const p = chestPhantom({ seed, size: 160, label });
      for (let y = 0; y < p.size; y++) {
        for (let x = 0; x < p.size; x++) {
          const inDisc = p.lesions.some((l) => (x + 0.5 - l.center[0]) ** 2 + (y + 0.5 - l.center[1]) ** 2 <= l.radius ** 2);
          const i = y * p.size + x;
          assert.equal(p.mask[i], inDisc && p.lungs[i] ? 1 : 0, `${label} seed ${seed} at (${x}, ${y})`);
        }
      }
      assert.equal(sum(p.mask), sum(p.lesions.map((l) => l.pixels)));
    }
  }
});

test('chest: lungs are dark and lesions bright on average, the left and right lung fields are separate, labels follow abnormalRate', () => {
  const p = chestPhantom({ seed: 9, size: 128, label: 'nodule' });
  let lung = 0, nl = 0, les = 0, nles = 0;
  for (let i = 0; i < p.image.length; i++) {
    if (p.mask[i]) { les += p.image[i]!; nles++; } else if (p.lungs[i]) { lung += p.image[i]!; nl++; }
  }
  assert.ok(les / nles > lung / nl + 15, `lesion ${les / nles} vs lung ${lung / nl}`);
  const mid = p.size / 2;
  for (let y = 0; y < p.size; y++) assert.equal(p.lungs[y * p.size + mid], 0, 'the mediastinum separates the lungs');
  const labels = Array.from({ length: 400 }, (_, s) => chestPhantom({ seed: s, size: 32, abnormalRate: 0.25 }).label);
  const abnormal = labels.filter((l) => l !== 'healthy').length;
  assert.ok(abnormal > 70 && abnormal < 130, `${abnormal} / 400 abnormal at rate 0.25`); // binomial mean 100, sd 8.7
});

test('OOD images are unlike chest phantoms (correlation with the mean chest image)', () => {
  const n = 96;
  const mean = new Float64Array(n * n);
  const chests = Array.from({ length: 12 }, (_, s) => chestPhantom({ seed: 1000 + s, size: n }).image);
  for (const c of chests) for (let i = 0; i < mean.length; i++) mean[i]! += c[i]! / chests.length;
  const corr = (a: ArrayLike<number>) => {
    let sa = 0, sb = 0, sab = 0, saa = 0, sbb = 0;
    for (let i = 0; i < mean.length; i++) { const x = a[i]!, y = mean[i]!; sa += x; sb += y; sab += x * y; saa += x * x; sbb += y * y; }
    const m = mean.length;
    return (sab - (sa * sb) / m) / Math.sqrt((saa - (sa * sa) / m) * (sbb - (sb * sb) / m));
  };
  const inDist = chestPhantom({ seed: 5000, size: n }).image;
  assert.ok(corr(inDist) > 0.9, `in-distribution correlation ${corr(inDist)}`);
  for (const kind of OOD_KINDS) {
    const img = oodPhantom(kind, 7, n);
    assert.deepEqual(img, oodPhantom(kind, 7, n));
    assert.ok(corr(img) < 0.6, `${kind}: correlation ${corr(img)}`);
  }
});

function centroidWorld(p: ReturnType<typeof abdomenPhantom>, label: number): number[] {
  const [nx, ny, nz] = p.truth.shape;
  const c = [0, 0, 0];
  let n = 0;
  for (let k = 0, i = 0; k < nz; k++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++, i++) {
    if (p.truth.data[i] === label) { c[0] += x; c[1] += y; c[2] += k; n++; }
  }
  const v = c.map((s) => s / n);
  const m = voxelToWorld(p.truth);
  return [0, 1, 2].map((r) => m[r * 4]! * v[0]! + m[r * 4 + 1]! * v[1]! + m[r * 4 + 2]! * v[2]! + m[r * 4 + 3]!);
}

test('abdomen: same seed → identical volumes; anisotropic scanner-like geometry', () => {
  const a = abdomenPhantom({ seed: 3, size: 48 }), b = abdomenPhantom({ seed: 3, size: 48 });
  assert.deepEqual(a.image.data, b.image.data);
  assert.deepEqual(a.truth.data, b.truth.data);
  assert.deepEqual(a.image.origin, b.image.origin);
  assert.ok(a.image.spacing[2] > a.image.spacing[0] * 1.2, `spacing ${a.image.spacing}`);
  assert.equal(a.image.spacing[0], a.image.spacing[1]);
  const fov = a.image.spacing[0] * a.image.shape[0];
  assert.ok(fov > 320 && fov < 410, `field of view ${fov} mm`);
  assert.notDeepEqual(abdomenPhantom({ seed: 4, size: 48 }).truth.data, a.truth.data);
});

test('abdomen: organ volumes fall in plausible ratios and ranges; anatomy on the right sides', () => {
  const ranges: Record<OrganName, [number, number]> = {
    liver: [1000, 3200], spleen: [80, 500], kidney_right: [70, 300], kidney_left: [70, 300], gallbladder: [8, 90],
    stomach: [150, 1200], aorta: [30, 200], postcava: [30, 250], pancreas: [20, 150],
  };
  for (let seed = 0; seed < 6; seed++) {
    const p = abdomenPhantom({ seed, size: 64 });
    const ml = Object.fromEntries(p.organs.map((o) => [o.name, o.ml])) as Record<OrganName, number>;
    // Independent count from the label map itself.
    const voxelMl = p.truth.spacing[0] * p.truth.spacing[1] * p.truth.spacing[2] / 1000;
    for (const o of ORGANS) {
      let n = 0;
      for (const l of p.truth.data) if (l === organLabel(o)) n++;
      assert.ok(Math.abs(n * voxelMl - ml[o]) < 1e-6);
      assert.ok(ml[o] >= ranges[o][0] && ml[o] <= ranges[o][1], `seed ${seed}: ${o} ${ml[o].toFixed(0)} mL outside ${ranges[o]}`);
    }
    assert.equal(Math.max(...Object.values(ml)), ml.liver, `seed ${seed}: the liver is the largest organ`);
    assert.ok(ml.gallbladder < 0.06 * ml.liver && ml.pancreas < 0.1 * ml.liver);
    const x = (o: OrganName) => centroidWorld(p, organLabel(o))[0]!;
    const y = (o: OrganName) => centroidWorld(p, organLabel(o))[1]!;
    const z = (o: OrganName) => centroidWorld(p, organLabel(o))[2]!;
    // LPS: +x is the patient's left. Liver, gallbladder, right kidney and the IVC on the right.
    assert.ok(x('liver') < x('spleen') && x('kidney_right') < x('kidney_left') && x('postcava') < x('aorta') && x('gallbladder') < x('stomach'));
    assert.ok(y('kidney_left') > y('stomach') && y('aorta') > y('pancreas'), 'kidneys and aorta are posterior');
    assert.ok(z('liver') > z('kidney_right'), 'the liver sits above the right kidney');
  }
});

test('abdomen: HU by tissue, partial labels equal the truth on the source\'s organs and are 0 elsewhere', () => {
  for (const source of SOURCE_NAMES) {
    const p = abdomenPhantom({ seed: 21, size: 48, source });
    assert.equal(p.source, source);
    const want = new Set(PHANTOM_SOURCES[source].labelled.map(organLabel));
    for (let i = 0; i < p.truth.data.length; i++) {
      const t = p.truth.data[i]!;
      assert.equal(p.partial.data[i], want.has(t) ? t : 0);
    }
    assert.deepEqual(p.labelled.map(organLabel).sort(), [...want].sort());
  }
  const p = abdomenPhantom({ seed: 8, size: 64 });
  const meanHu = (label: number) => {
    let s = 0, n = 0;
    for (let i = 0; i < p.truth.data.length; i++) if (p.truth.data[i] === label) { s += p.image.data[i]!; n++; }
    return s / n;
  };
  assert.ok(Math.abs(meanHu(organLabel('liver')) - 100) < 40);
  assert.ok(meanHu(organLabel('aorta')) > meanHu(organLabel('gallbladder')) + 80);
  assert.equal(p.image.data[0], Math.max(-1024, p.image.data[0]!));
  assert.ok(p.image.data[0]! < -900, 'air in the corner');
  const srcs = assignSources(14, 1);
  assert.ok(new Set(srcs).size >= 5, `sources ${srcs}`);
  assert.throws(() => abdomenPhantom({ seed: 1, size: 8 }), /size 8/);
  assert.throws(() => chestPhantom({ seed: 1, size: 8 }), /size 8/);
});
