/**
 * The fine-tune hook of an AbdomenAtlas-8K round (Qu et al., NeurIPS 2023: "revised labels
 * fine-tune the models; repeat"): the merged labels of `atlas merge` (original > revised > pseudo)
 * exported in the layout `tools/train/train3d.py` reads, plus the exact trainer command and the
 * command that re-predicts with the new model. Nothing here trains: training is PyTorch, outside
 * the run path (tools/train/README.md).
 *
 * ```
 * OUT/train/imagesTr/<case>_0000.nii.gz, truthTr/<case>.nii.gz (= labelsTr/), dataset.json
 * OUT/heldout/…                         same layout: the cases the trainer evaluates on
 * OUT/<model>-ft/model.json             manifest for the trained model.onnx (the source model's, renamed)
 * OUT/finetune.json                     cases, command, next step
 * ```
 * @module
 */
import { existsSync, statSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm } from 'node:fs/promises';
import { extname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MedmaskError } from '../core/errors.js';
import { Rng } from '../core/random.js';
import { ABDOMEN_LABELS } from '../core/phantom/abdomen.js';
import type { Provenance } from '../core/atlas/merge.js';
import { atomicWrite } from '../io/atomic.js';
import { checkLabelMap } from '../io/dataset.js';
import { readVolume, writeVolume } from '../io/index.js';
import { findManifest, readManifest } from '../runtime/manifest.js';
import { readAtlasDataset, type AtlasCase } from './atlas.js';
import { checkTrainer, finetuneSegmenter, type FinetuneOptions, type FinetuneResult } from './atlas-train.js';

/** Options for {@link atlasFinetuneHook}. */
export interface FinetuneHookOptions {
  /** Model to fine-tune: its manifest is reused and its card.json gives the recipe (family, steps, augmentation, seed, widths). */
  model?: string;
  /** Architecture family when no model card says it (default unet). */
  family?: 'unet' | 'resunet' | 'segresnet';
  /** Training cases: every merged case (default) or only those with a revised organ. */
  only?: 'all' | 'revised';
  /** An existing held-out set (imagesTr + truthTr + dataset.json); default: a seeded share of the cases. */
  heldout?: string;
  /**
   * An training set already written by this hook for the same merged labels, cases and held-out
   * set (the loop's other models of a round): used as is instead of writing another copy.
   */
  train?: string;
  /** Share of the cases held out when no held-out set is given (default 0.2, at least 1 case). */
  heldoutFraction?: number;
  /** Seed of the held-out split (default 1). */
  seed?: number;
  /** Training steps (default: the model card's, else 500). */
  steps?: number;
  /** Threads of the trainer (default 2). */
  threads?: number;
  /** Python with torch (default /usr/bin/python3, Debian's: tools/train/README.md). */
  python?: string;
  cases?: string[];
}

/** What {@link atlasFinetuneHook} wrote and the commands to run next. */
export interface FinetuneHookResult {
  train: string;
  heldout: string;
  modelDir: string;
  cases: { train: string[]; heldout: string[] };
  family: string;
  /** The trainer command as argv, and as one shell line. */
  argv: string[];
  command: string;
  /** Re-predict with the trained model (a new atlas round). */
  next: string;
  notes: string[];
}

interface Card {
  architecture?: { family?: string; options?: Record<string, unknown> };
  training?: { seed?: number; steps?: number; augmentation?: string };
}

const FAMILIES = ['unet', 'resunet', 'segresnet'] as const;
const q = (s: string) => (/^[A-Za-z0-9_./:=,+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
const shown = (p: string) => {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith('..') && !isAbsolute(r) ? r : p;
};

/**
 * Export merged labels for `tools/train/train3d.py` and print how to fine-tune and re-predict.
 * @param data - the data set (images, dataset.json)
 * @param merged - output folder of `atlas merge` (labelsTr/, provenance.json)
 * @param out - hook folder (train/, heldout/, model/ are replaced)
 * @param opts - model to fine-tune, case choice, held-out set, steps
 * @returns folders, cases and commands
 * @throws MedmaskError DATASET_INVALID when the data set's organs are not the trainer's 9 (values
 *   1…9); NOT_FOUND for missing merged labels; USAGE when no case is left to train on
 * @example
 * const r = await atlasFinetuneHook('data/abdomen', 'round-1', 'finetune', { model: 'models/demo/demo-unet3d' });
 * console.log(r.command); // /usr/bin/python3 tools/train/train3d.py --family unet …
 */
export async function atlasFinetuneHook(data: string, merged: string, out: string, opts: FinetuneHookOptions = {}): Promise<FinetuneHookResult> {
  const atlas = await readAtlasDataset(data, opts.cases);
  const want = Object.entries(ABDOMEN_LABELS).map(([v, n]) => `${v}=${n}`).join(' ');
  const have = atlas.organs.map((o) => `${o.value}=${o.name}`).join(' ');
  if (want !== have) {
    throw new MedmaskError('DATASET_INVALID', `tools/train/train3d.py trains the 9 AbdomenAtlas organs as ${want}; this data set has ${have}`, {
      hint: 'relabel the data set to those values, or train another trainer on the nnU-Net export (medmask atlas export --format nnunet)',
    });
  }
  const provPath = join(merged, 'provenance.json');
  if (!existsSync(provPath)) throw new MedmaskError('NOT_FOUND', `${provPath}: no merge provenance`, { hint: 'run medmask atlas merge (or atlas run) first' });
  const prov = new Map((JSON.parse(await readFile(provPath, 'utf8')) as { cases: { case: string; provenance: Record<string, Provenance> }[] }).cases.map((c) => [c.case, c.provenance]));
  const missing = atlas.cases.filter((c) => !prov.has(c.id) || !existsSync(join(merged, 'labelsTr', `${c.id}.nii.gz`))).map((c) => c.id);
  if (missing.length) throw new MedmaskError('NOT_FOUND', `${merged}: no merged labels for case(s) ${missing.slice(0, 10).join(', ')}`, { hint: 'merge those cases first, or pass --cases' });

  let pool: AtlasCase[] = atlas.cases;
  if (opts.only === 'revised') pool = pool.filter((c) => Object.values(prov.get(c.id)!).includes('revised'));
  if (!pool.length) throw new MedmaskError('USAGE', `no case has a revised organ in ${provPath}`, { hint: 'merge with --revised first, or export every merged case (leave out --only-revised)' });

  // Recipe: the model card's, else defaults.
  let card: Card = {};
  let manifestPath: string | undefined;
  if (opts.model) {
    if (!existsSync(opts.model)) throw new MedmaskError('NOT_FOUND', `model ${opts.model} does not exist`, { hint: 'give a model folder, its model.json or its .onnx file' });
    manifestPath = statSync(opts.model).isDirectory() ? join(opts.model, 'model.json') : extname(opts.model).toLowerCase() === '.json' ? opts.model : await findManifest(opts.model);
    if (!manifestPath || !existsSync(manifestPath)) throw new MedmaskError('MODEL_INVALID', `${opts.model}: no manifest beside the model`, { hint: 'a segmenter needs model.json (docs/model-manifest.md)' });
    const m = await readManifest(manifestPath);
    if (m.task !== 'segment') throw new MedmaskError('MODEL_INVALID', `${manifestPath}: task is "${m.task}", not "segment"`, { hint: 'fine-tune a 3D segmenter' });
    const cardPath = join(manifestPath, '..', 'card.json');
    if (existsSync(cardPath)) card = JSON.parse(await readFile(cardPath, 'utf8')) as Card;
  }
  const family = opts.family ?? (card.architecture?.family as FinetuneHookOptions['family']) ?? 'unet';
  if (!FAMILIES.includes(family)) throw new MedmaskError('USAGE', `family "${family}" is not one train3d.py builds`, { hint: `choose from ${FAMILIES.join(', ')}` });
  const steps = opts.steps ?? card.training?.steps ?? 500;
  if (!Number.isInteger(steps) || steps < 4) throw new MedmaskError('USAGE', `${steps} training steps: train3d.py's one-cycle schedule needs at least 4`, { hint: 'pass --steps 4 or more (the demo models used 500–700)' });
  const seed = card.training?.seed ?? 0;
  const aug = card.training?.augmentation ?? 'none';
  const modelKw = card.architecture?.options ?? {};
  const threads = opts.threads ?? 2;

  // Held-out split.
  let trainCases = pool;
  let heldoutCases: AtlasCase[] = [];
  const notes: string[] = [];
  const root = resolve(out);
  let trainDir = join(root, 'train');
  let heldoutDir = join(root, 'heldout');
  if (opts.heldout) {
    heldoutDir = resolve(opts.heldout);
    if (!existsSync(join(heldoutDir, 'truthTr')) || !existsSync(join(heldoutDir, 'imagesTr'))) {
      throw new MedmaskError('NOT_FOUND', `${opts.heldout}: a held-out set needs imagesTr/ and truthTr/ (full labels)`, { hint: 'pass a set written by this hook or by medmask phantoms 3d' });
    }
  } else if (pool.length >= 2) {
    const k = Math.max(1, Math.round((opts.heldoutFraction ?? 0.2) * pool.length));
    // Held out from the cases nobody revised where there are enough: a revised case is the round's
    // most valuable training case (the models' worst errors, corrected), and a held-out organ is
    // scored only against an original or revised label anyway (train3d.py).
    const revised = (c: AtlasCase) => Object.values(prov.get(c.id)!).includes('revised');
    const order = new Rng(opts.seed ?? 1).fork('finetune-heldout').shuffle([...pool]);
    const unrevised = order.filter((c) => !revised(c));
    const held = new Set((unrevised.length > k ? unrevised : order).slice(0, k).map((c) => c.id));
    heldoutCases = pool.filter((c) => held.has(c.id));
    trainCases = pool.filter((c) => !held.has(c.id));
  } else {
    heldoutCases = pool;
    notes.push('only one case: it is also the held-out case, so the held-out Dice measures fit, not generalisation');
  }

  const write = async (dir: string, cases: AtlasCase[]) => {
    await rm(dir, { recursive: true, force: true });
    for (const sub of ['imagesTr', 'truthTr', 'labelsTr']) await mkdir(join(dir, sub), { recursive: true });
    for (const c of cases) {
      const image = await readVolume(c.image);
      const lab = await readVolume(join(merged, 'labelsTr', `${c.id}.nii.gz`));
      checkLabelMap(image, lab, [0, ...atlas.organs.map((o) => o.value)], { image: c.image, label: join(merged, 'labelsTr', `${c.id}.nii.gz`) });
      const dest = join(dir, 'imagesTr', `${c.id}_0000.nii.gz`);
      if (c.image.endsWith('.nii.gz')) await copyFile(c.image, dest);
      else await writeVolume(image, dest);
      const onGrid = { ...lab, spacing: image.spacing, origin: image.origin, direction: image.direction };
      for (const sub of ['truthTr', 'labelsTr']) await writeVolume(onGrid, join(dir, sub, `${c.id}.nii.gz`), { labelMap: true });
    }
    const json = {
      name: 'medmask-atlas-finetune',
      description: 'Merged AbdomenAtlas labels (original > revised > pseudo) for tools/train/train3d.py; truthTr = labelsTr = the merged labels.',
      channel_names: { 0: 'CT' },
      labels: { background: 0, ...Object.fromEntries(atlas.organs.map((o) => [o.name, o.value])) },
      numTraining: cases.length,
      file_ending: '.nii.gz',
      medmask: { generator: 'medmask atlas finetune-hook', cases: cases.map((c) => ({ case: c.id, source: c.source, labelled: atlas.organs.map((o) => o.name), provenance: prov.get(c.id) })) },
    };
    await atomicWrite(join(dir, 'dataset.json'), JSON.stringify(json, null, 1) + '\n');
  };
  if (opts.train) trainDir = resolve(opts.train);
  else await write(trainDir, trainCases);
  if (!opts.heldout) await write(heldoutDir, heldoutCases);

  // The manifest of the model to come: the source's, renamed (same patch, spacing, window, labels).
  const base = manifestPath ? (JSON.parse(await readFile(manifestPath, 'utf8')) as Record<string, unknown>) : {
    format: 'medmask-model/1', task: 'segment', model: 'model.onnx',
    input: { name: 'input', layout: 'NCDHW', patch: [64, 64, 32], channels: 1 }, spacing: [4, 4, 6],
    preprocess: { intensity: { mode: 'ct-window', center: 40, width: 400 } },
    output: { name: 'logits', activation: 'softmax' },
    labels: Object.fromEntries(atlas.organs.map((o) => [String(o.value), o.name])),
  };
  const name = `${String(base.name ?? `atlas-${family}`)}-ft`.replace(/[^A-Za-z0-9._-]+/g, '-');
  // Named after the model, so its predictions get their own folder under WORK/predictions.
  const modelDir = join(root, name);
  await rm(modelDir, { recursive: true, force: true });
  await mkdir(modelDir, { recursive: true });
  await atomicWrite(join(modelDir, 'model.json'), JSON.stringify({ ...base, name, model: 'model.onnx' }, null, 1) + '\n');
  notes.push(manifestPath ? 'the printed command retrains from random weights with the model\'s recipe; medmask atlas finetune warm-starts from the model\'s weights instead (train3d.py --init)' : 'no --model: training starts from random weights');

  const python = opts.python ?? '/usr/bin/python3';
  const script = fileURLToPath(new URL('../../tools/train/train3d.py', import.meta.url));
  const trainDirShown = shown(trainDir), heldShown = shown(heldoutDir), modelShown = shown(modelDir);
  let argv: string[];
  if (Object.keys(modelKw).length) {
    // The trainer's CLI builds the family's default widths; the card's options need its Python API.
    const py = [
      'import sys, json',
      `sys.path.insert(0, ${JSON.stringify(shown(join(script, '..')))})`,
      'from train3d import train_segmenter',
      `r = train_segmenter(${JSON.stringify(family)}, ${JSON.stringify(trainDirShown)}, ${JSON.stringify(heldShown)}, ${JSON.stringify(modelShown)}, ${JSON.stringify(join(modelShown, 'work'))}, seed=${seed}, steps=${steps}, aug=${JSON.stringify(aug)}, model_kw=json.loads(${JSON.stringify(JSON.stringify(modelKw))}), threads=${threads})`,
      'print(json.dumps(r["heldout"]))',
    ].join('; ');
    argv = [python, '-c', py];
  } else {
    argv = [python, shown(script), '--family', family, '--data', trainDirShown, '--heldout', heldShown, '--out', modelShown, '--steps', String(steps), '--aug', aug, '--seed', String(seed), '--threads', String(threads)];
  }
  const command = argv.map(q).join(' ');
  const next = `medmask atlas run --data ${q(data)} --model ${q(modelShown)}${opts.model ? ` --model ${q(opts.model)}` : ''} --work WORK_NEXT --out ROUND_NEXT`;
  const result: FinetuneHookResult = { train: trainDir, heldout: heldoutDir, modelDir, cases: { train: trainCases.map((c) => c.id), heldout: opts.heldout ? [] : heldoutCases.map((c) => c.id) }, family, argv, command, next, notes };
  await atomicWrite(join(root, 'finetune.json'), JSON.stringify(result, null, 1) + '\n');
  return result;
}

/** Options for {@link atlasFinetune}. */
export interface AtlasFinetuneOptions extends Omit<FinetuneHookOptions, 'model' | 'steps' | 'family'>, Omit<FinetuneOptions, 'python' | 'threads'> {
  /** The model folder to fine-tune (model.onnx, model.json, card.json naming its family). */
  model: string;
}

/** What {@link atlasFinetune} returns: the exported sets and the trainer's decision. */
export interface AtlasFinetuneResult extends FinetuneResult {
  hook: FinetuneHookResult;
}

/**
 * One fine-tune of the loop, end to end: export the merged labels with a held-out split
 * ({@link atlasFinetuneHook}), then warm-start `model` from its ONNX weights and train on them
 * (`tools/train/train3d.py --init`, {@link finetuneSegmenter}); the new model lands in
 * OUT/<name>-ft/ and is **accepted** when its held-out mean Dice is not below the parent's on the
 * same cases, else **rejected** (kept, with its metrics).
 * @throws MedmaskError ENVIRONMENT without PyTorch (naming the Debian package), and the hook's errors
 * @example
 * const r = await atlasFinetune('data/abdomen', 'round-1', 'ft', { model: 'models/demo/demo-unet3d', steps: 40 });
 * r.decision; // 'accepted' | 'rejected'
 */
export async function atlasFinetune(data: string, merged: string, out: string, opts: AtlasFinetuneOptions & { python?: string; threads?: number }): Promise<AtlasFinetuneResult> {
  checkTrainer(opts.python);
  const { steps, lr, labelWeights, onProgress, signal, seed, ...hookOpts } = opts;
  // The hook's steps only shape the command it prints (a retraining from random weights); keep them valid.
  const hook = await atlasFinetuneHook(data, merged, out, { ...hookOpts, steps: Math.max(4, steps ?? 40), ...(seed !== undefined ? { seed } : {}) });
  const r = await finetuneSegmenter(resolve(opts.model), hook.train, hook.heldout, hook.modelDir, {
    ...(steps !== undefined ? { steps } : {}), ...(lr !== undefined ? { lr } : {}), ...(labelWeights ? { labelWeights } : {}),
    ...(onProgress ? { onProgress } : {}), ...(signal ? { signal } : {}), ...(seed !== undefined ? { seed } : {}),
    ...(opts.python ? { python: opts.python } : {}), ...(opts.threads ? { threads: opts.threads } : {}),
  });
  const result: AtlasFinetuneResult = { ...r, hook };
  await atomicWrite(join(resolve(out), 'finetune-result.json'), JSON.stringify(result, null, 1) + '\n');
  return result;
}
