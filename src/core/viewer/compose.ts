/**
 * Compose what a slice view shows into RGBA pixels (an ImageData buffer): the windowed grey image,
 * a heat map (jet colours, drawn where it exceeds a floor) and the label map (legend colours, filled
 * or as outlines), each with its own opacity. Works on a rectangle so a brush move recomposes only
 * the pixels it touched.
 * @module
 */
import type { Rect } from './rect.js';

/** What to draw on top of the grey image. */
export interface ComposeLayers {
  /** Windowed image, 8-bit grey, w × h. */
  grey: Uint8Array;
  /** Label map, w × h (0 = none). */
  labels?: Uint8Array | null;
  /** RGBA table from `labelLut` (alpha 0 hides a value). */
  labelLut?: Uint8Array;
  /** 0…1. */
  labelOpacity?: number;
  /** Draw only the label borders (pixels with a 4-neighbour of another value). */
  labelOutline?: boolean;
  /** Heat map, 8-bit (0…255 ≙ 0…1), w × h. */
  heat?: Uint8Array | null;
  /** RGB table, 256 × 3 (e.g. `jetLut256()`). */
  heatLut?: Uint8Array;
  /** 0…1. */
  heatOpacity?: number;
  /** Heat values below this (0…255) are not drawn (default 26 ≈ 0.1). */
  heatFloor?: number;
}

/**
 * Write RGBA pixels for `rect` (default: the whole plane) of a `w × h` view.
 * @param out - RGBA bytes, w · h · 4 (e.g. `ImageData.data`)
 * @param w - plane width
 * @param h - plane height
 * @param layers - image and overlays
 * @param rect - the part to recompose (clipped by the caller)
 * @example
 * const img = new ImageData(w, h); composeRgba(img.data, w, h, { grey, labels, labelLut: lut, labelOpacity: 0.5 });
 */
export function composeRgba(out: Uint8ClampedArray | Uint8Array, w: number, h: number, layers: ComposeLayers, rect: Rect = { x: 0, y: 0, w, h }): void {
  const { grey, labels, heat } = layers;
  const llut = layers.labelLut;
  const hlut = layers.heatLut;
  const la = labels && llut ? Math.round(256 * Math.max(0, Math.min(1, layers.labelOpacity ?? 0.5))) : 0;
  const ha = heat && hlut ? Math.round(256 * Math.max(0, Math.min(1, layers.heatOpacity ?? 0.4))) : 0;
  const floor = layers.heatFloor ?? 26;
  const outline = !!layers.labelOutline;
  for (let y = rect.y; y < rect.y + rect.h; y++) {
    let i = y * w + rect.x;
    let o = 4 * i;
    for (let x = rect.x; x < rect.x + rect.w; x++, i++, o += 4) {
      const g = grey[i]!;
      let r = g, gg = g, b = g;
      if (ha) {
        const v = heat![i]!;
        if (v >= floor) {
          const k = 3 * v;
          r = (r * (256 - ha) + hlut![k]! * ha) >> 8;
          gg = (gg * (256 - ha) + hlut![k + 1]! * ha) >> 8;
          b = (b * (256 - ha) + hlut![k + 2]! * ha) >> 8;
        }
      }
      if (la) {
        const l = labels![i]!;
        if (l) {
          const k = 4 * l;
          let draw = llut![k + 3]! > 0;
          if (draw && outline) {
            draw = x === 0 || y === 0 || x === w - 1 || y === h - 1 || labels![i - 1] !== l || labels![i + 1] !== l || labels![i - w] !== l || labels![i + w] !== l;
          }
          if (draw) {
            const a = outline ? 256 : la;
            r = (r * (256 - a) + llut![k]! * a) >> 8;
            gg = (gg * (256 - a) + llut![k + 1]! * a) >> 8;
            b = (b * (256 - a) + llut![k + 2]! * a) >> 8;
          }
        }
      }
      out[o] = r;
      out[o + 1] = gg;
      out[o + 2] = b;
      out[o + 3] = 255;
    }
  }
}
