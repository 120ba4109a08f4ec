/**
 * Organ-level priors for the review ranking (an option beside AbdomenAtlas's attention-voxel
 * priority): attention finds where models disagree or are unsure; it is silent where every model
 * makes the same confident mistake at the scale of a whole organ — a spleen missed entirely on an
 * unfamiliar scanner, a liver cut in half by a missed tumour, a kidney painted twice. Such a case
 * stands out from the other cases **of its own source** (same scanner, same population):
 *
 * - **missing**: the pseudo-label has no voxel of an organ that most of the source's cases have
 *   (more than half of them);
 * - **volume**: the organ's pseudo-label volume lies outside `median ± k · 1.4826 · MAD` of the
 *   source's volumes of that organ (a robust z-score above k, default 3), with the MAD floored at
 *   `minRelativeSpread` (default 10 %) of the median so a source of near-identical volumes does not
 *   flag a 5 % difference;
 * - **pieces**: the pseudo-label has more connected pieces (26-connectivity) than the source's
 *   median for that organ.
 *
 * Each flag comes with **expected error voxels** in the same unit as the attention priority, so it
 * can be added to it: missing → the source's median volume; volume → |volume − median|; pieces →
 * 10 % of the organ's volume. Organs with an original label are skipped (as the AbdomenAtlas
 * priority skips them); organs the source rarely has (missing kidney variants) are not flagged as
 * missing. Needs at least `minCases` (default 4) cases of a source; fewer → no flags.
 *
 * Pure: numbers in, flags out.
 * @module
 */
import { MedmaskError } from '../errors.js';

/** One organ of one case, as the attention summary records it. */
export interface OrganShapeSummary {
  organ: string;
  /** Pseudo-label volume, mm³ (0 = absent). */
  volumeMm3: number;
  /** Connected pieces of the pseudo-label (0 when absent). */
  pieces: number;
  /** Whether the source labels this organ (skipped). */
  labelled: boolean;
}

/** A case for {@link organPriorFlags}. */
export interface CaseShapeSummary {
  id: string;
  source: string;
  /** mm³ of one voxel, to express expected errors in voxels. */
  voxelMm3: number;
  organs: readonly OrganShapeSummary[];
}

/** Options for {@link organPriorFlags}. */
export interface OrganPriorOptions {
  /** Robust z-score above which a volume is flagged (default 3). */
  k?: number;
  /** Floor of the spread, as a share of the median volume (default 0.1). */
  minRelativeSpread?: number;
  /** Fewest cases of a source to judge it (default 4). */
  minCases?: number;
}

/** One flag. */
export interface OrganPriorFlag {
  organ: string;
  kind: 'missing' | 'volume' | 'pieces';
  /** Expected error, in voxels of the case. */
  voxels: number;
  /** What was seen and expected (mm³ or pieces). */
  value: number;
  expected: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * Organ-level flags per case, judged against the other cases of the same source.
 * @param cases - per case: source, voxel volume, per organ volume / pieces / labelled
 * @param opts - threshold, spread floor, fewest cases
 * @returns case id → flags (cases without flags have an empty list)
 * @throws MedmaskError USAGE for a bad option or a case without a positive voxel volume
 * @example
 * const flags = organPriorFlags(summaries);
 * flags.get('case_0003'); // [{ organ: 'spleen', kind: 'missing', voxels: 812, … }]
 */
export function organPriorFlags(cases: readonly CaseShapeSummary[], opts: OrganPriorOptions = {}): Map<string, OrganPriorFlag[]> {
  const k = opts.k ?? 3, floor = opts.minRelativeSpread ?? 0.1, minCases = opts.minCases ?? 4;
  if (!(k > 0) || !(floor >= 0) || !(Number.isInteger(minCases) && minCases >= 2)) {
    throw new MedmaskError('USAGE', `organ prior options k ${k}, minRelativeSpread ${floor}, minCases ${minCases} are out of range`, { hint: 'k > 0, minRelativeSpread ≥ 0, minCases a whole number ≥ 2' });
  }
  const out = new Map<string, OrganPriorFlag[]>(cases.map((c) => [c.id, []]));
  const bySource = new Map<string, CaseShapeSummary[]>();
  for (const c of cases) {
    if (!(c.voxelMm3 > 0)) throw new MedmaskError('USAGE', `case ${c.id}: voxel volume ${c.voxelMm3} mm³ must be positive`);
    bySource.set(c.source, [...(bySource.get(c.source) ?? []), c]);
  }
  for (const group of bySource.values()) {
    if (group.length < minCases) continue;
    const organs = new Set(group.flatMap((c) => c.organs.map((o) => o.organ)));
    for (const organ of organs) {
      const rows = group.map((c) => ({ c, o: c.organs.find((x) => x.organ === organ) })).filter((r) => r.o) as { c: CaseShapeSummary; o: OrganShapeSummary }[];
      const present = rows.filter((r) => r.o.volumeMm3 > 0);
      // The source mostly has this organ: judge against the cases that have it.
      if (present.length * 2 <= rows.length) continue;
      const vols = present.map((r) => r.o.volumeMm3);
      const med = median(vols);
      const mad = median(vols.map((v) => Math.abs(v - med)));
      const spread = Math.max(1.4826 * mad, floor * med);
      const medPieces = median(present.map((r) => r.o.pieces));
      for (const { c, o } of rows) {
        if (o.labelled) continue;
        const flags = out.get(c.id)!;
        if (o.volumeMm3 <= 0) {
          flags.push({ organ, kind: 'missing', voxels: med / c.voxelMm3, value: 0, expected: med });
          continue;
        }
        if (Math.abs(o.volumeMm3 - med) > k * spread) flags.push({ organ, kind: 'volume', voxels: Math.abs(o.volumeMm3 - med) / c.voxelMm3, value: o.volumeMm3, expected: med });
        if (o.pieces > medPieces) flags.push({ organ, kind: 'pieces', voxels: (0.1 * o.volumeMm3) / c.voxelMm3, value: o.pieces, expected: medPieces });
      }
    }
  }
  return out;
}
