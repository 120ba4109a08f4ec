/**
 * Display windows: raw voxel values (CT in HU, 16-bit radiographs, 8-bit photos) → 8-bit grey,
 * through lookup tables so a 512² int16 slice windows in about a millisecond. CT presets are the
 * usual radiology window width / level pairs.
 * @module
 */
import { MedmaskError } from '../errors.js';

/** A named CT window. */
export interface WindowPreset {
  /** Short key, e.g. "abdomen". */
  id: string;
  /** What the UI shows. */
  label: string;
  /** Window width, HU. */
  width: number;
  /** Window level (centre), HU. */
  level: number;
}

/** Common CT windows (width / level in HU). */
export const CT_PRESETS: readonly WindowPreset[] = [
  { id: 'abdomen', label: 'Abdomen', width: 400, level: 40 },
  { id: 'liver', label: 'Liver', width: 150, level: 30 },
  { id: 'mediastinum', label: 'Mediastinum', width: 350, level: 50 },
  { id: 'lung', label: 'Lung', width: 1500, level: -600 },
  { id: 'bone', label: 'Bone', width: 1800, level: 400 },
  { id: 'brain', label: 'Brain', width: 80, level: 40 },
];

/**
 * A preset (or any width / level) as `[low, high]`.
 * @example
 * presetWindow({ width: 400, level: 40 }); // [-160, 240]
 */
export function presetWindow(p: { width: number; level: number }): [number, number] {
  return [p.level - p.width / 2, p.level + p.width / 2];
}

/**
 * Width / level of a `[low, high]` window.
 * @example
 * windowLevel([-160, 240]); // { width: 400, level: 40 }
 */
export function windowLevel(w: readonly [number, number]): { width: number; level: number } {
  return { width: w[1] - w[0], level: (w[0] + w[1]) / 2 };
}

/** The 8-bit value of `v` in window [low, high]: 0 at or below low, 255 at or above high, rounded linearly between. */
export function windowValue(v: number, low: number, high: number): number {
  if (!(high > low)) return v > low ? 255 : 0;
  if (v <= low) return 0;
  if (v >= high) return 255;
  return Math.round(((v - low) * 255) / (high - low));
}

let int16Lut: { low: number; high: number; lut: Uint8Array } | undefined;

function lutInt16(low: number, high: number): Uint8Array {
  if (int16Lut && int16Lut.low === low && int16Lut.high === high) return int16Lut.lut;
  const lut = new Uint8Array(65536);
  for (let k = 0; k < 65536; k++) lut[k] = windowValue(k - 32768, low, high);
  int16Lut = { low, high, lut };
  return lut;
}

/** Typed arrays a slice may come in. */
export type SliceArray = Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

/**
 * Window `src[start…end)` into `dst` at the same indices (8-bit grey). Int16 (CT) and uint8 go
 * through a lookup table; other types are scaled directly.
 * @param src - raw slice values
 * @param dst - output, same length as src
 * @param window - [low, high]
 * @param start - first index (default 0)
 * @param end - one past the last index (default src.length)
 * @example
 * const grey = new Uint8Array(ct.length); windowToGrey(ct, grey, [-160, 240]);
 */
export function windowToGrey(src: SliceArray, dst: Uint8Array, window: readonly [number, number], start = 0, end = src.length): void {
  if (dst.length < end) throw new MedmaskError('USAGE', `windowToGrey: output holds ${dst.length} values, needs ${end}`);
  const [low, high] = window;
  if (src instanceof Int16Array) {
    const lut = lutInt16(low, high);
    for (let i = start; i < end; i++) dst[i] = lut[src[i]! + 32768]!;
    return;
  }
  if (src instanceof Uint8Array) {
    const lut = new Uint8Array(256);
    for (let k = 0; k < 256; k++) lut[k] = windowValue(k, low, high);
    for (let i = start; i < end; i++) dst[i] = lut[src[i]!]!;
    return;
  }
  if (!(high > low)) {
    for (let i = start; i < end; i++) dst[i] = src[i]! > low ? 255 : 0;
    return;
  }
  const s = 255 / (high - low);
  for (let i = start; i < end; i++) {
    const v = (src[i]! - low) * s;
    dst[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
  }
}

/**
 * Window a rectangle of a row-major `width`-wide slice (dirty-rectangle redraws).
 * @example
 * windowRect(ct, grey, 512, { x: 10, y: 10, w: 20, h: 20 }, [-160, 240]);
 */
export function windowRect(src: SliceArray, dst: Uint8Array, width: number, r: { x: number; y: number; w: number; h: number }, window: readonly [number, number]): void {
  for (let y = r.y; y < r.y + r.h; y++) windowToGrey(src, dst, window, y * width + r.x, y * width + r.x + r.w);
}

/**
 * A display window from the data: the 0.5th and 99.5th percentiles of a (strided) sample, for
 * images without a standard window (radiographs, MR). 8-bit data gets [0, 255].
 * @param values - voxel values
 * @param maxSamples - values looked at (default 65 536)
 * @returns [low, high] with high > low
 * @example
 * autoWindow(xray); // e.g. [312, 3810]
 */
export function autoWindow(values: SliceArray, maxSamples = 65536): [number, number] {
  if (values instanceof Uint8Array) return [0, 255];
  const n = values.length;
  if (!n) return [0, 1];
  const step = Math.max(1, Math.floor(n / maxSamples));
  const sample: number[] = [];
  for (let i = 0; i < n; i += step) {
    const v = values[i]!;
    if (Number.isFinite(v)) sample.push(v);
  }
  if (!sample.length) return [0, 1];
  sample.sort((a, b) => a - b);
  const at = (p: number) => sample[Math.min(sample.length - 1, Math.max(0, Math.round(p * (sample.length - 1))))]!;
  const lo = at(0.005);
  let hi = at(0.995);
  if (!(hi > lo)) hi = lo + 1;
  return [lo, hi];
}
