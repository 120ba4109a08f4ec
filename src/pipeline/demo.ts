/**
 * The demo behind the README's first command: on embedded defaults (bundled demo models, seeded
 * phantoms, no database), it
 * 1. writes a 2D chest phantom set (train / val / test splits, far and a few near
 *    out-of-distribution images) and a small 3D abdominal set;
 * 2. fits the open-set statistics of the three bundled classifiers on the training split;
 * 3. annotates the test split and the far and near OOD images with the ensemble (masks from image-level labels,
 *    MC Dropout uncertainty, open-set routing);
 * 4. annotates a separate evaluation set of lesion images ({@link DEMO_EVAL_LESION_IMAGES}, its own
 *    seed, never used for training, fitting or tuning) large enough that the mean Dice's 95 %
 *    interval is about ±0.02 (the test split's 24–28 lesion images give ±0.09);
 * 5. evaluates both against the phantoms' ground truth and writes the report.
 * @module
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse } from 'csv-parse/sync';
import { MedmaskError } from '../core/errors.js';
import { CHEST_PHANTOM_PIPELINE } from '../core/masks/pipeline.js';
import { annotate, collectItems, type AnnotateItem, type AnnotateSummary } from './annotate.js';
import { loadEnsemble, releaseEnsemble } from './ensemble.js';
import { evaluateRun, type Evaluation } from './evaluate.js';
import { fitOod } from './ood.js';
import { writeAbdomenDataset, writeChestDataset, type WrittenDataset } from './phantoms.js';
import { writeReport } from './report.js';

/** The bundled classifiers the demo uses, relative to the package root. */
export const DEMO_CLASSIFIERS = ['models/demo/demo-resnet', 'models/demo/demo-densenet', 'models/demo/demo-efficientnet'];

/**
 * Lesion images in the demo's evaluation set. The per-image Dice of the demo zoo's weak masks has
 * SD 0.170 (measured on 120 lesion images of the evaluation seed; 0.21 on seed 1's 24-image test
 * split), so the 95 % t-interval of the mean is ±1.97·SD/√n: ±0.017 at n = 400 (±0.021 if the SD
 * were 0.21). `quick` uses 40.
 */
export const DEMO_EVAL_LESION_IMAGES = 400;

/** Seed offset of the evaluation set: its own stream, apart from the train / val / test seeds. */
const EVAL_SEED_OFFSET = 500_000;

/** Options of {@link runDemo}. */
export interface DemoOptions {
  out: string;
  seed?: number;
  /** Smaller sets (for tests): 60 chest images instead of 300. */
  quick?: boolean;
  /** Package root holding models/demo (default: this package). */
  root?: string;
  /** Progress per stage. */
  onStage?: (stage: string, done: number, total: number) => void;
  onNote?: (note: string) => void;
}

/** What the demo did. */
export interface DemoResult {
  out: string;
  chest: WrittenDataset;
  abdomen: WrittenDataset;
  /** The evaluation set of lesion images (chest-2d-eval). */
  evalSet?: WrittenDataset;
  /** Absent when the bundled models are missing. */
  annotate?: AnnotateSummary;
  evaluation?: Evaluation;
  /** The annotate run over the evaluation set (run-chest-eval). */
  evalAnnotate?: AnnotateSummary;
  /** Dice with its interval over the evaluation set's lesion images. */
  evalEvaluation?: Evaluation;
  report?: string;
  run?: string;
  seconds: number;
}

/**
 * Run the demo (see the module documentation).
 * @param opts - output folder, seed, quick mode, progress callbacks
 * @returns what was written and the evaluation
 */
export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const t0 = performance.now();
  const out = resolve(opts.out);
  const seed = opts.seed ?? 1;
  const stage = opts.onStage ?? (() => {});
  const root = opts.root ?? resolve(new URL('../..', import.meta.url).pathname);
  const n = opts.quick ? 60 : 300;
  const chestDir = join(out, 'chest-2d');
  // A few near-OOD images (another scanner, children, effusions, devices): 15 of 300, 3 quick.
  const chest = await writeChestDataset(chestDir, { n, seed, size: 256, oodFraction: 0.15, nearOodFraction: 0.05 }, (d, t) => stage('chest phantoms', d, t));
  const abdomen = await writeAbdomenDataset(join(out, 'abdomen-3d'), { n: opts.quick ? 2 : 6, seed, size: 96 }, (d, t) => stage('abdominal CT phantoms', d, t));
  const models = DEMO_CLASSIFIERS.map((m) => join(root, m));
  const missing = models.filter((m) => !existsSync(join(m, 'model.json')));
  if (missing.length) {
    opts.onNote?.(`bundled models missing (${missing.join(', ')}): wrote the data sets only`);
    return { out, chest, abdomen, seconds: (performance.now() - t0) / 1000 };
  }
  const labels = join(chestDir, 'labels.csv');
  const lc = { labelColumn: 'presence' }; // the demo classifiers learnt lesion presence
  const train = await collectItems(chestDir, { labels, ...lc, split: 'train' });
  const val = await collectItems(chestDir, { labels, ...lc, split: 'val' });
  const oodDir = join(out, 'ood-stats');
  const ensemble = await loadEnsemble(models);
  try {
    await fitOod(ensemble, train.map((i) => ({ path: i.path, label: i.label! })), {
      out: oodDir,
      calibration: val,
      mcSamples: 20,
      seed,
      onProgress: (d, t) => stage('fitting OOD statistics', d, t),
    });
  } finally {
    await releaseEnsemble(ensemble);
  }
  const test = await collectItems(chestDir, { labels, ...lc, split: 'test', roiColumn: 'lungs' });
  const oodRows = parse(await readFile(join(chestDir, 'ood.csv'), 'utf8'), { columns: true }) as { image: string }[];
  const nearRows = parse(await readFile(join(chestDir, 'near-ood.csv'), 'utf8'), { columns: true }) as { image: string }[];
  const oodItems: AnnotateItem[] = [...oodRows, ...nearRows].map((r) => ({ path: join(chestDir, r.image), rel: r.image }));
  const run = join(out, 'run-chest');
  const summary = await annotate({
    models,
    items: [...test, ...oodItems],
    out: run,
    oodDir,
    pipeline: CHEST_PHANTOM_PIPELINE,
    seed,
    fresh: true,
    source: { images: chestDir, labels },
    onProgress: (d, t) => stage('annotating', d, t),
    ...(opts.onNote ? { onNote: opts.onNote } : {}),
  });
  const evaluation = await evaluateRun(run, chestDir, lc);
  const report = await writeReport(run, { imagesRoot: chestDir });
  if (!evaluation.matched) throw new MedmaskError('INTERNAL', 'demo: no result matched the truth');
  // The Dice interval: lesion images only (healthy images add nothing to it), never trained on,
  // annotated exactly as the test split was.
  const evalDir = join(out, 'chest-2d-eval');
  const evalN = opts.quick ? 40 : DEMO_EVAL_LESION_IMAGES;
  const evalSet = await writeChestDataset(evalDir, { n: evalN, seed: seed + EVAL_SEED_OFFSET, size: 256, oodFraction: 0, abnormalRate: 1 }, (d, t) => stage('evaluation phantoms', d, t));
  const evalRun = join(out, 'run-chest-eval');
  const evalAnnotate = await annotate({
    models,
    items: await collectItems(evalDir, { labels: join(evalDir, 'labels.csv'), ...lc, roiColumn: 'lungs' }),
    out: evalRun,
    oodDir,
    pipeline: CHEST_PHANTOM_PIPELINE,
    seed,
    fresh: true,
    source: { images: evalDir, labels: join(evalDir, 'labels.csv') },
    onProgress: (d, t) => stage('annotating the evaluation set', d, t),
    ...(opts.onNote ? { onNote: opts.onNote } : {}),
  });
  const evalEvaluation = await evaluateRun(evalRun, evalDir, lc);
  return { out, chest, abdomen, evalSet, annotate: summary, evaluation, evalAnnotate, evalEvaluation, report, run, seconds: (performance.now() - t0) / 1000 };
}
