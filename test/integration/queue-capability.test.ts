// Capability routing with the in-process queue (the BullMQ lanes are in queue-fanout.test.ts):
// detection (the real probe on this machine, which has Debian's python3-torch, and the
// MEDMASK_CAPABILITIES override), a job type that needs torch refused at submission with an
// ENVIRONMENT error naming the package when the server lacks it, run when it has it; the
// reconciler's message on a job whose only capable worker died; the per-host core share.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { announceWorker, checkCapableWorker, detectCapabilities, hostThreadShare } from '../../src/queue/capabilities.js';
import { JOB_FORMAT, JobHandlerRegistry } from '../../src/queue/handlers.js';
import { reconcileOnce } from '../../src/queue/reconcile.js';
import { openStore } from '../../src/store/index.js';
import { createJob, getJob } from '../../src/store/jobs.js';
import { noteWaiting, recordedWorkers, registerWorker, touchWorker } from '../../src/store/workers.js';
import registerTestHandlers from '../helpers/test-handlers.js';
// @ts-expect-error plain ESM script without types
import { ensureSystemPackages } from '../../scripts/system-deps.mjs';
import { startTestServer, waitJob } from '../helpers/server.js';

test('capabilities: the probe finds torch where python3-torch is installed; MEDMASK_CAPABILITIES overrides it; unknown names are refused', async () => {
  ensureSystemPackages(['python3-torch']);
  assert.deepEqual(await detectCapabilities({}), ['torch']);
  assert.deepEqual(await detectCapabilities({ MEDMASK_CAPABILITIES: 'none' }), []);
  assert.deepEqual(await detectCapabilities({ MEDMASK_CAPABILITIES: '' }), []);
  assert.deepEqual(await detectCapabilities({ MEDMASK_CAPABILITIES: 'torch' }), ['torch']);
  await assert.rejects(detectCapabilities({ MEDMASK_CAPABILITIES: 'torch,cuda' }), /MEDMASK_CAPABILITIES names unknown capabilities: cuda/);
});

test('in-process: a torch job on a server without torch is a 503 ENVIRONMENT naming python3-torch (no job row); with torch it waits visibly, then runs', async () => {
  const before = process.env.MEDMASK_CAPABILITIES;
  const s = await startTestServer();
  try {
    process.env.MEDMASK_CAPABILITIES = 'none';
    const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'test-torch', input: { delayMs: 0 } } });
    assert.equal(r.statusCode, 503, r.body);
    assert.equal(r.json().error, 'ENVIRONMENT');
    assert.match(r.json().message, /"test-torch" jobs need torch \(Debian package python3-torch\), and this server, which runs the jobs itself \(in-process queue\), does not have it/);
    assert.match(r.json().hint, /apt-get install -y python3-torch/);
    assert.equal((await s.store.db.selectFrom('jobs').select('id').execute()).length, 0, 'nothing was queued');
  } finally {
    if (before === undefined) delete process.env.MEDMASK_CAPABILITIES;
    else process.env.MEDMASK_CAPABILITIES = before;
    await s.close();
  }
  const t = await startTestServer();
  try {
    process.env.MEDMASK_CAPABILITIES = 'torch';
    const a = await t.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'test-torch', input: { delayMs: 300, tag: 'a' } } });
    const b = await t.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'test-torch', input: { delayMs: 0, tag: 'b' } } });
    assert.equal(a.statusCode, 202, a.body);
    const bId = b.json().job.id as string;
    const waiting = (await t.as('viewer', { url: `/api/jobs/${bId}` })).json();
    assert.equal(waiting.status, 'queued', 'the second waits while the first runs (one job at a time)');
    assert.match(waiting.message, /waiting for this server's job process \(it has torch\)/);
    for (const id of [a.json().job.id as string, bId]) assert.equal((await waitJob(t, id)).status, 'done');
  } finally {
    if (before === undefined) delete process.env.MEDMASK_CAPABILITIES;
    else process.env.MEDMASK_CAPABILITIES = before;
    await t.close();
  }
});

test('reconciler: a queued torch job whose only capable worker died says so (since its last heartbeat, what to start); back to the usual message when one is alive', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-orphan-'));
  const store = await openStore(join(dir, 'medmask.sqlite'));
  const before = process.env.MEDMASK_CAPABILITIES;
  const presences: { stop(): Promise<void> }[] = [];
  const announce = async (id: string, caps: string) => {
    process.env.MEDMASK_CAPABILITIES = caps; // announceWorker detects the capabilities: the override
    const p = await announceWorker(store, { kind: 'worker', handlers, id, heartbeatMs: 3_600_000 });
    presences.push(p);
    return p;
  };
  const handlers = new JobHandlerRegistry();
  registerTestHandlers(handlers);
  try {
    await announce('gpu-box:1', 'torch');
    const { job } = await createJob(store.db, { type: 'test-torch', input: { delayMs: 0 }, format: JOB_FORMAT });
    await noteWaiting(store.db, job.id, (await checkCapableWorker(store, 'test-torch', handlers.get('test-torch')))!);
    // The job waits on its queue lane (live) — the reconciler must look at it anyway.
    const queue = { live: async () => true, enqueue: async () => assert.fail('nothing is re-enqueued') };
    const o = { store, queue, handlers, workerStaleMs: 300, seen: new Map<string, number>() };
    const message = async () => (await getJob(store.db, job.id)).message ?? '';

    assert.deepEqual((await reconcileOnce(o)).orphaned, [], 'its worker is alive');
    assert.equal(await message(), 'queued: waiting for a worker with torch (gpu-box:1)');

    // kill -9 of the only torch worker: its row stays, its heartbeat stops; a worker without torch is alive.
    const beat = (await recordedWorkers(store.db)).find((w) => w.id === 'gpu-box:1')!.heartbeatAt;
    await announce('cpu-box:2', 'none');
    await new Promise((r) => setTimeout(r, 400));
    await touchWorker(store.db, 'cpu-box:2');
    assert.deepEqual((await reconcileOnce(o)).orphaned, [job.id]);
    const sinceBeat = new Date(Date.parse(beat)).toISOString().replace(/\.\d+Z$/, 'Z');
    assert.equal(await message(), `waiting: no worker with torch has been alive since ${sinceBeat}; start \`medmask worker\` on a machine with python3-torch; the job runs once one is alive`);
    assert.equal((await getJob(store.db, job.id)).status, 'queued');

    // A torch worker starts: the usual message again.
    const back = await announce('gpu-box:3', 'torch');
    assert.deepEqual((await reconcileOnce(o)).orphaned, []);
    assert.equal(await message(), 'queued: waiting for a worker with torch (gpu-box:3)');

    // It stops cleanly (its row is removed): "since" is when the reconciler last saw it alive.
    const seenAt = o.seen.get('torch')!;
    assert.ok(seenAt > Date.parse(beat), 'the reconciler noted when it saw a torch worker alive');
    await back.stop();
    await store.db.deleteFrom('workers').where('id', '=', 'gpu-box:1').execute();
    assert.deepEqual((await reconcileOnce(o)).orphaned, [job.id]);
    assert.match(await message(), new RegExp(`^waiting: no worker with torch has been alive since ${new Date(seenAt).toISOString().replace(/\.\d+Z$/, 'Z')};`));

    // In-process: the server runs its jobs itself and has torch — no worker rows needed.
    assert.deepEqual((await reconcileOnce({ ...o, ownCapabilities: async () => ['torch' as const] })).orphaned, []);
  } finally {
    for (const p of presences) await p.stop();
    if (before === undefined) delete process.env.MEDMASK_CAPABILITIES;
    else process.env.MEDMASK_CAPABILITIES = before;
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('core share: the cores divided by the live job processes on this host × their concurrency, at least 1; other hosts and dead workers do not count', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-share-'));
  const store = await openStore(join(dir, 'medmask.sqlite'));
  try {
    const reg = (id: string) => registerWorker(store.db, { id, kind: 'worker', capabilities: [], jobTypes: ['atlas'] });
    assert.equal(await hostThreadShare(store, { host: 'h', cores: 8 }), 8, 'no process recorded yet: the whole machine');
    await reg('h:1');
    await reg('h:2');
    await reg('other:3');
    await reg('hh:4');
    assert.equal(await hostThreadShare(store, { host: 'h', cores: 2 }), 1);
    assert.equal(await hostThreadShare(store, { host: 'h', cores: 8 }), 4);
    assert.equal(await hostThreadShare(store, { host: 'h', cores: 8, concurrency: 3 }), 1);
    assert.equal(await hostThreadShare(store, { host: 'h', cores: 16, concurrency: 3 }), 2);
    await store.db.updateTable('workers').set({ heartbeat_at: new Date(Date.now() - 120_000).toISOString() }).where('id', '=', 'h:2').execute();
    assert.equal(await hostThreadShare(store, { host: 'h', cores: 8 }), 8, 'h:2 is dead');
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
