/**
 * The effort report of an AbdomenAtlas-8K campaign (Qu et al., NeurIPS 2023): expert minutes per
 * review policy (annotate every missing organ by hand / review every case / review the top N % by
 * priority / review a random N %), speed-ups against by-hand annotation (the paper's "533×"), and —
 * where ground truth exists — Dice of the final labels before and after review, Dice against the
 * fraction reviewed (ranked vs random vs oracle at the same budget per source), and how attention
 * tracks real error. Written as `report.json` and one self-contained, offline `report.html`
 * (inline SVG charts, no scripts from elsewhere).
 *
 * The numbers come from `core/atlas/effort.ts` and `core/atlas/attention-eval.ts`; this module
 * assembles and renders them. {@link buildAtlasReport} is pure; {@link writeAtlasReport} writes.
 * @module
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MedmaskError } from '../core/errors.js';
import { meanLabelDice } from '../core/metrics/segmentation.js';
import { mergeLabels } from '../core/atlas/merge.js';
import { esc, histogram, lineChart } from '../core/report/svg.js';
import {
  binAttentionVsError, calendarSpeedup, effortRates, expectedRandomDice, meanDiceWith, policyEffort, reviewCurve, spearman,
  type AttentionErrorBin, type CaseOutcome, type EffortRates, type PolicyEffort, type ReviewCurvePoint,
} from '../core/atlas/effort.js';
import { rankCases, selectForReview } from '../core/atlas/ranking.js';
import { addDetection, compareAttention, detectionRates, emptyDetection, organError, type DetectionCounts, type DetectionRates } from '../core/atlas/attention-eval.js';
import { atomicWrite } from '../io/atomic.js';
import { readVolume } from '../io/index.js';
import { readAtlasDataset, type AtlasRankResult, type CaseAttention } from './atlas.js';

/** A case in the report. */
export interface ReportCase extends CaseOutcome {
  /** Reviewed in this campaign (by the ranked policy, or however it was chosen). */
  selected?: boolean;
  /** Where ground truth exists: mean Dice of the final labels as merged (reviewed or not). */
  finalDice?: number;
}

/** What the report is built from. */
export interface AtlasReportInput {
  /** Heading (default "AbdomenAtlas effort report"). */
  title?: string;
  /** Free-form facts about the run, shown as a table (data set, models, seed, …). */
  context?: Record<string, string | number | boolean>;
  cases: ReportCase[];
  /** Organ names of the label set. */
  organs: string[];
  /** The campaign's review fraction for the ranked and random policies (default 0.05). */
  reviewFraction?: number;
  /** Expert rates (defaults: the paper's 60 min per organ by hand, 15 min per reviewed CT). */
  rates?: Partial<EffortRates>;
  /** Budgets of the Dice-vs-fraction curve (default 0, 5, 10, 20, 30, 50, 75, 100 %). */
  fractions?: number[];
  /** Random draws per budget (default 200) and their seed (default 1). */
  randomDraws?: number;
  seed?: number;
  /** Attention against real error, where truth exists. */
  attention?: {
    counts: DetectionCounts;
    perOrgan?: Record<string, DetectionCounts>;
    /** Per case and organ: flagged voxels and voxels the pseudo-label gets wrong. */
    pairs?: { attention: number; error: number; case?: string; organ?: string }[];
    minRegionVoxels?: number;
  };
  /** Calendar weeks the campaign took, for the paper-style calendar speed-up. */
  campaignWeeks?: number;
  /** Minutes the models ran (compute, not expert time). */
  modelMinutes?: number;
}

/** A policy's effort and, where truth exists, the Dice it ends with. */
export interface ReportPolicy extends PolicyEffort {
  /** Mean Dice of the final labels under this policy (by-hand: not simulated). */
  dice?: number;
}

/** The report, as written to report.json. */
export interface AtlasReport {
  title: string;
  generated: string;
  context: Record<string, string | number | boolean>;
  rates: EffortRates;
  cases: number;
  sources: Record<string, number>;
  organs: string[];
  /** Organ-instances without an original label: what by-hand annotation costs. */
  organsToAnnotate: number;
  reviewFraction: number;
  policies: ReportPolicy[];
  /** Ranked policy against by-hand annotation. */
  headline: { policy: string; expertMinutes: number; byHandMinutes: number; minutesSaved: number; speedup: number; calendarSpeedup?: number; diceBefore?: number; diceAfter?: number };
  /** Cases reviewed in the campaign. */
  selected: string[];
  priorities: { id: string; source: string; priority: number; selected: boolean; diceBefore?: number; diceAfter?: number; errorVoxels?: number }[];
  curve?: ReviewCurvePoint[];
  attention?: {
    rates: DetectionRates;
    counts: DetectionCounts;
    perOrgan?: Record<string, DetectionRates & { errorVoxels: number; attentionVoxels: number }>;
    /** Spearman correlation of attention and real error over case-organ pairs. */
    spearman?: number;
    bins?: AttentionErrorBin[];
    minRegionVoxels?: number;
  };
  modelMinutes?: number;
  campaignWeeks?: number;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const pct = (f: number) => `${+(f * 100).toFixed(1)}%`;

/**
 * Assemble the report: policies, headline, curves, attention statistics.
 * @param input - cases with priorities (and Dice / errors where truth exists), rates, budgets
 * @returns the report object
 * @throws MedmaskError USAGE without cases, with a bad fraction or rate
 * @example
 * const report = buildAtlasReport({ cases, organs: ORGANS, reviewFraction: 0.05 });
 * report.headline.speedup; // by-hand minutes / review minutes
 */
export function buildAtlasReport(input: AtlasReportInput): AtlasReport {
  const cases = input.cases;
  if (!cases.length) throw new MedmaskError('USAGE', 'the report has no cases', { hint: 'rank the cases first (medmask atlas rank) or run a campaign' });
  const rates = effortRates(input.rates);
  const fraction = input.reviewFraction ?? 0.05;
  if (!(fraction > 0 && fraction <= 1)) throw new MedmaskError('USAGE', `review fraction ${fraction} must be in (0, 1]`, { hint: 'e.g. 0.05 for 5 %' });
  const fractions = [...new Set([...(input.fractions ?? [0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1]), fraction])].sort((a, b) => a - b);
  const sources: Record<string, number> = {};
  for (const c of cases) sources[c.source] = (sources[c.source] ?? 0) + 1;
  const organsToAnnotate = cases.reduce((s, c) => s + c.organsToAnnotate, 0);
  const withDice = cases.every((c) => c.diceBefore !== undefined && c.diceAfter !== undefined);
  const selected = cases.some((c) => c.selected !== undefined) ? new Set(cases.filter((c) => c.selected).map((c) => c.id)) : new Set(selectForReview(rankCases(cases), { fraction }).map((c) => c.id));
  const curve = withDice ? reviewCurve(cases, fractions, { draws: input.randomDraws ?? 200, seed: input.seed ?? 1 }) : undefined;
  const all = new Set(cases.map((c) => c.id));
  const none = new Set<string>();
  const dice = (sel: Set<string>) => (withDice ? meanDiceWith(cases, sel) : undefined);
  const withD = (p: PolicyEffort, d: number | undefined): ReportPolicy => (d === undefined ? p : { ...p, dice: d });
  // Random review at the same budget per source as the selection actually made (exact expectation).
  const perSource = new Map<string, number>();
  for (const c of cases) if (selected.has(c.id)) perSource.set(c.source, (perSource.get(c.source) ?? 0) + 1);
  const policies: ReportPolicy[] = [
    policyEffort({ policy: 'by-hand', description: 'annotate every organ without an original label by hand' }, { organsByHand: organsToAnnotate }, organsToAnnotate, rates),
    withD(policyEffort({ policy: 'no-review', description: 'accept the pseudo-labels (original > pseudo), no expert time' }, {}, organsToAnnotate, rates), dice(none)),
    withD(policyEffort({ policy: 'review-all', description: 'review every case' }, { reviewedCases: cases.length }, organsToAnnotate, rates), dice(all)),
    withD(policyEffort({ policy: `ranked-${pct(fraction)}`, description: `review the top ${pct(fraction)} of each source by attention priority (cases with priority 0 are not reviewed)` }, { reviewedCases: selected.size }, organsToAnnotate, rates), dice(selected)),
    withD(policyEffort({ policy: `random-${pct(fraction)}`, description: 'review as many cases per source, drawn at random (expected Dice)' }, { reviewedCases: selected.size }, organsToAnnotate, rates), withDice ? expectedRandomDice(cases, perSource) : undefined),
  ];
  const main = policies[3]!;
  const byHand = policies[0]!;
  const report: AtlasReport = {
    title: input.title ?? 'AbdomenAtlas effort report',
    generated: new Date().toISOString(),
    context: input.context ?? {},
    rates,
    cases: cases.length,
    sources,
    organs: input.organs,
    organsToAnnotate,
    reviewFraction: fraction,
    policies,
    headline: {
      policy: main.policy,
      expertMinutes: main.expertMinutes,
      byHandMinutes: byHand.expertMinutes,
      minutesSaved: main.minutesSaved,
      speedup: main.speedup,
      ...(input.campaignWeeks !== undefined ? { calendarSpeedup: calendarSpeedup(byHand.expertMinutes, input.campaignWeeks, rates) } : {}),
      ...(withDice ? { diceBefore: meanDiceWith(cases, none), diceAfter: meanDiceWith(cases, selected) } : {}),
      ...(!withDice && cases.every((c) => c.diceBefore !== undefined) ? { diceBefore: mean(cases.map((c) => c.diceBefore!)) } : {}),
      ...(!withDice && cases.every((c) => c.finalDice !== undefined) ? { diceAfter: mean(cases.map((c) => c.finalDice!)) } : {}),
    },
    selected: [...selected].sort(),
    priorities: [...cases].sort((a, b) => b.priority - a.priority || (a.id < b.id ? -1 : 1)).map((c) => ({
      id: c.id, source: c.source, priority: c.priority, selected: selected.has(c.id),
      ...(c.diceBefore !== undefined ? { diceBefore: c.diceBefore } : {}),
      ...(c.diceAfter !== undefined ? { diceAfter: c.diceAfter } : {}),
      ...(c.errorVoxels !== undefined ? { errorVoxels: c.errorVoxels } : {}),
    })),
    ...(curve ? { curve } : {}),
    ...(input.modelMinutes !== undefined ? { modelMinutes: input.modelMinutes } : {}),
    ...(input.campaignWeeks !== undefined ? { campaignWeeks: input.campaignWeeks } : {}),
  };
  if (input.attention) {
    const a = input.attention;
    const pairs = a.pairs ?? [];
    report.attention = {
      rates: detectionRates(a.counts),
      counts: a.counts,
      ...(a.perOrgan ? { perOrgan: Object.fromEntries(Object.entries(a.perOrgan).map(([o, c]) => [o, { ...detectionRates(c), errorVoxels: c.errorVoxels, attentionVoxels: c.attentionVoxels }])) } : {}),
      ...(pairs.length > 1 ? { spearman: spearman(pairs.map((p) => p.attention), pairs.map((p) => p.error)), bins: binAttentionVsError(pairs, Math.min(10, pairs.length)) } : {}),
      ...(a.minRegionVoxels !== undefined ? { minRegionVoxels: a.minRegionVoxels } : {}),
    };
  }
  return report;
}

const num = (v: number | undefined, d = 3) => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(d));
const sig = (v: number) => (v === 0 ? '0' : Number.isFinite(v) ? String(Number(v.toPrecision(3))) : '–');
const int = (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '∞');

/**
 * The report as one self-contained HTML page (inline SVG, inline CSS, nothing fetched).
 * @param r - the report
 * @returns HTML text
 */
export function renderAtlasReportHtml(r: AtlasReport): string {
  const h = r.headline;
  const plots: string[] = [];
  plots.push(histogram(r.priorities.map((p) => p.priority), { title: 'Case priority (attention voxels, unlabelled organs)', xLabel: 'priority', yLabel: 'cases' }, Math.min(20, Math.max(5, Math.ceil(Math.sqrt(r.cases))))));
  if (r.curve) {
    const x = r.curve.map((p) => p.fraction);
    const series = [
      { name: 'ranked by priority', x, y: r.curve.map((p) => p.ranked) },
      { name: 'random (mean)', x, y: r.curve.map((p) => p.random), color: '#999' },
      { name: 'random 5th percentile', x, y: r.curve.map((p) => p.randomP05), color: '#bbb', dashed: true },
      { name: 'random 95th percentile', x, y: r.curve.map((p) => p.randomP95), color: '#bbb', dashed: true },
    ];
    if (r.curve.every((p) => p.oracle !== undefined)) series.push({ name: 'oracle (most error first)', x, y: r.curve.map((p) => p.oracle!), color: '#2ca02c', dashed: true });
    plots.push(lineChart(series, { title: 'Dice of final labels vs fraction reviewed', xLabel: 'fraction of cases reviewed (per source)', yLabel: 'mean Dice', xRange: [0, 1] }));
    if (r.curve.every((p) => p.errorShareRanked !== undefined)) {
      plots.push(lineChart([
        { name: 'ranked', x, y: r.curve.map((p) => p.errorShareRanked!) },
        { name: 'random (mean)', x, y: r.curve.map((p) => p.errorShareRandom!), color: '#999' },
        { name: 'oracle', x, y: r.curve.map((p) => p.errorShareOracle!), color: '#2ca02c', dashed: true },
      ], { title: 'Share of label errors inside reviewed cases', xLabel: 'fraction of cases reviewed (per source)', yLabel: 'share of error voxels', xRange: [0, 1], yRange: [0, 1] }));
    }
  }
  if (r.attention?.bins?.length) {
    const b = r.attention.bins;
    plots.push(lineChart([{ name: `mean real error per attention decile (Spearman ${num(r.attention.spearman, 2)})`, x: b.map((p) => p.attention), y: b.map((p) => p.error) }], { title: 'Attention vs actual error (case × organ)', xLabel: 'attention voxels', yLabel: 'pseudo-label error voxels' }));
  }
  const pol = r.policies.map((p) => `<tr><td><b>${esc(p.policy)}</b></td><td>${esc(p.description)}</td><td>${p.reviewedCases}</td><td>${p.organsByHand}</td><td>${int(p.expertMinutes)}</td><td>${num(p.expertHours, 1)}</td><td>${sig(p.workingYears)}</td><td>${p.speedup === Infinity ? '∞' : `${num(p.speedup, 1)}×`}</td><td>${int(p.minutesSaved)}</td><td>${num(p.dice)}</td></tr>`).join('');
  const att = r.attention;
  const attTable = att
    ? `<h2>Attention vs real errors</h2><table><tr><th></th><th>sensitivity</th><th>precision</th></tr>
<tr><td>voxel level</td><td>${num(att.rates.voxelSensitivity)}</td><td>${num(att.rates.voxelPrecision)}</td></tr>
<tr><td>region level${att.minRegionVoxels ? ` (components ≥ ${att.minRegionVoxels} voxels)` : ''}, touching</td><td>${num(att.rates.regionSensitivity)}</td><td>${num(att.rates.regionPrecision)}</td></tr>
<tr><td>region level, at least half covered</td><td>${num(att.rates.regionSensitivityHalf)}</td><td>${num(att.rates.regionPrecisionHalf)}</td></tr></table>
<p><small>Paper (real models, real CT): 0.78 sensitivity / 0.83 precision. Error = where the pseudo-label and the truth disagree about an organ.</small></p>
${att.perOrgan ? `<table><tr><th>organ</th><th>error voxels</th><th>attention voxels</th><th>voxel sens.</th><th>voxel prec.</th><th>region sens.</th><th>region prec.</th></tr>${Object.entries(att.perOrgan).map(([o, x]) => `<tr><td>${esc(o)}</td><td>${int(x.errorVoxels)}</td><td>${int(x.attentionVoxels)}</td><td>${num(x.voxelSensitivity)}</td><td>${num(x.voxelPrecision)}</td><td>${num(x.regionSensitivity)}</td><td>${num(x.regionPrecision)}</td></tr>`).join('')}</table>` : ''}`
    : '';
  const curveTable = r.curve
    ? `<h2>Dice vs fraction reviewed</h2><table><tr><th>fraction</th><th>cases</th><th>ranked</th><th>random (mean)</th><th>random 5–95 %</th><th>ranked ≥ random in</th><th>oracle</th><th>error share ranked / random</th></tr>${r.curve.map((p) => `<tr><td>${pct(p.fraction)}</td><td>${p.reviewed}</td><td>${num(p.ranked, 4)}</td><td>${num(p.random, 4)}</td><td>${num(p.randomP05, 4)}–${num(p.randomP95, 4)}</td><td>${pct(p.rankedBeatsRandom)} of draws</td><td>${num(p.oracle, 4)}</td><td>${num(p.errorShareRanked, 2)} / ${num(p.errorShareRandom, 2)}</td></tr>`).join('')}</table>`
    : '<p>No ground truth: Dice before / after review and the curves need it.</p>';
  const ctx = Object.entries(r.context).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(String(v))}</td></tr>`).join('');
  const rows = r.priorities.map((p, i) => `<tr${p.selected ? ' class="sel"' : ''}><td>${i + 1}</td><td>${esc(p.id)}</td><td>${esc(p.source)}</td><td>${int(p.priority)}</td><td>${p.selected ? 'yes' : ''}</td><td>${num(p.diceBefore)}</td><td>${num(p.diceAfter)}</td><td>${p.errorVoxels !== undefined ? int(p.errorVoxels) : '–'}</td></tr>`).join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(r.title)}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}
th{background:#f6f6f6}.big{font-size:20px}.plots{display:flex;flex-wrap:wrap;gap:16px}small{color:#555}tr.sel td{background:#fff6e0}</style></head><body>
<h1>${esc(r.title)}</h1><p><small>generated ${esc(r.generated)} · ${r.cases} cases from ${Object.entries(r.sources).map(([s, n]) => `${esc(s)} (${n})`).join(', ')} · ${r.organs.length} organs · ${r.organsToAnnotate} organ-instances without an original label</small></p>
<p class="big">Reviewing <b>${r.selected.length}</b> cases (${esc(h.policy)}) costs <b>${int(h.expertMinutes)}</b> expert minutes against <b>${int(h.byHandMinutes)}</b> by hand: <b>${h.speedup === Infinity ? '∞' : num(h.speedup, 1)}×</b> less expert time, ${int(h.minutesSaved)} minutes saved${h.calendarSpeedup !== undefined ? `; ${num(h.calendarSpeedup, 0)}× in calendar time (${r.campaignWeeks} weeks)` : ''}.${h.diceBefore !== undefined ? ` Mean Dice ${num(h.diceBefore)} → ${num(h.diceAfter)} after review.` : ''}</p>
<p><small>Rates: ${r.rates.minutesPerOrganByHand} min per organ by hand, ${r.rates.minutesPerReviewedCase} min per reviewed case, ${r.rates.workingHoursPerYear} working hours a year (AbdomenAtlas-8K, Qu et al. 2023: 8 organs × 8,000 CTs by hand ≈ 30.8 years; 400 reviewed CTs in ≈ 3 weeks, "533×").${r.modelMinutes !== undefined ? ` Models ran ${num(r.modelMinutes, 1)} min (compute, not expert time).` : ''}</small></p>
<h2>Policies</h2><table><tr><th>policy</th><th></th><th>cases reviewed</th><th>organs by hand</th><th>expert min</th><th>hours</th><th>working years</th><th>speed-up</th><th>min saved</th><th>mean Dice</th></tr>${pol}</table>
<div class="plots">${plots.join('')}</div>
${curveTable}${attTable}
${ctx ? `<h2>Run</h2><table>${ctx}</table>` : ''}
<h2>Cases by priority</h2><table><tr><th>#</th><th>case</th><th>source</th><th>priority</th><th>reviewed</th><th>Dice before</th><th>Dice after review</th><th>error voxels</th></tr>${rows}</table>
</body></html>\n`;
}

/**
 * Write `report.json` and `report.html` into a folder.
 * @param report - from {@link buildAtlasReport}
 * @param dir - output folder (created)
 * @returns the paths written
 * @example
 * await writeAtlasReport(buildAtlasReport(input), 'work/report');
 */
export async function writeAtlasReport(report: AtlasReport, dir: string): Promise<{ json: string; html: string }> {
  const json = join(dir, 'report.json');
  const html = join(dir, 'report.html');
  await atomicWrite(json, JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 1) + '\n');
  await atomicWrite(html, renderAtlasReportHtml(report));
  return { json, html };
}

/** Options for {@link atlasReportFromWork}. */
export interface WorkReportOptions {
  /** Merged labels folder (OUT of `atlas merge`): Dice of the final labels where truth exists. */
  final?: string;
  /** Ground-truth label maps `<case>.nii.gz` (default DATA/truthTr when it exists). */
  truth?: string;
  /** Review fraction the ranking used (default: ranking.json's, else 0.05). */
  reviewFraction?: number;
  rates?: Partial<EffortRates>;
  campaignWeeks?: number;
  /** Smallest component counted at region level (default 8). */
  minRegionVoxels?: number;
  title?: string;
}

/**
 * The effort report of an atlas work folder after `atlas attention` and `atlas rank` (and
 * `atlas merge`): priorities and the selection from WORK/ranking.json; where ground truth exists,
 * Dice without review (original > pseudo), Dice of the merged labels, and attention against the
 * pseudo-label's real errors. Dice after review is only known for reviewed cases here, so the
 * ranked-vs-random curves need a simulated campaign (`runAtlasCampaign`).
 * @param data - the data set folder
 * @param work - the work folder
 * @param opts - merged labels, truth folder, rates
 * @returns the report (write it with {@link writeAtlasReport})
 * @throws MedmaskError NOT_FOUND without ranking.json or attention summaries
 * @example
 * await writeAtlasReport(await atlasReportFromWork('data', 'work', { final: 'final' }), 'work/report');
 */
export async function atlasReportFromWork(data: string, work: string, opts: WorkReportOptions = {}): Promise<AtlasReport> {
  const rankingPath = join(work, 'ranking.json');
  if (!existsSync(rankingPath)) throw new MedmaskError('NOT_FOUND', `${rankingPath}: no ranking`, { hint: 'run medmask atlas attention and medmask atlas rank first' });
  const ranking = JSON.parse(await readFile(rankingPath, 'utf8')) as AtlasRankResult;
  const atlas = await readAtlasDataset(data);
  const organs = atlas.organs;
  const truthDir = opts.truth ?? (existsSync(join(data, 'truthTr')) ? join(data, 'truthTr') : undefined);
  const byId = new Map(atlas.cases.map((c) => [c.id, c]));
  const counts = emptyDetection();
  const perOrgan: Record<string, DetectionCounts> = Object.fromEntries(organs.map((o) => [o.name, emptyDetection()]));
  const pairs: { attention: number; error: number; case: string; organ: string }[] = [];
  const cases: ReportCase[] = [];
  let evaluated = 0;
  for (const r of ranking.ranked) {
    const c = byId.get(r.id);
    const summaryPath = join(work, 'attention', `${r.id}.json`);
    if (!c || !existsSync(summaryPath)) throw new MedmaskError('NOT_FOUND', `case ${r.id} of ${rankingPath} has no ${c ? 'attention summary' : 'entry in the data set'}`, { hint: 'rank again after attention, on the same data set' });
    const summary = JSON.parse(await readFile(summaryPath, 'utf8')) as CaseAttention;
    const labelled = summary.labelled;
    const unlabelled = organs.filter((o) => !labelled.includes(o.name));
    const rc: ReportCase = { id: r.id, source: r.source, priority: r.priority, organsToAnnotate: unlabelled.length, selected: r.selected };
    const truthFile = truthDir ? join(truthDir, `${r.id}.nii.gz`) : undefined;
    const pseudoFile = join(work, 'pseudo', `${r.id}.nii.gz`);
    if (truthFile && existsSync(truthFile) && existsSync(pseudoFile)) {
      const truth = await readVolume(truthFile);
      const n = truth.data.length;
      const pseudo = (await readVolume(pseudoFile)).data;
      const partial = c.label ? (await readVolume(c.label)).data : new Uint8Array(n);
      const all = organs.map((o) => o.value);
      const before = mergeLabels({ original: { data: partial, organs: organs.filter((o) => labelled.includes(o.name)).map((o) => o.value) }, pseudo: { data: pseudo, organs: all } }, all, n).data;
      const scored = unlabelled.map((o) => o.value);
      rc.diceBefore = meanLabelDice(before, truth.data, scored);
      let e = 0;
      for (let v = 0; v < n; v++) if (before[v] !== truth.data[v]) e++;
      rc.errorVoxels = e;
      const finalFile = opts.final ? join(opts.final, 'labelsTr', `${r.id}.nii.gz`) : undefined;
      if (finalFile && existsSync(finalFile)) rc.finalDice = meanLabelDice((await readVolume(finalFile)).data, truth.data, scored);
      for (const o of organs) {
        const heatFile = join(work, 'attention', r.id, `${o.name}.nii.gz`);
        const a = existsSync(heatFile) ? (await readVolume(heatFile)).data : new Uint8Array(n);
        const cmp = compareAttention(a, organError(pseudo, truth.data, o.value), truth.shape, opts.minRegionVoxels ?? 8);
        addDetection(counts, cmp);
        addDetection(perOrgan[o.name]!, cmp);
        pairs.push({ attention: cmp.attentionVoxels, error: cmp.errorVoxels, case: r.id, organ: o.name });
      }
      evaluated++;
    }
    cases.push(rc);
  }
  const fraction = opts.reviewFraction ?? ranking.options?.fraction ?? 0.05;
  return buildAtlasReport({
    title: opts.title ?? 'AbdomenAtlas effort report',
    context: { data, work, ...(opts.final ? { 'merged labels': opts.final } : {}), 'cases with ground truth': evaluated },
    cases,
    organs: organs.map((o) => o.name),
    reviewFraction: fraction,
    ...(opts.rates ? { rates: opts.rates } : {}),
    ...(opts.campaignWeeks !== undefined ? { campaignWeeks: opts.campaignWeeks } : {}),
    ...(evaluated ? { attention: { counts, perOrgan, pairs, minRegionVoxels: opts.minRegionVoxels ?? 8 } } : {}),
  });
}
