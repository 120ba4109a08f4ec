/**
 * `medmask train-mask-head`: learn from reviewed masks. A classifier (its ONNX, manifest) and
 * images with masks that experts accepted or corrected in → the classifier's backbone runs once
 * per image (onnxruntime) and its CAM target activation is cached on disk (one file per image,
 * keyed like train-head's: an interrupted run resumes, a changed image is extracted again alone);
 * pixels are sampled per image (lesion and background), the activation is interpolated at them
 * exactly as the CAMs are upsampled, and train-head's trainer fits a per-pixel linear head
 * (`src/core/train/mask-head.ts`). Outputs: `mask-head.json` (the head, read by `annotate
 * --mask-heads`), `mask-head.onnx` (backbone up to the target + the head as ONNX nodes: image in,
 * lesion logit and probability per activation cell out), `card.md` / `card.json`, `loss.png`.
 * @module
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { isMedmaskError, MedmaskError } from '../core/errors.js';
import { fitHeadSteps, type EpochRecord } from '../core/train/fit.js';
import {
  hypercolumn, maskHeadFromFit, maskHeadLogits, MASK_HEAD_FORMAT, pixelFeatures, pixelInterpolation, samplePixels, splitByImage, validateMaskHead,
  type FeatureMap, type MaskHead, type PixelInterpolation,
} from '../core/train/mask-head.js';
import { plotLossCurve } from '../core/train/plot.js';
import { mulberry32 } from '../core/random.js';
import type { InputGeometry } from '../core/preprocess.js';
import { atomicWrite } from '../io/atomic.js';
import { readVolume } from '../io/index.js';
import { attachMaskHead, MASK_LOGIT_OUTPUT, MASK_PROBABILITY_OUTPUT } from '../runtime/mask-head-onnx.js';
import { decodeOnnx, encodeOnnx } from '../runtime/onnx-graph.js';
import { resolveModel, type ClassifierManifest } from '../runtime/manifest.js';
import type { Device } from '../runtime/session.js';
import { findFinerLayer } from '../runtime/hypercolumn.js';
import { loadEnsemble, releaseEnsemble, runModel, type EnsembleModel, type ModelPass } from './ensemble.js';
import { runEpochs, type TrainHeadProgress } from './train-head.js';

/** One reviewed image. */
export interface MaskPair {
  /** Image path. */
  image: string;
  /** Its mask (non-zero = lesion; empty for a reviewed healthy image). */
  mask: string;
  /** Optional region the background pixels are drawn from (e.g. the lungs). */
  roi?: string;
}

/** Options of {@link trainMaskHead}. */
export interface TrainMaskHeadOptions {
  /** The classifier: `.onnx`, manifest or folder (its manifest's `cam.target` is the activation). */
  model: string;
  pairs: MaskPair[];
  /** Output folder (nothing is written there with `write: false`). */
  out: string;
  /** Activation cache folder (default `<out>/cache`; false: no cache). */
  cache?: string | false;
  /** Lesion and background pixels sampled per image, each (default 256). */
  perClass?: number;
  /**
   * Hypercolumn layers read beside the CAM target: `auto` (default) the last layer twice as fine
   * as the target ({@link findFinerLayer}), `none` the target alone, or tensor names.
   */
  layers?: 'auto' | 'none' | string[];
  /** Dropout on the standardised activation (default 0.3). */
  dropout?: number;
  /** Maximum epochs (default 40). */
  epochs?: number;
  /** Adam learning rate (default 3e-3). */
  lr?: number;
  /** L2 weight decay (default 1e-3). */
  weightDecay?: number;
  /** Share of images kept for validation / early stopping (default 0.2). */
  val?: number;
  /** Early-stopping patience in epochs (default 5). */
  patience?: number;
  /** Mini-batch size in pixels (default 256). */
  batch?: number;
  /** Seed of pixel sampling, split, initialisation, shuffling, dropout (default 0). */
  seed?: number;
  /** Write the files (default true). */
  write?: boolean;
  threads?: number;
  device?: Device;
  signal?: AbortSignal;
  onProgress?: (e: TrainMaskHeadProgress) => void;
}

/** Progress events of {@link trainMaskHead} (the same as train-head's). */
export type TrainMaskHeadProgress = TrainHeadProgress;

/** Result of {@link trainMaskHead}. */
export interface TrainMaskHeadResult {
  head: MaskHead;
  /** Model name, ONNX sha256 and CAM target the head belongs to. */
  parent: { name: string; sha256: string; target: string };
  images: number;
  lesionImages: number;
  pixels: { lesion: number; background: number };
  extraction: { extracted: number; cached: number; seconds: number };
  training: { seconds: number; epochsRun: number; bestEpoch: number; history: EpochRecord[]; valLoss: number | null; valAccuracy: number | null };
  /** Largest |Δ logit| between the written ONNX and the TypeScript head on a few images. */
  selfCheck?: { images: number; maxAbsDiff: number };
  files?: { head: string; onnx: string; card: string; cardJson: string; plot: string };
}

/** The file `annotate --mask-heads` reads. */
export interface MaskHeadFile {
  format: typeof MASK_HEAD_FORMAT;
  parent: { name: string; sha256: string; target: string };
  head: MaskHead;
  /** Reviewed masks it was trained on. */
  trainedOn?: { images: number; lesionImages: number };
  /** `mask-head.onnx`: image in (the parent's input and preprocessing), per-cell logit / probability out. */
  onnx: string;
  input?: ClassifierManifest['input'];
  preprocess?: ClassifierManifest['preprocess'];
  outputs?: { logit: string; probability: string; upsample: string };
  card: string;
}

const CACHE_FORMAT = 'medmask-activation-cache/1';

/**
 * The mask head's input for one backbone pass: the CAM target activation, or with hypercolumn
 * layers ({@link MaskHead.layers}) the {@link hypercolumn} of the target and those layers.
 * @param head - the head (its layers), or the layer names
 * @param pass - the model's pass on the image (loaded with the layers as extra outputs)
 * @returns the feature map the head reads
 * @throws MedmaskError INTERNAL when the pass lacks a layer
 */
export function maskHeadInput(head: Pick<MaskHead, 'layers'>, pass: Pick<ModelPass, 'activation' | 'extra'>): FeatureMap {
  const [, C = 0, h = 1, w = 1] = pass.activation.shape;
  const target = { data: pass.activation.data, channels: C, width: w, height: h };
  if (!head.layers?.length) return target;
  return hypercolumn([target, ...head.layers.map((l) => {
    const t = pass.extra?.[l.tensor];
    if (!t) throw new MedmaskError('INTERNAL', `the backbone pass lacks the mask head's layer "${l.tensor}"`, { hint: 'load the model with the head\'s layers as extra outputs' });
    const [, c = 0, lh = 1, lw = 1] = t.shape;
    return { data: t.data, channels: c, width: lw, height: lh };
  })]);
}

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function abortError(signal: AbortSignal): Error {
  const r = signal.reason;
  return r instanceof Error ? r : new DOMException('train-mask-head was interrupted', 'AbortError');
}

/** A 0/1 mask of an image file (any non-zero value is on). */
async function readMask(path: string, w: number, h: number, what: string): Promise<Uint8Array> {
  const v = await readVolume(path);
  if (v.shape[0] !== w || v.shape[1] !== h || v.shape[2] !== 1) {
    throw new MedmaskError('GEOMETRY_MISMATCH', `${path}: ${what} is ${v.shape.slice(0, 2).join('×')}, its image ${w}×${h}`, { hint: `a ${what} must have its image's size` });
  }
  const c = v.components;
  return Uint8Array.from({ length: w * h }, (_, i) => (v.data[i * c]! ? 1 : 0));
}

/** Interpolation weights, shared by images with the same geometry and activation size. */
function interpolationCache(): (w: number, h: number, g: InputGeometry) => PixelInterpolation {
  const m = new Map<string, PixelInterpolation>();
  return (w, h, g) => {
    const k = JSON.stringify([w, h, g]);
    let v = m.get(k);
    if (!v) m.set(k, (v = pixelInterpolation(w, h, g)));
    return v;
  };
}

function checkOptions(o: TrainMaskHeadOptions): void {
  const int = (name: string, v: number | undefined, min: number): void => {
    if (v !== undefined && (!Number.isInteger(v) || v < min)) throw new MedmaskError('USAGE', `--${name} ${v} must be a whole number ≥ ${min}`);
  };
  int('pixels', o.perClass, 1);
  int('epochs', o.epochs, 1);
  int('patience', o.patience, 0);
  int('batch', o.batch, 1);
  int('seed', o.seed, 0);
  if (o.dropout !== undefined && !(o.dropout >= 0 && o.dropout < 1)) throw new MedmaskError('USAGE', `--dropout ${o.dropout} must be in [0, 1)`, { hint: 'e.g. --dropout 0.3' });
  if (o.val !== undefined && !(o.val >= 0 && o.val < 1)) throw new MedmaskError('USAGE', `--val ${o.val} must be in [0, 1)`);
  if (o.lr !== undefined && !(o.lr > 0)) throw new MedmaskError('USAGE', `--lr ${o.lr} must be positive`);
  if (o.weightDecay !== undefined && !(o.weightDecay >= 0)) throw new MedmaskError('USAGE', `--weight-decay ${o.weightDecay} must be ≥ 0`);
  if (!o.pairs.length) throw new MedmaskError('DATASET_INVALID', 'no reviewed masks to train on', { hint: 'pass images with their masks (--images and --masks)' });
}

/**
 * Train a mask head for one classifier from reviewed masks (see the module documentation).
 * @param opts - model, image / mask pairs, output folder, hyper-parameters
 * @returns the head, its training record and the files written
 * @throws MedmaskError DATASET_INVALID when no mask has a lesion pixel; NOT_FOUND / CORRUPT_FILE /
 *   GEOMETRY_MISMATCH naming the file for unusable images or masks
 * @example
 * await trainMaskHead({ model: 'models/demo/demo-resnet', pairs: [{ image: 'a.png', mask: 'a_mask.png' }], out: 'heads/resnet' });
 */
export async function trainMaskHead(opts: TrainMaskHeadOptions): Promise<TrainMaskHeadResult> {
  checkOptions(opts);
  const out = resolve(opts.out);
  const seed = opts.seed ?? 0;
  const perClass = opts.perClass ?? 256;
  const ensembleOpts = { ...(opts.device ? { device: opts.device } : {}), ...(opts.threads ? { threads: opts.threads } : {}) };
  let [model] = (await loadEnsemble([opts.model], ensembleOpts)) as [EnsembleModel];
  let layers: { tensor: string; channels: number }[] = [];
  try {
    const want = opts.layers ?? 'auto';
    if (want !== 'none') {
      // the backbone again, now also returning the hypercolumn layers
      const names = want === 'auto'
        ? [(await findFinerLayer(model.session.model, model.session.target, [1, model.manifest.input.channels, model.manifest.input.height, model.manifest.input.width])).tensor]
        : want;
      await releaseEnsemble([model]);
      [model] = (await loadEnsemble([opts.model], { ...ensembleOpts, extraOutputs: { [model.sha256]: names } })) as [EnsembleModel];
      layers = names.map((tensor) => ({ tensor, channels: 0 }));
    }
  } catch (e) {
    await releaseEnsemble([model]);
    throw e;
  }
  try {
    const parent = { name: model.name, sha256: model.sha256, target: model.session.target };
    const interp = interpolationCache();
    const cacheDir = opts.cache === false ? undefined
      : resolve(opts.cache ?? join(out, 'cache'), sha256(JSON.stringify({ f: CACHE_FORMAT, sha: model.sha256, target: parent.target, ...(layers.length ? { layers: layers.map((l) => l.tensor) } : {}), input: model.manifest.input, pre: model.manifest.preprocess ?? null })).slice(0, 16));
    const rand = mulberry32(seed * 4 + 5);
    const rows: { features: Float64Array; labels: Int32Array }[] = [];
    let lesionImages = 0;
    let cached = 0;
    let dim = 0;
    const t0 = performance.now();
    for (const [i, pair] of opts.pairs.entries()) {
      if (opts.signal?.aborted) throw abortError(opts.signal);
      const vol = await readVolume(pair.image);
      if (vol.shape[2] !== 1) throw new MedmaskError('DATASET_INVALID', `${pair.image}: a 3D volume (${vol.shape.join('×')}); mask heads are trained on 2D images`);
      const [w, h] = vol.shape;
      const mask = await readMask(pair.mask, w, h, 'mask');
      const roi = pair.roi ? await readMask(pair.roi, w, h, 'ROI mask') : undefined;
      const act = await activationOf(model, layers, pair.image, vol, cacheDir);
      if (act.cached) cached++;
      const s = samplePixels(mask, { perClass, rand, ...(roi ? { roi } : {}) });
      if (s.labels.some((y) => y === 1)) lesionImages++;
      const [, C = 0, ah = 1, aw = 1] = act.shape;
      if (dim && C !== dim) throw new MedmaskError('INTERNAL', `${pair.image}: the activation has ${C} channels, earlier images ${dim}`, { hint: 'delete the cache folder and run again' });
      dim = C;
      rows.push({ features: pixelFeatures(act.data, C, interp(aw, ah, act.geometry), s.pixels), labels: s.labels });
      opts.onProgress?.({ phase: 'extract', done: i + 1, total: opts.pairs.length, cached });
    }
    const extractSeconds = (performance.now() - t0) / 1000;
    if (!lesionImages) throw new MedmaskError('DATASET_INVALID', `none of the ${opts.pairs.length} masks has a lesion pixel`, { hint: 'a mask head needs reviewed masks of lesion images' });
    const n = rows.reduce((a, r) => a + r.labels.length, 0);
    const features = new Float64Array(n * dim);
    const labels = new Int32Array(n);
    const imageOfRow = new Int32Array(n);
    let o = 0;
    rows.forEach((r, i) => {
      features.set(r.features, o * dim);
      labels.set(r.labels, o);
      imageOfRow.fill(i, o, o + r.labels.length);
      o += r.labels.length;
    });
    const lesionPixels = labels.reduce((a, y) => a + y, 0);
    const split = splitByImage(imageOfRow, rows.length, opts.val ?? 0.2, mulberry32(seed * 4 + 6));
    // a validation set without a lesion pixel cannot pick an epoch: train on everything then
    const usable = split.val.length && split.val.some((r) => labels[r] === 1) && split.train.some((r) => labels[r] === 1);
    const epochs = opts.epochs ?? 40;
    const dropout = opts.dropout ?? 0.3;
    const t1 = performance.now();
    const steps = fitHeadSteps({ features, dim, labels, classes: 2 }, {
      hidden: 0,
      dropout,
      epochs,
      lr: opts.lr ?? 3e-3,
      weightDecay: opts.weightDecay ?? 1e-3,
      split: usable ? split : { train: Int32Array.from({ length: n }, (_, i) => i), val: new Int32Array(0) },
      patience: opts.patience ?? 5,
      seed,
      batch: opts.batch ?? 256,
      classWeights: 'balanced',
      onEpoch: (record) => opts.onProgress?.({ phase: 'train', epoch: record.epoch, epochs, record }),
      shouldStop: () => opts.signal?.aborted ?? false,
    });
    const fit = await runEpochs(steps);
    if (opts.signal?.aborted) throw abortError(opts.signal);
    const head = maskHeadFromFit(fit, dropout, layers);
    const result: TrainMaskHeadResult = {
      head,
      parent,
      images: rows.length,
      lesionImages,
      pixels: { lesion: lesionPixels, background: n - lesionPixels },
      extraction: { extracted: rows.length - cached, cached, seconds: extractSeconds },
      training: {
        seconds: (performance.now() - t1) / 1000,
        epochsRun: fit.epochsRun,
        bestEpoch: fit.bestEpoch,
        history: fit.history,
        valLoss: fit.validation?.loss ?? null,
        valAccuracy: fit.validation?.accuracy ?? null,
      },
    };
    if (opts.write === false) return result;
    await writeOutputs(result, model, opts, out);
    return result;
  } finally {
    await releaseEnsemble([model]);
  }
}

/** The model's target activation for an image, from the cache when it holds it. */
async function activationOf(model: EnsembleModel, layers: { tensor: string; channels: number }[], path: string, vol: Awaited<ReturnType<typeof readVolume>>, cacheDir: string | undefined): Promise<{ data: Float32Array; shape: number[]; geometry: InputGeometry; cached: boolean }> {
  let file: string | undefined;
  if (cacheDir) {
    const s = await stat(path);
    const h = sha256(`${resolve(path)}\n${s.size}\n${s.mtimeMs}`).slice(0, 32);
    file = join(cacheDir, h.slice(0, 2), `${h}.json`);
    if (existsSync(file)) {
      try {
        const c = JSON.parse(await readFile(file, 'utf8')) as { shape: number[]; geometry: InputGeometry; data: string; layerChannels?: number[] };
        if (layers.length && c.layerChannels?.length !== layers.length) throw new Error('no layer channels');
        layers.forEach((l, i) => (l.channels = c.layerChannels![i]!));
        const buf = Buffer.from(c.data, 'base64');
        const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
        if (data.length === c.shape.reduce((a, b) => a * b, 1)) return { data, shape: c.shape, geometry: c.geometry, cached: true };
      } catch {
        // damaged cache entry: extract again
      }
    }
  }
  let pass;
  try {
    pass = await runModel(model, vol);
  } catch (e) {
    if (isMedmaskError(e)) throw new MedmaskError(e.code, `${path}: ${e.message}`, { cause: e, ...(e.hint ? { hint: e.hint } : {}) });
    throw e;
  }
  const input = maskHeadInput({ layers }, pass);
  for (const l of layers) l.channels = pass.extra![l.tensor]!.shape[1]!;
  const data = Float32Array.from(input.data);
  const shape = [1, input.channels, input.height, input.width];
  if (file) {
    await mkdir(join(file, '..'), { recursive: true });
    await atomicWrite(file, JSON.stringify({ format: CACHE_FORMAT, shape, geometry: pass.pre.geometry, layerChannels: layers.map((l) => l.channels), data: Buffer.from(data.buffer).toString('base64') }));
  }
  return { data, shape, geometry: pass.pre.geometry, cached: false };
}

async function writeOutputs(r: TrainMaskHeadResult, model: EnsembleModel, opts: TrainMaskHeadOptions, out: string): Promise<void> {
  await mkdir(out, { recursive: true });
  const files = { head: join(out, 'mask-head.json'), onnx: join(out, 'mask-head.onnx'), card: join(out, 'card.md'), cardJson: join(out, 'card.json'), plot: join(out, 'loss.png') };
  const resolved = await resolveModel(opts.model);
  const onnxModel = attachMaskHead(decodeOnnx(resolved.bytes, resolved.onnxPath), r.parent.target, r.head, {
    'medmask.mask-head': '1', 'medmask.parent.sha256': r.parent.sha256, 'medmask.target': r.parent.target,
  });
  const bytes = encodeOnnx(onnxModel);
  // self-check: the written ONNX through onnxruntime gives the TypeScript head's logits
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], logSeverityLevel: 4, ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}) });
  let worst = 0;
  const check = opts.pairs.slice(0, 3);
  try {
    for (const p of check) {
      const pass = await runModel(model, await readVolume(p.image));
      const res = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', pass.pre.data, pass.pre.dims) });
      const onnxLogits = res[MASK_LOGIT_OUTPUT]!.data as Float32Array;
      const ts = maskHeadLogits(r.head, maskHeadInput(r.head, pass).data);
      for (let i = 0; i < ts.length; i++) worst = Math.max(worst, Math.abs(ts[i]! - onnxLogits[i]!));
    }
  } finally {
    await session.release();
  }
  if (worst > 1e-3) throw new MedmaskError('INTERNAL', `the written mask head disagrees with the trained one (max |Δ logit| = ${worst.toExponential(2)})`, { hint: 'please report this with the model and command line' });
  r.selfCheck = { images: check.length, maxAbsDiff: worst };
  opts.onProgress?.({ phase: 'write', file: files.head });
  const headFile: MaskHeadFile = { format: MASK_HEAD_FORMAT, parent: r.parent, head: r.head, trainedOn: { images: r.images, lesionImages: r.lesionImages },
    onnx: 'mask-head.onnx', input: model.manifest.input, ...(model.manifest.preprocess ? { preprocess: model.manifest.preprocess } : {}),
    outputs: { logit: MASK_LOGIT_OUTPUT, probability: MASK_PROBABILITY_OUTPUT, upsample: 'as the CAMs: upsample the logit to the image (bilinear to the input, crop, resize), then the sigmoid' },
    card: 'card.md' };
  await atomicWrite(files.onnx, bytes);
  await atomicWrite(files.head, JSON.stringify(headFile) + '\n');
  const t = r.training;
  const img = plotLossCurve(t.history.map((h) => h.trainLoss), t.history.map((h) => h.valLoss), { bestEpoch: t.bestEpoch, width: 720, height: 420 });
  await atomicWrite(files.plot, await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }).png().toBuffer());
  const card = {
    format: 'medmask-card/1',
    createdBy: 'medmask train-mask-head',
    parent: r.parent,
    head: { architecture: `${r.head.layers?.length ? `hypercolumn (CAM target + ${r.head.layers.map((l) => `${l.tensor} (${l.channels})`).join(' + ')}, resized bilinearly to the finest) → ` : ''}standardise (training pixels' mean / std) → Dropout(${r.head.dropout}) → Conv 1×1 (${r.head.channels} → 1) → upsample like the CAMs → sigmoid`, channels: r.head.channels, dropout: r.head.dropout },
    data: { images: r.images, lesionImages: r.lesionImages, pixels: r.pixels, perClass: opts.perClass ?? 256, val: opts.val ?? 0.2 },
    training: {
      optimizer: 'Adam', lr: opts.lr ?? 3e-3, weightDecay: opts.weightDecay ?? 1e-3, batch: opts.batch ?? 256, seed: opts.seed ?? 0,
      epochsRun: t.epochsRun, bestEpoch: t.bestEpoch, seconds: +t.seconds.toFixed(3), valLoss: t.valLoss, valPixelAccuracy: t.valAccuracy,
      history: t.history.map((h) => ({ epoch: h.epoch, trainLoss: h.trainLoss, valLoss: Number.isFinite(h.valLoss) ? h.valLoss : null })),
    },
    extraction: r.extraction,
    selfCheck: r.selfCheck,
  };
  await atomicWrite(files.cardJson, JSON.stringify(card, null, 2) + '\n');
  const fmt = (v: number | null) => (v === null ? 'n/a' : v.toFixed(3));
  await atomicWrite(files.card, [
    `# Mask head for ${r.parent.name}`,
    '',
    `Trained by \`medmask train-mask-head\` on ${r.images} reviewed masks (${r.lesionImages} with lesions) of ${basename(resolve(opts.model))}`,
    `(ONNX sha256 ${r.parent.sha256.slice(0, 12)}…), CAM target \`${r.parent.target}\`.`,
    '',
    `- Head: ${card.head.architecture}`,
    `- Pixels: ${r.pixels.lesion} lesion, ${r.pixels.background} background (up to ${card.data.perClass} of each per image)`,
    `- Training: ${t.epochsRun} epochs, kept epoch ${t.bestEpoch}, ${t.seconds.toFixed(2)} s; validation loss ${fmt(t.valLoss)}, pixel accuracy ${fmt(t.valAccuracy)} (balanced sample)`,
    `- Export check: written ONNX vs TypeScript head, max |Δ logit| ${r.selfCheck?.maxAbsDiff.toExponential(2)} on ${r.selfCheck?.images} images`,
    '',
    'Validation pixels come from images the training never saw, but they chose the kept epoch:',
    'measure the masks with `medmask annotate --mask-heads` and `medmask evaluate` on held-out images.',
    '',
  ].join('\n'));
  r.files = files;
}

/**
 * Read a mask head written by {@link trainMaskHead}.
 * @param path - `mask-head.json` or its folder
 * @returns the file's contents, checked
 * @throws MedmaskError NOT_FOUND / MODEL_INVALID naming the file
 * @example
 * const h = await loadMaskHead('heads/resnet');
 */
export async function loadMaskHead(path: string): Promise<MaskHeadFile & { path: string }> {
  const file = existsSync(join(path, 'mask-head.json')) ? join(path, 'mask-head.json') : path;
  if (!existsSync(file)) throw new MedmaskError('NOT_FOUND', `${path}: no mask-head.json`, { hint: 'pass a folder written by medmask train-mask-head' });
  let v: Partial<MaskHeadFile>;
  try {
    v = JSON.parse(await readFile(file, 'utf8')) as Partial<MaskHeadFile>;
  } catch (e) {
    throw new MedmaskError('MODEL_INVALID', `${file}: not JSON (${(e as Error).message})`, { cause: e, hint: 'write it again with medmask train-mask-head' });
  }
  if (v.format !== MASK_HEAD_FORMAT || !v.parent || typeof v.parent.sha256 !== 'string') {
    throw new MedmaskError('MODEL_INVALID', `${file}: not a mask head (format "${String(v.format)}")`, { hint: 'pass a folder written by medmask train-mask-head' });
  }
  return { ...(v as MaskHeadFile), head: validateMaskHead(v.head, file), path: file };
}
