/**
 * 3D abdominal-CT-like phantoms in HU with the 9 AbdomenAtlas organ labels, for tests, the 3D
 * demo models and the atlas workflow.
 *
 * Anatomy is laid out in patient millimetres (LPS: +x patient left, +y posterior, +z superior),
 * relative to the centre of the abdomen, then sampled on a scanner-like grid (anisotropic voxels,
 * identity direction, origin where a CT table would put it). Organs are deformed, rotated
 * ellipsoids (and a curved tube for the pancreas, cylinders for the vessels) painted in a fixed
 * order, so the truth is a partition: no voxel belongs to two organs. Each case comes from a
 * "source" that, like the public data sets AbdomenAtlas-8K merged, labels only some organs and has
 * its own scanner habits (slice thickness, noise, calibration offset).
 *
 * @module
 */
import { MedmaskError } from '../errors.js';
import { Rng } from '../random.js';
import { createVolume, type Vec3, type Volume } from '../volume.js';
import { applyKernel, drawCaseProfile, kernelNoise, PHASE_HU, SOURCE_PROFILES, streakHu, type CaseProfile, type FindingName, type Insert } from './abdomen-realism.js';

/** The AbdomenAtlas label values and names (0 is background). */
export const ABDOMEN_LABELS = {
  1: 'spleen',
  2: 'kidney_right',
  3: 'kidney_left',
  4: 'gallbladder',
  5: 'liver',
  6: 'stomach',
  7: 'aorta',
  8: 'postcava',
  9: 'pancreas',
} as const;
/** An organ name. */
export type OrganName = (typeof ABDOMEN_LABELS)[keyof typeof ABDOMEN_LABELS];
/** Organ names in label order (index + 1 = label value). */
export const ORGANS = Object.values(ABDOMEN_LABELS) as OrganName[];
/** The label value of an organ. */
export function organLabel(name: OrganName): number {
  return ORGANS.indexOf(name) + 1;
}

/** A phantom data source: which organs it labels, and its scanner's habits. */
export interface PhantomSource {
  /** Organs this source's annotators labelled. */
  labelled: readonly OrganName[];
  /** Slice thickness range, mm (in-plane spacing comes from the field of view). */
  sliceMm: [number, number];
  /** Noise σ, HU. */
  noise: number;
  /** Calibration offset added to every tissue, HU. */
  offset: number;
  /** Relative frequency when sources are drawn. */
  weight: number;
}

/**
 * Sources modelled on the public data sets AbdomenAtlas-8K merged (organs as those sets label
 * them, restricted to the 9 labels here).
 */
export const PHANTOM_SOURCES = {
  btcv: { labelled: ORGANS, sliceMm: [2.5, 3.0], noise: 14, offset: 0, weight: 1 },
  amos: { labelled: ORGANS, sliceMm: [1.5, 2.5], noise: 10, offset: 4, weight: 1 },
  flare: { labelled: ['liver', 'kidney_right', 'kidney_left', 'spleen', 'pancreas'], sliceMm: [2.5, 5.0], noise: 12, offset: -3, weight: 1 },
  lits: { labelled: ['liver'], sliceMm: [0.8, 2.5], noise: 16, offset: 6, weight: 1 },
  kits: { labelled: ['kidney_right', 'kidney_left'], sliceMm: [0.5, 1.5], noise: 11, offset: -5, weight: 1 },
  msd_spleen: { labelled: ['spleen'], sliceMm: [1.5, 5.0], noise: 13, offset: 2, weight: 0.5 },
  msd_pancreas: { labelled: ['pancreas'], sliceMm: [1.5, 2.5], noise: 12, offset: -2, weight: 0.5 },
} as const satisfies Record<string, PhantomSource>;
/** A source name. */
export type SourceName = keyof typeof PHANTOM_SOURCES;
/** Source names. */
export const SOURCE_NAMES = Object.keys(PHANTOM_SOURCES) as SourceName[];

/** Knobs of {@link abdomenPhantom}. */
export interface AbdomenOptions {
  seed: number;
  /** In-plane voxels along x and y (default 96, at least 32); the field of view stays 330–400 mm. */
  size?: number;
  /** The source; default drawn by weight. */
  source?: SourceName;
  /**
   * Realistic cases (default false: the clean phantoms of earlier releases, byte for byte): the
   * source's scanner profile (contrast phase, kernel, noise, slice thickness, field of view) and
   * findings drawn at the source's rates (`SOURCE_PROFILES` in abdomen-realism.ts).
   */
  realistic?: boolean;
  /** Realistic cases: findings forced off (the case is otherwise identical). */
  findingsOff?: readonly FindingName[];
  /** Realistic cases: findings forced on. */
  findingsOn?: readonly FindingName[];
}

/** Per-organ facts of one phantom. */
export interface OrganStat {
  name: OrganName;
  label: number;
  voxels: number;
  /** Volume in millilitres. */
  ml: number;
  /** Whether the case's source labels it (so it is in `partial`). */
  labelled: boolean;
}

/** One abdominal phantom. */
export interface AbdomenPhantom {
  /** CT in HU, int16. */
  image: Volume<Int16Array>;
  /** Full truth: every organ labelled, uint8. */
  truth: Volume<Uint8Array>;
  /** Only the organs the source labels; everything else 0. */
  partial: Volume<Uint8Array>;
  source: SourceName;
  labelled: OrganName[];
  organs: OrganStat[];
  seed: number;
  /** Realistic cases: the scanner settings and findings drawn for this case. */
  profile?: CaseProfile;
}

/** A solid in patient mm: a bounding box and an inside test. */
interface Solid {
  min: Vec3;
  max: Vec3;
  inside(x: number, y: number, z: number): boolean;
  /** Ellipsoids: centre and semi-axes (mm), to place lesions. */
  centre?: Vec3;
  semi?: Vec3;
}

/** A solid moved by `s` mm. */
function shifted(solid: Solid, s: Vec3): Solid {
  const add = (v: Vec3): Vec3 => [v[0] + s[0], v[1] + s[1], v[2] + s[2]];
  return {
    min: add(solid.min),
    max: add(solid.max),
    inside: (x, y, z) => solid.inside(x - s[0], y - s[1], z - s[2]),
    ...(solid.centre ? { centre: add(solid.centre) } : {}),
    ...(solid.semi ? { semi: solid.semi } : {}),
  };
}

/** A solid mirrored left-right (x → −x, patient frame). */
function mirrored(solid: Solid): Solid {
  const flip = (v: Vec3): Vec3 => [-v[0], v[1], v[2]];
  return {
    min: [-solid.max[0], solid.min[1], solid.min[2]],
    max: [-solid.min[0], solid.max[1], solid.max[2]],
    inside: (x, y, z) => solid.inside(-x, y, z),
    ...(solid.centre ? { centre: flip(solid.centre) } : {}),
    ...(solid.semi ? { semi: solid.semi } : {}),
  };
}

/** A ball. */
function ball(c: Vec3, r: number): Solid {
  return {
    min: [c[0] - r, c[1] - r, c[2] - r],
    max: [c[0] + r, c[1] + r, c[2] + r],
    inside: (x, y, z) => (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= r * r,
  };
}

/**
 * A deformed, rotated ellipsoid: rotation `yaw` about z then `tilt` about x; the surface radius is
 * modulated by a few low-order harmonics (`wobble` ≈ relative amplitude), which is what makes two
 * seeds' organs different shapes rather than different sizes.
 */
function ellipsoid(rng: Rng, c: Vec3, semi: Vec3, yaw: number, tilt: number, wobble: number): Solid {
  const [a, b, d] = semi;
  const cy = Math.cos(yaw), sy = Math.sin(yaw), ct = Math.cos(tilt), st = Math.sin(tilt);
  const h = Array.from({ length: 3 }, () => ({ amp: rng.uniform(0, wobble), ph: rng.uniform(0, 2 * Math.PI), m: rng.int(2, 4) }));
  const r = Math.max(a, b, d) * (1 + 3 * wobble);
  return {
    min: [c[0] - r, c[1] - r, c[2] - r],
    max: [c[0] + r, c[1] + r, c[2] + r],
    centre: c,
    semi,
    inside(x, y, z) {
      const dx = x - c[0], dy = y - c[1], dz = z - c[2];
      const u = cy * dx + sy * dy, v0 = -sy * dx + cy * dy;
      const v = ct * v0 + st * dz, w = -st * v0 + ct * dz;
      const q = (u / a) ** 2 + (v / b) ** 2 + (w / d) ** 2;
      if (q > (1 + 3 * wobble) ** 2) return false;
      const phi = Math.atan2(v / b, u / a), cosPolar = w / d / (Math.sqrt(q) || 1);
      let e = 1;
      for (const k of h) e += k.amp * Math.cos(k.m * phi + k.ph) * (1 - 0.5 * cosPolar * cosPolar);
      return q <= e * e;
    },
  };
}

/** A tube of varying radius along a polyline (pancreas). */
function tube(points: Vec3[], radii: number[]): Solid {
  const min: Vec3 = [Infinity, Infinity, Infinity], max: Vec3 = [-Infinity, -Infinity, -Infinity];
  const rmax = Math.max(...radii);
  for (const p of points) for (let i = 0; i < 3; i++) {
    min[i] = Math.min(min[i]!, p[i]! - rmax);
    max[i] = Math.max(max[i]!, p[i]! + rmax);
  }
  return {
    min,
    max,
    inside(x, y, z) {
      for (let s = 0; s + 1 < points.length; s++) {
        const p = points[s]!, q = points[s + 1]!;
        const ex = q[0] - p[0], ey = q[1] - p[1], ez = q[2] - p[2];
        const len2 = ex * ex + ey * ey + ez * ez;
        let t = ((x - p[0]) * ex + (y - p[1]) * ey + (z - p[2]) * ez) / len2;
        t = Math.min(1, Math.max(0, t));
        const dx = x - p[0] - t * ex, dy = y - p[1] - t * ey, dz = z - p[2] - t * ez;
        const r = radii[s]! + t * (radii[s + 1]! - radii[s]!);
        if (dx * dx + dy * dy + dz * dz <= r * r) return true;
      }
      return false;
    },
  };
}

/** A vertical vessel: elliptic cross-section around a centre line drifting linearly with z. */
function vessel(c: [number, number], drift: [number, number], rx: number, ry: number, z0: number, z1: number): Solid {
  const m = Math.max(Math.abs(drift[0]), Math.abs(drift[1])) * Math.max(Math.abs(z0), Math.abs(z1));
  return {
    min: [c[0] - rx - m, c[1] - ry - m, z0],
    max: [c[0] + rx + m, c[1] + ry + m, z1],
    inside(x, y, z) {
      if (z < z0 || z > z1) return false;
      const u = (x - c[0] - drift[0] * z) / rx, v = (y - c[1] - drift[1] * z) / ry;
      return u * u + v * v <= 1;
    },
  };
}

/** Anatomy changes of a realistic case (identity for clean cases). */
interface Adjust {
  spleenScale: number;
  pancreasScale: number;
}

/** Organ solids and mean HU of one case, in paint order (later wins). */
function layOut(rng: Rng, adj: Adjust = { spleenScale: 1, pancreasScale: 1 }): { organ: OrganName; solid: Solid; hu: number }[] {
  const j = (v: number, f = 0.1) => v * rng.uniform(1 - f, 1 + f);
  const t = () => rng.uniform(-8, 8); // mm of positional jitter
  const liver = ellipsoid(rng.fork('liver'), [-70 + t(), -5 + t(), 45 + t()], [j(76), j(82), j(66)], rng.uniform(0.1, 0.3), rng.uniform(-0.15, 0.15), 0.06);
  // Cut the liver's left lobe off at an oblique plane so it tapers across the midline.
  const cut = rng.uniform(15, 35);
  const liverCut: Solid = { ...liver, inside: (x, y, z) => x < cut - 0.4 * (z - 45) && liver.inside(x, y, z) };
  const kidneyR = ellipsoid(rng.fork('kidney_right'), [-75 + t(), 55 + t() / 2, -20 + t()], [j(27), j(24), j(52)], rng.uniform(0.3, 0.5), rng.uniform(-0.2, 0.1), 0.05);
  const kidneyL = ellipsoid(rng.fork('kidney_left'), [75 + t(), 55 + t() / 2, -5 + t()], [j(27), j(24), j(52)], -rng.uniform(0.3, 0.5), rng.uniform(-0.2, 0.1), 0.05);
  const spleen = ellipsoid(rng.fork('spleen'), [98 + t(), 40 + t(), 50 + t()], [j(24) * adj.spleenScale, j(45) * adj.spleenScale, j(50) * adj.spleenScale], -rng.uniform(0.4, 0.7), rng.uniform(-0.2, 0.2), 0.08);
  const stomach = ellipsoid(rng.fork('stomach'), [45 + t(), -40 + t(), 55 + t()], [j(50, 0.2), j(33), j(55, 0.2)], rng.uniform(0.3, 0.7), rng.uniform(-0.3, 0.3), 0.1);
  const gall = ellipsoid(rng.fork('gallbladder'), [-50 + t(), -48 + t(), 5 + t()], [j(15, 0.2), j(15, 0.2), j(32, 0.2)], rng.uniform(-0.3, 0.3), rng.uniform(0.2, 0.5), 0.05);
  const pz = t();
  const pancreas = tube(
    [
      [-38 + t() / 2, 14 + t() / 2, pz],
      [-10, 20, pz + 6],
      [20, 20 + t() / 2, pz + 12],
      [50, 24, pz + 18],
      [78 + t() / 2, 30 + t() / 2, pz + 26 + t() / 2],
    ],
    [j(14), j(12), j(10), j(9), j(8)].map((r) => r * adj.pancreasScale),
  );
  const aorta = vessel([12 + t() / 3, 45 + t() / 3], [rng.uniform(-0.03, 0.03), rng.uniform(-0.05, 0)], j(11), j(11), -130, 130);
  const ivc = vessel([-24 + t() / 3, 40 + t() / 3], [rng.uniform(-0.03, 0.03), rng.uniform(-0.05, 0.02)], j(13), j(10), -130, 95);
  const hu = (m: number, s: number) => Math.round(rng.normal(m, s));
  return [
    { organ: 'liver', solid: liverCut, hu: hu(100, 8) },
    { organ: 'spleen', solid: spleen, hu: hu(115, 8) },
    { organ: 'stomach', solid: stomach, hu: hu(35, 5) },
    { organ: 'kidney_right', solid: kidneyR, hu: hu(160, 15) },
    { organ: 'kidney_left', solid: kidneyL, hu: hu(160, 15) },
    { organ: 'gallbladder', solid: gall, hu: hu(10, 4) },
    { organ: 'pancreas', solid: pancreas, hu: hu(85, 8) },
    { organ: 'postcava', solid: ivc, hu: hu(135, 10) },
    { organ: 'aorta', solid: aorta, hu: hu(170, 15) },
  ];
}

/**
 * Sources for n cases: a seeded shuffle of the weighted source list, repeated, so that even a few
 * cases cover several sources.
 * @param n - number of cases
 * @param seed - seed
 * @returns one source name per case
 */
export function assignSources(n: number, seed: number): SourceName[] {
  const rng = new Rng(seed).fork('sources');
  const deck: SourceName[] = [];
  for (const s of SOURCE_NAMES) for (let k = 0; k < PHANTOM_SOURCES[s].weight * 2; k++) deck.push(s);
  const out: SourceName[] = [];
  while (out.length < n) out.push(...rng.shuffle(deck));
  return out.slice(0, n);
}

/**
 * Generate one abdominal CT phantom.
 * @param opts - seed, in-plane size, source
 * @returns CT in HU, full truth, partial labels of the source, organ statistics
 * @throws MedmaskError USAGE for a size outside 32…1024 or an unknown source
 * @example
 * const p = abdomenPhantom({ seed: 1, size: 64, source: 'lits' });
 * p.organs.find((o) => o.name === 'liver')!.ml; // ≈ 1500
 */
export function abdomenPhantom(opts: AbdomenOptions): AbdomenPhantom {
  const n = opts.size ?? 96;
  if (!Number.isInteger(n) || n < 32 || n > 1024) throw new MedmaskError('USAGE', `phantom size ${n} is out of range`, { hint: 'use an integer from 32 to 1024 voxels' });
  const root = new Rng(opts.seed);
  const source = opts.source ?? root.fork('source').pick(SOURCE_NAMES, SOURCE_NAMES.map((s) => PHANTOM_SOURCES[s].weight));
  const src: PhantomSource | undefined = (PHANTOM_SOURCES as Record<string, PhantomSource>)[source];
  if (!src) throw new MedmaskError('USAGE', `unknown phantom source "${source}"`, { hint: `use one of ${SOURCE_NAMES.join(', ')}` });
  const real = opts.realistic ? drawCaseProfile(root.fork('realism'), SOURCE_PROFILES[source], new Set(opts.findingsOff ?? []), new Set(opts.findingsOn ?? [])) : undefined;
  const scan = root.fork('scanner');
  // Geometry: field of view 330–400 mm in plane (realistic: the source's range); slices 1.3–1.8×
  // thicker than the in-plane spacing at the default size (at 512 the source's own slice
  // thickness), 230–270 mm long. Every draw happens in both modes so the streams stay aligned.
  const fovClean = scan.uniform(330, 400);
  const fov = real ? real.fovMm : fovClean;
  const sx = fov / n;
  const sliceClean = scan.uniform(src.sliceMm[0], src.sliceMm[1]);
  const sz = Math.max(real ? real.sliceMm : sliceClean, sx * scan.uniform(1.3, 1.8));
  const nz = Math.max(8, Math.round(scan.uniform(230, 270) / sz));
  const spacing: Vec3 = [sx, sx, sz];
  const zTable = scan.uniform(-700, -300);
  // Patient-frame offset of the abdomen centre in the scanner frame (table height, centring).
  const centre: Vec3 = [scan.uniform(-12, 12), scan.uniform(-25, 5), zTable + (nz * sz) / 2 + scan.uniform(-15, 15)];
  const origin: Vec3 = [-(n - 1) * sx / 2, -(n - 1) * sx / 2, zTable];

  const anat = root.fork('anatomy');
  const bodyA = anat.uniform(140, 160), bodyB = anat.uniform(105, 120), fat = anat.uniform(12, 22);
  const organs = realisticOrgans(layOut(anat.fork('organs'), real ?? { spleenScale: 1, pancreasScale: 1 }), real);
  const hu = new Float32Array(n * n * nz);
  const truth = new Uint8Array(n * n * nz);
  const off = src.offset;
  // Body, fat, muscle wall, spine.
  for (let k = 0, idx = 0; k < nz; k++) {
    for (let jj = 0; jj < n; jj++) {
      const y = origin[1] + jj * sx - centre[1];
      for (let i = 0; i < n; i++, idx++) {
        const x = origin[0] + i * sx - centre[0];
        const r = Math.sqrt((x / bodyA) ** 2 + ((y - 5) / bodyB) ** 2);
        let v = -1000;
        if (r <= 1) {
          const depth = (1 - r) * Math.min(bodyA, bodyB);
          v = depth < fat ? -100 + off : depth < fat + 8 ? 50 + off : -90 + off;
          if ((x / 18) ** 2 + ((y - 78) / 18) ** 2 <= 1) v = 450 + off;
          else if ((x / 30) ** 2 + ((y - 62) / 14) ** 2 <= 1 && y > 52) v = 55 + off; // psoas-ish muscle
        }
        hu[idx] = v;
      }
    }
  }
  for (const { organ, solid, hu: mean, inserts } of organs) {
    const label = organLabel(organ);
    const grow = inserts.filter((s) => s.extends);
    const lo: Vec3 = [...solid.min], hi: Vec3 = [...solid.max];
    for (const g of grow) for (let a = 0; a < 3; a++) {
      lo[a] = Math.min(lo[a]!, g.solid.min[a]!);
      hi[a] = Math.max(hi[a]!, g.solid.max[a]!);
    }
    const toIdx = (w: number, o: number, s: number) => (w - o) / s;
    const i0 = Math.max(0, Math.floor(toIdx(lo[0] + centre[0], origin[0], sx)));
    const i1 = Math.min(n - 1, Math.ceil(toIdx(hi[0] + centre[0], origin[0], sx)));
    const j0 = Math.max(0, Math.floor(toIdx(lo[1] + centre[1], origin[1], sx)));
    const j1 = Math.min(n - 1, Math.ceil(toIdx(hi[1] + centre[1], origin[1], sx)));
    const k0 = Math.max(0, Math.floor(toIdx(lo[2] + centre[2], origin[2], sz)));
    const k1 = Math.min(nz - 1, Math.ceil(toIdx(hi[2] + centre[2], origin[2], sz)));
    for (let k = k0; k <= k1; k++) {
      const z = origin[2] + k * sz - centre[2];
      for (let jj = j0; jj <= j1; jj++) {
        const y = origin[1] + jj * sx - centre[1];
        for (let i = i0; i <= i1; i++) {
          const x = origin[0] + i * sx - centre[0];
          const idx = i + n * (jj + n * k);
          if (hu[idx]! <= -1000) continue; // organs stay inside the body
          const own = solid.inside(x, y, z);
          if (!own && !grow.some((g) => g.solid.inside(x, y, z))) continue;
          truth[idx] = label;
          let v = mean + off;
          if (organ === 'stomach') v = y < -55 ? -850 : real?.oralContrastHu != null ? real.oralContrastHu + off : v; // air rises anteriorly in a supine patient
          for (const s of inserts) if (s.solid.inside(x, y, z)) v = s.hu + off;
          hu[idx] = v;
        }
      }
    }
  }
  const noise = root.fork('noise');
  const image = new Int16Array(hu.length);
  const shape: Vec3 = [n, n, nz];
  if (!real) {
    for (let i = 0; i < hu.length; i++) image[i] = Math.max(-1024, Math.min(3071, Math.round(hu[i]! + (hu[i]! > -1000 ? noise.normal(0, src.noise) : noise.normal(0, 3)))));
  } else {
    paintArtefacts(hu, truth, real, { n, nz, sx, sz, origin, centre, bodyA, off });
    applyKernel(hu, shape, real.kernel);
    const f = kernelNoise(noise, shape, real.kernel, real.noise * real.doseFactor);
    const r = real.truncation;
    for (let k = 0, i = 0; k < nz; k++) for (let jj = 0; jj < n; jj++) for (let ii = 0; ii < n; ii++, i++) {
      // The reconstruction circle is centred on the scanner's axis (x = y = 0 in scanner mm).
      const outside = r !== null && Math.hypot(origin[0] + ii * sx, origin[1] + jj * sx) > r * bodyA;
      if (outside) truth[i] = 0;
      image[i] = outside ? -1024 : Math.max(-1024, Math.min(3071, Math.round(hu[i]! + f[i]!)));
    }
  }
  const labelled = ORGANS.filter((o) => src.labelled.includes(o));
  const keep = new Uint8Array(10);
  for (const o of labelled) keep[organLabel(o)] = 1;
  const partial = truth.map((l) => (keep[l] ? l : 0));
  const counts = new Array<number>(10).fill(0);
  for (const l of truth) counts[l]!++;
  const voxelMl = (sx * sx * sz) / 1000;
  const geo = { spacing, origin, meta: { source: `phantom:${source}`, modality: 'CT', unit: 'HU' } };
  const labelMeta = { ...geo, meta: { source: `phantom:${source}`, labels: { ...ABDOMEN_LABELS } } };
  return {
    image: createVolume(shape, 'int16', { ...geo, data: image }),
    truth: createVolume(shape, 'uint8', { ...labelMeta, data: truth }),
    partial: createVolume(shape, 'uint8', { ...labelMeta, data: partial }),
    source,
    labelled,
    organs: ORGANS.map((name, i) => ({ name, label: i + 1, voxels: counts[i + 1]!, ml: counts[i + 1]! * voxelMl, labelled: src.labelled.includes(name) })),
    seed: opts.seed,
    ...(real ? { profile: real } : {}),
  };
}

/** An organ to paint, with its inserts resolved to solids. */
interface PaintOrgan {
  organ: OrganName;
  solid: Solid;
  hu: number;
  inserts: { solid: Solid; hu: number; extends: boolean }[];
}

/**
 * Apply a realistic case's phase, variants and inserts to the laid-out organs: HU moved to the
 * phase's means (the case's drawn deviation kept), a missing kidney dropped, a displaced kidney
 * moved, lesions and stones placed inside their organ (a centre outside the organ is pulled towards
 * the organ's centre until inside), exophytic cysts on the organ's surface.
 */
function realisticOrgans(laid: { organ: OrganName; solid: Solid; hu: number }[], real: CaseProfile | undefined): PaintOrgan[] {
  if (!real) return laid.map((o) => ({ ...o, inserts: [] }));
  const out: PaintOrgan[] = [];
  // Situs inversus: every organ mirrored; a kidney laid out on the right ends up on the left and is
  // labelled by its side (so "kidney_left" is still the patient's left kidney).
  const side = (organ: OrganName): OrganName => !real.situsInversus ? organ : organ === 'kidney_right' ? 'kidney_left' : organ === 'kidney_left' ? 'kidney_right' : organ;
  const order = real.situsInversus ? laid.map((o) => ({ ...o, organ: side(o.organ), solid: mirrored(o.solid) })) : laid;
  for (const o of order) {
    if (real.missingKidney === o.organ) continue;
    const solid = real.displacedKidney?.organ === o.organ ? shifted(o.solid, real.displacedKidney.shift) : o.solid;
    let hu = PHASE_HU[real.phase][o.organ]! + (o.hu - PHASE_HU.clean[o.organ]!);
    if (o.organ === 'pancreas') hu += real.pancreasHu;
    const inserts = real.inserts.filter((s) => s.organ === o.organ).map((s) => ({ solid: placeInsert(solid, s), hu: s.hu, extends: s.extends }));
    out.push({ organ: o.organ, solid, hu, inserts });
  }
  return out;
}

function placeInsert(organ: Solid, s: Insert): Solid {
  const c = organ.centre ?? [(organ.min[0] + organ.max[0]) / 2, (organ.min[1] + organ.max[1]) / 2, (organ.min[2] + organ.max[2]) / 2];
  const semi = organ.semi ?? [(organ.max[0] - organ.min[0]) / 2, (organ.max[1] - organ.min[1]) / 2, (organ.max[2] - organ.min[2]) / 2];
  let f = 1;
  let p: Vec3 = c;
  for (let t = 0; t < 12; t++, f *= 0.8) {
    p = [c[0] + s.where[0] * semi[0] * f, c[1] + s.where[1] * semi[1] * f, c[2] + s.where[2] * semi[2] * f];
    if (organ.inside(...p)) break;
  }
  return ball(p, s.radiusMm);
}

/** Metal rods (only outside organs, so the truth is untouched) and their streaks (HU only). */
function paintArtefacts(hu: Float32Array, truth: Uint8Array, real: CaseProfile, g: { n: number; nz: number; sx: number; sz: number; origin: Vec3; centre: Vec3; bodyA: number; off: number }): void {
  const m = real.metal;
  if (!m) return;
  const { n, nz, sx, sz, origin, centre } = g;
  for (let k = 0; k < nz; k++) {
    const z = origin[2] + k * sz - centre[2];
    if (z < m.z[0] || z > m.z[1]) continue;
    for (let jj = 0; jj < n; jj++) {
      const y = origin[1] + jj * sx - centre[1];
      for (let i = 0; i < n; i++) {
        const idx = i + n * (jj + n * k);
        if (hu[idx]! <= -1000) continue;
        const x = origin[0] + i * sx - centre[0];
        // A rod covers the voxel when within 4 mm, or its nearest voxel (so thin rods show at 8 mm).
        const rod = m.rods.some(([rx, ry]) => Math.hypot(x - rx, y - ry) <= Math.max(4, sx * 0.71));
        if (rod && truth[idx] === 0) hu[idx] = 3000;
        else hu[idx] = hu[idx]! + streakHu(x, y, m);
      }
    }
  }
}
