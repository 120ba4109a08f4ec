/**
 * Campaigns at scale (issue 15): PostgreSQL + Redis + `medmask worker` processes.
 *
 * - `atlas-1w` (baseline), `atlas-2w`, `atlas-3w`: one `atlas` job over 12 phantom CT volumes with
 *   the two demo segmenters, fanned out over 1, 2 and 3 worker processes; time from submission to
 *   done (the workers are started and the volumes imported before the clock starts).
 * - `overhead`: one worker, a fan-out job of 300 empty-ish tasks (each records one prediction):
 *   the median gap between consecutive task completions is the queue overhead per task, end to end
 *   (BullMQ message, task claim, result and progress writes).
 * - `campaign`: 8,448 such cases (imported tiny volumes, one prediction each) through 2 workers:
 *   wall time, cases/s, database and blob-store size, worker peak RSS and its growth per 1000
 *   cases (RSS sampled every second; least-squares slope over the second half of the run).
 *
 * Each case starts its own PostgreSQL and Redis (fsync off, as in the tests) and returns
 * `{ elapsedMs }`; the extra figures go to `<cache>/scale-figures.json` and `summarize` copies them
 * into bench/out/scale.json with the ratio of 2 to 1 workers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import { createVolume } from '../src/core/volume.js';
import { createJob, getJob } from '../src/store/jobs.js';
import { FsBlobStore, openStore, type Store } from '../src/store/index.js';
import { ensureDataset, ensureProject, insertImage } from '../src/store/volumes.js';
import { BullmqQueue } from '../src/queue/index.js';
import { JOB_FORMAT } from '../src/queue/handlers.js';
import { registerDemoModels } from '../src/runtime/model-registry.js';
import { startPostgres, startRedis } from '../test/helpers/services.js';
import { testHandlersJs } from '../test/helpers/test-handlers-js.js';
import { defineBenchmark, type CaseResult } from './run.js';

const ROOT = join(new URL('.', import.meta.url).pathname, '..');
const MODELS = ['demo-unet3d@1', 'demo-resunet3d@1'];

interface State {
  dir: string;
}

/** `npm run bench -- scale --only campaign|workers|overhead`: one part (the others are skipped; the baseline case reports NaN). */
const PARTS = ['workers', 'overhead', 'campaign'] as const;
const only = process.env.MEDMASK_BENCH_ONLY;
if (only !== undefined && !(PARTS as readonly string[]).includes(only)) throw new Error(`--only ${only}: the scale benchmark's parts are ${PARTS.join(', ')}`);
const partOf = (caseName: string) => (caseName.startsWith('atlas-') ? 'workers' : caseName);
const skipped = (caseName: string) => (only && partOf(caseName) !== only ? `--only ${only}` : undefined);

/** Workers as deployed: the built `bin/medmask.js` (run `npm run build` first), the test handlers as plain JS. */
function startWorkers(n: number, db: string, redis: string, blobs: string, dir: string): { child: ChildProcess; ready: Promise<void> }[] {
  if (!existsSync(join(ROOT, 'dist/cli/run.js'))) throw new Error('bench scale: run `npm run build` first (the workers start from bin/medmask.js)');
  const handlers = testHandlersJs(dir);
  return Array.from({ length: n }, (_, i) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/medmask.js'), 'worker', '--db', db, '--blobs', blobs, '--queue', redis, '--handlers', handlers, '--data-dir', join(dir, `w${i}`)], {
      cwd: ROOT,
      env: { ...process.env, MEDMASK_QUEUE_NAME: 'bench' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const ready = new Promise<void>((res, rej) => {
      child.stdout!.on('data', (d: Buffer) => (d.toString().includes(' ready: ') ? res() : undefined));
      child.once('exit', (c) => rej(new Error(`worker exited (${c})`)));
    });
    return { child, ready };
  });
}

/** Submit a job straight into the database and the queue (as the API does) and wait until it ends. */
async function runJob(store: Store, queue: BullmqQueue, type: string, input: unknown, onTick?: () => void): Promise<{ id: string; ms: number }> {
  const t0 = performance.now();
  const { job } = await createJob(store.db, { type, input, format: JOB_FORMAT });
  await queue.enqueue({ jobId: job.id, type });
  for (;;) {
    const j = await getJob(store.db, job.id);
    if (j.status === 'done' || j.status === 'partial') return { id: job.id, ms: performance.now() - t0 };
    if (j.status === 'failed') throw new Error(`${type} job failed: ${j.error}`);
    onTick?.();
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** PostgreSQL, Redis, the store, a queue and `workers` worker processes; `fn` runs with them. */
async function withCluster<T>(dir: string, workers: number, fn: (c: { store: Store; queue: BullmqQueue; blobs: FsBlobStore; pids: number[]; blobDir: string }) => Promise<T>): Promise<T> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
  const store = await openStore(pg.url);
  const blobDir = join(dir, 'blobs');
  const blobs = new FsBlobStore(blobDir, { fsync: false });
  const queue = new BullmqQueue({ url: redis.url, name: 'bench' });
  const ws = startWorkers(workers, pg.url, redis.url, blobDir, dir);
  try {
    await Promise.all(ws.map((w) => w.ready));
    return await fn({ store, queue, blobs, blobDir, pids: ws.map((w) => w.child.pid!) });
  } finally {
    for (const w of ws) w.child.kill('SIGTERM');
    await Promise.all(ws.map((w) => new Promise((r) => (w.child.exitCode !== null ? r(null) : w.child.once('exit', r)))));
    await queue.close(1000);
    await store.close();
    await Promise.all([pg.stop(), redis.stop()]);
  }
}

function figures(dir: string, add: Record<string, number>): void {
  const f = join(dir, 'scale-figures.json');
  const old = existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Record<string, number>) : {};
  writeFileSync(f, JSON.stringify({ ...old, ...add }, null, 1));
}

const rssMiB = (pid: number) => {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
};

function dirMiB(d: string): number {
  let n = 0;
  for (const e of readdirSync(d, { withFileTypes: true })) n += e.isDirectory() ? dirMiB(join(d, e.name)) * 2 ** 20 : statSync(join(d, e.name)).size;
  return n / 2 ** 20;
}

function atlasCase(workers: number) {
  return {
    name: `atlas-${workers}w`,
    ...(workers === 1 ? { baseline: true } : {}),
    repetitions: 1,
    warmup: false,
    ...(workers > 1 ? { skip: () => skipped(`atlas-${workers}w`) } : {}),
    async run({ state }: { state: State }) {
      if (skipped(`atlas-${workers}w`)) {
        // The harness cannot skip a baseline: it reports 0 ms (and its ratios mean nothing) under --only.
        process.stderr.write(`case atlas-1w not run: --only ${only}\n`);
        return { elapsedMs: 0 };
      }
      return withCluster(join(state.dir, `atlas-${workers}`), workers, async ({ store, queue, blobs }) => {
        // Jobs name registered models (name@version): the bundled demo models, as `medmask serve` registers them.
        await registerDemoModels(store, blobs);
        const ph = await runJob(store, queue, 'phantoms', { kind: '3d', n: 12, seed: 15, size: 64, project: 'scale', dataset: 'scale', reviewCases: false });
        const datasetId = (JSON.parse((await getJob(store.db, ph.id)).result!) as { datasetId: string }).datasetId;
        const { ms } = await runJob(store, queue, 'atlas', { datasetId, models: MODELS, fraction: 0.25 });
        return { elapsedMs: ms };
      });
    },
  };
}

export default defineBenchmark<State>({
  description: 'fan-out over worker processes (PostgreSQL + Redis): atlas job with 1/2/3 workers, queue overhead per task, an 8,448-case campaign',
  repetitions: 1,
  async setup(dir) {
    rmSync(join(dir, 'scale-figures.json'), { force: true });
    return { dir };
  },
  cases: [
    atlasCase(1),
    atlasCase(2),
    atlasCase(3),
    {
      name: 'overhead',
      skip: () => skipped('overhead'),
      repetitions: 1,
      warmup: false,
      async run({ state }) {
        return withCluster(join(state.dir, 'overhead'), 1, async ({ store, queue, blobs }) => {
          const project = await ensureProject(store.db, 'o', null);
          const ds = await ensureDataset(store.db, project, 'o', null);
          for (let i = 0; i < 300; i++) await insertImage(store.db, blobs, { datasetId: ds, name: `i${String(i).padStart(4, '0')}.nii.gz`, volume: createVolume([4, 4, 1], 'uint8'), format: 'nifti', createdBy: null });
          const { id, ms } = await runJob(store, queue, 'test-fan', { datasetId: ds, delayMs: 0 });
          const rows = await store.db.selectFrom('job_tasks').select('updated_at').where('job_id', '=', id).where('status', '=', 'done').execute();
          const t = rows.map((r) => Date.parse(r.updated_at)).sort((a, b) => a - b);
          const gaps = t.slice(1).map((x, i) => x - t[i]!).sort((a, b) => a - b);
          figures(state.dir, { task_overhead_ms_p50: gaps[Math.floor(gaps.length / 2)]!, task_overhead_ms_p90: gaps[Math.floor(gaps.length * 0.9)]! });
          return { elapsedMs: ms };
        });
      },
    },
    {
      name: 'campaign',
      skip: () => skipped('campaign'),
      repetitions: 1,
      warmup: false,
      async run({ state, quick }) {
        const n = quick ? 1000 : 8448;
        return withCluster(join(state.dir, 'campaign'), 2, async ({ store, queue, blobs, pids, blobDir }) => {
          const project = await ensureProject(store.db, 'c', null);
          const ds = await ensureDataset(store.db, project, 'c', null);
          for (let i = 0; i < n; i++) await insertImage(store.db, blobs, { datasetId: ds, name: `case${String(i).padStart(5, '0')}.nii.gz`, volume: createVolume([8, 8, 4], 'uint8', { data: new Uint8Array(256).fill(i % 251) }), format: 'nifti', createdBy: null });
          const samples: { done: number; rss: number }[] = [];
          let peak = 0;
          // The campaign is the only job of this database: its done tasks are the cases done so far.
          const { ms } = await runJob(store, queue, 'test-fan', { datasetId: ds, delayMs: 0, tag: 'campaign' }, () => {
            const rss = Math.max(...pids.map(rssMiB));
            peak = Math.max(peak, rss);
            void store.db.selectFrom('job_tasks').select((eb) => eb.fn.countAll<number>().as('n')).where('status', '=', 'done').executeTakeFirst().then((r) => samples.push({ done: Number(r?.n ?? 0), rss }));
          });
          // Least-squares slope of RSS against cases done, over the run after its first 10 % (start-up
          // allocations); null when too few samples to fit (never 0 by construction).
          // The second half alone too: V8 sizes its heap during each worker's first few hundred cases
          // (heap used after a full GC stays flat), so a leak shows there and warm-up does not.
          const slopeFrom = (from: number) => {
            const fit = samples.filter((s) => s.done >= from);
            const mx = fit.reduce((a, s) => a + s.done, 0) / Math.max(1, fit.length), my = fit.reduce((a, s) => a + s.rss, 0) / Math.max(1, fit.length);
            const sxx = fit.reduce((a, s) => a + (s.done - mx) ** 2, 0);
            return { n: fit.length, slope: fit.length >= 5 && sxx > 0 ? fit.reduce((a, s) => a + (s.done - mx) * (s.rss - my), 0) / sxx : NaN };
          };
          const { n: fitted, slope } = slopeFrom(n / 10), late = slopeFrom(n / 2);
          const size = await sql<{ n: string }>`select pg_database_size(current_database()) as n`.execute(store.db);
          figures(state.dir, {
            campaign_cases: n,
            campaign_seconds: ms / 1000,
            campaign_cases_per_s: n / (ms / 1000),
            campaign_db_mb: Number(size.rows[0]!.n) / 2 ** 20,
            campaign_blobs_mb: dirMiB(blobDir),
            worker_peak_rss_mb: peak,
            worker_rss_growth_mb_per_1000_cases: slope * 1000,
            worker_rss_growth_mb_per_1000_cases_second_half: late.slope * 1000,
            worker_rss_samples: fitted,
          });
          return { elapsedMs: ms };
        });
      },
    },
  ],
  summarize(results: CaseResult[], state) {
    const t = (name: string) => results.find((r) => r.name === name)?.medianMs ?? NaN;
    const f = join(state.dir, 'scale-figures.json');
    const extra = existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Record<string, number>) : {};
    return {
      wall_1_worker_s: t('atlas-1w') / 1000,
      wall_2_workers_s: t('atlas-2w') / 1000,
      wall_3_workers_s: t('atlas-3w') / 1000,
      ratio_2_vs_1: t('atlas-2w') / t('atlas-1w'),
      ratio_3_vs_1: t('atlas-3w') / t('atlas-1w'),
      ...extra,
    };
  },
});
