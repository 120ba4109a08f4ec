/**
 * `medmask evaluate`: compare an annotate run with ground truth — masks (Dice, IoU, HD95 in mm),
 * classification (accuracy, AUROC, ECE), open set (OOD AUROC, FPR@95TPR) and how well the review
 * routing ranks errors (risk–coverage against random ordering).
 *
 * Truth is a folder with a `labels.csv` (columns image, label and optionally mask) and optionally
 * an `ood.csv` listing far out-of-distribution images and a `near-ood.csv` listing near ones — the
 * layout `medmask phantoms 2d` writes. OOD AUROC is reported over both and for each separately;
 * the mean lesion Dice comes with its 95 % Student-t interval.
 * Results are matched to truth by image path relative to the folder, else by file stem.
 * @module
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { MedmaskError } from '../core/errors.js';
import { auroc, ece, fprAtTpr, riskCoverage, rocCurve } from '../core/metrics/classification.js';
import { meanCi95 } from '../core/metrics/interval.js';
import { dice, hd95, iou } from '../core/metrics/segmentation.js';
import { multiclassAuroc } from '../core/train/metrics.js';
import { atomicWrite } from '../io/atomic.js';
import { stemOf } from '../io/dataset.js';
import { readVolume } from '../io/index.js';
import type { ImageResult } from './run-format.js';

/** Per-image evaluation. */
export interface ImageEvaluation {
  image: string;
  truthLabel?: string;
  ood: boolean;
  /** For OOD images: far (ood.csv: another body part, inverted, CT) or near (near-ood.csv: another chest radiograph). */
  oodFamily?: OodFamily;
  /** For OOD images: the `kind` column of ood.csv / near-ood.csv (e.g. knee, scanner, effusion). */
  oodKind?: string;
  predicted?: string;
  correct?: boolean;
  decision?: string;
  priority?: number;
  dice?: number;
  iou?: number;
  hd95?: number;
  /** Lesion pixels in the truth mask. */
  truthPixels?: number;
}

/** Which list an OOD image came from. */
export type OodFamily = 'far' | 'near';

/** OOD detection of one family against the in-distribution images. */
export interface OodFamilyEvaluation {
  /** OOD images of the family that were scored. */
  n: number;
  auroc: number;
  fprAt95Tpr: number;
  /** Of them, routed to "ood". */
  flagged: number;
  /** Of them, how many got each decision (accept, review, ood). */
  routed: Record<string, number>;
}

/** evaluation.json. */
export interface Evaluation {
  images: number;
  matched: number;
  segmentation: {
    /** Images whose truth mask is non-empty. */
    lesionImages: number;
    meanDice: number;
    /** 95 % Student-t interval of the mean Dice, [low, high] (null-valued with fewer than 2 lesion images). */
    meanDiceCi95: [number, number];
    meanIou: number;
    medianHd95: number;
    /** Mean Dice over lesion images by decision. */
    meanDiceByDecision: Record<string, { n: number; meanDice: number }>;
    /** Normal images that got a non-empty mask. */
    falseMasks: number;
  };
  classification: { n: number; accuracy: number; aurocMacro: number; ece: number; classes: string[] };
  ood: {
    inDistribution: number;
    ood: number;
    /** Over all OOD images, far and near together. */
    auroc: number;
    fprAt95Tpr: number;
    flaggedOod: number;
    flaggedIn: number;
    roc?: { fpr: number[]; tpr: number[] };
    /** Per family, present when the truth folder lists images of it (ood.csv: far, near-ood.csv: near). */
    far?: OodFamilyEvaluation;
    near?: OodFamilyEvaluation;
    /** Per kind of OOD image (the `kind` column), each against all in-distribution images. */
    byKind?: Record<string, OodFamilyEvaluation & { family: OodFamily }>;
  };
  /** Ranking of lesion images by review priority vs 1 − Dice. */
  riskCoverage: { n: number; aurc: number; randomAurc: number; coverage: number[]; risk: number[] };
  decisions: Record<string, number>;
  perImage: ImageEvaluation[];
}

interface TruthRow {
  image: string;
  label?: string;
  mask?: string;
  ood: boolean;
  family?: OodFamily;
  kind?: string;
}

async function readCsv(path: string): Promise<Record<string, string>[]> {
  return parse(await readFile(path, 'utf8'), { columns: true, skip_empty_lines: true, trim: true }) as Record<string, string>[];
}

/** Read results.jsonl (the last line per image wins, so a resumed run counts once). */
export async function readResults(run: string): Promise<ImageResult[]> {
  const p = join(run, 'results.jsonl');
  if (!existsSync(p)) throw new MedmaskError('NOT_FOUND', `${run}: no results.jsonl`, { hint: 'pass the folder an annotate run wrote with --out' });
  const byImage = new Map<string, ImageResult>();
  (await readFile(p, 'utf8')).split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try {
      const r = JSON.parse(line) as ImageResult;
      byImage.set(r.image, r);
    } catch {
      throw new MedmaskError('CORRUPT_FILE', `${p}: line ${i + 1} is not JSON`, { hint: 'the run was interrupted mid-write: delete that line and re-run annotate to resume' });
    }
  });
  return [...byImage.values()];
}

/**
 * Evaluate a run against truth and write RUN/evaluation.json.
 * @param run - the annotate output folder
 * @param truthDir - folder with labels.csv (+ masks) and optionally ood.csv
 * @param opts - normal class names (default: healthy, normal, negative); the truth CSV's label column (default label)
 * @returns the evaluation
 */
export async function evaluateRun(run: string, truthDir: string, opts: { normalClasses?: string[]; labelColumn?: string } = {}): Promise<Evaluation> {
  const normal = new Set(opts.normalClasses ?? ['healthy', 'normal', 'negative']);
  const labelsCsv = join(truthDir, 'labels.csv');
  if (!existsSync(labelsCsv)) throw new MedmaskError('NOT_FOUND', `${truthDir}: no labels.csv`, { hint: 'the truth folder needs labels.csv with columns image,label[,mask] (medmask phantoms 2d writes one)' });
  const truth = new Map<string, TruthRow>();
  const byStem = new Map<string, TruthRow>();
  const add = (t: TruthRow) => {
    truth.set(t.image, t);
    byStem.set(stemOf(t.image), t);
  };
  const labelColumn = opts.labelColumn ?? 'label';
  const rowsIn = await readCsv(labelsCsv);
  if (rowsIn[0] && rowsIn[0][labelColumn] === undefined) throw new MedmaskError('USAGE', `${labelsCsv}: no column "${labelColumn}"`, { hint: `columns: ${Object.keys(rowsIn[0]).join(', ')}` });
  for (const r of rowsIn) add({ image: r.image ?? '', ...(r[labelColumn] ? { label: r[labelColumn] } : {}), ...(r.mask ? { mask: r.mask } : {}), ood: false });
  if (existsSync(join(truthDir, 'ood.csv'))) for (const r of await readCsv(join(truthDir, 'ood.csv'))) add({ image: r.image ?? '', ood: true, family: 'far', ...(r.kind ? { kind: r.kind } : {}) });
  if (existsSync(join(truthDir, 'near-ood.csv'))) for (const r of await readCsv(join(truthDir, 'near-ood.csv'))) add({ image: r.image ?? '', ood: true, family: 'near', ...(r.kind ? { kind: r.kind } : {}) });

  const results = await readResults(run);
  const per: ImageEvaluation[] = [];
  const classes = new Set<string>();
  for (const r of results) for (const k of Object.keys(r.probabilities ?? {})) classes.add(k);
  const classList = [...classes];
  const clsRows: { probs: number[]; label: number; conf: number; correct: number }[] = [];
  const oodScores: number[] = [], oodIs: number[] = [], oodKinds: (string | undefined)[] = [], oodFamilies: (OodFamily | undefined)[] = [];
  const decisions: Record<string, number> = {};
  let flaggedOod = 0, flaggedIn = 0, falseMasks = 0;
  for (const r of results) {
    const t = truth.get(r.image) ?? byStem.get(stemOf(r.image));
    if (r.decision) decisions[r.decision] = (decisions[r.decision] ?? 0) + 1;
    if (r.status !== 'ok') decisions.error = (decisions.error ?? 0) + 1;
    if (!t || r.status !== 'ok') continue;
    const e: ImageEvaluation = { image: r.image, ood: t.ood, ...(t.family ? { oodFamily: t.family } : {}), ...(t.kind ? { oodKind: t.kind } : {}), ...(t.label ? { truthLabel: t.label } : {}), ...(r.predicted ? { predicted: r.predicted } : {}), ...(r.decision ? { decision: r.decision } : {}), ...(r.priority !== undefined ? { priority: r.priority } : {}) };
    if (r.ood?.score !== undefined) {
      oodScores.push(r.ood.score);
      oodIs.push(t.ood ? 1 : 0);
      oodFamilies.push(t.family);
      oodKinds.push(t.kind);
    }
    if (r.decision === 'ood') t.ood ? flaggedOod++ : flaggedIn++;
    if (!t.ood && t.label && r.probabilities && r.predicted) {
      e.correct = r.predicted === t.label;
      const li = classList.indexOf(t.label);
      if (li >= 0) clsRows.push({ probs: classList.map((c) => r.probabilities![c] ?? 0), label: li, conf: r.probabilities[r.predicted] ?? 0, correct: e.correct ? 1 : 0 });
    }
    if (!t.ood && t.mask) {
      const tm = await readVolume(join(truthDir, t.mask));
      const tbin = Uint8Array.from(tm.data as ArrayLike<number>, (v) => (v ? 1 : 0));
      e.truthPixels = tbin.reduce((a, b) => a + b, 0);
      let pbin = new Uint8Array(tbin.length);
      if (r.mask && existsSync(join(run, r.mask))) {
        const pm = await readVolume(join(run, r.mask));
        if (pm.data.length !== tbin.length) throw new MedmaskError('GEOMETRY_MISMATCH', `${r.mask}: ${pm.shape.join('×')} but the truth ${t.mask} is ${tm.shape.join('×')}`, { hint: 'masks must be written at image resolution' });
        pbin = Uint8Array.from(pm.data as ArrayLike<number>, (v) => (v ? 1 : 0));
      }
      const predPixels = pbin.reduce((a, b) => a + b, 0);
      if (e.truthPixels > 0) {
        e.dice = dice(pbin, tbin);
        e.iou = iou(pbin, tbin);
        const h = hd95(pbin, tbin, tm.shape, tm.spacing);
        if (Number.isFinite(h)) e.hd95 = h;
      } else if (predPixels > 0 && (!t.label || normal.has(t.label))) falseMasks++;
    }
    per.push(e);
  }
  const lesion = per.filter((e) => e.dice !== undefined);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
  const byDecision: Record<string, { n: number; meanDice: number }> = {};
  for (const d of ['accept', 'review', 'ood']) {
    const xs = lesion.filter((e) => e.decision === d).map((e) => e.dice!);
    if (xs.length) byDecision[d] = { n: xs.length, meanDice: mean(xs) };
  }
  const hds = lesion.map((e) => e.hd95).filter((h): h is number => h !== undefined).sort((a, b) => a - b);
  const rc = riskCoverage(lesion.map((e) => e.priority ?? 0), lesion.map((e) => 1 - e.dice!));
  const k = classList.length;
  const diceCi = meanCi95(lesion.map((e) => e.dice!));
  /** The OOD images that `pick` selects (by index into the scored lists) against all in-distribution images. */
  const against = (pick: (i: number) => boolean, inGroup: (e: ImageEvaluation) => boolean): OodFamilyEvaluation | undefined => {
    const keep = oodIs.map((x, i) => !x || pick(i));
    const scores = oodScores.filter((_, i) => keep[i]), is = oodIs.filter((_, i) => keep[i]);
    const n = is.filter((x) => x).length;
    if (!n) return undefined;
    const routed: Record<string, number> = {};
    for (const e of per) if (e.ood && inGroup(e) && e.decision) routed[e.decision] = (routed[e.decision] ?? 0) + 1;
    return { n, auroc: auroc(scores, is), fprAt95Tpr: fprAtTpr(scores, is), flagged: routed.ood ?? 0, routed };
  };
  const family = (f: OodFamily) => against((i) => oodFamilies[i] === f, (e) => e.oodFamily === f);
  const far = family('far'), near = family('near');
  const byKind: Record<string, OodFamilyEvaluation & { family: OodFamily }> = {};
  for (const [i, kind] of oodKinds.entries()) {
    const f = oodFamilies[i];
    if (!kind || !f || byKind[kind]) continue;
    const r = against((j) => oodKinds[j] === kind && oodFamilies[j] === f, (e) => e.oodKind === kind && e.oodFamily === f);
    if (r) byKind[kind] = { family: f, ...r };
  }
  const evaluation: Evaluation = {
    images: results.length,
    matched: per.length,
    segmentation: {
      lesionImages: lesion.length,
      meanDice: mean(lesion.map((e) => e.dice!)),
      meanDiceCi95: [diceCi.low, diceCi.high],
      meanIou: mean(lesion.map((e) => e.iou!)),
      medianHd95: hds.length ? hds[Math.floor(hds.length / 2)]! : NaN,
      meanDiceByDecision: byDecision,
      falseMasks,
    },
    classification: {
      n: clsRows.length,
      accuracy: mean(clsRows.map((c) => c.correct)),
      aurocMacro: k >= 2 && clsRows.length ? (k === 2 ? auroc(clsRows.map((c) => c.probs[1]!), clsRows.map((c) => c.label === 1)) : multiclassAuroc(clsRows.flatMap((c) => c.probs), clsRows.map((c) => c.label), k).macro) : NaN,
      ece: ece(clsRows.map((c) => c.conf), clsRows.map((c) => c.correct)),
      classes: classList,
    },
    ood: {
      inDistribution: oodIs.filter((x) => !x).length,
      ood: oodIs.filter((x) => x).length,
      auroc: auroc(oodScores, oodIs),
      fprAt95Tpr: oodIs.some((x) => x) ? fprAtTpr(oodScores, oodIs) : NaN,
      flaggedOod,
      flaggedIn,
      ...(far ? { far } : {}),
      ...(near ? { near } : {}),
      ...(Object.keys(byKind).length ? { byKind } : {}),
      ...(oodIs.some((x) => x) && oodIs.some((x) => !x) ? { roc: (({ fpr, tpr }) => ({ fpr, tpr }))(rocCurve(oodScores, oodIs)) } : {}),
    },
    riskCoverage: { n: lesion.length, aurc: rc.aurc, randomAurc: mean(lesion.map((e) => 1 - e.dice!)), coverage: rc.coverage, risk: rc.risk },
    decisions,
    perImage: per,
  };
  // The risk is computed with the most confident first: priority is "higher = review first", so
  // it already sorts as an uncertainty.
  await atomicWrite(join(run, 'evaluation.json'), JSON.stringify(evaluation, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 1) + '\n');
  return evaluation;
}
