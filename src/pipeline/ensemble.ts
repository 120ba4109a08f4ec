/**
 * An ensemble of classifiers loaded once for a run: one onnxruntime session per model, the
 * manifest's preprocessing, and one backbone pass per image giving the target activation, the
 * head's probabilities and the globally pooled features (for the open-set statistics).
 * Shared by `annotate` and `fit-ood`.
 * @module
 */
import { createHash } from 'node:crypto';
import { basename, dirname } from 'node:path';
import { defaultProbabilityMode } from '../core/explain/explain.js';
import type { HeadTensor } from '../core/explain/head.js';
import { MedmaskError } from '../core/errors.js';
import { preprocessImage, type PreprocessResult } from '../core/preprocess.js';
import { toProbabilities, type ProbabilityMode } from '../core/uncertainty/mc-dropout.js';
import type { Volume } from '../core/volume.js';
import { resolveModel, type ClassifierManifest } from '../runtime/manifest.js';
import { ClassifierSession, type Device } from '../runtime/session.js';

/** One loaded model. */
export interface EnsembleModel {
  /** Short unique name (manifest name, else file name). */
  name: string;
  path: string;
  manifest: ClassifierManifest;
  sha256: string;
  session: ClassifierSession;
  probability: ProbabilityMode;
  /** Head-MC dropout rate (manifest, else 0.5). */
  mcRate: number;
}

/** One backbone pass of one model on one image. */
export interface ModelPass {
  pre: PreprocessResult;
  activation: HeadTensor;
  logits: Float64Array;
  probabilities: Float64Array;
  /** Global average of the target activation per channel. */
  pooled: Float64Array;
  /** The earlier tensors the model was loaded with ({@link EnsembleOptions.extraOutputs}), by name. */
  extra?: Record<string, HeadTensor>;
}

/** Options of {@link loadEnsemble}. */
export interface EnsembleOptions {
  device?: Device;
  threads?: number;
  /** Earlier tensors each run also returns, by the model's ONNX sha256 (a mask head's hypercolumn layers). */
  extraOutputs?: Record<string, string[]>;
}

/**
 * Load the models of an ensemble and check they share one class list (in the same order).
 * @param paths - `.onnx`, manifest `.json` or folder per model
 * @param opts - device and threads
 * @returns the models
 * @throws MedmaskError USAGE when the class lists differ (naming both lists), MODEL_INVALID for unusable models
 */
export async function loadEnsemble(paths: readonly string[], opts: EnsembleOptions = {}): Promise<EnsembleModel[]> {
  if (!paths.length) throw new MedmaskError('USAGE', 'no models given', { hint: 'pass --models a.onnx,b.onnx,c.onnx (or model folders)' });
  const out: EnsembleModel[] = [];
  try {
    for (const path of paths) {
      const r = await resolveModel(path);
      const sha256 = createHash('sha256').update(r.bytes).digest('hex');
      const extra = opts.extraOutputs?.[sha256];
      const session = await ClassifierSession.create(r.bytes, {
        source: r.onnxPath,
        ...(r.manifest.cam?.target ? { target: r.manifest.cam.target } : {}),
        ...(r.manifest.output?.name ? { output: r.manifest.output.name } : {}),
        ...(opts.device ? { device: opts.device } : {}),
        ...(opts.threads ? { threads: opts.threads } : {}),
        ...(extra?.length ? { extraOutputs: extra } : {}),
      });
      let name = (r.manifest.name || basename(dirname(r.onnxPath))).replace(/[^\w.-]+/g, '_');
      for (let k = 2; out.some((m) => m.name === name); k++) name = `${r.manifest.name}-${k}`;
      out.push({
        name,
        path,
        manifest: r.manifest,
        sha256,
        session,
        probability: r.manifest.output?.activation ?? defaultProbabilityMode(session.head),
        mcRate: r.manifest.mc?.dropout ?? 0.5,
      });
    }
    const first = out[0]!;
    for (const m of out.slice(1)) {
      if (m.manifest.classes.join('\u0000') !== first.manifest.classes.join('\u0000')) {
        throw new MedmaskError('USAGE', `the models disagree on their classes: ${first.name} has [${first.manifest.classes.join(', ')}], ${m.name} has [${m.manifest.classes.join(', ')}]`, {
          hint: 'an ensemble needs the same class names in the same order (fix the "classes" of the manifests)',
        });
      }
    }
  } catch (e) {
    await releaseEnsemble(out);
    throw e;
  }
  return out;
}

/** Release every session. */
export async function releaseEnsemble(models: readonly EnsembleModel[]): Promise<void> {
  await Promise.all(models.map((m) => m.session.release()));
}

/**
 * Preprocess an image for a model and run its backbone once.
 * @param m - the model
 * @param vol - a 2D image
 * @returns activation, probabilities, pooled features and the preprocessing geometry
 */
export async function runModel(m: EnsembleModel, vol: Volume): Promise<ModelPass> {
  const { height, width, channels } = m.manifest.input;
  const pre = preprocessImage(vol, { height, width, channels }, m.manifest.preprocess ?? {});
  const r = await m.session.run(pre.data, pre.dims);
  const [, C = 1, h = 1, w = 1] = r.activationDims;
  const activation: HeadTensor = { shape: [1, C, h, w], data: Float64Array.from(r.activation) };
  // onnxruntime already evaluated the head: its logits are the deterministic output.
  const logits = Float64Array.from(r.logits);
  const pooled = new Float64Array(C);
  const hw = h * w;
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let p = 0; p < hw; p++) s += activation.data[c * hw + p]!;
    pooled[c] = s / hw;
  }
  const extra = r.extra ? Object.fromEntries(Object.entries(r.extra).map(([k, v]) => [k, { shape: v.dims, data: Float64Array.from(v.data) }])) : undefined;
  return { pre, activation, logits, probabilities: toProbabilities(logits, m.probability), pooled, ...(extra ? { extra } : {}) };
}
