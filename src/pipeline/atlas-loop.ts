/**
 * The AbdomenAtlas-8K loop, several rounds (Qu et al., NeurIPS 2023: "revised labels fine-tune the
 * models; repeat"): per round, the current models **predict** every case → **attention** →
 * **rank** → the top fraction per source of the cases nobody reviewed yet are **reviewed** (expert
 * revisions from `revised/round-<k>/`, or the simulated annotator of `atlas campaign` where the
 * data set has full truth in truthTr/) → **merge** (original > revised > pseudo) → each model is
 * **fine-tuned** on the merged labels (warm start, src/pipeline/atlas-train.ts) and the fine-tuned
 * model replaces it only when its held-out Dice is not below its parent's → the next round
 * **re-predicts** with them. After the last round the models predict once more, so the table's
 * last row shows what the last fine-tune bought.
 *
 * Per round (and in OUT/loop.json): mean Dice of the pseudo-labels on the cases never reviewed
 * (organs without an original label, against truthTr), attention's voxel sensitivity / precision
 * for real pseudo-label errors, cases selected, expert minutes (15 per reviewed case, the paper's
 * rate), and each model's fine-tune decision and torch training time.
 *
 * ```
 * OUT/round-<k>/work/     predictions, pseudo, attention, ranking of round k
 * OUT/round-<k>/review/   the revised label maps of all reviews so far (+ revised.json)
 * OUT/round-<k>/merged/   merged labels (labelsTr/, provenance.json)
 * OUT/round-<k>/ft/<m>/   fine-tune of model m (train/, heldout/, <name>-ft/)
 * OUT/loop.json           the per-round table
 * ```
 * @module
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { addDetection, compareAttention, detectionRates, emptyDetection, organError } from '../core/atlas/attention-eval.js';
import { PAPER_EFFORT_RATES, reviewMinutes } from '../core/atlas/effort.js';
import { MedmaskError } from '../core/errors.js';
import { meanLabelDice } from '../core/metrics/segmentation.js';
import { createVolume } from '../core/volume.js';
import { atomicWrite } from '../io/atomic.js';
import { readVolume, writeVolume } from '../io/index.js';
import { atlasAttention, atlasMerge, atlasPredict, atlasRank, readAtlasDataset } from './atlas.js';
import { simulateAnnotator } from './atlas-campaign.js';
import { atlasFinetune } from './atlas-finetune.js';
import type { Provenance } from '../core/atlas/merge.js';

/** Options for {@link atlasLoop}. */
export interface AtlasLoopOptions {
  /** Segmenter folders (model.onnx, model.json, card.json). */
  models: string[];
  /** Rounds (default 2). */
  rounds?: number;
  /** Share of each source's cases reviewed per round (default 0.05). */
  fraction?: number;
  /** Revisions by round: DIR/round-<k>/<case>.nii.gz (+ revised.json); default: simulate from truthTr/. */
  revised?: string;
  /** Fine-tune steps per model per round (default 40; 0 keeps the weights, still measured). */
  steps?: number;
  lr?: number;
  labelWeights?: Partial<Record<Provenance, number>>;
  seed?: number;
  threads?: number;
  python?: string;
  /** Sliding-window threads of the predictions. */
  predictThreads?: number;
  onProgress?: (stage: string, round: number, note?: string) => void;
}

/** One row of the loop's table. */
export interface LoopRound {
  round: number;
  /** Mean Dice of the pseudo-labels on the cases never reviewed (up to this round's selection). */
  neverReviewedDice: number;
  neverReviewed: number;
  /**
   * Mean Dice of this round's pseudo-labels on the cases no round ever reviewed (one fixed set for
   * every row, known when the loop ends): the figure to compare across rounds.
   */
  unreviewedDice: number;
  attentionSensitivity: number;
  attentionPrecision: number;
  selected: string[];
  expertMinutes: number;
  /** Per model: fine-tune outcome (absent in the final re-prediction row). */
  finetune: { model: string; decision: 'accepted' | 'rejected'; heldout: number; parentHeldout: number; trainSeconds: number }[];
  trainMinutes: number;
  seconds: number;
}

/** What {@link atlasLoop} returns. */
export interface AtlasLoopResult {
  rounds: LoopRound[];
  /** The re-prediction after the last round's fine-tune (selection, review and fine-tune empty). */
  final: LoopRound;
  models: string[];
  json: string;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

/**
 * Run the loop N times.
 * @param data - the data set (partial labels; truthTr/ for simulated review and for the Dice)
 * @param out - loop folder (round-<k>/ replaced)
 * @returns the per-round table
 * @throws MedmaskError USAGE (no truth and no revisions), ENVIRONMENT (no PyTorch), the steps' errors
 * @example
 * const r = await atlasLoop('data/abdomen', 'loop', { models: ['models/demo/demo-unet3d'], rounds: 3, fraction: 0.05 });
 * r.rounds.map((x) => x.neverReviewedDice);
 */
export async function atlasLoop(data: string, out: string, opts: AtlasLoopOptions): Promise<AtlasLoopResult> {
  const rounds = opts.rounds ?? 2;
  const fraction = opts.fraction ?? 0.05;
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new MedmaskError('USAGE', `--rounds ${rounds} must be a whole number from 1 to 50`);
  if (!opts.models.length) throw new MedmaskError('USAGE', 'the loop needs at least one segmenter', { hint: 'pass --model DIR (repeat for several)' });
  const atlas = await readAtlasDataset(data);
  const truthPath = (id: string) => join(data, 'truthTr', `${id}.nii.gz`);
  const haveTruth = atlas.cases.every((c) => existsSync(truthPath(c.id)));
  if (!haveTruth && !opts.revised) throw new MedmaskError('USAGE', `${data} has no truthTr/ for the simulated annotator and no --revised folder was given`, { hint: 'pass --revised DIR holding round-1/, round-2/ … of revised label maps' });
  const organs = atlas.organs;
  const organName = Object.fromEntries(organs.map((o) => [o.value, o.name]));
  let models = opts.models.map((m) => resolve(m));
  const reviewed = new Set<string>();
  const revisedJson: Record<string, string[]> = {};
  const table: LoopRound[] = [];
  const root = resolve(out);

  /** Mean Dice of the pseudo-labels in `work` over `ids` (organs without an original label). */
  const pseudoDice = async (work: string, ids: (id: string) => boolean) => {
    const dice: number[] = [];
    for (const c of atlas.cases) {
      if (!haveTruth || !ids(c.id)) continue;
      const truth = await readVolume(truthPath(c.id));
      const pseudo = (await readVolume(join(work, 'pseudo', `${c.id}.nii.gz`))).data;
      dice.push(meanLabelDice(pseudo, truth.data, organs.filter((o) => !(c.labelled ?? []).includes(o.name)).map((o) => o.value)));
    }
    return mean(dice);
  };
  const measure = async (work: string, flagCounts: boolean) => {
    const counts = emptyDetection();
    const dice: number[] = [];
    for (const c of atlas.cases) {
      if (!haveTruth) break;
      const truth = await readVolume(truthPath(c.id));
      const pseudo = (await readVolume(join(work, 'pseudo', `${c.id}.nii.gz`))).data;
      const labelled = c.labelled ?? [];
      if (!reviewed.has(c.id)) dice.push(meanLabelDice(pseudo, truth.data, organs.filter((o) => !labelled.includes(o.name)).map((o) => o.value)));
      if (!flagCounts) continue;
      for (const o of organs) {
        const heat = (await readVolume(join(work, 'attention', c.id, `${o.name}.nii.gz`))).data;
        const a = Uint8Array.from(heat, (v) => (v ? 1 : 0));
        addDetection(counts, compareAttention(a, organError(pseudo, truth.data, o.value), truth.shape, 8));
      }
    }
    const rates = detectionRates(counts);
    return { neverReviewedDice: mean(dice), neverReviewed: dice.length, attentionSensitivity: rates.voxelSensitivity, attentionPrecision: rates.voxelPrecision };
  };

  const predictRound = async (k: number, label: string) => {
    const dir = join(root, label);
    await rm(dir, { recursive: true, force: true });
    const work = join(dir, 'work');
    opts.onProgress?.('predict', k);
    await atlasPredict(data, models, work, { ...(opts.predictThreads ? { load: { threads: opts.predictThreads } } : {}) });
    opts.onProgress?.('attention', k);
    await atlasAttention(data, work, { erosions: 1, dilations: 1 });
    return { dir, work };
  };

  for (let k = 1; k <= rounds; k++) {
    const t0 = performance.now();
    const { dir, work } = await predictRound(k, `round-${k}`);
    // Rank, then take the top `fraction` per source among the cases nobody reviewed yet.
    const ranking = await atlasRank(work, { fraction });
    const bySource = new Map<string, typeof ranking.ranked>();
    for (const r of ranking.ranked) bySource.set(r.source, [...(bySource.get(r.source) ?? []), r]);
    const selected: string[] = [];
    for (const g of bySource.values()) {
      const quota = Math.ceil(fraction * g.length - 1e-9);
      selected.push(...g.filter((r) => !reviewed.has(r.id) && r.priority > 0).slice(0, quota).map((r) => r.id));
    }
    // Review: each round's reviews join those of earlier rounds.
    opts.onProgress?.('review', k, `${selected.length} case(s)`);
    const reviewDir = join(dir, 'review');
    await mkdir(reviewDir, { recursive: true });
    for (const id of [...reviewed]) await copyFile(join(root, `round-${k - 1}`, 'review', `${id}.nii.gz`), join(reviewDir, `${id}.nii.gz`));
    for (const id of selected) {
      if (opts.revised) {
        const src = join(opts.revised, `round-${k}`, `${id}.nii.gz`);
        if (!existsSync(src)) throw new MedmaskError('NOT_FOUND', `round ${k} selected ${id} for review and ${src} does not exist`, { hint: `revise the selected cases (${selected.join(', ')}) into ${join(opts.revised, `round-${k}`)}/, with revised.json` });
        await copyFile(src, join(reviewDir, `${id}.nii.gz`));
        const rj = join(opts.revised, `round-${k}`, 'revised.json');
        const organsOf = existsSync(rj) ? (JSON.parse(await readFile(rj, 'utf8')) as Record<string, string[]>)[id] : undefined;
        revisedJson[id] = organsOf ?? organs.map((o) => o.name);
      } else {
        const c = atlas.cases.find((x) => x.id === id)!;
        const truth = await readVolume(truthPath(id));
        const pseudo = (await readVolume(join(work, 'pseudo', `${id}.nii.gz`))).data as Uint8Array;
        const flagged = new Map<number, Uint8Array>();
        for (const o of organs) {
          const heat = (await readVolume(join(work, 'attention', id, `${o.name}.nii.gz`))).data;
          if (heat.some((v) => v > 0)) flagged.set(o.value, Uint8Array.from(heat, (v) => (v ? 1 : 0)));
        }
        const toRevise = organs.filter((o) => !(c.labelled ?? []).includes(o.name) && flagged.has(o.value)).map((o) => o.value);
        const revised = simulateAnnotator(pseudo, truth.data, flagged, toRevise, truth.shape, 1);
        await writeVolume(createVolume(truth.shape, 'uint8', { spacing: truth.spacing, origin: truth.origin, direction: truth.direction, data: revised }), join(reviewDir, `${id}.nii.gz`), { labelMap: true });
        revisedJson[id] = toRevise.map((v) => organName[v]!);
      }
    }
    await atomicWrite(join(reviewDir, 'revised.json'), JSON.stringify(revisedJson, null, 1) + '\n');
    for (const id of selected) reviewed.add(id);
    const m = await measure(work, true);
    opts.onProgress?.('merge', k);
    const merged = join(dir, 'merged');
    await atlasMerge(data, work, merged, { revised: reviewDir });
    // Fine-tune each model on the merged labels; keep the parent where the child is worse.
    const finetune: LoopRound['finetune'] = [];
    const next: string[] = [];
    for (const [i, model] of models.entries()) {
      opts.onProgress?.('finetune', k, basename(model));
      const r = await atlasFinetune(data, merged, join(dir, 'ft', `${i}-${basename(model)}`), {
        model,
        ...(opts.steps !== undefined ? { steps: opts.steps } : {}),
        ...(opts.lr !== undefined ? { lr: opts.lr } : {}),
        ...(opts.labelWeights ? { labelWeights: opts.labelWeights } : {}),
        seed: (opts.seed ?? 1) + k,
        ...(opts.threads ? { threads: opts.threads } : {}),
        ...(opts.python ? { python: opts.python } : {}),
      });
      finetune.push({ model: basename(model), decision: r.decision, heldout: r.heldout.mean_dice, parentHeldout: r.parentHeldout.mean_dice, trainSeconds: r.trainSeconds });
      next.push(r.decision === 'accepted' ? r.modelDir : model);
    }
    models = next;
    table.push({
      round: k, ...m, unreviewedDice: NaN, selected, expertMinutes: reviewMinutes(selected.length, PAPER_EFFORT_RATES),
      finetune, trainMinutes: finetune.reduce((a, f) => a + f.trainSeconds, 0) / 60, seconds: (performance.now() - t0) / 1000,
    });
    await atomicWrite(join(root, 'loop.json'), JSON.stringify({ rounds: table, models }, null, 1) + '\n');
  }
  const t0 = performance.now();
  const { work } = await predictRound(rounds + 1, 'final');
  const final: LoopRound = { round: rounds + 1, ...(await measure(work, true)), unreviewedDice: NaN, selected: [], expertMinutes: 0, finetune: [], trainMinutes: 0, seconds: (performance.now() - t0) / 1000 };
  for (const row of [...table, final]) row.unreviewedDice = await pseudoDice(join(root, row === final ? 'final' : `round-${row.round}`, 'work'), (id) => !reviewed.has(id));
  const json = join(root, 'loop.json');
  await atomicWrite(json, JSON.stringify({ rounds: table, final, models }, null, 1) + '\n');
  return { rounds: table, final, models, json };
}

/** The loop's table as text lines (the CLI's report). */
export function loopTable(r: AtlasLoopResult): string[] {
  const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)} %` : '—');
  const row = (x: LoopRound, label: string) => [
    label.padEnd(7),
    (Number.isFinite(x.neverReviewedDice) ? x.neverReviewedDice.toFixed(4) : '—').padStart(8),
    (Number.isFinite(x.unreviewedDice) ? x.unreviewedDice.toFixed(4) : '—').padStart(8),
    String(x.neverReviewed).padStart(5),
    pct(x.attentionSensitivity).padStart(8),
    pct(x.attentionPrecision).padStart(8),
    String(x.selected.length).padStart(5),
    String(x.expertMinutes).padStart(6),
    x.finetune.map((f) => `${f.model} ${f.decision} ${f.heldout.toFixed(3)}/${f.parentHeldout.toFixed(3)}`).join('; ') || '—',
    x.trainMinutes ? `${x.trainMinutes.toFixed(1)} min` : '',
  ].join('  ');
  return [
    'round   Dice(nr)  Dice(un)  #nr   att.sens  att.prec  #sel  min     fine-tune (held-out child/parent)  torch',
    ...r.rounds.map((x) => row(x, String(x.round))),
    row(r.final, 'final'),
    '(Dice(nr): mean Dice of the pseudo-labels on the cases not reviewed so far; Dice(un): on the cases no round reviewed, the same set in every row; organs without an original label; min: expert minutes, 15 per reviewed case)',
  ];
}
