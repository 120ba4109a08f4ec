/**
 * Benchmark runner: `npm run bench [-- --quick] [name-filter …]`.
 *
 * Discovers `bench/*.bench.ts`. Each module's default export is a {@link Benchmark}: a `setup` that
 * prepares inputs once (in its own child process, cached in a temp folder) and named cases, one of
 * them the baseline. Every case runs in a fresh child process, so its peak RSS
 * (`process.resourceUsage().maxRSS`) is its own and not the runner's or another case's. Results go
 * to `bench/out/<name>.json` (git-ignored) and a table of median time and peak RSS, each with its
 * ratio to the baseline measured in the same run, is printed.
 *
 * Benchmarks are never assertions: numbers depend on the machine; compare ratios, not milliseconds.
 * @module
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { mergeJsonFile } from './loop-json.js';

/** What a case is given: the setup's result and the run mode. */
export interface BenchContext<S> {
  /** Whatever `setup` returned (must be JSON-serialisable: it crosses process boundaries). */
  state: S;
  /** True under `--quick`: smaller inputs or fewer repetitions. */
  quick: boolean;
}

/** One measured variant. */
export interface BenchCase<S> {
  /** Short name shown in the table. */
  name: string;
  /** The case every other case is compared with (exactly one per benchmark). */
  baseline?: boolean;
  /**
   * One timed repetition. May return a value to keep the work from being optimised away; a result
   * `{ elapsedMs: number }` replaces the measured wall time (for work timed elsewhere, e.g. in a
   * subprocess that must not count its own start-up).
   */
  run(ctx: BenchContext<S>): Promise<unknown> | unknown;
  /** Timed repetitions of this case (default: the benchmark's). */
  repetitions?: number;
  /** Run one untimed warm-up first (default true). */
  warmup?: boolean;
  /** A reason to skip this case in this run (e.g. a missing optional tool), or undefined to run it. */
  skip?(state: S): string | undefined;
}

/** What a `*.bench.ts` module exports as default. */
export interface Benchmark<S> {
  /** One line: what is measured, on what input. */
  description: string;
  /** Timed repetitions after one warm-up (default 7; `--quick`: 3). */
  repetitions?: number;
  /**
   * Prepare inputs under `dir` (a cache folder kept between runs); returns the state cases receive.
   * A state with a `skip` string skips the whole benchmark with that message (e.g. inputs that
   * only an optional tool can make).
   */
  setup(dir: string, quick: boolean): Promise<S>;
  cases: BenchCase<S>[];
  /** Derived figures from the medians (e.g. ratios the issue asks for), printed and saved as `summary`. */
  summarize?(results: CaseResult[], state: S): Record<string, number | string | null>;
}

/**
 * Helper for bench modules, for type inference only.
 * @param b - the benchmark
 * @returns the same benchmark
 * @example
 * export default defineBenchmark({ description: '…', setup: async () => ({}), cases: [{ name: 'a', baseline: true, run: () => 0 }] });
 */
export function defineBenchmark<S>(b: Benchmark<S>): Benchmark<S> {
  return b;
}

/** One case's measurement, as a child reports it. */
export interface CaseResult {
  name: string;
  baseline: boolean;
  timesMs: number[];
  medianMs: number;
  minMs: number;
  /** Peak resident set size of the child process, MiB. */
  peakRssMiB: number;
  /** RSS right after loading the module, before any case work, MiB. */
  startRssMiB: number;
}

const HERE = new URL('.', import.meta.url).pathname;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function load(file: string): Promise<Benchmark<unknown>> {
  const mod = (await import(pathToFileURL(join(HERE, file)).href)) as { default?: Benchmark<unknown> };
  if (!mod.default?.cases) throw new Error(`${file}: default export must be defineBenchmark({ … })`);
  return mod.default;
}

/** Child mode: `--setup FILE DIR` prints the state; `--case FILE NAME DIR STATEFILE` prints a CaseResult. */
async function child(args: string[], quick: boolean): Promise<void> {
  const [mode, file, a, b] = args;
  const bench = await load(file!);
  if (mode === '--setup') {
    process.stdout.write('\n@@' + JSON.stringify(await bench.setup(a!, quick)) + '\n');
    return;
  }
  const c = bench.cases.find((x) => x.name === a);
  if (!c) throw new Error(`${file}: no case ${a}`);
  const ctx: BenchContext<unknown> = { state: JSON.parse(b!) as unknown, quick };
  const startRssMiB = process.memoryUsage().rss / 2 ** 20;
  const reps = c.repetitions ?? (quick ? 3 : (bench.repetitions ?? 7));
  if (c.warmup !== false) await c.run(ctx); // warm-up: JIT, file cache
  const timesMs: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    const out = (await c.run(ctx)) as { elapsedMs?: unknown } | undefined;
    timesMs.push(typeof out?.elapsedMs === 'number' ? out.elapsedMs : performance.now() - t0);
  }
  const res: CaseResult = {
    name: c.name,
    baseline: !!c.baseline,
    timesMs,
    medianMs: median(timesMs),
    minMs: Math.min(...timesMs),
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    startRssMiB,
  };
  process.stdout.write('\n@@' + JSON.stringify(res) + '\n');
}

function spawnChild(args: string[], quick: boolean): unknown {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(HERE, 'run.ts'), ...(quick ? ['--quick'] : []), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 2 ** 20,
  });
  if (r.status !== 0) throw new Error(`benchmark child ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
  const line = r.stdout.split('\n').reverse().find((l) => l.startsWith('@@'));
  if (!line) throw new Error(`benchmark child ${args.join(' ')} printed no result`);
  return JSON.parse(line.slice(2));
}

/** Keys of an out file that are the harness's record of an earlier run (not kept; a benchmark's own keys are). */
const HARNESS_KEYS = ['name', 'description', 'quick', 'date', 'machine', 'state', 'summary', 'skipped', 'results'];

function fmt(x: number, digits = 1): string {
  return x.toFixed(digits);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  // `--only PART`: a benchmark that has parts runs only that one (it reads MEDMASK_BENCH_ONLY).
  const onlyAt = argv.indexOf('--only');
  if (onlyAt >= 0) process.env.MEDMASK_BENCH_ONLY = argv.splice(onlyAt, 2)[1];
  const quick = argv.includes('--quick');
  const rest = argv.filter((a) => a !== '--quick');
  if (rest[0] === '--setup' || rest[0] === '--case') return child(rest, quick);
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log('usage: npm run bench [-- --quick] [name-filter …]\n  runs bench/*.bench.ts whose name contains a filter (all when none)');
    return;
  }
  const files = readdirSync(HERE)
    .filter((f) => f.endsWith('.bench.ts'))
    .filter((f) => !rest.length || rest.some((p) => f.includes(p)))
    .sort();
  if (!files.length) {
    console.error(`no benchmark matches ${rest.join(' ')}; available: ${readdirSync(HERE).filter((f) => f.endsWith('.bench.ts')).join(', ')}`);
    process.exit(2);
  }
  const outDir = join(HERE, 'out');
  mkdirSync(outDir, { recursive: true });
  for (const file of files) {
    const name = basename(file, '.bench.ts');
    const bench = await load(file);
    const baselines = bench.cases.filter((c) => c.baseline);
    if (baselines.length !== 1) throw new Error(`${file}: exactly one case must be the baseline`);
    console.log(`\n## ${name}${quick ? ' (quick)' : ''}: ${bench.description}`);
    const cache = join(tmpdir(), 'medmask-bench', name);
    mkdirSync(cache, { recursive: true });
    const state = spawnChild(['--setup', file, cache], quick);
    const skipAll = (state as { skip?: unknown } | null)?.skip;
    if (typeof skipAll === 'string') {
      console.log(`skipped: ${skipAll}`);
      await mergeJsonFile(join(outDir, `${name}.json`), { name, description: bench.description, quick, date: new Date().toISOString(), skipped: skipAll }, { drop: HARNESS_KEYS });
      continue;
    }
    const results: CaseResult[] = [];
    const skipped: Record<string, string> = {};
    for (const c of bench.cases) {
      const why = c.skip?.(state);
      if (why !== undefined && !c.baseline) {
        skipped[c.name] = why;
        console.log(`case ${c.name} skipped: ${why}`);
        continue;
      }
      results.push(spawnChild(['--case', file, c.name, JSON.stringify(state)], quick) as CaseResult);
    }
    const base = results.find((r) => r.baseline)!;
    const rows = results.map((r) => [
      r.name + (r.baseline ? ' (baseline)' : ''),
      fmt(r.medianMs, 0),
      fmt(r.medianMs / base.medianMs, 2) + '×',
      fmt(r.peakRssMiB, 0),
      fmt(r.peakRssMiB / base.peakRssMiB, 2) + '×',
      fmt(r.startRssMiB, 0),
    ]);
    const head = ['case', 'median ms', 'time ratio', 'peak RSS MiB', 'RSS ratio', 'RSS at start MiB'];
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => '| ' + cells.map((c, i) => (i ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join(' | ') + ' |';
    console.log(line(head));
    console.log('|' + w.map((n, i) => (i ? '-'.repeat(n + 1) + ':' : '-'.repeat(n + 2))).join('|') + '|');
    for (const r of rows) console.log(line(r));
    const summary = bench.summarize?.(results, state);
    if (summary) for (const [k, v] of Object.entries(summary)) console.log(`${k.padEnd(20)} ${typeof v === 'number' ? Number(v.toPrecision(4)) : v}`);
    const record = {
      name,
      description: bench.description,
      quick,
      date: new Date().toISOString(),
      machine: { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30) },
      state,
      ...(summary ? { summary } : {}),
      ...(Object.keys(skipped).length ? { skipped } : {}),
      results,
    };
    // Keys a benchmark wrote into its own out file (figures shared between benchmarks, e.g. loop.json) stay
    // (bench/loop-json.ts: an atomic write; a corrupt file is moved aside, never dropped).
    await mergeJsonFile(join(outDir, `${name}.json`), record, { drop: HARNESS_KEYS });
    console.log(`→ bench/out/${name}.json`);
  }
}

const isMain = process.argv[1] !== undefined && pathToFileURL(process.argv[1]).href === import.meta.url;
if (isMain) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
