import type { Command } from 'commander';
import { MedmaskError } from '../core/errors.js';
import { trainHead, type TrainHeadResult } from '../pipeline/train-head.js';
import { withTrainingProgress } from './train-progress.js';

interface Flags {
  backbone: string;
  images?: string;
  labels: string;
  labelColumn?: string;
  imageColumn?: string;
  classes?: string;
  target?: string;
  hidden: string;
  dropout: string;
  epochs: string;
  lr: string;
  weightDecay: string;
  val: string;
  splitColumn?: string;
  patience: string;
  seed: string;
  batch: string;
  classWeights: string;
  out: string;
  cache?: string;
  name?: string;
  threads?: string;
  device: string;
  extractOnly?: boolean;
  json?: boolean;
}

function number(flag: string, v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new MedmaskError('USAGE', `--${flag} "${v}" is not a number`);
  return n;
}

function print(r: TrainHeadResult, out: (l: string) => void): void {
  const e = r.extraction;
  out(`features   ${e.images} images × ${r.featureDim} (${e.cached} from the cache, ${e.extracted} extracted${e.imagesPerSecond ? `, ${e.imagesPerSecond.toFixed(1)} images/s` : ''})`);
  out(`           cache ${e.cacheDir}`);
  if (!r.training) return;
  const t = r.training;
  out(`training   ${t.epochsRun} epochs in ${t.seconds.toFixed(2)} s, kept epoch ${t.bestEpoch}${t.stoppedEarly ? ' (early stopping)' : ''}`);
  const v = t.validation;
  if (v) {
    out(`validation ${v.images} images: accuracy ${(100 * v.accuracy).toFixed(1)} %, balanced ${(100 * v.balancedAccuracy).toFixed(1)} %, AUROC ${v.auroc === null ? 'n/a' : v.auroc.toFixed(3)}`);
  }
  for (const w of r.warnings) out(`warning    ${w}`);
  if (r.files) for (const f of Object.values(r.files)) out(`wrote      ${f}`);
}

/**
 * Register `medmask train-head`: train a new classifier head on a frozen ONNX backbone.
 * @param program - the root command
 * @example
 * registerTrainHead(program); // in src/cli/main.ts
 */
export function registerTrainHead(program: Command): void {
  program
    .command('train-head')
    .description('train a new classifier head (pooling → dropout → linear) on a frozen ONNX backbone; writes model.onnx, model.json, card.md, loss.png')
    .requiredOption('--backbone <model>', 'backbone .onnx (a manifest beside it gives input size and preprocessing), its manifest, or their folder')
    .requiredOption('--labels <csv>', 'CSV with an image column and a label column')
    .requiredOption('--out <dir>', 'output folder')
    .option('--images <dir>', 'folder the CSV image paths are relative to (default: the CSV folder)')
    .option('--label-column <name>', 'label column (default: label, class, diagnosis or target)')
    .option('--image-column <name>', 'image column (default: image, file, filename, path or id)')
    .option('--classes <list>', 'comma-separated class names in output order (default: the labels, sorted)')
    .option('--target <tensor>', 'CAM target tensor (default: the manifest\'s cam.target, else the last activation feeding the global pooling)')
    .option('--hidden <n>', 'hidden units (0 = no hidden layer)', '0')
    .option('--dropout <rate>', 'dropout rate before each linear layer', '0.3')
    .option('--epochs <n>', 'maximum epochs', '100')
    .option('--lr <rate>', 'Adam learning rate', '1e-3')
    .option('--weight-decay <l>', 'L2 weight decay', '1e-4')
    .option('--val <fraction>', 'validation share of each class', '0.2')
    .option('--split-column <name>', 'CSV column of train / val / test (default: "split" when present; none = ignore it and split by --val)')
    .option('--patience <n>', 'epochs without a better validation loss before stopping (0 = never)', '10')
    .option('--seed <n>', 'seed of split, initialisation, shuffling and dropout', '0')
    .option('--batch <n>', 'mini-batch size', '32')
    .option('--class-weights <mode>', 'balanced or none', 'balanced')
    .option('--cache <dir>', 'feature cache folder (default: OUT/cache)')
    .option('--name <name>', 'model name in the manifest (default: the output folder name)')
    .option('--threads <n>', 'onnxruntime threads')
    .option('--device <device>', 'cpu or cuda', 'cpu')
    .option('--extract-only', 'only extract and cache the features')
    .option('--json', 'print the result as JSON')
    .action(async (f: Flags) => {
      if (f.classWeights !== 'balanced' && f.classWeights !== 'none') {
        throw new MedmaskError('USAGE', `--class-weights "${f.classWeights}" must be balanced or none`);
      }
      if (f.device !== 'cpu' && f.device !== 'cuda') throw new MedmaskError('USAGE', `--device "${f.device}" must be cpu or cuda`);
      const device = f.device;
      const classWeights = f.classWeights;
      const r = await withTrainingProgress('train-head', 'features', !!f.json, (signal, onProgress) =>
        trainHead({
          backbone: f.backbone,
          labels: f.labels,
          out: f.out,
          ...(f.images ? { images: f.images } : {}),
          ...(f.labelColumn ? { labelColumn: f.labelColumn } : {}),
          ...(f.imageColumn ? { imageColumn: f.imageColumn } : {}),
          ...(f.classes ? { classes: f.classes.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
          ...(f.target ? { target: f.target } : {}),
          hidden: number('hidden', f.hidden),
          dropout: number('dropout', f.dropout),
          epochs: number('epochs', f.epochs),
          lr: number('lr', f.lr),
          weightDecay: number('weight-decay', f.weightDecay),
          val: number('val', f.val),
          ...(f.splitColumn ? { splitColumn: f.splitColumn === 'none' ? (false as const) : f.splitColumn } : {}),
          patience: number('patience', f.patience),
          seed: number('seed', f.seed),
          batch: number('batch', f.batch),
          classWeights,
          ...(f.cache ? { cache: f.cache } : {}),
          ...(f.name ? { name: f.name } : {}),
          ...(f.threads ? { threads: number('threads', f.threads) } : {}),
          device,
          extractOnly: !!f.extractOnly,
          signal,
          onProgress,
        }),
      );
      if (f.json) process.stdout.write(JSON.stringify(r, (k, v: unknown) => (k === 'head' ? undefined : v), 2) + '\n');
      else print(r, (l) => process.stdout.write(l + '\n'));
    });
}
