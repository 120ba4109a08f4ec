/**
 * The server under a loopback load generator (autocannon): review-queue reads per second and mask
 * saves per second, with p50 / p99 latency, on SQLite and on PostgreSQL.
 *
 * Each case starts its own `medmask serve` child process (so the load generator does not share the
 * server's event loop) on a data folder filled directly through the store: 1000 review cases on
 * 256×256 images with random priorities. A repetition sends a fixed number of requests over 10
 * connections, so the median time per repetition is the time for that many requests.
 * - `queue-read`: GET /api/review/queue?limit=50 (count + 50 rows by priority, with joins).
 * - `mask-save`: POST /api/masks/:id/versions with a whole 256×256 label map (base64, 87 KB),
 *   spread over the 1000 cases, each carrying the version it edits (tracked from the answers):
 *   encode NIfTI + gzip + blob write with fsync + the versioned insert, plus the audit row.
 * PostgreSQL runs from Debian's binaries in a temp folder with fsync off (as in the tests).
 * Latencies, throughput and status counts per repetition go to bench/out/server-detail.json. Cases
 * return `{ elapsedMs }` (first request sent → last answer received): autocannon itself notices
 * that `amount` is reached only on a one-second tick.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { sql } from 'kysely';
import { createVolume } from '../src/core/volume.js';
import { mulberry32 } from '../src/core/random.js';
import { ensureMask } from '../src/store/masks.js';
import { FsBlobStore, openStore } from '../src/store/index.js';
import { ensureDataset, ensureProject, insertImage } from '../src/store/volumes.js';
import { startPostgres, type Service } from '../test/helpers/services.js';
import { defineBenchmark } from './run.js';
import { startServeChild } from './serve-child.js';

const HERE = new URL('.', import.meta.url).pathname;
const CASES = 1000;
const SIZE = 256;

interface State {
  requests: number;
  connections: number;
  cases: number;
  maskBytes: number;
}

interface Env {
  url: string;
  token: string;
  maskIds: string[];
}

let env: Promise<Env> | undefined;
const runs: Record<string, unknown>[] = [];

async function startServer(engine: 'sqlite' | 'postgres'): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), `medmask-bench-server-${engine}-`));
  let pg: Service | undefined;
  if (engine === 'postgres') pg = await startPostgres();
  const db = pg?.url ?? join(dir, 'medmask.sqlite');
  // Fill the store directly: 1000 cases on distinct 256×256 images.
  const store = await openStore(db);
  const blobs = new FsBlobStore(join(dir, 'blobs'), { fsync: false });
  const project = await ensureProject(store.db, 'bench', null);
  const ds = await ensureDataset(store.db, project, 'bench', null);
  const rnd = mulberry32(3);
  const maskIds: string[] = [];
  for (let i = 0; i < CASES; i++) {
    const data = new Uint8Array(SIZE * SIZE);
    data[i] = 1; // distinct content, distinct blob
    const { image } = await insertImage(store.db, blobs, { datasetId: ds, name: `img_${i}.png`, volume: createVolume([SIZE, SIZE, 1], 'uint8', { data }), format: 'image', createdBy: null });
    maskIds.push((await ensureMask(store.db, image.id, 'lesion', { priority: rnd(), decision: 'review' })).id);
  }
  // Fresh tables have no planner statistics yet; analyse as autovacuum would on a live server.
  await sql`analyze`.execute(store.db);
  await store.close();
  const { url, token } = await startServeChild({ dir, args: ['--db', db, '--log-level', 'silent'] });
  return { url, token, maskIds };
}

/** autocannon notices `amount` reached only on its one-second tick: time the responses ourselves. */
function clock() {
  const t0 = performance.now();
  let last = t0;
  return { onResponse: () => void (last = performance.now()), elapsedMs: () => last - t0 };
}

function record(name: string, r: autocannon.Result, elapsedMs: number, extra: Record<string, unknown> = {}): void {
  const row = { case: name, requests: r.requests.total, elapsedMs: +elapsedMs.toFixed(1), reqPerS: +((r.requests.total * 1000) / elapsedMs).toFixed(1), p50Ms: r.latency.p50, p99Ms: r.latency.p99, maxMs: r.latency.max, non2xx: r.non2xx, errors: r.errors, ...extra };
  runs.push(row);
  const out = join(HERE, 'out');
  mkdirSync(out, { recursive: true });
  const file = join(out, 'server-detail.json');
  const all = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown[]>) : {};
  all[name] = runs.filter((x) => x.case === name);
  writeFileSync(file, JSON.stringify(all, null, 1) + '\n');
  process.stderr.write(`  ${name}: ${row.reqPerS} req/s, p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms${row.non2xx ? `, ${row.non2xx} non-2xx` : ''}\n`);
}

async function queueRead(name: string, engine: 'sqlite' | 'postgres', s: State): Promise<{ elapsedMs: number }> {
  env ??= startServer(engine);
  const e = await env;
  const c = clock();
  const r = await autocannon({ url: `${e.url}/api/review/queue?limit=50`, connections: s.connections, amount: s.requests, headers: { authorization: `Bearer ${e.token}` }, requests: [{ method: 'GET', onResponse: c.onResponse }] });
  record(name, r, c.elapsedMs());
  return { elapsedMs: c.elapsedMs() };
}

/** Versions of the masks as the load generator last saw them (kept across repetitions). */
const versions = new Map<string, number>();

async function maskSave(name: string, engine: 'sqlite' | 'postgres', s: State): Promise<{ elapsedMs: number }> {
  env ??= startServer(engine);
  const e = await env;
  const c = clock();
  const bodies = Array.from({ length: 8 }, (_, v) => {
    const labels = new Uint8Array(SIZE * SIZE);
    labels.fill(1, v * 1000, v * 1000 + 5000);
    return Buffer.from(labels).toString('base64');
  });
  const statuses: Record<number, number> = {};
  let next = 0;
  const r = await autocannon({
    url: e.url,
    connections: s.connections,
    amount: s.requests,
    headers: { authorization: `Bearer ${e.token}`, 'content-type': 'application/json' },
    requests: [
      {
        method: 'POST',
        setupRequest(req, context) {
          const i = next++;
          const mask = e.maskIds[i % e.maskIds.length]!;
          (context as { mask?: string }).mask = mask;
          return { ...req, path: `/api/masks/${mask}/versions`, body: `{"baseVersion":${versions.get(mask) ?? 0},"labels":"${bodies[i % bodies.length]}"}` };
        },
        onResponse(status, body, context) {
          c.onResponse();
          statuses[status] = (statuses[status] ?? 0) + 1;
          const mask = (context as { mask: string }).mask;
          const b = JSON.parse(body) as { version?: number; details?: { currentVersion?: number } };
          const v = status === 201 ? b.version : b.details?.currentVersion;
          if (typeof v === 'number') versions.set(mask, Math.max(v, versions.get(mask) ?? 0));
        },
      },
    ],
  });
  record(name, r, c.elapsedMs(), { statuses });
  return { elapsedMs: c.elapsedMs() };
}

export default defineBenchmark<State>({
  description: 'medmask serve under autocannon (10 connections, loopback): review-queue reads and mask saves, SQLite vs PostgreSQL',
  repetitions: 3,
  async setup(_dir, quick) {
    return { requests: quick ? 300 : 3000, connections: 10, cases: CASES, maskBytes: SIZE * SIZE };
  },
  cases: [
    { name: 'queue-read sqlite', baseline: true, run: ({ state }) => queueRead('queue-read sqlite', 'sqlite', state) },
    { name: 'mask-save sqlite', run: ({ state }) => maskSave('mask-save sqlite', 'sqlite', state) },
    { name: 'queue-read postgres', run: ({ state }) => queueRead('queue-read postgres', 'postgres', state) },
    { name: 'mask-save postgres', run: ({ state }) => maskSave('mask-save postgres', 'postgres', state) },
  ],
});
