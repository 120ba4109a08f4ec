/**
 * `RUN/report.html`: one self-contained, offline file (no CDN, images inlined as data URIs, charts
 * as inline SVG, a few lines of inline script for sorting) with the run's summary, a sortable
 * table of every image, thumbnails of the most uncertain and the most confident cases, and —
 * when `evaluate` has run — Dice histogram, ROC of the open-set score, risk–coverage and
 * reliability plots.
 * @module
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { esc, histogram, lineChart, reliabilityDiagram } from '../core/report/svg.js';
import { atomicWrite } from '../io/atomic.js';
import { readVolume } from '../io/index.js';
import type { Evaluation } from './evaluate.js';
import { readResults } from './evaluate.js';
import type { ImageResult, RunInfo } from './run-format.js';

async function thumb(path: string, size = 112): Promise<string> {
  if (!existsSync(path)) return '';
  let img: ReturnType<typeof sharp>;
  if (/\.(png|jpe?g|tiff?)$/i.test(path)) img = sharp(path);
  else {
    // NIfTI / NRRD / MetaImage / DICOM: the (first) slice, min–max scaled to 8 bits.
    const v = await readVolume(path);
    const [w, h] = v.shape, comps = v.components, grey = new Uint8Array(w * h);
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < w * h; i++) {
      const x = v.data[i * comps]!;
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    for (let i = 0; i < w * h; i++) grey[i] = hi > lo ? Math.round((255 * (v.data[i * comps]! - lo)) / (hi - lo)) : 0;
    img = sharp(grey, { raw: { width: w, height: h, channels: 1 } });
  }
  const buf = await img.resize(size, size, { fit: 'inside' }).png().toBuffer();
  return `data:image/png;base64,${buf.toString('base64')}`;
}

/**
 * Mean lesion Dice of the run after an expert has reviewed the first k masks (a reviewed mask is
 * taken as right, Dice 1), for the review order by expected gain and by priority: how fast each
 * order brings the masks up (random order is the straight line to 1).
 */
function reviewCurves(ok: readonly ImageResult[], diceOf: Map<string, { dice?: number }>): { k: number[]; byGain: number[]; byPriority: number[] } | undefined {
  const rows = ok.filter((r) => diceOf.get(r.image)?.dice !== undefined);
  if (rows.length < 2 || !rows.some((r) => r.uncertainty?.expectedGain !== undefined)) return undefined;
  const n = rows.length;
  const curve = (key: (r: ImageResult) => number): number[] => {
    const sorted = [...rows].sort((a, b) => key(b) - key(a));
    let sum = sorted.reduce((a, r) => a + diceOf.get(r.image)!.dice!, 0);
    const out = [sum / n];
    for (const r of sorted) {
      sum += 1 - diceOf.get(r.image)!.dice!;
      out.push(sum / n);
    }
    return out;
  };
  return { k: Array.from({ length: n + 1 }, (_, i) => i), byGain: curve((r) => r.uncertainty?.expectedGain ?? 0), byPriority: curve((r) => r.priority ?? 0) };
}

const num = (v: number | undefined | null, d = 3) => (v === undefined || v === null || !Number.isFinite(v) ? '–' : v.toFixed(d));

/** "mask heads trained on N reviewed masks" when the run fused mask heads. */
function maskHeadNote(info: RunInfo): string {
  const heads = (info.options as { maskHeads?: ({ reviewedMasks?: number } | null)[] }).maskHeads?.filter((h): h is { reviewedMasks?: number } => !!h);
  if (!heads?.length) return '';
  const counts = [...new Set(heads.map((h) => h.reviewedMasks).filter((c) => c !== undefined))];
  return ` · ${heads.length} mask head(s)${counts.length ? `, trained on ${counts.join(' / ')} reviewed masks` : ''}`;
}

/**
 * Write RUN/report.html.
 * @param run - the annotate output folder
 * @param opts - the images root (for thumbnails of the input), thumbnails per group (default 8)
 * @returns the path written
 */
export async function writeReport(run: string, opts: { imagesRoot?: string; thumbnails?: number } = {}): Promise<string> {
  const info = JSON.parse(await readFile(join(run, 'run.json'), 'utf8')) as RunInfo;
  const results = await readResults(run);
  const evalPath = join(run, 'evaluation.json');
  const ev = existsSync(evalPath) ? (JSON.parse(await readFile(evalPath, 'utf8')) as Evaluation) : undefined;
  const diceOf = new Map(ev?.perImage.map((e) => [e.image, e]) ?? []);
  const ok = results.filter((r) => r.status === 'ok');
  const counts = { accept: 0, review: 0, ood: 0, error: results.length - ok.length };
  for (const r of ok) counts[r.decision!]++;
  const root = opts.imagesRoot ?? info.images;
  const n = opts.thumbnails ?? 8;
  const byPriority = [...ok].sort((a, b) => (b.priority ?? 0) - (a.priority ?? 0));
  const groups: [string, ImageResult[]][] = [
    ['Top of the review queue (most uncertain)', byPriority.filter((r) => r.decision === 'review').slice(0, n)],
    ['Most confident accepted', byPriority.filter((r) => r.decision === 'accept').slice(-n).reverse()],
    ['Out of distribution', byPriority.filter((r) => r.decision === 'ood').slice(0, n)],
  ].filter(([, list]) => (list as ImageResult[]).length) as [string, ImageResult[]][];
  const card = async (r: ImageResult) => {
    const e = diceOf.get(r.image);
    const imgs = await Promise.all([thumb(join(root, r.image)), thumb(join(run, r.mask ?? '')), r.heatmap ? thumb(join(run, r.heatmap)) : Promise.resolve('')]);
    return `<figure class="card ${r.decision}"><div>${imgs.filter(Boolean).map((s) => `<img src="${s}" alt="">`).join('')}</div><figcaption><b>${esc(r.image)}</b><br>${esc(r.label ?? '—')} → ${esc(r.predicted ?? '')} · <span class="d">${r.decision}</span> · priority ${num(r.priority, 2)}${e?.dice !== undefined ? ` · Dice ${num(e.dice, 2)}` : ''}<br><small>${esc((r.reasons ?? []).join('; '))}</small></figcaption></figure>`;
  };
  const gallery: string[] = [];
  for (const [title, list] of groups) gallery.push(`<h2>${esc(title)}</h2><div class="grid">${(await Promise.all(list.map(card))).join('')}</div>`);
  const plots: string[] = [];
  if (ev) {
    const dices = ev.perImage.map((e) => e.dice).filter((d): d is number => d !== undefined);
    if (dices.length) plots.push(histogram(dices, { title: `Dice of lesion images (mean ${num(ev.segmentation.meanDice, 2)})`, xLabel: 'Dice', yLabel: 'images', xRange: [0, 1] }, 10));
    if (ev.ood.roc) plots.push(lineChart([{ name: `OOD score, AUROC ${num(ev.ood.auroc, 3)}`, x: ev.ood.roc.fpr, y: ev.ood.roc.tpr }, { name: 'chance', x: [0, 1], y: [0, 1], dashed: true, color: '#999' }], { title: 'Open-set detection (ROC)', xLabel: 'false-positive rate', yLabel: 'true-positive rate', xRange: [0, 1], yRange: [0, 1] }));
    if (ev.riskCoverage.n) {
      plots.push(lineChart(
        [
          { name: `by priority, AURC ${num(ev.riskCoverage.aurc, 3)}`, x: ev.riskCoverage.coverage, y: ev.riskCoverage.risk },
          { name: `random, ${num(ev.riskCoverage.randomAurc, 3)}`, x: [0, 1], y: [ev.riskCoverage.randomAurc, ev.riskCoverage.randomAurc], dashed: true, color: '#999' },
        ],
        { title: 'Risk–coverage (1 − Dice of accepted masks)', xLabel: 'coverage (fraction accepted, most certain first)', yLabel: 'mean 1 − Dice', xRange: [0, 1] },
      ));
    }
    const curve = reviewCurves(ok, diceOf);
    if (curve) {
      plots.push(lineChart(
        [
          { name: 'by expected gain', x: curve.k, y: curve.byGain },
          { name: 'by priority', x: curve.k, y: curve.byPriority, color: '#b36b00' },
          { name: 'random order', x: [0, curve.k[curve.k.length - 1]!], y: [curve.byGain[0]!, 1], dashed: true, color: '#999' },
        ],
        { title: 'Mean lesion Dice versus reviewed masks (each review makes its mask right)', xLabel: 'masks reviewed', yLabel: 'mean Dice', yRange: [Math.min(curve.byGain[0]!, 1) - 0.02, 1] },
      ));
    }
    const conf: number[] = [], corr: number[] = [];
    for (const r of ok) {
      const e = diceOf.get(r.image);
      if (e?.correct === undefined || !r.predicted || !r.probabilities) continue;
      conf.push(r.probabilities[r.predicted] ?? 0);
      corr.push(e.correct ? 1 : 0);
    }
    if (conf.length) plots.push(reliabilityDiagram(conf, corr, { title: `Reliability (ECE ${num(ev.classification.ece, 3)})`, xLabel: 'confidence', yLabel: 'accuracy' }));
  }
  const rows = ok.map((r) => {
    const e = diceOf.get(r.image);
    return `<tr class="${r.decision}"><td>${esc(r.image)}</td><td>${esc(r.label ?? '')}</td><td>${esc(r.predicted ?? '')}</td><td>${r.decision}</td><td>${num(r.priority, 3)}</td><td>${num(r.uncertainty?.entropy)}</td><td>${num(r.uncertainty?.mi)}</td><td>${num(r.uncertainty?.maskScore)}</td><td>${num(r.uncertainty?.outside)}</td><td>${num(r.uncertainty?.expectedGain)}</td><td>${num(r.ood?.score, 2)}</td><td>${r.maskPixels ?? ''}</td><td>${num(e?.dice)}</td><td>${esc((r.reasons ?? []).join('; '))}</td></tr>`;
  });
  const errRows = results.filter((r) => r.status !== 'ok').map((r) => `<li><b>${esc(r.image)}</b>: ${esc(r.error ?? '')}</li>`);
  const metrics = ev
    ? `<table class="kv"><tr><th>mean Dice (lesion images)</th><td>${num(ev.segmentation.meanDice)}</td><th>accuracy</th><td>${num(ev.classification.accuracy)}</td><th>OOD AUROC</th><td>${num(ev.ood.auroc)}</td></tr>
<tr><th>mean Dice of accepted</th><td>${num(ev.segmentation.meanDiceByDecision.accept?.meanDice)} (${ev.segmentation.meanDiceByDecision.accept?.n ?? 0})</td><th>AUROC (classes)</th><td>${num(ev.classification.aurocMacro)}</td><th>FPR@95TPR</th><td>${num(ev.ood.fprAt95Tpr)}</td></tr>
<tr><th>mean Dice sent to review</th><td>${num(ev.segmentation.meanDiceByDecision.review?.meanDice)} (${ev.segmentation.meanDiceByDecision.review?.n ?? 0})</td><th>ECE</th><td>${num(ev.classification.ece)}</td><th>median HD95</th><td>${num(ev.segmentation.medianHd95, 1)} mm</td></tr>
<tr><th>mean Dice, 95 % t-interval</th><td>${num(ev.segmentation.meanDiceCi95?.[0])}–${num(ev.segmentation.meanDiceCi95?.[1])}</td><th>OOD AUROC far</th><td>${ev.ood.far ? `${num(ev.ood.far.auroc)} (${ev.ood.far.n})` : '–'}</td><th>OOD AUROC near</th><td>${ev.ood.near ? `${num(ev.ood.near.auroc)} (${ev.ood.near.n})` : '–'}</td></tr></table>`
    : '<p>No evaluation yet: run <code>medmask evaluate --run RUN --truth DIR</code> for Dice, AUROC and the plots.</p>';
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>medmask report — ${esc(run)}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}h1{margin:0 0 4px}table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}
th{cursor:pointer;background:#f6f6f6}.kv th{cursor:default}.grid{display:flex;flex-wrap:wrap;gap:10px}.card{margin:0;border:1px solid #ddd;border-radius:6px;padding:6px;width:360px}
.card img{margin-right:4px;image-rendering:pixelated}.review .d,tr.review td:nth-child(4){color:#b36b00}.ood .d,tr.ood td:nth-child(4){color:#c00}.accept .d,tr.accept td:nth-child(4){color:#080}
.plots{display:flex;flex-wrap:wrap;gap:16px}small{color:#555}</style></head><body>
<h1>medmask annotate report</h1><p>${esc(run)} · started ${esc(info.started)} · ${info.models.map((m) => `<code>${esc(m.name)}</code> (${m.sha256.slice(0, 12)})`).join(', ')} · seed ${info.seed}${maskHeadNote(info)}</p>
<p><b>${results.length}</b> images: <b class="accept">${counts.accept}</b> accepted, <b>${counts.review}</b> to review, <b>${counts.ood}</b> out of distribution, ${counts.error} failed${info.stageSeconds ? ` · ${Object.entries(info.stageSeconds).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ')}` : ''}</p>
${metrics}<div class="plots">${plots.join('')}</div>${gallery.join('')}
<h2>All images</h2><table id="t"><thead><tr><th>image</th><th>label</th><th>predicted</th><th>decision</th><th>priority</th><th>entropy</th><th>MI</th><th>mask score</th><th>outside</th><th>expected gain</th><th>OOD</th><th>mask px</th><th>Dice</th><th>reasons</th></tr></thead><tbody>${rows.join('')}</tbody></table>
${errRows.length ? `<h2>Failed images</h2><ul>${errRows.join('')}</ul>` : ''}
<script>document.querySelectorAll('#t th').forEach((th,i)=>th.onclick=()=>{const tb=th.closest('table').tBodies[0];const rs=[...tb.rows];const dir=th.dataset.dir=th.dataset.dir==='1'?'-1':'1';
rs.sort((a,b)=>{const x=a.cells[i].textContent,y=b.cells[i].textContent;const nx=parseFloat(x),ny=parseFloat(y);return (isNaN(nx)||isNaN(ny)?x.localeCompare(y):nx-ny)*dir;});rs.forEach(r=>tb.appendChild(r));});</script>
</body></html>\n`;
  const path = join(run, 'report.html');
  await atomicWrite(path, html);
  return path;
}
