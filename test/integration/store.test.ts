// The store's parts on their own: the blob store (content addressing, atomic writes, size limit,
// hashes only), canonical JSON for job ids, migrations run twice, configuration validation, and a
// graceful shutdown that re-queues a running job which the next start completes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { FsBlobStore, canonicalJson, createJob, getJob, jobInputHash, openStore } from '../../src/store/index.js';
import { loadConfig } from '../../src/server/config.js';
import { InProcessQueue, JobHandlerRegistry, createJobProcessor } from '../../src/queue/index.js';
import register from '../helpers/test-handlers.js';
import { createVolume } from '../../src/core/volume.js';
import { ensureDataset, ensureProject, insertImage } from '../../src/store/volumes.js';
import { waitFor } from '../helpers/server.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'medmask-store-test-'));

test('blob store: content-addressed by SHA-256, idempotent, streams with a size limit, refuses non-hashes', async () => {
  const dir = tmp();
  try {
    const b = new FsBlobStore(dir);
    const bytes = new TextEncoder().encode('hello medmask');
    const ref = await b.put(bytes);
    assert.equal(ref.hash, createHash('sha256').update(bytes).digest('hex'));
    assert.deepEqual(await b.put(bytes), ref);
    assert.equal((await b.get(ref.hash)).toString(), 'hello medmask');
    const s = await b.putStream(Readable.from([Buffer.from('hello '), Buffer.from('medmask')]));
    assert.equal(s.hash, ref.hash);
    await assert.rejects(b.putStream(Readable.from([Buffer.alloc(600), Buffer.alloc(600)]), { maxBytes: 1000 }), (e: Error & { code?: string }) => e.code === 'TOO_LARGE');
    assert.deepEqual(readdirSync(join(dir, 'tmp')), [], 'a refused stream leaves no temporary file');
    assert.deepEqual([...(await (async () => { const out = []; for await (const h of b.list()) out.push(h); return out; })())], [ref.hash]);
    for (const bad of ['../../etc/passwd', ref.hash.toUpperCase(), ref.hash.slice(1)]) {
      await assert.rejects(b.get(bad), (e: Error & { code?: string }) => e.code === 'USAGE', bad);
    }
    await assert.rejects(b.get('0'.repeat(64)), (e: Error & { code?: string }) => e.code === 'NOT_FOUND');
    // Temporary files of a process that is gone are removed; a live process's are kept.
    writeFileSync(join(dir, 'tmp', '999999999-abc'), 'half');
    writeFileSync(join(dir, 'tmp', `${process.ppid}-def`), 'in progress');
    assert.equal(await b.cleanup(), 1);
    assert.deepEqual(readdirSync(join(dir, 'tmp')), [`${process.ppid}-def`]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('canonical JSON: key order does not change a job id; values do', () => {
  assert.equal(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }], u: undefined }), '{"a":[{"c":3,"d":2}],"b":1}');
  assert.equal(jobInputHash('x', { a: 1, b: 2 }), jobInputHash('x', { b: 2, a: 1 }));
  assert.notEqual(jobInputHash('x', { a: 1 }), jobInputHash('x', { a: 2 }));
  assert.notEqual(jobInputHash('x', { a: 1 }), jobInputHash('y', { a: 1 }));
});

test('migrations: opening a store twice applies them once', async () => {
  const dir = tmp();
  try {
    const a = await openStore(join(dir, 'db.sqlite'));
    await a.db.insertInto('projects').values({ id: 'p', name: 'p', created_at: 'now', created_by: null }).execute();
    await a.close();
    const b = await openStore(join(dir, 'db.sqlite'));
    assert.equal((await b.db.selectFrom('projects').selectAll().execute()).length, 1);
    await b.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('configuration: flags > environment > file > defaults, and clear errors', () => {
  const dir = tmp();
  try {
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ port: 9001, queue: 'inline', maxUploadMb: 5 }));
    const c = loadConfig({ config: file, port: '9003' }, { MEDMASK_PORT: '9002', MEDMASK_MAX_UPLOAD_MB: '7' });
    assert.equal(c.port, 9003);
    assert.equal(c.maxUploadMb, 7);
    assert.equal(c.queue, 'inline');
    assert.equal(loadConfig({}, {}).port, 8080);
    assert.throws(() => loadConfig({ port: 'eighty' }, {}), /port from the command line is "eighty", expected a whole number from 0 to 65535/);
    assert.throws(() => loadConfig({}, { MEDMASK_PORT: '70000' }), /environment variable MEDMASK_PORT/);
    writeFileSync(file, JSON.stringify({ Port: 1 }));
    assert.throws(() => loadConfig({ config: file }, {}), /unknown setting "Port" \(did you mean "port"\?\)/);
    writeFileSync(file, '{ not json');
    assert.throws(() => loadConfig({ config: file }, {}), /cannot be read as JSON/);
    assert.throws(() => loadConfig({ logLevel: 'loud' }, {}), /one of fatal, error/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('graceful shutdown: a job still running after the grace period goes back to queued, and the next start completes it', async () => {
  const dir = tmp();
  try {
    const store = await openStore(join(dir, 'db.sqlite'));
    const blobs = new FsBlobStore(join(dir, 'blobs'), { fsync: false });
    const handlers = new JobHandlerRegistry();
    register(handlers);
    const ds = await ensureDataset(store.db, await ensureProject(store.db, 'g', null), 'g', null);
    for (let i = 0; i < 5; i++) await insertImage(store.db, blobs, { datasetId: ds, name: `i${i}`, volume: createVolume([2, 2, 1], 'uint8', { data: new Uint8Array(4).fill(i) }), format: 'nifti', createdBy: null });
    const { job } = await createJob(store.db, { type: 'test-rows', input: { datasetId: ds, delayMs: 300 } });
    const q1 = new InProcessQueue();
    await q1.consume(createJobProcessor({ store, blobs, handlers, workDir: join(dir, 'w') }));
    await q1.enqueue({ jobId: job.id, type: job.type });
    await waitFor(async () => (await getJob(store.db, job.id)).progress > 0, 5000, 'job started');
    await q1.close(100); // far less than the job needs
    const mid = await getJob(store.db, job.id);
    assert.equal(mid.status, 'queued', 'aborted by the shutdown: back to the queue, not failed');
    const q2 = new InProcessQueue();
    await q2.consume(createJobProcessor({ store, blobs, handlers, workDir: join(dir, 'w') }));
    await q2.enqueue({ jobId: job.id, type: job.type });
    const end = await waitFor(async () => ((await getJob(store.db, job.id)).status === 'done' ? getJob(store.db, job.id) : null), 10_000, 'job done');
    assert.equal(end.attempts, 2);
    assert.equal(Number((await store.db.selectFrom('predictions').select((eb) => eb.fn.countAll<number>().as('n')).where('job_id', '=', job.id).executeTakeFirstOrThrow()).n), 5);
    await q2.close();
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
