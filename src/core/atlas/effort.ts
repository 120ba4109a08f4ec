/**
 * Expert effort of an annotation campaign, and what review policies buy — the numbers behind
 * AbdomenAtlas-8K's headline (Qu et al., NeurIPS 2023): annotating by hand costs about 60 minutes
 * per organ per CT, so 8 organs × 8,000 CTs ≈ 30.8 years of one expert's working time; their
 * campaign had a radiologist revise 400 CTs at about 15 minutes each and finished in ≈ 3 weeks,
 * "533×" faster.
 *
 * Two speed-ups are kept apart because the paper's 533 mixes them:
 * - **expert-time speed-up** = by-hand minutes / review minutes (400 × 15 min against 3.84 M min:
 *   640×);
 * - **calendar speed-up** = by-hand working years / campaign weeks (30.8 years × 52 / 3 weeks ≈
 *   533×), which also counts the time models run and people wait.
 *
 * Review policies compared at the same budget, per source (as the paper selects per source):
 * `ranked` (top of each source by priority), `random` (the same number of cases per source, drawn
 * at random), `oracle` (the cases with the most real error — an upper bound only a simulation
 * knows). Where ground truth exists each case carries its Dice without review and after review,
 * so any selection's outcome is the mean of one or the other per case.
 *
 * Pure: numbers in, numbers out.
 * @module
 */
import { MedmaskError } from '../errors.js';
import { Rng } from '../random.js';
import { rankCases, selectForReview } from './ranking.js';

/** Rates of expert time. */
export interface EffortRates {
  /** Minutes to annotate one organ in one CT by hand (paper: 60). */
  minutesPerOrganByHand: number;
  /** Minutes to review one flagged CT (paper: 15). */
  minutesPerReviewedCase: number;
  /** Working hours in a year, for "expert years" (default 2080 = 52 weeks × 40 h). */
  workingHoursPerYear: number;
}

/** The paper's rates: 60 min per organ by hand, 15 min per reviewed CT, 2080 working hours a year. */
export const PAPER_EFFORT_RATES: Readonly<EffortRates> = { minutesPerOrganByHand: 60, minutesPerReviewedCase: 15, workingHoursPerYear: 2080 };

/**
 * Resolve rates: defaults from the paper, each given one checked.
 * @param rates - any subset
 * @returns complete rates
 * @throws MedmaskError USAGE for a rate that is not a positive finite number
 * @example
 * effortRates({ minutesPerReviewedCase: 20 }).minutesPerOrganByHand; // 60
 */
export function effortRates(rates: Partial<EffortRates> = {}): EffortRates {
  const r = { ...PAPER_EFFORT_RATES, ...Object.fromEntries(Object.entries(rates).filter(([, v]) => v !== undefined)) } as EffortRates;
  for (const [k, v] of Object.entries(r)) {
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) {
      throw new MedmaskError('USAGE', `effort rate ${k} = ${String(v)} must be a positive number`, { hint: `the paper's value is ${PAPER_EFFORT_RATES[k as keyof EffortRates]}` });
    }
  }
  return r;
}

/** Expert minutes to annotate `organs` organ-instances by hand. */
export function byHandMinutes(organs: number, rates: EffortRates = PAPER_EFFORT_RATES): number {
  return organs * rates.minutesPerOrganByHand;
}

/** Expert minutes to review `cases` cases. */
export function reviewMinutes(cases: number, rates: EffortRates = PAPER_EFFORT_RATES): number {
  return cases * rates.minutesPerReviewedCase;
}

/** Minutes of expert time as working years of one expert. */
export function workingYears(minutes: number, rates: EffortRates = PAPER_EFFORT_RATES): number {
  return minutes / 60 / rates.workingHoursPerYear;
}

/**
 * The calendar speed-up the paper quotes: by-hand working time (in weeks of one expert) over the
 * campaign's calendar weeks.
 * @param byHand - by-hand expert minutes
 * @param campaignWeeks - calendar weeks the campaign took
 * @param rates - for the working hours per year
 * @returns the speed-up
 * @throws MedmaskError USAGE for weeks that are not positive
 * @example
 * calendarSpeedup(byHandMinutes(8000 * 8), 3); // ≈ 533 (Qu et al. 2023)
 */
export function calendarSpeedup(byHand: number, campaignWeeks: number, rates: EffortRates = PAPER_EFFORT_RATES): number {
  if (!(campaignWeeks > 0 && Number.isFinite(campaignWeeks))) throw new MedmaskError('USAGE', `campaign weeks ${campaignWeeks} must be a positive number`, { hint: 'the paper\'s campaign took 3 weeks' });
  return (workingYears(byHand, rates) * 52) / campaignWeeks;
}

/** Expert effort of one policy. */
export interface PolicyEffort {
  /** Short name: "by-hand", "review-all", "ranked-5%", "random-5%", … */
  policy: string;
  /** One line for people. */
  description: string;
  /** Cases an expert opens. */
  reviewedCases: number;
  /** Organ-instances annotated by hand (0 for review policies). */
  organsByHand: number;
  expertMinutes: number;
  expertHours: number;
  /** One expert's working years. */
  workingYears: number;
  /** By-hand minutes / this policy's minutes (1 for by-hand; Infinity when nothing is reviewed). */
  speedup: number;
  /** By-hand minutes − this policy's minutes. */
  minutesSaved: number;
}

/**
 * Effort of a policy against annotating every missing organ by hand.
 * @param policy - name and description
 * @param work - organs to annotate by hand, or cases to review
 * @param byHandOrgans - organ-instances the by-hand baseline annotates (the reference)
 * @param rates - expert rates
 * @returns the policy's minutes, years, speed-up and minutes saved
 * @example
 * policyEffort({ policy: 'ranked-5%', description: 'top 5 % per source' }, { reviewedCases: 400 }, 64000).speedup; // 640
 */
export function policyEffort(
  policy: { policy: string; description: string },
  work: { reviewedCases?: number; organsByHand?: number },
  byHandOrgans: number,
  rates: EffortRates = PAPER_EFFORT_RATES,
): PolicyEffort {
  const reviewed = work.reviewedCases ?? 0;
  const organs = work.organsByHand ?? 0;
  for (const [k, v] of [['reviewedCases', reviewed], ['organsByHand', organs], ['byHandOrgans', byHandOrgans]] as const) {
    if (!(Number.isInteger(v) && v >= 0)) throw new MedmaskError('USAGE', `${k} = ${v} must be a whole number ≥ 0`, { hint: 'count cases and organ-instances' });
  }
  const minutes = byHandMinutes(organs, rates) + reviewMinutes(reviewed, rates);
  const reference = byHandMinutes(byHandOrgans, rates);
  return {
    ...policy,
    reviewedCases: reviewed,
    organsByHand: organs,
    expertMinutes: minutes,
    expertHours: minutes / 60,
    workingYears: workingYears(minutes, rates),
    speedup: minutes > 0 ? reference / minutes : reference > 0 ? Infinity : 1,
    minutesSaved: reference - minutes,
  };
}

/** A case as the policy comparison sees it. */
export interface CaseOutcome {
  id: string;
  source: string;
  /** Review priority (attention voxels over the unlabelled organs, or any variant). */
  priority: number;
  /** Organs of this case without an original label (what by-hand annotation would cost). */
  organsToAnnotate: number;
  /** Where ground truth exists: mean Dice of the final labels without review (original > pseudo). */
  diceBefore?: number;
  /** …and after an expert reviewed the case (original > revised > pseudo). */
  diceAfter?: number;
  /** Where ground truth exists: voxels the final labels get wrong without review (for the oracle). */
  errorVoxels?: number;
}

/** How cases are chosen for review. */
export type SelectionStrategy = 'ranked' | 'random' | 'oracle';

function checkFraction(f: number): void {
  if (!(f >= 0 && f <= 1)) throw new MedmaskError('USAGE', `review fraction ${f} must be in [0, 1]`, { hint: 'e.g. 0.05 for 5 %' });
}

/**
 * Cases per source a review budget allows: `ceil(fraction × n)` of each source (the ranking's
 * {@link selectForReview} rule with zero-priority cases included, so every strategy spends the same).
 * @param cases - the cases
 * @param fraction - share reviewed, 0…1
 * @returns source → number of cases
 */
export function budgetPerSource(cases: readonly CaseOutcome[], fraction: number): Map<string, number> {
  checkFraction(fraction);
  const n = new Map<string, number>();
  for (const c of cases) n.set(c.source, (n.get(c.source) ?? 0) + 1);
  return new Map([...n].map(([s, k]) => [s, Math.ceil(fraction * k - 1e-9)]));
}

/**
 * Choose cases for review with a strategy at a budget of `fraction` per source.
 * @param cases - the cases
 * @param fraction - share per source, 0…1
 * @param strategy - ranked (priority, descending), random (seeded), oracle (error voxels, descending)
 * @param rng - random stream (random strategy only)
 * @returns the chosen case ids
 * @throws MedmaskError USAGE for a bad fraction, the oracle without error voxels, random without rng
 * @example
 * selectCases(cases, 0.05, 'ranked'); // the top 5 % of each source
 */
export function selectCases(cases: readonly CaseOutcome[], fraction: number, strategy: SelectionStrategy, rng?: Rng): Set<string> {
  checkFraction(fraction);
  if (strategy === 'ranked') {
    return new Set(selectForReview(rankCases(cases), { fraction, includeZero: true }).map((c) => c.id));
  }
  const budget = budgetPerSource(cases, fraction);
  const bySource = new Map<string, CaseOutcome[]>();
  for (const c of cases) bySource.set(c.source, [...(bySource.get(c.source) ?? []), c]);
  const out = new Set<string>();
  for (const [source, group] of [...bySource].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const k = budget.get(source)!;
    let order: CaseOutcome[];
    if (strategy === 'random') {
      if (!rng) throw new MedmaskError('USAGE', 'random selection needs a random stream', { hint: 'pass an Rng' });
      order = rng.shuffle([...group].sort((a, b) => (a.id < b.id ? -1 : 1)));
    } else if (strategy === 'oracle') {
      const missing = group.find((c) => c.errorVoxels === undefined);
      if (missing) throw new MedmaskError('USAGE', `case ${missing.id} has no error count, so the oracle cannot rank it`, { hint: 'the oracle needs ground truth for every case' });
      order = [...group].sort((a, b) => b.errorVoxels! - a.errorVoxels! || (a.id < b.id ? -1 : 1));
    } else {
      throw new MedmaskError('USAGE', `selection strategy "${String(strategy)}" is unknown`, { hint: 'use ranked, random or oracle' });
    }
    for (const c of order.slice(0, k)) out.add(c.id);
  }
  return out;
}

/**
 * Mean Dice of the final labels when the cases in `selected` are reviewed and the others are not.
 * @param cases - cases with diceBefore and diceAfter
 * @param selected - ids of reviewed cases
 * @returns the mean over cases
 * @throws MedmaskError USAGE when a case lacks the Dice it needs
 */
export function meanDiceWith(cases: readonly CaseOutcome[], selected: ReadonlySet<string>): number {
  if (!cases.length) return NaN;
  let s = 0;
  for (const c of cases) {
    const d = selected.has(c.id) ? c.diceAfter : c.diceBefore;
    if (d === undefined || !Number.isFinite(d)) throw new MedmaskError('USAGE', `case ${c.id} has no Dice ${selected.has(c.id) ? 'after' : 'before'} review`, { hint: 'Dice needs ground truth for every case' });
    s += d;
  }
  return s / cases.length;
}

/**
 * Expected mean Dice when `perSource` cases of each source are reviewed, drawn at random: each case
 * of source s is reviewed with probability k_s / n_s (exact, no draws).
 * @param cases - cases with diceBefore and diceAfter
 * @param perSource - source → cases reviewed there (missing sources: none)
 * @returns the expectation
 * @throws MedmaskError USAGE for a count above the source's cases or a case without Dice
 * @example
 * expectedRandomDice(cases, new Map([['lits', 1], ['kits', 1]]));
 */
export function expectedRandomDice(cases: readonly CaseOutcome[], perSource: ReadonlyMap<string, number>): number {
  const n = new Map<string, number>();
  for (const c of cases) n.set(c.source, (n.get(c.source) ?? 0) + 1);
  for (const [s, k] of perSource) {
    if (!(Number.isInteger(k) && k >= 0 && k <= (n.get(s) ?? 0))) throw new MedmaskError('USAGE', `${k} reviewed cases for source "${s}", which has ${n.get(s) ?? 0}`, { hint: 'review at most every case of a source' });
  }
  let sum = 0;
  for (const c of cases) {
    if (c.diceBefore === undefined || c.diceAfter === undefined) throw new MedmaskError('USAGE', `case ${c.id} has no Dice before / after review`, { hint: 'Dice needs ground truth for every case' });
    const q = (perSource.get(c.source) ?? 0) / n.get(c.source)!;
    sum += q * c.diceAfter + (1 - q) * c.diceBefore;
  }
  return cases.length ? sum / cases.length : NaN;
}

/** Share of all error voxels that sit in the selected cases (what a review can reach). */
export function errorShareOf(cases: readonly CaseOutcome[], selected: ReadonlySet<string>): number {
  let all = 0, hit = 0;
  for (const c of cases) {
    const e = c.errorVoxels ?? 0;
    all += e;
    if (selected.has(c.id)) hit += e;
  }
  return all > 0 ? hit / all : 0;
}

/** One budget on the review curve. */
export interface ReviewCurvePoint {
  fraction: number;
  /** Cases reviewed (the same for every strategy). */
  reviewed: number;
  /** Mean Dice with ranked selection. */
  ranked: number;
  /** Mean Dice with random selection: mean over draws, and the 5th / 95th percentiles. */
  random: number;
  randomP05: number;
  randomP95: number;
  /** Share of draws in which ranked selection did at least as well as random. */
  rankedBeatsRandom: number;
  /** Mean Dice with oracle selection (when error voxels are known). */
  oracle?: number;
  /** Share of the error voxels inside the reviewed cases: ranked, random (mean), oracle. */
  errorShareRanked?: number;
  errorShareRandom?: number;
  errorShareOracle?: number;
}

/** Options for {@link reviewCurve}. */
export interface ReviewCurveOptions {
  /** Random draws per budget (default 200). */
  draws?: number;
  /** Seed of the random draws (default 1). */
  seed?: number;
}

function quantile(sorted: readonly number[], q: number): number {
  if (!sorted.length) return NaN;
  const pos = (sorted.length - 1) * q, lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/**
 * Mean Dice of the final labels against the fraction of cases reviewed, for ranked, random and
 * (when error voxels are known) oracle selection at the same budget per source.
 * @param cases - cases with priorities and Dice before / after review
 * @param fractions - budgets, each in [0, 1]
 * @param opts - random draws and seed
 * @returns one point per budget
 * @example
 * reviewCurve(cases, [0, 0.05, 0.1, 0.25, 0.5, 1]).map((p) => p.ranked - p.random);
 */
export function reviewCurve(cases: readonly CaseOutcome[], fractions: readonly number[], opts: ReviewCurveOptions = {}): ReviewCurvePoint[] {
  const draws = opts.draws ?? 200;
  if (!(Number.isInteger(draws) && draws >= 1)) throw new MedmaskError('USAGE', `random draws ${draws} must be a whole number ≥ 1`, { hint: 'e.g. 200' });
  const withErrors = cases.every((c) => c.errorVoxels !== undefined);
  const root = new Rng(opts.seed ?? 1);
  return fractions.map((fraction, fi) => {
    const ranked = selectCases(cases, fraction, 'ranked');
    const rankedDice = meanDiceWith(cases, ranked);
    const rng = root.fork(`fraction-${fi}`);
    const rand: number[] = [];
    let shareRandom = 0, wins = 0;
    for (let d = 0; d < draws; d++) {
      const sel = selectCases(cases, fraction, 'random', rng);
      const v = meanDiceWith(cases, sel);
      rand.push(v);
      if (rankedDice >= v - 1e-12) wins++;
      shareRandom += errorShareOf(cases, sel);
    }
    const sorted = [...rand].sort((a, b) => a - b);
    const point: ReviewCurvePoint = {
      fraction,
      reviewed: ranked.size,
      ranked: rankedDice,
      random: rand.reduce((a, b) => a + b, 0) / draws,
      randomP05: quantile(sorted, 0.05),
      randomP95: quantile(sorted, 0.95),
      rankedBeatsRandom: wins / draws,
    };
    if (withErrors) {
      const oracle = selectCases(cases, fraction, 'oracle');
      point.oracle = meanDiceWith(cases, oracle);
      point.errorShareRanked = errorShareOf(cases, ranked);
      point.errorShareRandom = shareRandom / draws;
      point.errorShareOracle = errorShareOf(cases, oracle);
    }
    return point;
  });
}

/** Attention against real error, binned. */
export interface AttentionErrorBin {
  /** Mean attention of the pairs in the bin. */
  attention: number;
  /** Mean real error of the pairs in the bin. */
  error: number;
  count: number;
}

/**
 * Bin (attention, error) pairs — e.g. per case and organ, flagged voxels vs voxels the
 * pseudo-label gets wrong — into `bins` groups of equal count by attention, for a plot of how
 * attention tracks real error.
 * @param pairs - one per case-organ
 * @param bins - number of groups (default 10)
 * @returns one point per non-empty group, by rising attention
 * @example
 * binAttentionVsError([{ attention: 0, error: 3 }, { attention: 50, error: 40 }], 2);
 */
export function binAttentionVsError(pairs: readonly { attention: number; error: number }[], bins = 10): AttentionErrorBin[] {
  if (!(Number.isInteger(bins) && bins >= 1)) throw new MedmaskError('USAGE', `bins ${bins} must be a whole number ≥ 1`);
  const sorted = [...pairs].sort((a, b) => a.attention - b.attention || a.error - b.error);
  const out: AttentionErrorBin[] = [];
  for (let b = 0; b < bins; b++) {
    const part = sorted.slice(Math.floor((b * sorted.length) / bins), Math.floor(((b + 1) * sorted.length) / bins));
    if (!part.length) continue;
    out.push({ attention: part.reduce((s, p) => s + p.attention, 0) / part.length, error: part.reduce((s, p) => s + p.error, 0) / part.length, count: part.length });
  }
  return out;
}

/**
 * Spearman rank correlation of two equally long lists (average ranks for ties); NaN when either is constant.
 * @example
 * spearman([1, 2, 3], [10, 20, 30]); // 1
 */
export function spearman(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) throw new MedmaskError('USAGE', `lists differ in length: ${a.length} vs ${b.length}`);
  const rank = (x: readonly number[]) => {
    const idx = x.map((v, i) => [v, i] as const).sort((p, q) => p[0] - q[0]);
    const r = new Array<number>(x.length);
    for (let i = 0; i < idx.length;) {
      let j = i;
      while (j + 1 < idx.length && idx[j + 1]![0] === idx[i]![0]) j++;
      for (let k = i; k <= j; k++) r[idx[k]![1]] = (i + j) / 2 + 1;
      i = j + 1;
    }
    return r;
  };
  const ra = rank(a), rb = rank(b);
  const n = a.length;
  const ma = ra.reduce((s, v) => s + v, 0) / n, mb = rb.reduce((s, v) => s + v, 0) / n;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (ra[i]! - ma) * (rb[i]! - mb);
    saa += (ra[i]! - ma) ** 2;
    sbb += (rb[i]! - mb) ** 2;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : NaN;
}
