/**
 * The simulated AbdomenAtlas campaign (atlas-campaign.ts) repeated over several seeds — new
 * phantoms, new models' mistakes, new random draws each time — so that "ranked review beats random
 * review" comes with a confidence band instead of one run's luck.
 *
 * Per budget (fraction of each source's cases reviewed): the mean over seeds of the final Dice with
 * ranked, random (the mean of the random draws) and oracle selection, each with a 95 % Student-t
 * interval over seeds. The **Dice gain** of a policy is its Dice minus the Dice without review; the
 * gain ratio ranked / random at a budget is the ratio of the mean gains over seeds (means first:
 * a single seed's random gain can be near 0). Per source, the gains are exact: ranked = what the
 * selected cases gained; random = the expectation of k random cases out of n, i.e. k / n times the
 * gain of reviewing all of them. Attention's detection counts are summed over seeds.
 *
 * Writes DIR/seed-<s>/ (each campaign's folders and report) and DIR/seeds.json + DIR/seeds.html
 * (the Dice-vs-fraction curve with bands, per-source gains, attention rates). `predictionsFromSeries`
 * reuses the segmenters' predictions of an earlier series folder (same seeds and options), so
 * attention variants can be compared on the same predictions.
 * @module
 */
import { join } from 'node:path';
import { MedmaskError } from '../core/errors.js';
import { addDetection, detectionRates, emptyDetection, type DetectionCounts, type DetectionRates } from '../core/atlas/attention-eval.js';
import { meanCi95 } from '../core/metrics/interval.js';
import { atomicWrite } from '../io/atomic.js';
import { runAtlasCampaign, type CampaignOptions, type CampaignResult } from './atlas-campaign.js';

/** A mean over seeds with its 95 % interval. */
export interface SeedStat {
  mean: number;
  low: number;
  high: number;
  values: number[];
}

/** One budget of the series. */
export interface SeriesPoint {
  fraction: number;
  ranked: SeedStat;
  random: SeedStat;
  oracle?: SeedStat;
  /** Dice gain over no review. */
  rankedGain: SeedStat;
  randomGain: SeedStat;
  /** mean ranked gain / mean random gain (NaN when the random gain is 0). */
  gainRatio: number;
}

/** Per source at the campaign's review fraction. */
export interface SourceGain {
  source: string;
  /** Cases of this source per seed, reviewed per seed. */
  cases: number;
  reviewed: number;
  /** Mean Dice gain per case of the source: ranked selection, and random's expectation. */
  rankedGain: SeedStat;
  randomGain: SeedStat;
  gainRatio: number;
}

/** What {@link runCampaignSeries} returns. */
export interface CampaignSeries {
  seeds: number[];
  curve: SeriesPoint[];
  bySource: SourceGain[];
  attention: DetectionRates & { counts: DetectionCounts; perSeed: DetectionRates[] };
  runs: CampaignResult[];
  files: { json: string; html: string };
}

function stat(values: number[]): SeedStat {
  const c = meanCi95(values);
  return { mean: c.mean, low: c.low, high: c.high, values };
}

/**
 * Run the campaign once per seed and summarise over seeds.
 * @param dir - output folder: DIR/seed-<s>/ per run, DIR/seeds.json and DIR/seeds.html
 * @param opts - the campaign's options (its seed is replaced) and the seeds (at least 2)
 * @returns the per-budget curve with intervals, per-source gains, attention rates, each run
 * @throws MedmaskError USAGE for fewer than two seeds or repeated seeds; the campaign's errors
 * @example
 * const s = await runCampaignSeries('campaigns', { seeds: [1, 2, 3], n: 16 });
 * s.curve.find((p) => p.fraction === 0.05)!.gainRatio; // ranked / random Dice gain
 */
export async function runCampaignSeries(dir: string, opts: CampaignOptions & { seeds: number[]; predictionsFromSeries?: string }): Promise<CampaignSeries> {
  const seeds = opts.seeds;
  if (seeds.length < 2 || new Set(seeds).size !== seeds.length || !seeds.every(Number.isInteger)) {
    throw new MedmaskError('USAGE', `seeds ${seeds.join(', ')} must be at least two different whole numbers`, { hint: 'e.g. seeds 1, 2, 3: a band needs several runs' });
  }
  const fractions = opts.fractions ?? [0, 0.05, 0.1, 0.2, 0.5, 1];
  if (!fractions.includes(0)) fractions.unshift(0);
  const runs: CampaignResult[] = [];
  for (const seed of seeds) {
    const { seeds: _s, predictionsFromSeries: from, ...one } = opts;
    runs.push(await runAtlasCampaign(join(dir, `seed-${seed}`), { ...one, seed, fractions, ...(from ? { predictionsFrom: join(from, `seed-${seed}`) } : {}), ...(opts.onProgress ? { onProgress: (st, d, t) => opts.onProgress!(`seed ${seed}: ${st}`, d, t) } : {}) }));
  }
  const curve: SeriesPoint[] = fractions.map((fraction) => {
    const pts = runs.map((r) => r.report.curve!.find((p) => p.fraction === fraction)!);
    const none = runs.map((r) => r.report.curve!.find((p) => p.fraction === 0)!.ranked);
    const rankedGain = stat(pts.map((p, i) => p.ranked - none[i]!));
    const randomGain = stat(pts.map((p, i) => p.random - none[i]!));
    return {
      fraction,
      ranked: stat(pts.map((p) => p.ranked)),
      random: stat(pts.map((p) => p.random)),
      ...(pts.every((p) => p.oracle !== undefined) ? { oracle: stat(pts.map((p) => p.oracle!)) } : {}),
      rankedGain,
      randomGain,
      gainRatio: randomGain.mean !== 0 ? rankedGain.mean / randomGain.mean : NaN,
    };
  });
  const sources = [...new Set(runs.flatMap((r) => r.cases.map((c) => c.source)))].sort();
  const bySource: SourceGain[] = sources.map((source) => {
    const ranked: number[] = [], random: number[] = [];
    let cases = 0, reviewed = 0;
    for (const r of runs) {
      const cs = r.cases.filter((c) => c.source === source);
      const k = cs.filter((c) => c.selected).length;
      const gain = (c: (typeof cs)[number]) => c.diceAfter - c.diceBefore;
      ranked.push(cs.filter((c) => c.selected).reduce((s, c) => s + gain(c), 0) / cs.length);
      random.push(((k / cs.length) * cs.reduce((s, c) => s + gain(c), 0)) / cs.length);
      cases += cs.length;
      reviewed += k;
    }
    const rg = stat(ranked), xg = stat(random);
    return { source, cases: cases / runs.length, reviewed: reviewed / runs.length, rankedGain: rg, randomGain: xg, gainRatio: xg.mean !== 0 ? rg.mean / xg.mean : NaN };
  });
  const counts = emptyDetection();
  for (const r of runs) addDetection(counts, r.attention.counts);
  const attention = { ...detectionRates(counts), counts, perSeed: runs.map((r) => detectionRates(r.attention.counts)) };
  const summary = { seeds, reviewFraction: opts.reviewFraction ?? 0.05, curve, bySource, attention, reports: runs.map((r) => r.reportFiles.html) };
  const json = join(dir, 'seeds.json'), html = join(dir, 'seeds.html');
  await atomicWrite(json, JSON.stringify(summary, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 1) + '\n');
  await atomicWrite(html, renderSeriesHtml(summary));
  return { seeds, curve, bySource, attention, runs, files: { json, html } };
}

const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : '–');
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** A self-contained page: the curve with 95 % bands, gains per budget and per source, attention. */
function renderSeriesHtml(s: { seeds: number[]; reviewFraction: number; curve: SeriesPoint[]; bySource: SourceGain[]; attention: DetectionRates }): string {
  const W = 560, H = 320, L = 60, B = 40, T = 20, R = 20;
  const ys = s.curve.flatMap((p) => [p.ranked.low, p.ranked.high, p.random.low, p.random.high, ...(p.oracle ? [p.oracle.mean] : [])]).filter(Number.isFinite);
  const y0 = Math.min(...ys), y1 = Math.max(...ys);
  const px = (f: number) => L + f * (W - L - R);
  const py = (d: number) => T + (1 - (d - y0) / (y1 - y0 || 1)) * (H - T - B);
  const line = (get: (p: SeriesPoint) => number) => s.curve.map((p, i) => `${i ? 'L' : 'M'}${px(p.fraction).toFixed(1)},${py(get(p)).toFixed(1)}`).join(' ');
  const band = (get: (p: SeriesPoint) => SeedStat) => {
    const up = s.curve.map((p) => `${px(p.fraction).toFixed(1)},${py(Number.isFinite(get(p).high) ? get(p).high : get(p).mean).toFixed(1)}`);
    const down = [...s.curve].reverse().map((p) => `${px(p.fraction).toFixed(1)},${py(Number.isFinite(get(p).low) ? get(p).low : get(p).mean).toFixed(1)}`);
    return [...up, ...down].join(' ');
  };
  const ticks = [y0, (y0 + y1) / 2, y1].map((d) => `<text x="${L - 6}" y="${py(d) + 4}" text-anchor="end">${d.toFixed(3)}</text>`).join('');
  const xt = [0, 0.25, 0.5, 0.75, 1].map((f) => `<text x="${px(f)}" y="${H - B + 16}" text-anchor="middle">${f * 100}%</text>`).join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-size="11" font-family="sans-serif">
<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#999"/>
<polygon points="${band((p) => p.random)}" fill="#888" fill-opacity="0.25"/>
<polygon points="${band((p) => p.ranked)}" fill="#d33" fill-opacity="0.25"/>
<path d="${line((p) => p.random.mean)}" fill="none" stroke="#555" stroke-width="2"/>
<path d="${line((p) => p.ranked.mean)}" fill="none" stroke="#d33" stroke-width="2"/>
${s.curve.every((p) => p.oracle) ? `<path d="${line((p) => p.oracle!.mean)}" fill="none" stroke="#36c" stroke-dasharray="4 3"/>` : ''}
${ticks}${xt}<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">fraction of each source's cases reviewed</text>
<text x="${L + 8}" y="${T + 14}" fill="#d33">ranked</text><text x="${L + 60}" y="${T + 14}" fill="#555">random</text><text x="${L + 115}" y="${T + 14}" fill="#36c">oracle</text>
</svg>`;
  const rows = s.curve.map((p) => `<tr><td>${p.fraction * 100}%</td><td>${f3(p.ranked.mean)} [${f3(p.ranked.low)}, ${f3(p.ranked.high)}]</td><td>${f3(p.random.mean)} [${f3(p.random.low)}, ${f3(p.random.high)}]</td><td>${p.oracle ? f3(p.oracle.mean) : '–'}</td><td>${f3(p.rankedGain.mean)}</td><td>${f3(p.randomGain.mean)}</td><td>${Number.isFinite(p.gainRatio) ? p.gainRatio.toFixed(2) : '–'}</td></tr>`).join('\n');
  const src = s.bySource.map((g) => `<tr><td>${esc(g.source)}</td><td>${g.cases}</td><td>${g.reviewed}</td><td>${f3(g.rankedGain.mean)} [${f3(g.rankedGain.low)}, ${f3(g.rankedGain.high)}]</td><td>${f3(g.randomGain.mean)}</td><td>${Number.isFinite(g.gainRatio) ? g.gainRatio.toFixed(2) : '–'}</td></tr>`).join('\n');
  const a = s.attention;
  return `<!doctype html><html><head><meta charset="utf-8"><title>AbdomenAtlas campaign over ${s.seeds.length} seeds</title>
<style>body{font-family:sans-serif;margin:2em;max-width:60em}td,th{padding:2px 8px;text-align:right}th{background:#eee}</style></head><body>
<h1>Simulated AbdomenAtlas campaign over ${s.seeds.length} seeds (${s.seeds.join(', ')})</h1>
<h2>Dice of final labels vs fraction reviewed (mean, 95 % band over seeds)</h2>${svg}
<table><tr><th>reviewed</th><th>ranked [95 %]</th><th>random [95 %]</th><th>oracle</th><th>ranked gain</th><th>random gain</th><th>gain ratio</th></tr>
${rows}</table>
<h2>Per source at ${s.reviewFraction * 100} % (Dice gain per case; random = exact expectation)</h2>
<table><tr><th>source</th><th>cases / seed</th><th>reviewed / seed</th><th>ranked gain [95 %]</th><th>random gain</th><th>ratio</th></tr>
${src}</table>
<h2>Attention (counts summed over seeds)</h2>
<p>Region sensitivity ${f3(a.regionSensitivity)}, region precision ${f3(a.regionPrecision)} (a region is found / right when it touches; the paper's reading); half covered (found / right when at least half of it is covered): ${f3(a.regionSensitivityHalf)} / ${f3(a.regionPrecisionHalf)}; voxel sensitivity ${f3(a.voxelSensitivity)}, voxel precision ${f3(a.voxelPrecision)}.</p>
</body></html>
`;
}
