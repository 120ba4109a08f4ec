// Jobs off the server's event loop: with the in-process queue, a server on an SQLite file runs its
// job and task messages in a child process (src/queue/job-process.ts). Facts checked, no timings:
// the handlers run in another process than the server's; SIGKILL of that process mid-task costs
// that task one try (recorded), the server keeps answering, a new child finishes the job as a
// clean run would (every case once); the server's close stops the child.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createVolume } from '../../src/core/volume.js';
import { createDefaultHandlers, InProcessQueue } from '../../src/queue/index.js';
import { createServer } from '../../src/server/app.js';
import { createJob } from '../../src/store/jobs.js';
import { FsBlobStore, openStore } from '../../src/store/index.js';
import { ensureDataset, ensureProject, insertImage } from '../../src/store/volumes.js';
import { ROOT } from '../helpers/cli.js';
import { startTestServer, waitFor, waitJob } from '../helpers/server.js';
import { MedmaskError } from '../../src/core/errors.js';
import { scrubScratch } from '../../src/queue/runner.js';
import register from '../helpers/test-handlers.js';

test('in-process queue: tasks run in a child process; SIGKILL of it mid-task retries that task only, the server keeps answering', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-child-test-'));
  const dbFile = join(dir, 'medmask.sqlite');
  const store = await openStore(dbFile);
  const blobs = new FsBlobStore(join(dir, 'blobs'), { fsync: false });
  const queue = new InProcessQueue({ attempts: 3, backoffMs: 50 });
  const handlers = createDefaultHandlers();
  register(handlers);
  const lines: string[] = [];
  const app = await createServer({
    store, blobs, queue, handlers, workDir: join(dir, 'work'), say: (l) => lines.push(l), reconcileMs: 0,
    jobProcess: { db: dbFile, blobs: blobs.description, handlerModules: [join(ROOT, 'test/helpers/test-handlers.ts')] },
    settings: { tmpDir: join(dir, 'tmp'), uidSalt: 'test-salt', decodeWorkers: 0 },
  });
  let killed: number | undefined;
  try {
    const project = await ensureProject(store.db, 'p', null);
    const ds = await ensureDataset(store.db, project, 'd', null);
    for (let i = 0; i < 4; i++) await insertImage(store.db, blobs, { datasetId: ds, name: `i${i}.nii.gz`, volume: createVolume([4, 4, 1], 'uint8', { data: new Uint8Array(16).fill(i) }), format: 'nifti', createdBy: null });
    const { job } = await createJob(store.db, { type: 'test-fan', input: { datasetId: ds, delayMs: 400 } });
    await queue.enqueue({ jobId: job.id, type: job.type });
    const running = await waitFor(async () => {
      const rows = await store.db.selectFrom('job_tasks').select(['worker', 'status']).where('job_id', '=', job.id).execute();
      return rows.filter((r) => r.status === 'done').length >= 1 ? rows.find((r) => r.status === 'running') : undefined;
    }, 60_000, 'one case done, the next running');
    killed = Number(running.worker!.split(':').pop());
    assert.notEqual(killed, process.pid, 'the task runs in another process than the server');
    process.kill(killed, 'SIGKILL');
    assert.equal((await app.inject({ url: '/health' })).statusCode, 200, 'the server answers after its job process died');
    const done = await waitFor(async () => {
      const j = await store.db.selectFrom('jobs').selectAll().where('id', '=', job.id).executeTakeFirstOrThrow();
      return ['done', 'partial', 'failed'].includes(j.status) ? j : undefined;
    }, 60_000, 'the job to finish');
    assert.equal(done.status, 'done', `${done.error}\n${lines.join('\n')}`);
    const result = JSON.parse(done.result!) as { done: number; perPid: Record<string, number> };
    assert.equal(result.done, 4);
    const pids = Object.keys(result.perPid).map(Number);
    assert.ok(!pids.includes(process.pid), `no task ran in the server's process (${process.pid}): ${JSON.stringify(result.perPid)}`);
    assert.ok(pids.includes(killed) && pids.length === 2, `the killed child's finished case counts, a new child did the rest: ${JSON.stringify(result.perPid)}`);
    const tasks = await store.db.selectFrom('job_tasks').select(['attempts']).where('job_id', '=', job.id).execute();
    assert.deepEqual(tasks.map((t) => t.attempts).sort(), [1, 1, 1, 2], 'only the case it was on ran twice');
    const preds = await store.db.selectFrom('predictions').select('image_id').where('job_id', '=', job.id).execute();
    assert.equal(new Set(preds.map((p) => p.image_id)).size, 4);
    assert.equal(preds.length, 4, 'no case recorded twice');
    assert.ok(lines.some((l) => l.includes(`job process ${killed} was killed (SIGKILL)`)), lines.join('\n'));
  } finally {
    await queue.close(1000);
    await app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  // The server's close stopped its (second) job process: no medmask child of this process remains.
  const { execFileSync } = await import('node:child_process');
  const children = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' }).split('\n').filter((l) => l.includes('job-process-main'));
  assert.deepEqual(children, [], 'no job process left running');
});

test('job and task errors name the scratch folder <job>, never its path on the worker (every handler, one rule)', async () => {
  assert.equal(scrubScratch('ENOENT: open \'/srv/m/work/job-ab12-77/data/x.nii.gz\'', '/srv/m/work'), 'ENOENT: open \'<job>/data/x.nii.gz\'');
  assert.equal(scrubScratch('no file work/job-1-2/a', 'work'), 'no file <job>/a', 'a relative work folder too');
  assert.equal(scrubScratch('/srv/m/workshop/x', '/srv/m/work'), '/srv/m/workshop/x', 'only the folder itself, not a name that starts like it');
  const handlers = createDefaultHandlers();
  handlers.register('test-leak', {
    description: 'test only: fails naming a file in its scratch folder',
    validate: (i) => i,
    fanOut: {
      plan: async () => [{ key: 'k', input: {} }],
      runTask: async (ctx) => {
        throw new Error(`cannot read ${join(ctx.workDir, 'case', 'x.nii.gz')}`);
      },
      reduce: async () => ({}),
    },
  });
  handlers.register('test-leak-run', {
    description: 'test only: fails naming its scratch folder',
    validate: (i) => i,
    run: async (ctx) => {
      throw new MedmaskError('CORRUPT_FILE', `${ctx.workDir}/in.nii.gz is truncated`);
    },
  });
  const s = await startTestServer({ handlers });
  try {
    const t = await createJob(s.store.db, { type: 'test-leak', input: {} });
    const r = await createJob(s.store.db, { type: 'test-leak-run', input: {} });
    for (const j of [t.job, r.job]) await s.queue.enqueue({ jobId: j.id, type: j.type });
    const task = await waitFor(() => s.store.db.selectFrom('job_tasks').select('error').where('job_id', '=', t.job.id).where('status', '=', 'failed').executeTakeFirst(), 30_000, 'the task to fail');
    assert.equal(task.error, 'cannot read <job>/case/x.nii.gz');
    const run = await waitJob(s, r.job.id);
    assert.equal(run.error, '[CORRUPT_FILE] <job>/in.nii.gz is truncated');
    assert.ok(!JSON.stringify([task, run]).includes(s.dir), 'no server path in the errors');
  } finally {
    await s.close();
  }
});

test('serve and worker on a database migrated by a newer medmask: exit 6, one line naming both schema versions and the upgrade', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-newer-'));
  try {
    const db = join(dir, 'medmask.sqlite');
    const store = await openStore(db);
    const known = (await store.db.selectFrom('kysely_migration' as never).select('name' as never).execute()).length;
    await store.db.insertInto('kysely_migration' as never).values({ name: '9999_from_the_future', timestamp: new Date().toISOString() } as never).execute();
    await store.close();
    await Promise.all([['serve', '--port', '0'], ['worker', '--queue', 'redis://127.0.0.1:1']].map(async (args) => {
      const child = spawn(process.execPath, [join(ROOT, 'bin/medmask.js'), ...args, '--db', db, '--data-dir', join(dir, args[0]!)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      assert.equal(code, 6, `${args[0]}: ${err}`);
      assert.match(err.split('\n')[0]!, new RegExp(`^medmask: error \\[ENVIRONMENT\\]: the database has schema version 9999_from_the_future \\(${known + 1} migrations\\), newer than this medmask .* knows \\(schema version \\d{4}_\\w+, ${known} migrations; unknown: 9999_from_the_future\\)`), args[0]);
      assert.match(err, /upgrade medmask on this machine/);
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
