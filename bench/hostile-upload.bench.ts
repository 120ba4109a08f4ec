/**
 * Hostile uploads against a real `medmask serve` child process (SQLite, in-process queue, decode
 * worker threads), next to an ordinary upload — the baseline, measured in the same run:
 * - `ordinary-png` (baseline): an 8×8 PNG (201).
 * - `nifti-bomb`: a NIfTI gzip bomb, a 4×4×4 header + 1.5 GiB of zeros, 1.5 MB on the wire (413).
 * - `nifti-bomb-x2`: two of them at once (the time is that of the later answer).
 * - `png-16000`: a 16000×16000 PNG header (249 KB) with the server's cap lowered to 10^8 voxels (413).
 * - `nrrd-94-bytes`: a 94-byte NRRD header with no known extension (422: its data are missing).
 *
 * Each case runs in its own process with its own server. Before the repetitions, `/health` is
 * polled idle for 2 s (every 10 ms, one request at a time): the idle latency of that server. During
 * each repetition it is polled the same way from the upload's first byte until 300 ms after the
 * answer. The server's peak RSS over a repetition is the kernel's high-water mark (VmHWM, reset
 * through /proc/PID/clear_refs before each upload), minus its RSS at rest. A repetition's time is
 * the upload's answer time. The summary (also in bench/out/hostile-upload.json) gives per case the
 * answer, /health p50 / p99 / max during it against idle, and the RSS increase, next to the goals
 * of issue 17 (+< 100 MiB, /health p99 < 100 ms, answer in < 1 s) and the load average.
 *
 *   npm run bench -- hostile-upload        (about a minute on a quiet 2-core machine)
 *
 * `HOSTILE_CPU_PROF=DIR` starts each server with `node --cpu-prof --cpu-prof-dir=DIR` (profiles are
 * written when the case ends): open them in Chrome DevTools to see what ran on the main thread.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { hugePng, niftiBomb } from '../test/helpers/hostile.js';
import { defineBenchmark, type CaseResult } from './run.js';
import { startServeChild } from './serve-child.js';


interface State {
  dir: string;
  files: Record<string, { path: string; name: string; bytes: number }>;
}

interface Env {
  url: string;
  pid: number;
  auth: Record<string, string>;
  datasetId: string;
  idle: { lat: number[]; rssMiB: number };
}

/** What one case process records (written after every repetition; summarize reads it). */
interface Detail {
  case: string;
  idleHealthMs: number[];
  idleRssMiB: number;
  healthMs: number[];
  answers: Array<{ status: number; error?: string; ms: number; peakRssIncreaseMiB: number; messages?: string[] }>;
  loadavg: number[];
  message?: string;
}

function status(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Reset the kernel's peak-RSS mark of a process (Linux ≥ 4.0); false where not allowed. */
function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
}

/** Poll /health one request at a time, 10 ms apart, until stopped; also track the RSS (fallback peak). */
function pollHealth(url: string, pid: number): { stop(): Promise<{ lat: number[]; polledPeak: number }> } {
  const lat: number[] = [];
  let polledPeak = status(pid, 'VmRSS');
  let done = false;
  const run = (async () => {
    while (!done) {
      const t0 = performance.now();
      await (await fetch(`${url}/health`)).arrayBuffer();
      lat.push(performance.now() - t0);
      polledPeak = Math.max(polledPeak, status(pid, 'VmRSS'));
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return {
    async stop() {
      done = true;
      await run;
      return { lat, polledPeak };
    },
  };
}

async function upload(env: Env, file: { path: string; name: string }): Promise<{ status: number; body: { error?: string; message?: string } }> {
  const form = new FormData();
  form.append('file', new Blob([readFileSync(file.path)]), file.name);
  const r = await fetch(`${env.url}/api/datasets/${env.datasetId}/images`, { method: 'POST', headers: env.auth, body: form });
  return { status: r.status, body: (await r.json()) as { error?: string; message?: string } };
}

let envPromise: Promise<Env> | undefined;

async function startServer(state: State): Promise<Env> {
  const prof = process.env.HOSTILE_CPU_PROF;
  if (prof) mkdirSync(prof, { recursive: true });
  const server = await startServeChild({
    dir: mkdtempSync(join(tmpdir(), 'medmask-bench-hostile-')),
    args: ['--log-level', 'warn'],
    env: { MEDMASK_MAX_VOXELS: '100000000' },
    ...(prof ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${prof}`] } : {}),
  });
  const url = server.url;
  const auth = { authorization: `Bearer ${server.token}` };
  const post = async (path: string, body: unknown) => ((await (await fetch(`${url}${path}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()) as { id: string }).id;
  const project = await post('/api/projects', { name: 'bench' });
  const datasetId = await post(`/api/projects/${project}/datasets`, { name: 'bench' });
  const env: Env = { url, pid: server.pid, auth, datasetId, idle: { lat: [], rssMiB: 0 } };
  // Start both decode workers (their first read loads the readers), then measure the server at rest.
  await Promise.all([upload(env, state.files.ordinary!), upload(env, { ...state.files.ordinary!, name: 'warm2.png' })]);
  const idle = pollHealth(url, env.pid);
  await new Promise((r) => setTimeout(r, 2000));
  env.idle = { lat: (await idle.stop()).lat, rssMiB: status(env.pid, 'VmRSS') };
  return env;
}

function caseRunner(name: string, fileKey: string, parallel = 1) {
  const detail: Detail = { case: name, idleHealthMs: [], idleRssMiB: 0, healthMs: [], answers: [], loadavg: [] };
  return async ({ state }: { state: State }) => {
    const env = await (envPromise ??= startServer(state));
    detail.idleHealthMs = env.idle.lat;
    detail.idleRssMiB = env.idle.rssMiB;
    const exact = resetPeak(env.pid);
    const h = pollHealth(env.url, env.pid);
    const t0 = performance.now();
    const f = state.files[fileKey]!;
    const rs = await Promise.all(Array.from({ length: parallel }, (_, k) => upload(env, { ...f, name: f.name.replace(/(\.[a-z.]+)?$/, `-${detail.answers.length}-${k}$1`) })));
    const ms = performance.now() - t0;
    const r = rs.find((x) => x.status !== rs[0]!.status) ?? rs[0]!;
    await new Promise((res) => setTimeout(res, 300));
    const { lat, polledPeak } = await h.stop();
    const peak = exact ? status(env.pid, 'VmHWM') : polledPeak;
    detail.healthMs.push(...lat);
    detail.answers.push({ status: r.status, ...(r.body.error ? { error: r.body.error } : {}), ms, peakRssIncreaseMiB: peak - env.idle.rssMiB, ...(parallel > 1 ? { messages: rs.map((x) => String(x.body.message).slice(0, 160)) } : {}) });
    detail.loadavg = loadavg();
    detail.message = r.body.message?.slice(0, 200);
    writeFileSync(join(state.dir, `detail-${name}.json`), JSON.stringify(detail));
    return { elapsedMs: ms };
  };
}

const CASES: Array<[string, string, number?]> = [
  ['ordinary-png', 'ordinary'],
  ['nifti-bomb', 'bomb'],
  ['nifti-bomb-x2', 'bomb', 2],
  ['png-16000', 'png'],
  ['nrrd-94-bytes', 'nrrd'],
];

export default defineBenchmark<State>({
  description: 'hostile uploads (1.5 GiB NIfTI gzip bomb, 16000² PNG, 94-byte NRRD) against medmask serve: answer time, server peak RSS increase, /health latency during the upload vs idle',
  repetitions: 4,
  async setup(dir) {
    const header94 = Buffer.from('NRRD0004\ntype: short\ndimension: 3\nsizes: 64 64 64\nencoding: raw\nendian: little\n\n'.padEnd(93, '#') + '\n');
    const make: Record<string, [string, () => Buffer]> = {
      ordinary: ['ordinary.png', () => hugePng(8, 8)],
      bomb: ['bomb.nii.gz', () => niftiBomb(1536)],
      png: ['huge.png', () => hugePng(16000, 16000)],
      nrrd: ['header.bin', () => header94],
    };
    const files: State['files'] = {};
    for (const [key, [name, build]] of Object.entries(make)) {
      const path = join(dir, name);
      if (!existsSync(path)) writeFileSync(path, build());
      files[key] = { path, name, bytes: readFileSync(path).length };
    }
    for (const [c] of CASES) rmSync(join(dir, `detail-${c}.json`), { force: true });
    return { dir, files };
  },
  cases: CASES.map(([name, key, parallel]) => ({ name, ...(name === 'ordinary-png' ? { baseline: true } : {}), run: caseRunner(name, key, parallel) })),
  summarize(_results: CaseResult[], state: State) {
    const out: Record<string, number | string | null> = {};
    const idleAll: number[] = [];
    const r1 = (x: number) => Math.round(x * 10) / 10;
    for (const [c] of CASES) {
      const f = join(state.dir, `detail-${c}.json`);
      if (!existsSync(f)) continue;
      const d = JSON.parse(readFileSync(f, 'utf8')) as Detail;
      idleAll.push(...d.idleHealthMs);
      const statuses = [...new Set(d.answers.map((a) => `${a.status}${a.error ? ` ${a.error}` : ''}`))].join(', ');
      out[`${c}.answer`] = statuses;
      out[`${c}.answer_ms_max`] = r1(Math.max(...d.answers.map((a) => a.ms)));
      out[`${c}.rss_increase_mib_max`] = r1(Math.max(...d.answers.map((a) => a.peakRssIncreaseMiB)));
      out[`${c}.health_p50_ms`] = r1(pct(d.healthMs, 50));
      out[`${c}.health_p99_ms`] = r1(pct(d.healthMs, 99));
      out[`${c}.health_max_ms`] = r1(Math.max(...d.healthMs));
      out[`${c}.health_polls`] = d.healthMs.length;
      out[`${c}.idle_health_p99_ms`] = r1(pct(d.idleHealthMs, 99));
      out[`${c}.loadavg_1min`] = r1(d.loadavg[0] ?? NaN);
    }
    out['idle.health_p50_ms'] = r1(pct(idleAll, 50));
    out['idle.health_p99_ms'] = r1(pct(idleAll, 99));
    out['idle.health_polls'] = idleAll.length;
    const bomb = (k: string) => out[`nifti-bomb.${k}`] as number;
    if (out['nifti-bomb.answer'] !== undefined) {
      out['goal.bomb_rss_under_100mib'] = bomb('rss_increase_mib_max') < 100 ? 'met' : 'missed';
      out['goal.bomb_health_p99_under_100ms'] = bomb('health_p99_ms') < 100 ? 'met' : 'missed';
      out['goal.bomb_answer_under_1s'] = bomb('answer_ms_max') < 1000 && /^41[3]|^422/.test(String(out['nifti-bomb.answer'])) ? 'met' : 'missed';
    }
    out.loadavg_at_end = loadavg().map(r1).join(' ');
    return out;
  },
});
