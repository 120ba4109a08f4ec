import { join, relative } from 'node:path';
import type { Command } from 'commander';
import { removeDataset } from '../pipeline/phantoms.js';
import { runDemo } from '../pipeline/demo.js';
import { describeCounts } from './phantoms.js';
import { startProgress, type Progress } from './output.js';

const pct = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '–' : `${(v * 100).toFixed(1)} %`);
const f2 = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(2));

/**
 * Register `medmask demo`: the README's first command. Generates seeded phantoms, fits the bundled
 * classifiers' open-set statistics, annotates the test and out-of-distribution images, evaluates
 * against the ground truth and writes the report — then says where everything is.
 */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the whole weak-labelling pipeline on embedded defaults (bundled demo models, seeded phantoms): writes ./medmask-demo and prints a summary and where the report is')
    .option('--out <dir>', 'output folder', 'medmask-demo')
    .option('--seed <int>', 'seed', '1')
    .option('--quick', 'smaller data sets (60 images)')
    .option('--keep', 'keep an existing output folder instead of starting fresh')
    .option('--json', 'print the summary as JSON')
    .action(async (o: { out: string; seed: string; quick?: boolean; keep?: boolean; json?: boolean }) => {
      if (!o.keep) await removeDataset(o.out);
      let bar: Progress | undefined;
      let current = '';
      const notes: string[] = [];
      const r = await runDemo({
        out: o.out,
        seed: Number(o.seed) || 0,
        ...(o.quick ? { quick: true } : {}),
        onStage: (stage, done, total) => {
          if (stage !== current) {
            bar?.stop();
            current = stage;
            bar = startProgress(stage, total, { quiet: !!o.json });
          }
          bar!.tick();
        },
        onNote: (n) => notes.push(n),
      });
      bar?.stop();
      const e = r.evaluation;
      if (o.json) {
        process.stdout.write(JSON.stringify({ out: r.out, seconds: r.seconds, report: r.report, annotate: r.annotate, evaluation: e ? { ...e, perImage: undefined } : undefined, evalAnnotate: r.evalAnnotate, evalEvaluation: r.evalEvaluation ? { ...r.evalEvaluation, perImage: undefined } : undefined, notes }) + '\n');
        return;
      }
      const say = (s = '') => process.stdout.write(s + '\n');
      const rel = (p: string) => {
        const r = relative(process.cwd(), p);
        return r && !r.startsWith('..') ? r : p;
      };
      for (const n of notes.filter((x) => !/no OOD statistics/.test(x))) process.stderr.write(`note: ${n}\n`);
      say(`medmask demo finished in ${r.seconds.toFixed(0)} s. Everything is in ${r.out}`);
      say(`  data:    ${rel(join(r.out, 'chest-2d'))} (${describeCounts(r.chest)}), ${rel(join(r.out, 'abdomen-3d'))} (nnU-Net layout, sources: ${describeCounts(r.abdomen)})`);
      if (r.annotate && e && r.report) {
        const s = r.annotate;
        const acc = e.segmentation.meanDiceByDecision.accept;
        say(`  models:  the three bundled classifiers (ResNet, DenseNet, EfficientNet; models/demo)`);
        const [lo, hi] = e.segmentation.meanDiceCi95;
        const fam = (f: typeof e.ood.far, name: string) => (f ? `${name} ${f2(f.auroc)} (${f.flagged}/${f.n} caught)` : undefined);
        say(`  annotated ${s.done} images (${e.classification.n} test + ${e.ood.ood} out-of-distribution) at ${s.imagesPerSecond.toFixed(1)} images/s`);
        say(`  accuracy ${pct(e.classification.accuracy)}; test split: mean Dice of lesion masks ${f2(e.segmentation.meanDice)} (95 % t-interval ${f2(lo)}–${f2(hi)}, ${e.segmentation.lesionImages} lesion images); of accepted masks ${f2(acc?.meanDice)} (${acc?.n ?? 0})`);
        const ev = r.evalEvaluation?.segmentation;
        if (ev && r.evalAnnotate) {
          const [elo, ehi] = ev.meanDiceCi95;
          say(`  evaluation set: mean Dice of lesion masks ${ev.meanDice.toFixed(3)} (95 % t-interval ${elo.toFixed(3)}–${ehi.toFixed(3)}, ±${((ehi - elo) / 2).toFixed(3)}; ${ev.lesionImages} unseen lesion images, annotated at ${r.evalAnnotate.imagesPerSecond.toFixed(1)} images/s)`);
        }
        say(`  routed:  ${s.decisions.accept} accepted, ${s.decisions.review} to review, ${s.decisions.ood} out of distribution (OOD AUROC ${f2(e.ood.auroc)}, ${e.ood.flaggedOod}/${e.ood.ood} OOD images caught)`);
        const fams = [fam(e.ood.far, 'far'), fam(e.ood.near, 'near')].filter(Boolean);
        if (fams.length) say(`  OOD AUROC by family: ${fams.join('; ')}`);
        const kinds = Object.entries(e.ood.byKind ?? {}).filter(([, v]) => v.family === 'near');
        if (kinds.length) say(`  near OOD by kind (AUROC, caught): ${kinds.map(([k, v]) => `${k} ${f2(v.auroc)} (${v.flagged}/${v.n})`).join(', ')}`);
        say(`  review ranking: area under risk–coverage ${f2(e.riskCoverage.aurc)} vs ${f2(e.riskCoverage.randomAurc)} for random order`);
        say();
        say(`  report:  ${rel(r.report)}   (open in a browser; works offline)`);
        say(`  results: ${rel(join(r.run!, 'results.csv'))}, masks in ${rel(join(r.run!, 'masks'))}/`);
      }
      say();
      say('Try next:');
      say(`  npx medmask annotate --help`);
      say(`  npx medmask info ${rel(join(r.out, 'abdomen-3d', 'imagesTr', 'case_0000_0000.nii.gz'))}`);
    });
}
