// Job queues: the in-process queue and BullMQ on a real redis-server (started from Debian's
// package for this file, on a loopback port). Retries with back-off, idempotency by input hash,
// progress, and a worker killed with SIGKILL mid-job whose job another worker completes once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createVolume } from '../../src/core/volume.js';
import { BullmqQueue, InProcessQueue, JobHandlerRegistry, createJobProcessor, type JobQueue } from '../../src/queue/index.js';
import { FsBlobStore, createJob, getJob, openStore, type Store } from '../../src/store/index.js';
import { ensureDataset, ensureProject, insertImage } from '../../src/store/volumes.js';
import { ROOT, watchLines } from '../helpers/cli.js';
import { startTestServer, waitFor } from '../helpers/server.js';
import { startPostgres, startRedis, type Service } from '../helpers/services.js';
import register from '../helpers/test-handlers.js';

let redis: Service;
let pg: Service;
let dir: string;
let store: Store;
let blobs: FsBlobStore;
let datasetId: string;
const handlers = new JobHandlerRegistry();
register(handlers);

before(async () => {
  [redis, pg] = await Promise.all([startRedis(), startPostgres()]);
  dir = mkdtempSync(join(tmpdir(), 'medmask-queue-test-'));
  store = await openStore(pg.url);
  blobs = new FsBlobStore(join(dir, 'blobs'), { fsync: false });
  const project = await ensureProject(store.db, 'q', null);
  datasetId = await ensureDataset(store.db, project, 'q', null);
  for (let i = 0; i < 20; i++) {
    await insertImage(store.db, blobs, { datasetId, name: `i${String(i).padStart(2, '0')}.nii.gz`, volume: createVolume([4, 4, 1], 'uint8', { data: new Uint8Array(16).fill(i) }), format: 'nifti', createdBy: null });
  }
});
after(async () => {
  await store?.close();
  await Promise.all([redis?.stop(), pg?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

async function done(id: string, ms = 30_000) {
  return waitFor(async () => {
    const j = await getJob(store.db, id);
    return j.status === 'done' || j.status === 'failed' ? j : null;
  }, ms, `job ${id}`);
}

for (const kind of ['in-process', 'bullmq'] as const) {
  test(`${kind}: a failing job is retried with exponential back-off, then succeeds; a job failing every try is marked failed`, async () => {
    const q: JobQueue = kind === 'bullmq' ? new BullmqQueue({ url: redis.url, name: `retry-${Date.now()}`, attempts: 3, backoffMs: 200 }) : new InProcessQueue({ attempts: 3, backoffMs: 200 });
    try {
      await q.consume(createJobProcessor({ store, blobs, handlers, workDir: join(dir, 'work') }));
      const { job } = await createJob(store.db, { type: 'test-fail', input: { times: 2, tag: kind } });
      await q.enqueue({ jobId: job.id, type: job.type });
      const j = await done(job.id);
      assert.equal(j.status, 'done', j.error ?? '');
      assert.equal(j.attempts, 3);
      const r = JSON.parse(j.result!) as { attempts: number; gapsMs: number[] };
      assert.equal(r.attempts, 3);
      assert.ok(r.gapsMs[0]! >= 190 && r.gapsMs[1]! >= 390, `back-off doubles: gaps ${r.gapsMs.join(', ')} ms`);
      const { job: bad } = await createJob(store.db, { type: 'test-fail', input: { times: 99, tag: kind } });
      await q.enqueue({ jobId: bad.id, type: bad.type });
      const b = await done(bad.id);
      assert.equal(b.status, 'failed');
      assert.equal(b.attempts, 3);
      assert.match(b.error!, /planned failure 3/);
    } finally {
      await q.close(1000);
    }
  });
}

test('bullmq through the API: idempotent by input hash, progress reported, duplicate deliveries run nothing', async () => {
  const name = `api-${Date.now()}`;
  const serverQueue = new BullmqQueue({ url: redis.url, name });
  const s = await startTestServer({ db: pg.url, queue: serverQueue });
  const worker = new BullmqQueue({ url: redis.url, name });
  try {
    const input = { datasetId, delayMs: 40, tag: 'api' };
    const a = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'test-rows', input } });
    const b = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'test-rows', input: { tag: 'api', delayMs: 40, datasetId } } });
    assert.equal(a.json().job.id, b.json().job.id, 'same input (keys in any order) → same job');
    assert.equal(b.json().created, false);
    assert.equal((await serverQueue.counts()).waiting, 1, 'one message on the queue');
    const id = a.json().job.id as string;
    await worker.consume(createJobProcessor({ store, blobs, handlers, workDir: join(dir, 'work') }));
    const mid = await waitFor(async () => {
      const j = await getJob(store.db, id);
      return j.progress > 0 && j.progress < 1 ? j : null;
    }, 20_000, 'progress between 0 and 1');
    assert.equal(mid.status, 'running');
    assert.match(mid.message!, /row \d+\/20/);
    const j = await done(id);
    assert.equal(j.status, 'done');
    const rows = async () => Number((await store.db.selectFrom('predictions').select((eb) => eb.fn.countAll<number>().as('n')).where('job_id', '=', id).executeTakeFirstOrThrow()).n);
    assert.equal(await rows(), 20);
    // A duplicate delivery of a finished job runs nothing.
    await serverQueue.enqueue({ jobId: id, type: 'test-rows' });
    await waitFor(async () => (await serverQueue.counts()).completed >= 1 && (await serverQueue.counts()).waiting === 0 && (await serverQueue.counts()).active === 0, 10_000, 'redelivery processed');
    const again = await getJob(store.db, id);
    assert.equal(again.attempts, 1);
    assert.equal(again.finished_at, j.finished_at);
    assert.equal(await rows(), 20);
  } finally {
    await worker.close(1000);
    await s.close();
  }
});

function startWorkerProcess(queueName: string): { child: ChildProcess; lines: string[]; ready: Promise<boolean> } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/run.ts'), 'worker', '--db', pg.url, '--blobs', join(dir, 'blobs'), '--queue', redis.url, '--lock-ms', '1500', '--handlers', join(ROOT, 'test/helpers/test-handlers.ts'), '--data-dir', join(dir, `w-${Date.now()}`)], {
    cwd: ROOT,
    env: { ...process.env, MEDMASK_QUEUE_NAME: queueName },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { lines, found: ready } = watchLines(child, (l) => (l.includes(' ready: ') ? true : undefined), 'worker');
  return { child, lines, ready };
}

test('a worker killed with SIGKILL mid-job: another worker takes the job over and completes it once, no duplicate rows', async () => {
  const name = `kill-${Date.now()}`;
  const q = new BullmqQueue({ url: redis.url, name });
  const a = startWorkerProcess(name);
  let b: ReturnType<typeof startWorkerProcess> | undefined;
  try {
    await a.ready;
    const { job } = await createJob(store.db, { type: 'test-rows', input: { datasetId, delayMs: 150, tag: 'kill' } });
    await q.enqueue({ jobId: job.id, type: job.type });
    const count = async () => Number((await store.db.selectFrom('predictions').select((eb) => eb.fn.countAll<number>().as('n')).where('job_id', '=', job.id).executeTakeFirstOrThrow()).n);
    await waitFor(async () => (await count()) >= 4, 20_000, 'worker A writing rows');
    const running = await getJob(store.db, job.id);
    assert.equal(running.worker?.split(':').pop(), String(a.child.pid), 'worker A has the job');
    a.child.kill('SIGKILL');
    await new Promise((r) => a.child.once('exit', r));
    const before = await count();
    assert.ok(before > 0 && before < 20, `A died mid-job (${before} of 20 rows)`);
    b = startWorkerProcess(name);
    await b.ready;
    const j = await done(job.id, 40_000);
    assert.equal(j.status, 'done', j.error ?? '');
    assert.equal(j.worker?.split(':').pop(), String(b.child.pid), 'worker B finished it');
    assert.equal((JSON.parse(j.result!) as { pid: number }).pid, b.child.pid);
    assert.equal(j.attempts, 2, 'claimed twice: by A, then by B');
    assert.equal(await count(), 20, 'no duplicate rows');
    assert.equal(b.lines.filter((l) => l.includes(`job ${job.id} done`)).length, 1, b.lines.join('\n'));
    assert.equal(a.lines.filter((l) => l.includes(`job ${job.id} done`)).length, 0);
  } finally {
    a.child.kill('SIGKILL');
    if (b) {
      b.child.kill('SIGTERM');
      await new Promise((r) => (b!.child.exitCode !== null ? r(null) : b!.child.once('exit', r)));
    }
    await q.close(500);
  }
});
