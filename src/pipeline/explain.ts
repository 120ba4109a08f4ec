/**
 * `medmask explain`: for every image and every model, the class probabilities, a class activation
 * map for the chosen class(es) (XGrad-CAM by default — Fu et al. 2020) and, on request, Monte
 * Carlo Dropout uncertainty (Gal & Ghahramani 2016) — head MC (one backbone pass, T head samples)
 * or full MC (T backbone passes with the graph's Dropout nodes on).
 *
 * One onnxruntime session per model, reused for every image; images go through in batches where
 * the model's batch dimension is dynamic. Per image and model it writes (under
 * `OUT/<image path without extension>/`):
 * - `<model>.json` — probabilities, prediction, uncertainty, the files below;
 * - per class: `<model>.<class>.png` (the map over the image, as pytorch-grad-cam draws it),
 *   `<model>.<class>.npy` (normalised map at image resolution, float32 [H, W]),
 *   `<model>.<class>.act.npy` (normalised, activation resolution), `<model>.<class>.raw.npy` (raw
 *   ReLU(Σ w_k A_k), activation resolution), and with MC `<model>.<class>.std.npy` (per-pixel std
 *   of the T normalised maps, activation resolution);
 * and `OUT/summary.json`.
 * @module
 */
import { existsSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, extname, join, relative, resolve } from 'node:path';
import sharp from 'sharp';
import type { CamMethod } from '../core/explain/cam.js';
import { parseClassSpec } from '../core/explain/class-select.js';
import { defaultProbabilityMode, fullMcStatistics, type ActivationExplanation, type FullMcSample, type StdSummary } from '../core/explain/explain.js';
import { displayRgb, overlayHeatmap } from '../core/explain/overlay.js';
import type { CompiledHead } from '../core/explain/head.js';
import { isMedmaskError, MedmaskError } from '../core/errors.js';
import { mapToImage, preprocessImage, type InputGeometry } from '../core/preprocess.js';
import type { McStatistics, ProbabilityMode } from '../core/uncertainty/mc-dropout.js';
import type { Volume } from '../core/volume.js';
import { atomicWrite } from '../io/atomic.js';
import { readVolume } from '../io/index.js';
import { encodeNpy } from '../io/npy.js';
import { resolveModel, type ClassifierManifest } from '../runtime/manifest.js';
import { ClassifierSession, type Device } from '../runtime/session.js';

/** Image file endings `explain` picks up in a folder. */
export const EXPLAIN_IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.tif', '.tiff', '.dcm'] as const;

/** Options of {@link runExplain}. */
export interface ExplainRunOptions {
  /** Models: `.onnx`, manifest `.json`, or folder; one or more. */
  models: string[];
  /** An image file or a folder (searched recursively for {@link EXPLAIN_IMAGE_EXTENSIONS}). */
  images: string;
  /** Output folder. */
  out: string;
  /** `predicted` (default), `all`, or indices / names, comma-separated. */
  classes?: string;
  /** CAM method (default: the manifest's `cam.method`, else `xgradcam`). */
  method?: CamMethod;
  /** Monte Carlo samples T; `true`: the manifest's `mc.samples` or 30; 0 / undefined: no MC. */
  mc?: number | true;
  /** `head` (default) or `full`. */
  mcMode?: 'head' | 'full';
  /** Head-MC dropout rate (default: the manifest's `mc.dropout`, else the head's Dropout ratio, else 0.5). */
  dropout?: number;
  /** MC seed (default 0). */
  seed?: number;
  /** Skip the per-pixel std of the T maps (statistics only; faster). */
  noPixelStd?: boolean;
  /** `cpu` (default) or `cuda`. */
  device?: Device;
  /** onnxruntime threads per session. */
  threads?: number;
  /** Images per forward pass where the batch dimension is dynamic (default 8). */
  batch?: number;
  /** Write the overlay PNGs (default true). */
  overlay?: boolean;
  /** Called after each image. */
  onProgress?: (done: number, total: number, imagesPerSecond: number) => void;
  /** Called with notes the user should see (defaults used, skipped images). */
  onNote?: (note: string) => void;
}

/** Per-image, per-model result (also the content of `<model>.json`). */
export interface ImageModelResult {
  image: string;
  model: string;
  imageSize: [number, number];
  geometry: InputGeometry;
  target: string;
  activationShape: [number, number, number];
  method: CamMethod;
  classes: string[];
  probabilities: Record<string, number>;
  predicted: { index: number; name: string; probability: number };
  maps: {
    index: number;
    name: string;
    probability: number;
    files: { overlay?: string; image: string; activation: string; raw: string; std?: string };
    std?: StdSummary;
  }[];
  uncertainty?: {
    mode: 'head' | 'full';
    samples: number;
    rate?: number;
    seed: number;
    meanProbability: Record<string, number>;
    probabilityStd: Record<string, number>;
    predicted: string;
    predictiveEntropy: number;
    expectedEntropy: number;
    mutualInformation: number;
  };
}

/** Summary of a run (`OUT/summary.json`; `--json` prints it). */
export interface ExplainRunSummary {
  out: string;
  models: { name: string; onnx: string; manifest?: string; defaults: string[]; target: string; classes: string[]; mc?: { mode: 'head' | 'full'; samples: number; rate?: number; rateSource?: string } }[];
  images: number;
  explained: number;
  failed: { image: string; error: string }[];
  seconds: number;
  imagesPerSecond: number;
  results: { image: string; models: Record<string, { predicted: string; probability: number; mutualInformation?: number; json: string }> }[];
}

interface LoadedModel {
  name: string;
  manifest: ClassifierManifest;
  onnx: string;
  manifestPath?: string;
  defaults: string[];
  session: ClassifierSession;
  mcSession?: ClassifierSession;
  dynamicBatch: boolean;
  probability: ProbabilityMode;
  method: CamMethod;
  mc?: { samples: number; rate: number; rateSource: string; site?: string };
}

async function listImages(path: string): Promise<{ files: string[]; root: string | undefined }> {
  if (!existsSync(path)) throw new MedmaskError('NOT_FOUND', `${path} does not exist`, { hint: 'give an image file or a folder of images' });
  if (!statSync(path).isDirectory()) return { files: [path], root: undefined };
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (EXPLAIN_IMAGE_EXTENSIONS.some((x) => e.name.toLowerCase().endsWith(x))) out.push(p);
    }
  };
  await walk(path);
  if (!out.length) {
    throw new MedmaskError('NOT_FOUND', `${path} holds no images (${EXPLAIN_IMAGE_EXTENSIONS.join(', ')})`, { hint: 'point --image at an image file or a folder of images' });
  }
  return { files: out, root: path };
}

/** Dropout ratio of a Dropout node in the head, if any (attribute or constant input). */
function headDropoutRatio(head: CompiledHead): number | undefined {
  for (const n of head.nodes) {
    if (n.op !== 'Dropout') continue;
    if (typeof n.attrs.ratio === 'number') return n.attrs.ratio;
    const c = n.inputs[1] ? head.constants.get(n.inputs[1]) : undefined;
    if (c && c.data.length === 1) return c.data[0]!;
    return 0.5;
  }
  return undefined;
}

const safe = (s: string): string => s.replace(/[^A-Za-z0-9._-]+/g, '_');

async function loadModels(opts: ExplainRunOptions, note: (s: string) => void): Promise<LoadedModel[]> {
  const out: LoadedModel[] = [];
  try {
    for (const path of opts.models) {
      const r = await resolveModel(path);
      const m = r.manifest;
      const session = await ClassifierSession.create(r.bytes, {
        source: r.onnxPath,
        ...(opts.device ? { device: opts.device } : {}),
        ...(opts.threads ? { threads: opts.threads } : {}),
        ...(m.cam?.target ? { target: m.cam.target } : {}),
        ...(m.output?.name ? { output: m.output.name } : {}),
      });
      let name = safe(m.name);
      for (let k = 2; out.some((o) => o.name === name); k++) name = `${safe(m.name)}-${k}`;
      const lm: LoadedModel = {
        name,
        manifest: m,
        onnx: r.onnxPath,
        ...(r.manifestPath ? { manifestPath: r.manifestPath } : {}),
        defaults: r.defaults,
        session,
        dynamicBatch: typeof session.input.dims[0] !== 'number' || session.input.dims[0] <= 0,
        probability: m.output?.activation ?? defaultProbabilityMode(session.head),
        method: opts.method ?? m.cam?.method ?? 'xgradcam',
      };
      out.push(lm);
      if (r.defaults.length) note(`${path}: no manifest; using defaults for ${r.defaults.join(', ')}`);
      if (opts.mc) {
        const samples = opts.mc === true ? (m.mc?.samples ?? 30) : opts.mc;
        if ((opts.mcMode ?? 'head') === 'full') {
          lm.mcSession = await ClassifierSession.create(r.bytes, {
            source: r.onnxPath,
            fullMc: { seed: opts.seed ?? 0 },
            ...(opts.device ? { device: opts.device } : {}),
            ...(opts.threads ? { threads: opts.threads } : {}),
            target: session.target,
            output: session.output,
          });
          lm.mc = { samples, rate: NaN, rateSource: 'graph' };
        } else {
          const graphRate = headDropoutRatio(session.head);
          const [rate, rateSource] =
            opts.dropout !== undefined ? [opts.dropout, 'option'] : m.mc ? [m.mc.dropout, 'manifest'] : graphRate !== undefined ? [graphRate, 'graph'] : [0.5, 'default'];
          if (rateSource === 'default') note(`${name}: no dropout rate in the manifest or the graph; head MC uses 0.5 (set mc.dropout or --dropout)`);
          lm.mc = { samples, rate, rateSource, ...(m.mc?.site ? { site: m.mc.site } : {}) };
        }
      }
    }
  } catch (e) {
    await Promise.all(out.flatMap((m) => [m.session.release(), m.mcSession?.release()]));
    throw e;
  }
  return out;
}

function named(classes: readonly string[], v: ArrayLike<number>): Record<string, number> {
  return Object.fromEntries(classes.map((c, i) => [c, v[i]!]));
}

function classNamesFor(m: LoadedModel, outputs: number): string[] {
  if (m.manifest.classes.length) return m.manifest.classes;
  // bare .onnx with a symbolic output size: name the classes now (in place: the summary shares the array)
  m.manifest.classes.push(...Array.from({ length: outputs }, (_, i) => `class_${i}`));
  return m.manifest.classes;
}

/**
 * Full Monte Carlo Dropout samples of one preprocessed input: T passes of a session made with
 * `fullMc` (the graph's Dropout nodes on), `chunk` copies of the input per run (each copy draws its
 * own masks), with the masks drawn in the head so each sample's gradient uses its own.
 * @param session - a session created with `fullMc`
 * @param x - one input sample, C·H·W values
 * @param dims - [1, C, H, W]
 * @param samples - T
 * @param chunk - copies per run (1 for models with a fixed batch of 1)
 * @returns the T samples
 * @example
 * const s = await sampleFullMc(mcSession, x, [1, 3, 224, 224], 30, 16);
 */
export async function sampleFullMc(session: ClassifierSession, x: Float32Array, dims: number[], samples: number, chunk = 16): Promise<FullMcSample[]> {
  const per = x.length;
  const out: FullMcSample[] = [];
  const step = Math.max(1, Math.min(chunk, samples));
  for (let t0 = 0; t0 < samples; t0 += step) {
    const n = Math.min(step, samples - t0);
    const buf = new Float32Array(per * n);
    for (let i = 0; i < n; i++) buf.set(x, i * per);
    const r = await session.run(buf, [n, ...dims.slice(1)]);
    const [, C = 1, h = 1, w = 1] = r.activationDims;
    const a = C * h * w;
    for (let i = 0; i < n; i++) {
      const masks: Record<string, Float64Array> = {};
      for (const [k, v] of Object.entries(r.dropoutMasks ?? {})) {
        const len = v.length / n;
        masks[k] = v.slice(i * len, (i + 1) * len);
      }
      out.push({ activation: { shape: [1, C, h, w], data: Float64Array.from(r.activation.subarray(i * a, (i + 1) * a)) }, masks });
    }
  }
  return out;
}

/**
 * Explain images with one or more models (see the module documentation for what is written).
 * @param opts - models, images, output folder, class choice, method, MC, device, threads, batch
 * @returns the summary (also written to `OUT/summary.json`)
 * @throws MedmaskError for unusable models, options, or (for a single image) an unreadable image;
 *   in a folder an unreadable image is skipped and listed in `failed`
 * @example
 * const s = await runExplain({ models: ['resnet.onnx'], images: 'data/chest/images', out: 'out', mc: 30 });
 */
export async function runExplain(opts: ExplainRunOptions): Promise<ExplainRunSummary> {
  const note = opts.onNote ?? (() => {});
  if (!opts.models.length) throw new MedmaskError('USAGE', 'no model given', { hint: 'pass --model MODEL.onnx (repeat for an ensemble)' });
  const classSpec = parseClassSpec(opts.classes);
  const batch = opts.batch ?? 8;
  if (!Number.isInteger(batch) || batch < 1) throw new MedmaskError('USAGE', `--batch ${batch} is not a positive whole number`);
  if (opts.dropout !== undefined && !(opts.dropout >= 0 && opts.dropout < 1)) throw new MedmaskError('USAGE', `--dropout ${opts.dropout} must be in [0, 1)`);
  const { files, root } = await listImages(opts.images);
  const models = await loadModels(opts, note);
  const t0 = performance.now();
  const summary: ExplainRunSummary = {
    out: opts.out,
    models: models.map((m) => ({
      name: m.name,
      onnx: m.onnx,
      ...(m.manifestPath ? { manifest: m.manifestPath } : {}),
      defaults: m.defaults,
      target: m.session.target,
      classes: m.manifest.classes,
      ...(m.mc ? { mc: { mode: opts.mcMode ?? 'head', samples: m.mc.samples, ...(Number.isNaN(m.mc.rate) ? {} : { rate: m.mc.rate, rateSource: m.mc.rateSource }) } } : {}),
    })),
    images: files.length,
    explained: 0,
    failed: [],
    seconds: 0,
    imagesPerSecond: 0,
    results: [],
  };
  const single = root === undefined;
  try {
    let done = 0;
    for (let b0 = 0; b0 < files.length; b0 += batch) {
      const chunk = files.slice(b0, b0 + batch);
      const vols: (Volume | undefined)[] = [];
      for (const f of chunk) {
        try {
          vols.push(await readVolume(f));
        } catch (e) {
          if (single || !isMedmaskError(e)) throw e;
          summary.failed.push({ image: f, error: e.message });
          note(`skipped ${f}: ${e.message}`);
          vols.push(undefined);
        }
      }
      const results = chunk.map((f) => ({ image: f, models: {} as ExplainRunSummary['results'][number]['models'] }));
      const ok = chunk.map((_, i) => vols[i] !== undefined);
      for (const m of models) {
        const { height: H, width: W, channels: C } = m.manifest.input;
        const per = C * H * W;
        const idx = chunk.map((_, i) => i).filter((i) => ok[i]);
        const pre = new Map<number, { geometry: InputGeometry; data: Float32Array }>();
        for (const i of idx) {
          try {
            const p = preprocessImage(vols[i]!, { height: H, width: W, channels: C }, m.manifest.preprocess ?? {});
            pre.set(i, { geometry: p.geometry, data: p.data });
          } catch (e) {
            if (single || !isMedmaskError(e)) throw e;
            summary.failed.push({ image: chunk[i]!, error: `${m.name}: ${e.message}` });
            note(`skipped ${chunk[i]}: ${e.message}`);
            ok[i] = false;
          }
        }
        const todo = idx.filter((i) => pre.has(i));
        const groups = m.dynamicBatch ? [todo] : todo.map((i) => [i]);
        for (const g of groups) {
          if (!g.length) continue;
          const x = new Float32Array(per * g.length);
          g.forEach((i, k) => x.set(pre.get(i)!.data, k * per));
          const run = await m.session.run(x, [g.length, C, H, W]);
          const [, AC = 1, ah = 1, aw = 1] = run.activationDims;
          if (run.activationDims.length !== 4) {
            throw new MedmaskError('MODEL_INVALID', `${m.onnx}: the CAM target "${m.session.target}" has shape [${run.activationDims.join(', ')}]; a 4-D [N, C, H, W] activation is needed`, {
              hint: 'choose a 4-D target tensor in the manifest (cam.target); medmask model inspect lists candidates',
            });
          }
          const asize = AC * ah * aw;
          for (let k = 0; k < g.length; k++) {
            const i = g[k]!;
            const activation = { shape: [1, AC, ah, aw], data: run.activation.subarray(k * asize, (k + 1) * asize) };
            const names = classNamesFor(m, run.logitsDims[run.logitsDims.length - 1] ?? 0);
            const K = run.logitsDims[run.logitsDims.length - 1] ?? 0;
            const e = await m.session.explain(activation, {
              output: run.logits.subarray(k * K, (k + 1) * K),
              method: m.method,
              classes: classSpec,
              classNames: names,
              probability: m.probability,
              ...(m.mc && !m.mcSession ? { mc: { samples: m.mc.samples, rate: m.mc.rate, seed: opts.seed ?? 0, pixelStd: !opts.noPixelStd, ...(m.mc.site ? { site: m.mc.site } : {}) } } : {}),
            });
            let mcFull: { statistics: McStatistics; std: Map<number, { std: Float64Array; summary: StdSummary }> } | undefined;
            if (m.mcSession && m.mc) {
              const samples = await sampleFullMc(m.mcSession, pre.get(i)!.data, [1, C, H, W], m.mc.samples, m.dynamicBatch ? 16 : 1);
              mcFull = fullMcStatistics(m.session.head, samples, {
                method: m.method,
                classes: e.maps.map((c) => c.classIndex),
                probability: m.probability,
                pixelStd: !opts.noPixelStd,
              });
              for (const c of e.maps) {
                const s = mcFull.std.get(c.classIndex);
                if (s) {
                  c.std = s.std;
                  c.stdSummary = s.summary;
                }
              }
            }
            const r = await writeResult(opts, m, chunk[i]!, root, vols[i]!, pre.get(i)!.geometry, e, mcFull?.statistics, run.activationDims);
            results[i]!.models[m.name] = {
              predicted: r.predicted.name,
              probability: r.predicted.probability,
              ...(r.uncertainty ? { mutualInformation: r.uncertainty.mutualInformation } : {}),
              json: r.json,
            };
          }
        }
      }
      for (let i = 0; i < chunk.length; i++) {
        if (ok[i]) {
          summary.results.push(results[i]!);
          summary.explained++;
        }
        done++;
        opts.onProgress?.(done, files.length, done / ((performance.now() - t0) / 1000));
      }
    }
  } finally {
    await Promise.all(models.flatMap((m) => [m.session.release(), m.mcSession?.release()]));
  }
  summary.seconds = (performance.now() - t0) / 1000;
  summary.imagesPerSecond = summary.explained / Math.max(summary.seconds, 1e-9);
  await atomicWrite(join(opts.out, 'summary.json'), JSON.stringify(summary, null, 1) + '\n');
  return summary;
}

function stemOf(image: string, root: string | undefined): string {
  const rel = root === undefined ? basename(image) : relative(root, image);
  return rel.slice(0, rel.length - extname(rel).length);
}

async function writeResult(
  opts: ExplainRunOptions,
  m: LoadedModel,
  image: string,
  root: string | undefined,
  vol: Volume,
  geometry: InputGeometry,
  e: ActivationExplanation,
  fullStats: McStatistics | undefined,
  activationDims: number[],
): Promise<ImageModelResult & { json: string }> {
  const dir = join(opts.out, stemOf(image, root));
  const classes = m.manifest.classes;
  const writes: Promise<void>[] = [];
  const rel = (p: string): string => relative(opts.out, p);
  const [nx, ny] = vol.shape;
  const int = m.manifest.preprocess?.intensity;
  const display = opts.overlay === false ? undefined : displayRgb(vol, int?.mode === 'ct-window' ? [int.center - int.width / 2, int.center + int.width / 2] : undefined);
  const maps: ImageModelResult['maps'] = [];
  for (const c of e.maps) {
    const base = join(dir, `${m.name}.${safe(c.className)}`);
    const { image: atImage } = mapToImage(c.normalized, e.width, e.height, geometry);
    const files: ImageModelResult['maps'][number]['files'] = { image: rel(`${base}.npy`), activation: rel(`${base}.act.npy`), raw: rel(`${base}.raw.npy`) };
    writes.push(atomicWrite(`${base}.npy`, encodeNpy(atImage, [ny, nx])));
    writes.push(atomicWrite(`${base}.act.npy`, encodeNpy(Float32Array.from(c.normalized), [e.height, e.width])));
    writes.push(atomicWrite(`${base}.raw.npy`, encodeNpy(Float32Array.from(c.raw), [e.height, e.width])));
    if (c.std) {
      files.std = rel(`${base}.std.npy`);
      writes.push(atomicWrite(`${base}.std.npy`, encodeNpy(Float32Array.from(c.std), [e.height, e.width])));
    }
    if (display) {
      files.overlay = rel(`${base}.png`);
      const rgb = overlayHeatmap(display, atImage);
      writes.push(sharp(rgb, { raw: { width: nx, height: ny, channels: 3 } }).png({ compressionLevel: 6 }).toBuffer().then((buf) => atomicWrite(`${base}.png`, buf)));
    }
    maps.push({ index: c.classIndex, name: c.className, probability: c.probability, files, ...(c.stdSummary ? { std: c.stdSummary } : {}) });
  }
  const stats = fullStats ?? e.mc;
  const result: ImageModelResult = {
    image: resolve(image),
    model: m.name,
    imageSize: [nx, ny],
    geometry,
    target: m.session.target,
    activationShape: [activationDims[1] ?? 1, activationDims[2] ?? 1, activationDims[3] ?? 1],
    method: e.method,
    classes,
    probabilities: named(classes, e.probabilities),
    predicted: { index: e.predicted, name: classes[e.predicted]!, probability: e.probabilities[e.predicted]! },
    maps,
    ...(stats && m.mc
      ? {
          uncertainty: {
            mode: m.mcSession ? 'full' : 'head',
            samples: stats.samples,
            ...(m.mcSession ? {} : { rate: m.mc.rate }),
            seed: opts.seed ?? 0,
            meanProbability: named(classes, stats.meanProbability),
            probabilityStd: named(classes, stats.probabilityStd),
            predicted: classes[stats.predicted]!,
            predictiveEntropy: stats.predictiveEntropy,
            expectedEntropy: stats.expectedEntropy,
            mutualInformation: stats.mutualInformation,
          },
        }
      : {}),
  };
  const json = join(dir, `${m.name}.json`);
  writes.push(atomicWrite(json, JSON.stringify(result, null, 1) + '\n'));
  await Promise.all(writes);
  return { ...result, json: rel(json) };
}

