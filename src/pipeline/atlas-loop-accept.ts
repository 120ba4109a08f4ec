/**
 * The loop's **campaign accept rule**: a fine-tuned model replaces its parent only when the
 * campaign's pseudo-labels get no worse with it — the quantity the loop exists to improve — on the
 * fixed held-out set. The trainer's rule (atlas-train.ts: the child's own held-out Dice not below
 * its parent's) still has to hold first; this rule is checked on top of it.
 *
 * Why (measured on the loop benchmark's saved runs, seven seeds, docs/atlas.md "The campaign accept
 * rule"): the weakest model's accepted children raised the three models' pseudo-label Dice on the
 * never-reviewed cases in every seed (+0.005 … +0.012), while the stronger models' accepted children
 * moved it by −0.012 … +0.006 (mean −0.004): a child can gain on its own held-out Dice — which
 * scores all organs, most of them ones the campaign takes from the original labels — and still make
 * the mean of the models worse on the organs it is used for.
 *
 * How: every model (parent and child) predicts the held-out cases once (ONNX, as the campaign does,
 * cached per model folder); an ensemble is scored by writing its pseudo-labels with
 * {@link atlasAttention} (the campaign's own code, `pseudoOnly`: no attention maps) into a folder whose `predictions/` links to the
 * members' prediction folders, then taking the mean per-case Dice over the organs each case's
 * source leaves unlabelled ({@link pseudoLabelDice}, as the loop's evaluation set) — the loop's figure, on the held-out cases. Children are tried
 * greedily: each alone in place of its parent, then the best ones together while the score does
 * not fall ({@link greedySelect}).
 *
 * ```
 * OUT/accept/m<k>/predictions/<model>/   held-out predictions of the k-th model folder scored
 * OUT/accept/e<n>/                       the n-th ensemble scored (predictions/ links, pseudo/, attention/)
 * ```
 * @module
 */
import { mkdir, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { AtlasCase } from './atlas.js';
import { atlasAttention, atlasPredict, modelDirName } from './atlas.js';
import { meanLabelDice } from '../core/metrics/segmentation.js';
import { readVolume } from '../io/index.js';

/**
 * The loop's figure: per case, the mean Dice of the pseudo-labels in `work` against the full truth
 * (`data/truthTr/`) over the organs the case's source leaves unlabelled.
 * @param data - the data set (truthTr/)
 * @param work - a folder holding pseudo/<case>.nii.gz
 * @param cases - the cases, with their labelled organs
 * @param organs - the data set's organs
 * @returns the Dice per case, in the order of `cases`
 */
export async function pseudoLabelDice(data: string, work: string, cases: AtlasCase[], organs: { name: string; value: number }[]): Promise<number[]> {
  const out: number[] = [];
  for (const c of cases) {
    const truth = await readVolume(join(data, 'truthTr', `${c.id}.nii.gz`));
    const pseudo = (await readVolume(join(work, 'pseudo', `${c.id}.nii.gz`))).data;
    out.push(meanLabelDice(pseudo, truth.data, organs.filter((o) => !(c.labelled ?? []).includes(o.name)).map((o) => o.value)));
  }
  return out;
}

/** One child tried by {@link greedySelect}. */
export interface AcceptTrial {
  /** Index of the model among the current ones. */
  index: number;
  /** Campaign score with this child alone in place of its parent. */
  alone: number;
}

/** What {@link greedySelect} decided. */
export interface GreedyResult {
  /** Indices of the children kept, in the order they were added. */
  kept: number[];
  /** The campaign score with them (the current score when none is kept). */
  score: number;
  /** Scores of the sets tried beyond single children: `[indices, score]`. */
  tried: [number[], number][];
}

/**
 * Greedy forward selection of children: those whose `alone` score is not below `current`, best
 * first; the first is kept, each further one is kept when the set with it scores at least the best
 * so far. Three models need at most two extra scorings (an exhaustive search eight).
 * @param current - the score of the current models
 * @param trials - the children, each scored alone
 * @param score - scores a set of children (indices) in place of their parents
 * @returns the kept children and their score
 */
export async function greedySelect(current: number, trials: AcceptTrial[], score: (set: number[]) => Promise<number>): Promise<GreedyResult> {
  const order = trials.filter((t) => t.alone >= current).sort((a, b) => b.alone - a.alone || a.index - b.index);
  const kept: number[] = [];
  const tried: [number[], number][] = [];
  let best = current;
  for (const t of order) {
    if (!kept.length) {
      kept.push(t.index);
      best = t.alone;
      continue;
    }
    const s = await score([...kept, t.index]);
    tried.push([[...kept, t.index], s]);
    if (s >= best) {
      kept.push(t.index);
      best = s;
    }
  }
  return { kept, score: best, tried };
}

/** Options for {@link CampaignScorer}. */
export interface CampaignScorerOptions {
  /** Window grid over the body's bounding box (as the campaign predicts). */
  crop?: boolean;
  /** onnxruntime threads. */
  threads?: number;
}

/**
 * Scores ensembles of model folders by their pseudo-labels' Dice on the held-out cases.
 * @example
 * const scorer = new CampaignScorer(data, heldoutCases, 'loop/accept');
 * await scorer.score(['models/demo/demo-unet3d', 'loop/round-1/ft/0-demo-unet3d/demo-unet3d-ft']);
 */
export class CampaignScorer {
  private readonly predicted = new Map<string, string>();
  private readonly scores = new Map<string, { mean: number; perCase: number[] }>();
  private ensembles = 0;

  /**
   * @param data - the loop's data set (images, truthTr)
   * @param cases - the held-out cases (with their sources' labelled organs)
   * @param dir - folder for predictions and ensembles (made when first used)
   * @param organs - the data set's organs
   * @param opts - prediction options
   */
  constructor(
    readonly data: string,
    readonly cases: AtlasCase[],
    readonly dir: string,
    readonly organs: { name: string; value: number }[],
    readonly opts: CampaignScorerOptions = {},
  ) {}

  /** The folder of `model`'s held-out predictions (predicted on first use). */
  private async predictions(model: string): Promise<string> {
    let p = this.predicted.get(model);
    if (p === undefined) {
      const work = join(this.dir, `m${this.predicted.size}`);
      await rm(work, { recursive: true, force: true });
      await atlasPredict(this.data, [model], work, { cases: this.cases.map((c) => c.id), ...(this.opts.crop ? { crop: true } : {}), ...(this.opts.threads ? { load: { threads: this.opts.threads } } : {}) });
      p = join(work, 'predictions', modelDirName(model));
      this.predicted.set(model, p);
    }
    return p;
  }

  /**
   * Mean per-case Dice of the pseudo-labels of `models` (organs without an original label).
   * @param models - model folders, the ensemble's members
   * @returns the mean and the per-case Dice (cases in the constructor's order)
   */
  async score(models: string[]): Promise<{ mean: number; perCase: number[] }> {
    const key = [...models].sort().join('\n');
    const known = this.scores.get(key);
    if (known) return known;
    const folders = [];
    for (const m of models) folders.push(await this.predictions(m));
    const work = join(this.dir, `e${this.ensembles++}`);
    await rm(work, { recursive: true, force: true });
    await mkdir(join(work, 'predictions'), { recursive: true });
    // Members may share a folder name (a parent and its child of the same name in later rounds): links numbered.
    for (const [i, f] of folders.entries()) await symlink(f, join(work, 'predictions', `${i}-${modelDirName(models[i]!)}`), 'dir');
    await atlasAttention(this.data, work, { pseudoOnly: true, cases: this.cases.map((c) => c.id) });
    const perCase = await pseudoLabelDice(this.data, work, this.cases, this.organs);
    const r = { mean: perCase.reduce((a, b) => a + b, 0) / perCase.length, perCase };
    this.scores.set(key, r);
    return r;
  }
}
