/**
 * Colours of the overlays: label maps (the nine AbdomenAtlas organs with a legend, or a single
 * target such as "lesion") and heat maps through the jet colour map of `explain/overlay.ts` (the
 * colours pytorch-grad-cam's `show_cam_on_image` uses, so the review UI and the CLI's overlay PNGs
 * agree).
 * @module
 */
import { jet } from '../explain/overlay.js';
import { ABDOMEN_LABELS } from '../phantom/abdomen.js';

/** One row of a label legend. */
export interface LegendEntry {
  /** Label value in the mask (1…255). */
  value: number;
  /** Structure name. */
  name: string;
  /** Display colour, 8-bit RGB. */
  color: [number, number, number];
}

/** Distinct colours for the nine AbdomenAtlas organs (label values 1…9). */
export const ORGAN_COLORS: Readonly<Record<number, [number, number, number]>> = {
  1: [157, 108, 162], // spleen: purple
  2: [185, 102, 83], // kidney_right: brick
  3: [230, 160, 200], // kidney_left: pink
  4: [60, 180, 75], // gallbladder: green
  5: [221, 130, 60], // liver: orange
  6: [255, 225, 25], // stomach: yellow
  7: [230, 25, 75], // aorta: red
  8: [0, 130, 200], // postcava: blue
  9: [70, 240, 240], // pancreas: cyan
};

/**
 * The legend of the nine AbdomenAtlas organs (Qu et al. 2023), label values 1…9.
 * @example
 * organLegend()[4]; // { value: 5, name: 'liver', color: [221, 130, 60] }
 */
export function organLegend(): LegendEntry[] {
  return Object.entries(ABDOMEN_LABELS).map(([v, name]) => ({ value: Number(v), name, color: ORGAN_COLORS[Number(v)]! }));
}

/** A stable, saturated colour for a label value without a named colour. */
export function fallbackColor(value: number): [number, number, number] {
  // golden-angle hues, full saturation, bright
  const h = ((value * 137.508) % 360) / 60;
  const x = 1 - Math.abs((h % 2) - 1);
  const [r, g, b] = h < 1 ? [1, x, 0] : h < 2 ? [x, 1, 0] : h < 3 ? [0, 1, x] : h < 4 ? [0, x, 1] : h < 5 ? [x, 0, 1] : [1, 0, x];
  return [Math.round(55 + 200 * r), Math.round(55 + 200 * g), Math.round(55 + 200 * b)];
}

/**
 * The legend for a review case: the organ legend for multi-organ targets ("organs" or an organ
 * name), otherwise one entry per label value named after the target.
 * @param target - the case's target, e.g. "organs", "liver", "lesion"
 * @param values - label values present (besides 0), for non-organ targets
 * @example
 * legendFor('lesion', [1]); // [{ value: 1, name: 'lesion', color: [255, 64, 64] }]
 */
export function legendFor(target: string, values: readonly number[] = [1]): LegendEntry[] {
  const organs = Object.values(ABDOMEN_LABELS) as string[];
  if (target === 'organs' || organs.includes(target) || values.some((v) => v > 1)) {
    const out = organLegend();
    for (const v of values) if (!out.some((e) => e.value === v)) out.push({ value: v, name: `label ${v}`, color: fallbackColor(v) });
    return out.sort((a, b) => a.value - b.value);
  }
  const vs = values.length ? [...values].sort((a, b) => a - b) : [1];
  return vs.map((v) => ({ value: v, name: vs.length === 1 ? target : `${target} ${v}`, color: v === 1 ? [255, 64, 64] : fallbackColor(v) }));
}

/**
 * An RGBA lookup table (256 × 4 bytes) for a label map: legend colours, a fallback colour for
 * other values, alpha 0 for background (0).
 * @example
 * const lut = labelLut(organLegend()); // lut[4 * 5 + 0] === 221 (liver red)
 */
export function labelLut(legend: readonly LegendEntry[]): Uint8Array {
  const lut = new Uint8Array(256 * 4);
  for (let v = 1; v < 256; v++) {
    const c = legend.find((e) => e.value === v)?.color ?? fallbackColor(v);
    lut.set([c[0], c[1], c[2], 255], 4 * v);
  }
  return lut;
}

let JET: Uint8Array | undefined;

/**
 * The jet colour map at 256 levels as 8-bit RGB (768 bytes), from {@link jet}.
 * @example
 * jetLut256().subarray(3 * 255, 3 * 256); // dark red [128, 0, 0]
 */
export function jetLut256(): Uint8Array {
  if (!JET) {
    JET = new Uint8Array(256 * 3);
    for (let k = 0; k < 256; k++) {
      const [r, g, b] = jet(k / 255);
      JET[3 * k] = Math.round(255 * r);
      JET[3 * k + 1] = Math.round(255 * g);
      JET[3 * k + 2] = Math.round(255 * b);
    }
  }
  return JET;
}

/**
 * Matplotlib's magma at nine even stops (van der Walt & Smith's perceptually uniform maps, as
 * R's viridisLite `magma(9)` lists them): black → purple → red-orange → pale yellow.
 */
export const MAGMA_STOPS: readonly [number, number, number][] = [
  [0x00, 0x00, 0x04], [0x1d, 0x11, 0x47], [0x51, 0x12, 0x7c], [0x82, 0x26, 0x81], [0xb6, 0x36, 0x79],
  [0xe6, 0x51, 0x64], [0xfb, 0x88, 0x61], [0xfe, 0xc2, 0x87], [0xfc, 0xfd, 0xbf],
];

let MAGMA: Uint8Array | undefined;

/**
 * The magma colour map at 256 levels as 8-bit RGB (768 bytes), linear between {@link MAGMA_STOPS}.
 * The viewer draws heat maps with it: its luminance rises steadily and its hues stay clear of the
 * organ legend's blues, greens and cyan (jet's blue end looked like the spleen, its red and yellow
 * like the aorta and stomach).
 * @example
 * magmaLut256().subarray(3 * 255); // [252, 253, 191]
 */
export function magmaLut256(): Uint8Array {
  if (!MAGMA) {
    MAGMA = new Uint8Array(256 * 3);
    const last = MAGMA_STOPS.length - 1;
    for (let k = 0; k < 256; k++) {
      const t = (k / 255) * last;
      const a = Math.min(last - 1, Math.floor(t));
      const f = t - a;
      for (let c = 0; c < 3; c++) MAGMA[3 * k + c] = Math.round(MAGMA_STOPS[a]![c]! * (1 - f) + MAGMA_STOPS[a + 1]![c]! * f);
    }
  }
  return MAGMA;
}
