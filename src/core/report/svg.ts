/**
 * Small inline-SVG charts for self-contained reports (no plotting library, no CDN): line charts
 * with several series, histograms, reliability diagrams. Pure string building, browser-safe.
 * Hand-written because the charting libraries on npm assume a DOM or a canvas, and a report must
 * open offline from one file.
 * @module
 */

/** One series of a line chart. */
export interface Series {
  name: string;
  x: readonly number[];
  y: readonly number[];
  /** CSS colour (default from a palette). */
  color?: string;
  /** Dashed line (for references such as "random"). */
  dashed?: boolean;
}

/** Common chart options. */
export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  xRange?: [number, number];
  yRange?: [number, number];
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const M = { l: 52, r: 14, t: 28, b: 42 };

/** Escape text for SVG/HTML. */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(v: number): string {
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function frame(o: ChartOptions, xr: [number, number], yr: [number, number]) {
  const w = o.width ?? 360, h = o.height ?? 260;
  const pw = w - M.l - M.r, ph = h - M.t - M.b;
  const sx = (x: number) => M.l + ((x - xr[0]) / (xr[1] - xr[0] || 1)) * pw;
  const sy = (y: number) => M.t + ph - ((y - yr[0]) / (yr[1] - yr[0] || 1)) * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="11">`);
  parts.push(`<text x="${w / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${esc(o.title)}</text>`);
  parts.push(`<rect x="${M.l}" y="${M.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  for (let i = 0; i <= 4; i++) {
    const xv = xr[0] + ((xr[1] - xr[0]) * i) / 4, yv = yr[0] + ((yr[1] - yr[0]) * i) / 4;
    parts.push(`<line x1="${sx(xv)}" y1="${M.t + ph}" x2="${sx(xv)}" y2="${M.t + ph + 4}" stroke="#999"/><text x="${sx(xv)}" y="${M.t + ph + 15}" text-anchor="middle">${fmt(xv)}</text>`);
    parts.push(`<line x1="${M.l - 4}" y1="${sy(yv)}" x2="${M.l}" y2="${sy(yv)}" stroke="#999"/><text x="${M.l - 6}" y="${sy(yv) + 4}" text-anchor="end">${fmt(yv)}</text>`);
  }
  parts.push(`<text x="${M.l + pw / 2}" y="${h - 6}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(12 ${M.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  return { parts, sx, sy, w, h, pw, ph };
}

function extent(vals: number[], fallback: [number, number]): [number, number] {
  const f = vals.filter(Number.isFinite);
  if (!f.length) return fallback;
  const lo = Math.min(...f), hi = Math.max(...f);
  return lo === hi ? [lo - 0.5, hi + 0.5] : [lo, hi];
}

/**
 * A line chart of one or more series with a legend.
 * @example
 * lineChart([{ name: 'ROC', x: fpr, y: tpr }], { title: 'ROC', xLabel: 'FPR', yLabel: 'TPR', xRange: [0, 1], yRange: [0, 1] });
 */
export function lineChart(series: readonly Series[], o: ChartOptions): string {
  const xr = o.xRange ?? extent(series.flatMap((s) => [...s.x]), [0, 1]);
  const yr = o.yRange ?? extent(series.flatMap((s) => [...s.y]), [0, 1]);
  const f = frame(o, xr, yr);
  series.forEach((s, i) => {
    const c = s.color ?? PALETTE[i % PALETTE.length]!;
    const pts = s.x.map((x, k) => `${f.sx(x).toFixed(1)},${f.sy(s.y[k]!).toFixed(1)}`).join(' ');
    f.parts.push(`<polyline points="${pts}" fill="none" stroke="${c}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="5 4"' : ''}/>`);
    f.parts.push(`<line x1="${M.l + 8}" y1="${M.t + 12 + i * 14}" x2="${M.l + 24}" y2="${M.t + 12 + i * 14}" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/><text x="${M.l + 28}" y="${M.t + 16 + i * 14}">${esc(s.name)}</text>`);
  });
  f.parts.push('</svg>');
  return f.parts.join('');
}

/**
 * A histogram of values in `bins` equal bins over `range`.
 * @example
 * histogram(dices, { title: 'Dice', xLabel: 'Dice', yLabel: 'images', xRange: [0, 1] }, 10);
 */
export function histogram(values: readonly number[], o: ChartOptions, bins = 10): string {
  const xr = o.xRange ?? extent([...values], [0, 1]);
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    counts[Math.min(bins - 1, Math.max(0, Math.floor(((v - xr[0]) / (xr[1] - xr[0] || 1)) * bins)))]!++;
  }
  const f = frame(o, xr, [0, Math.max(1, ...counts)]);
  const bw = f.pw / bins;
  counts.forEach((c, i) => {
    const y = f.sy(c);
    f.parts.push(`<rect x="${(M.l + i * bw + 1).toFixed(1)}" y="${y.toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${(M.t + f.ph - y).toFixed(1)}" fill="${PALETTE[0]}"><title>${c}</title></rect>`);
  });
  f.parts.push('</svg>');
  return f.parts.join('');
}

/**
 * Reliability diagram: per confidence bin, accuracy (bars) against the diagonal.
 * @param confidence - predicted-class probability per sample
 * @param correct - per sample, 1 when right
 */
export function reliabilityDiagram(confidence: readonly number[], correct: readonly number[], o: ChartOptions, bins = 10): string {
  const f = frame(o, [0, 1], [0, 1]);
  const n = new Array<number>(bins).fill(0), acc = new Array<number>(bins).fill(0);
  confidence.forEach((c, i) => {
    const b = Math.min(bins - 1, Math.max(0, Math.ceil(c * bins) - 1));
    n[b]!++;
    acc[b]! += correct[i]!;
  });
  const bw = f.pw / bins;
  n.forEach((cnt, i) => {
    if (!cnt) return;
    const y = f.sy(acc[i]! / cnt);
    f.parts.push(`<rect x="${(M.l + i * bw + 1).toFixed(1)}" y="${y.toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${(M.t + f.ph - y).toFixed(1)}" fill="${PALETTE[0]}" opacity="0.8"><title>${cnt} images, accuracy ${(acc[i]! / cnt).toFixed(2)}</title></rect>`);
  });
  f.parts.push(`<line x1="${f.sx(0)}" y1="${f.sy(0)}" x2="${f.sx(1)}" y2="${f.sy(1)}" stroke="#d62728" stroke-dasharray="5 4"/>`);
  f.parts.push('</svg>');
  return f.parts.join('');
}
