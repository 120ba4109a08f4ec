/**
 * Realistic 3D abdominal phantoms: per-source scanner profiles and findings (abdomen-realism.ts).
 * Checked against the generator's own definition only through what can be measured in the volumes
 * (noise in a homogeneous organ, organ HU, geometry, voxel counts), and against the clean phantom
 * regenerated with each finding switched off: the organ truth must change only where the finding is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { abdomenPhantom, organLabel, SOURCE_NAMES, type OrganName } from '../../src/core/phantom/abdomen.js';
import { drawCaseProfile, FINDING_NAMES, PHASE_HU, SOURCE_PROFILES, type FindingName } from '../../src/core/phantom/abdomen-realism.js';
import { Rng } from '../../src/core/random.js';

const SIZE = 40;
const count = (d: Uint8Array, l: number) => d.reduce((s, v) => s + (v === l ? 1 : 0), 0);

test('realistic phantoms: seeded, deterministic, and the clean phantom is unchanged without the flag', () => {
  const a = abdomenPhantom({ seed: 11, size: SIZE, source: 'lits', realistic: true });
  const b = abdomenPhantom({ seed: 11, size: SIZE, source: 'lits', realistic: true });
  assert.deepEqual(a.image.data, b.image.data);
  assert.deepEqual(a.truth.data, b.truth.data);
  assert.deepEqual(a.profile, b.profile);
  const clean = abdomenPhantom({ seed: 11, size: SIZE, source: 'lits' });
  assert.equal(clean.profile, undefined);
  assert.deepEqual(clean.image.data, abdomenPhantom({ seed: 11, size: SIZE, source: 'lits', realistic: false }).image.data);
  assert.notDeepEqual(a.image.data, clean.image.data);
  assert.notDeepEqual(abdomenPhantom({ seed: 12, size: SIZE, source: 'lits', realistic: true }).image.data, a.image.data);
});

/** Truth and image with a finding forced on and forced off, everything else as drawn. */
function pair(f: FindingName, seed: number, source: (typeof SOURCE_NAMES)[number] = 'btcv') {
  const others = FINDING_NAMES.filter((g) => g !== f);
  const on = abdomenPhantom({ seed, size: SIZE, source, realistic: true, findingsOn: [f], findingsOff: others });
  const off = abdomenPhantom({ seed, size: SIZE, source, realistic: true, findingsOff: FINDING_NAMES });
  assert.ok(on.profile!.findings.includes(f) && !off.profile!.findings.length);
  assert.deepEqual([on.profile!.phase, on.profile!.kernel, on.profile!.noise], [off.profile!.phase, off.profile!.kernel, off.profile!.noise], 'the scanner does not depend on findings');
  const diff: number[] = [];
  for (let v = 0; v < on.truth.data.length; v++) if (on.truth.data[v] !== off.truth.data[v]) diff.push(v);
  let imageDiff = 0;
  for (let v = 0; v < on.image.data.length; v++) if (Math.abs(on.image.data[v]! - off.image.data[v]!) > 25) imageDiff++;
  return { on, off, diff, imageDiff };
}

test('realistic phantoms: each finding changes the organ truth only where it is (regenerated without it)', () => {
  // Pathology inside an organ is labelled as that organ: truth identical, the image differs.
  for (const f of ['liverTumour', 'liverCyst', 'gallstones', 'metal', 'oralContrast', 'lowDose'] as const) {
    const { diff, imageDiff } = pair(f, 3);
    assert.equal(diff.length, 0, `${f}: truth unchanged`);
    assert.ok(imageDiff >= 1, `${f}: ${imageDiff} voxels of the image changed by > 25 HU (same noise in both)`);
  }
  // Failure modes strong enough to matter to a model, measured in the volume.
  {
    // Metal streaks cross organs with hundreds of HU (they hide edges), not only the fat.
    const { on, off } = pair('metal', 3);
    let hit = 0;
    for (let v = 0; v < on.truth.data.length; v++) if (on.truth.data[v] && Math.abs(on.image.data[v]! - off.image.data[v]!) > 300) hit++;
    assert.ok(hit >= 10, `metal: ${hit} organ voxels changed by > 300 HU`);
  }
  {
    // Positive oral contrast: the stomach's fluid is brighter than any contrast-enhanced organ.
    const { on, off } = pair('oralContrast', 3);
    const l = organLabel('stomach');
    const bright = (p: typeof on) => p.image.data.filter((x, v) => p.truth.data[v] === l && x > 200).length;
    const fluid = on.truth.data.filter((x) => x === l).length;
    assert.ok(bright(on) > 0.4 * fluid && bright(off) < 0.05 * fluid, `stomach voxels > 200 HU: ${bright(off)} → ${bright(on)} of ${fluid}`);
    assert.ok(on.profile!.oralContrastHu! >= 250 && on.profile!.oralContrastHu! <= 500);
  }
  {
    // Low dose: σ in the liver 3–4.5 × the scanner's (the difference of the two images is the noise
    // field times factor − 1, exactly: same stream, same kernel).
    const { on, off } = pair('lowDose', 3);
    const k = on.profile!.doseFactor;
    assert.ok(k >= 3 && k <= 4.5, `dose factor ${k}`);
    const l = organLabel('liver');
    const d: number[] = [], n0: number[] = [];
    for (let v = 0; v < on.truth.data.length; v++) if (on.truth.data[v] === l) { d.push(on.image.data[v]! - off.image.data[v]!); n0.push(off.image.data[v]!); }
    const sd = (xs: number[]) => { const m = xs.reduce((a, b) => a + b, 0) / xs.length; return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)); };
    const want = (k - 1) * on.profile!.noise;
    assert.ok(Math.abs(sd(d) - want) < 0.15 * want, `σ of the added noise ${sd(d).toFixed(1)} vs (k − 1) σ = ${want.toFixed(1)}`);
  }
  {
    // Situs inversus: the same organs mirrored left-right (patient frame); each kidney keeps its side's name.
    const { on, off } = pair('situsInversus', 3);
    const [nx, ny] = on.truth.shape;
    const xMean = (p: typeof on, o: OrganName) => {
      let s = 0, n = 0;
      for (let v = 0; v < p.truth.data.length; v++) if (p.truth.data[v] === organLabel(o)) { s += p.truth.origin[0] + (v % nx) * p.truth.spacing[0]; n++; }
      return { x: s / n, n };
    };
    void ny;
    for (const o of ['liver', 'spleen', 'stomach', 'gallbladder'] as const) {
      const a = xMean(off, o), b = xMean(on, o);
      assert.ok(Math.sign(a.x) !== Math.sign(b.x) && Math.abs(b.x) > 20, `${o}: centre x ${a.x.toFixed(0)} → ${b.x.toFixed(0)} mm`);
      assert.ok(Math.abs(b.n - a.n) <= 0.1 * a.n, `${o}: ${a.n} → ${b.n} voxels`);
    }
    assert.ok(xMean(on, 'kidney_right').x < 0 && xMean(on, 'kidney_left').x > 0, 'kidney_right stays on the patient\'s right (−x)');
  }
  // An exophytic kidney cyst is kidney: new voxels are the kidney's, nothing else moves.
  {
    const { on, off, diff } = pair('kidneyCyst', 3);
    const organ = on.profile!.inserts.find((s) => s.organ.startsWith('kidney'))!.organ as OrganName;
    assert.ok(diff.length > 0, 'the cyst bulges out of the kidney');
    for (const v of diff) assert.equal(on.truth.data[v], organLabel(organ), `voxel ${v}: ${off.truth.data[v]} → ${on.truth.data[v]}`);
  }
  const organCheck = (f: FindingName, organ: OrganName, ratio: (on: number, off: number) => boolean) => {
    const { on, off, diff } = pair(f, 4);
    const l = organLabel(organ);
    assert.ok(diff.length > 0, f);
    for (const v of diff) assert.ok(on.truth.data[v] === l || off.truth.data[v] === l, `${f}: voxel ${v} ${off.truth.data[v]} → ${on.truth.data[v]} is not ${organ}`);
    assert.ok(ratio(count(on.truth.data, l), count(off.truth.data, l)), `${f}: ${organ} ${count(off.truth.data, l)} → ${count(on.truth.data, l)} voxels`);
    return { on, off };
  };
  organCheck('splenomegaly', 'spleen', (a, b) => a > 1.8 * b);
  organCheck('atrophicPancreas', 'pancreas', (a, b) => a < 0.6 * b && a > 0);
  {
    const { on } = pair('missingKidney', 4);
    const k = on.profile!.missingKidney!;
    const { on: on2 } = organCheck('missingKidney', k, (a, b) => a === 0 && b > 0);
    assert.equal(on2.organs.find((o) => o.name === k)!.voxels, 0);
  }
  {
    const { on } = pair('displacedKidney', 4);
    const k = on.profile!.displacedKidney!.organ;
    const zc = (p: typeof on) => {
      const [nx, ny] = p.truth.shape;
      let s = 0, n = 0;
      for (let v = 0; v < p.truth.data.length; v++) if (p.truth.data[v] === organLabel(k)) { s += Math.floor(v / (nx * ny)); n++; }
      return (s / n) * p.truth.spacing[2];
    };
    const { on: a, off: b } = organCheck('displacedKidney', k, (x, y) => x > 0 && y > 0);
    assert.ok(zc(b) - zc(a) > 25, `${k} moved down ${zc(b) - zc(a)} mm`);
  }
  // Truncation: the truth outside the reconstruction circle is dropped, the image there is -1024.
  {
    const { on, off, diff } = pair('truncatedFov', 5);
    assert.ok(diff.length > 0, 'the circle cuts organs');
    for (const v of diff) {
      assert.equal(on.truth.data[v], 0);
      assert.equal(on.image.data[v], -1024);
    }
    assert.equal(count(on.truth.data, 0) - count(off.truth.data, 0), diff.length);
  }
});

test('realistic phantoms: finding and phase rates per source within their documented ranges (400 draws each)', () => {
  const N = 400;
  for (const s of SOURCE_NAMES) {
    const prof = SOURCE_PROFILES[s];
    const hits = Object.fromEntries(FINDING_NAMES.map((f) => [f, 0])) as Record<FindingName, number>;
    const phases: Record<string, number> = {};
    for (let i = 0; i < N; i++) {
      const c = drawCaseProfile(new Rng(1000 + i).fork('realism'), prof);
      for (const f of c.findings) hits[f]++;
      phases[c.phase] = (phases[c.phase] ?? 0) + 1;
      assert.ok(c.noise >= prof.noise[0] && c.noise <= prof.noise[1] && c.fovMm >= prof.fovMm[0] && c.fovMm <= prof.fovMm[1]);
    }
    for (const f of FINDING_NAMES) {
      const p = prof.rates[f], sd = Math.sqrt((p * (1 - p)) / N);
      assert.ok(Math.abs(hits[f] / N - p) <= 4 * sd + 0.005, `${s} ${f}: ${hits[f] / N} vs ${p}`);
    }
    const total = Object.values(prof.phases).reduce((a: number, b) => a + (b ?? 0), 0);
    for (const [ph, w] of Object.entries(prof.phases)) {
      const p = w / total, sd = Math.sqrt((p * (1 - p)) / N);
      assert.ok(Math.abs((phases[ph] ?? 0) / N - p) <= 4 * sd + 0.005, `${s} ${ph}: ${(phases[ph] ?? 0) / N} vs ${p}`);
    }
  }
});

test('realistic phantoms: measured noise, organ HU by phase and field of view within each source\'s ranges', () => {
  for (const s of SOURCE_NAMES) {
    const prof = SOURCE_PROFILES[s];
    for (const seed of [1, 2]) {
      const p = abdomenPhantom({ seed, size: SIZE, source: s, realistic: true, findingsOff: FINDING_NAMES });
      const c = p.profile!;
      const [nx, ny, nz] = p.truth.shape;
      const liver = organLabel('liver');
      // Liver interior (26-neighbourhood erosion): homogeneous, so its σ is the noise after the kernel.
      const vals: number[] = [];
      for (let k = 1; k < nz - 1; k++) for (let j = 1; j < ny - 1; j++) for (let i = 1; i < nx - 1; i++) {
        let all = true;
        for (let dk = -1; dk <= 1 && all; dk++) for (let dj = -1; dj <= 1 && all; dj++) for (let di = -1; di <= 1 && all; di++) {
          if (p.truth.data[i + di + nx * (j + dj + ny * (k + dk))] !== liver) all = false;
        }
        if (all) vals.push(p.image.data[i + nx * (j + ny * k)]!);
      }
      assert.ok(vals.length > 100, `${s}/${seed}: ${vals.length} interior liver voxels`);
      const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
      const sd = Math.sqrt(vals.reduce((a, b) => a + (b - mean) ** 2, 0) / (vals.length - 1));
      assert.ok(sd >= prof.noise[0] * 0.85 && sd <= prof.noise[1] * 1.15, `${s}/${seed} ${c.kernel}: σ ${sd.toFixed(1)} outside ${prof.noise}`);
      const offset = { btcv: 0, amos: 4, flare: -3, lits: 6, kits: -5, msd_spleen: 2, msd_pancreas: -2 }[s];
      assert.ok(Math.abs(mean - offset - PHASE_HU[c.phase].liver!) < 30, `${s}/${seed} ${c.phase}: liver ${mean.toFixed(0)} HU`);
      const fov = p.image.spacing[0] * nx;
      assert.ok(fov >= prof.fovMm[0] - 1e-9 && fov <= prof.fovMm[1] + 1e-9, `${s}: field of view ${fov}`);
      assert.ok(p.image.spacing[2] >= c.sliceMm - 1e-9 && p.image.spacing[2] >= 1.3 * p.image.spacing[0] - 1e-9);
    }
  }
  // Contrast phases are told apart by the aorta: arterial ≫ portal ≫ non-contrast.
  const aorta = (phase: string) => {
    for (let seed = 1; seed < 60; seed++) {
      const p = abdomenPhantom({ seed, size: SIZE, source: 'flare', realistic: true, findingsOff: FINDING_NAMES });
      if (p.profile!.phase !== phase) continue;
      const l = organLabel('aorta');
      let sum = 0, n = 0;
      for (let v = 0; v < p.truth.data.length; v++) if (p.truth.data[v] === l) { sum += p.image.data[v]!; n++; }
      return sum / n;
    }
    throw new Error(`no ${phase} case`);
  };
  const [art, por, non] = [aorta('arterial'), aorta('portal'), aorta('non-contrast')];
  assert.ok(art > por + 60 && por > non + 60, `aorta ${art.toFixed(0)} / ${por.toFixed(0)} / ${non.toFixed(0)} HU`);
});
