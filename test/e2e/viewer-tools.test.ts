// End-to-end: the viewer's tools in Debian's Chromium against a seeded server — the heat map of a
// real annotate job drawn, W/L by drag, the intensity-bounded fill stopping at an edge, the 3D
// sphere brush's volume, fill between slices, the claim banner, the conflict dialog's safe
// default and the complete version list. Pixel statistics of screenshots; waits on conditions.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { createVolume } from '../../src/core/volume.js';
import { phantomsDataset, waitJob } from '../helpers/server.js';
import { registerModelDirs } from '../helpers/models.js';
import { abdomenCase, launchChromium, login, passwordOf, startUiServer, type UiServer } from '../helpers/ui.js';

const OUT = new URL('../../test-out/e2e/', import.meta.url).pathname;
mkdirSync(OUT, { recursive: true });

// A bright disc (value 200 ± 5) on a dark background (20 ± 5), no labels: a bounded fill inside
// must give exactly the disc.
const D = 128, CX = 60, CY = 70, R = 25;
const discImage = new Uint8Array(D * D);
const disc = new Set<number>();
for (let y = 0; y < D; y++) for (let x = 0; x < D; x++) {
  const inside = (x - CX) ** 2 + (y - CY) ** 2 <= R * R;
  discImage[x + D * y] = (inside ? 200 : 20) + ((x * 7 + y * 13) % 11) - 5;
  if (inside) disc.add(x + D * y);
}
// An empty 3D grid (1 × 1 × 2 mm) for the sphere brush and interpolation.
const G: [number, number, number] = [64, 64, 24];
const grid = createVolume(G, 'int16', { data: Int16Array.from({ length: G[0] * G[1] * G[2] }, (_, i) => (i * 31) % 200), spacing: [1, 1, 2] });

let s: UiServer;
let browser: Browser;
const contexts: BrowserContext[] = [];

before(async () => {
  s = await startUiServer([
    { name: 'disc.png', volume: createVolume([D, D, 1], 'uint8', { data: discImage }), labels: new Uint8Array(D * D), target: 'lesion', priority: 0.9 },
    { name: 'grid.nii.gz', volume: grid, labels: new Uint8Array(G[0] * G[1] * G[2]), target: 'lesion', priority: 0.8 },
    abdomenCase(2, 64, 0.7),
    // cases only the layout and threshold-brush tests open (no other test saves on them)
    { name: 'grid-layout.nii.gz', volume: grid, labels: new Uint8Array(G[0] * G[1] * G[2]), target: 'lesion', priority: 0.6 },
    { name: 'disc-threshold.png', volume: createVolume([D, D, 1], 'uint8', { data: discImage }), labels: new Uint8Array(D * D), target: 'lesion', priority: 0.5 },
  ]);
  browser = await launchChromium();
});
after(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  await s?.close();
});

async function newPage(role: string): Promise<Page> {
  const c = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  contexts.push(c);
  const p = await c.newPage();
  p.on('pageerror', (e) => console.error('page error:', e.message));
  await login(p, s.url, role);
  return p;
}

type V = { layout: number; index: number; sideShown(a: string): number | null; crosshair: number[]; sideToClient(a: string, x: number, y: number): { x: number; y: number } | null; brushRadius(): number; maskId: string; baseVersion: number; editsSize: number; window: [number, number]; sliceToClient(x: number, y: number): { x: number; y: number } | null; showSlice(a: string, i: number): Promise<void>; setLabel(v: number): void; setSphereMm(mm: number): void };
/** The page's document, typed just enough (these tests compile without the DOM library). */
type Doc = { document: { querySelector(s: string): { checked?: boolean } | null; querySelectorAll(s: string): { length: number }; activeElement: { id: string } | null } };

async function openCase(page: Page, maskId: string): Promise<void> {
  await page.evaluate((id) => ((globalThis as unknown as { location: { hash: string } }).location.hash = `#/case/${id}`), maskId);
  await page.waitForFunction((id) => {
    const g = globalThis as unknown as { __viewer?: { maskId: string }; __medmaskPerf: { samples: Record<string, number[]> } };
    return g.__viewer?.maskId === id && (g.__medmaskPerf.samples.first_paint?.length ?? 0) > 0 && !(globalThis as unknown as Doc).document.querySelector('.loading');
  }, maskId, { timeout: 30_000 });
}

async function clickAt(page: Page, x: number, y: number, opts: { shift?: boolean } = {}): Promise<void> {
  const c = (await page.evaluate(([a, b]) => (globalThis as unknown as { __viewer: V }).__viewer.sliceToClient(a!, b!), [x, y]))!;
  if (opts.shift) await page.keyboard.down('Shift');
  await page.mouse.click(c.x, c.y);
  if (opts.shift) await page.keyboard.up('Shift');
}

async function drag(page: Page, from: [number, number], to: [number, number]): Promise<void> {
  const [a, b] = await page.evaluate(([p, q]) => [(globalThis as unknown as { __viewer: V }).__viewer.sliceToClient(p![0], p![1]), (globalThis as unknown as { __viewer: V }).__viewer.sliceToClient(q![0], q![1])], [from, to]);
  await page.mouse.move(a!.x, a!.y);
  await page.mouse.down();
  await page.mouse.move(b!.x, b!.y, { steps: 6 });
  await page.mouse.up();
}

const state = (page: Page) => page.evaluate(() => {
  const v = (globalThis as unknown as { __viewer: V }).__viewer;
  return { baseVersion: v.baseVersion, editsSize: v.editsSize, window: v.window };
});

/** Pixel statistics of an element's screenshot (or of its central `centre` share, e.g. 0.3). */
async function pixelStats(l: Locator, file: string, centre = 1) {
  const png = await l.screenshot({ path: join(OUT, file) });
  let img = sharp(png).removeAlpha();
  if (centre < 1) {
    const m = await sharp(png).metadata();
    const w = Math.round(m.width! * centre), h = Math.round(m.height! * centre);
    img = img.extract({ left: Math.round((m.width! - w) / 2), top: Math.round((m.height! - h) / 2), width: w, height: h });
  }
  const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
  const n = info.width * info.height;
  let sum = 0, sum2 = 0, coloured = 0, warm = 0;
  for (let i = 0; i < n; i++) {
    const r = data[3 * i]!, g = data[3 * i + 1]!, b = data[3 * i + 2]!;
    const y = 0.299 * r + 0.587 * g + 0.114 * b;
    sum += y;
    sum2 += y * y;
    if (Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
    if (r - b > 60) warm++;
  }
  const mean = sum / n;
  return { mean, std: Math.sqrt(sum2 / n - mean * mean), coloured: coloured / n, warm: warm / n };
}

async function maskData(maskId: string, version: number): Promise<Uint8Array> {
  const r = await s.as('viewer', { url: `/api/masks/${maskId}/versions/${version}/data?format=raw` });
  assert.equal(r.statusCode, 200, r.body.slice(0, 200));
  return new Uint8Array(r.rawPayload);
}

async function saveAndWait(page: Page, version: number): Promise<void> {
  await page.click('#save');
  await page.waitForFunction((n) => (globalThis as unknown as { __viewer: V }).__viewer.baseVersion === n, version, { timeout: 15_000 });
}

test('an annotate job\'s heat map (stored as PNG) is drawn in the viewer and its regions are listed', async () => {
  const datasetId = await phantomsDataset(s, { kind: '2d', n: 8, seed: 3, size: 64, project: 'ann', dataset: 'ann', reviewCases: false });
  const input = { datasetId, models: await registerModelDirs(s, ['models/demo/demo-resnet', 'models/demo/demo-densenet', 'models/demo/demo-efficientnet']), labelMap: { nodule: 'abnormal', consolidation: 'abnormal', cavity: 'abnormal' }, mcSamples: 4, seed: 1 };
  const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'annotate', input } });
  assert.equal(r.statusCode, 202, r.body);
  assert.equal((await waitJob(s, r.json().job.id)).status, 'done');
  const row = await s.store.db.selectFrom('predictions').innerJoin('masks', 'masks.prediction_id', 'predictions.id').innerJoin('images', 'images.id', 'predictions.image_id').select('masks.id').where('images.dataset_id', '=', datasetId).where('predictions.heatmap_blob', 'is not', null).executeTakeFirstOrThrow();
  const page = await newPage('viewer');
  await openCase(page, row.id);
  await page.waitForSelector('.regions button.region', { timeout: 20_000 });
  assert.equal(await page.locator('.regions .error-text').count(), 0, 'no error in the regions panel');
  const canvas = page.locator('.canvas-box canvas');
  // the overlays arrive after the first paint
  await page.waitForFunction(() => ((globalThis as unknown as { __viewer: { overlaysShown: string[] } }).__viewer.overlaysShown ?? []).includes('heatmap'), null, { timeout: 20_000 });
  const on = await canvas.screenshot({ path: join(OUT, 'annotate-heat-on.png') });
  await page.keyboard.press('m');
  await page.waitForFunction(() => !(globalThis as unknown as Doc).document.querySelector('#toggle-heat')!.checked);
  const off = await canvas.screenshot({ path: join(OUT, 'annotate-heat-off.png') });
  // the heat map alone changes the picture: pixels that differ clearly between on and off
  const [a, b] = await Promise.all([on, off].map((png) => sharp(png).removeAlpha().raw().toBuffer()));
  let changed = 0;
  for (let i = 0; i < a!.length; i += 3) if (Math.abs(a![i]! - b![i]!) + Math.abs(a![i + 1]! - b![i + 1]!) + Math.abs(a![i + 2]! - b![i + 2]!) > 30) changed++;
  const share = changed / (a!.length / 3);
  assert.ok(share > 0.01, `the heat map changes ${(100 * share).toFixed(2)} % of the view`);
});

test('W/L by drag: dragging right widens the window and flattens the drawn contrast; typed W/L sets it', async () => {
  const page = await newPage('annotator');
  const ct = s.cases[2]!.maskId;
  await openCase(page, ct);
  const canvas = page.locator('.canvas-box canvas');
  const before = await pixelStats(canvas, 'wl-before.png', 0.3); // inside the body
  const w0 = (await state(page)).window;
  await page.keyboard.press('q');
  await drag(page, [10, 32], [60, 32]);
  const w1 = (await state(page)).window;
  assert.ok(w1[1] - w1[0] > 1.5 * (w0[1] - w0[0]), `wider window ${w0} → ${w1}`);
  const after = await pixelStats(canvas, 'wl-after.png', 0.3);
  assert.ok(after.std < before.std * 0.85, `contrast drops with a wider window (std ${before.std.toFixed(1)} → ${after.std.toFixed(1)})`);
  await page.fill('#wl-text', '80/40');
  await page.press('#wl-text', 'Enter');
  assert.deepEqual((await state(page)).window, [0, 80]);
  const narrow = await pixelStats(canvas, 'wl-typed.png', 0.3);
  assert.ok(narrow.std > after.std, 'a narrow typed window raises contrast');
  assert.match((await page.textContent('.canvas-box'))!, /A[\s\S]*P|P[\s\S]*A/, 'orientation letters drawn');
  assert.match((await page.textContent('#zoom-fit'))!, /\d+ %/);
  await page.locator('.slice-slider').fill('3'); // the slider moves through the slices
  await page.waitForFunction(() => (globalThis as unknown as { __viewer: { index: number } }).__viewer.index === 3);
  await page.locator('.slice-label', { hasText: /^axial 4 \// }).waitFor(); // drawn, and 1-based on screen
});

test('the intensity-bounded fill stops at the disc\'s edge; the guard refuses the background', async () => {
  const page = await newPage('annotator');
  const id = s.cases[0]!.maskId;
  await openCase(page, id);
  await page.keyboard.press('i');
  await clickAt(page, 2.5, 2.5); // background: more than a quarter of the slice
  await page.waitForSelector('.toast.error >> text=/would change more than/');
  assert.equal((await state(page)).editsSize, 0, 'guarded: nothing written');
  await clickAt(page, CX + 0.5, CY + 0.5);
  await page.waitForFunction(() => (globalThis as unknown as { __viewer: V }).__viewer.editsSize > 0);
  assert.equal((await state(page)).editsSize, disc.size);
  await saveAndWait(page, 2);
  const m = await maskData(id, 2);
  let wrong = 0;
  for (let i = 0; i < m.length; i++) if ((m[i] === 1) !== disc.has(i)) wrong++;
  assert.equal(wrong, 0, 'exactly the disc is labelled');
});

test('the 3D sphere brush labels 4/3·π·r³ of tissue (±10 %) on an anisotropic grid', async () => {
  const page = await newPage('annotator');
  const id = s.cases[1]!.maskId;
  await openCase(page, id);
  await page.keyboard.press('k');
  await page.evaluate(() => (globalThis as unknown as { __viewer: V }).__viewer.setSphereMm(6));
  await clickAt(page, 32.5, 32.5);
  await page.waitForFunction(() => (globalThis as unknown as { __viewer: V }).__viewer.editsSize > 0);
  await saveAndWait(page, 2);
  const m = await maskData(id, 2);
  const n = m.reduce((a, v) => a + v, 0);
  const ideal = ((4 / 3) * Math.PI * 6 ** 3) / (1 * 1 * 2);
  assert.ok(Math.abs(n - ideal) / ideal < 0.1, `${n} voxels vs ${ideal.toFixed(0)}`);
  // it spans ±3 slices (6 mm / 2 mm) around slice 12
  const slicesHit = new Set<number>();
  for (let i = 0; i < m.length; i++) if (m[i]) slicesHit.add(Math.floor(i / (G[0] * G[1])));
  assert.deepEqual([...slicesHit].sort((a, b) => a - b), [9, 10, 11, 12, 13, 14, 15]);
});

test('fill between slices: discs painted on slices 5 and 9 fill slices 6–8', async () => {
  const page = await newPage('reviewer');
  const id = s.cases[1]!.maskId;
  await openCase(page, id);
  const v0 = (await state(page)).baseVersion;
  await page.keyboard.press('b');
  for (const k of [4, 8]) {
    await page.evaluate((i) => (globalThis as unknown as { __viewer: V }).__viewer.showSlice('z', i), k);
    for (let y = 14; y <= 22; y += 2) await drag(page, [12, y], [22, y]);
  }
  await page.keyboard.press('Shift+I');
  await page.waitForSelector('.toast >> text=/between slices 5 and 9/');
  await saveAndWait(page, v0 + 1);
  // what this save added (the sphere test's voxels are already in v0)
  const [m0, m] = [await maskData(id, v0), await maskData(id, v0 + 1)];
  const area = (k: number) => {
    let n = 0;
    for (let i = k * G[0] * G[1]; i < (k + 1) * G[0] * G[1]; i++) n += m[i] && !m0[i] ? 1 : 0;
    return n;
  };
  const [a4, a8] = [area(4), area(8)];
  assert.ok(a4 > 50 && a8 > 50);
  for (const k of [5, 6, 7]) assert.ok(area(k) > 0.6 * Math.min(a4, a8), `slice ${k + 1} filled (${area(k)} vs ${a4}, ${a8})`);
  assert.equal(area(3) + area(9), 0, 'nothing outside the two slices');
});

test('claims: a second user sees who is on the case; the conflict dialog defaults to re-apply; the version list is complete', async () => {
  const id = s.cases[2]!.maskId;
  const a = await newPage('annotator');
  await openCase(a, id);
  // the claim is made after the first paint: wait until the server has it
  for (let t = 0; t < 100; t++) {
    const info = (await s.as('reviewer', { url: `/api/viewer/masks/${id}` })).json();
    if (info.claimedBy === 'annotator') break;
    await new Promise((r) => setTimeout(r, 100)); // polling the server, not waiting on the page
  }
  const b = await newPage('reviewer');
  await openCase(b, id);
  await b.waitForSelector('#claim-banner:not([hidden])');
  assert.match((await b.textContent('#claim-banner'))!, /annotator is working on this case/);
  // both edit version 1; a saves first, b's save conflicts
  const v = (await state(a)).baseVersion;
  await a.keyboard.press('b');
  await drag(a, [10, 10], [20, 10]);
  await saveAndWait(a, v + 1);
  await b.keyboard.press('b');
  await drag(b, [40, 40], [50, 40]);
  await b.click('#save');
  await b.waitForSelector('.dialog .compare');
  assert.equal(await b.evaluate(() => (globalThis as unknown as Doc).document.activeElement?.id), 'reapply', 'the safe action has the focus');
  await b.keyboard.press('Enter');
  await b.waitForFunction((n) => (globalThis as unknown as { __viewer: V }).__viewer.baseVersion === n, v + 1);
  assert.ok((await state(b)).editsSize > 0, 'my strokes are kept, now on their version');
  await saveAndWait(b, v + 2);
  await b.waitForFunction((n) => (globalThis as unknown as Doc).document.querySelectorAll('.versions li[data-version]').length === n, v + 2);
  const listed = await b.$$eval('.versions li[data-version]', (els) => els.map((e) => Number(e.getAttribute('data-version'))));
  assert.deepEqual(listed, Array.from({ length: v + 2 }, (_, i) => v + 2 - i), 'every version listed, newest first');
  await b.screenshot({ path: join(OUT, 'viewer-1280x800.png') });
});

test('layout at 1280×800: the 2D toolbar is one row inside the window; toasts leave the slice counter free', async () => {
  const page = await newPage('reviewer');
  await openCase(page, s.cases[0]!.maskId);
  const bar = (await page.locator('header.vbar').boundingBox())!;
  assert.ok(bar.height < 50, `toolbar ${bar.height.toFixed(0)} px high (one row)`);
  for (const item of await page.locator('header.vbar > *').all()) {
    const b = await item.boundingBox();
    if (b) assert.ok(b.x + b.width <= 1280 + 0.5, `a toolbar item ends at ${b.x + b.width}`);
  }
  await page.keyboard.press('w'); // a toast
  await page.waitForSelector('.toast');
  const t = (await page.locator('.toasts').boundingBox())!;
  const label = (await page.locator('.slice-label').boundingBox())!;
  const overlap = t.x < label.x + label.width && label.x < t.x + t.width && t.y < label.y + label.height && label.y < t.y + t.height;
  assert.ok(!overlap, 'the toast does not cover the slice counter');
  await page.screenshot({ path: join(OUT, 'viewer-2d-1280x800.png') });
});

/** Raw RGB of an element's screenshot. */
async function rgb(l: Locator, file: string) {
  const png = await l.screenshot({ path: join(OUT, file) });
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, w: info.width, h: info.height };
}

/** Column and row holding the most crosshair-coloured (cyan) pixels of a screenshot. */
function crossLines(img: { data: Buffer; w: number; h: number }) {
  const cols = new Array<number>(img.w).fill(0), rows = new Array<number>(img.h).fill(0);
  for (let y = 0; y < img.h; y++) for (let x = 0; x < img.w; x++) {
    const i = 3 * (x + img.w * y);
    if (img.data[i]! < 90 && img.data[i + 1]! > 150 && img.data[i + 2]! > 180) cols[x]!++, rows[y]!++;
  }
  const arg = (a: number[]) => a.indexOf(Math.max(...a));
  return { x: arg(cols), y: arg(rows), xCount: Math.max(...cols), yCount: Math.max(...rows) };
}

test('three views: a crosshair click in the axial view moves the coronal and sagittal slices and draws the crosshair there; the layout is remembered', async () => {
  const page = await newPage('viewer');
  const id = s.cases[3]!.maskId;
  await openCase(page, id);
  const vw = () => page.evaluate(() => { const v = (globalThis as unknown as { __viewer: V }).__viewer; return { layout: v.layout, crosshair: v.crosshair }; });
  assert.equal((await vw()).layout, 1, 'one view by default');
  assert.equal(await page.locator('.side-view:visible').count(), 0);
  await page.click('#layout-toggle');
  const cor = page.locator('.side-view[data-axis="y"]'), sag = page.locator('.side-view[data-axis="x"]');
  await page.waitForFunction(() => { const v = (globalThis as unknown as { __viewer: V }).__viewer; return v.sideShown('y') === 32 && v.sideShown('x') === 32; });
  assert.deepEqual((await vw()).crosshair, [32, 32, 12], 'the crosshair starts at the middle voxel');
  assert.equal(await cor.locator('.view-label').textContent(), 'coronal 33 / 64');
  assert.equal(await sag.locator('.view-label').textContent(), 'sagittal 33 / 64');
  const corBefore = await rgb(cor, 'layout-coronal-before.png');
  // the crosshair tool: click voxel (20, 40) of axial slice 13
  await page.keyboard.press('x');
  await clickAt(page, 20.5, 40.5);
  await page.waitForFunction(() => { const v = (globalThis as unknown as { __viewer: V }).__viewer; return v.sideShown('y') === 40 && v.sideShown('x') === 20; });
  await cor.locator('.view-label', { hasText: 'coronal 41 / 64' }).waitFor();
  assert.deepEqual((await vw()).crosshair, [20, 40, 12]);
  assert.equal(await sag.locator('.view-label').textContent(), 'sagittal 21 / 64');
  assert.equal(await page.locator('.canvas-box .slice-label, .slice-label').first().textContent(), 'axial 13 / 24', 'the axial view stays on its slice');
  // the coronal view draws another slice now (its pixels changed) …
  const corAfter = await rgb(cor, 'layout-coronal-after.png');
  let changed = 0;
  for (let i = 0; i < corAfter.data.length; i += 3) if (Math.abs(corAfter.data[i]! - corBefore.data[i]!) > 30) changed++;
  assert.ok(changed / (corAfter.w * corAfter.h) > 0.05, `coronal pixels changed: ${changed}`);
  // … and the crosshair's lines cross at the clicked voxel in both side views
  for (const [loc, axis, q, r, file] of [[cor, 'y', 20, 12, 'layout-coronal-after2.png'], [sag, 'x', 40, 12, 'layout-sagittal-after.png']] as const) {
    const img = await rgb(loc, file);
    const lines = crossLines(img);
    const box = (await loc.boundingBox())!;
    const c = (await page.evaluate(([a, x, y]) => (globalThis as unknown as { __viewer: V }).__viewer.sideToClient(a as string, x as number, y as number), [axis, q + 0.5, r + 0.5]))!;
    assert.ok(lines.xCount > img.h * 0.5 && lines.yCount > img.w * 0.5, `${axis}: both lines drawn (${lines.xCount}, ${lines.yCount})`);
    assert.ok(Math.abs(lines.x - (c.x - box.x)) <= 2, `${axis}: vertical line at ${lines.x}, voxel centre at ${c.x - box.x}`);
    assert.ok(Math.abs(lines.y - (c.y - box.y)) <= 2, `${axis}: horizontal line at ${lines.y}, voxel centre at ${c.y - box.y}`);
  }
  // a click in the sagittal view moves the axial view's slice (k) and the coronal one (j)
  const sc = (await page.evaluate(() => (globalThis as unknown as { __viewer: V }).__viewer.sideToClient('x', 10.5, 5.5)))!;
  await page.mouse.click(sc.x, sc.y);
  await page.waitForFunction(() => (globalThis as unknown as { __viewer: V }).__viewer.index === 5);
  assert.deepEqual((await vw()).crosshair, [20, 10, 5]);
  assert.equal(await cor.locator('.view-label').textContent(), 'coronal 11 / 64');
  // the layout is remembered in this browser
  await page.reload();
  await page.waitForFunction((mid) => {
    const g = globalThis as unknown as { __viewer?: V; __medmaskPerf: { samples: Record<string, number[]> } };
    return g.__viewer?.maskId === mid && (g.__medmaskPerf.samples.first_paint?.length ?? 0) > 0;
  }, id, { timeout: 30_000 });
  assert.equal((await vw()).layout, 3);
  await page.waitForSelector('.side-view[data-axis="y"] .cross-v:not([hidden])');
});

test('threshold brush: a stroke from inside the bright disc across its edge paints the disc only', async () => {
  const page = await newPage('annotator');
  const id = s.cases[4]!.maskId;
  await openCase(page, id);
  const v0 = (await state(page)).baseVersion;
  const before = await maskData(id, v0);
  await page.keyboard.press('t');
  await page.evaluate(() => {
    const d = (globalThis as unknown as { document: { querySelector(s: string): { value: string; dispatchEvent(e: unknown): void } } }).document;
    const el = d.querySelector('input[aria-label="brush size"]');
    el.value = '20';
    el.dispatchEvent(new (globalThis as unknown as { Event: new (t: string) => unknown }).Event('input'));
  });
  const radius = await page.evaluate(() => (globalThis as unknown as { __viewer: V }).__viewer.brushRadius());
  assert.equal(radius, 10);
  const from: [number, number] = [CX + 0.5, CY + 0.5], to: [number, number] = [CX + R + 20.5, CY + 0.5];
  await drag(page, from, to);
  await page.waitForFunction(() => (globalThis as unknown as { __viewer: V }).__viewer.editsSize > 0);
  assert.match((await page.locator('#fill-bounds').getAttribute('placeholder')) ?? '', /^\d+(\.\d+)?\.\.\d+(\.\d+)?$/, 'the range picked from the seed is shown');
  await saveAndWait(page, v0 + 1);
  const after = await maskData(id, v0 + 1);
  let painted = 0, outside = 0, expected = 0;
  for (let i = 0; i < after.length; i++) {
    if (after[i] !== before[i]) painted++, disc.has(i) || outside++;
    const x = i % D, y = Math.floor(i / D);
    const t = Math.max(0, Math.min(1, (x + 0.5 - from[0]) / (to[0] - from[0])));
    const inCapsule = Math.hypot(x + 0.5 - (from[0] + t * (to[0] - from[0])), y + 0.5 - from[1]) <= radius;
    if (inCapsule && disc.has(i)) expected++;
  }
  assert.equal(outside, 0, 'nothing painted outside the disc');
  assert.ok(painted >= 0.9 * expected && painted <= expected * 1.05, `${painted} painted, ${expected} in brush ∩ disc`);
});

test('login returns to the page asked for: /docs before login → login page → /docs; a foreign "next" lands on the queue', async () => {
  const c = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  contexts.push(c);
  const page = await c.newPage();
  const logIn = async () => {
    await page.waitForSelector('#username');
    await page.fill('#username', 'viewer');
    await page.fill('#password', passwordOf('viewer'));
    await page.click('#login');
  };
  await page.goto(`${s.url}/docs`);
  assert.match(page.url(), /\?next=%2Fdocs#\/login$/);
  await logIn();
  await page.waitForURL((u) => u.pathname.startsWith('/docs'));
  await page.waitForSelector('.swagger-ui');
  // an open-redirect attempt (a fresh browser): the login page refuses to leave the site
  const c2 = await browser.newContext();
  contexts.push(c2);
  const p2 = await c2.newPage();
  await p2.goto(`${s.url}/?next=${encodeURIComponent('//evil.example/docs')}#/login`);
  await p2.waitForSelector('#username');
  await p2.fill('#username', 'viewer');
  await p2.fill('#password', passwordOf('viewer'));
  await p2.click('#login');
  await p2.waitForSelector('tr.case-row');
  assert.equal(new URL(p2.url()).origin, new URL(s.url).origin);
});
