/**
 * Review UI in headless Debian Chromium with software rendering (the harder case: no GPU), against
 * a server started here on loopback with seeded cases: ten 512² chest phantoms and a
 * 512×512×203 abdominal CT phantom with its 9-organ labels and an attention map.
 *
 * - first_paint_2d_ms: click a 2D case in the queue → first slice drawn (server cold for that image)
 * - first_paint_ct_ms: the same for the CT (server process cold; the slice files an upload makes are
 *   on disk, as after a restart — the setup makes them once for the seeded rows)
 * - slice_change_ms: ↓ key → next CT slice drawn, neighbours prefetched, the next key 60 ms after the slice is drawn
 * - brush_ms: mouse move → brush pixels updated on the CT slice (event time stamp → after the blit)
 * - save_ms: save of a one-slice edit of the CT (request → new version acknowledged)
 * - js_heap_after_10_cases_mib: JS heap after opening ten cases one after another (after a GC)
 * - first_paint_2d_loaded_ms, first_paint_ct_loaded_ms, slice_change_p95_loaded_ms: the same while
 *   another process keeps both cores busy (two spinning child processes)
 * - slice_during_job_p95_ms: CT slice requests (fetch → bytes in the page) while an atlas job runs
 *   in the server's process (in-process queue: the job shares the server's event loop unless the
 *   queue runs it elsewhere)
 *
 * Each case starts its own server (on a fresh copy of the seeded data) and browser (fresh caches);
 * the in-page figures come from the UI's own timings (`window.__medmaskPerf`, the same ones the e2e tests read).
 * @module
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { abdomenPhantom } from '../src/core/phantom/abdomen.js';
import { createServer, createUser } from '../src/server/index.js';
import { FsBlobStore, openStore } from '../src/store/index.js';
import { InProcessQueue } from '../src/queue/index.js';
import { abdomenCase, buildWebUi, chestCase, launchChromium, passwordOf } from '../test/helpers/ui.js';
import { TEST_SCRYPT } from '../test/helpers/server.js';
import { seedCases } from '../test/helpers/viewer-seed.js';
import { VolumeSlices } from '../src/server/volume-slices.js';
import { defineBenchmark, type CaseResult } from './run.js';

interface State {
  dataDir: string;
  figuresDir: string;
  ct: { maskId: string; shape: number[] };
  chest: string[];
  size: number;
}

const DATA_VERSION = 4;

async function seed(dir: string, size: number, nz: number | null): Promise<{ ct: State['ct']; chest: string[] }> {
  const store = await openStore(join(dir, 'medmask.sqlite'));
  const blobs = new FsBlobStore(join(dir, 'blobs'), { fsync: false });
  try {
    await createUser({ store, settings: { scrypt: TEST_SCRYPT } as never }, { username: 'reviewer', password: passwordOf('reviewer'), role: 'reviewer' });
    const chestCases = Array.from({ length: 10 }, (_, i) => chestCase(100 + i, size, 0.9 - i * 0.02));
    const chest = await seedCases(store, blobs, chestCases, { project: 'bench', dataset: 'chest' });
    // The CT: kits seed 2 at 512 in plane has 203 slices; every organ labelled (the 9-label overlay),
    // attention where the source's partial labels miss organs.
    const p = nz === null ? abdomenCase(2, size, 1) : (() => {
      const ph = abdomenPhantom({ seed: 2, size, source: 'kits' });
      const att = new Uint8Array(ph.truth.data.length);
      for (let i = 0; i < att.length; i++) att[i] = ph.truth.data[i] !== ph.partial.data[i] ? 200 : 0;
      return { name: `ct-${size}.nii.gz`, volume: ph.image, labels: ph.truth.data, target: 'organs', priority: 1, attention: att };
    })();
    const [ct] = await seedCases(store, blobs, [p], { project: 'bench', dataset: 'ct' });
    return { ct: { maskId: ct!.maskId, shape: [...p.volume.shape] }, chest: chest.map((c) => c.maskId) };
  } finally {
    await store.close();
  }
}

/**
 * The slice files an upload (or the job that wrote a version) makes, for every seeded image and
 * label version (the seed writes rows directly, as no server saw it), made once per data folder.
 */
async function sliceFiles(dir: string): Promise<void> {
  const done = join(dir, 'slices', 'prepared.json');
  if (existsSync(done)) return;
  const store = await openStore(join(dir, 'medmask.sqlite'));
  const blobs = new FsBlobStore(join(dir, 'blobs'), { fsync: false });
  const slices = new VolumeSlices(join(dir, 'slices'));
  try {
    const hashes = [
      ...(await store.db.selectFrom('images').select('blob').execute()).map((r) => r.blob),
      ...(await store.db.selectFrom('mask_versions').select('blob').execute()).map((r) => r.blob),
    ];
    for (const h of hashes) {
      await slices.prepare(h, () => blobs.get(h));
      await slices.settled(h);
    }
    writeFileSync(done, JSON.stringify({ volumes: hashes.length }));
  } finally {
    await slices.close();
    await store.close();
  }
}

/** A server on the seeded data folder, a browser, a logged-in page. */
async function session<T>(state: State, fn: (page: Page, url: string) => Promise<T>): Promise<T> {
  const tmp = mkdtempSync(join(tmpdir(), 'medmask-ui-bench-'));
  // every case starts from the seeded data as made (saves of an earlier case or run are not seen)
  const data = join(tmp, 'data');
  // the slice files as hard links (they are only ever replaced by a rename, never written in place)
  cpSync(state.dataDir, data, { recursive: true, filter: (src) => !src.startsWith(join(state.dataDir, 'slices')) });
  if (existsSync(join(state.dataDir, 'slices'))) execFileSync('cp', ['-al', join(state.dataDir, 'slices'), join(data, 'slices')]);
  const store = await openStore(join(data, 'medmask.sqlite'));
  // an admin registers the demo models the atlas job names (jobs never open a path on the server)
  await createUser({ store, settings: { scrypt: TEST_SCRYPT } as never }, { username: 'admin', password: passwordOf('admin'), role: 'admin' });
  const blobs = new FsBlobStore(join(data, 'blobs'), { fsync: false });
  const queue = new InProcessQueue();
  const app = await createServer({ store, blobs, queue, workDir: join(tmp, 'work'), settings: { tmpDir: join(tmp, 'tmp'), sliceDir: join(data, 'slices'), scrypt: TEST_SCRYPT, maxUploadBytes: 512 * 2 ** 20 } });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    await page.goto(url);
    await page.fill('#username', 'reviewer');
    await page.fill('#password', passwordOf('reviewer'));
    await page.click('#login');
    await page.waitForSelector('tr.case-row');
    return await fn(page, url);
  } finally {
    await browser.close();
    await queue.close(1000);
    await app.close();
    await store.close();
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Run `fn` while two child processes keep both cores busy (the "loaded" figures). */
async function underLoad<T>(fn: () => Promise<T>): Promise<T> {
  const spinners: ChildProcess[] = [0, 1].map(() => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  try {
    await new Promise((r) => setTimeout(r, 300)); // let them reach full speed
    return await fn();
  } finally {
    for (const c of spinners) c.kill('SIGKILL');
  }
}

type Perf = { samples: Record<string, number[]> };

/** One request of the page as the browser saw it: ms from `t0` (the click) to sent, first byte and last byte. */
interface Traced {
  path: string;
  sent: number;
  firstByte: number;
  done: number;
}

/**
 * Record the page's API requests from now on (where the time of a first paint goes: the server's
 * share is first byte − sent). @returns a function giving the requests, times relative to `t0`
 */
function traceRequests(page: Page): (t0: number) => Traced[] {
  const out: { path: string; start: number; t: ReturnType<import('playwright-core').Request['timing']> }[] = [];
  page.on('requestfinished', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/api/')) out.push({ path: u.pathname.replace(/[0-9a-f-]{36}/g, ':id') + u.search, start: r.timing().startTime, t: r.timing() });
  });
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return (t0) => out.filter((o) => o.start >= t0 - 5).map((o) => ({ path: o.path, sent: r1(o.start - t0 + o.t.requestStart), firstByte: r1(o.start - t0 + o.t.responseStart), done: r1(o.start - t0 + o.t.responseEnd) }));
}

/** Wall-clock time in the page (ms since the epoch, as request timings are). */
const pageNow = (page: Page) => page.evaluate(() => Date.now());
const samplesOf = (page: Page, name: string) => page.evaluate((n) => [...((globalThis as unknown as { __medmaskPerf: Perf }).__medmaskPerf.samples[n] ?? [])], name);

async function openFromQueue(page: Page, maskId: string): Promise<number> {
  await page.evaluate(() => ((globalThis as unknown as { location: { hash: string } }).location.hash = '#/queue'));
  // the queue defaults to the data set of the case opened last: list them all (CT and chest cases alternate)
  // (the data sets arrive after the list: the remembered one is selected then, so wait for them)
  const ds = page.locator('#f-dataset');
  await ds.waitFor();
  await page.waitForFunction(() => ((globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll('#f-dataset option').length > 1), null, { timeout: 120_000 });
  if ((await ds.inputValue()) !== '') await ds.selectOption('');
  await page.waitForSelector(`tr.case-row[data-mask="${maskId}"]`, { timeout: 120_000 });
  const n = (await samplesOf(page, 'first_paint')).length;
  await page.click(`tr.case-row[data-mask="${maskId}"]`);
  await page.waitForFunction((k) => ((globalThis as unknown as { __medmaskPerf: Perf }).__medmaskPerf.samples.first_paint?.length ?? 0) > k, n, { timeout: 300_000 });
  return (await samplesOf(page, 'first_paint')).at(-1)!;
}

async function stroke(page: Page, from: [number, number], to: [number, number], moves: number): Promise<void> {
  const [a, b] = await page.evaluate(([p, q]) => {
    const v = (globalThis as unknown as { __viewer: { sliceToClient(x: number, y: number): { x: number; y: number } } }).__viewer;
    return [v.sliceToClient(p![0]!, p![1]!), v.sliceToClient(q![0]!, q![1]!)];
  }, [from, to]);
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  await page.mouse.move(b.x, b.y, { steps: moves });
  await page.mouse.up();
}

function record(state: State, name: string, figures: Record<string, unknown>): void {
  mkdirSync(state.figuresDir, { recursive: true });
  writeFileSync(join(state.figuresDir, `${name}.json`), JSON.stringify(figures));
}

/** `npm run bench -- ui --only first_paint_ct,save`: only those cases (the baseline always runs). */
const only = process.env.MEDMASK_BENCH_ONLY?.split(',');

/** A case whose samples are measured in one session; each timed repetition returns the next sample. */
function sampled(name: string, reps: number, measure: (s: State) => Promise<number[]>, baseline = false) {
  let samples: number[] | null = null;
  return {
    name,
    baseline,
    skip: () => (only && !only.includes(name) ? `--only ${only.join(',')}` : undefined),
    repetitions: reps,
    warmup: false,
    async run(ctx: { state: State }) {
      // a case that fails records why and yields no samples; the other cases still run
      samples ??= await measure(ctx.state).catch((e: unknown) => {
        record(ctx.state, `${name}.error`, { error: e instanceof Error ? e.message.split('\n')[0] : String(e) });
        return [];
      });
      // the runner's table needs a number: -1 marks a failed case (its error is in the summary)
      return { elapsedMs: samples.shift() ?? -1 };
    },
  };
}

/**
 * 30 × ↓ through the CT at reading pace: each key once the previous slice is drawn plus 60 ms,
 * after the neighbours of the first slice were prefetched (a condition, not a fixed wait: on a
 * loaded machine the server may still be building the volume's slice files). The UI's
 * slice-change times (key event → slice drawn).
 */
async function sliceChanges(page: Page, s: State, name: string): Promise<number[]> {
  await openFromQueue(page, s.ct.maskId);
  type Vw = { __viewer: { index: number; cachedSlices: number } };
  await page.waitForFunction(() => (globalThis as unknown as Vw).__viewer.cachedSlices >= 9, null, { timeout: 300_000 });
  await page.evaluate(() => (globalThis as unknown as { __medmaskPerf: Perf }).__medmaskPerf.samples.slice_change?.splice(0));
  const start = await page.evaluate(() => (globalThis as unknown as Vw).__viewer.index);
  for (let i = 1; i <= 30; i++) {
    await page.keyboard.press('ArrowDown');
    await page.locator('.slice-label', { hasText: new RegExp(`^axial ${start + i + 1} /`) }).waitFor({ timeout: 300_000 });
    await page.waitForTimeout(60);
  }
  const out = (await samplesOf(page, 'slice_change')).slice(-30);
  record(s, name, { samples: out });
  return out;
}

/** Register model folders through the API as the admin (as a deployment does); returns their references. */
async function registerModels(url: string, dirs: string[]): Promise<string[]> {
  const login = await fetch(`${url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: passwordOf('admin') }) });
  const { csrfToken } = (await login.json()) as { csrfToken: string };
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
  const refs: string[] = [];
  for (const d of dirs) {
    const form = new FormData();
    form.append('manifest', readFileSync(join(d, 'model.json'), 'utf8'));
    if (existsSync(join(d, 'card.json'))) form.append('card', readFileSync(join(d, 'card.json'), 'utf8'));
    form.append('model.onnx', new Blob([readFileSync(join(d, 'model.onnx'))]), 'model.onnx');
    const r = await fetch(`${url}/api/models`, { method: 'POST', headers: { cookie, 'x-csrf-token': csrfToken }, body: form });
    if (r.status !== 201 && r.status !== 200) throw new Error(`model ${d} not registered: ${r.status} ${await r.text()}`);
    refs.push(((await r.json()) as { ref: string }).ref);
  }
  return refs;
}

/**
 * Slice requests of the CT (every 50 ms, a new slice each time, straight from the page) while an
 * atlas job with the two demo 3D segmenters runs on four 96³ phantoms in the server's process.
 * @returns the p95 in ms (all samples recorded)
 */
async function slicesDuringJob(page: Page, url: string, s: State): Promise<number> {
  const models = await registerModels(url, ['models/demo/demo-unet3d', 'models/demo/demo-resunet3d']);
  await page.evaluate('globalThis.__name = (f) => f'); // tsx's keep-names helper, used by the callback below
  const r = await page.evaluate(async ({ maskId, depth, models }) => {
    const me = (await (await fetch('/api/auth/me')).json()) as { csrfToken: string };
    const post = async (body: unknown) => (await fetch('/api/jobs', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrfToken }, body: JSON.stringify(body) })).json() as Promise<{ job: { id: string } }>;
    const wait = async (id: string, cond: (j: { status: string; result?: { datasetId?: string } }) => boolean) => {
      for (;;) {
        const j = (await (await fetch(`/api/jobs/${id}`)).json()) as { job?: { status: string; result?: { datasetId?: string } }; status?: string };
        const job = (j.job ?? j) as { status: string; result?: { datasetId?: string } };
        if (cond(job)) return job;
        await new Promise((res) => setTimeout(res, 100));
      }
    };
    const ph = await post({ type: 'phantoms', input: { kind: '3d', n: 4, seed: 5, size: 96, project: 'job', dataset: 'job', reviewCases: false } });
    const pj = await wait(ph.job.id, (j) => j.status === 'done' || j.status === 'failed');
    const atlas = await post({ type: 'atlas', input: { datasetId: pj.result!.datasetId, models, fraction: 0.5 } });
    if (!atlas.job) throw new Error(`atlas job refused: ${JSON.stringify(atlas)}`);
    await wait(atlas.job.id, (j) => j.status === 'running' || j.status === 'done' || j.status === 'failed');
    const times: number[] = [];
    let k = 0;
    for (;;) {
      const st = (await (await fetch(`/api/jobs/${atlas.job.id}`)).json()) as { job?: { status: string }; status?: string };
      const status = (st.job ?? st).status;
      if (status !== 'running' && status !== 'queued') break;
      const t0 = performance.now();
      const res = await fetch(`/api/viewer/masks/${maskId}/slice?axis=z&index=${k++ % depth}&layers=image,labels`);
      await res.arrayBuffer();
      times.push(performance.now() - t0);
      await new Promise((res2) => setTimeout(res2, 50));
    }
    return { times, status: (await wait(atlas.job.id, () => true)).status };
  }, { maskId: s.ct.maskId, depth: s.ct.shape[2]!, models });
  const p = p95(r.times);
  record(s, 'slice_during_job', { samples: r.times, jobStatus: r.status });
  return p;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(0.95 * xs.length))] ?? NaN;

export default defineBenchmark<State>({
  description: 'review UI in headless Chromium, software rendering: first paint 2D 512² and CT 512×512×203 + 9 labels, slice change, brush, save, JS heap after 10 cases',
  async setup(dir, quick) {
    buildWebUi();
    const size = quick ? 256 : 512;
    const dataDir = join(dir, `server-v${DATA_VERSION}-${size}`);
    const meta = join(dataDir, 'seeded.json');
    if (!existsSync(meta)) {
      rmSync(dataDir, { recursive: true, force: true });
      mkdirSync(dataDir, { recursive: true });
      const ids = await seed(dataDir, size, quick ? null : 203);
      writeFileSync(meta, JSON.stringify(ids));
    }
    const ids = JSON.parse(readFileSync(meta, 'utf8')) as { ct: State['ct']; chest: string[] };
    await sliceFiles(dataDir);
    const figuresDir = join(dir, 'figures');
    rmSync(figuresDir, { recursive: true, force: true });
    return { dataDir, figuresDir, size, ...ids };
  },
  cases: [
    sampled('first_paint_2d', 5, (s) =>
      session(s, async (page) => {
        const out: number[] = [];
        for (const id of s.chest.slice(0, 5)) out.push(await openFromQueue(page, id));
        record(s, 'first_paint_2d', { samples: out });
        return out;
      }), true),
    sampled('first_paint_ct', 1, (s) =>
      session(s, async (page) => {
        const trace = traceRequests(page);
        const t0 = await pageNow(page);
        const cold = await openFromQueue(page, s.ct.maskId);
        const requests = trace(t0);
        const warm = await openFromQueue(page, s.ct.maskId);
        record(s, 'first_paint_ct', { cold, warm, shape: s.ct.shape, requests });
        return [cold];
      })),
    sampled('slice_change', 30, (s) => session(s, (page) => sliceChanges(page, s, 'slice_change'))),
    sampled('first_paint_2d_loaded', 5, (s) =>
      session(s, (page) => underLoad(async () => {
        const out: number[] = [];
        for (const id of s.chest.slice(0, 5)) out.push(await openFromQueue(page, id));
        record(s, 'first_paint_2d_loaded', { samples: out });
        return out;
      }))),
    sampled('first_paint_ct_loaded', 1, (s) =>
      session(s, (page) => underLoad(async () => {
        const trace = traceRequests(page);
        const t0 = await pageNow(page);
        const cold = await openFromQueue(page, s.ct.maskId);
        record(s, 'first_paint_ct_loaded', { cold, requests: trace(t0) });
        return [cold];
      }))),
    sampled('slice_change_loaded', 30, (s) => session(s, (page) => underLoad(() => sliceChanges(page, s, 'slice_change_loaded')))),
    sampled('slice_during_job', 1, (s) => session(s, async (page, url) => [await slicesDuringJob(page, url, s)])),
    sampled('brush', 60, (s) =>
      session(s, async (page) => {
        await openFromQueue(page, s.ct.maskId);
        await page.keyboard.press(']');
        await page.keyboard.press(']');
        await stroke(page, [150.5, 300.5], [350.5, 330.5], 60);
        const out = (await samplesOf(page, 'brush')).slice(-60);
        record(s, 'brush', { samples: out });
        return out;
      })),
    sampled('save', 3, (s) =>
      session(s, async (page) => {
        await openFromQueue(page, s.ct.maskId);
        const trace = traceRequests(page);
        const out: number[] = [];
        const requests: Traced[][] = [];
        for (let i = 0; i < 3; i++) {
          await page.keyboard.press('ArrowDown');
          await page.waitForTimeout(200);
          const v0 = await page.evaluate(() => (globalThis as unknown as { __viewer: { baseVersion: number } }).__viewer.baseVersion);
          await page.keyboard.press(String(9 - i)); // a label not painted there yet
          await stroke(page, [200.5, 200.5 + 20 * i], [300.5, 220.5 + 20 * i], 8);
          const t0 = await pageNow(page);
          await page.click('#save');
          await page.waitForFunction((v) => (globalThis as unknown as { __viewer: { baseVersion: number } }).__viewer.baseVersion === v + 1, v0, { timeout: 300_000 });
          out.push((await samplesOf(page, 'save')).at(-1)!);
          await page.waitForTimeout(300);
          requests.push(trace(t0));
        }
        record(s, 'save', { samples: out, requests });
        return out;
      })),
    sampled('open_10_cases', 1, (s) =>
      session(s, async (page) => {
        const t0 = performance.now();
        for (const id of [s.ct.maskId, ...s.chest.slice(0, 9)]) await openFromQueue(page, id);
        const total = performance.now() - t0;
        const cdp = await page.context().newCDPSession(page);
        await cdp.send('HeapProfiler.collectGarbage');
        const heap = (await cdp.send('Runtime.getHeapUsage')) as { usedSize: number; totalSize: number; backingStorageSize?: number };
        // usedSize is the JS heap proper; typed-array contents (slices) live outside it, in backing stores
        record(s, 'heap', { usedMiB: heap.usedSize / 2 ** 20, totalMiB: heap.totalSize / 2 ** 20, backingMiB: heap.backingStorageSize !== undefined ? heap.backingStorageSize / 2 ** 20 : null });
        return [total];
      })),
  ],
  summarize(_results: CaseResult[], state) {
    const read = (n: string) => {
      try {
        return JSON.parse(readFileSync(join(state.figuresDir, `${n}.json`), 'utf8')) as Record<string, unknown>;
      } catch {
        return null;
      }
    };
    const r2 = (x: number) => Math.round(x * 100) / 100;
    const fp2 = read('first_paint_2d')?.samples as number[] | undefined;
    const ct = read('first_paint_ct') as { cold: number; warm: number } | null;
    const sc = read('slice_change')?.samples as number[] | undefined;
    const br = read('brush')?.samples as number[] | undefined;
    const sv = read('save')?.samples as number[] | undefined;
    const heap = read('heap') as { usedMiB: number; backingMiB: number | null } | null;
    const fp2l = read('first_paint_2d_loaded')?.samples as number[] | undefined;
    const ctl = read('first_paint_ct_loaded') as { cold: number } | null;
    const scl = read('slice_change_loaded')?.samples as number[] | undefined;
    const sj = read('slice_during_job') as { samples: number[]; jobStatus: string } | null;
    return {
      image_2d: `${state.size}×${state.size}`,
      ct_shape: state.ct.shape.join('×'),
      first_paint_2d_ms: fp2 ? r2(median(fp2)) : null,
      first_paint_ct_ms: ct ? r2(ct.cold) : null,
      first_paint_ct_reopen_ms: ct ? r2(ct.warm) : null,
      slice_change_ms: sc ? r2(median(sc)) : null,
      slice_change_p95_ms: sc ? r2(p95(sc)) : null,
      brush_ms: br ? r2(median(br)) : null,
      brush_p95_ms: br ? r2(p95(br)) : null,
      save_ms: sv ? r2(median(sv)) : null,
      js_heap_after_10_cases_mib: heap ? r2(heap.usedMiB) : null,
      array_buffers_after_10_cases_mib: heap?.backingMiB != null ? r2(heap.backingMiB) : null,
      first_paint_2d_loaded_ms: fp2l ? r2(median(fp2l)) : null,
      first_paint_ct_loaded_ms: ctl ? r2(ctl.cold) : null,
      slice_change_p95_loaded_ms: scl ? r2(p95(scl)) : null,
      slice_during_job_p95_ms: sj?.samples.length ? r2(p95(sj.samples)) : null,
      slice_during_job_samples: sj ? sj.samples.length : null,
      slice_during_job_status: sj ? sj.jobStatus : null,
      errors: ['first_paint_2d', 'first_paint_ct', 'slice_change', 'first_paint_2d_loaded', 'first_paint_ct_loaded', 'slice_change_loaded', 'slice_during_job', 'brush', 'save', 'open_10_cases'].flatMap((n) => {
        const e = read(`${n}.error`);
        return e ? [`${n}: ${String(e.error)}`] : [];
      }).join('; ') || null,
      load_average: loadavg().map((x) => x.toFixed(2)).join(' '),
    };
  },
});
