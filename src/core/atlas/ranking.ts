/**
 * Case priority and review selection of AbdomenAtlas-8K (Qu et al. 2023): a case's priority is
 * the number of attention voxels summed over the organs the case has **no original label for**
 * (`create_attention.py` / `priority_list`); cases are sorted by priority, descending, and the
 * top N % of each source (default 5 %) go to an expert.
 *
 * Variants: all organs instead of the unlabelled ones; the heat map's sum instead of the binary
 * count; normalised by the case's voxel count (volume-normalised) or by its number of slices (the
 * public `calculate_attention.py` divides by the z size); or (not in the paper) the case's
 * **expected Dice loss** (`measure: 'dice'`): per organ {@link expectedDiceLoss} of the expected
 * wrong voxels inside its attention (the sum of `min(p̄, 1 − p̄)`) against its pseudo-label
 * volume, averaged over the organs — what reviewing the case is expected to add to its mean Dice,
 * so that 50 wrong voxels count for much on a gallbladder and little on a liver, as they do in
 * the Dice the campaign is judged by.
 * @module
 */
import { MedmaskError } from '../errors.js';

/** One organ's attention in a case, as {@link organAttention} summarises it. */
export interface OrganAttentionSummary {
  organ: string;
  /** Voxels in the binary attention. */
  voxels: number;
  /** Sum of the normalised heat map (needed for `measure: 'heat'`). */
  heatSum?: number;
  /** Whether the case's source labels this organ (its original label is kept). */
  labelled: boolean;
  /** Expected wrong voxels inside the attention, Σ min(p̄, 1 − p̄) (needed for `measure: 'dice'`). */
  expectedErrors?: number;
  /** Voxels of the organ's pseudo-label (needed for `measure: 'dice'`). */
  volumeVoxels?: number;
}

/**
 * Expected Dice loss of an organ whose pseudo-label has `volume` voxels of which `errors` are
 * expected wrong: `errors / (2 · volume + errors)`, 1 − Dice when the wrong voxels are missed
 * parts (truth = volume + errors, overlap = volume); 0 without errors, 1 for an organ the
 * pseudo-label lacks entirely.
 * @param errors - expected wrong voxels (≥ 0)
 * @param volume - pseudo-label voxels (≥ 0)
 * @returns the loss in [0, 1]
 * @throws MedmaskError USAGE for a negative or non-finite count
 * @example
 * expectedDiceLoss(50, 1000); // 50 / 2050 ≈ 0.024
 */
export function expectedDiceLoss(errors: number, volume: number): number {
  if (!(Number.isFinite(errors) && errors >= 0 && Number.isFinite(volume) && volume >= 0)) {
    throw new MedmaskError('USAGE', `expected errors ${errors} and volume ${volume} must be finite numbers ≥ 0`, { hint: 'pass voxel counts' });
  }
  return errors > 0 ? errors / (2 * volume + errors) : 0;
}

/** Options for {@link casePriority}. */
export interface PriorityOptions {
  /** `unlabelled` (default, AbdomenAtlas): only organs without an original label; `all`. */
  organs?: 'unlabelled' | 'all';
  /**
   * `binary` (default): attention voxels; `heat`: sum of the heat map; `dice`: expected Dice loss,
   * the mean of {@link expectedDiceLoss} over the organs (no normalisation applies).
   */
  measure?: 'binary' | 'heat' | 'dice';
  /** `none` (default); `volume`: divide by the case's voxels; `slices`: by its slices (z). */
  normalise?: 'none' | 'volume' | 'slices';
}

/** Grid size of a case, for normalisation. */
export interface CaseGrid {
  voxels: number;
  slices: number;
}

/**
 * A case's review priority.
 * @param organs - attention per organ
 * @param opts - which organs, which measure, normalisation
 * @param grid - voxels and slices of the case (needed when normalising)
 * @returns the priority (≥ 0)
 * @throws MedmaskError USAGE for an unknown option, a missing heat sum or grid
 * @example
 * casePriority([{ organ: 'liver', voxels: 120, labelled: true }, { organ: 'spleen', voxels: 40, labelled: false }]); // 40
 */
export function casePriority(organs: readonly OrganAttentionSummary[], opts: PriorityOptions = {}, grid?: CaseGrid): number {
  const which = opts.organs ?? 'unlabelled';
  const measure = opts.measure ?? 'binary';
  const normalise = opts.normalise ?? 'none';
  if (which !== 'unlabelled' && which !== 'all') throw new MedmaskError('USAGE', `priority organs "${String(which)}" is unknown`, { hint: 'use unlabelled or all' });
  if (measure !== 'binary' && measure !== 'heat' && measure !== 'dice') throw new MedmaskError('USAGE', `priority measure "${String(measure)}" is unknown`, { hint: 'use binary, heat or dice' });
  if (normalise !== 'none' && normalise !== 'volume' && normalise !== 'slices') throw new MedmaskError('USAGE', `priority normalisation "${String(normalise)}" is unknown`, { hint: 'use none, volume or slices' });
  if (measure === 'dice') {
    if (normalise !== 'none') throw new MedmaskError('USAGE', `the expected Dice loss is already relative to each organ's size; normalising by ${normalise} does not apply`, { hint: 'leave normalise out with measure dice' });
    let loss = 0, k = 0;
    for (const o of organs) {
      if (which === 'unlabelled' && o.labelled) continue;
      if (o.expectedErrors === undefined || o.volumeVoxels === undefined) throw new MedmaskError('USAGE', `organ ${o.organ} has no expected errors or volume`, { hint: 'run medmask atlas attention again (this version records them), or use measure binary' });
      loss += expectedDiceLoss(o.expectedErrors, o.volumeVoxels);
      k++;
    }
    return k ? loss / k : 0;
  }
  let total = 0;
  for (const o of organs) {
    if (which === 'unlabelled' && o.labelled) continue;
    if (measure === 'heat') {
      if (o.heatSum === undefined) throw new MedmaskError('USAGE', `organ ${o.organ} has no heat sum`, { hint: 'pass heatSum from organAttention, or use measure binary' });
      total += o.heatSum;
    } else total += o.voxels;
  }
  if (normalise === 'none') return total;
  if (!grid) throw new MedmaskError('USAGE', `normalising by ${normalise} needs the case's grid`, { hint: 'pass { voxels, slices }' });
  const d = normalise === 'volume' ? grid.voxels : grid.slices;
  if (!(d > 0)) throw new MedmaskError('USAGE', `the case has ${d} ${normalise === 'volume' ? 'voxels' : 'slices'}`, { hint: 'pass the grid of the case the attention was computed on' });
  return total / d;
}

/** A case to rank. */
export interface CaseScore {
  id: string;
  source: string;
  priority: number;
}

/** A ranked case. */
export interface RankedCase extends CaseScore {
  /** 1-based rank over all cases. */
  rank: number;
  /** 1-based rank within the case's source. */
  sourceRank: number;
}

/**
 * Sort cases by priority, descending (ties by id, so the order is stable across runs).
 * @param cases - id, source, priority
 * @returns ranked cases
 * @throws MedmaskError USAGE for a repeated id or a priority that is not a finite number
 * @example
 * rankCases([{ id: 'a', source: 'lits', priority: 3 }, { id: 'b', source: 'lits', priority: 9 }])[0].id; // 'b'
 */
export function rankCases(cases: readonly CaseScore[]): RankedCase[] {
  const seen = new Set<string>();
  for (const c of cases) {
    if (seen.has(c.id)) throw new MedmaskError('USAGE', `case "${c.id}" appears twice`, { hint: 'case ids must be unique' });
    seen.add(c.id);
    if (!Number.isFinite(c.priority)) throw new MedmaskError('USAGE', `case "${c.id}" has priority ${c.priority}`, { hint: 'priorities must be finite numbers' });
  }
  const sorted = [...cases].sort((a, b) => b.priority - a.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const perSource = new Map<string, number>();
  return sorted.map((c, i) => {
    const r = (perSource.get(c.source) ?? 0) + 1;
    perSource.set(c.source, r);
    return { ...c, rank: i + 1, sourceRank: r };
  });
}

/** Options for {@link selectForReview}. */
export interface SelectOptions {
  /** Fraction of each source's cases to review (default 0.05). */
  fraction?: number;
  /** Select per source (default true, AbdomenAtlas) or over all cases. */
  perSource?: boolean;
  /** Also select cases with priority 0 (default false: nothing flagged, nothing to review). */
  includeZero?: boolean;
}

/**
 * The cases an expert reviews: the top `ceil(fraction × n)` of each source by priority (so a
 * source with any cases gets at least one when fraction > 0), or of all cases.
 * @param ranked - output of {@link rankCases}
 * @param opts - fraction (default 5 %), per source, include zero-priority cases
 * @returns the selected cases, in rank order
 * @throws MedmaskError USAGE for a fraction outside [0, 1]
 * @example
 * selectForReview(rankCases(scores), { fraction: 0.05 });
 */
export function selectForReview(ranked: readonly RankedCase[], opts: SelectOptions = {}): RankedCase[] {
  const fraction = opts.fraction ?? 0.05;
  if (!(fraction >= 0 && fraction <= 1)) throw new MedmaskError('USAGE', `review fraction ${fraction} must be in [0, 1]`, { hint: 'e.g. 0.05 for 5 %' });
  const perSource = opts.perSource ?? true;
  const groups = new Map<string, RankedCase[]>();
  for (const c of ranked) {
    const key = perSource ? c.source : '';
    const g = groups.get(key) ?? [];
    g.push(c);
    groups.set(key, g);
  }
  const chosen = new Set<RankedCase>();
  for (const g of groups.values()) {
    // Keep rank order within the group even if the input was not sorted.
    g.sort((a, b) => a.rank - b.rank);
    const k = Math.ceil(fraction * g.length - 1e-9);
    let taken = 0;
    for (const c of g) {
      if (taken >= k) break;
      if (!opts.includeZero && !(c.priority > 0)) break;
      chosen.add(c);
      taken++;
    }
  }
  return ranked.filter((c) => chosen.has(c)).sort((a, b) => a.rank - b.rank);
}
