import type { Command } from 'commander';
import { evaluateRun } from '../pipeline/evaluate.js';
import { writeReport } from '../pipeline/report.js';

const f = (v: number, d = 3) => (Number.isFinite(v) ? v.toFixed(d) : '–');

/** Register `medmask evaluate` and `medmask report`. */
export function registerEvaluate(program: Command): void {
  program
    .command('evaluate')
    .description('compare an annotate run with ground truth: Dice, IoU, HD95 (mm); accuracy, AUROC, ECE; OOD AUROC and FPR@95TPR; risk–coverage of the review ranking. Writes RUN/evaluation.json and refreshes report.html')
    .requiredOption('--run <dir>', 'the annotate output folder')
    .requiredOption('--truth <dir>', 'folder with labels.csv (image,label,mask) and optionally ood.csv (far OOD) and near-ood.csv (near OOD) — as medmask phantoms 2d writes')
    .option('--label-column <col>', 'truth CSV column with the image-level label (default label)')
    .option('--images <dir>', 'image folder of the run, for report thumbnails (default: as recorded in run.json)')
    .option('--json', 'print the evaluation (without per-image rows) as JSON')
    .action(async (o: { run: string; truth: string; labelColumn?: string; images?: string; json?: boolean }) => {
      const e = await evaluateRun(o.run, o.truth, o.labelColumn ? { labelColumn: o.labelColumn } : {});
      const report = await writeReport(o.run, o.images ? { imagesRoot: o.images } : {});
      if (o.json) {
        const { perImage: _p, ...rest } = e;
        process.stdout.write(JSON.stringify({ ...rest, report }) + '\n');
        return;
      }
      const s = e.segmentation;
      process.stdout.write(
        [
          `${e.matched} of ${e.images} image(s) matched to truth`,
          `masks: mean Dice ${f(s.meanDice)} (95 % t-interval ${f(s.meanDiceCi95[0])}–${f(s.meanDiceCi95[1])}), IoU ${f(s.meanIou)}, median HD95 ${f(s.medianHd95, 1)} mm over ${s.lesionImages} lesion image(s); accepted ${f(s.meanDiceByDecision.accept?.meanDice ?? NaN)} (${s.meanDiceByDecision.accept?.n ?? 0}), review ${f(s.meanDiceByDecision.review?.meanDice ?? NaN)} (${s.meanDiceByDecision.review?.n ?? 0})`,
          `classification: accuracy ${f(e.classification.accuracy)}, AUROC ${f(e.classification.aurocMacro)}, ECE ${f(e.classification.ece)} (${e.classification.n} images)`,
          `open set: AUROC ${f(e.ood.auroc)}, FPR@95TPR ${f(e.ood.fprAt95Tpr)} (${e.ood.ood} OOD, ${e.ood.inDistribution} in-distribution)${[e.ood.far && `; far ${f(e.ood.far.auroc)} (${e.ood.far.n})`, e.ood.near && `; near ${f(e.ood.near.auroc)} (${e.ood.near.n}), FPR@95TPR ${f(e.ood.near.fprAt95Tpr)}`].filter(Boolean).join('')}`,
          ...(e.ood.byKind ? [`open set by kind (AUROC; routed ood/review/accept): ${Object.entries(e.ood.byKind).map(([k, v]) => `${k} ${f(v.auroc)} (${v.routed.ood ?? 0}/${v.routed.review ?? 0}/${v.routed.accept ?? 0} of ${v.n})`).join(', ')}`] : []),
          `review ranking: AURC ${f(e.riskCoverage.aurc)} vs random ${f(e.riskCoverage.randomAurc)}`,
          `wrote ${o.run}/evaluation.json and ${report}`,
        ].join('\n') + '\n',
      );
    });
  program
    .command('report')
    .description('write RUN/report.html (self-contained, offline) from an annotate run (and its evaluation, if any)')
    .argument('<run>', 'the annotate output folder')
    .option('--images <dir>', 'image folder of the run, for thumbnails')
    .action(async (run: string, o: { images?: string }) => {
      process.stdout.write(`wrote ${await writeReport(run, o.images ? { imagesRoot: o.images } : {})}\n`);
    });
}
