/**
 * Reading back the heat maps that the annotate pipeline stores as pictures. `annotate` writes its
 * heat map and uncertainty map as the PNG that pytorch-grad-cam's `show_cam_on_image` draws
 * (`explain/overlay.ts`: `uint8(255 · (½·jet(map) + ½·image) / max)`), not as a scalar map. The
 * viewer needs the scalar map (its own palette, flagged regions, thresholds), so this inverts the
 * composite: given the image it was drawn on, every pixel's colour minus the image's half is a
 * point on the jet curve, and the map value is where on the curve it lies. Jet is piecewise linear
 * (breaks at 1/8, 3/8, 5/8, 7/8), so the nearest point is a projection onto five segments. The one
 * unknown shared by all pixels, the rescaling maximum, is found by a 1D search on the residual.
 * No library inverts a colour-mapped blend, hence hand-written.
 * @module
 */
import { jet } from '../explain/overlay.js';

const BREAKS = [0, 1 / 8, 3 / 8, 5 / 8, 7 / 8, 1];
const SEG = BREAKS.slice(0, -1).map((x0, i) => {
  const x1 = BREAKS[i + 1]!;
  const a = jet(x0);
  const b = jet(x1);
  const d: [number, number, number] = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
  return { x0, x1, a, d, dd: d[0] * d[0] + d[1] * d[1] + d[2] * d[2] };
});

/** The nearest point of the jet curve to colour t: its map value and squared distance. */
function nearestOnJet(t0: number, t1: number, t2: number): [number, number] {
  let best = Infinity;
  let bestX = 0;
  for (const s of SEG) {
    let u = ((t0 - s.a[0]) * s.d[0] + (t1 - s.a[1]) * s.d[1] + (t2 - s.a[2]) * s.d[2]) / s.dd;
    u = u < 0 ? 0 : u > 1 ? 1 : u;
    const e0 = s.a[0] + u * s.d[0] - t0;
    const e1 = s.a[1] + u * s.d[1] - t1;
    const e2 = s.a[2] + u * s.d[2] - t2;
    const e = e0 * e0 + e1 * e1 + e2 * e2;
    if (e < best) {
      best = e;
      bestX = s.x0 + u * (s.x1 - s.x0);
    }
  }
  return [bestX, best];
}

/** Residual of the composite model at a rescaling maximum mx, over the pixels listed. */
function residual(png: ArrayLike<number>, rgb: ArrayLike<number>, mx: number, w: number, pixels: ArrayLike<number>): number {
  const k = (mx / 255) / (1 - w);
  const r = w / (1 - w);
  let sum = 0;
  for (let j = 0; j < pixels.length; j++) {
    const o = 3 * pixels[j]!;
    // floor() in the encoder: the pixel's value lies in [p, p + 1); take the middle
    sum += nearestOnJet((png[o]! + 0.5) * k - r * rgb[o]!, (png[o + 1]! + 0.5) * k - r * rgb[o + 1]!, (png[o + 2]! + 0.5) * k - r * rgb[o + 2]!)[1];
  }
  return sum;
}

/**
 * Recover the scalar map (0…1) from a `show_cam_on_image`-style composite.
 * @param png - interleaved 8-bit RGB of the composite, n · 3
 * @param rgb - the display image it was drawn on, n · 3 in [0, 1] (`displayRgb` of the image)
 * @param imageWeight - the image's weight in the blend (annotate uses 0.5)
 * @returns the map as 8 bits (0…255 ≙ 0…1) and the fit's root-mean-square colour error (0…1 units;
 *   above ~0.05 the composite was not drawn on this image)
 * @example
 * const { map } = invertHeatmapComposite(pngRgb, displayRgb(image));
 */
export function invertHeatmapComposite(png: ArrayLike<number>, rgb: ArrayLike<number>, imageWeight = 0.5): { map: Uint8Array; rmse: number } {
  const n = Math.floor(png.length / 3);
  if (rgb.length !== png.length) throw new RangeError(`composite has ${n} pixels but the image ${Math.floor(rgb.length / 3)}`);
  const w = imageWeight;
  // The encoder divided by the blend's maximum mx ∈ (0, 1]: golden-section search on a sample.
  const stride = Math.max(1, Math.floor(n / 4096));
  const sample: number[] = [];
  for (let i = 0; i < n; i += stride) sample.push(i);
  let lo = 0.2; // ½·max(jet) ≥ ¼
  let hi = 1;
  const g = (Math.sqrt(5) - 1) / 2;
  let c = hi - g * (hi - lo);
  let d = lo + g * (hi - lo);
  let fc = residual(png, rgb, c, w, sample);
  let fd = residual(png, rgb, d, w, sample);
  for (let it = 0; it < 40; it++) {
    if (fc < fd) {
      hi = d;
      d = c;
      fd = fc;
      c = hi - g * (hi - lo);
      fc = residual(png, rgb, c, w, sample);
    } else {
      lo = c;
      c = d;
      fc = fd;
      d = lo + g * (hi - lo);
      fd = residual(png, rgb, d, w, sample);
    }
  }
  const mx = (lo + hi) / 2;
  const k = (mx / 255) / (1 - w);
  const r = w / (1 - w);
  const map = new Uint8Array(n);
  let err = 0;
  for (let i = 0; i < n; i++) {
    const o = 3 * i;
    const [x, e] = nearestOnJet((png[o]! + 0.5) * k - r * rgb[o]!, (png[o + 1]! + 0.5) * k - r * rgb[o + 1]!, (png[o + 2]! + 0.5) * k - r * rgb[o + 2]!);
    map[i] = Math.round(255 * x);
    err += e;
  }
  return { map, rmse: n ? Math.sqrt(err / (3 * n)) * (1 - w) : 0 };
}
