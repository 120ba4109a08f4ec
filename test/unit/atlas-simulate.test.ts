import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/random.js';
import { abdomenPhantom, ABDOMEN_LABELS } from '../../src/core/phantom/abdomen.js';
import { caseTrouble, simulateOrganPrediction, type CaseTrouble } from '../../src/core/atlas/simulate.js';

const p = abdomenPhantom({ seed: 3, size: 40, source: 'btcv' });
const shape = p.truth.shape;
const truth = p.truth.data;

test('a model that never errs reproduces the truth at p > 0.5', () => {
  const t = caseTrouble(truth, shape, new Rng(1), { organs: ABDOMEN_LABELS, spacing: p.truth.spacing });
  for (const label of [1, 5, 9]) {
    const prob = simulateOrganPrediction(truth, shape, label, t, { name: 'perfect', skill: 0, boundary: 0 }, new Rng(2));
    for (let v = 0; v < truth.length; v++) assert.equal(prob[v]! > 127, truth[v] === label, `voxel ${v}, organ ${label}`);
  }
});

test('simulation is seeded; spots make misses and false blobs where they say', () => {
  const a = caseTrouble(truth, shape, new Rng(5), { organs: ABDOMEN_LABELS, spacing: p.truth.spacing });
  const b = caseTrouble(truth, shape, new Rng(5), { organs: ABDOMEN_LABELS, spacing: p.truth.spacing });
  assert.deepEqual(a, b);
  const model = { name: 'm', skill: 1, boundary: 1 as const };
  assert.deepEqual(simulateOrganPrediction(truth, shape, 5, a, model, new Rng(9)), simulateOrganPrediction(truth, shape, 5, a, model, new Rng(9)));
  // A certain miss of the liver's centre: no liver voxel inside the ellipsoid is predicted above 0.5.
  const [nx, ny] = shape;
  let c = [0, 0, 0], k = 0;
  for (let v = 0; v < truth.length; v++) if (truth[v] === 5) { c = [c[0]! + (v % nx), c[1]! + (Math.floor(v / nx) % ny), c[2]! + Math.floor(v / (nx * ny))]; k++; }
  const centre = c.map((x) => Math.round(x / k)) as [number, number, number];
  const miss: CaseTrouble = { difficulty: 1, spots: [{ label: 5, kind: 'miss', centre, radius: [4, 4, 3], hardness: 10 }] };
  const prob = simulateOrganPrediction(truth, shape, 5, miss, { name: 'm', skill: 1, boundary: 0 }, new Rng(4));
  let inside = 0, wrong = 0;
  for (let v = 0; v < truth.length; v++) {
    const x = v % nx, y = Math.floor(v / nx) % ny, z = Math.floor(v / (nx * ny));
    const inSpot = ((x - centre[0]) / 4) ** 2 + ((y - centre[1]) / 4) ** 2 + ((z - centre[2]) / 3) ** 2 <= 1;
    if (inSpot && truth[v] === 5) {
      inside++;
      if (prob[v]! > 127) wrong++;
    }
  }
  assert.ok(inside > 20, `the spot covers ${inside} liver voxels`);
  // hardness × skill ≥ 0.97: the model errs with probability 0.97 — this seed errs.
  assert.equal(wrong, 0);
});
