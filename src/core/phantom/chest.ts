/**
 * 2D chest-radiograph-like phantoms with exact ground truth, for tests, benchmarks and the demo.
 *
 * Radiograph convention: dense tissue is bright (bone, heart, lesions), air is dark (lungs,
 * outside the body). Every image is built from independent seeded streams (anatomy, texture,
 * noise, lesions), so the same image without its lesions is the same image with its lesions
 * minus exactly the lesion pixels — the lesion mask is exactly the set of pixels that lesions
 * change, a property the tests check by regenerating with `lesions: false`.
 *
 * @module
 */
import { MedmaskError } from '../errors.js';
import { Rng } from '../random.js';

/** Image-level labels of the chest phantoms. */
export const CHEST_LABELS = ['healthy', 'nodule', 'consolidation', 'cavity'] as const;
/** One image-level label. */
export type ChestLabel = (typeof CHEST_LABELS)[number];
/** Kinds of out-of-distribution images. */
export const OOD_KINDS = ['knee', 'inverted', 'ct-slice'] as const;
/** One OOD kind. */
export type OodKind = (typeof OOD_KINDS)[number];

/** Knobs of {@link chestPhantom}. */
export interface ChestOptions {
  /** Seed; the same seed and options give identical pixels. */
  seed: number;
  /** Width and height in pixels (default 256, at least 32). */
  size?: number;
  /** Force the label; default: drawn with {@link ChestOptions.abnormalRate}. */
  label?: ChestLabel;
  /** Probability of an abnormal image when the label is drawn (default 0.6, classes equally likely). */
  abnormalRate?: number;
  /**
   * 0 (easy: large, high-contrast lesions, little noise) … 1 (hard: small, faint lesions, more
   * noise). Default 0.3.
   */
  difficulty?: number;
  /** Draw the lesions (default true). With false, the label and lesion list are still drawn but not painted. */
  lesions?: boolean;
}

/** One lesion as drawn. */
export interface Lesion {
  kind: Exclude<ChestLabel, 'healthy'>;
  /** Centre, pixels (column, row). */
  center: [number, number];
  /** Outer radius, pixels (for consolidations: of the bounding circle). */
  radius: number;
  /** Grey-level change at the centre (signed). */
  contrast: number;
  /** Pixels in the mask that belong to this lesion (after clipping to the lungs). */
  pixels: number;
}

/** A chest phantom. */
export interface ChestPhantom {
  size: number;
  /** 8-bit grey image, row-major, `size × size`. */
  image: Uint8Array;
  /** Lesion mask, 0/1. */
  mask: Uint8Array;
  /** Lung fields, 0/1 (lesions lie inside them). */
  lungs: Uint8Array;
  /** Body outline, 0/1. */
  body: Uint8Array;
  label: ChestLabel;
  lesions: Lesion[];
  seed: number;
}

interface Ellipse {
  cx: number;
  cy: number;
  rx: number;
  ry: number;
  /** Rotation, radians. */
  a: number;
}

/** Is (x, y) inside the rotated ellipse, scaled by `grow`? */
function inEllipse(e: Ellipse, x: number, y: number, grow = 1): boolean {
  const c = Math.cos(e.a), s = Math.sin(e.a);
  const dx = x - e.cx, dy = y - e.cy;
  const u = (c * dx + s * dy) / (e.rx * grow), v = (-s * dx + c * dy) / (e.ry * grow);
  return u * u + v * v <= 1;
}

/** Normalised squared radius in the ellipse (0 at the centre, 1 on the edge). */
function ellipseR2(e: Ellipse, x: number, y: number): number {
  const c = Math.cos(e.a), s = Math.sin(e.a);
  const dx = x - e.cx, dy = y - e.cy;
  const u = (c * dx + s * dy) / e.rx, v = (-s * dx + c * dy) / e.ry;
  return u * u + v * v;
}

/**
 * Smooth random texture: a sum of a few low-frequency cosines, ≈ zero mean, amplitude `amp`.
 * Independent of the image content, so texture never reveals a lesion.
 */
function texture(rng: Rng, size: number, amp: number): Float32Array {
  const out = new Float32Array(size * size);
  const waves = Array.from({ length: 6 }, () => ({
    fx: rng.uniform(1, 7) * (rng.random() < 0.5 ? -1 : 1) * 2 * Math.PI / size,
    fy: rng.uniform(1, 7) * 2 * Math.PI / size,
    ph: rng.uniform(0, 2 * Math.PI),
    a: rng.uniform(0.3, 1),
  }));
  const norm = amp / Math.sqrt(waves.reduce((s, w) => s + w.a * w.a / 2, 0));
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let v = 0;
      for (const w of waves) v += w.a * Math.cos(w.fx * x + w.fy * y + w.ph);
      out[y * size + x] = v * norm;
    }
  }
  return out;
}

/** Anatomy of one chest: body, lungs, heart, spine, ribs. */
interface ChestAnatomy {
  body: Ellipse;
  lungs: [Ellipse, Ellipse];
  heart: Ellipse;
  spineX: number;
  spineHalf: number;
  ribs: { y0: number; curve: number; half: number }[];
  diaphragm: number;
}

function drawAnatomy(rng: Rng, n: number): ChestAnatomy {
  const j = (v: number, f = 0.06) => v * rng.uniform(1 - f, 1 + f);
  const body: Ellipse = { cx: j(0.5 * n, 0.03), cy: j(0.56 * n, 0.03), rx: j(0.44 * n), ry: j(0.52 * n), a: rng.uniform(-0.04, 0.04) };
  const lungY = j(0.47 * n, 0.04), lungRy = j(0.29 * n), gap = j(0.19 * n);
  const lungs: [Ellipse, Ellipse] = [
    { cx: body.cx - gap, cy: lungY, rx: j(0.135 * n), ry: lungRy, a: rng.uniform(0.02, 0.12) },
    { cx: body.cx + gap, cy: lungY, rx: j(0.135 * n), ry: lungRy * rng.uniform(0.94, 1.02), a: -rng.uniform(0.02, 0.12) },
  ];
  const heart: Ellipse = { cx: body.cx + j(0.045 * n, 0.5), cy: lungY + j(0.17 * n), rx: j(0.13 * n), ry: j(0.12 * n), a: rng.uniform(-0.3, 0.1) };
  const ribs: ChestAnatomy['ribs'] = [];
  const top = lungY - lungRy * 0.95, step = (lungRy * 1.8) / 8;
  for (let k = 0; k < 8; k++) ribs.push({ y0: top + k * step + rng.uniform(-0.1, 0.1) * step, curve: rng.uniform(1.4, 2.2) / n, half: rng.uniform(0.010, 0.016) * n });
  return { body, lungs, heart, spineX: body.cx + rng.uniform(-0.01, 0.01) * n, spineHalf: j(0.035 * n), ribs, diaphragm: lungY + lungRy * 0.8 };
}

/** Grey level of the anatomy alone (no texture, noise or lesions) and the body/lung masks. */
function paintAnatomy(a: ChestAnatomy, n: number, base: Float32Array, body: Uint8Array, lungs: Uint8Array): void {
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const i = y * n + x, px = x + 0.5, py = y + 0.5;
      if (!inEllipse(a.body, px, py)) {
        base[i] = 12;
        continue;
      }
      body[i] = 1;
      // Soft tissue, brighter towards the edge of the body (thicker path of the beam at the sides).
      let v = 120 + 40 * Math.min(1, ellipseR2(a.body, px, py));
      const inHeart = inEllipse(a.heart, px, py);
      const inLung = !inHeart && (inEllipse(a.lungs[0], px, py) || inEllipse(a.lungs[1], px, py));
      if (inLung) {
        lungs[i] = 1;
        v = 58;
      } else if (inHeart) v = 175;
      if (Math.abs(px - a.spineX) < a.spineHalf && !inLung) v += 35;
      if (py > a.diaphragm && !inLung) v += 10;
      for (const r of a.ribs) {
        const dx = px - a.body.cx;
        const ry = r.y0 + r.curve * dx * dx * 0.9;
        if (Math.abs(py - ry) < r.half && Math.abs(dx) > a.spineHalf) {
          v += inLung ? 40 : 18;
          break;
        }
      }
      base[i] = v;
    }
  }
}

/**
 * Paint one lesion's signed grey-level change into `delta` (only where the lungs are) and mark its
 * pixels in `mask`. The change is non-zero and at least 6 grey levels everywhere it is painted, so
 * the mask is exactly where the image differs from the lesion-free image.
 */
function paintLesion(kind: Lesion['kind'], rng: Rng, n: number, lungs: Uint8Array, lungList: Ellipse[], difficulty: number, delta: Float32Array, mask: Uint8Array): Lesion | undefined {
  const lung = rng.pick(lungList);
  const sizeScale = 1 - 0.5 * difficulty;
  const contrast = rng.uniform(45, 75) * (1 - 0.55 * difficulty);
  // Centre: a point well inside the chosen lung.
  const t = rng.uniform(0, 2 * Math.PI), rr = Math.sqrt(rng.random()) * 0.6;
  const cx = lung.cx + Math.cos(t) * rr * lung.rx, cy = lung.cy + Math.sin(t) * rr * lung.ry;
  let radius: number;
  let inside: (x: number, y: number) => number; // change at (x, y), 0 outside
  if (kind === 'nodule') {
    radius = rng.uniform(0.025, 0.05) * n * sizeScale;
    inside = (x, y) => {
      const d2 = ((x - cx) ** 2 + (y - cy) ** 2) / (radius * radius);
      return d2 <= 1 ? contrast * (1 - 0.5 * d2) : 0;
    };
  } else if (kind === 'consolidation') {
    radius = rng.uniform(0.06, 0.1) * n * sizeScale;
    const blobs = Array.from({ length: rng.int(3, 5) }, () => {
      const bt = rng.uniform(0, 2 * Math.PI), br = rng.uniform(0, 0.55) * radius;
      const r = rng.uniform(0.35, 0.45) * radius;
      return { x: cx + Math.cos(bt) * br, y: cy + Math.sin(bt) * br, r };
    });
    const c = contrast * 0.85;
    inside = (x, y) => {
      for (const b of blobs) if ((x - b.x) ** 2 + (y - b.y) ** 2 <= b.r * b.r) return c * (0.85 + 0.15 * Math.cos((x + y) * 0.9));
      return 0;
    };
  } else {
    radius = rng.uniform(0.04, 0.07) * n * sizeScale;
    const hole = rng.uniform(0.45, 0.6);
    inside = (x, y) => {
      const d = Math.sqrt((x - cx) ** 2 + (y - cy) ** 2) / radius;
      if (d > 1) return 0;
      return d < hole ? -Math.max(8, contrast * 0.4) : contrast; // air-filled centre, dense wall
    };
  }
  let pixels = 0;
  const x0 = Math.max(0, Math.floor(cx - radius - 1)), x1 = Math.min(n - 1, Math.ceil(cx + radius + 1));
  const y0 = Math.max(0, Math.floor(cy - radius - 1)), y1 = Math.min(n - 1, Math.ceil(cy + radius + 1));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const i = y * n + x;
      if (!lungs[i]) continue;
      const d = inside(x + 0.5, y + 0.5);
      if (d === 0) continue;
      const s = Math.sign(d) * Math.max(6, Math.abs(d));
      if (!mask[i]) pixels++;
      mask[i] = 1;
      delta[i] = delta[i] !== 0 && Math.sign(delta[i]!) !== Math.sign(s) ? s : delta[i]! + s;
    }
  }
  if (!pixels) return undefined;
  return { kind, center: [cx, cy], radius, contrast: kind === 'cavity' ? contrast : inside(cx, cy), pixels };
}

/**
 * Generate one chest-radiograph-like phantom.
 * @param opts - seed, size, label, difficulty
 * @returns image, exact lesion mask, lung and body masks, label and lesion list
 * @throws MedmaskError USAGE for a size below 32 or a difficulty outside [0, 1]
 * @example
 * const p = chestPhantom({ seed: 3, size: 128, label: 'nodule' });
 * p.mask.reduce((a, b) => a + b, 0); // lesion pixels, all inside p.lungs
 */
export function chestPhantom(opts: ChestOptions): ChestPhantom {
  const n = opts.size ?? 256;
  if (!Number.isInteger(n) || n < 32 || n > 4096) throw new MedmaskError('USAGE', `phantom size ${n} is out of range`, { hint: 'use an integer from 32 to 4096 pixels' });
  const difficulty = opts.difficulty ?? 0.3;
  if (!(difficulty >= 0 && difficulty <= 1)) throw new MedmaskError('USAGE', `difficulty ${difficulty} is outside [0, 1]`, { hint: '0 is easy, 1 hard' });
  const root = new Rng(opts.seed);
  const pickRng = root.fork('label');
  const label: ChestLabel =
    opts.label ?? (pickRng.random() < (opts.abnormalRate ?? 0.6) ? pickRng.pick(CHEST_LABELS.slice(1)) : 'healthy');
  const anatomy = drawAnatomy(root.fork('anatomy'), n);
  const base = new Float32Array(n * n), body = new Uint8Array(n * n), lungs = new Uint8Array(n * n);
  paintAnatomy(anatomy, n, base, body, lungs);
  const tex = texture(root.fork('texture'), n, 5 + 5 * difficulty);
  const delta = new Float32Array(n * n), mask = new Uint8Array(n * n);
  const lesions: Lesion[] = [];
  if (label !== 'healthy') {
    const lr = root.fork('lesions');
    const count = lr.int(1, 3);
    for (let k = 0; k < count || lesions.length === 0; k++) {
      const l = paintLesion(label, lr, n, lungs, anatomy.lungs, difficulty, delta, mask);
      if (l) lesions.push(l);
      if (k > 20) break;
    }
  }
  if (opts.lesions === false) {
    delta.fill(0);
    mask.fill(0);
  }
  const noise = root.fork('noise');
  const sigma = 2 + 4 * difficulty;
  const image = new Uint8Array(n * n);
  for (let i = 0; i < n * n; i++) {
    // Texture only inside the body; keep lung pixels within [25, 200] before lesions so that a
    // lesion's change never disappears in clipping.
    let v = base[i]! + (body[i] ? tex[i]! : 0) + noise.normal(0, sigma);
    if (lungs[i]) v = Math.min(180, Math.max(30, v));
    else v = Math.min(255, Math.max(0, v));
    image[i] = Math.min(255, Math.max(0, Math.round(v + delta[i]!)));
  }
  return { size: n, image, mask, lungs, body, label, lesions: opts.lesions === false ? [] : lesions, seed: opts.seed };
}

/**
 * An out-of-distribution image of the given kind, for open-set tests: a knee radiograph, a chest
 * radiograph with inverted grey levels, or an axial CT slice in a soft-tissue window.
 * @param kind - which family
 * @param seed - seed
 * @param size - width and height (default 256)
 * @returns an 8-bit grey image, row-major
 */
export function oodPhantom(kind: OodKind, seed: number, size = 256): Uint8Array {
  const n = size;
  const rng = new Rng(seed).fork(`ood-${kind}`);
  const out = new Uint8Array(n * n);
  if (kind === 'inverted') {
    const c = chestPhantom({ seed, size: n });
    for (let i = 0; i < n * n; i++) out[i] = 255 - c.image[i]!;
    return out;
  }
  const noise = rng.fork('noise');
  if (kind === 'knee') {
    const cx = n * rng.uniform(0.45, 0.55), jointY = n * rng.uniform(0.45, 0.55), gap = n * rng.uniform(0.02, 0.035);
    const leg: Ellipse = { cx, cy: n / 2, rx: n * rng.uniform(0.26, 0.32), ry: n * 0.7, a: 0 };
    const shaft = n * rng.uniform(0.09, 0.12);
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        const px = x + 0.5, py = y + 0.5;
        let v = 10;
        if (inEllipse(leg, px, py)) {
          v = 95;
          const dy = py - jointY;
          // Femur above, tibia below: shafts widening into condyles near the joint.
          const half = shaft * (1 + 1.1 * Math.exp(-(((Math.abs(dy) - gap) / (0.12 * n)) ** 2)));
          if (Math.abs(dy) > gap && Math.abs(px - cx) < half) v = Math.abs(px - cx) > half * 0.8 ? 230 : 185;
          if (dy < -gap && dy > -gap - 0.09 * n && Math.abs(px - cx) < 0.06 * n && py < jointY - 0.25 * n) v = 200;
        }
        out[y * n + x] = Math.min(255, Math.max(0, Math.round(v + noise.normal(0, 4))));
      }
    }
    return out;
  }
  // ct-slice: round body, fat ring, two lungs, vertebra, table line.
  const body: Ellipse = { cx: n / 2, cy: n * 0.5, rx: n * rng.uniform(0.42, 0.46), ry: n * rng.uniform(0.32, 0.36), a: 0 };
  const lungs: Ellipse[] = [-1, 1].map((s) => ({ cx: n / 2 + s * n * 0.17, cy: n * 0.47, rx: n * 0.13, ry: n * 0.2, a: s * 0.2 }));
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const px = x + 0.5, py = y + 0.5;
      let v = 0;
      if (py > n * 0.88 && py < n * 0.9) v = 90; // table
      if (inEllipse(body, px, py)) {
        v = ellipseR2(body, px, py) > 0.82 ? 75 : 140;
        if (lungs.some((l) => inEllipse(l, px, py))) v = 5;
        if ((px - n / 2) ** 2 + (py - n * 0.72) ** 2 < (0.06 * n) ** 2) v = 250;
        if ((px - n / 2) ** 2 + (py - n * 0.5) ** 2 < (0.07 * n) ** 2) v = 165;
      }
      out[y * n + x] = Math.min(255, Math.max(0, Math.round(v + noise.normal(0, 6))));
    }
  }
  return out;
}
