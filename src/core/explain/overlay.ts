/**
 * Heat-map overlays as pytorch-grad-cam's `show_cam_on_image` draws them: the map through the jet
 * colour map, blended half and half with the image, rescaled so the brightest value is 255.
 * Pure: returns interleaved 8-bit RGB for a PNG encoder.
 * @module
 */
import { MedmaskError } from '../errors.js';
import type { Volume } from '../volume.js';

/**
 * The jet colour map (MATLAB's; OpenCV's `COLORMAP_JET` interpolates nearly the same control
 * points): dark blue → cyan → yellow → dark red.
 * @param v - value in [0, 1] (clamped)
 * @returns [r, g, b] in [0, 1]
 * @example
 * jet(0.5); // [0.5, 1, 0.5]
 */
export function jet(v: number): [number, number, number] {
  const x = v < 0 ? 0 : v > 1 ? 1 : v;
  const c = (t: number): number => (t < 0 ? 0 : t > 1 ? 1 : t);
  return [c(1.5 - Math.abs(4 * x - 3)), c(1.5 - Math.abs(4 * x - 2)), c(1.5 - Math.abs(4 * x - 1))];
}

/**
 * A 2D image as display RGB in [0, 1]: 8-bit images as they are; other types scaled from their
 * own range, or through a window (e.g. a CT window) when given.
 * @param vol - a 2D volume (grey, RGB or RGBA)
 * @param window - optional [low, high] display window
 * @returns nx · ny · 3 values, x fastest
 * @example
 * const rgb = displayRgb(ct, [-160, 240]);
 */
export function displayRgb(vol: Volume, window?: [number, number]): Float32Array {
  const [nx, ny] = vol.shape;
  const n = nx * ny;
  const comps = vol.components;
  const d = vol.data;
  let lo: number;
  let hi: number;
  if (window) [lo, hi] = window;
  else if (d instanceof Uint8Array) [lo, hi] = [0, 255];
  else {
    lo = Infinity;
    hi = -Infinity;
    for (let i = 0; i < n * comps; i++) {
      if (comps >= 4 && i % comps === 3) continue;
      const v = d[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  const scale = hi > lo ? 1 / (hi - lo) : 0;
  const out = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      const v = (d[i * comps + (comps >= 3 ? c : 0)]! - lo) * scale;
      out[i * 3 + c] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  }
  return out;
}

let JET_LUT: Float64Array | undefined;

/** {@link jet} at the 256 levels of an 8-bit map, RGB interleaved (built once). */
function jetLut(): Float64Array {
  if (!JET_LUT) {
    JET_LUT = new Float64Array(256 * 3);
    for (let k = 0; k < 256; k++) JET_LUT.set(jet(k / 255), 3 * k);
  }
  return JET_LUT;
}

/**
 * Blend a heat map over an image as pytorch-grad-cam's `show_cam_on_image(img, mask,
 * image_weight=0.5)`: `cam = 0.5·jet(mask) + 0.5·img; cam /= max(cam); uint8(255·cam)`.
 * @param rgb - display image, nx · ny · 3 in [0, 1] (see {@link displayRgb})
 * @param map - nx · ny values in [0, 1]
 * @param imageWeight - weight of the image (default 0.5)
 * @returns interleaved 8-bit RGB
 * @example
 * const png = overlayHeatmap(displayRgb(img), camAtImageResolution);
 */
export function overlayHeatmap(rgb: Float32Array, map: ArrayLike<number>, imageWeight = 0.5): Uint8Array {
  const n = map.length;
  if (rgb.length !== n * 3) throw new MedmaskError('USAGE', `overlay: image has ${rgb.length / 3} pixels, map ${n}`);
  const mix = new Float32Array(n * 3);
  let mx = 0;
  const lut = jetLut();
  const wm = 1 - imageWeight;
  for (let i = 0; i < n; i++) {
    // cv2.applyColorMap works on uint8(255 · mask): a 256-entry table
    const v0 = map[i]!;
    const k = 3 * Math.round(255 * (v0 < 0 ? 0 : v0 > 1 ? 1 : v0));
    for (let c = 0; c < 3; c++) {
      const v = wm * lut[k + c]! + imageWeight * rgb[i * 3 + c]!;
      mix[i * 3 + c] = v;
      if (v > mx) mx = v;
    }
  }
  const out = new Uint8Array(n * 3);
  const s = mx > 0 ? 255 / mx : 0;
  for (let i = 0; i < out.length; i++) out[i] = Math.min(255, Math.floor(mix[i]! * s)); // np.uint8 truncates
  return out;
}
