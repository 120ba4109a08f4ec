import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitTemperature, temperatureNll, temperatureScale } from '../../src/core/uncertainty/calibration.js';
import { Rng } from '../../src/core/random.js';

const softmax = (z: number[]) => {
  const m = Math.max(...z), e = z.map((v) => Math.exp(v - m)), s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

test('temperatureScale equals softmax(z / T) of the logits behind the probabilities, and keeps the argmax', () => {
  const z = [2.0, -1.0, 0.5, 0.1];
  for (const T of [0.3, 1, 2.5]) {
    const got = temperatureScale(softmax(z), T), want = softmax(z.map((v) => v / T));
    for (let k = 0; k < z.length; k++) assert.ok(Math.abs(got[k]! - want[k]!) < 1e-12, `T ${T} class ${k}: ${got[k]} vs ${want[k]}`);
    assert.equal(got.indexOf(Math.max(...got)), 0);
  }
  // Binary odds go to the power 1/T: 0.8/0.2 = 4 → 16 at T = 0.5.
  const b = temperatureScale([0.8, 0.2], 0.5);
  assert.ok(Math.abs(b[0]! / b[1]! - 16) < 1e-9);
});

test('fitTemperature recovers the temperature that generated the labels', () => {
  // Labels drawn from softmax(z / T*) while the model reports softmax(z): the maximum-likelihood
  // T is T* (up to sampling error, which shrinks as 1/sqrt(n)).
  for (const tStar of [0.4, 2.0]) {
    const rng = new Rng(tStar * 100);
    const probs: number[][] = [], labels: number[] = [];
    for (let i = 0; i < 4000; i++) {
      const z = [rng.normal(0, 2), rng.normal(0, 2), rng.normal(0, 2)];
      const truth = softmax(z.map((v) => v / tStar));
      const u = rng.random();
      labels.push(u < truth[0]! ? 0 : u < truth[0]! + truth[1]! ? 1 : 2);
      probs.push(softmax(z));
    }
    const fit = fitTemperature(probs, labels);
    assert.ok(Math.abs(fit.temperature / tStar - 1) < 0.08, `T* ${tStar}: fitted ${fit.temperature}`);
    assert.ok(fit.nllAfter < fit.nllBefore, 'the fit lowers the NLL');
    // A minimum: the NLL rises on both sides (finite differences).
    assert.ok(temperatureNll(probs, labels, fit.temperature * 1.05) > fit.nllAfter && temperatureNll(probs, labels, fit.temperature / 1.05) > fit.nllAfter);
  }
  assert.throws(() => fitTemperature([[0.5, 0.5]], [2]), /label 2 of image 0/);
  // 45 images, all right: maximum likelihood runs to the lower bound, the prior keeps T finite.
  const sep = Array.from({ length: 45 }, (_, i) => (i % 2 ? [0.9, 0.1] : [0.15, 0.85]));
  const sepLabels = sep.map((_, i) => (i % 2 ? 0 : 1));
  assert.ok(fitTemperature(sep, sepLabels, Infinity).temperature < 0.051, 'maximum likelihood: T → 0');
  const map = fitTemperature(sep, sepLabels).temperature;
  assert.ok(map > 0.1 && map < 1, `with the prior: sharper but finite (${map})`);
  assert.throws(() => fitTemperature([], []), /no images/);
});
