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
/**
 * Kinds of near-out-of-distribution chest images: still chest radiographs, but from another
 * "scanner" (contrast curve, correlated noise, lower resolution), of a small child, with an unseen
 * finding (pleural effusion) or with devices (a central line, a pacemaker, ECG electrodes).
 */
export const NEAR_OOD_KINDS = ['scanner', 'paediatric', 'effusion', 'devices'] as const;
/** One near-OOD kind. */
export type NearOodKind = (typeof NEAR_OOD_KINDS)[number];

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
  /**
   * Draw the lesions (default true). With false, the label and lesion list are still drawn but not
   * painted, and neither is an effusion.
   */
  lesions?: boolean;
  /**
   * Make a near-OOD image of this kind (default: none — the image is exactly what it was before
   * near-OOD kinds existed). Each kind draws from its own seeded stream, so the anatomy, texture,
   * noise and lesions are those of the same seed without it, changed only as the kind says.
   */
  nearOod?: NearOodKind;
}

/** A pleural effusion as drawn (near-OOD kind `effusion`). */
export interface Effusion {
  /** 0: the lung on the image's left, 1: on its right. */
  side: 0 | 1;
  /** Row of the fluid level at the lung's centre line, pixels. */
  level: number;
  /** Pixels in the mask that belong to the effusion. */
  pixels: number;
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
  /** The near-OOD kind, when one was asked for. */
  nearOod?: NearOodKind;
  /** The effusion (near-OOD kind `effusion`); its pixels are part of `mask`. */
  effusion?: Effusion;
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
 * A small child's chest on the same detector: the anatomy shrunk about the image centre by
 * 0.62–0.78 and a relatively larger heart (a higher cardiothoracic ratio).
 */
function paediatricAnatomy(a: ChestAnatomy, rng: Rng, n: number): ChestAnatomy {
  const s = rng.uniform(0.62, 0.78), c = n / 2;
  const at = (v: number) => c + (v - c) * s;
  const el = (e: Ellipse, fx = 1, fy = 1): Ellipse => ({ cx: at(e.cx), cy: at(e.cy), rx: e.rx * s * fx, ry: e.ry * s * fy, a: e.a });
  return {
    body: el(a.body),
    lungs: [el(a.lungs[0]), el(a.lungs[1])],
    heart: el(a.heart, rng.uniform(1.1, 1.25), rng.uniform(1.05, 1.15)),
    spineX: at(a.spineX),
    spineHalf: a.spineHalf * s,
    // y = y0 + curve·dx² in the scaled frame: y0 moves, curve grows by 1/s.
    ribs: a.ribs.map((r) => ({ y0: at(r.y0), curve: r.curve / s, half: r.half * s })),
    diaphragm: at(a.diaphragm),
  };
}

/** Add `amount` to `base` within `half` pixels of the segment (x0, y0)–(x1, y1). */
function addSegment(base: Float32Array, n: number, x0: number, y0: number, x1: number, y1: number, half: number, amount: number, done: Uint8Array): void {
  const dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy || 1;
  const xa = Math.max(0, Math.floor(Math.min(x0, x1) - half - 1)), xb = Math.min(n - 1, Math.ceil(Math.max(x0, x1) + half + 1));
  const ya = Math.max(0, Math.floor(Math.min(y0, y1) - half - 1)), yb = Math.min(n - 1, Math.ceil(Math.max(y0, y1) + half + 1));
  for (let y = ya; y <= yb; y++) {
    for (let x = xa; x <= xb; x++) {
      const px = x + 0.5, py = y + 0.5;
      const t = Math.min(1, Math.max(0, ((px - x0) * dx + (py - y0) * dy) / len2));
      const i = y * n + x;
      // `done` keeps one device from being added twice where its segments meet.
      if (!done[i] && (px - x0 - t * dx) ** 2 + (py - y0 - t * dy) ** 2 <= half * half) {
        base[i]! += amount;
        done[i] = 1;
      }
    }
  }
}

/** Add a quadratic Bézier tube (a catheter or a lead) from p0 through control c to p1. */
function addCurve(base: Float32Array, n: number, p0: [number, number], c: [number, number], p1: [number, number], half: number, amount: number): void {
  const done = new Uint8Array(n * n);
  const at = (t: number): [number, number] => [(1 - t) ** 2 * p0[0] + 2 * (1 - t) * t * c[0] + t * t * p1[0], (1 - t) ** 2 * p0[1] + 2 * (1 - t) * t * c[1] + t * t * p1[1]];
  for (let k = 0; k < 24; k++) {
    const a = at(k / 24), b = at((k + 1) / 24);
    addSegment(base, n, a[0], a[1], b[0], b[1], half, amount, done);
  }
}

/**
 * Devices, added to the lesion-free background (so they never hide a lesion's change): a central
 * venous line from the neck into the upper heart always; a pacemaker (generator under the left
 * clavicle, lead to the right ventricle) in 60 % of images; 0–3 ECG electrodes.
 */
function paintDevices(a: ChestAnatomy, rng: Rng, n: number, base: Float32Array): void {
  const w = Math.max(0.7, 0.004 * n);
  const heartTop: [number, number] = [a.heart.cx - a.heart.rx * 0.4, a.heart.cy - a.heart.ry * 0.7];
  const neck: [number, number] = [a.spineX - rng.uniform(0.06, 0.1) * n, Math.max(1, a.lungs[0].cy - a.lungs[0].ry * 1.15)];
  addCurve(base, n, neck, [a.spineX - 0.03 * n, (neck[1] + heartTop[1]) / 2], heartTop, w, rng.uniform(60, 90));
  if (rng.random() < 0.6) {
    const gx = a.lungs[1].cx + a.lungs[1].rx * rng.uniform(0.1, 0.5), gy = a.lungs[1].cy - a.lungs[1].ry * rng.uniform(0.85, 1.05);
    const hw = rng.uniform(0.04, 0.055) * n, hh = rng.uniform(0.03, 0.04) * n;
    const gen = new Uint8Array(n * n);
    addSegment(base, n, gx - hw + hh, gy, gx + hw - hh, gy, hh, rng.uniform(130, 160), gen); // a stadium-shaped can
    const apex: [number, number] = [a.heart.cx + a.heart.rx * 0.3, a.heart.cy + a.heart.ry * 0.6];
    addCurve(base, n, [gx - hw * 0.8, gy], [a.spineX, a.heart.cy - a.heart.ry * 1.2], apex, w * 1.3, rng.uniform(80, 110));
  }
  const electrodes = rng.int(0, 3);
  for (let k = 0; k < electrodes; k++) {
    const ex = a.body.cx + rng.uniform(-0.8, 0.8) * a.body.rx * 0.8, ey = a.body.cy + rng.uniform(-0.6, 0.4) * a.body.ry;
    addSegment(base, n, ex, ey, ex, ey, rng.uniform(0.012, 0.018) * n, rng.uniform(70, 100), new Uint8Array(n * n));
  }
}

/**
 * A pleural effusion at the base of one lung: lung pixels below a fluid level that rises towards
 * the lateral chest wall (a meniscus) become fluid-dense. The change is at least 6 grey levels and
 * positive everywhere it is painted (it replaces a cavity's negative change), so the mask stays
 * exactly the set of changed pixels.
 */
function paintEffusion(rng: Rng, n: number, a: ChestAnatomy, lungs: Uint8Array, delta: Float32Array, mask: Uint8Array): Effusion | undefined {
  const side: 0 | 1 = rng.random() < 0.5 ? 0 : 1;
  const lung = a.lungs[side];
  const level = lung.cy + lung.ry * rng.uniform(0.35, 0.65);
  const meniscus = lung.ry * rng.uniform(0.1, 0.25);
  const contrast = rng.uniform(50, 80);
  const lateral = side === 0 ? -1 : 1;
  let pixels = 0;
  for (let y = Math.max(0, Math.floor(level - meniscus - 1)); y < n; y++) {
    for (let x = 0; x < n; x++) {
      const i = y * n + x, px = x + 0.5, py = y + 0.5;
      if (!lungs[i] || !inEllipse(lung, px, py)) continue;
      const out = Math.max(0, ((px - lung.cx) * lateral) / lung.rx);
      const top = level - meniscus * out * out;
      if (py < top) continue;
      // Denser towards the bottom, as fluid layers.
      const d = Math.max(6, contrast * (0.8 + 0.2 * Math.min(1, (py - top) / (lung.ry * 0.3))));
      delta[i] = Math.max(0, delta[i]!) + d;
      if (!mask[i]) pixels++;
      mask[i] = 1;
    }
  }
  return pixels ? { side, level, pixels } : undefined;
}

/** Another detector: its contrast curve, resolution (background blur) and noise texture. */
interface Scanner {
  /** Exponent of the contrast curve 255·(v/255)^gamma; below 1 it lifts the dark lungs. */
  gamma: number;
  /** Box-blur radius of the anatomy, pixels (lower resolution). */
  blur: number;
  /** Noise standard deviation relative to the usual one, and its row-to-row banding. */
  noiseGain: number;
  banding: number;
}

/** Box blur with the given radius (edges clamped), separable. */
function boxBlur(src: Float32Array, n: number, r: number): Float32Array {
  if (r < 1) return src;
  const tmp = new Float32Array(n * n), out = new Float32Array(n * n), w = 2 * r + 1;
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
    let s = 0;
    for (let k = -r; k <= r; k++) s += src[y * n + Math.min(n - 1, Math.max(0, x + k))]!;
    tmp[y * n + x] = s / w;
  }
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
    let s = 0;
    for (let k = -r; k <= r; k++) s += tmp[Math.min(n - 1, Math.max(0, y + k)) * n + x]!;
    out[y * n + x] = s / w;
  }
  return out;
}

/**
 * The image as another detector records it: the lesion-free background (anatomy and texture) at a
 * lower resolution, noise with a coarser texture and row banding, then a contrast curve. Lesions
 * are added after the blur and the curve's slope is at least gamma ≥ 0.65, so a lesion's change of
 * ≥ 6 grey levels stays ≥ 3.9 and the mask is still exactly the set of changed pixels.
 */
function scannerImage(rng: Rng, n: number, base: Float32Array, body: Uint8Array, tex: Float32Array, lungs: Uint8Array, delta: Float32Array, noise: Rng, sigma: number, image: Uint8Array): void {
  const sc: Scanner = { gamma: rng.uniform(0.65, 0.8), blur: Math.max(1, Math.round(rng.uniform(0.006, 0.012) * n)), noiseGain: rng.uniform(1.2, 1.6), banding: rng.uniform(1.5, 3) };
  const bg = new Float32Array(n * n), nz = new Float32Array(n * n);
  for (let i = 0; i < n * n; i++) {
    bg[i] = base[i]! + (body[i] ? tex[i]! : 0);
    nz[i] = noise.normal(0, 1);
  }
  const blurred = boxBlur(bg, n, sc.blur);
  // A 3 × 3 mean has a third of the standard deviation: scale it back, then by the gain.
  const grain = boxBlur(nz, n, 1);
  const rows = Array.from({ length: n }, () => rng.normal(0, sc.banding));
  for (let i = 0; i < n * n; i++) {
    let v = blurred[i]! + grain[i]! * 3 * sigma * sc.noiseGain + rows[Math.floor(i / n)]!;
    if (lungs[i]) v = Math.min(180, Math.max(30, v));
    else v = Math.min(255, Math.max(0, v));
    const raw = Math.min(255, Math.max(0, v + delta[i]!));
    image[i] = Math.min(255, Math.max(0, Math.round(255 * (raw / 255) ** sc.gamma)));
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
  const near = opts.nearOod;
  if (near !== undefined && !NEAR_OOD_KINDS.includes(near)) throw new MedmaskError('USAGE', `near-OOD kind "${String(near)}" is unknown`, { hint: `use one of ${NEAR_OOD_KINDS.join(', ')}` });
  const drawn = drawAnatomy(root.fork('anatomy'), n);
  const anatomy = near === 'paediatric' ? paediatricAnatomy(drawn, root.fork('near-paediatric'), n) : drawn;
  const base = new Float32Array(n * n), body = new Uint8Array(n * n), lungs = new Uint8Array(n * n);
  paintAnatomy(anatomy, n, base, body, lungs);
  if (near === 'devices') paintDevices(anatomy, root.fork('near-devices'), n, base);
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
  const effusion = near === 'effusion' ? paintEffusion(root.fork('near-effusion'), n, anatomy, lungs, delta, mask) : undefined;
  if (opts.lesions === false) {
    delta.fill(0);
    mask.fill(0);
  }
  const noise = root.fork('noise');
  const sigma = 2 + 4 * difficulty;
  const image = new Uint8Array(n * n);
  if (near === 'scanner') {
    scannerImage(root.fork('near-scanner'), n, base, body, tex, lungs, delta, noise, sigma, image);
  } else {
    for (let i = 0; i < n * n; i++) {
      // Texture only inside the body; keep lung pixels within [25, 200] before lesions so that a
      // lesion's change never disappears in clipping.
      let v = base[i]! + (body[i] ? tex[i]! : 0) + noise.normal(0, sigma);
      if (lungs[i]) v = Math.min(180, Math.max(30, v));
      else v = Math.min(255, Math.max(0, v));
      image[i] = Math.min(255, Math.max(0, Math.round(v + delta[i]!)));
    }
  }
  return {
    size: n, image, mask, lungs, body, label, lesions: opts.lesions === false ? [] : lesions, seed: opts.seed,
    ...(near ? { nearOod: near } : {}),
    ...(effusion && opts.lesions !== false ? { effusion } : {}),
  };
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
