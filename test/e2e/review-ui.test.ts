// End-to-end: the review UI in Debian's Chromium (headless, software rendering) against a server
// this test starts on a free loopback port with a fresh data folder and seeded phantom cases.
// Screenshots are kept under test-out/e2e/ (git-ignored).
// Each test opens its own page and reads the versions it starts from, so any subset runs in any
// order (--test-name-pattern); tests wait for conditions, never for a time.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { abdomenCase, chestCase, launchChromium, login, startUiServer, type UiServer } from '../helpers/ui.js';

const OUT = new URL('../../test-out/e2e/', import.meta.url).pathname;
mkdirSync(OUT, { recursive: true });

let s: UiServer;
let browser: Browser;
const contexts: BrowserContext[] = [];
let chest: string;
let abdomen: string;
const SIZE = 256;

before(async () => {
  s = await startUiServer([chestCase(1, SIZE, 0.9), abdomenCase(2, 96, 0.8), chestCase(3, SIZE, 0.5)]);
  chest = s.cases[0]!.maskId;
  abdomen = s.cases[1]!.maskId;
  browser = await launchChromium();
});
afterEach(async () => {
  // each test's pages go with it
  for (const c of contexts.splice(0)) await c.close().catch(() => undefined);
});
after(async () => {
  await browser?.close();
  await s?.close();
});

/** Poll `check` until it returns a truthy value (a condition, not a time; fails after `timeout` ms). */
async function until<T>(check: () => Promise<T | false>, what: string, timeout = 30_000): Promise<T> {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The current version of a mask, from the API. */
const currentVersion = async (maskId: string): Promise<number> => (await s.as('viewer', { url: `/api/masks/${maskId}` })).json().currentVersion as number;

/** Unsaved edits the page keeps in IndexedDB. */
const pendingEdits = (page: Page) => page.evaluate(() => new Promise<number>((res) => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const r = (globalThis as any).indexedDB.open('medmask-review');
  r.onsuccess = () => {
    const q = r.result.transaction('pending').objectStore('pending').getAll();
    q.onsuccess = () => res(q.result.length as number);
  };
}));

async function newPage(): Promise<Page> {
  const c = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  contexts.push(c);
  const p = await c.newPage();
  p.on('pageerror', (e) => console.error('page error:', e.message));
  return p;
}

/** Pixel statistics of an element's screenshot. */
async function pixelStats(l: Locator, file: string) {
  const png = await l.screenshot({ path: join(OUT, file) });
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const n = info.width * info.height;
  let sum = 0, sum2 = 0, lit = 0, coloured = 0;
  const levels = new Set<number>();
  for (let i = 0; i < n; i++) {
    const r = data[3 * i]!, g = data[3 * i + 1]!, b = data[3 * i + 2]!;
    const y = 0.299 * r + 0.587 * g + 0.114 * b;
    sum += y;
    sum2 += y * y;
    if (y > 20) lit++;
    if (Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
    levels.add(Math.round(y));
  }
  const mean = sum / n;
  return { mean, std: Math.sqrt(sum2 / n - mean * mean), lit: lit / n, coloured: coloured / n, levels: levels.size };
}

/** A fresh page of `role`, logged in, with the case open. */
async function pageOn(role: string, maskId: string): Promise<Page> {
  const p = await newPage();
  await login(p, s.url, role);
  await openCase(p, maskId);
  return p;
}

async function openCase(page: Page, maskId: string): Promise<void> {
  type G = { __medmaskPerf?: { samples: Record<string, number[]> }; __viewer?: { maskId: string }; location: { hash: string } };
  const here = await page.evaluate(() => (globalThis as unknown as G).location.hash);
  if (here === `#/case/${maskId}`) {
    // already there (e.g. "next case" after a review): wait until it is shown
    await page.waitForFunction((id) => (globalThis as unknown as G).__viewer?.maskId === id, maskId, { timeout: 30_000 });
    return;
  }
  const before = await page.evaluate(() => (globalThis as unknown as G).__medmaskPerf?.samples.first_paint?.length ?? 0);
  await page.evaluate((id) => ((globalThis as unknown as G).location.hash = `#/case/${id}`), maskId);
  await page.waitForFunction((n) => ((globalThis as unknown as G).__medmaskPerf?.samples.first_paint?.length ?? 0) > n, before, { timeout: 30_000 });
}

type V = { baseVersion: number; editsSize: number; axis: string; index: number; sliceToClient(x: number, y: number): { x: number; y: number } | null; brushRadius(): number };

/** Drag the brush along slice points (few mouse positions: the path between them must be painted). */
async function stroke(page: Page, pts: [number, number][]): Promise<void> {
  const client = await page.evaluate((p) => p.map(([x, y]) => (globalThis as unknown as { __viewer: V }).__viewer.sliceToClient(x, y)!), pts);
  await page.mouse.move(client[0]!.x, client[0]!.y);
  await page.mouse.down();
  for (const c of client.slice(1)) await page.mouse.move(c.x, c.y, { steps: 2 });
  await page.mouse.up();
}

const viewerState = (page: Page) => page.evaluate(() => {
  const v = (globalThis as unknown as { __viewer: V }).__viewer;
  return { baseVersion: v.baseVersion, editsSize: v.editsSize, axis: v.axis, index: v.index, radius: v.brushRadius() };
});

async function maskData(version: number, maskId = chest): Promise<Uint8Array> {
  const r = await s.as('viewer', { url: `/api/masks/${maskId}/versions/${version}/data?format=raw` });
  assert.equal(r.statusCode, 200, r.body.slice(0, 200));
  return new Uint8Array(r.rawPayload);
}

function distToSegment(px: number, py: number, a: [number, number], b: [number, number]): number {
  const dx = b[0] - a[0], dy = b[1] - a[1];
  const L = dx * dx + dy * dy;
  const t = L ? Math.max(0, Math.min(1, ((px - a[0]) * dx + (py - a[1]) * dy) / L)) : 0;
  return Math.hypot(px - (a[0] + t * dx), py - (a[1] + t * dy));
}

/** Voxels that differ between two versions of the 2D case, as (x, y). */
function changed(a: Uint8Array, b: Uint8Array): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) out.push([i % SIZE, Math.floor(i / SIZE)]);
  return out;
}

function underStroke(px: [number, number][], path: [number, number][], r: number): boolean {
  return px.every(([x, y]) => path.slice(1).some((b, i) => distToSegment(x + 0.5, y + 0.5, path[i]!, b) <= r + 0.75));
}

test('log in, the queue is sorted by priority with counts, the top case opens and its image is really drawn', async () => {
  const reviewer = await newPage();
  await login(reviewer, s.url, 'reviewer');
  const prios = await reviewer.$$eval('tr.case-row .prio span', (els) => els.map((e) => Number(e.textContent)));
  assert.deepEqual(prios, [...prios].sort((a, b) => b - a));
  const statuses = await Promise.all(s.cases.map(async (c) => (await s.as('viewer', { url: `/api/masks/${c.maskId}` })).json().status as string));
  const open = statuses.filter((st) => st !== 'rejected' && st !== 'accepted').length;
  assert.equal(prios.length, open);
  assert.match((await reviewer.textContent('#count-open'))!, new RegExp(`^${open} open`));
  await reviewer.screenshot({ path: join(OUT, 'queue.png') });
  await reviewer.click('tr.case-row >> nth=0');
  await reviewer.waitForFunction(() => ((globalThis as unknown as { __medmaskPerf: { samples: Record<string, number[]> } }).__medmaskPerf.samples.first_paint?.length ?? 0) > 0, null, { timeout: 30_000 });
  assert.equal(await reviewer.evaluate(() => (globalThis as unknown as { __viewer: V & { maskId: string } }).__viewer.maskId), chest, 'the top case opened');
  const st = await pixelStats(reviewer.locator('.canvas-box canvas'), 'viewer-2d.png');
  assert.ok(st.lit > 0.3, `image covers the view (${st.lit})`);
  assert.ok(st.std > 25 && st.levels > 60, `a real image, not a flat fill (std ${st.std}, ${st.levels} grey levels)`);
  assert.ok(st.coloured > 0.002, `label and heat-map overlays drawn (${st.coloured})`);
  // overlays off → no colour left
  await reviewer.keyboard.press('l');
  await reviewer.keyboard.press('m');
  let plain = st;
  await until(async () => (plain = await pixelStats(reviewer.locator('.canvas-box canvas'), 'viewer-2d-plain.png')).coloured < st.coloured / 10, `toggles to hide the overlays (${plain.coloured} vs ${st.coloured})`);
  await reviewer.keyboard.press('l');
  await reviewer.keyboard.press('m');
  // the region list comes with the case's overlays, possibly after the first paint
  await reviewer.locator('.regions button').first().waitFor({ timeout: 30_000 });
  assert.ok((await reviewer.locator('.regions button').count()) >= 1, 'flagged regions listed');
  await reviewer.keyboard.press('?');
  await reviewer.waitForSelector('.dialog.help');
  assert.match((await reviewer.textContent('.dialog.help'))!, /Ctrl\+Z/);
  await reviewer.keyboard.press('Escape');
});

test('paint a stroke and save: the new version changes only voxels under the stroke, as a continuous band', async () => {
  const reviewer = await pageOn('reviewer', chest);
  const v0 = (await viewerState(reviewer)).baseVersion;
  assert.equal(v0, await currentVersion(chest));
  const path: [number, number][] = [[30.5, 225.5], [90.5, 232.5], [150.5, 228.5]];
  await stroke(reviewer, path);
  const st = await viewerState(reviewer);
  assert.ok(st.editsSize > 0, 'the stroke changed voxels');
  await reviewer.screenshot({ path: join(OUT, 'viewer-2d-stroke.png') });
  await reviewer.click('#save');
  await reviewer.waitForFunction((v) => (globalThis as unknown as { __viewer: V }).__viewer.baseVersion === v + 1, v0, { timeout: 15_000 });
  const m = (await s.as('viewer', { url: `/api/masks/${chest}` })).json();
  assert.equal(m.currentVersion, v0 + 1);
  assert.equal(m.versions[0].author, 'reviewer');
  const diff = changed(await maskData(v0), await maskData(v0 + 1));
  assert.equal(diff.length, st.editsSize);
  assert.ok(underStroke(diff, path, st.radius), 'every changed voxel lies under the stroke');
  // a band, not discs at the three mouse positions: most of the capsule area is painted
  const len = Math.hypot(60, 7) + Math.hypot(60, 4);
  assert.ok(diff.length > 0.8 * len * 2 * st.radius, `${diff.length} voxels painted along ${len.toFixed(0)} px`);
});

test('a stale save from a second browser gets the conflict dialog with both versions; keep mine wins', async () => {
  const reviewer = await pageOn('reviewer', chest);
  const other = await pageOn('annotator', chest);
  const v = await currentVersion(chest);
  const drafts = (await s.as('viewer', { url: `/api/masks/${chest}` })).json().drafts as number;
  assert.equal((await viewerState(other)).baseVersion, v);
  // the reviewer saves version v + 1 meanwhile
  await stroke(reviewer, [[40.5, 30.5], [80.5, 30.5]]);
  await reviewer.click('#save');
  await reviewer.waitForFunction((b) => (globalThis as unknown as { __viewer: V }).__viewer.baseVersion === b + 1, v, { timeout: 15_000 });
  // the annotator, still on version v, paints and saves
  const mine: [number, number][] = [[200.5, 40.5], [230.5, 60.5]];
  await stroke(other, mine);
  const r = (await viewerState(other)).radius;
  await other.click('#save');
  await other.waitForSelector('.dialog .compare', { timeout: 15_000 });
  assert.match((await other.textContent('.dialog h2'))!, new RegExp(`version ${v + 1} is newer`));
  // both canvases drawn: wait until each shows an image
  const theirs = await until(async () => { const t = await pixelStats(other.locator('#theirs canvas'), 'conflict-theirs.png'); return t.std > 20 && t; }, 'the newer version to be drawn');
  const yours = await until(async () => { const t = await pixelStats(other.locator('#mine canvas'), 'conflict-mine.png'); return t.std > 20 && t; }, 'my version to be drawn');
  assert.ok(theirs.std > 20 && yours.std > 20, 'both versions drawn side by side');
  await other.screenshot({ path: join(OUT, 'conflict-dialog.png') });
  assert.equal((await s.as('viewer', { url: `/api/masks/${chest}` })).json().drafts, drafts + 1, 'the refused edit is kept as a draft');
  await other.click('#keep-mine');
  await other.waitForFunction((b) => (globalThis as unknown as { __viewer: V }).__viewer.baseVersion === b + 2, v, { timeout: 15_000 });
  const d = changed(await maskData(v), await maskData(v + 2));
  assert.ok(d.length > 0 && underStroke(d, mine, r), `version v+2 is version v plus only the annotator's stroke: ${d.length} changed, outside: ${JSON.stringify(d.filter((q) => !underStroke([q], mine, r)).slice(0, 8))}, r=${r}`);
});

test('after a conflict, "re-apply my strokes on theirs" keeps the stroke on the newer version and saves it', async () => {
  const reviewer = await pageOn('reviewer', chest);
  const v = (await viewerState(reviewer)).baseVersion;
  // the annotator saves version v + 1 meanwhile (through the API: the labels of v, one rectangle more)
  const labels = await maskData(v);
  for (let y = 60; y < 70; y++) for (let x = 200; x < 220; x++) labels[x + SIZE * y] = 1;
  const saved = await s.as('annotator', { method: 'POST', url: `/api/masks/${chest}/versions`, payload: { baseVersion: v, labels: Buffer.from(labels).toString('base64'), note: 'newer' } });
  assert.equal(saved.statusCode, 201, saved.body.slice(0, 200));
  const path: [number, number][] = [[20.5, 120.5], [60.5, 140.5]];
  await stroke(reviewer, path);
  const r = (await viewerState(reviewer)).radius;
  await reviewer.click('#save');
  await reviewer.waitForSelector('#reapply', { timeout: 15_000 });
  await reviewer.click('#reapply');
  await reviewer.waitForFunction((b) => (globalThis as unknown as { __viewer: V }).__viewer.baseVersion === b + 1, v, { timeout: 15_000 });
  assert.ok((await viewerState(reviewer)).editsSize > 0, 'the stroke is still there, now on version v + 1');
  await reviewer.click('#save');
  await reviewer.waitForFunction((b) => (globalThis as unknown as { __viewer: V }).__viewer.baseVersion === b + 2, v, { timeout: 15_000 });
  const d = changed(await maskData(v + 1), await maskData(v + 2));
  assert.ok(d.length > 0 && underStroke(d, path, r), 'version v+2 is version v+1 plus the re-applied stroke');
});

test('unsaved edits survive leaving the case and are restored when it is opened again', async () => {
  const reviewer = await pageOn('reviewer', chest);
  const v = (await viewerState(reviewer)).baseVersion;
  await stroke(reviewer, [[180.5, 150.5], [200.5, 160.5]]);
  const n = (await viewerState(reviewer)).editsSize;
  assert.ok(n > 0);
  await until(async () => (await pendingEdits(reviewer)) === 1, 'the edits to be kept in IndexedDB (debounced)');
  await reviewer.keyboard.press('Escape');
  await reviewer.waitForSelector('tr.case-row');
  assert.ok((await reviewer.locator('tr.case-row .badge.warn').count()) >= 1, 'the queue marks the case');
  await openCase(reviewer, chest);
  assert.equal((await viewerState(reviewer)).editsSize, n, 'restored');
  assert.match((await reviewer.textContent('.toasts'))!, /Restored/);
  await reviewer.keyboard.press('Control+z'); // the restored edits are one undoable step
  assert.equal((await viewerState(reviewer)).editsSize, 0, 'undo takes the restored edits back');
  await reviewer.keyboard.press('Control+Shift+z');
  assert.equal((await viewerState(reviewer)).editsSize, n, 'redo brings them back');
  await reviewer.click('#save');
  await reviewer.waitForFunction((b) => (globalThis as unknown as { __viewer: V }).__viewer.baseVersion === b + 1, v, { timeout: 15_000 });
});

test('the viewer role sees a read-only viewer and cannot save', async () => {
  const v = await newPage();
  await login(v, s.url, 'viewer');
  await openCase(v, chest);
  assert.equal(await v.locator('#save').count(), 0, 'no save button');
  assert.match((await v.textContent('.readonly'))!, /Read-only \(viewer role\)/);
  await stroke(v, [[20.5, 20.5], [60.5, 60.5]]);
  assert.equal((await viewerState(v)).editsSize, 0, 'the mouse does not paint');
  const status = await v.evaluate(async (id) => {
    const me = (await (await fetch('/api/auth/me')).json()) as { csrfToken: string };
    const r = await fetch(`/api/viewer/masks/${id}/edits`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrfToken }, body: JSON.stringify({ baseVersion: 4, planes: [{ z: 0, runs: [0, 5, 1] }] }) });
    return r.status;
  }, chest);
  assert.equal(status, 403);
});

/** A reviewer's page on the abdomen case, axial, at the slice of the second flagged region. */
async function abdomenAtRegion(): Promise<{ reviewer: Page; target: number }> {
  const reviewer = await pageOn('reviewer', abdomen);
  await reviewer.keyboard.press('a');
  await reviewer.waitForFunction(() => (globalThis as unknown as { __viewer: V }).__viewer.axis === 'z');
  await reviewer.waitForSelector('.regions button >> nth=1');
  const target = Number(((await reviewer.textContent('.regions button >> nth=1'))!.match(/axial (\d+)/) ?? [])[1]) - 1; // shown 1-based
  await reviewer.click('.regions button >> nth=1');
  await reviewer.waitForFunction((z) => (globalThis as unknown as { __viewer: V }).__viewer.index === z, target, { timeout: 10_000 });
  return { reviewer, target };
}

test('volume: axial, coronal and sagittal views with a CT window; flagged regions jump to their slice', async () => {
  const reviewer = await pageOn('reviewer', abdomen);
  const ax = await pixelStats(reviewer.locator('.canvas-box canvas'), 'viewer-ct-axial.png');
  assert.ok(ax.std > 15 && ax.coloured > 0.01, `CT slice with organ labels (std ${ax.std}, coloured ${ax.coloured})`);
  await reviewer.keyboard.press('c');
  await reviewer.waitForFunction(() => (globalThis as unknown as { __viewer: V }).__viewer.axis === 'y');
  await reviewer.waitForFunction(() => /coronal/.test((globalThis as unknown as { document: { querySelector(s: string): { textContent: string } | null } }).document.querySelector('.slice-label')?.textContent ?? ''));
  const cor = await until(async () => { const c = await pixelStats(reviewer.locator('.canvas-box canvas'), 'viewer-ct-coronal.png'); return c.std > 15 && c; }, 'the coronal view to be drawn');
  assert.ok(cor.std > 15, 'coronal drawn');
  await reviewer.keyboard.press('s');
  await reviewer.waitForFunction(() => (globalThis as unknown as { __viewer: V }).__viewer.axis === 'x');
  await reviewer.keyboard.press('a');
  await reviewer.keyboard.press('w'); // next window preset
  await reviewer.waitForSelector('.regions button');
  const target = Number(((await reviewer.textContent('.regions button >> nth=1'))!.match(/axial (\d+)/) ?? [])[1]) - 1; // shown 1-based
  await reviewer.click('.regions button >> nth=1');
  await reviewer.waitForFunction((z) => (globalThis as unknown as { __viewer: V }).__viewer.index === z, target, { timeout: 10_000 });
  await reviewer.keyboard.press('ArrowDown');
  await reviewer.waitForFunction((z) => (globalThis as unknown as { __viewer: V }).__viewer.index === z + 1, target);
  await reviewer.screenshot({ path: join(OUT, 'viewer-ct.png') });
});

test('volume: a fill through ±5 slices changes exactly the connected organ region; undo and redo', async () => {
  const { reviewer } = await abdomenAtRegion();
  const st = await viewerState(reviewer);
  assert.equal(st.axis, 'z');
  // find a liver voxel (label 5) on this slice through the viewer API
  const res = await s.as('viewer', { url: `/api/viewer/masks/${abdomen}/label-planes?axis=z&from=${st.index}&to=${st.index}` });
  const plane = new Uint8Array(res.rawPayload);
  const w = Number(res.headers['x-width']);
  const p = plane.indexOf(5);
  assert.ok(p >= 0, 'the slice shows liver');
  await reviewer.click('.legend-item[data-label="9"]'); // pancreas
  await reviewer.keyboard.press('g');
  const c = await reviewer.evaluate(([x, y]) => (globalThis as unknown as { __viewer: V }).__viewer.sliceToClient(x!, y!)!, [(p % w) + 0.5, Math.floor(p / w) + 0.5]);
  await reviewer.mouse.click(c.x, c.y);
  await reviewer.waitForFunction(() => (globalThis as unknown as { __viewer: V }).__viewer.editsSize > 0, null, { timeout: 15_000 });
  // independent reference: the 6-connected liver region around the click within slices ±5
  const [z0, z1] = [Math.max(0, st.index - 5), st.index + 5];
  const slab = new Uint8Array((await s.as('viewer', { url: `/api/viewer/masks/${abdomen}/label-planes?axis=z&from=${z0}&to=${z1}` })).rawPayload);
  const h = plane.length / w, n = w * h;
  const seen = new Uint8Array(slab.length);
  const queue = [(st.index - z0) * n + p];
  seen[queue[0]!] = 1;
  for (let q = 0; q < queue.length; q++) {
    const v = queue[q]!, x = v % w, y = Math.floor(v / w) % h, z = Math.floor(v / n);
    for (const [dx, dy, dz] of [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]]) {
      const X = x + dx!, Y = y + dy!, Z = z + dz!;
      if (X < 0 || Y < 0 || Z < 0 || X >= w || Y >= h || Z > z1 - z0) continue;
      const u = X + w * Y + n * Z;
      if (!seen[u] && slab[u] === 5) (seen[u] = 1), queue.push(u);
    }
  }
  assert.equal((await viewerState(reviewer)).editsSize, queue.length, 'the fill changed exactly the connected organ region in the slice range');
  const slices = Number(/in (\d+) slice/.exec((await reviewer.textContent('.edits-status'))!)![1]);
  assert.ok(slices > 1 && slices <= 11, `${slices} slices`);
  await reviewer.screenshot({ path: join(OUT, 'viewer-ct-fill.png') });
  await reviewer.keyboard.press('Control+z');
  assert.equal((await viewerState(reviewer)).editsSize, 0, 'undone');
  await reviewer.keyboard.press('Control+Shift+z');
  assert.equal((await viewerState(reviewer)).editsSize, queue.length, 'redone');
  await reviewer.keyboard.press('Control+z');
  await reviewer.keyboard.press('b');
});

test('the 3D view is off under a software WebGL renderer, and works when forced on', async () => {
  const reviewer = await pageOn('reviewer', abdomen);
  const gpu = await reviewer.evaluate(() => (globalThis as unknown as { __viewer: { gpu: { hardware: boolean; renderer: string; offer3d: boolean } } }).__viewer.gpu);
  assert.equal(gpu.hardware, false, `software rendering here (${gpu.renderer})`);
  assert.equal(await reviewer.locator('.btn-3d').count(), 0, 'no 3D button');
  // forced on (localStorage), a fresh page offers it; NiiVue then draws through SwiftShader
  const p = await newPage();
  await login(p, s.url, 'reviewer');
  await p.evaluate(() => (globalThis as unknown as { localStorage: { setItem(k: string, v: string): void } }).localStorage.setItem('medmask-3d', 'on'));
  await p.reload();
  await p.waitForSelector('tr.case-row');
  await openCase(p, abdomen);
  await p.click('.btn-3d');
  await p.waitForFunction(() => /Version \d|could not start/.test((globalThis as unknown as { document: { querySelector(s: string): { textContent: string } | null } }).document.querySelector('.view3d p')?.textContent ?? ''), null, { timeout: 120_000 });
  const status = (await p.textContent('.view3d p'))!;
  assert.match(status, /^Version 1/, status);
  const st = await until(async () => { const t = await pixelStats(p.locator('#nv-canvas'), 'viewer-3d-niivue.png'); return t.lit > 0.02 && t.std > 5 && t; }, 'NiiVue to draw the volume');
  assert.ok(st.lit > 0.02 && st.std > 5, `NiiVue drew the volume (lit ${st.lit}, std ${st.std})`);
  await p.keyboard.press('Escape');
  await p.context().close();
});

test('reject needs a reason; the review records it with the time on case', async () => {
  const reviewer = await pageOn('reviewer', abdomen);
  await reviewer.click('#reject');
  await reviewer.click('#confirm-reject');
  assert.match((await reviewer.textContent('.dialog .error-text'))!, /reason/);
  await reviewer.fill('#reject-reason', 'spleen and kidneys missing on the lower slices');
  await reviewer.click('#confirm-reject');
  await reviewer.waitForFunction((id) => (globalThis as unknown as { __viewer?: { maskId: string } }).__viewer?.maskId !== id, abdomen, { timeout: 15_000 });
  const m = (await s.as('viewer', { url: `/api/masks/${abdomen}` })).json();
  assert.equal(m.status, 'rejected');
  assert.equal(m.reviews[0].reason, 'spleen and kidneys missing on the lower slices');
  assert.equal(m.reviews[0].reviewer, 'reviewer');
  assert.ok(m.reviews[0].timeSpentMs > 0, 'time on case recorded');
});

test('a save while the server is unreachable keeps the stroke, shows the banner, and succeeds when the server is back', async () => {
  const reviewer = await pageOn('reviewer', chest);
  const v0 = (await viewerState(reviewer)).baseVersion;
  await stroke(reviewer, [[100.5, 100.5], [120.5, 110.5]]);
  const edits = (await viewerState(reviewer)).editsSize;
  assert.ok(edits > 0);
  await reviewer.context().setOffline(true);
  await reviewer.click('#save');
  await reviewer.waitForSelector('#banner:not([hidden])', { timeout: 10_000 });
  assert.match((await reviewer.textContent('#banner'))!, /cannot be reached|offline/);
  assert.equal((await viewerState(reviewer)).editsSize, edits, 'nothing lost');
  assert.equal(await pendingEdits(reviewer), 1, 'the unsaved edits are in IndexedDB');
  await reviewer.screenshot({ path: join(OUT, 'offline-banner.png') });
  await reviewer.context().setOffline(false);
  await reviewer.waitForFunction((v) => (globalThis as unknown as { __viewer: V }).__viewer.baseVersion === v + 1, v0, { timeout: 30_000 }).catch(async (e) => {
    throw new Error(`${(e as Error).message}; toasts: ${JSON.stringify(await reviewer.$$eval('.toast', (t) => t.map((x) => x.textContent)))}; state ${JSON.stringify(await viewerState(reviewer))}`);
  });
  await reviewer.waitForSelector('#banner[hidden]', { state: 'attached', timeout: 10_000 });
  assert.equal((await s.as('viewer', { url: `/api/masks/${chest}` })).json().currentVersion, v0 + 1);
});

test('a draft listed under Drafts loads into the editor as undoable edits, and Save makes it the new version voxel for voxel; the viewer role cannot load it', async () => {
  const third = s.cases[2]!.maskId;
  assert.equal((await s.as('viewer', { url: `/api/masks/${third}` })).json().currentVersion, 1);
  const v1 = await maskData(1, third);
  // version 2 by the annotator, then a stale save on version 1 (another rectangle, part of the
  // candidate erased): refused with 409 and kept as a draft
  const v2 = v1.slice();
  for (let y = 200; y < 230; y++) for (let x = 200; x < 240; x++) v2[x + SIZE * y] = 1;
  const put = (labels: Uint8Array, note: string) => s.as('annotator', { method: 'POST', url: `/api/masks/${third}/versions`, payload: { baseVersion: 1, labels: Buffer.from(labels).toString('base64'), note } });
  assert.equal((await put(v2, 'rectangle bottom right')).statusCode, 201);
  const want = v1.slice();
  for (let y = 20; y < 50; y++) for (let x = 30; x < 90; x++) want[x + SIZE * y] = 1;
  let erased = 0;
  for (let i = 0; i < want.length && erased < 200; i++) if (want[i] && Math.floor(i / SIZE) >= 50) (want[i] = 0), erased++;
  const stale = await put(want, 'draft from the e2e test');
  assert.equal(stale.statusCode, 409, stale.body.slice(0, 200));
  const draftId = stale.json().details.draftId as string;
  const raw = await s.as('viewer', { url: `/api/masks/${third}/drafts/${draftId}/data?format=raw` });
  assert.deepEqual(new Uint8Array(raw.rawPayload), want, 'the draft holds the refused labels');
  assert.match(String((await s.as('viewer', { url: `/api/masks/${third}/drafts/${draftId}/data` })).headers['content-type']), /gzip/, 'the default answer is still .nii.gz');
  const expectedEdits = want.reduce((n, x, i) => n + (x !== v2[i] ? 1 : 0), 0);
  assert.ok(expectedEdits > 1000);

  const p = await newPage();
  await login(p, s.url, 'reviewer');
  await openCase(p, third);
  await p.waitForSelector('#drafts li', { timeout: 15_000 });
  assert.equal(await p.locator('#drafts li').count(), 1);
  const item = (await p.textContent('#drafts li'))!;
  assert.match(item, /annotator · .* · on v1 \(v2 was current\)/, item);
  assert.match(item, /draft from the e2e test/);
  assert.equal((await viewerState(p)).baseVersion, 2);
  // by keyboard: focus the button and press Enter
  const load = p.getByRole('button', { name: /^Load into editor/ });
  await load.focus();
  await p.keyboard.press('Enter');
  await p.waitForFunction(() => (globalThis as unknown as { __viewer: V }).__viewer.editsSize > 0, null, { timeout: 15_000 });
  assert.equal((await viewerState(p)).editsSize, expectedEdits, 'every voxel where the draft differs from version 2 is an unsaved edit');
  assert.match((await p.textContent('.edits-status'))!, /1 undo step/);
  await p.screenshot({ path: join(OUT, 'draft-loaded.png') });
  await p.keyboard.press('Control+z');
  assert.equal((await viewerState(p)).editsSize, 0, 'undone');
  await p.keyboard.press('Control+Shift+z');
  assert.equal((await viewerState(p)).editsSize, expectedEdits, 'redone');
  await p.click('#save');
  await p.waitForFunction(() => (globalThis as unknown as { __viewer: V }).__viewer.baseVersion === 3, null, { timeout: 15_000 });
  const m = (await s.as('viewer', { url: `/api/masks/${third}` })).json();
  assert.equal(m.currentVersion, 3);
  assert.equal(m.versions[0].author, 'reviewer');
  assert.equal(m.versions[0].origin, 'human');
  assert.equal(m.versions[0].parentVersion, 2, 'saved on top of the version that was current');
  const v3 = await maskData(3, third);
  assert.equal(changed(v3, want).length, 0, 'version 3 equals the draft voxel for voxel');
  assert.deepEqual(v3, want);

  // the viewer role: the drafts are listed, but there is nothing to load them with; a case with
  // no drafts has no Drafts section
  const v = await newPage();
  await login(v, s.url, 'viewer');
  let listed = v.waitForResponse((r) => r.url().endsWith(`/api/masks/${abdomen}/drafts`));
  await openCase(v, abdomen);
  await listed;
  assert.equal(await v.locator('.drafts-section').isHidden(), true, 'no drafts: no section');
  listed = v.waitForResponse((r) => r.url().endsWith(`/api/masks/${third}/drafts`));
  await openCase(v, third);
  await listed;
  await v.waitForSelector('#drafts li');
  assert.equal(await v.locator('.drafts-section').isVisible(), true);
  assert.equal(await v.getByRole('button', { name: /Load into editor/ }).count(), 0, 'no "Load into editor" for the viewer role');
});
