/**
 * Simulated segmentation models for campaigns with known truth: soft predictions made from a
 * ground-truth label map with seeded, organ-dependent mistakes, so the AbdomenAtlas-8K workflow
 * (Qu et al. 2023: pseudo-labels, attention, ranking, review, merge) can be run and measured end
 * to end before real models exist — and afterwards as a controlled check.
 *
 * What goes wrong, and how models share it:
 * - each case has a **difficulty** (most cases easy, some hard); each organ an expected number of
 *   **trouble spots** per case (small, thin or low-contrast organs more: pancreas, stomach,
 *   gallbladder), scaled by the difficulty;
 * - a trouble spot is a **missed part** (an ellipsoid inside the organ) or a **false blob** (an
 *   ellipsoid just outside it, inside the body), with a hardness h (70 % of spots hard for every
 *   model, h ∈ [0.6, 1]; 30 % occasional, h ∈ [0.1, 0.35]); each model gets it wrong with
 *   probability min(0.97, h · skill), confidently (p = 0 or 0.98) or hesitantly (p ≈ 0.3 / 0.65) —
 *   so some mistakes are made by one model only (attention flags them, the pseudo-label is right),
 *   some by most (the pseudo-label is wrong, attention flags them), some by all confidently (nobody
 *   can see them);
 * - a model may have a **boundary bias** (one voxel too large or too small, per organ and case
 *   with probability 0.35), and every model's surface voxels are soft (p ≈ 0.78 inside, 0.008
 *   just outside), which makes thin shells of disagreement that the attention's opening mostly removes.
 * Probabilities are uint8 (p · 255), as AbdomenAtlas stores soft predictions.
 *
 * Pure and seeded: the same truth, seed and model give the same bytes.
 * @module
 */
import { MedmaskError } from '../errors.js';
import { Rng } from '../random.js';
import { binaryDilation, binaryErosion, type Shape3 } from './morphology.js';

/** A simulated model. */
export interface SimulatedModel {
  name: string;
  /** Error-probability multiplier at trouble spots (1 typical, < 1 better). */
  skill: number;
  /** Boundary bias when it applies: +1 one voxel too large, −1 too small, 0 none. */
  boundary: -1 | 0 | 1;
}

/** Three models of different quality and habits (names after the architectures the paper used). */
export const DEFAULT_SIMULATED_MODELS: readonly SimulatedModel[] = [
  { name: 'sim-unet', skill: 0.8, boundary: 0 },
  { name: 'sim-swinunetr', skill: 1.0, boundary: 1 },
  { name: 'sim-nnunet', skill: 1.2, boundary: -1 },
];

/**
 * Expected trouble spots per organ in a case of difficulty 1, by AbdomenAtlas organ name.
 * Organs not listed get 0.4.
 */
export const ORGAN_TROUBLE: Readonly<Record<string, number>> = {
  spleen: 0.35, kidney_right: 0.3, kidney_left: 0.3, gallbladder: 0.6, liver: 0.5, stomach: 0.7, aorta: 0.2, postcava: 0.45, pancreas: 0.9,
};

/** One trouble spot. */
export interface TroubleSpot {
  /** Label value of the organ. */
  label: number;
  kind: 'miss' | 'extra';
  /** Centre voxel. */
  centre: [number, number, number];
  /** Semi-axes in voxels. */
  radius: [number, number, number];
  /** Chance scale of a model getting it wrong (× skill). */
  hardness: number;
}

/** A case's simulated difficulty and trouble spots. */
export interface CaseTrouble {
  difficulty: number;
  spots: TroubleSpot[];
}

/** Options for {@link caseTrouble}. */
export interface CaseTroubleOptions {
  /** Label value → organ name (for {@link ORGAN_TROUBLE}). */
  organs: Record<number, string>;
  /** Voxel size, mm. */
  spacing: readonly [number, number, number];
  /** 0/1 body mask (false blobs stay inside it); default: anywhere. */
  body?: Uint8Array;
  /** Share of hard cases (default 0.3) and their difficulty (default 3; easy cases 0.4). */
  hardShare?: number;
  hardDifficulty?: number;
  /** Multiplies every organ's expected spots (default 1). */
  troubleScale?: number;
  /** Smallest spot semi-axis in voxels (default 2.5): below the attention's opening, nothing can be flagged. */
  minRadiusVoxels?: number;
}

/** Share of trouble spots that are hard for every model. */
const SHARED_SPOTS = 0.7;

function poisson(rng: Rng, lambda: number): number {
  const l = Math.exp(-lambda);
  let k = 0, p = 1;
  do {
    k++;
    p *= rng.random();
  } while (p > l && k < 50);
  return k - 1;
}

/**
 * Draw a case's difficulty and trouble spots from its truth.
 * @param truth - label map, x fastest
 * @param shape - voxels along x, y, z
 * @param rng - the case's random stream
 * @param opts - organ names, spacing, body mask, difficulty mix
 * @returns difficulty and spots
 * @throws MedmaskError USAGE for a truth that does not fit the shape
 * @example
 * const t = caseTrouble(truth.data, truth.shape, new Rng(seed), { organs: ABDOMEN_LABELS, spacing: truth.spacing });
 */
export function caseTrouble(truth: ArrayLike<number>, shape: Shape3, rng: Rng, opts: CaseTroubleOptions): CaseTrouble {
  const [nx, ny, nz] = shape;
  const n = nx * ny * nz;
  if (truth.length !== n) throw new MedmaskError('USAGE', `truth has ${truth.length} voxels, the grid ${shape.join('×')} has ${n}`, { hint: 'pass the truth of this grid' });
  const hard = rng.random() < (opts.hardShare ?? 0.3);
  const difficulty = hard ? (opts.hardDifficulty ?? 3) : 0.4;
  const minR = opts.minRadiusVoxels ?? 2.5;
  // Voxels and bounding boxes per label.
  const voxels = new Map<number, number[]>();
  for (let v = 0; v < n; v++) {
    const l = truth[v]!;
    if (!l) continue;
    let list = voxels.get(l);
    if (!list) voxels.set(l, (list = []));
    list.push(v);
  }
  const spots: TroubleSpot[] = [];
  const voxelMl = (opts.spacing[0] * opts.spacing[1] * opts.spacing[2]) / 1000;
  for (const label of [...voxels.keys()].sort((a, b) => a - b)) {
    const name = opts.organs[label] ?? '';
    const lambda = (ORGAN_TROUBLE[name] ?? 0.4) * difficulty * (opts.troubleScale ?? 1);
    const list = voxels.get(label)!;
    const k = poisson(rng, lambda);
    // Equivalent radius of the organ, mm.
    const req = Math.cbrt((3 * list.length * voxelMl * 1000) / (4 * Math.PI));
    for (let s = 0; s < k; s++) {
      const kind: TroubleSpot['kind'] = rng.random() < 0.6 ? 'miss' : 'extra';
      const rmm = req * rng.uniform(0.35, 0.65);
      const radius = [0, 1, 2].map((a) => Math.max(minR, rmm / opts.spacing[a]!)) as [number, number, number];
      const at = list[rng.int(0, list.length - 1)]!;
      let c = [at % nx, Math.floor(at / nx) % ny, Math.floor(at / (nx * ny))];
      if (kind === 'extra') {
        // Push the centre outwards from the organ's centroid by about one semi-axis.
        const g = [0, 0, 0];
        for (const v of list) {
          g[0] += v % nx;
          g[1] += Math.floor(v / nx) % ny;
          g[2] += Math.floor(v / (nx * ny));
        }
        const cen = g.map((x) => x / list.length);
        const d = c.map((x, a) => (x - cen[a]!) * opts.spacing[a]!);
        const len = Math.hypot(d[0]!, d[1]!, d[2]!) || 1;
        c = c.map((x, a) => Math.round(x + (d[a]! / len) * radius[a]! * rng.uniform(0.6, 1.2)));
        c = c.map((x, a) => Math.min(shape[a]! - 1, Math.max(0, x)));
      }
      // Hardness: most spots are hard for every model (shared mistakes: the pseudo-label is wrong
      // there), some only trip a model now and then (the pseudo-label is right, attention may flag).
      const hardness = rng.random() < SHARED_SPOTS ? rng.uniform(0.6, 1) : rng.uniform(0.1, 0.35);
      spots.push({ label, kind, centre: c as [number, number, number], radius, hardness });
    }
  }
  return { difficulty, spots };
}

/** Visit the voxels of a spot's ellipsoid. */
function eachInSpot(spot: TroubleSpot, shape: Shape3, f: (v: number) => void): void {
  const [nx, ny, nz] = shape;
  const [cx, cy, cz] = spot.centre;
  const [rx, ry, rz] = spot.radius;
  for (let z = Math.max(0, Math.floor(cz - rz)); z <= Math.min(nz - 1, Math.ceil(cz + rz)); z++) {
    for (let y = Math.max(0, Math.floor(cy - ry)); y <= Math.min(ny - 1, Math.ceil(cy + ry)); y++) {
      for (let x = Math.max(0, Math.floor(cx - rx)); x <= Math.min(nx - 1, Math.ceil(cx + rx)); x++) {
        if (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2 <= 1) f(x + nx * (y + ny * z));
      }
    }
  }
}

/** Chance that a model's boundary bias applies to an organ in a case. */
const BOUNDARY_BIAS_RATE = 0.35;
const P_IN = 250, P_SURFACE = 200, P_HALO = 2;

/**
 * One simulated model's soft prediction of one organ.
 * @param truth - label map
 * @param shape - grid
 * @param label - the organ's value
 * @param trouble - the case's spots (from {@link caseTrouble})
 * @param model - the model
 * @param rng - a stream for this (case, model, organ)
 * @param body - 0/1 body mask for false blobs (default anywhere)
 * @returns probabilities as uint8 (p · 255)
 * @example
 * const p = simulateOrganPrediction(truth.data, truth.shape, 5, trouble, DEFAULT_SIMULATED_MODELS[0], rng.fork('unet/liver'));
 */
export function simulateOrganPrediction(truth: ArrayLike<number>, shape: Shape3, label: number, trouble: CaseTrouble, model: SimulatedModel, rng: Rng, body?: Uint8Array): Uint8Array {
  const n = shape[0] * shape[1] * shape[2];
  if (truth.length !== n) throw new MedmaskError('USAGE', `truth has ${truth.length} voxels, the grid ${shape.join('×')} has ${n}`);
  if (!(model.skill >= 0 && Number.isFinite(model.skill))) throw new MedmaskError('USAGE', `model ${model.name} has skill ${model.skill}`, { hint: 'skill is an error multiplier ≥ 0, 1 typical' });
  let mask: Uint8Array = new Uint8Array(n);
  for (let v = 0; v < n; v++) mask[v] = truth[v] === label ? 1 : 0;
  if (model.boundary !== 0 && rng.random() < BOUNDARY_BIAS_RATE) {
    mask = model.boundary > 0 ? binaryDilation(mask, shape, { connectivity: 1 }) : binaryErosion(mask, shape, { connectivity: 1 });
  }
  // Soft surface: inner surface voxels ≈ 0.78; the halo just outside ≈ 0.008 (below the entropy threshold).
  const inner = binaryErosion(mask, shape, { connectivity: 1 });
  const outer = binaryDilation(mask, shape, { connectivity: 1 });
  const p = new Uint8Array(n);
  for (let v = 0; v < n; v++) p[v] = mask[v] ? (inner[v] ? P_IN : P_SURFACE) : outer[v] ? P_HALO : 0;
  for (const spot of trouble.spots) {
    if (spot.label !== label) continue;
    const wrong = rng.random() < Math.min(0.97, spot.hardness * model.skill);
    const confident = rng.random() < 0.5;
    if (!wrong) continue;
    if (spot.kind === 'miss') {
      const value = confident ? 0 : Math.round(rng.uniform(0.25, 0.45) * 255);
      eachInSpot(spot, shape, (v) => {
        if (mask[v]) p[v] = value;
      });
    } else {
      const value = confident ? P_IN : Math.round(rng.uniform(0.55, 0.75) * 255);
      eachInSpot(spot, shape, (v) => {
        if (!mask[v] && (!body || body[v])) p[v] = Math.max(p[v]!, value);
      });
    }
  }
  return p;
}
