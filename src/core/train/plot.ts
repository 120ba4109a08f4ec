/**
 * A loss-curve plot drawn straight into an RGB pixel buffer (no plotting or canvas dependency):
 * axes with "nice" ticks, the training and validation curves, a dashed line at the kept epoch, a
 * legend, and labels in a built-in 5×7 bitmap font. The caller encodes the buffer (e.g. as PNG
 * with sharp). Pure: no Node APIs.
 * @module
 */

/** An 8-bit RGB image, row-major, 3 bytes per pixel, top row first. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Options for {@link plotLossCurve}. */
export interface LossCurvePlotOptions {
  /** Pixels (default 640). */
  width?: number;
  /** Pixels (default 400). */
  height?: number;
  /** 1-based epoch marked with a dashed line (the kept weights). */
  bestEpoch?: number;
  /** Title at the top left (letters, digits and a few signs; others drawn as blanks). */
  title?: string;
}

type Rgb = readonly [number, number, number];
/** Colours (matplotlib's first two, so the plot reads like the usual ones). */
export const PLOT_COLOURS = { train: [31, 119, 180] as Rgb, val: [255, 127, 14] as Rgb, axis: [0, 0, 0] as Rgb, grid: [225, 225, 225] as Rgb, best: [120, 120, 120] as Rgb };

// 5×7 glyphs, one string of 7 rows × 5 columns per character ('#' = ink).
const GLYPHS: Record<string, string> = {
  '0': ' ### #   ##  ### # ###  ##   # ### ',
  '1': '  #   ##    #    #    #    #   ### ',
  '2': ' ### #   #    #   #   #   #   #####',
  '3': ' ### #   #    #  ##     ##   # ### ',
  '4': '   #   ##  # # #  # #####   #    # ',
  '5': '######    ####     #    ##   # ### ',
  '6': '  ##  #   #    #### #   ##   # ### ',
  '7': '#####    #   #   #   #    #    #   ',
  '8': ' ### #   ##   # ### #   ##   # ### ',
  '9': ' ### #   ##   # ####    #   #  ##  ',
  '.': '                          ##   ##  ',
  '-': '                ###                ',
  '+': '       #    #  #####  #    #       ',
  ':': '      ##   ##        ##   ##       ',
  '=': '          #####     #####          ',
  '(': '   #   #   #    #    #     #     # ',
  ')': ' #     #     #    #    #   #   #   ',
  '/': '    #    #   #   #   #   #    #    ',
  ' ': '                                   ',
  A: ' ### #   ##   #######   ##   ##   #',
  B: '#### #   ##   ##### #   ##   ##### ',
  C: ' ### #   ##    #    #    #   # ### ',
  D: '#### #   ##   ##   ##   ##   ##### ',
  E: '######    #    #### #    #    #####',
  F: '######    #    #### #    #    #    ',
  G: ' ### #   ##    # ####   ##   # ####',
  H: '#   ##   ##   #######   ##   ##   #',
  I: ' ###   #    #    #    #    #   ### ',
  K: '#   ##  # # #  ##   # #  #  # #   #',
  L: '#    #    #    #    #    #    #####',
  M: '#   ### ### # ## # ##   ##   ##   #',
  N: '#   ###  ## # ##  ###   ##   ##   #',
  O: ' ### #   ##   ##   ##   ##   # ### ',
  P: '#### #   ##   ##### #    #    #    ',
  R: '#### #   ##   ##### # #  #  # #   #',
  S: ' #####    #     ###     #    ##### ',
  T: '#####  #    #    #    #    #    #  ',
  U: '#   ##   ##   ##   ##   ##   # ### ',
  V: '#   ##   ##   ##   ##   # # #   #  ',
  W: '#   ##   ##   ## # ## # ### ###   #',
  X: '#   ##   # # #   #   # # #   ##   #',
  Y: '#   ##   # # #   #    #    #    #  ',
};

class Canvas {
  readonly data: Uint8Array;
  constructor(readonly width: number, readonly height: number) {
    this.data = new Uint8Array(width * height * 3).fill(255);
  }
  set(x: number, y: number, c: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const o = (y * this.width + x) * 3;
    this.data[o] = c[0];
    this.data[o + 1] = c[1];
    this.data[o + 2] = c[2];
  }
  rect(x0: number, y0: number, w: number, h: number, c: Rgb): void {
    for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) this.set(x, y, c);
  }
  /** Line of the given thickness (a square brush along a DDA walk); `dash` = on/off pixels. */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thick = 1, dash = 0): void {
    const steps = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
    const r = Math.floor((thick - 1) / 2);
    for (let s = 0; s <= steps; s++) {
      if (dash && Math.floor(s / dash) % 2 === 1) continue;
      const x = Math.round(x0 + ((x1 - x0) * s) / steps);
      const y = Math.round(y0 + ((y1 - y0) * s) / steps);
      this.rect(x - r, y - r, thick, thick, c);
    }
  }
  /** Text in the 5×7 font, `scale` pixels per font pixel; returns the width drawn. */
  text(s: string, x: number, y: number, c: Rgb, scale = 1): number {
    let cx = x;
    for (const ch of s.toUpperCase()) {
      const g = GLYPHS[ch] ?? GLYPHS[' ']!;
      for (let row = 0; row < 7; row++) {
        for (let col = 0; col < 5; col++) if (g[row * 5 + col] === '#') this.rect(cx + col * scale, y + row * scale, scale, scale, c);
      }
      cx += 6 * scale;
    }
    return cx - x;
  }
}

/**
 * Width in pixels of a text in the built-in font.
 * @param s - text
 * @param scale - pixels per font pixel
 * @returns width
 * @example
 * textWidth('LOSS', 2); // 48
 */
export function textWidth(s: string, scale = 1): number {
  return s.length * 6 * scale;
}

/**
 * About `count` round tick values covering [lo, hi] (steps of 1, 2 or 5 × 10ⁿ).
 * @param lo - lower end
 * @param hi - upper end
 * @param count - wanted number of ticks
 * @returns tick values inside [lo, hi], ascending
 * @example
 * niceTicks(0, 1, 5); // [0, 0.2, 0.4, 0.6, 0.8, 1]
 */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(count, 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function fmtTick(v: number, step: number): string {
  const digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(digits);
}

/**
 * Draw training and validation loss per epoch.
 * @param train - training loss per epoch (epoch 1 first)
 * @param val - validation loss per epoch (NaN or empty when there is no validation)
 * @param opts - size, kept epoch, title
 * @returns the RGB image
 * @example
 * const img = plotLossCurve([0.7, 0.5, 0.4], [0.72, 0.55, 0.5], { bestEpoch: 3 });
 * await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }).png().toFile('loss.png');
 */
export function plotLossCurve(train: readonly number[], val: readonly number[], opts: LossCurvePlotOptions = {}): RgbImage {
  const W = Math.max(200, Math.round(opts.width ?? 640));
  const H = Math.max(150, Math.round(opts.height ?? 400));
  const cv = new Canvas(W, H);
  const S = 2; // font scale
  const left = 16 + textWidth('0.000', S);
  const right = W - 16;
  const top = 16 + 7 * S + 12;
  const bottom = H - (16 + 2 * 7 * S + 12);
  const n = Math.max(train.length, val.length, 1);
  const finite = [...train, ...val].filter((v) => Number.isFinite(v));
  let lo = finite.length ? Math.min(...finite) : 0;
  let hi = finite.length ? Math.max(...finite) : 1;
  if (hi - lo < 1e-12) {
    lo -= 0.5;
    hi += 0.5;
  }
  const pad = (hi - lo) * 0.05;
  lo = Math.max(lo - pad, finite.length && Math.min(...finite) >= 0 ? 0 : -Infinity);
  hi += pad;
  const xOf = (epoch: number): number => left + (n === 1 ? 0.5 : (epoch - 1) / (n - 1)) * (right - left);
  const yOf = (v: number): number => bottom - ((v - lo) / (hi - lo)) * (bottom - top);

  // grid and ticks
  const yt = niceTicks(lo, hi, 5);
  const ystep = yt.length > 1 ? yt[1]! - yt[0]! : 1;
  for (const v of yt) {
    const y = yOf(v);
    cv.line(left, y, right, y, PLOT_COLOURS.grid);
    cv.line(left - 5, y, left, y, PLOT_COLOURS.axis);
    const label = fmtTick(v, ystep);
    cv.text(label, left - 8 - textWidth(label, S) + S, Math.round(y - 3.5 * S), PLOT_COLOURS.axis, S);
  }
  const xt = niceTicks(1, n, 6).filter((v) => Number.isInteger(v));
  for (const e of xt) {
    const x = xOf(e);
    cv.line(x, top, x, bottom, PLOT_COLOURS.grid);
    cv.line(x, bottom, x, bottom + 5, PLOT_COLOURS.axis);
    const label = String(e);
    cv.text(label, Math.round(x - textWidth(label, S) / 2), bottom + 9, PLOT_COLOURS.axis, S);
  }
  if (opts.bestEpoch && opts.bestEpoch >= 1 && opts.bestEpoch <= n) {
    const x = xOf(opts.bestEpoch);
    cv.line(x, top, x, bottom, PLOT_COLOURS.best, 1, 4);
  }
  // axes
  cv.line(left, top, left, bottom, PLOT_COLOURS.axis, 2);
  cv.line(left, bottom, right, bottom, PLOT_COLOURS.axis, 2);
  cv.text('EPOCH', Math.round((left + right) / 2 - textWidth('EPOCH', S) / 2), H - 16 - 7 * S, PLOT_COLOURS.axis, S);
  cv.text(opts.title ? `LOSS  ${opts.title}` : 'LOSS', 16, 16, PLOT_COLOURS.axis, S);

  // curves
  const curve = (vals: readonly number[], colour: Rgb): void => {
    let prev: [number, number] | undefined;
    vals.forEach((v, i) => {
      if (!Number.isFinite(v)) {
        prev = undefined;
        return;
      }
      const p: [number, number] = [xOf(i + 1), yOf(v)];
      if (prev) cv.line(prev[0], prev[1], p[0], p[1], colour, 2);
      else cv.rect(Math.round(p[0]) - 1, Math.round(p[1]) - 1, 3, 3, colour);
      prev = p;
    });
  };
  curve(train, PLOT_COLOURS.train);
  curve(val, PLOT_COLOURS.val);

  // legend (top right)
  const entries: [string, Rgb, number][] = [['TRAIN', PLOT_COLOURS.train, 0], ...(val.some((v) => Number.isFinite(v)) ? [['VAL', PLOT_COLOURS.val, 0] as [string, Rgb, number]] : [])];
  if (opts.bestEpoch) entries.push([`BEST ${opts.bestEpoch}`, PLOT_COLOURS.best, 4]);
  const lw = Math.max(...entries.map(([s]) => textWidth(s, S))) + 34;
  let ly = top + 8;
  const lx = right - lw - 8;
  cv.rect(lx - 6, ly - 6, lw + 12, entries.length * (7 * S + 8) + 4, [255, 255, 255]);
  for (const [label, colour, dash] of entries) {
    cv.line(lx, ly + 3.5 * S, lx + 24, ly + 3.5 * S, colour, dash ? 1 : 2, dash);
    cv.text(label, lx + 30, ly, PLOT_COLOURS.axis, S);
    ly += 7 * S + 8;
  }
  return { width: W, height: H, data: cv.data };
}
