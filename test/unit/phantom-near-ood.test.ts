import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chestPhantom, oodPhantom, NEAR_OOD_KINDS, CHEST_LABELS } from '../../src/core/phantom/chest.js';
import { meanCi95, tQuantile975 } from '../../src/core/metrics/interval.js';

const sum = (a: ArrayLike<number>): number => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]!; return s; };

test('near-OOD is additive: the plain chest and OOD images hash as they did before near-OOD kinds existed', () => {
  const h = createHash('sha256');
  for (let s = 0; s < 8; s++) {
    const p = chestPhantom({ seed: s, size: 64, difficulty: (s % 5) / 4 });
    h.update(p.image).update(p.mask).update(p.lungs).update(p.body);
  }
  for (const k of ['knee', 'inverted', 'ct-slice'] as const) h.update(oodPhantom(k, 3, 64));
  // Computed from the generator at the commit before near-OOD images were added.
  assert.equal(h.digest('hex'), '3e5db09ea77e16a075c327c5cc7899182447dd665ca90420aa50c21393e0e039');
});

test('near-OOD: each kind is seeded (same seed, same pixels), differs from the plain image, and keeps its label and lesion draw', () => {
  for (const kind of NEAR_OOD_KINDS) {
    const a = chestPhantom({ seed: 21, size: 96, nearOod: kind }), b = chestPhantom({ seed: 21, size: 96, nearOod: kind });
    const plain = chestPhantom({ seed: 21, size: 96 });
    assert.deepEqual(a.image, b.image, kind);
    assert.deepEqual(a.mask, b.mask, kind);
    assert.equal(a.nearOod, kind);
    assert.notDeepEqual(a.image, plain.image, kind);
    assert.notDeepEqual(a.image, chestPhantom({ seed: 22, size: 96, nearOod: kind }).image, kind);
    assert.equal(a.label, plain.label, `${kind}: the label comes from the same stream`);
    if (kind !== 'paediatric') assert.deepEqual(a.lesions, plain.lesions, `${kind}: the lesions are those of the plain image`);
  }
  assert.throws(() => chestPhantom({ seed: 1, size: 32, nearOod: 'mri' as never }), /near-OOD kind "mri" is unknown/);
});

test('near-OOD truth is exact: the mask is the set of pixels lesions (and an effusion) change, inside the lungs', () => {
  for (const kind of NEAR_OOD_KINDS) {
    for (let seed = 0; seed < 8; seed++) {
      const label = CHEST_LABELS[seed % 4]!;
      const o = { seed, size: 96, label, nearOod: kind, difficulty: (seed % 5) / 4 };
      const p = chestPhantom(o), clean = chestPhantom({ ...o, lesions: false });
      let changed = 0;
      for (let i = 0; i < p.image.length; i++) {
        const c = p.image[i] !== clean.image[i] ? 1 : 0;
        assert.equal(c, p.mask[i], `${kind} seed ${seed} (${label}) pixel ${i}: changed ${c}, mask ${p.mask[i]}`);
        if (p.mask[i]) assert.equal(p.lungs[i], 1, `${kind} seed ${seed}: mask pixel ${i} outside the lungs`);
        changed += c;
      }
      assert.equal(sum(clean.mask), 0);
      if (kind === 'effusion') {
        assert.ok(p.effusion && p.effusion.pixels > 0, `seed ${seed}: no effusion`);
        assert.equal(clean.effusion, undefined);
        if (label === 'healthy') assert.equal(changed, p.effusion.pixels);
      } else {
        assert.equal(p.effusion, undefined);
        assert.equal(changed > 0, label !== 'healthy', `${kind} seed ${seed} (${label})`);
      }
    }
  }
});

test('near-OOD kinds look as documented: a smaller chest, devices only add density, an effusion at the lung base, another contrast curve', () => {
  for (let seed = 30; seed < 34; seed++) {
    const plain = chestPhantom({ seed, size: 128, label: 'healthy' });
    const child = chestPhantom({ seed, size: 128, label: 'healthy', nearOod: 'paediatric' });
    const ratio = sum(child.body) / sum(plain.body);
    assert.ok(ratio > 0.62 ** 2 * 0.9 && ratio < 0.78 ** 2 * 1.1, `seed ${seed}: body area ratio ${ratio}`);
    const dev = chestPhantom({ seed, size: 128, label: 'healthy', nearOod: 'devices' });
    let added = 0;
    for (let i = 0; i < dev.image.length; i++) {
      assert.ok(dev.image[i]! >= plain.image[i]!, `seed ${seed}: a device darkened pixel ${i}`);
      if (dev.image[i]! > plain.image[i]! + 30) added++;
    }
    assert.ok(added > 20, `seed ${seed}: only ${added} pixels carry a device`);
    const eff = chestPhantom({ seed, size: 128, label: 'healthy', nearOod: 'effusion' });
    // Fluid lies in the lower part of the lung field: its mean row is below the lung's.
    const rows = (m: Uint8Array) => { let s = 0, k = 0; m.forEach((v, i) => { if (v) { s += Math.floor(i / 128); k++; } }); return s / k; };
    assert.ok(rows(eff.mask) > rows(eff.lungs) + 10, `seed ${seed}: effusion row ${rows(eff.mask)} vs lungs ${rows(eff.lungs)}`);
    const sc = chestPhantom({ seed, size: 128, label: 'healthy', nearOod: 'scanner' });
    const lungMean = (p: typeof plain) => { let s = 0; p.lungs.forEach((v, i) => { if (v) s += p.image[i]!; }); return s / sum(p.lungs); };
    assert.ok(lungMean(sc) > lungMean(plain) + 20, `seed ${seed}: scanner lung mean ${lungMean(sc)} vs ${lungMean(plain)}`);
  }
});

test('t-interval: quantiles match SciPy\'s t.ppf(0.975, df); the interval of a known sample', () => {
  const scipy: [number, number][] = [[1, 12.7062], [2, 4.3027], [5, 2.5706], [10, 2.2281], [29, 2.0452], [30, 2.0423], [31, 2.0395], [40, 2.0211], [60, 2.0003], [100, 1.984], [1000, 1.9623]];
  for (const [df, q] of scipy) assert.ok(Math.abs(tQuantile975(df) - q) < 2e-4, `df ${df}: ${tQuantile975(df)} vs ${q}`);
  const ci = meanCi95([1, 2, 3, 4, 5]); // sd √2.5, half-width 2.7764 · √2.5 / √5
  assert.equal(ci.mean, 3);
  assert.ok(Math.abs(ci.halfWidth - 2.7764 * Math.sqrt(0.5)) < 1e-4, `${ci.halfWidth}`);
  assert.ok(Number.isNaN(meanCi95([0.7]).halfWidth));
});
