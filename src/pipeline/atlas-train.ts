/**
 * Fine-tuning a 3D segmenter in the loop (AbdomenAtlas-8K, Qu et al. NeurIPS 2023: "revised labels
 * fine-tune the models; repeat"): runs `tools/train/train3d.py --init PARENT` — PyTorch, in a child
 * process, warm-started from the parent's ONNX initializers (tools/train/warmstart.py) — on the
 * merged labels that {@link atlasFinetuneHook} exported, then checks the export in onnxruntime
 * against torch's output on the same input (as tools/train/build_zoo.py does) and decides: the new
 * model is **accepted** when its held-out mean Dice is not below the parent's on the same held-out
 * cases, else it is a **rejected** candidate (kept, with its metrics).
 *
 * Python is an optional back-end: without `/usr/bin/python3` + Debian's `python3-torch`,
 * `python3-nibabel`, `python3-onnx` the call fails at once with an ENVIRONMENT error naming the
 * missing package — never a hang.
 * @module
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { MedmaskError } from '../core/errors.js';
import { Segmenter } from '../runtime/segment.js';

/** Held-out metrics as train3d.py writes them. */
export interface HeldoutMetrics {
  dice: Record<string, number | null>;
  mean_dice: number;
  n: number;
}

/** Options for {@link finetuneSegmenter}. */
export interface FinetuneOptions {
  /** Training steps (0: export the warm-started parent as is). Default 40. */
  steps?: number;
  /** Peak learning rate (default 3e-4, train3d.py's for --init). */
  lr?: number;
  /** Loss weight per label provenance (default all 1); `pseudo: 0` trains on original + revised labels only. */
  labelWeights?: Partial<Record<'original' | 'revised' | 'pseudo', number>>;
  /**
   * Share of the training patches drawn from cases holding an expert revision (train3d.py's
   * `revised_share`); default: every patch from a case drawn uniformly, so a round's few reviews are
   * a few of many cases.
   */
  revisedShare?: number;
  seed?: number;
  /** Trainer threads (default {@link defaultTrainerThreads}: 1 on a shared or 2-core machine). */
  threads?: number;
  /** Python with torch (default /usr/bin/python3). */
  python?: string;
  /** Progress: steps done of total, and a line. */
  onProgress?: (done: number, total: number, line: string) => void;
  signal?: AbortSignal;
}

/** What {@link finetuneSegmenter} returns. */
export interface FinetuneResult {
  /** The new model folder (model.onnx, model.json, card.json, card.md). */
  modelDir: string;
  decision: 'accepted' | 'rejected';
  /** Why, in one line. */
  reason: string;
  heldout: HeldoutMetrics;
  parentHeldout: HeldoutMetrics;
  trainSeconds: number;
  steps: number;
  trainCases: string[];
  heldoutCases: string[];
  labelWeights: Record<string, number>;
  /** Export check: largest |onnxruntime − torch| and the tolerance it had to meet. */
  exportCheck: { maxAbsDiff: number; tolerance: number };
}

const TRAINER = fileURLToPath(new URL('../../tools/train/train3d.py', import.meta.url));
const PACKAGES: [string, string][] = [['torch', 'python3-torch'], ['nibabel', 'python3-nibabel'], ['onnx', 'python3-onnx'], ['numpy', 'python3-numpy']];

/**
 * Check that the trainer can run here: Python exists and imports torch, nibabel, onnx, numpy.
 * @throws MedmaskError ENVIRONMENT naming the missing Debian package(s)
 * @example
 * checkTrainer(); // throws 'fine-tuning needs PyTorch: /usr/bin/python3 cannot import torch …'
 */
export function checkTrainer(python = '/usr/bin/python3'): void {
  if (!existsSync(python)) {
    throw new MedmaskError('ENVIRONMENT', `fine-tuning needs Python with PyTorch, and ${python} does not exist`, { hint: `install Debian's packages: apt-get install -y python3 ${PACKAGES.map((p) => p[1]).join(' ')}` });
  }
  // find_spec locates a package without importing it (importing torch takes seconds on a busy machine).
  const probe = `import importlib.util, json\nprint(json.dumps([m for m in ${JSON.stringify(PACKAGES.map((p) => p[0]))} if importlib.util.find_spec(m) is None]))`;
  const r = spawnSync(python, ['-c', probe], { encoding: 'utf8', timeout: 120_000 });
  let missing: string[];
  try {
    missing = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as string[];
  } catch {
    throw new MedmaskError('ENVIRONMENT', `fine-tuning needs Python with PyTorch, and ${python} could not be probed (${(r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').pop()})`, { hint: `apt-get install -y ${PACKAGES.map((p) => p[1]).join(' ')}` });
  }
  if (missing.length) {
    const pkgs = PACKAGES.filter((p) => missing.includes(p[0])).map((p) => p[1]);
    throw new MedmaskError('ENVIRONMENT', `fine-tuning needs ${pkgs.join(', ')}: ${python} cannot import ${missing.join(', ')}`, { hint: `install them: apt-get install -y ${pkgs.join(' ')} (or run fine-tune jobs on a worker that has them)` });
  }
}

/** A file of float32 little-endian values (the trainer's reference.bin). */
export function readFloats(path: string): Float32Array {
  const buf = readFileSync(path);
  const out = new Float32Array(buf.byteLength / 4);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(i * 4, true);
  return out;
}

/**
 * The export check of tools/train/build_zoo.py: load the folder as `atlas predict` does (manifest
 * checks), run model.onnx on the input torch saw (reference.bin) and compare with torch's logits.
 * @returns the largest absolute difference and the tolerance 1e-3 · max(1, max |logit|)
 * @throws MedmaskError MODEL_INVALID when the export differs from torch beyond the tolerance
 */
export async function checkExport(modelDir: string, reference: string): Promise<{ maxAbsDiff: number; tolerance: number }> {
  await (await Segmenter.load(modelDir, { threads: 2 })).release();
  const shapes = JSON.parse(readFileSync(`${reference}.json`, 'utf8')) as { input: number[]; logits: number[] };
  const all = readFloats(reference);
  const nIn = shapes.input.reduce((a, b) => a * b, 1);
  const s = await ort.InferenceSession.create(join(modelDir, 'model.onnx'), { intraOpNumThreads: 2, interOpNumThreads: 1 });
  try {
    const out = await s.run({ input: new ort.Tensor('float32', all.slice(0, nIn), shapes.input) });
    const got = out[s.outputNames[0]!]!.data as Float32Array;
    const want = all.subarray(nIn);
    let maxAbsDiff = 0, maxAbs = 0;
    for (let i = 0; i < want.length; i++) {
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(got[i]! - want[i]!));
      maxAbs = Math.max(maxAbs, Math.abs(want[i]!));
    }
    const tolerance = 1e-3 * Math.max(1, maxAbs);
    if (!(maxAbsDiff <= tolerance)) throw new MedmaskError('MODEL_INVALID', `the fine-tuned model's ONNX export differs from torch by ${maxAbsDiff.toExponential(2)} (tolerance ${tolerance.toExponential(2)})`, { hint: 'the export is not used; report the trainer\'s output' });
    return { maxAbsDiff, tolerance };
  } finally {
    await s.release();
  }
}

/**
 * Trainer threads when none are given: 1 when the machine is shared (the 1-minute load average is
 * at least half the cores) or has at most 2 cores, else up to 4. Measured (docs/atlas.md): on 2
 * cores shared with other work, a second torch thread made each step wait for a descheduled
 * thread, 25–40× slower training than one thread.
 * @param cores - logical CPUs (default: this machine's)
 * @param load - 1-minute load average (default: this machine's)
 */
export function defaultTrainerThreads(cores = availableParallelism(), load = loadavg()[0] ?? 0): number {
  if (cores <= 2 || load >= cores / 2) return 1;
  return Math.min(4, cores);
}

/** The trainer, steps and label weights of a fine-tune, checked. */
function checkFinetuneOptions(opts: FinetuneOptions): { python: string; steps: number; lw: Record<'original' | 'revised' | 'pseudo', number> } {
  const python = opts.python ?? '/usr/bin/python3';
  if (opts.revisedShare !== undefined && !(opts.revisedShare >= 0 && opts.revisedShare <= 1)) throw new MedmaskError('USAGE', `revised share ${opts.revisedShare} must be from 0 to 1 (the share of training patches drawn from revised cases)`, { hint: 'e.g. 0.5, or leave it out to draw cases uniformly' });
  checkTrainer(python);
  const steps = opts.steps ?? 40;
  if (!Number.isInteger(steps) || steps < 0 || (steps > 0 && steps < 4)) throw new MedmaskError('USAGE', `${steps} fine-tune steps: give 0 (the parent as is) or at least 4 (the one-cycle schedule)`, { hint: 'e.g. --steps 40' });
  const lw = { original: 1, revised: 1, pseudo: 1, ...opts.labelWeights };
  for (const [k, v] of Object.entries(lw)) if (!(v >= 0 && v <= 10)) throw new MedmaskError('USAGE', `label weight ${k}=${v} must be from 0 to 10`);
  return { python, steps, lw };
}

/** One fine-tune of {@link finetuneSegmenters}. */
export interface FinetuneJob {
  /** The parent model folder (model.onnx, model.json, card.json naming its family). */
  parent: string;
  /** Training set (imagesTr / truthTr / dataset.json with provenance). */
  train: string;
  /** Held-out set (full labels, or merged labels with provenance). */
  heldout: string;
  /** The new model's folder (replaced). */
  out: string;
  /** The parent's metrics on this same held-out set when already known (the trainer then does not evaluate it again). */
  parentHeldout?: HeldoutMetrics;
}

interface TrainerLine { heldout: HeldoutMetrics; parent_heldout: HeldoutMetrics; train_seconds: number; steps: number; train_cases: string[]; heldout_cases: string[]; label_weights: Record<string, number> }

/**
 * Fine-tune several parents in **one** trainer process (`train3d.py --jobs`): torch is imported
 * once and a held-out folder shared by the jobs is read once (a loop round fine-tunes every model
 * of the ensemble on the same merged labels). Each child is export-checked and judged as in
 * {@link finetuneSegmenter}.
 * @param jobs - parents with their sets and output folders
 * @param opts - steps, learning rate, label weights, seed, threads (default {@link defaultTrainerThreads}), progress
 * @returns one result per job, in order
 * @throws MedmaskError USAGE (bad steps / weights), ENVIRONMENT (no torch), INTERNAL when the trainer fails
 * @example
 * const [a, b] = await finetuneSegmenters([{ parent: 'm/unet', train: 't', heldout: 'h', out: 'o/unet-ft' }, { parent: 'm/resunet', train: 't', heldout: 'h', out: 'o/resunet-ft' }], { steps: 20 });
 */
export async function finetuneSegmenters(jobs: FinetuneJob[], opts: FinetuneOptions = {}): Promise<FinetuneResult[]> {
  const { python, steps, lw } = checkFinetuneOptions(opts);
  if (!jobs.length) return [];
  const threads = opts.threads ?? defaultTrainerThreads();
  const specs = jobs.map((j) => ({
    init: j.parent, data: j.train, heldout: j.heldout, out: j.out, steps, seed: opts.seed ?? 0, threads, ...(j.parentHeldout ? { parent_heldout: j.parentHeldout } : {}),
    label_weights: Object.entries(lw).map(([k, v]) => `${k}=${v}`).join(','), ...(opts.lr !== undefined ? { lr: opts.lr } : {}),
    ...(opts.revisedShare !== undefined ? { revised_share: opts.revisedShare } : {}),
  }));
  await mkdir(dirname(jobs[0]!.out), { recursive: true });
  const jobsFile = join(dirname(jobs[0]!.out), `.trainer-jobs-${process.pid}-${Date.now()}.json`);
  await writeFile(jobsFile, JSON.stringify(specs, null, 1));
  let lines: TrainerLine[];
  try {
    const stdout = await runTrainer(python, [TRAINER, '--jobs', jobsFile], steps, jobs.length, opts, jobs.flatMap((j) => [[j.out, '<model>'], [j.train, '<train>'], [j.heldout, '<heldout>']] as [string, string][]));
    lines = stdout.trim().split('\n').filter((l) => l.startsWith('{"job"')).map((l) => JSON.parse(l) as TrainerLine);
  } finally {
    await rm(jobsFile, { force: true });
  }
  if (lines.length !== jobs.length) throw new MedmaskError('INTERNAL', `the trainer reported ${lines.length} of ${jobs.length} fine-tunes`, { hint: 'run tools/train/train3d.py --jobs by hand to see all of its output' });
  const out: FinetuneResult[] = [];
  for (const [i, r] of lines.entries()) out.push(await decide(jobs[i]!.out, r));
  return out;
}

/** Export check and accept rule for one trainer line. */
async function decide(out: string, r: TrainerLine): Promise<FinetuneResult> {
  const exportCheck = await checkExport(out, join(out, 'work', 'reference.bin'));
  const child = r.heldout.mean_dice, par = r.parent_heldout.mean_dice;
  const accepted = child >= par;
  return {
    modelDir: out,
    decision: accepted ? 'accepted' : 'rejected',
    reason: `held-out mean Dice ${child.toFixed(4)} ${accepted ? '≥' : '<'} parent ${par.toFixed(4)} on the same ${r.heldout.n} case(s)`,
    heldout: r.heldout,
    parentHeldout: r.parent_heldout,
    trainSeconds: r.train_seconds,
    steps: r.steps,
    trainCases: r.train_cases,
    heldoutCases: r.heldout_cases,
    labelWeights: r.label_weights,
    exportCheck,
  };
}

/** Run train3d.py, relay its step lines as progress (step counts summed over `jobs` fine-tunes), return its stdout. */
function runTrainer(python: string, argv: string[], steps: number, jobs: number, opts: FinetuneOptions, redact: [string, string][]): Promise<string> {
  return new Promise<string>((resolveP, reject) => {
    const child = spawn(python, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONUNBUFFERED: '1' } });
    let so = '', se = '', buf = '', job = 0, last = 0;
    const onAbort = () => child.kill('SIGTERM');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (d: Buffer) => (so += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      se += d.toString();
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = /step (\d+)\/(\d+)/.exec(line);
        if (m) {
          const s = Number(m[1]);
          if (s < last) job++;
          last = s;
          opts.onProgress?.(job * steps + s, jobs * steps, line);
        } else if (/held-out|warm start/.test(line)) opts.onProgress?.(job * steps + last, jobs * steps, line);
      }
    });
    child.on('error', (e) => reject(new MedmaskError('ENVIRONMENT', `cannot start ${python}: ${e.message}`, { cause: e })));
    child.on('close', (code, sig) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (opts.signal?.aborted) return reject(new Error('fine-tune aborted'));
      if (code === 0) return resolveP(so);
      let tail = se.trim().split('\n').slice(-3).join(' | ');
      for (const [path, name] of redact) tail = tail.replaceAll(path, name);
      reject(new MedmaskError('INTERNAL', `the trainer failed (${sig ?? `exit ${code}`}): ${tail}`, { hint: 'run tools/train/train3d.py by hand with the same options to see all of its output' }));
    });
  });
}

/**
 * Fine-tune `parent` (a model folder with model.onnx, model.json and card.json naming its family)
 * on `train` (imagesTr / truthTr / dataset.json with provenance, as {@link atlasFinetuneHook}
 * writes), evaluate parent and child on `heldout`, export, check, decide.
 * @param out - the new model's folder (replaced)
 * @returns the decision with both models' held-out metrics
 * @throws MedmaskError ENVIRONMENT (no torch), INTERNAL when the trainer fails (its last lines)
 * @example
 * const r = await finetuneSegmenter('models/demo/demo-unet3d', 'ft/train', 'ft/heldout', 'ft/unet-v2', { steps: 40 });
 * r.decision; // 'accepted' when r.heldout.mean_dice >= r.parentHeldout.mean_dice
 */
export async function finetuneSegmenter(parent: string, train: string, heldout: string, out: string, opts: FinetuneOptions = {}): Promise<FinetuneResult> {
  // One job of the batch form: the same trainer entry (train3d.py --jobs → finetune_job), export check and accept rule.
  return (await finetuneSegmenters([{ parent, train, heldout, out }], opts))[0]!;
}
