// Jobs that fan out into per-case tasks, on real PostgreSQL and Redis (started for this file):
// tasks spread over two worker processes; a worker killed with SIGKILL costs only its current case;
// PostgreSQL stopped and started, Redis killed and restarted (with and without persistence) mid-job
// end with every job done, none stuck, no duplicates; a job past BullMQ's stalled limit is marked
// failed by the reconciler and runs again after a retry; a case that fails its tries leaves the job
// `partial` until its failed cases are retried; unreachable Redis or PostgreSQL at start is exit 6.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createVolume } from '../../src/core/volume.js';
import { sql } from 'kysely';
import { BullmqQueue, JOB_FORMAT } from '../../src/queue/index.js';
import { createJob } from '../../src/store/jobs.js';
import { FsBlobStore, openStore, type Store } from '../../src/store/index.js';
import { ensureDataset, ensureProject, insertImage } from '../../src/store/volumes.js';
import { ROOT, watchLines } from '../helpers/cli.js';
import { startTestServer, waitFor, waitJob, type TestServer } from '../helpers/server.js';
import { testHandlersJs } from '../helpers/test-handlers-js.js';
import { freePort, startPostgres, startRedis, type RestartableService } from '../helpers/services.js';

let redis: RestartableService;
let pg: RestartableService;
let dir: string;
let store: Store;
let blobs: FsBlobStore;

before(async () => {
  [redis, pg] = await Promise.all([startRedis(), startPostgres()]);
  dir = mkdtempSync(join(tmpdir(), 'medmask-fanout-test-'));
  store = await openStore(pg.url);
  blobs = new FsBlobStore(join(dir, 'blobs'), { fsync: false });
});
after(async () => {
  await store?.close();
  await Promise.all([redis?.stop(), pg?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

/** A data set of `n` tiny images named i00…, in `db`. */
async function dataset(db: Store, name: string, n: number): Promise<string> {
  const project = await ensureProject(db.db, 'fan', null);
  const id = await ensureDataset(db.db, project, name, null);
  for (let i = 0; i < n; i++) {
    await insertImage(db.db, blobs, { datasetId: id, name: `i${String(i).padStart(2, '0')}.nii.gz`, volume: createVolume([4, 4, 1], 'uint8', { data: new Uint8Array(16).fill(i) }), format: 'nifti', createdBy: null });
  }
  return id;
}

let handlersJs: string | undefined;

function worker(s: DbServer, queueName: string, env: Record<string, string> = {}, redisUrl = redis.url): { child: ChildProcess; lines: string[]; ready: Promise<boolean> } {
  handlersJs ??= testHandlersJs(dir); // workers start from bin/medmask.js without tsx
  const child = spawn(process.execPath, [join(ROOT, 'bin/medmask.js'), 'worker', '--db', s.dbUrl, '--blobs', join(dir, 'blobs'), '--queue', redisUrl, '--lock-ms', '1500', '--handlers', handlersJs, '--data-dir', join(dir, `w-${Date.now()}-${Math.random()}`)], {
    cwd: ROOT,
    env: { ...process.env, MEDMASK_QUEUE_NAME: queueName, MEDMASK_JOB_ATTEMPTS: '3', MEDMASK_STALE_MS: '2000', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { lines, found: ready } = watchLines(child, (l) => (l.includes(' ready: ') ? true : undefined), 'worker');
  return { child, lines, ready };
}

async function stop(w: { child: ChildProcess } | undefined, signal: NodeJS.Signals = 'SIGTERM') {
  if (!w || w.child.exitCode !== null || w.child.signalCode !== null) return;
  w.child.kill(signal);
  await new Promise((r) => w.child.once('exit', r));
}

/** Predictions of a job: (image, priority) sorted — a test-fan task writes priority = its case index. */
async function predictions(db: Store, jobId: string): Promise<string[]> {
  const rows = await db.db.selectFrom('predictions').select(['image_id', 'priority']).where('job_id', '=', jobId).execute();
  return rows.map((r) => `${r.image_id}:${r.priority}`).sort();
}

/** What a clean run of test-fan over `datasetId` records: every image with its index. */
async function expected(db: Store, datasetId: string): Promise<string[]> {
  const images = await db.db.selectFrom('images').select('id').where('dataset_id', '=', datasetId).orderBy('name').execute();
  return images.map((img, i) => `${img.id}:${i}`).sort();
}

type DbServer = TestServer & { dbUrl: string };
let databases = 0;

/** A server on a database of its own (each test server makes the same users) with a BullMQ queue on `url`. */
async function bullServer(name: string, url = redis.url): Promise<DbServer> {
  const db = `fan_${++databases}_${process.pid}`;
  await sql.raw(`create database ${db}`).execute(store.db);
  const dbUrl = pg.url.replace(/\/[^/]*$/, `/${db}`);
  const s = await startTestServer({ db: dbUrl, queue: new BullmqQueue({ url, name }), reconcileMs: 300, staleMs: 2000 });
  return Object.assign(s, { dbUrl });
}

async function submit(s: TestServer, type: string, input: unknown): Promise<string> {
  const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type, input } });
  assert.equal(r.statusCode, 202, r.body);
  return r.json().job.id as string;
}

/** Poll the job row directly (also while the database restarts: errors count as "not yet"). */
async function finished(s: TestServer, jobId: string, ms = 180_000) {
  return waitFor(async () => {
    const j = await s.store.db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirst().catch(() => undefined);
    return j && ['done', 'partial', 'failed'].includes(j.status) ? j : null;
  }, ms, `job ${jobId} to finish`);
}

test('in-process: a case failing its tries leaves the job partial with the error; retrying the failed cases completes it with no duplicates', async () => {
  const s = await startTestServer();
  try {
    const project = (await s.as('reviewer', { method: 'POST', url: '/api/projects', payload: { name: 'p' } })).json().id as string;
    const ds = (await s.as('reviewer', { method: 'POST', url: `/api/projects/${project}/datasets`, payload: { name: 'd' } })).json().id as string;
    for (let i = 0; i < 6; i++) await insertImage(s.store.db, s.blobs, { datasetId: ds, name: `i${String(i).padStart(2, '0')}.nii.gz`, volume: createVolume([4, 4, 1], 'uint8', { data: new Uint8Array(16).fill(i) }), format: 'nifti', createdBy: null });
    const marker = join(s.dir, 'fail-marker');
    writeFileSync(marker, '');
    const id = await submit(s, 'test-fan', { datasetId: ds, delayMs: 0, failNames: ['i02.nii.gz', 'i04.nii.gz'], failWhile: marker });
    const job = await waitJob(s, id);
    assert.equal(job.status, 'partial', JSON.stringify(job));
    assert.equal(job.result.done, 4);
    const failed = job.result.failed as { error: string }[];
    assert.equal(failed.length, 2);
    assert.match(failed[0]!.error, /planned failure of i02/);
    const view = (await s.as('viewer', { url: `/api/jobs/${id}` })).json();
    assert.deepEqual(view.tasks, { total: 6, pending: 0, running: 0, done: 4, failed: 2 });
    assert.match(view.message, /4 of 6 cases done, 2 failed/);
    const tasks = (await s.as('viewer', { url: `/api/jobs/${id}/tasks?status=failed` })).json();
    assert.deepEqual(tasks.tasks.map((t: { input: { name: string }; attempts: number }) => [t.input.name, t.attempts]), [['i02.nii.gz', 3], ['i04.nii.gz', 3]], 'each failed case had its three tries');
    assert.equal((await predictions(s.store, id)).length, 4);
    // Still failing: a retry ends partial again; fixed: a retry runs only the two failed cases.
    rmSync(marker);
    const retry = await s.as('reviewer', { method: 'POST', url: `/api/jobs/${id}/retry` });
    assert.equal(retry.statusCode, 202, retry.body);
    assert.equal(retry.json().tasksReset, 2);
    const again = await waitJob(s, id);
    assert.equal(again.status, 'done', JSON.stringify(again));
    assert.equal(again.result.done, 6);
    assert.deepEqual(await predictions(s.store, id), await expected(s.store, ds), 'every case once, as a clean run');
    const rows = await s.store.db.selectFrom('job_tasks').select(['key', 'attempts']).where('job_id', '=', id).execute();
    assert.equal(rows.filter((r) => r.attempts === 1).length, 6, 'after the retry every task has one try on record (the four done ones did not run again)');
    const done = await s.as('reviewer', { method: 'POST', url: `/api/jobs/${id}/retry` });
    assert.equal(done.statusCode, 409);
    assert.match(done.json().message, /is done: there is nothing to retry/);
  } finally {
    await s.close();
  }
});

test('a worker refuses a job of a newer format with a clear error (upgrade the workers) and leaves it failed, not run', async () => {
  const s = await startTestServer();
  try {
    const { job } = await createJob(s.store.db, { type: 'test-fail', input: { times: 0, tag: 'newer' }, format: JOB_FORMAT + 1 });
    await s.queue.enqueue({ jobId: job.id, type: job.type });
    const j = await waitJob(s, job.id);
    assert.equal(j.status, 'failed');
    assert.match(String(j.error), new RegExp(`has format ${JOB_FORMAT + 1} but this worker .* understands format ${JOB_FORMAT} at most`));
    const row = await s.store.db.selectFrom('jobs').select(['attempts', 'result']).where('id', '=', job.id).executeTakeFirstOrThrow();
    assert.equal(row.result, null, 'the handler never ran');
    assert.equal(row.attempts, 3, 'refused on every try, then marked failed');
  } finally {
    await s.close();
  }
});

test('bullmq: a job fans out over two worker processes; SIGKILL of one mid-job redoes only its current case and ends as a clean run', async () => {
  const name = `fan-${Date.now()}`;
  const s = await bullServer(name);
  const a = worker(s, name);
  const b = worker(s, name);
  try {
    await Promise.all([a.ready, b.ready]);
    const ds = await dataset(s.store, 'two-workers', 16);
    const id = await submit(s, 'test-fan', { datasetId: ds, delayMs: 250 });
    const pidOf = (w: { child: ChildProcess }) => String(w.child.pid);
    const byWorker = async () => {
      const rows = await s.store.db.selectFrom('job_tasks').select(['worker', 'status']).where('job_id', '=', id).execute();
      const n = (w: { child: ChildProcess }, st: string) => rows.filter((r) => r.worker?.split(':').pop() === pidOf(w) && r.status === st).length;
      return { aDone: n(a, 'done'), bDone: n(b, 'done'), aRunning: n(a, 'running') };
    };
    await waitFor(async () => {
      const c = await byWorker();
      return c.aDone >= 2 && c.bDone >= 2 && c.aRunning === 1;
    }, 30_000, 'both workers done with two cases each, A on its third');
    await stop(a, 'SIGKILL');
    const job = await finished(s, id);
    assert.equal(job.status, 'done', job.error ?? '');
    const result = JSON.parse(job.result!) as { done: number; perPid: Record<string, number> };
    assert.equal(result.done, 16);
    assert.ok(result.perPid[pidOf(a)]! >= 2 && result.perPid[pidOf(b)]! >= 2, `both workers recorded work: ${JSON.stringify(result.perPid)}`);
    const tries = await s.store.db.selectFrom('job_tasks').select(['attempts']).where('job_id', '=', id).execute();
    assert.deepEqual(tries.map((t) => t.attempts).sort(), [...Array(15).fill(1), 2], 'only the killed worker\'s case ran twice');
    assert.deepEqual(await predictions(s.store, id), await expected(s.store, ds), 'same rows as a clean run, none twice');
  } finally {
    await stop(a, 'SIGKILL');
    await stop(b);
    await s.close();
  }
});

test('bullmq: PostgreSQL stopped and started mid-job: the worker waits and reconnects, every job ends done, no duplicates', async () => {
  const name = `pg-${Date.now()}`;
  const s = await bullServer(name);
  const w = worker(s, name);
  try {
    await w.ready;
    const ds = await dataset(s.store, 'pg-restart', 10);
    const fan = await submit(s, 'test-fan', { datasetId: ds, delayMs: 200 });
    const rows = await submit(s, 'test-rows', { datasetId: ds, delayMs: 50, tag: 'pg' });
    await waitFor(async () => (await predictions(s.store, fan)).length >= 3, 30_000, 'the fan-out job under way');
    await pg.down();
    await new Promise((r) => setTimeout(r, 3000));
    await pg.up();
    for (const id of [fan, rows]) {
      const j = await finished(s, id).catch((e: Error) => assert.fail(`${e.message}; worker:\n${w.lines.slice(-40).join('\n')}`));
      assert.equal(j.status, 'done', j.error ?? '');
    }
    assert.deepEqual(await predictions(s.store, fan), await expected(s.store, ds));
    assert.equal((await predictions(s.store, rows)).length, 10);
    assert.equal(w.child.exitCode, null, 'the worker is still running');
    assert.ok(w.lines.some((l) => /database (unreachable|error)/.test(l)), `the outage was logged:\n${w.lines.join('\n')}`);
  } finally {
    await stop(w);
    await s.close();
  }
});

for (const persistence of [false, true]) {
  test(`bullmq: Redis killed and restarted mid-job (${persistence ? 'appendonly yes' : 'no persistence'}): every job ends done, none stuck, no duplicates`, async () => {
    const r = persistence ? await startRedis({ persistence: true }) : redis;
    const name = `redis-${persistence}-${Date.now()}`;
    const s = await bullServer(name, r.url);
    const w = worker(s, name, {}, r.url);
    try {
      await w.ready;
      const ds = await dataset(s.store, `redis-${persistence}`, 10);
      const fan = await submit(s, 'test-fan', { datasetId: ds, delayMs: 200, tag: String(persistence) });
      const waiting = await submit(s, 'test-rows', { datasetId: ds, delayMs: 10, tag: `redis-${persistence}` });
      await waitFor(async () => (await predictions(s.store, fan)).length >= 3, 30_000, 'the fan-out job under way');
      await r.down();
      await new Promise((res) => setTimeout(res, 1000));
      await r.up();
      for (const id of [fan, waiting]) assert.equal((await finished(s, id)).status, 'done', id);
      assert.deepEqual(await predictions(s.store, fan), await expected(s.store, ds));
      assert.equal((await predictions(s.store, waiting)).length, 10);
      assert.equal(w.child.exitCode, null, 'the worker is still running');
    } finally {
      await stop(w);
      await s.close();
      if (persistence) await r.stop();
    }
  });
}

test('bullmq: past the stalled limit a job is marked failed by the reconciler; POST /api/jobs/:id/retry runs it to done', async () => {
  const name = `stall-${Date.now()}`;
  const s = await bullServer(name);
  const env = { MEDMASK_MAX_STALLED: '0' };
  const a = worker(s, name, env);
  let b: ReturnType<typeof worker> | undefined;
  try {
    await a.ready;
    const ds = await dataset(s.store, 'stall', 12);
    const id = await submit(s, 'test-rows', { datasetId: ds, delayMs: 150, tag: 'stall' });
    await waitFor(async () => (await predictions(s.store, id)).length >= 3, 30_000, 'worker A under way');
    await stop(a, 'SIGKILL');
    b = worker(s, name, env); // its stalled check finds A's job: stalled once, limit 0 → BullMQ fails it
    await b.ready;
    const failed = await finished(s, id);
    assert.equal(failed.status, 'failed');
    assert.match(failed.error!, /stopped working on this job .* retry it with POST \/api\/jobs\/\w+\/retry/);
    const retry = await s.as('reviewer', { method: 'POST', url: `/api/jobs/${id}/retry` });
    assert.equal(retry.statusCode, 202, retry.body);
    const done = await finished(s, id);
    assert.equal(done.status, 'done', done.error ?? '');
    assert.equal((await predictions(s.store, id)).length, 12, 'no duplicates');
  } finally {
    await stop(a, 'SIGKILL');
    await stop(b);
    await s.close();
  }
});

test('bullmq: a torch job is refused while no live worker has torch (ENVIRONMENT naming python3-torch), then runs only on the worker that has it, waiting visibly while it is busy', async () => {
  const name = `torch-${Date.now()}`;
  const s = await bullServer(name);
  const plain = worker(s, name, { MEDMASK_CAPABILITIES: 'none' });
  let torch: ReturnType<typeof worker> | undefined;
  try {
    await plain.ready;
    assert.ok(plain.lines.some((l) => /capabilities none/.test(l)), plain.lines.join('\n'));
    const refused = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'test-torch', input: { delayMs: 0 } } });
    assert.equal(refused.statusCode, 503, refused.body);
    assert.match(refused.json().message, new RegExp(`"test-torch" jobs need torch \\(Debian package python3-torch\\), and none of the 1 live worker\\(s\\) has it \\(.*:${plain.child.pid}: no capabilities\\)`));
    assert.match(refused.json().hint, /apt-get install -y python3-torch/);
    torch = worker(s, name, { MEDMASK_CAPABILITIES: 'torch' });
    await torch.ready;
    const ids = [];
    for (const tag of ['a', 'b', 'c']) {
      const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'test-torch', input: { delayMs: 400, tag } } });
      assert.equal(r.statusCode, 202, r.body);
      assert.match(r.json().job.message, new RegExp(`waiting for a worker with torch \\(.*:${torch.child.pid}\\)`));
      ids.push(r.json().job.id as string);
    }
    const waiting = await s.store.db.selectFrom('jobs').select(['status', 'message']).where('id', '=', ids[2]!).executeTakeFirstOrThrow();
    assert.deepEqual(waiting.status, 'queued', 'the third waits while the torch worker runs the first');
    for (const id of ids) {
      const j = await finished(s, id);
      assert.equal(j.status, 'done', j.error ?? '');
      assert.equal(JSON.parse(j.result!).pid, torch.child.pid, 'run by the worker that has torch');
    }
  } finally {
    await stop(plain);
    await stop(torch);
    await s.close();
  }
});

test('serve and worker: unreachable Redis or PostgreSQL at start → exit 6 with the error on one line', async () => {
  const closed = await freePort();
  const runs: [string, string[]][] = [
    ['worker, no Redis', ['worker', '--db', pg.url, '--queue', `redis://127.0.0.1:${closed}`]],
    ['worker, no PostgreSQL', ['worker', '--db', `postgres://app@127.0.0.1:${closed}/x`, '--queue', redis.url]],
    ['serve, no Redis', ['serve', '--db', join(dir, 'exit6.sqlite'), '--queue', `redis://127.0.0.1:${closed}`, '--port', '0']],
  ];
  await Promise.all(runs.map(async ([what, args]) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/medmask.js'), ...args, '--data-dir', join(dir, `exit6-${what.replace(/\W/g, '')}`)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    assert.equal(code, 6, `${what}: ${err}`);
    const first = err.split('\n')[0]!;
    assert.match(first, what.includes('Redis') ? new RegExp(`^medmask: error \\[ENVIRONMENT\\]: Redis at redis://127\\.0\\.0\\.1:${closed} does not answer: .*ECONNREFUSED`) : /^medmask: error \[ENVIRONMENT\]: cannot reach the database .*ECONNREFUSED/, what);
  }));
});
