import type { Command } from 'commander';
import { MedmaskError } from '../core/errors.js';
import { collectItems } from '../pipeline/annotate.js';
import { loadEnsemble, releaseEnsemble } from '../pipeline/ensemble.js';
import { fitOod } from '../pipeline/ood.js';
import { modelList } from './annotate.js';
import { numberOption, startProgress } from './output.js';

/** Register `medmask fit-ood`. */
export function registerFitOod(program: Command): void {
  program
    .command('fit-ood')
    .description('fit open-set statistics per model on in-distribution training images (Mahalanobis on pooled features, energy, MC mutual information) and a threshold at a target false-positive rate')
    .requiredOption('--models <list...>', 'classifier models, comma-separated or repeated')
    .requiredOption('--images <dir>', 'image folder')
    .requiredOption('--labels <csv>', 'labels CSV of the training images (class names of the models)')
    .option('--label-column <col>', 'CSV column holding the label')
    .option('--split <name>', 'only rows of this split (e.g. train)')
    .option('--calibration-split <name>', 'calibrate the threshold, and fit each model\'s temperature (confidence calibration), on these labelled CSV rows (images the classifiers were not trained on, e.g. val); default: the fit images, out of fold, and no temperature')
    .option('--fpr <fraction>', 'false-positive rate allowed on the fit images', '0.05')
    .option('--mc <T>', 'MC Dropout samples for the MI score', '20')
    .option('--weights <list>', 'weight of each standardised score in the combined OOD score, e.g. mahalanobis=1,energy=0,mi=0 (the default: the Mahalanobis distance alone, see docs/annotate.md); unnamed scores weigh 0')
    .requiredOption('--out <dir>', 'folder for <model>.ood.json (give it to annotate with --ood)')
    .action(async (o: { models: string[]; images: string; labels: string; labelColumn?: string; split?: string; calibrationSplit?: string; fpr?: string; mc?: string; weights?: string; out: string }) => {
      const fpr = numberOption('--fpr', o.fpr, 0.05, (v) => v > 0 && v < 1, 'a fraction between 0 and 1');
      const mc = numberOption('--mc', o.mc, 20, (v) => Number.isInteger(v) && v >= 1, 'a positive whole number');
      const weights = o.weights !== undefined ? parseWeights(o.weights) : undefined;
      const lc = o.labelColumn ? { labelColumn: o.labelColumn } : {};
      const items = await collectItems(o.images, { labels: o.labels, ...lc, ...(o.split ? { split: o.split } : {}) });
      if (items.some((i) => !i.label)) throw new MedmaskError('DATASET_INVALID', `${o.labels}: every fit image needs a label`);
      const calibration = o.calibrationSplit ? await collectItems(o.images, { labels: o.labels, ...lc, split: o.calibrationSplit }) : undefined;
      const models = await loadEnsemble(modelList(o.models));
      try {
        const bar = startProgress('fit-ood', items.length + (calibration?.length ?? 0));
        const written = await fitOod(models, items.map((i) => ({ path: i.path, label: i.label! })), {
          out: o.out, targetFpr: fpr, mcSamples: mc, ...(weights ? { weights } : {}), onProgress: () => bar.tick(), ...(calibration ? { calibration } : {}),
        });
        bar.stop();
        for (const [m, p] of Object.entries(written)) process.stdout.write(`${m}: ${p}\n`);
      } finally {
        await releaseEnsemble(models);
      }
    });
}

/**
 * Parse `--weights name=value,…` (names are checked against the scores by fitOodCombiner).
 * @throws MedmaskError USAGE naming the bad entry
 */
export function parseWeights(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([a-z_]+)=(.+)$/i.exec(part);
    const v = m ? Number(m[2]) : NaN;
    if (!m || !Number.isFinite(v) || v < 0) throw new MedmaskError('USAGE', `--weights: "${part}" is not name=weight with a weight ≥ 0`, { hint: 'e.g. --weights mahalanobis=1,energy=0,mi=0' });
    out[m[1]!.toLowerCase()] = v;
  }
  if (!Object.keys(out).length) throw new MedmaskError('USAGE', '--weights is empty', { hint: 'e.g. --weights mahalanobis=1,energy=0,mi=0' });
  return out;
}
