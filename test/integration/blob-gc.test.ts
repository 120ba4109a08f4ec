/**
 * `medmask admin gc`: unreferenced blobs older than the grace period are listed (dry run: count and
 * bytes exact, nothing removed) and removed with --delete; referenced blobs (rows, job inputs) and
 * young orphans stay, and the store passes the integrity check afterwards. On a folder store (ages
 * set with utimes) through the CLI, and on the S3 store (s3rver) through the library.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { createVolume } from '../../src/core/volume.js';
import { S3BlobStore } from '../../src/store/blob-store-s3.js';
import { collectGarbage } from '../../src/store/blob-gc.js';
import { checkBlobStoreIdentity } from '../../src/store/deployment.js';
import { createJob, FsBlobStore, openStore, sha256, verifyStore, type BlobStore, type Store } from '../../src/store/index.js';
import { ensureDataset, ensureProject, insertImage } from '../../src/store/volumes.js';
import { startS3, type TestS3 } from '../helpers/s3.js';

let dir: string;
let s3: TestS3;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'medmask-gc-test-'));
  s3 = await startS3();
});
after(async () => {
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const HOUR = 3600_000;

/** A database with one image (referenced), a blob named only by a job's input, and orphans. */
async function seed(store: Store, blobs: BlobStore) {
  const project = await ensureProject(store.db, 'gc', null);
  const ds = await ensureDataset(store.db, project, 'gc', null);
  const { image } = await insertImage(store.db, blobs, { datasetId: ds, name: 'a.nii.gz', volume: createVolume([4, 4, 2], 'uint8', { data: new Uint8Array(32).fill(3) }), format: 'nifti', createdBy: null });
  const byJob = await blobs.put(Buffer.from('named by a job input'));
  await createJob(store.db, { type: 'test-noop', input: { modelBlob: byJob.hash } });
  const orphans = [await blobs.put(Buffer.from('orphan one')), await blobs.put(Buffer.alloc(1000, 9))];
  const young = await blobs.put(Buffer.from('young orphan'));
  return { image: image.blob, byJob: byJob.hash, orphans, young: young.hash };
}

/** Run the CLI in this process; exit code and stdout. */
async function cli(...args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const w = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((c: string | Uint8Array) => ((out += String(c)), true)) as typeof process.stdout.write;
  try {
    return { code: await main(args), out };
  } finally {
    process.stdout.write = w;
  }
}

test('folder store through medmask admin gc: dry run lists exactly the old orphans, --delete removes only them', async () => {
  const data = join(dir, 'fs');
  const db = join(data, 'medmask.sqlite');
  const store = await openStore(db);
  const blobs = new FsBlobStore(join(data, 'blobs'), { fsync: false });
  await checkBlobStoreIdentity(store.db, blobs); // as the first server would
  const s = await seed(store, blobs);
  // Everything but the young orphan is two days old.
  const old = new Date(Date.now() - 48 * HOUR);
  for (const h of [s.image, s.byJob, ...s.orphans.map((o) => o.hash)]) utimesSync(blobs.pathOf(h), old, old);
  await store.close();
  const orphanBytes = s.orphans.reduce((n, o) => n + o.size, 0);

  const dry = await cli('admin', 'gc', '--data-dir', data, '--json');
  assert.equal(dry.code, 0, dry.out);
  const r = JSON.parse(dry.out) as { dryRun: boolean; stored: number; unreferenced: number; unreferencedBytes: number; young: number; deleted: number; sample: { hash: string }[] };
  assert.equal(r.dryRun, true);
  assert.equal(r.stored, 5);
  assert.equal(r.unreferenced, 2);
  assert.equal(r.unreferencedBytes, orphanBytes);
  assert.equal(r.young, 1);
  assert.equal(r.deleted, 0);
  assert.deepEqual(new Set(r.sample.map((x) => x.hash)), new Set(s.orphans.map((o) => o.hash)));
  for (const o of s.orphans) assert.equal(await blobs.has(o.hash), true, 'a dry run removes nothing');
  const text = await cli('admin', 'gc', '--data-dir', data);
  assert.match(text.out, /2 unreferenced blob\(s\) older than 24 h/);
  assert.match(text.out, /dry run: nothing removed/);

  const del = await cli('admin', 'gc', '--data-dir', data, '--delete', '--grace', '36h');
  assert.equal(del.code, 0);
  assert.match(del.out, new RegExp(`removed 2 blob\\(s\\)`));
  for (const o of s.orphans) assert.equal(await blobs.has(o.hash), false);
  for (const h of [s.image, s.byJob, s.young]) assert.equal(await blobs.has(h), true);
  const again = await openStore(db);
  try {
    assert.ok((await verifyStore(again.db, again.dialect, blobs)).ok, 'every referenced blob still there and intact');
  } finally {
    await again.close();
  }
  assert.equal((await cli('admin', 'gc', '--data-dir', data, '--grace', 'soon')).code, 2, 'a bad duration is a usage error');
  // Storing the same bytes again refreshes an old blob's time: the grace period counts from the new use.
  await blobs.put(Buffer.from('named by a job input'));
  assert.ok(Date.now() - statSync(blobs.pathOf(s.byJob)).mtimeMs < 60_000);
});

test('S3 store: orphans older than the grace period removed, referenced blobs kept', async () => {
  const store = await openStore(':memory:');
  const blobs = new S3BlobStore({ bucket: s3.bucket, prefix: 'gc' }, { client: s3.client(), spoolDir: join(dir, 'spool') });
  try {
    const s = await seed(store, blobs);
    // Object times cannot be set on the server: look from two days ahead instead.
    const now = new Date(Date.now() + 48 * HOUR);
    const fresh = await collectGarbage(store.db, blobs, { delete: true });
    assert.equal(fresh.deleted, 0, 'everything is younger than the grace period today');
    assert.equal(fresh.young, 3);
    const r = await collectGarbage(store.db, blobs, { delete: true, now });
    assert.equal(r.deleted, 3);
    assert.equal(r.deletedBytes, s.orphans.reduce((n, o) => n + o.size, 0) + Buffer.byteLength('young orphan'));
    for (const o of [...s.orphans.map((x) => x.hash), s.young]) assert.equal(await blobs.has(o), false);
    assert.equal(await blobs.has(s.image), true);
    assert.equal(await blobs.has(s.byJob), true);
    assert.equal(sha256(await blobs.get(s.byJob)), s.byJob);
  } finally {
    await store.close();
  }
});
