import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { MedmaskError } from '../core/errors.js';
import { parseMaskPipeline, type MaskPipeline } from '../core/masks/pipeline.js';
import { DEFAULT_MASK_HEAD_FUSION, defaultMaskHeadWeight, MASK_HEAD_FUSIONS, type MaskHeadFusion } from '../core/train/mask-head.js';
import { annotate, collectItems, DEFAULT_MASK_HEAD_WEIGHT, DEFAULT_THRESHOLDS, type DecisionThresholds } from '../pipeline/annotate.js';
import { writeReport } from '../pipeline/report.js';
import { numberOption, startProgress } from './output.js';

/** Read a mask pipeline file (JSON or YAML). */
export async function readPipelineFile(path: string): Promise<MaskPipeline> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new MedmaskError('NOT_FOUND', `cannot read the pipeline file ${path}`, { cause: e, hint: 'check the path given with --pipeline' });
  }
  let raw: unknown;
  try {
    raw = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new MedmaskError('USAGE', `${path}: not valid ${/\.json$/i.test(path) ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`, { hint: 'see docs/annotate.md for the format' });
  }
  return parseMaskPipeline(raw, path);
}

const REVIEW_KEYS: Record<string, keyof DecisionThresholds> = { entropy: 'entropy', mi: 'mi', 'mask-score': 'maskScore', outside: 'outside' };

/**
 * The decision thresholds of --review, e.g. `entropy=0.7,outside=0.9` (unnamed ones keep their
 * defaults).
 * @throws MedmaskError USAGE naming the bad entry
 */
export function reviewThresholds(v: string): Partial<DecisionThresholds> {
  const out: Partial<DecisionThresholds> = {};
  const keys = Object.keys(REVIEW_KEYS).join(', ');
  for (const part of v.split(',').map((x) => x.trim()).filter(Boolean)) {
    const [k = '', val, extra] = part.split('=').map((x) => x.trim());
    const key = REVIEW_KEYS[k];
    if (!key) throw new MedmaskError('USAGE', `--review: unknown threshold "${k}"`, { hint: `use ${keys}, e.g. --review entropy=0.7,outside=0.9` });
    const x = Number(val);
    if (val === undefined || val === '' || extra !== undefined || !Number.isFinite(x) || x < 0) {
      throw new MedmaskError('USAGE', `--review: ${k} needs a number ≥ 0, got "${val ?? ''}"`, { hint: `e.g. --review ${k}=${DEFAULT_THRESHOLDS[key]}` });
    }
    out[key] = x;
  }
  return out;
}

/** The model list of --models (comma-separated, or repeated). */
export function modelList(v: string | string[]): string[] {
  return (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
}

interface Opts {
  models: string[]; images: string; labels?: string; labelColumn?: string; split?: string; roiColumn?: string; out: string; pipeline?: string;
  mc?: string; seed?: string; ood?: string; review?: string; device?: 'cpu' | 'cuda'; threads?: string; fresh?: boolean; report?: boolean; json?: boolean;
  maskHeads?: string[]; maskHeadWeight?: string; maskHeadFusion?: MaskHeadFusion;
}

/** Register `medmask annotate`. */
export function registerAnnotate(program: Command): void {
  program
    .command('annotate')
    .description('masks from image-level labels: per image an ensemble diagnosis, XGrad-CAM masks of the agreeing models fused and cleaned, MC Dropout uncertainty, open-set score, and a decision (accept / review / ood) with reasons and priority')
    .requiredOption('--models <list...>', 'classifier models (.onnx, model.json or folder), comma-separated or repeated')
    .requiredOption('--images <dir>', 'image folder (or one image)')
    .option('--labels <csv>', 'image-level labels (image,label[,…]); without it the ensemble\'s diagnosis is used')
    .option('--label-column <col>', 'CSV column holding the label (default: label, class, diagnosis or target)')
    .option('--split <name>', 'only the CSV rows whose "split" column has this value (e.g. test)')
    .option('--roi-column <col>', 'CSV column with a region-of-interest mask per image (e.g. lungs), for "restrict to roi"')
    .requiredOption('--out <dir>', 'run folder (resumed when it exists)')
    .option('--pipeline <file>', 'mask pipeline (JSON or YAML): fusion, threshold, constraints; see docs/annotate.md')
    .option('--mc <T>', 'head Monte Carlo Dropout samples (0 = off)', '20')
    .option('--seed <int>', 'seed for MC Dropout', '0')
    .option('--ood <dir>', 'folder with <model>.ood.json from medmask fit-ood (default: beside each model)')
    .option('--review <thresholds>', `when an image goes to review, e.g. entropy=0.7,outside=0.9 (defaults: entropy=${DEFAULT_THRESHOLDS.entropy} of ln K, mi=${DEFAULT_THRESHOLDS.mi} nats, mask-score=${DEFAULT_THRESHOLDS.maskScore}, outside=${DEFAULT_THRESHOLDS.outside})`)
    .option('--mask-heads <list...>', 'mask heads from medmask train-mask-head (folders), comma-separated or repeated; each joins its own model\'s map')
    .addOption(new Option('--mask-head-fusion <rule>', 'how a mask head\'s probability P joins its model\'s CAM C: or = 1 − (1 − C)(1 − w·P), linear = w·P + (1 − w)·C').choices(MASK_HEAD_FUSIONS).default(DEFAULT_MASK_HEAD_FUSION))
    .option('--mask-head-weight <w>', `weight w of a mask head's probability in the fusion rule (default ${DEFAULT_MASK_HEAD_WEIGHT} for or, ${defaultMaskHeadWeight('linear')} for linear)`)
    .option('--device <cpu|cuda>', 'execution provider', 'cpu')
    .option('--threads <n>', 'onnxruntime threads per session')
    .option('--fresh', 'start again instead of resuming')
    .option('--no-report', 'skip report.html')
    .option('--json', 'print the summary as JSON')
    .addHelpText('after', '\nExample:\n  medmask annotate --models models/demo/resnet,models/demo/densenet,models/demo/efficientnet \\\n    --images data/chest --labels data/chest/labels.csv --split test --roi-column lungs --out runs/chest')
    .action(async (o: Opts) => {
      const mc = numberOption('--mc', o.mc, 20, (v) => Number.isInteger(v) && v >= 0 && v <= 1000, 'a whole number from 0 to 1000');
      const seed = numberOption('--seed', o.seed, 0, Number.isInteger, 'an integer');
      const thresholds = o.review !== undefined ? reviewThresholds(o.review) : undefined;
      const pipeline = o.pipeline ? await readPipelineFile(o.pipeline) : undefined;
      const items = await collectItems(o.images, { ...(o.labels ? { labels: o.labels } : {}), ...(o.labelColumn ? { labelColumn: o.labelColumn } : {}), ...(o.split ? { split: o.split } : {}), ...(o.roiColumn ? { roiColumn: o.roiColumn } : {}) });
      const bar = startProgress('annotate', items.length, { quiet: !!o.json });
      const notes: string[] = [];
      const s = await annotate({
        models: modelList(o.models), items, out: o.out, mcSamples: mc, seed,
        ...(pipeline ? { pipeline } : {}), ...(thresholds ? { thresholds } : {}), ...(o.ood ? { oodDir: o.ood } : {}), ...(o.device ? { device: o.device } : {}),
        ...(o.threads ? { threads: numberOption('--threads', o.threads, 1, (v) => Number.isInteger(v) && v > 0, 'a positive whole number') } : {}),
        ...(o.fresh ? { fresh: true } : {}),
        ...(o.maskHeads ? { maskHeads: modelList(o.maskHeads) } : {}),
        ...(o.maskHeadFusion ? { maskHeadFusion: o.maskHeadFusion } : {}),
        ...(o.maskHeadWeight !== undefined ? { maskHeadWeight: numberOption('--mask-head-weight', o.maskHeadWeight, defaultMaskHeadWeight(o.maskHeadFusion ?? DEFAULT_MASK_HEAD_FUSION), (v) => v >= 0 && v <= 1, 'a number from 0 to 1') } : {}),
        source: { images: o.images, ...(o.labels ? { labels: o.labels } : {}) },
        onProgress: (_d, _t, decision) => bar.tick(1, decision ?? ''),
        onNote: (n) => notes.push(n),
      });
      bar.stop();
      const report = o.report !== false ? await writeReport(o.out, { imagesRoot: o.images }) : undefined;
      if (o.json) {
        process.stdout.write(JSON.stringify({ ...s, ...(report ? { report } : {}), notes }) + '\n');
        return;
      }
      for (const n of notes) process.stderr.write(`note: ${n}\n`);
      process.stdout.write(`annotated ${s.done} image(s)${s.skipped ? `, ${s.skipped} already done` : ''}${s.errors ? `, ${s.errors} failed (see results.jsonl)` : ''} in ${s.seconds.toFixed(1)} s (${s.imagesPerSecond.toFixed(1)} images/s)\n`);
      process.stdout.write(`decisions: ${s.decisions.accept} accept, ${s.decisions.review} review, ${s.decisions.ood} ood\n`);
      process.stdout.write(`results: ${o.out}/results.csv, masks in ${o.out}/masks/${report ? `, report ${report}` : ''}\n`);
    });
}
