/**
 * `medmask train-head`: adapt a classifier to new image-level labels without Python. A backbone
 * ONNX + a folder of images with a labels CSV → the backbone runs once per image (onnxruntime)
 * and the globally pooled target activations are cached on disk (one small file per image,
 * content-addressed, written atomically: an interrupted run resumes where it stopped); a new head
 * (pooling → dropout → linear, optionally a hidden ReLU layer) is trained on the cached features
 * in TypeScript (`src/core/train`); the result is written as a new ONNX (backbone up to the target
 * + the head as ONNX nodes, ready for `medmask explain`), a manifest, and a model card with
 * validation metrics and a loss-curve plot.
 *
 * The head is trained by hand-written code because no maintained TypeScript library trains this
 * fast on CPU here: TensorFlow.js CPU takes ~1.5 s per 64×64 image even for a tiny CNN, and
 * `@tensorflow/tfjs-node` cannot install (it downloads libtensorflow). With a frozen backbone the
 * head is a few small matrix products, trained in milliseconds per epoch.
 *
 * Only the pooled features are cached (C floats per image, not C × h × w): the head starts with
 * global average pooling, so they are all it ever reads.
 * @module
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { isMedmaskError, MedmaskError } from '../core/errors.js';
import { preprocessImage, type PreprocessSpec } from '../core/preprocess.js';
import { didYouMean } from '../core/schema.js';
import { fitHeadSteps, type EpochRecord, type FitHeadResult, type HeadEvaluation } from '../core/train/fit.js';
import { headForward, softmaxRows, type HeadParams } from '../core/train/head-net.js';
import { plotLossCurve } from '../core/train/plot.js';
import { classCounts } from '../core/train/split.js';
import { atomicWrite } from '../io/atomic.js';
import { readLabelsCsv, type LabelledImage } from '../io/dataset.js';
import { readVolume } from '../io/index.js';
import { attachHead, buildFeatureExtractor, FEATURES_OUTPUT, pruneToTensor, resolveFeatureTensors } from '../runtime/head-onnx.js';
import { MANIFEST_FORMAT, resolveModel, validateManifest, type ClassifierManifest } from '../runtime/manifest.js';
import { addGraphOutputs, decodeOnnx, encodeOnnx } from '../runtime/onnx-graph.js';
import { ClassifierSession, type Device } from '../runtime/session.js';

/** Options of {@link trainHead}; defaults are the CLI's. */
export interface TrainHeadOptions {
  /** Backbone: an `.onnx` file (a manifest beside it is used), its manifest, or their folder. */
  backbone: string;
  /** CSV of image-level labels (image,label). */
  labels: string;
  /** Folder the CSV's image paths are relative to (default: the CSV's folder). */
  images?: string;
  /** Column holding the label (default: label / class / diagnosis / target). */
  labelColumn?: string;
  /** Column holding the image path (default: image / file / filename / path / id). */
  imageColumn?: string;
  /** Class names in output order; a label outside them is an error. Default: the labels, sorted. */
  classes?: string[];
  /** CAM target tensor (default: the backbone manifest's `cam.target`, else the default target). */
  target?: string;
  /** Hidden units (default 0 = pooling → dropout → linear). */
  hidden?: number;
  /** Dropout rate (default 0.3). */
  dropout?: number;
  /** Maximum epochs (default 100). */
  epochs?: number;
  /** Adam learning rate (default 1e-3). */
  lr?: number;
  /** L2 weight decay (default 1e-4). */
  weightDecay?: number;
  /**
   * Column assigning rows to train / val / test (as `medmask phantoms` writes). Default: a column
   * named `split` when the CSV has one; `false`: none. Where used, its val rows are the validation
   * set (`val` and the seeded split are not used) and its test rows are left out entirely.
   */
  splitColumn?: string | false;
  /** Validation share per class (default 0.2). */
  val?: number;
  /** Early-stopping patience in epochs (default 10; 0 = off). */
  patience?: number;
  /** Seed of split, initialisation, shuffling, dropout (default 0). */
  seed?: number;
  /** Mini-batch size (default 32). */
  batch?: number;
  /** 'balanced' (default) or 'none'. */
  classWeights?: 'balanced' | 'none';
  /** Output folder: model.onnx, model.json, card.md, card.json, loss.png. */
  out: string;
  /** Feature cache folder (default `<out>/cache`). */
  cache?: string;
  /** Model name in the manifest (default: the output folder's name). */
  name?: string;
  /** Images per backbone run (default 16; 1 when the graph's batch dimension is fixed at 1). */
  extractBatch?: number;
  /** onnxruntime threads (default: its choice). */
  threads?: number;
  /** Execution provider (default cpu). */
  device?: Device;
  /** Stop after caching the features (no training, nothing written to `out` but the cache). */
  extractOnly?: boolean;
  /** Abort between images / epochs; cached features stay for the next run. */
  signal?: AbortSignal;
  /** Progress of extraction and training. */
  onProgress?: (e: TrainHeadProgress) => void;
  /** Called after every backbone run with the number of images in it (for tests and logs). */
  onBackboneRun?: (images: number) => void;
}

/** Progress events of {@link trainHead}. */
export type TrainHeadProgress =
  | { phase: 'extract'; done: number; total: number; cached: number }
  | { phase: 'train'; epoch: number; epochs: number; record: EpochRecord }
  | { phase: 'write'; file: string };

/** Metrics of the kept head on one set of rows (JSON-friendly). */
export interface SetMetrics {
  images: number;
  loss: number;
  accuracy: number;
  balancedAccuracy: number;
  /** Macro one-vs-rest AUROC (binary: AUROC of the second class); null where undefined. */
  auroc: number | null;
  aurocPerClass: (number | null)[];
  /** Rows = true class, columns = predicted, in `classes` order. */
  confusion: number[][];
}

/** What {@link trainHead} did. */
export interface TrainHeadResult {
  out: string;
  files: { model: string; manifest: string; card: string; cardJson: string; plot: string } | undefined;
  classes: string[];
  target: string;
  pooled: string;
  featureDim: number;
  extraction: { images: number; extracted: number; cached: number; seconds: number; imagesPerSecond: number | null; cacheDir: string };
  training?: {
    seconds: number;
    epochsRun: number;
    bestEpoch: number;
    stoppedEarly: boolean;
    history: EpochRecord[];
    classWeights: number[];
    validation?: SetMetrics;
    train: SetMetrics;
  };
  /** Things the user should know (e.g. a class without images). */
  warnings: string[];
  /** The trained head for raw pooled features, as written into the ONNX (left out of the CLI's JSON). */
  head?: HeadParams;
  /** Largest |Δp| between the written ONNX (onnxruntime) and the TypeScript head on validation images. */
  selfCheck?: { images: number; maxAbsDiff: number };
}

/** The model card `card.json` that {@link trainHead} writes (card.md says the same in prose). */
export interface TrainHeadCard {
  format: 'medmask-card/1';
  name: string;
  createdBy: string;
  backbone: { file: string; sha256: string; manifest: string | null; target: string; pooled: string; featureDim: number };
  data: {
    labels: string;
    images: number;
    classes: string[];
    counts: Record<string, { train: number; val: number }>;
    /** A seeded stratified split, or the CSV's split column (its test rows left out). */
    split: { val: number; stratified: boolean; seed: number } | { column: string; testRowsLeftOut: number };
  };
  head: { architecture: string; hidden: number; dropout: number };
  training: {
    optimizer: 'Adam';
    lr: number;
    weightDecay: number;
    batch: number;
    maxEpochs: number;
    patience: number;
    classWeights: 'balanced' | 'none';
    classWeightValues: number[];
    seed: number;
    epochsRun: number;
    bestEpoch: number;
    stoppedEarly: boolean;
    seconds: number;
    lossCurve: string;
    history: { epoch: number; trainLoss: number; valLoss: number | null; valAccuracy: number | null }[];
  };
  metrics: { validation: SetMetrics | null; train: SetMetrics };
  extraction: Omit<TrainHeadResult['extraction'], 'cacheDir'>;
  selfCheck: { images: number; maxAbsDiff: number };
  warnings: string[];
}

const CACHE_FORMAT = 'medmask-feature-cache/1';

/**
 * Run a {@link fitHeadSteps} generator one epoch at a time, yielding to the event loop in between
 * so that Ctrl-C (the CLI's abort) and a job's shutdown signal are heard during long training.
 * @param steps - the generator
 * @returns its result
 * @example
 * const fit = await runEpochs(fitHeadSteps(data, opts));
 */
export async function runEpochs(steps: Generator<EpochRecord, FitHeadResult, void>): Promise<FitHeadResult> {
  let step = steps.next();
  while (!step.done) {
    await new Promise((ok) => setImmediate(ok));
    step = steps.next();
  }
  return step.value;
}

function abortError(signal: AbortSignal): Error {
  const r = signal.reason;
  return r instanceof Error ? r : new DOMException('train-head was interrupted', 'AbortError');
}

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** JSON with sorted keys, so equal specs hash equally. */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

function checkOptions(o: TrainHeadOptions): void {
  const int = (name: string, v: number | undefined, min: number): void => {
    if (v !== undefined && (!Number.isInteger(v) || v < min)) {
      throw new MedmaskError('USAGE', `--${name} ${v} must be a whole number ≥ ${min}`);
    }
  };
  int('hidden', o.hidden, 0);
  int('epochs', o.epochs, 1);
  int('patience', o.patience, 0);
  int('batch', o.batch, 1);
  int('seed', o.seed, 0);
  int('extract-batch', o.extractBatch, 1);
  if (o.dropout !== undefined && !(o.dropout >= 0 && o.dropout < 1)) throw new MedmaskError('USAGE', `--dropout ${o.dropout} must be in [0, 1)`, { hint: 'e.g. --dropout 0.3' });
  if (o.val !== undefined && !(o.val >= 0 && o.val < 1)) throw new MedmaskError('USAGE', `--val ${o.val} must be in [0, 1)`, { hint: 'e.g. --val 0.2 keeps 20 % of each class for validation' });
  if (o.lr !== undefined && !(o.lr > 0)) throw new MedmaskError('USAGE', `--lr ${o.lr} must be positive`, { hint: 'e.g. --lr 1e-3' });
  if (o.weightDecay !== undefined && !(o.weightDecay >= 0)) throw new MedmaskError('USAGE', `--weight-decay ${o.weightDecay} must be ≥ 0`);
}

const SPLIT_VALUES: Record<string, 'train' | 'val' | 'test'> = {
  train: 'train', training: 'train', val: 'val', valid: 'val', validation: 'val', test: 'test', testing: 'test',
};

/** The split column to honour, if any. */
function splitColumnOf(rows: LabelledImage[], csv: string, wanted: string | false | undefined): string | undefined {
  if (wanted === false) return undefined;
  const cols = Object.keys(rows[0]?.extra ?? {});
  if (wanted !== undefined) {
    if (!cols.includes(wanted)) {
      throw new MedmaskError('DATASET_INVALID', `${csv}: no split column "${wanted}" (other columns: ${cols.join(', ') || 'none'})`, {
        hint: 'name the column holding train / val / test, or pass --split-column none',
      });
    }
    return wanted;
  }
  return cols.find((c) => c.toLowerCase() === 'split');
}

function splitRole(r: LabelledImage, col: string, csv: string): 'train' | 'val' | 'test' {
  const v = (r.extra[col] ?? '').trim().toLowerCase();
  const role = SPLIT_VALUES[v];
  if (!role) {
    throw new MedmaskError('DATASET_INVALID', `${csv} line ${r.line}: split "${r.extra[col]}" in column "${col}" is not train, val or test`, {
      hint: 'fix the value, or pass --split-column none to ignore the column',
      details: { line: r.line, value: r.extra[col] },
    });
  }
  return role;
}

/** Class names and per-row class indices; the bad-label errors users see. */
function labelRows(rows: LabelledImage[], csv: string, classes: string[] | undefined): { classes: string[]; y: Int32Array } {
  if (classes) {
    const dup = classes.find((c, i) => classes.indexOf(c) !== i);
    if (dup !== undefined) throw new MedmaskError('USAGE', `--classes lists "${dup}" twice`);
    if (classes.length < 2) throw new MedmaskError('USAGE', `--classes names ${classes.length} class; a classifier needs at least 2`);
    for (const r of rows) {
      if (!classes.includes(r.label)) {
        const guess = didYouMean(r.label, classes);
        throw new MedmaskError('DATASET_INVALID', `${csv} line ${r.line}: unknown class "${r.label}" for ${basename(r.image)}; known: ${classes.join(', ')}`, {
          hint: guess ? `did you mean "${guess}"? Fix the CSV, or add the class to --classes` : 'fix the CSV, or add the class to --classes',
          details: { line: r.line, label: r.label, classes },
        });
      }
    }
  }
  const names = classes ?? [...new Set(rows.map((r) => r.label))].sort();
  const y = Int32Array.from(rows, (r) => names.indexOf(r.label));
  const present = new Set(y);
  if (present.size < 2) {
    const only = rows[0]?.label ?? '';
    throw new MedmaskError('DATASET_INVALID', `${csv}: all ${rows.length} rows have the class "${only}"; a classifier needs examples of at least 2 classes`, {
      hint: 'add images of the other class(es) to the CSV',
      details: { class: only },
    });
  }
  return { classes: names, y };
}

/** Float32 little-endian bytes of a vector. */
function f32Bytes(v: Float32Array): Uint8Array {
  const out = new Uint8Array(v.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < v.length; i++) dv.setFloat32(i * 4, v[i]!, true);
  return out;
}

function setMetrics(e: HeadEvaluation): SetMetrics {
  const nn = (v: number): number | null => (Number.isFinite(v) ? v : null);
  return {
    images: e.rows.length,
    loss: e.loss,
    accuracy: e.accuracy,
    balancedAccuracy: e.balancedAccuracy,
    auroc: nn(e.auroc.macro),
    aurocPerClass: e.auroc.perClass.map(nn),
    confusion: e.confusion,
  };
}

interface Extractor {
  session: ort.InferenceSession;
  input: string;
  /** Images per run. */
  batch: number;
  /** The graph's batch dimension is fixed: short batches are padded to `batch`. */
  fixed: boolean;
  /** Shape of the pooled tensor for an input (only called to explain a failure). */
  probe: (x: Float32Array, dims: number[]) => Promise<number[] | undefined>;
}

/**
 * Train a new classifier head on a frozen backbone and write it as ONNX + manifest + card.
 * @param opts - backbone, labels, hyper-parameters, output folder (see {@link TrainHeadOptions})
 * @returns what was extracted, trained and written
 * @throws MedmaskError NOT_FOUND / DATASET_INVALID for a bad CSV (unknown class, one class only,
 *   missing or unreadable images, images the backbone cannot take), MODEL_INVALID for a backbone
 *   without a usable target tensor, USAGE for bad options; an AbortError when `signal` aborts
 * @example
 * const r = await trainHead({ backbone: 'resnet.onnx', labels: 'data/labels.csv', out: 'runs/h1' });
 * console.log(r.training?.validation?.accuracy, r.files?.model);
 */
export async function trainHead(opts: TrainHeadOptions): Promise<TrainHeadResult> {
  checkOptions(opts);
  const out = resolve(opts.out);
  const allRows = await readLabelsCsv(opts.labels, {
    ...(opts.images ? { imagesDir: opts.images } : {}),
    ...(opts.labelColumn ? { labelColumn: opts.labelColumn } : {}),
    ...(opts.imageColumn ? { imageColumn: opts.imageColumn } : {}),
  });
  const splitCol = splitColumnOf(allRows, opts.labels, opts.splitColumn);
  const roles = splitCol ? allRows.map((r) => splitRole(r, splitCol, opts.labels)) : undefined;
  const rows = roles ? allRows.filter((_, i) => roles[i] !== 'test') : allRows;
  const testRowsLeftOut = allRows.length - rows.length;
  if (!rows.length) throw new MedmaskError('DATASET_INVALID', `${opts.labels}: every row is in the test split of column "${splitCol}"`, { hint: 'mark rows as train / val, or pass --split-column none' });
  const { classes, y } = labelRows(rows, opts.labels, opts.classes);
  const columnSplit = roles
    ? (() => {
        const kept = roles.filter((r) => r !== 'test');
        return { train: Int32Array.from(kept.flatMap((r, i) => (r === 'train' ? [i] : []))), val: Int32Array.from(kept.flatMap((r, i) => (r === 'val' ? [i] : []))) };
      })()
    : undefined;

  const backbone = await resolveModel(opts.backbone);
  const bm = backbone.manifest;
  const model = decodeOnnx(backbone.bytes, backbone.onnxPath);
  const { target, pooled } = resolveFeatureTensors(model, opts.target ?? bm.cam?.target);
  const input = { height: bm.input.height, width: bm.input.width, channels: bm.input.channels };
  const inputName = bm.input.name ?? backbone.signature.inputs[0]!.name;
  const preprocess: PreprocessSpec = bm.preprocess ?? { resize: 'stretch', channels: 'auto', intensity: { mode: 'min-max' } };

  // ---- feature cache: one file per image, keyed by backbone, tensor, input size, preprocessing
  const backboneSha = sha256(backbone.bytes);
  const cacheKey = sha256(stableJson({ f: CACHE_FORMAT, backboneSha, pooled, input, preprocess })).slice(0, 16);
  const cacheDir = resolve(opts.cache ?? join(out, 'cache'), cacheKey);
  await mkdir(cacheDir, { recursive: true });
  const metaPath = join(cacheDir, 'cache.json');
  if (!existsSync(metaPath)) {
    await atomicWrite(metaPath, JSON.stringify({ format: CACHE_FORMAT, backbone: backbone.onnxPath, backboneSha256: backboneSha, target, pooled, input, preprocess }, null, 2) + '\n');
  }
  const files = await Promise.all(rows.map(async (r) => {
    const s = await stat(r.image);
    const h = sha256(`${r.image}\n${s.size}\n${s.mtimeMs}`).slice(0, 32);
    return join(cacheDir, h.slice(0, 2), `${h}.f32`);
  }));
  const N = rows.length;
  const feats: (Float32Array | undefined)[] = new Array(N);
  let dim = 0;
  const readCached = async (i: number): Promise<void> => {
    if (!existsSync(files[i]!)) return;
    const b = await readFile(files[i]!);
    if (b.byteLength === 0 || b.byteLength % 4) return; // damaged: extract again
    const v = new Float32Array(b.byteLength / 4);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let k = 0; k < v.length; k++) v[k] = dv.getFloat32(k * 4, true);
    if (dim && v.length !== dim) return;
    dim = v.length;
    feats[i] = v;
  };
  for (let i = 0; i < N; i++) await readCached(i);
  const todo = [...feats.keys()].filter((i) => !feats[i]);
  const cached = N - todo.length;
  opts.onProgress?.({ phase: 'extract', done: cached, total: N, cached });

  const t0 = performance.now();
  if (todo.length) {
    const ex = await createExtractor(model, pooled, target, inputName, backbone.signature.inputs[0]?.dims ?? [], opts, backbone.onnxPath);
    const plane = input.channels * input.height * input.width;
    const load = async (idx: number[]): Promise<Float32Array> => {
      const buf = new Float32Array(idx.length * plane);
      await Promise.all(idx.map(async (i, k) => {
        const r = rows[i]!;
        let vol;
        try {
          vol = await readVolume(r.image);
        } catch (e) {
          if (isMedmaskError(e)) {
            throw new MedmaskError(e.code, `${opts.labels} line ${r.line}: ${e.message}`, { cause: e, ...(e.hint ? { hint: e.hint } : {}) });
          }
          throw e;
        }
        try {
          preprocessImage(vol, input, preprocess, buf.subarray(k * plane, (k + 1) * plane));
        } catch (e) {
          if (!isMedmaskError(e)) throw e;
          throw new MedmaskError('DATASET_INVALID', `${opts.labels} line ${r.line}: ${r.image} cannot be fed to the backbone (input ${input.channels} × ${input.height} × ${input.width}): ${e.message}`, {
            cause: e,
            hint: e.hint ?? 'use 2D images (PNG / JPEG / TIFF or a single-slice volume)',
          });
        }
      }));
      return buf;
    };
    const batches: number[][] = [];
    for (let s = 0; s < todo.length; s += ex.batch) batches.push(todo.slice(s, s + ex.batch));
    let done = cached;
    let next = load(batches[0]!);
    next.catch(() => undefined); // handled when awaited
    for (let b = 0; b < batches.length; b++) {
      if (opts.signal?.aborted) throw abortError(opts.signal);
      const idx = batches[b]!;
      const x = await next;
      if (b + 1 < batches.length) {
        next = load(batches[b + 1]!);
        next.catch(() => undefined);
      }
      const f = await runExtractor(ex, x, [idx.length, input.channels, input.height, input.width], backbone.onnxPath, pooled);
      opts.onBackboneRun?.(idx.length);
      const c = f.length / idx.length;
      if (dim && c !== dim) {
        throw new MedmaskError('INTERNAL', `the feature cache ${cacheDir} holds ${dim} features per image, the backbone now gives ${c}`, { hint: 'delete the cache folder and run again' });
      }
      dim = c;
      for (let k = 0; k < idx.length; k++) {
        const v = f.slice(k * c, (k + 1) * c);
        feats[idx[k]!] = v;
        await mkdir(join(files[idx[k]!]!, '..'), { recursive: true });
        await atomicWrite(files[idx[k]!]!, f32Bytes(v));
      }
      done += idx.length;
      opts.onProgress?.({ phase: 'extract', done, total: N, cached });
    }
    await ex.session.release();
  }
  const extractSeconds = (performance.now() - t0) / 1000;
  const extraction = {
    images: N,
    extracted: todo.length,
    cached,
    seconds: extractSeconds,
    imagesPerSecond: todo.length ? todo.length / extractSeconds : null,
    cacheDir,
  };
  const warnings: string[] = [];
  if (splitCol) warnings.push(`rows split by the CSV column "${splitCol}": ${columnSplit!.train.length} train, ${columnSplit!.val.length} val, ${testRowsLeftOut} test rows left out (--split-column none to split by --val instead)`);
  const perClass = classCounts(y, classes.length);
  classes.forEach((c, k) => {
    if (!perClass[k]) warnings.push(`class "${c}" has no images: the head has an output for it but never learns to predict it`);
  });
  const base: TrainHeadResult = { out, files: undefined, classes, target, pooled, featureDim: dim, extraction, warnings };
  if (opts.extractOnly) return base;

  // ---- training
  if (opts.signal?.aborted) throw abortError(opts.signal);
  const features = new Float32Array(N * dim);
  feats.forEach((v, i) => features.set(v!, i * dim));
  const epochs = opts.epochs ?? 100;
  const hidden = opts.hidden ?? 0;
  const dropout = opts.dropout ?? 0.3;
  const t1 = performance.now();
  const steps = fitHeadSteps({ features, dim, labels: y, classes: classes.length }, {
    hidden,
    dropout,
    epochs,
    lr: opts.lr ?? 1e-3,
    weightDecay: opts.weightDecay ?? 1e-4,
    val: opts.val ?? 0.2,
    ...(columnSplit ? { split: columnSplit } : {}),
    patience: opts.patience ?? 10,
    seed: opts.seed ?? 0,
    batch: opts.batch ?? 32,
    classWeights: opts.classWeights ?? 'balanced',
    onEpoch: (record) => opts.onProgress?.({ phase: 'train', epoch: record.epoch, epochs, record }),
    shouldStop: () => opts.signal?.aborted ?? false,
  });
  const fit = await runEpochs(steps);
  if (opts.signal?.aborted) throw abortError(opts.signal);
  const trainSeconds = (performance.now() - t1) / 1000;
  const training = {
    seconds: trainSeconds,
    epochsRun: fit.epochsRun,
    bestEpoch: fit.bestEpoch,
    stoppedEarly: fit.stoppedEarly,
    history: fit.history,
    classWeights: [...fit.classWeights],
    ...(fit.validation ? { validation: setMetrics(fit.validation) } : {}),
    train: setMetrics(fit.training),
  };

  // ---- outputs
  await mkdir(out, { recursive: true });
  const name = opts.name ?? basename(out);
  const onnxModel = attachHead(model, {
    pooled,
    layers: fit.params.layers,
    standardize: fit.stats,
    dropout,
    metadata: { 'medmask.train-head': '1', 'medmask.classes': JSON.stringify(classes), 'medmask.target': target, 'medmask.backbone.sha256': backboneSha },
  });
  const modelBytes = encodeOnnx(onnxModel);
  const paths = { model: join(out, 'model.onnx'), manifest: join(out, 'model.json'), card: join(out, 'card.md'), cardJson: join(out, 'card.json'), plot: join(out, 'loss.png') };
  const manifest: ClassifierManifest = {
    format: MANIFEST_FORMAT,
    name,
    task: 'classify',
    model: 'model.onnx',
    description: `head trained by medmask train-head on ${basename(backbone.onnxPath)} (${basename(opts.labels)})`,
    card: 'card.md',
    input: { name: inputName, layout: 'NCHW', height: input.height, width: input.width, channels: input.channels },
    preprocess,
    output: { name: 'logits', activation: 'softmax' },
    classes,
    cam: { target },
    ...(dropout > 0 ? { mc: { dropout, samples: bm.mc?.samples ?? 30 } } : {}),
  } as ClassifierManifest;
  validateManifest(manifest, paths.manifest);

  // self-check: the written ONNX through onnxruntime (and medmask's session, as explain loads it)
  // gives the TypeScript head's probabilities on a few validation images
  const checkRows = [...(fit.split.val.length ? fit.split.val : fit.split.train)].slice(0, 8);
  const selfCheck = await checkWrittenModel(modelBytes, target, checkRows, rows, input, preprocess, features, dim, fit, classes.length, opts);

  opts.onProgress?.({ phase: 'write', file: paths.model });
  await atomicWrite(paths.model, modelBytes);
  await atomicWrite(paths.manifest, JSON.stringify(manifest, null, 2) + '\n');
  const img = plotLossCurve(fit.history.map((h) => h.trainLoss), fit.history.map((h) => h.valLoss), { bestEpoch: fit.bestEpoch, width: 720, height: 420 });
  const png = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }).png().toBuffer();
  await atomicWrite(paths.plot, png);
  const result: TrainHeadResult = { ...base, files: paths, training, head: fit.rawParams, selfCheck };
  const counts = {
    train: classCounts(Int32Array.from(fit.split.train, (i) => y[i]!), classes.length),
    val: classCounts(Int32Array.from(fit.split.val, (i) => y[i]!), classes.length),
  };
  const { cacheDir: _cacheDir, ...extractionForCard } = extraction;
  const card: TrainHeadCard = {
    format: 'medmask-card/1',
    name,
    createdBy: 'medmask train-head',
    backbone: { file: basename(backbone.onnxPath), sha256: backboneSha, manifest: backbone.manifestPath ? basename(backbone.manifestPath) : null, target, pooled, featureDim: dim },
    data: {
      labels: basename(opts.labels),
      images: N,
      classes,
      counts: Object.fromEntries(classes.map((c, k) => [c, { train: counts.train[k]!, val: counts.val[k]! }])),
      split: splitCol ? { column: splitCol, testRowsLeftOut } : { val: opts.val ?? 0.2, stratified: true, seed: opts.seed ?? 0 },
    },
    head: {
      architecture: `GlobalAveragePool → standardise (training mean / std) → Dropout(${dropout}) → ` +
        (hidden ? `Linear(${dim}, ${hidden}) → ReLU → Dropout(${dropout}) → Linear(${hidden}, ${classes.length})` : `Linear(${dim}, ${classes.length})`),
      hidden,
      dropout,
    },
    training: {
      optimizer: 'Adam',
      lr: opts.lr ?? 1e-3,
      weightDecay: opts.weightDecay ?? 1e-4,
      batch: opts.batch ?? 32,
      maxEpochs: epochs,
      patience: opts.patience ?? 10,
      classWeights: opts.classWeights ?? 'balanced',
      classWeightValues: training.classWeights,
      seed: opts.seed ?? 0,
      epochsRun: training.epochsRun,
      bestEpoch: training.bestEpoch,
      stoppedEarly: training.stoppedEarly,
      seconds: Number(trainSeconds.toFixed(3)),
      lossCurve: 'loss.png',
      history: fit.history.map((h) => ({ epoch: h.epoch, trainLoss: h.trainLoss, valLoss: Number.isFinite(h.valLoss) ? h.valLoss : null, valAccuracy: Number.isFinite(h.valAccuracy) ? h.valAccuracy : null })),
    },
    metrics: { validation: training.validation ?? null, train: training.train },
    extraction: extractionForCard,
    selfCheck,
    warnings,
  };
  await atomicWrite(paths.cardJson, JSON.stringify(card, null, 2) + '\n');
  await atomicWrite(paths.card, cardMarkdown(card, classes, training.validation));
  return result;
}

async function createExtractor(
  model: ReturnType<typeof decodeOnnx>,
  pooled: string,
  target: string,
  inputName: string,
  inputDims: (number | string)[],
  opts: TrainHeadOptions,
  source: string,
): Promise<Extractor> {
  const bytes = encodeOnnx(buildFeatureExtractor(model, pooled));
  const device = opts.device ?? 'cpu';
  const so: ort.InferenceSession.SessionOptions = {
    executionProviders: device === 'cuda' ? [{ name: 'cuda' }] : ['cpu'],
    graphOptimizationLevel: 'all',
    logSeverityLevel: 4, // failures are rethrown with context; no raw onnxruntime log lines on stderr
    ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}),
  };
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, so);
  } catch (e) {
    const msg = ((e as Error).message ?? String(e)).split('\n')[0];
    if (device === 'cuda') {
      throw new MedmaskError('ENVIRONMENT', `${source}: the CUDA execution provider of onnxruntime-node is not available (${msg})`, { cause: e, hint: 'run with --device cpu' });
    }
    throw new MedmaskError('MODEL_INVALID', `${source}: cannot pool the tensor "${pooled}" (target "${target}"): ${msg}`, {
      cause: e,
      hint: 'the target must be a 4-D activation [N, C, H, W]; `medmask model inspect` lists candidates',
    });
  }
  const b0 = inputDims[0];
  const fixed = typeof b0 === 'number' && b0 > 0;
  const probe = async (x: Float32Array, dims: number[]): Promise<number[] | undefined> => {
    try {
      const s = await ort.InferenceSession.create(encodeOnnx(addGraphOutputs(pruneToTensor(model, pooled), [pooled])), so);
      const r = await s.run({ [inputName]: new ort.Tensor('float32', x, dims) });
      await s.release();
      return [...r[pooled]!.dims];
    } catch {
      return undefined;
    }
  };
  return { session, input: inputName, batch: fixed ? b0 : (opts.extractBatch ?? 16), fixed, probe };
}

async function runExtractor(ex: Extractor, x: Float32Array, dims: number[], source: string, pooled: string): Promise<Float32Array> {
  let f: ort.Tensor;
  let data = x;
  let runDims = dims;
  if (ex.fixed && dims[0] !== ex.batch) {
    data = new Float32Array((x.length / dims[0]!) * ex.batch);
    data.set(x);
    runDims = [ex.batch, ...dims.slice(1)];
  }
  try {
    const res = await ex.session.run({ [ex.input]: new ort.Tensor('float32', data, runDims) });
    f = res[FEATURES_OUTPUT]!;
  } catch (e) {
    const msg = ((e as Error).message ?? String(e)).split('\n')[0];
    const shape = await ex.probe(data, runDims);
    if (shape && shape.length !== 4) {
      throw new MedmaskError('MODEL_INVALID', `${source}: the tensor "${pooled}" has shape [${shape.join(', ')}]; a head is trained on a 4-D activation [N, C, H, W]`, {
        cause: e,
        hint: 'choose a convolutional feature map with --target (`medmask model inspect` lists the candidates)',
        details: { tensor: pooled, shape },
      });
    }
    throw new MedmaskError('MODEL_INVALID', `${source}: the backbone fails on input [${runDims.join(', ')}] or cannot pool "${pooled}": ${msg}`, {
      cause: e,
      hint: 'check input.height / input.width in the backbone manifest, and that the target is a 4-D activation [N, C, H, W] (`medmask model inspect`)',
    });
  }
  if (f.dims.length !== 2 || f.dims[0] !== runDims[0]) {
    throw new MedmaskError('MODEL_INVALID', `${source}: pooling "${pooled}" gives shape [${f.dims.join(', ')}], expected [${runDims[0]}, C]`, {
      hint: 'the target must be a 4-D activation [N, C, H, W]',
    });
  }
  const all = f.data as Float32Array;
  return all.subarray(0, dims[0]! * (f.dims[1] as number));
}

async function checkWrittenModel(
  bytes: Uint8Array,
  target: string,
  checkRows: number[],
  rows: LabelledImage[],
  input: { height: number; width: number; channels: number },
  preprocess: PreprocessSpec,
  features: Float32Array,
  dim: number,
  fit: FitHeadResult,
  K: number,
  opts: TrainHeadOptions,
): Promise<{ images: number; maxAbsDiff: number }> {
  const session = await ClassifierSession.create(bytes, { target, source: 'model.onnx', ...(opts.threads ? { threads: opts.threads } : {}), ...(opts.device ? { device: opts.device } : {}) });
  try {
    let worst = 0;
    for (const i of checkRows) {
      const vol = await readVolume(rows[i]!.image);
      const pre = preprocessImage(vol, input, preprocess);
      const run = await session.run(pre.data, pre.dims);
      const p = softmaxRows(Float64Array.from(run.logits), K);
      const ts = softmaxRows(headForward(fit.rawParams, Float64Array.from(features.subarray(i * dim, (i + 1) * dim)), 1).logits, K);
      for (let k = 0; k < K; k++) worst = Math.max(worst, Math.abs(p[k]! - ts[k]!));
    }
    if (worst > 1e-3) {
      throw new MedmaskError('INTERNAL', `the written model disagrees with the trained head (max |Δp| = ${worst.toExponential(2)})`, {
        hint: 'please report this with the backbone and command line',
      });
    }
    return { images: checkRows.length, maxAbsDiff: worst };
  } finally {
    await session.release();
  }
}

const pct = (v: number | null | undefined): string => (v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : `${(100 * v).toFixed(1)} %`);
const dec = (v: number | null | undefined): string => (v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(3));

function cardMarkdown(card: TrainHeadCard, classes: string[], val: SetMetrics | undefined): string {
  const t = card.training;
  const lines = [
    `# ${card.name}`,
    '',
    `Classifier head trained with \`medmask train-head\` on the frozen backbone \`${card.backbone.file}\``,
    `(sha256 ${String(card.backbone.sha256).slice(0, 16)}…), features pooled from \`${card.backbone.pooled}\``,
    `(${card.backbone.featureDim} channels; CAM target \`${card.backbone.target}\`).`,
    '',
    '## Data',
    '',
    'column' in card.data.split
      ? `${card.data.images} images from \`${card.data.labels}\`, split by its column \`${card.data.split.column}\` (${card.data.split.testRowsLeftOut} test rows left out).`
      : `${card.data.images} images from \`${card.data.labels}\`, split per class with seed ${card.data.split.seed} (validation share ${card.data.split.val}).`,
    '',
    '| class | train | validation |',
    '| --- | ---: | ---: |',
    ...classes.map((c) => `| ${c} | ${card.data.counts[c]!.train} | ${card.data.counts[c]!.val} |`),
    '',
    '## Head and training',
    '',
    `- ${card.head.architecture}`,
    `- Adam, learning rate ${t.lr}, weight decay ${t.weightDecay}, batch ${t.batch}, class weights ${t.classWeights} (${t.classWeightValues.map((w) => w.toFixed(3)).join(', ')})`,
    `- ${t.epochsRun} of at most ${t.maxEpochs} epochs${t.stoppedEarly ? ` (early stopping, patience ${t.patience})` : ''}; weights of epoch ${t.bestEpoch} kept (lowest validation loss); ${t.seconds} s`,
    '',
    '![loss curve](loss.png)',
    '',
    '## Validation metrics',
    '',
  ];
  if (val) {
    lines.push(
      `| metric | value |`,
      '| --- | ---: |',
      `| accuracy | ${pct(val.accuracy)} |`,
      `| balanced accuracy | ${pct(val.balancedAccuracy)} |`,
      `| AUROC${classes.length > 2 ? ' (macro, one-vs-rest)' : ` (${classes[1]} vs ${classes[0]})`} | ${dec(val.auroc)} |`,
      `| cross-entropy (class-weighted) | ${dec(val.loss)} |`,
      '',
      'Confusion matrix (rows: true class, columns: predicted):',
      '',
      `| | ${classes.join(' | ')} |`,
      `| --- |${classes.map(() => ' ---: |').join('')}`,
      ...val.confusion.map((row, i) => `| ${classes[i]} | ${row.join(' | ')} |`),
      '',
      'Validation images chose the kept epoch, so these numbers are slightly optimistic; measure on a',
      'held-out test set before relying on them.',
    );
  } else lines.push('No validation split (`--val 0`): no held-out metrics.');
  if (card.warnings.length) lines.push('', '## Warnings', '', ...card.warnings.map((w) => `- ${w}`));
  lines.push(
    '',
    `Written ONNX checked against the TypeScript head on ${card.selfCheck.images} images: max |Δp| = ${Number(card.selfCheck.maxAbsDiff).toExponential(1)}.`,
    '',
  );
  return lines.join('\n');
}
