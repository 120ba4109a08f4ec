/**
 * Campaigns at scale (issue 15): PostgreSQL + Redis + `medmask worker` processes.
 *
 * - `atlas-1w` (baseline), `atlas-2w`, `atlas-3w`: one `atlas` job over 12 phantom CT volumes with
 *   the two demo segmenters, fanned out over 1, 2 and 3 worker processes; time from submission to
 *   done (the workers are started and the volumes imported before the clock starts).
 *   `atlas-1w-pinned`, `atlas-2w-pinned`: the same with worker i confined to core i (`taskset`),
 *   i.e. one-core machines, so that the ratio says what a second machine adds.
 *   The configurations run as one interleaved series (3 rounds of 1, 2, 3, 1p, 2p; `--quick`: 2
 *   rounds of 6 volumes), so that drifting machine load hits them alike; figures are medians over
 *   the rounds, with the spread, each round's paired ratio and the CPU seconds each worker used.
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
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
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
function startWorkers(n: number, db: string, redis: string, blobs: string, dir: string, pinned = false): { child: ChildProcess; ready: Promise<void> }[] {
  if (!existsSync(join(ROOT, 'dist/cli/run.js'))) throw new Error('bench scale: run `npm run build` first (the workers start from bin/medmask.js)');
  const handlers = testHandlersJs(dir);
  return Array.from({ length: n }, (_, i) => {
    const argv = [process.execPath, join(ROOT, 'bin/medmask.js'), 'worker', '--db', db, '--blobs', blobs, '--queue', redis, '--handlers', handlers, '--data-dir', join(dir, `w${i}`)];
    // Pinned: worker i may run on core i only (taskset execs node, so the pid is the worker's); the
    // worker then sees one core (os.availableParallelism honours the affinity) and infers on 1 thread.
    if (pinned) argv.unshift('taskset', '-c', String(i % availableParallelism()));
    const child = spawn(argv[0]!, argv.slice(1), {
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
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** PostgreSQL, Redis, the store, a queue and `workers` worker processes; `fn` runs with them. */
async function withCluster<T>(dir: string, workers: number, fn: (c: { store: Store; queue: BullmqQueue; blobs: FsBlobStore; pids: number[]; blobDir: string }) => Promise<T>, o: { pinned?: boolean } = {}): Promise<T> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
  const store = await openStore(pg.url);
  const blobDir = join(dir, 'blobs');
  const blobs = new FsBlobStore(blobDir, { fsync: false });
  const queue = new BullmqQueue({ url: redis.url, name: 'bench' });
  const ws = startWorkers(workers, pg.url, redis.url, blobDir, dir, o.pinned);
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

/** One configuration of the worker series. */
interface AtlasConfig {
  name: string;
  workers: number;
  /** Worker i confined to core i (`taskset -c i`): N one-core machines. */
  pinned: boolean;
}

const ATLAS_CONFIGS: AtlasConfig[] = [
  { name: 'atlas-1w', workers: 1, pinned: false },
  { name: 'atlas-2w', workers: 2, pinned: false },
  { name: 'atlas-3w', workers: 3, pinned: false },
  { name: 'atlas-1w-pinned', workers: 1, pinned: true },
  { name: 'atlas-2w-pinned', workers: 2, pinned: true },
];
/** The harness passes `--quick` on to each case's child process. */
const QUICK = process.argv.includes('--quick');
/** Rounds of the interleaved series (each round runs every configuration once) and volumes per job. */
const ROUNDS = QUICK ? 2 : 3;
const VOLUMES = QUICK ? 6 : 12;

/** Why the pinned configurations cannot run here, or undefined. */
function pinningUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'pinning needs Linux (taskset)';
  if (spawnSync('taskset', ['-V']).status !== 0) return 'taskset (util-linux) is not installed';
  if (availableParallelism() < 2) return 'pinning 2 workers needs 2 cores';
  return undefined;
}

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  return Number(r.stdout?.trim()) || 100;
})();

/** User + system CPU seconds a process has used so far (/proc/PID/stat fields 14 and 15); NaN once it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** One atlas job on a fresh cluster: its wall time, and per worker the CPU seconds it used and the cases it ran. */
async function atlasRound(dir: string, c: AtlasConfig): Promise<{ ms: number; cpuS: number[]; tasks: number[] }> {
  return withCluster(join(dir, c.name), c.workers, async ({ store, queue, blobs, pids }) => {
    // Jobs name registered models (name@version): the bundled demo models, as `medmask serve` registers them.
    await registerDemoModels(store, blobs);
    const ph = await runJob(store, queue, 'phantoms', { kind: '3d', n: VOLUMES, seed: 15, size: 64, project: 'scale', dataset: 'scale', reviewCases: false });
    const datasetId = (JSON.parse((await getJob(store.db, ph.id)).result!) as { datasetId: string }).datasetId;
    const before = pids.map(cpuSeconds);
    const { id, ms } = await runJob(store, queue, 'atlas', { datasetId, models: MODELS, fraction: 0.25 });
    const cpuS = pids.map((p, i) => cpuSeconds(p) - before[i]!);
    const rows = await store.db.selectFrom('job_tasks').select('worker').where('job_id', '=', id).execute();
    const tasks = pids.map((p) => rows.filter((r) => r.worker?.endsWith(`:${p}`)).length);
    return { ms, cpuS, tasks };
  }, { pinned: c.pinned });
}

interface SeriesRun { config: string; round: number; ms: number; cpuS: number[]; tasks: number[] }
interface Series { rounds: number; volumes: number; loadStart: number[]; loadEnd: number[]; pinnedSkipped?: string; runs: SeriesRun[] }

/**
 * The whole series, once per process: ROUNDS rounds, each running every configuration once in
 * the same order (1, 2, 3 workers, then pinned 1 and 2), so that a change of machine load hits
 * every configuration alike. The baseline case runs it and writes it to `<cache>/atlas-series.json`;
 * the other atlas cases report their rounds from that file.
 */
let seriesRun: Promise<Series> | undefined;
function series(state: State): Promise<Series> {
  const file = join(state.dir, 'atlas-series.json');
  return (seriesRun ??= (async () => {
    const noPin = pinningUnavailable();
    const configs = ATLAS_CONFIGS.filter((c) => !c.pinned || !noPin);
    const s: Series = { rounds: ROUNDS, volumes: VOLUMES, loadStart: loadavg(), loadEnd: [], ...(noPin ? { pinnedSkipped: noPin } : {}), runs: [] };
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of configs) {
        const r = await atlasRound(state.dir, c);
        s.runs.push({ config: c.name, round, ...r });
        process.stderr.write(`scale: round ${round + 1}/${ROUNDS} ${c.name}: ${(r.ms / 1000).toFixed(1)} s, CPU-s per worker ${r.cpuS.map((x) => x.toFixed(1)).join('/')}, cases ${r.tasks.join('/')} (load ${loadavg()[0]!.toFixed(2)})\n`);
      }
    }
    s.loadEnd = loadavg();
    writeFileSync(file, JSON.stringify(s, null, 1));
    return s;
  })());
}

function readSeries(state: State): Series {
  const file = join(state.dir, 'atlas-series.json');
  if (!existsSync(file)) throw new Error(`bench scale: ${file} is missing: the baseline case atlas-1w runs the series and failed or did not run`);
  return JSON.parse(readFileSync(file, 'utf8')) as Series;
}

function atlasCase(c: AtlasConfig) {
  let next = 0;
  return {
    name: c.name,
    ...(c.name === 'atlas-1w' ? { baseline: true } : {}),
    repetitions: ROUNDS,
    warmup: false,
    ...(c.name !== 'atlas-1w' ? { skip: () => skipped(c.name) ?? (c.pinned ? pinningUnavailable() : undefined) } : {}),
    async run({ state }: { state: State }) {
      if (skipped(c.name)) {
        // The harness cannot skip a baseline: it reports 0 ms (and its ratios mean nothing) under --only.
        if (next++ === 0) process.stderr.write(`case atlas-1w not run: --only ${only}\n`);
        return { elapsedMs: 0 };
      }
      const s = c.name === 'atlas-1w' ? await series(state) : readSeries(state);
      const mine = s.runs.filter((r) => r.config === c.name);
      return { elapsedMs: mine[next++ % mine.length]!.ms };
    },
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};

/** Figures of the series: medians, spread, ratios of medians and of each round's pair, CPU seconds per worker. */
function seriesFigures(s: Series): Record<string, number | string> {
  const of = (name: string) => s.runs.filter((r) => r.config === name);
  const wall = (name: string) => median(of(name).map((r) => r.ms)) / 1000;
  const out: Record<string, number | string> = { atlas_rounds: s.rounds, atlas_volumes: s.volumes };
  for (const c of ATLAS_CONFIGS) {
    const runs = of(c.name);
    if (!runs.length) continue;
    const key = c.name.slice('atlas-'.length).replace('-', '_');
    const ms = runs.map((r) => r.ms / 1000);
    out[`wall_${key}_s_all`] = ms.map((x) => x.toFixed(1)).join(' ');
    out[`wall_${key}_spread`] = (Math.max(...ms) - Math.min(...ms)) / median(ms);
    // The round whose wall time is the median: its CPU seconds and cases per worker.
    const mid = [...runs].sort((a, b) => a.ms - b.ms)[runs.length >> 1]!;
    out[`cpu_s_per_worker_${key}`] = mid.cpuS.map((x) => x.toFixed(1)).join('/');
    out[`cases_per_worker_${key}`] = mid.tasks.join('/');
    out[`cpu_s_total_${key}`] = median(runs.map((r) => r.cpuS.reduce((a, b) => a + b, 0)));
  }
  const paired = (a: string, b: string) => {
    const rs = of(a).map((r) => { const base = of(b).find((x) => x.round === r.round); return base ? r.ms / base.ms : NaN; });
    return rs.map((x) => x.toFixed(3)).join(' ');
  };
  Object.assign(out, {
    wall_1_worker_s: wall('atlas-1w'),
    wall_2_workers_s: wall('atlas-2w'),
    wall_3_workers_s: wall('atlas-3w'),
    ratio_2_vs_1: wall('atlas-2w') / wall('atlas-1w'),
    ratio_3_vs_1: wall('atlas-3w') / wall('atlas-1w'),
    ratio_2_vs_1_rounds: paired('atlas-2w', 'atlas-1w'),
    wall_1_worker_pinned_s: wall('atlas-1w-pinned'),
    wall_2_workers_pinned_s: wall('atlas-2w-pinned'),
    ratio_2_vs_1_pinned: wall('atlas-2w-pinned') / wall('atlas-1w-pinned'),
    ratio_2_vs_1_pinned_rounds: paired('atlas-2w-pinned', 'atlas-1w-pinned'),
    atlas_load_start: s.loadStart.map((x) => x.toFixed(2)).join(' '),
    atlas_load_end: s.loadEnd.map((x) => x.toFixed(2)).join(' '),
    ...(s.pinnedSkipped ? { pinned_skipped: s.pinnedSkipped } : {}),
  });
  return out;
}

export default defineBenchmark<State>({
  description: 'fan-out over worker processes (PostgreSQL + Redis): atlas job with 1/2/3 workers, queue overhead per task, an 8,448-case campaign',
  repetitions: 1,
  async setup(dir) {
    rmSync(join(dir, 'scale-figures.json'), { force: true });
    rmSync(join(dir, 'atlas-series.json'), { force: true });
    return { dir };
  },
  cases: [
    ...ATLAS_CONFIGS.map(atlasCase),
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
    const seriesFile = join(state.dir, 'atlas-series.json');
    const atlas = existsSync(seriesFile) && results.some((r) => r.name === 'atlas-1w' && r.medianMs > 0) ? seriesFigures(readSeries(state)) : { wall_1_worker_s: t('atlas-1w') / 1000, ratio_2_vs_1: NaN };
    return { ...atlas, ...extra };
  },
});
