/**
 * `medmask fit-ood`: fit the open-set statistics of each model on in-distribution training images
 * — class-conditional means and a shared covariance of the pooled target features (Mahalanobis),
 * plus the spread of the energy and MC mutual-information scores — and choose the threshold of the
 * combined score (their weighted mean, by default the Mahalanobis distance alone: see
 * `DEFAULT_OOD_WEIGHTS`) at a target false-positive rate; with labelled calibration images, also the
 * model's temperature (confidence calibration). Written as `<out>/<model>.ood.json`; `annotate`
 * reads it (and refuses statistics fitted on a different model file).
 * @module
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { explainActivation } from '../core/explain/explain.js';
import { MedmaskError } from '../core/errors.js';
import { fitTemperature, type TemperatureFit } from '../core/uncertainty/calibration.js';
import { combineOod, DEFAULT_OOD_WEIGHTS, energy, fitMahalanobis, fitOodCombiner, mahalanobis, type MahalanobisModel, type OodCombiner } from '../core/uncertainty/ood.js';
import { atomicWrite } from '../io/atomic.js';
import { readVolume } from '../io/index.js';
import type { EnsembleModel, ModelPass } from './ensemble.js';
import { runModel } from './ensemble.js';

/** The file `fit-ood` writes per model. */
export interface OodStats {
  /** `/2` adds the combiner's score weights; `/1` files (every score weighs 1) still load. */
  format: 'medmask-ood/2' | 'medmask-ood/1';
  model: { name: string; sha256: string; target: string };
  classes: string[];
  mahalanobis: Omit<MahalanobisModel, 'cholesky'> & { cholesky: number[] };
  combiner: OodCombiner;
  fit: { images: number; calibrationImages: number; mcSamples: number; seed: number; targetFpr: number };
  /**
   * Temperature scaling of the model's probabilities, fitted on the labelled calibration images
   * (absent without them, or for multi-label models); annotate applies it.
   */
  temperature?: TemperatureFit;
}

/** OOD scores of one image under one model. */
export interface OodScores {
  mahalanobis: number;
  energy: number;
  mi: number;
  /** Combined standardised score minus the model's threshold: > 0 means out of distribution. */
  margin: number;
}

/** Mutual information of head MC for one pass (no maps). */
export function passMi(m: EnsembleModel, pass: ModelPass, samples: number, seed: number): number {
  const e = explainActivation(m.session.head, pass.activation, {
    classNames: m.manifest.classes,
    probability: m.probability,
    mc: { samples, rate: m.mcRate, seed, pixelStd: false },
  });
  return e.mc!.mutualInformation;
}

/** Per model, per image: pooled features, energy and MI. */
interface Scored {
  probs: Float64Array[][];
  feats: Float64Array[][];
  en: number[][];
  mi: number[][];
  labels: number[];
}

async function scoreImages(
  models: readonly EnsembleModel[],
  images: readonly { path: string; label?: string }[],
  classes: readonly string[],
  samples: number,
  seed: number,
  onImage: () => void,
): Promise<Scored> {
  const s: Scored = { probs: models.map(() => []), feats: models.map(() => []), en: models.map(() => []), mi: models.map(() => []), labels: [] };
  for (const [i, img] of images.entries()) {
    const vol = await readVolume(img.path);
    for (const [k, m] of models.entries()) {
      const pass = await runModel(m, vol);
      s.feats[k]!.push(pass.pooled);
      s.probs[k]!.push(pass.probabilities);
      s.en[k]!.push(energy(pass.logits));
      s.mi[k]!.push(passMi(m, pass, samples, seed + i));
    }
    s.labels.push(img.label !== undefined ? classes.indexOf(img.label) : -1);
    onImage();
  }
  return s;
}

/**
 * Mahalanobis distance of every fit image from a model fitted without it (k-fold, deterministic
 * folds by position): in-sample distances are biased low when there are few images per feature
 * dimension, which would put the threshold far too low.
 */
function outOfFoldDistances(feats: readonly Float64Array[], labels: readonly number[], folds = 5): number[] {
  const out = new Array<number>(feats.length);
  for (let f = 0; f < folds; f++) {
    const trainIdx = feats.map((_, i) => i).filter((i) => i % folds !== f);
    const model = fitMahalanobis(trainIdx.map((i) => feats[i]!), trainIdx.map((i) => labels[i]!));
    for (let i = f; i < feats.length; i += folds) out[i] = mahalanobis(model, feats[i]!);
  }
  return out;
}

/**
 * Fit the statistics of every model: class means and shared covariance on labelled
 * in-distribution images; the standardisation and threshold of the combined score on a
 * calibration set — images the classifiers were not trained on (e.g. the validation split),
 * because training images look more familiar to a model than new in-distribution images do.
 * Without a calibration set, the fit images calibrate (Mahalanobis distances out of fold).
 * @param models - the loaded ensemble
 * @param images - image paths with their class label (a name from the models' classes)
 * @param opts - output folder, calibration images, target FPR (default 0.05), MC samples (default 20), seed, score weights, progress
 * @returns the written file per model name
 */
export async function fitOod(
  models: readonly EnsembleModel[],
  images: readonly { path: string; label: string }[],
  opts: {
    out: string;
    calibration?: readonly { path: string; label?: string }[];
    targetFpr?: number;
    mcSamples?: number;
    seed?: number;
    /** Weight per score (mahalanobis, energy, mi) in the combined score (default {@link DEFAULT_OOD_WEIGHTS}). */
    weights?: Readonly<Record<string, number>>;
    onProgress?: (done: number, total: number) => void;
  },
): Promise<Record<string, string>> {
  if (images.length < 10) throw new MedmaskError('USAGE', `${images.length} image(s) are too few to fit OOD statistics`, { hint: 'use at least 10 training images (a few hundred is typical)' });
  const classes = models[0]!.manifest.classes;
  const unknown = [...new Set(images.map((i) => i.label).filter((l) => !classes.includes(l)))];
  if (unknown.length) throw new MedmaskError('DATASET_INVALID', `labels ${unknown.join(', ')} are not classes of the models (${classes.join(', ')})`, { hint: 'fix the labels CSV or the models\' manifests' });
  const samples = opts.mcSamples ?? 20, seed = opts.seed ?? 0, fpr = opts.targetFpr ?? 0.05;
  const total = images.length + (opts.calibration?.length ?? 0);
  let done = 0;
  const tick = () => opts.onProgress?.(++done, total);
  const fit = await scoreImages(models, images, classes, samples, seed, tick);
  const cal = opts.calibration?.length ? await scoreImages(models, opts.calibration, classes, samples, seed + 100_000, tick) : undefined;
  const written: Record<string, string> = {};
  for (const [k, m] of models.entries()) {
    const maha = fitMahalanobis(fit.feats[k]!, fit.labels);
    const d = cal ? cal.feats[k]!.map((f) => mahalanobis(maha, f)) : outOfFoldDistances(fit.feats[k]!, fit.labels);
    const combiner = fitOodCombiner({ mahalanobis: d, energy: (cal ?? fit).en[k]!, mi: (cal ?? fit).mi[k]! }, fpr, opts.weights ?? DEFAULT_OOD_WEIGHTS);
    // Confidence is calibrated on images the model was not trained on, and only when they are all
    // labelled with its classes; sigmoid (multi-label) outputs are left alone.
    const temperature = cal && m.probability !== 'sigmoid' && cal.labels.every((l) => l >= 0) ? fitTemperature(cal.probs[k]!, cal.labels) : undefined;
    const stats: OodStats = {
      format: 'medmask-ood/2',
      model: { name: m.name, sha256: m.sha256, target: m.session.target },
      classes,
      mahalanobis: { dim: maha.dim, means: maha.means, shrinkage: maha.shrinkage, cholesky: Array.from(maha.cholesky) },
      combiner,
      fit: { images: images.length, calibrationImages: cal ? opts.calibration!.length : 0, mcSamples: samples, seed, targetFpr: fpr },
      ...(temperature ? { temperature } : {}),
    };
    const path = join(opts.out, `${m.name}.ood.json`);
    await atomicWrite(path, JSON.stringify(stats) + '\n');
    written[m.name] = path;
  }
  return written;
}

/** Loaded statistics, ready to score. */
export interface LoadedOod {
  stats: OodStats;
  model: MahalanobisModel;
}

/**
 * Read `<dir>/<model>.ood.json` for a model and check it was fitted on the same file.
 * @returns the statistics, or undefined when the file does not exist
 * @throws MedmaskError CONFLICT when the statistics belong to another version of the model
 */
export async function loadOod(dir: string, m: EnsembleModel): Promise<LoadedOod | undefined> {
  const path = join(dir, `${m.name}.ood.json`);
  if (!existsSync(path)) return undefined;
  const stats = JSON.parse(await readFile(path, 'utf8')) as OodStats;
  if (stats.format !== 'medmask-ood/2' && stats.format !== 'medmask-ood/1') throw new MedmaskError('CORRUPT_FILE', `${path}: not a medmask OOD statistics file`);
  if (stats.model.sha256 !== m.sha256) {
    throw new MedmaskError('CONFLICT', `${path} was fitted on another version of model ${m.name} (sha256 ${stats.model.sha256.slice(0, 12)}…, the model is ${m.sha256.slice(0, 12)}…)`, {
      hint: 'run medmask fit-ood again with this model',
    });
  }
  return { stats, model: { ...stats.mahalanobis, cholesky: Float64Array.from(stats.mahalanobis.cholesky) } };
}

/** Score one pass. */
export function scoreOod(o: LoadedOod, pass: ModelPass, mi: number): OodScores {
  const s = { mahalanobis: mahalanobis(o.model, pass.pooled), energy: energy(pass.logits), mi };
  return { ...s, margin: combineOod(o.stats.combiner, s) - o.stats.combiner.threshold };
}
