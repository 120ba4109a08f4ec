/**
 * What makes a 3D abdominal phantom look like a case from one particular public data set, and fail
 * a model the way real cases do: per source a **scanner profile** (contrast phase, noise,
 * slice thickness, field of view, reconstruction kernel) and **findings** drawn at documented rates
 * per source — pathology (liver tumours and cysts, kidney cysts, an enlarged spleen, an atrophic
 * pancreas, gallstones), anatomical variants (a missing kidney, a displaced kidney) and artefacts
 * (metal streaks, a truncated field of view).
 *
 * Pathology is labelled as part of its organ, as AbdomenAtlas does (a liver tumour is liver, an
 * exophytic kidney cyst is kidney). Every random draw comes from a stream forked by name, so a
 * case regenerated with one finding switched off is the same case without that finding: the
 * organ truth changes only where the finding itself is (tests regenerate and compare).
 *
 * The rates are those of the phantoms, chosen to echo what each public data set is known for
 * (LiTS: liver tumours; KiTS: arterial/nephrographic kidneys with cysts; MSD spleen and pancreas:
 * splenic and pancreatic disease; FLARE/AMOS: several centres, phases and kernels); they are not
 * measured epidemiology. docs/phantoms.md carries the same table.
 * @module
 */
import type { Rng } from '../random.js';

/** Contrast phase of a CT acquisition. */
export type ContrastPhase = 'arterial' | 'portal' | 'non-contrast';
/** Reconstruction kernel: soft smooths (less, correlated noise), sharp enhances edges and noise. */
export type ReconKernel = 'soft' | 'standard' | 'sharp';
/** A finding a phantom case may carry. */
export type FindingName =
  | 'liverTumour' | 'liverCyst' | 'kidneyCyst' | 'splenomegaly' | 'atrophicPancreas' | 'gallstones'
  | 'missingKidney' | 'displacedKidney' | 'metal' | 'truncatedFov'
  | 'oralContrast' | 'lowDose' | 'situsInversus';
/** All findings, in the order they are drawn and documented. */
export const FINDING_NAMES: readonly FindingName[] = [
  'liverTumour', 'liverCyst', 'kidneyCyst', 'splenomegaly', 'atrophicPancreas', 'gallstones',
  'missingKidney', 'displacedKidney', 'metal', 'truncatedFov',
  'oralContrast', 'lowDose', 'situsInversus',
];

/** A source's scanner habits and finding rates. */
export interface SourceProfile {
  /** Relative frequency of each contrast phase. */
  phases: Readonly<Partial<Record<ContrastPhase, number>>>;
  /** Relative frequency of each kernel. */
  kernels: Readonly<Partial<Record<ReconKernel, number>>>;
  /** Noise σ range, HU, as measured in a homogeneous organ after the kernel. */
  noise: readonly [number, number];
  /** Native slice thickness range, mm (the grid's slices are at least 1.3× the in-plane spacing). */
  sliceMm: readonly [number, number];
  /** Field of view range, mm. */
  fovMm: readonly [number, number];
  /** Probability of each finding in one case. */
  rates: Readonly<Record<FindingName, number>>;
}

const NONE: Record<FindingName, number> = {
  liverTumour: 0, liverCyst: 0, kidneyCyst: 0, splenomegaly: 0, atrophicPancreas: 0, gallstones: 0,
  missingKidney: 0, displacedKidney: 0, metal: 0, truncatedFov: 0,
  oralContrast: 0, lowDose: 0, situsInversus: 0,
};

/** The profile of each source (the table docs/phantoms.md repeats). */
export const SOURCE_PROFILES = {
  btcv: { phases: { portal: 1 }, kernels: { standard: 1 }, noise: [12, 16], sliceMm: [2.5, 3.0], fovMm: [330, 400], rates: { ...NONE, liverTumour: 0.1, liverCyst: 0.15, kidneyCyst: 0.2, splenomegaly: 0.1, atrophicPancreas: 0.1, gallstones: 0.1, missingKidney: 0.05, displacedKidney: 0.05, metal: 0.1, truncatedFov: 0.05 } },
  amos: { phases: { arterial: 0.3, portal: 0.7 }, kernels: { soft: 0.4, standard: 0.6 }, noise: [8, 12], sliceMm: [1.5, 2.5], fovMm: [340, 420], rates: { ...NONE, liverTumour: 0.15, liverCyst: 0.2, kidneyCyst: 0.25, splenomegaly: 0.1, atrophicPancreas: 0.1, gallstones: 0.15, missingKidney: 0.05, displacedKidney: 0.05, metal: 0.15, truncatedFov: 0.1, oralContrast: 0.05 } },
  flare: { phases: { arterial: 0.2, portal: 0.6, 'non-contrast': 0.2 }, kernels: { soft: 0.3, standard: 0.4, sharp: 0.3 }, noise: [10, 20], sliceMm: [2.5, 5.0], fovMm: [330, 420], rates: { ...NONE, liverTumour: 0.2, liverCyst: 0.2, kidneyCyst: 0.2, splenomegaly: 0.15, atrophicPancreas: 0.15, gallstones: 0.1, missingKidney: 0.05, displacedKidney: 0.05, metal: 0.15, truncatedFov: 0.2, oralContrast: 0.15, lowDose: 0.1, situsInversus: 0.08 } },
  lits: { phases: { portal: 0.8, arterial: 0.2 }, kernels: { standard: 0.5, sharp: 0.5 }, noise: [14, 20], sliceMm: [0.8, 2.5], fovMm: [350, 450], rates: { ...NONE, liverTumour: 0.85, liverCyst: 0.3, kidneyCyst: 0.15, splenomegaly: 0.2, gallstones: 0.1, metal: 0.1, truncatedFov: 0.1, missingKidney: 0.03, displacedKidney: 0.03, atrophicPancreas: 0.05, oralContrast: 0.15, lowDose: 0.1, situsInversus: 0.08 } },
  kits: { phases: { arterial: 0.8, portal: 0.2 }, kernels: { standard: 0.6, soft: 0.4 }, noise: [9, 13], sliceMm: [0.5, 1.5], fovMm: [330, 400], rates: { ...NONE, kidneyCyst: 0.6, liverCyst: 0.1, liverTumour: 0.05, missingKidney: 0.1, displacedKidney: 0.05, gallstones: 0.1, metal: 0.2, truncatedFov: 0.15, splenomegaly: 0.05, atrophicPancreas: 0.05, lowDose: 0.05 } },
  msd_spleen: { phases: { portal: 1 }, kernels: { standard: 1 }, noise: [11, 15], sliceMm: [1.5, 5.0], fovMm: [340, 420], rates: { ...NONE, splenomegaly: 0.5, liverCyst: 0.1, liverTumour: 0.1, kidneyCyst: 0.15, gallstones: 0.1, metal: 0.1, truncatedFov: 0.1, missingKidney: 0.03, displacedKidney: 0.03, atrophicPancreas: 0.05 } },
  msd_pancreas: { phases: { portal: 1 }, kernels: { standard: 0.7, sharp: 0.3 }, noise: [10, 14], sliceMm: [1.5, 2.5], fovMm: [330, 390], rates: { ...NONE, atrophicPancreas: 0.5, gallstones: 0.2, liverCyst: 0.15, liverTumour: 0.15, kidneyCyst: 0.15, splenomegaly: 0.1, metal: 0.1, truncatedFov: 0.05, missingKidney: 0.03, displacedKidney: 0.03, oralContrast: 0.15, lowDose: 0.1, situsInversus: 0.08 } },
} as const satisfies Record<string, SourceProfile>;

/**
 * Mean HU of each organ in each phase (portal-venous close to the clean phantoms), and the clean
 * phantoms' means, so a case's drawn deviation from the mean carries over to its phase.
 */
export const PHASE_HU: Record<ContrastPhase | 'clean', Record<string, number>> = {
  clean: { liver: 100, spleen: 115, stomach: 35, kidney_right: 160, kidney_left: 160, gallbladder: 10, pancreas: 85, postcava: 135, aorta: 170 },
  portal: { liver: 105, spleen: 115, stomach: 35, kidney_right: 165, kidney_left: 165, gallbladder: 10, pancreas: 90, postcava: 140, aorta: 165 },
  arterial: { liver: 70, spleen: 125, stomach: 35, kidney_right: 200, kidney_left: 200, gallbladder: 10, pancreas: 115, postcava: 75, aorta: 300 },
  'non-contrast': { liver: 58, spleen: 48, stomach: 30, kidney_right: 33, kidney_left: 33, gallbladder: 10, pancreas: 42, postcava: 40, aorta: 40 },
};

/** A sphere-like insert: centre in patient mm, radius, HU (its HU is set by the painter). */
export interface Insert {
  organ: string;
  /** Centre as a fraction of the organ's semi-axes from its centre (resolved by the painter). */
  where: readonly [number, number, number];
  radiusMm: number;
  hu: number;
  /** Whether the insert may extend beyond its organ (then it is painted as that organ). */
  extends: boolean;
}

/** The scanner settings and findings of one realistic case. */
export interface CaseProfile {
  phase: ContrastPhase;
  kernel: ReconKernel;
  /** Noise σ, HU. */
  noise: number;
  /** Drawn native slice thickness, mm. */
  sliceMm: number;
  /** Field of view, mm. */
  fovMm: number;
  /** Findings present in this case (after overrides). */
  findings: FindingName[];
  /** Lesions, cysts and stones, resolved against organ geometry by the painter. */
  inserts: Insert[];
  /** Spleen semi-axes scale (1 unless splenomegaly). */
  spleenScale: number;
  /** Pancreas radius scale and HU shift (1, 0 unless atrophic). */
  pancreasScale: number;
  pancreasHu: number;
  /** Kidney not painted (missing kidney), or null. */
  missingKidney: 'kidney_right' | 'kidney_left' | null;
  /** Kidney displaced, and by how much (mm, LPS), or null. */
  displacedKidney: { organ: 'kidney_right' | 'kidney_left'; shift: [number, number, number] } | null;
  /** Metal: vertical rods beside the spine (x, y mm; z range) and streaks. */
  metal: { rods: [number, number][]; z: [number, number]; streaks: { angle: number; amp: number }[]; widthMm: number; decayMm: number } | null;
  /** Reconstruction circle radius as a fraction of the body's half width, or null. */
  truncation: number | null;
  /** Positive oral contrast: HU of the stomach's fluid, or null. */
  oralContrastHu: number | null;
  /** Low-dose scan: the noise σ is multiplied by this (1 unless lowDose). */
  doseFactor: number;
  /** Situs inversus: the organs laid out mirrored left-right (each kidney keeps its side's name). */
  situsInversus: boolean;
}

function weighted<T extends string>(rng: Rng, table: Readonly<Partial<Record<T, number>>>): T {
  const keys = Object.keys(table) as T[];
  return rng.pick(keys, keys.map((k) => table[k]!));
}

/**
 * Draw a realistic case's scanner settings and findings. Each setting and each finding has its own
 * named stream, and every draw happens whether or not the finding is present, so switching one
 * finding off (`off`) leaves all the others, and the scanner, exactly as they were.
 * @param rng - the case's realism stream
 * @param profile - the source's profile
 * @param off - findings forced off
 * @param on - findings forced on
 * @returns the case profile
 */
export function drawCaseProfile(rng: Rng, profile: SourceProfile, off: ReadonlySet<FindingName> = new Set(), on: ReadonlySet<FindingName> = new Set()): CaseProfile {
  const scan = rng.fork('scanner');
  const phase = weighted(scan.fork('phase'), profile.phases);
  const kernel = weighted(scan.fork('kernel'), profile.kernels);
  const noise = scan.fork('noise').uniform(profile.noise[0], profile.noise[1]);
  const sliceMm = scan.fork('slice').uniform(profile.sliceMm[0], profile.sliceMm[1]);
  const fovMm = scan.fork('fov').uniform(profile.fovMm[0], profile.fovMm[1]);
  const has = (f: FindingName) => {
    const hit = rng.fork(`has-${f}`).random() < profile.rates[f];
    return !off.has(f) && (hit || on.has(f));
  };
  const findings = FINDING_NAMES.filter(has);
  const present = new Set(findings);
  const inserts: Insert[] = [];
  const inside = (r: Rng, f = 0.55): [number, number, number] => [r.uniform(-f, f), r.uniform(-f, f), r.uniform(-f, f)];
  {
    const r = rng.fork('liverTumour');
    const liver = phase === 'arterial' ? 45 : phase === 'portal' ? -55 : -20;
    const k = r.int(1, 3);
    for (let i = 0; i < k; i++) {
      const t = { organ: 'liver', where: inside(r, 0.7), radiusMm: r.uniform(12, 40), hu: PHASE_HU[phase].liver! + liver + r.normal(0, 8), extends: false };
      if (present.has('liverTumour')) inserts.push(t);
    }
  }
  {
    const r = rng.fork('liverCyst');
    const k = r.int(1, 2);
    for (let i = 0; i < k; i++) {
      const c = { organ: 'liver', where: inside(r, 0.7), radiusMm: r.uniform(6, 20), hu: r.uniform(0, 15), extends: false };
      if (present.has('liverCyst')) inserts.push(c);
    }
  }
  {
    // An exophytic cyst: centred near the kidney's surface, so part of it bulges out (labelled kidney).
    const r = rng.fork('kidneyCyst');
    const organ = r.random() < 0.5 ? 'kidney_right' : 'kidney_left';
    const dir = [r.normal(), r.normal(), r.normal()];
    const len = Math.hypot(dir[0]!, dir[1]!, dir[2]!) || 1;
    const depth = r.uniform(0.6, 0.9);
    const c = { organ, where: [dir[0]! / len * depth, dir[1]! / len * depth, dir[2]! / len * depth] as [number, number, number], radiusMm: r.uniform(12, 25), hu: r.uniform(0, 15), extends: true };
    if (present.has('kidneyCyst')) inserts.push(c);
  }
  {
    const r = rng.fork('gallstones');
    const k = r.int(1, 4);
    for (let i = 0; i < k; i++) {
      const s = { organ: 'gallbladder', where: inside(r, 0.4), radiusMm: r.uniform(3, 7), hu: r.uniform(300, 900), extends: false };
      if (present.has('gallstones')) inserts.push(s);
    }
  }
  const spleenScale = rng.fork('splenomegaly').uniform(1.5, 2.0);
  const pr = rng.fork('atrophicPancreas');
  const pancreasScale = pr.uniform(0.5, 0.65), pancreasHu = -pr.uniform(30, 60);
  const mk = rng.fork('missingKidney').random() < 0.5 ? 'kidney_right' : 'kidney_left';
  const dr = rng.fork('displacedKidney');
  const dk = { organ: (dr.random() < 0.5 ? 'kidney_right' : 'kidney_left') as 'kidney_right' | 'kidney_left', shift: [0, dr.uniform(-10, 0), -dr.uniform(45, 75)] as [number, number, number] };
  dk.shift[0] = (dk.organ === 'kidney_right' ? 1 : -1) * dr.uniform(10, 25); // towards the midline
  const mr = rng.fork('metal');
  const rods: [number, number][] = mr.random() < 0.6 ? [[-24, 72], [24, 72]] : [[mr.uniform(-30, 30), mr.uniform(60, 75)]];
  const z0 = mr.uniform(-110, 0);
  const metal = {
    rods,
    z: [z0, z0 + mr.uniform(50, 110)] as [number, number],
    streaks: Array.from({ length: mr.int(8, 14) }, () => ({ angle: mr.uniform(0, Math.PI), amp: (mr.random() < 0.5 ? -1 : 1) * mr.uniform(600, 1400) })),
    widthMm: mr.uniform(3, 6),
    decayMm: mr.uniform(100, 200),
  };
  const truncation = rng.fork('truncatedFov').uniform(0.65, 0.82);
  const oral = rng.fork('oralContrast').uniform(250, 500);
  const dose = rng.fork('lowDose').uniform(3, 4.5);
  return {
    phase, kernel, noise, sliceMm, fovMm, findings, inserts,
    spleenScale: present.has('splenomegaly') ? spleenScale : 1,
    pancreasScale: present.has('atrophicPancreas') ? pancreasScale : 1,
    pancreasHu: present.has('atrophicPancreas') ? pancreasHu : 0,
    missingKidney: present.has('missingKidney') ? mk : null,
    displacedKidney: present.has('displacedKidney') && !(present.has('missingKidney') && mk === dk.organ) ? dk : null,
    metal: present.has('metal') ? metal : null,
    truncation: present.has('truncatedFov') ? truncation : null,
    oralContrastHu: present.has('oralContrast') ? oral : null,
    doseFactor: present.has('lowDose') ? dose : 1,
    situsInversus: present.has('situsInversus'),
  };
}

/**
 * Streak artefact of metal rods in one axial slice: bright and dark lines through each rod at the
 * drawn angles, fading with distance, plus a dark band between two rods (beam hardening).
 * @param x - patient x, mm
 * @param y - patient y, mm
 * @param m - the case's metal
 * @returns HU to add
 */
export function streakHu(x: number, y: number, m: NonNullable<CaseProfile['metal']>): number {
  let v = 0;
  for (const [rx, ry] of m.rods) {
    const dx = x - rx, dy = y - ry;
    const d = Math.hypot(dx, dy);
    if (d < 1e-6) continue;
    const fade = Math.exp(-d / m.decayMm);
    for (const s of m.streaks) {
      // Distance from the line through the rod at angle s.angle.
      const off = Math.abs(-Math.sin(s.angle) * dx + Math.cos(s.angle) * dy);
      if (off < 3 * m.widthMm) v += s.amp * fade * Math.exp(-((off / m.widthMm) ** 2));
    }
  }
  if (m.rods.length === 2) {
    const [a, b] = m.rods as [[number, number], [number, number]];
    const ex = b[0] - a[0], ey = b[1] - a[1], len2 = ex * ex + ey * ey;
    const t = ((x - a[0]) * ex + (y - a[1]) * ey) / len2;
    if (t > 0 && t < 1) {
      const off = Math.abs(-ey * (x - a[0]) + ex * (y - a[1])) / Math.sqrt(len2);
      v -= 350 * Math.exp(-((off / (2 * m.widthMm)) ** 2));
    }
  }
  return v;
}

/**
 * In-plane filtering of one volume by the reconstruction kernel (separable 3-tap, x and y).
 * Soft: [0.25, 0.5, 0.25]; sharp: an unsharp mask (x + 0.6 (x − soft(x))); standard: unchanged.
 * @param data - values, x fastest, modified in place
 * @param shape - grid
 * @param kernel - the kernel
 */
export function applyKernel(data: Float32Array, shape: readonly [number, number, number], kernel: ReconKernel): void {
  if (kernel === 'standard') return;
  const [nx, ny, nz] = shape;
  const soft = new Float32Array(data.length);
  const tmp = new Float32Array(data.length);
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
    const o = i + nx * (j + ny * k);
    tmp[o] = 0.5 * data[o]! + 0.25 * (data[i > 0 ? o - 1 : o]! + data[i < nx - 1 ? o + 1 : o]!);
  }
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
    const o = i + nx * (j + ny * k);
    soft[o] = 0.5 * tmp[o]! + 0.25 * (tmp[j > 0 ? o - nx : o]! + tmp[j < ny - 1 ? o + nx : o]!);
  }
  if (kernel === 'soft') data.set(soft);
  else for (let o = 0; o < data.length; o++) data[o] = data[o]! + 0.6 * (data[o]! - soft[o]!);
}

/**
 * White noise passed through the kernel and rescaled so that its σ is `sigma` (the documented σ is
 * what one measures in a homogeneous organ).
 * @param rng - noise stream
 * @param shape - grid
 * @param kernel - kernel
 * @param sigma - target σ, HU
 * @returns the noise field
 */
export function kernelNoise(rng: Rng, shape: readonly [number, number, number], kernel: ReconKernel, sigma: number): Float32Array {
  const n = shape[0] * shape[1] * shape[2];
  const f = new Float32Array(n);
  for (let i = 0; i < n; i++) f[i] = rng.normal();
  applyKernel(f, shape, kernel);
  // σ of the filtered white noise, from the filter taps: soft (3/8)² per axis pair, sharp 1.6·δ − 0.6·soft.
  const soft1 = [0.25, 0.5, 0.25];
  const taps2d = (a: number[]) => a.flatMap((u) => a.map((v) => u * v));
  const soft = taps2d(soft1);
  const taps = kernel === 'soft' ? soft : kernel === 'sharp' ? soft.map((t, i) => (i === 4 ? 1.6 : 0) - 0.6 * t) : [1];
  const gain = Math.sqrt(taps.reduce((s, t) => s + t * t, 0));
  for (let i = 0; i < n; i++) f[i] = (f[i]! * sigma) / gain;
  return f;
}
