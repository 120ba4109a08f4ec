/**
 * Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017): one
 * scalar T per model, fitted on held-out labelled images by minimising the negative log-likelihood
 * of softmax(z / T). It changes confidence, never the predicted class. Written here because it is
 * a one-parameter fit that no maintained JS library offers.
 * @module
 */

const FLOOR = 1e-12;

/**
 * Rescale a probability vector by a temperature: softmax(log p / T). For a softmax model's
 * deterministic probabilities this equals softmax(logits / T) exactly (log p = z − logsumexp z).
 * @param probs - a probability vector
 * @param temperature - T > 0; 1 leaves it as is, < 1 sharpens, > 1 flattens
 * @returns the rescaled vector (sums to 1)
 * @example
 * temperatureScale([0.8, 0.2], 0.5); // [0.941…, 0.058…] (odds 4 → 16)
 */
export function temperatureScale(probs: ArrayLike<number>, temperature: number): Float64Array {
  const n = probs.length;
  const out = new Float64Array(n);
  let mx = -Infinity;
  for (let k = 0; k < n; k++) {
    out[k] = Math.log(Math.max(FLOOR, probs[k]!)) / temperature;
    mx = Math.max(mx, out[k]!);
  }
  let s = 0;
  for (let k = 0; k < n; k++) s += out[k] = Math.exp(out[k]! - mx);
  for (let k = 0; k < n; k++) out[k]! /= s;
  return out;
}

/** Mean negative log-likelihood of the labels under temperature-scaled probabilities. */
export function temperatureNll(probs: readonly ArrayLike<number>[], labels: readonly number[], temperature: number): number {
  let s = 0;
  for (const [i, p] of probs.entries()) s -= Math.log(Math.max(FLOOR, temperatureScale(p, temperature)[labels[i]!]!));
  return s / probs.length;
}

/** Result of {@link fitTemperature}. */
export interface TemperatureFit {
  temperature: number;
  /** Mean NLL at T = 1 and at the fitted T. */
  nllBefore: number;
  nllAfter: number;
  images: number;
}

/**
 * Fit T by golden-section search on log T in [1/20, 20]: the maximum a posteriori temperature
 * under a log-normal prior, log T ~ N(0, priorSd²) — mean NLL + (log T)² / (2 priorSd² n). Without
 * the prior a small calibration set the model classifies perfectly drives T to 0 (infinite
 * confidence); with a few hundred images the prior hardly moves the maximum-likelihood T.
 * @param probs - per image, the model's probability vector
 * @param labels - per image, the index of the true class
 * @param priorSd - standard deviation of log T under the prior (default 1; Infinity: plain maximum likelihood)
 * @returns the temperature and the NLL (without the prior term) before and after
 * @throws Error when the lengths differ, there are no images or a label is out of range
 * @example
 * fitTemperature([[0.6, 0.4], [0.3, 0.7]], [0, 1]).temperature; // < 1: right but timid → sharpen
 */
export function fitTemperature(probs: readonly ArrayLike<number>[], labels: readonly number[], priorSd = 1): TemperatureFit {
  if (probs.length !== labels.length) throw new Error(`fitTemperature: ${probs.length} probability vectors but ${labels.length} labels`);
  if (!probs.length) throw new Error('fitTemperature: no images');
  for (const [i, l] of labels.entries()) if (!Number.isInteger(l) || l < 0 || l >= probs[i]!.length) throw new Error(`fitTemperature: label ${l} of image ${i} is not a class index`);
  const penalty = (u: number) => (Number.isFinite(priorSd) ? (u * u) / (2 * priorSd * priorSd * probs.length) : 0);
  const f = (u: number) => temperatureNll(probs, labels, Math.exp(u)) + penalty(u);
  const g = (Math.sqrt(5) - 1) / 2;
  let a = Math.log(1 / 20), b = Math.log(20);
  let c = b - g * (b - a), d = a + g * (b - a), fc = f(c), fd = f(d);
  for (let it = 0; it < 60 && b - a > 1e-6; it++) {
    if (fc <= fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - g * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + g * (b - a);
      fd = f(d);
    }
  }
  const temperature = Math.exp((a + b) / 2);
  return { temperature, nllBefore: temperatureNll(probs, labels, 1), nllAfter: temperatureNll(probs, labels, temperature), images: probs.length };
}
