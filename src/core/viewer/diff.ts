/**
 * Compact per-slice mask diffs: the voxels a reviewer changed in one axial plane as runs
 * `[start, length, value]` of consecutive in-plane indices with the same new value. A brush
 * stroke becomes a few runs per row it crossed; the server applies the runs on the version the
 * edit was made on.
 * @module
 */
import { MedmaskError } from '../errors.js';

/** The edits of one axial plane (k) as flat `[start, length, value, …]` triples, starts ascending. */
export interface PlaneRuns {
  /** Axial plane index (k); 0 for 2D images. */
  z: number;
  runs: number[];
}

/**
 * Runs from sorted in-plane indices and their new values.
 * @param indices - ascending, distinct
 * @param values - new value per index
 * @example
 * runsFromSorted([3, 4, 5, 9], [1, 1, 2, 1]); // [3, 2, 1, 5, 1, 2, 9, 1, 1]
 */
export function runsFromSorted(indices: ArrayLike<number>, values: ArrayLike<number>): number[] {
  const runs: number[] = [];
  for (let t = 0; t < indices.length; t++) {
    const i = indices[t]!;
    const v = values[t]!;
    const n = runs.length;
    if (n && runs[n - 3]! + runs[n - 2]! === i && runs[n - 1] === v) runs[n - 2]!++;
    else runs.push(i, 1, v);
  }
  return runs;
}

/**
 * Runs where `after` differs from `before` (two versions of one plane).
 * @example
 * runsBetween(Uint8Array.of(0, 0, 1), Uint8Array.of(2, 2, 1)); // [0, 2, 2]
 */
export function runsBetween(before: Uint8Array, after: Uint8Array): number[] {
  if (before.length !== after.length) throw new MedmaskError('USAGE', `runsBetween: planes of ${before.length} and ${after.length} values`);
  const runs: number[] = [];
  for (let i = 0; i < after.length; i++) {
    if (before[i] === after[i]) continue;
    const v = after[i]!;
    const n = runs.length;
    if (n && runs[n - 3]! + runs[n - 2]! === i && runs[n - 1] === v) runs[n - 2]!++;
    else runs.push(i, 1, v);
  }
  return runs;
}

/**
 * Check runs against a plane size: whole numbers, ascending non-overlapping starts, values 0…255.
 * @throws MedmaskError USAGE naming the first bad run
 */
export function checkRuns(runs: readonly number[], planeSize: number, what = 'runs'): void {
  if (runs.length % 3) throw new MedmaskError('USAGE', `${what}: ${runs.length} numbers is not a list of [start, length, value] triples`);
  let end = 0;
  for (let t = 0; t < runs.length; t += 3) {
    const s = runs[t]!, n = runs[t + 1]!, v = runs[t + 2]!;
    if (!Number.isInteger(s) || !Number.isInteger(n) || !Number.isInteger(v) || n < 1 || v < 0 || v > 255) {
      throw new MedmaskError('USAGE', `${what}: run ${t / 3} [${s}, ${n}, ${v}] needs a whole start, a length ≥ 1 and a value 0…255`);
    }
    if (s < end) throw new MedmaskError('USAGE', `${what}: run ${t / 3} starts at ${s}, before the end ${end} of the previous run (starts must ascend)`);
    end = s + n;
    if (end > planeSize) throw new MedmaskError('USAGE', `${what}: run ${t / 3} ends at ${end}, past the plane's ${planeSize} voxels`);
  }
}

/**
 * Write runs into `data` starting at `offset` (the plane's first voxel).
 * @returns voxels whose value changed
 * @example
 * applyRuns(labels, z * nx * ny, [10, 4, 1]);
 */
export function applyRuns(data: Uint8Array, offset: number, runs: readonly number[]): number {
  let changed = 0;
  for (let t = 0; t < runs.length; t += 3) {
    const s = offset + runs[t]!, e = s + runs[t + 1]!, v = runs[t + 2]!;
    for (let i = s; i < e; i++) {
      if (data[i] !== v) changed++;
      data[i] = v;
    }
  }
  return changed;
}

/** Voxels covered by runs. */
export function runsVoxels(runs: readonly number[]): number {
  let n = 0;
  for (let t = 1; t < runs.length; t += 3) n += runs[t]!;
  return n;
}
