import { existsSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';
import type { Command } from 'commander';
import { MedmaskError } from '../core/errors.js';
import { trainMaskHead, type MaskPair, type TrainMaskHeadResult } from '../pipeline/train-mask-head.js';
import { withTrainingProgress } from './train-progress.js';

interface Flags {
  model: string;
  images: string;
  masks: string;
  roi?: string;
  out: string;
  pixels: string;
  dropout: string;
  layers: string;
  epochs: string;
  lr: string;
  weightDecay: string;
  val: string;
  patience: string;
  batch: string;
  seed: string;
  cache?: string;
  threads?: string;
  device: string;
  json?: boolean;
}

const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg', '.tif', '.tiff', '.nii', '.gz', '.nrrd', '.mha', '.dcm']);

function number(flag: string, v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new MedmaskError('USAGE', `--${flag} "${v}" is not a number`);
  return n;
}

/** Files under a folder, by path relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of (await readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (IMAGE_EXT.has(extname(e.name).toLowerCase())) out.push(relative(dir, p));
    }
  };
  await walk(dir);
  return out;
}

/**
 * Pair each mask under `masks` with the image of the same relative path under `images` (and
 * the ROI mask under `roi`): the reviewed images are the ones that have a mask.
 * @param images - image folder
 * @param masks - mask folder (same relative paths)
 * @param roi - optional ROI folder (same relative paths)
 * @returns the pairs
 * @throws MedmaskError NOT_FOUND naming a folder, a mask without its image or a missing ROI
 */
export async function pairFolders(images: string, masks: string, roi?: string): Promise<MaskPair[]> {
  for (const [flag, d] of [['--images', images], ['--masks', masks], ...(roi ? [['--roi', roi]] : [])] as const) {
    if (!existsSync(d) || !statSync(d).isDirectory()) throw new MedmaskError('NOT_FOUND', `${flag} ${d} is not a folder`, { hint: `pass the folder of ${flag.slice(2)} with ${flag}` });
  }
  const rels = await filesUnder(masks);
  if (!rels.length) throw new MedmaskError('NOT_FOUND', `${masks}: no mask images`, { hint: 'the masks folder holds one mask per reviewed image, named as the image' });
  return rels.map((rel) => {
    const image = join(images, rel);
    if (!existsSync(image)) throw new MedmaskError('NOT_FOUND', `mask ${join(masks, rel)} has no image ${image}`, { hint: 'masks must have the relative path of their image under --images' });
    const r = roi ? join(roi, rel) : undefined;
    if (r && !existsSync(r)) throw new MedmaskError('NOT_FOUND', `image ${image} has no ROI mask ${r}`, { hint: 'give every reviewed image its ROI mask, or leave out --roi' });
    return { image, mask: join(masks, rel), ...(r ? { roi: r } : {}) };
  });
}

function print(r: TrainMaskHeadResult, out: (l: string) => void): void {
  out(`data       ${r.images} reviewed masks (${r.lesionImages} with lesions): ${r.pixels.lesion} lesion and ${r.pixels.background} background pixels; ${r.extraction.cached} activations from the cache, ${r.extraction.extracted} extracted`);
  const t = r.training;
  out(`training   ${t.epochsRun} epochs in ${t.seconds.toFixed(2)} s, kept epoch ${t.bestEpoch}${t.valLoss !== null ? `, validation loss ${t.valLoss.toFixed(3)}, pixel accuracy ${(100 * (t.valAccuracy ?? 0)).toFixed(1)} %` : ''}`);
  if (r.selfCheck) out(`check      written ONNX vs TypeScript head: max |Δ logit| ${r.selfCheck.maxAbsDiff.toExponential(2)}`);
  if (r.files) for (const f of Object.values(r.files)) out(`wrote      ${f}`);
}

/**
 * Register `medmask train-mask-head`: a per-pixel lesion head on a classifier's frozen CAM target
 * activation, trained from reviewed masks.
 * @param program - the root command
 * @example
 * registerTrainMaskHead(program); // in src/cli/main.ts
 */
export function registerTrainMaskHead(program: Command): void {
  program
    .command('train-mask-head')
    .description('train a per-pixel lesion head on a classifier\'s frozen CAM target activation from reviewed masks; annotate --mask-heads fuses it with the CAMs')
    .requiredOption('--model <model>', 'the classifier (.onnx, model.json or folder)')
    .requiredOption('--images <dir>', 'image folder')
    .requiredOption('--masks <dir>', 'reviewed masks, named as their images (relative paths under --images); only images with a mask are used')
    .requiredOption('--out <dir>', 'output folder (mask-head.json, mask-head.onnx, card.md, card.json, loss.png)')
    .option('--roi <dir>', 'ROI masks (e.g. lungs) named as the images: background pixels are drawn inside them')
    .option('--pixels <n>', 'lesion and background pixels sampled per image, each', '256')
    .option('--layers <auto|none|TENSOR,…>', 'hypercolumn: earlier layers read beside the CAM target (auto: the last layer twice as fine; none: the target alone)', 'auto')
    .option('--dropout <rate>', 'dropout on the standardised activation (MC Dropout in annotate)', '0.3')
    .option('--epochs <n>', 'maximum epochs', '40')
    .option('--lr <rate>', 'Adam learning rate', '3e-3')
    .option('--weight-decay <l>', 'L2 weight decay', '1e-3')
    .option('--val <fraction>', 'share of images kept for validation / early stopping', '0.2')
    .option('--patience <n>', 'epochs without a better validation loss before stopping (0 = never)', '5')
    .option('--batch <n>', 'mini-batch size (pixels)', '256')
    .option('--seed <n>', 'seed of sampling, split, initialisation, shuffling and dropout', '0')
    .option('--cache <dir>', 'activation cache folder (default: OUT/cache)')
    .option('--threads <n>', 'onnxruntime threads')
    .option('--device <device>', 'cpu or cuda', 'cpu')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExample:\n  medmask train-mask-head --model models/demo/demo-resnet --images data/chest/images \\\n    --masks reviewed/masks --roi data/chest/lungs --out heads/resnet')
    .action(async (f: Flags) => {
      if (f.device !== 'cpu' && f.device !== 'cuda') throw new MedmaskError('USAGE', `--device "${f.device}" must be cpu or cuda`);
      const device = f.device;
      const pairs = await pairFolders(f.images, f.masks, f.roi);
      const r = await withTrainingProgress('train-mask-head', 'activations', !!f.json, (signal, onProgress) =>
        trainMaskHead({
          model: f.model, pairs, out: f.out,
          layers: f.layers === 'auto' || f.layers === 'none' ? f.layers : f.layers.split(',').map((s) => s.trim()).filter(Boolean),
          perClass: number('pixels', f.pixels), dropout: number('dropout', f.dropout), epochs: number('epochs', f.epochs), lr: number('lr', f.lr),
          weightDecay: number('weight-decay', f.weightDecay), val: number('val', f.val), patience: number('patience', f.patience),
          batch: number('batch', f.batch), seed: number('seed', f.seed),
          ...(f.cache ? { cache: f.cache } : {}), ...(f.threads ? { threads: number('threads', f.threads) } : {}), device,
          signal,
          onProgress,
        }),
      );
      if (f.json) process.stdout.write(JSON.stringify({ ...r, training: { ...r.training, history: undefined } }, null, 2) + '\n');
      else print(r, (l) => process.stdout.write(l + '\n'));
    });
}
