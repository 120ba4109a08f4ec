/**
 * The S3-compatible blob store against an S3-protocol server (s3rver, on a free loopback port):
 * content addressing checked with an independent SDK client reading the raw objects, integrity on
 * read (an object changed behind medmask's back is refused), missing objects and buckets, the
 * deployment identity check, and a server job (phantoms → atlas) run end to end on the S3 store.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { MedmaskError } from '../../src/core/errors.js';
import { S3BlobStore, parseS3Url, s3ClientConfigFromEnv } from '../../src/store/blob-store-s3.js';
import { openBlobStore } from '../../src/store/blob-store-open.js';
import { FsBlobStore } from '../../src/store/blob-store.js';
import { checkBlobStoreIdentity } from '../../src/store/deployment.js';
import { openStore, verifyStore } from '../../src/store/index.js';
import { startS3, type TestS3 } from '../helpers/s3.js';
import { phantomsDataset, startTestServer, waitJob } from '../helpers/server.js';
import { registerModelDirs } from '../helpers/models.js';

let s3: TestS3;
let dir: string;
const store = (prefix: string) => new S3BlobStore({ bucket: s3.bucket, prefix }, { client: s3.client(), spoolDir: join(dir, 'spool') });
const hex = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

before(async () => {
  s3 = await startS3();
  dir = mkdtempSync(join(tmpdir(), 'medmask-s3-test-'));
});
after(async () => {
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function rawObject(key: string): Promise<Buffer | null> {
  try {
    const r = await s3.client().send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    return Buffer.from(await r.Body!.transformToByteArray());
  } catch {
    return null;
  }
}

test('s3:// addresses: bucket and prefix parsed, bad ones refused with the expected form', () => {
  assert.deepEqual(parseS3Url('s3://medmask-blobs/site-a/blobs/'), { bucket: 'medmask-blobs', prefix: 'site-a/blobs' });
  assert.deepEqual(parseS3Url('s3://bucket'), { bucket: 'bucket', prefix: '' });
  for (const bad of ['s3://', 's3://Bad_Bucket/x', 's3://b/../x', 's3://ab/x']) {
    assert.throws(() => parseS3Url(bad), (e: unknown) => e instanceof MedmaskError && e.code === 'USAGE' && /s3:\/\/bucket\/prefix|"\."/.test(e.message), bad);
  }
  const cfg = s3ClientConfigFromEnv({ AWS_ENDPOINT_URL: 'http://minio:9000' });
  assert.equal(cfg.forcePathStyle, true, 'path style by default with a custom endpoint (MinIO, Ceph RGW)');
  assert.equal(cfg.region, 'us-east-1');
  assert.equal(s3ClientConfigFromEnv({ AWS_REGION: 'eu-central-1' }).forcePathStyle, false, 'virtual-hosted buckets on AWS');
  assert.equal(s3ClientConfigFromEnv({ AWS_ENDPOINT_URL: 'http://x', MEDMASK_S3_PATH_STYLE: 'false' }).forcePathStyle, false);
  assert.throws(() => s3ClientConfigFromEnv({ MEDMASK_S3_PATH_STYLE: 'maybe' }), /MEDMASK_S3_PATH_STYLE/);
});

test('put / get / has / stream: content-addressed objects under the prefix, as an independent client sees them', async () => {
  const b = store('site-a');
  const bytes = new TextEncoder().encode('hello medmask');
  const ref = await b.put(bytes);
  assert.equal(ref.hash, hex(bytes));
  assert.equal(ref.size, bytes.length);
  const key = `site-a/${ref.hash.slice(0, 2)}/${ref.hash.slice(2, 4)}/${ref.hash}`;
  assert.deepEqual(await rawObject(key), Buffer.from(bytes), 'the object holds the bytes under their hash');
  assert.equal(await b.has(ref.hash), true);
  assert.deepEqual(await b.get(ref.hash), Buffer.from(bytes));
  assert.deepEqual(await b.put(bytes), ref, 'storing the same bytes again is a no-op');
  // A stream of 3 MiB in chunks: spooled, hashed, one object.
  const big = Buffer.alloc(3 * 2 ** 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
  const sref = await b.putStream(Readable.from([big.subarray(0, 1e6), big.subarray(1e6, 2e6), big.subarray(2e6)]));
  assert.equal(sref.hash, hex(big));
  assert.equal(sref.size, big.length);
  const chunks: Buffer[] = [];
  for await (const c of await b.stream(sref.hash)) chunks.push(c as Buffer);
  assert.ok(Buffer.concat(chunks).equals(big), 'streamed back intact');
  await assert.rejects(b.putStream(Readable.from([big]), { maxBytes: 1000 }), (e: unknown) => e instanceof MedmaskError && e.code === 'TOO_LARGE');
  const listed = new Set<string>();
  for await (const e of b.entries()) {
    listed.add(e.hash);
    assert.ok(e.modified.getTime() > Date.now() - 600_000 && e.size > 0);
  }
  assert.deepEqual(listed, new Set([ref.hash, sref.hash]), 'entries lists the blobs (not the too-large stream, nothing of other prefixes)');
  const other = store('site-b');
  assert.equal(await other.has(ref.hash), false, 'another prefix is another store');
  await assert.rejects(other.get(ref.hash), (e: unknown) => e instanceof MedmaskError && e.code === 'NOT_FOUND' && e.message.includes('s3://medmask-test/site-b'));
  await b.delete(sref.hash);
  assert.equal(await b.has(sref.hash), false);
  assert.equal(await rawObject(key.replace(ref.hash, sref.hash).replace(`${ref.hash.slice(0, 2)}/${ref.hash.slice(2, 4)}`, `${sref.hash.slice(0, 2)}/${sref.hash.slice(2, 4)}`)), null);
  await assert.rejects(b.get('../etc/passwd'), (e: unknown) => e instanceof MedmaskError && e.code === 'USAGE');
});

test('integrity: an object changed outside medmask is refused on get and stream, and reported by verifyStore', async () => {
  const b = store('tamper');
  const ref = await b.put(Buffer.from('original bytes'));
  await s3.client().send(new PutObjectCommand({ Bucket: s3.bucket, Key: b.keyOf(ref.hash), Body: Buffer.from('changed bytes!') }));
  await assert.rejects(b.get(ref.hash), (e: unknown) => e instanceof MedmaskError && e.code === 'CORRUPT_FILE' && e.message.includes(hex('changed bytes!')));
  const s = await b.stream(ref.hash);
  await assert.rejects(async () => {
    for await (const _ of s) void _;
  }, /holds other bytes/);
  // verifyStore over a database that references it.
  const db = await openStore(':memory:');
  try {
    const now = new Date().toISOString();
    const version = { status: 'registered' as const, manifest: '{}', card: null, parent_id: null, training: null, metrics: null, note: null, job_id: null, created_at: now, created_by: null };
    await db.db.insertInto('model_versions').values({ ...version, id: 'm1', name: 'm', version: 1, blob: ref.hash, size: 14 }).execute();
    const missing = hex('never stored');
    await db.db.insertInto('model_versions').values({ ...version, id: 'm2', name: 'n', version: 1, blob: missing, size: 1 }).execute();
    const r = await verifyStore(db.db, db.dialect, b);
    assert.equal(r.ok, false);
    assert.deepEqual(r.corrupt, [ref.hash]);
    assert.deepEqual(r.missing, [missing]);
  } finally {
    await db.close();
  }
});

test('a missing bucket or wrong keys: ENVIRONMENT (exit 6) naming the store and what to check', async () => {
  const env = { ...s3.env };
  await assert.rejects(openBlobStore('s3://no-such-bucket/x', { s3: { env } }), (e: unknown) => e instanceof MedmaskError && e.code === 'ENVIRONMENT' && e.exitCode === 6 && e.message.includes('s3://no-such-bucket/x') && /create the bucket/.test(e.hint ?? ''));
  await assert.rejects(openBlobStore(`s3://${s3.bucket}/x`, { s3: { env: { ...env, AWS_ACCESS_KEY_ID: 'WRONGKEY' } } }), (e: unknown) => e instanceof MedmaskError && e.code === 'ENVIRONMENT' && /AWS_ACCESS_KEY_ID/.test(e.hint ?? ''));
  const ok = await openBlobStore(`s3://${s3.bucket}/env-check`, { s3: { env } });
  assert.equal(ok.description, `s3://${s3.bucket}/env-check`);
  assert.equal(await ok.has(hex('x')), false);
  (ok as S3BlobStore).close();
});

test('deployment identity: the first process records its store; another prefix or a folder is refused naming both', async () => {
  const db = await openStore(':memory:');
  try {
    const mine = store('deploy-a');
    const id = await checkBlobStoreIdentity(db.db, mine, { database: 'db-under-test' });
    assert.equal(id.description, `s3://${s3.bucket}/deploy-a`);
    const marker = JSON.parse((await rawObject('deploy-a/medmask-blob-store.json'))!.toString()) as { id: string };
    assert.equal(marker.id, id.id, 'the marker in the bucket holds the recorded id');
    assert.deepEqual(await checkBlobStoreIdentity(db.db, store('deploy-a')), id, 'the same store again (another client) passes');
    for (const other of [store('deploy-b'), new FsBlobStore(join(dir, 'wrong-blobs'))]) {
      await assert.rejects(checkBlobStoreIdentity(db.db, other, { database: 'db-under-test', waitMs: 0 }), (e: unknown) => e instanceof MedmaskError && e.code === 'ENVIRONMENT' && e.message.includes(other.description) && e.message.includes(`s3://${s3.bucket}/deploy-a`) && e.message.includes('db-under-test'));
    }
    // The listing never mistakes the marker for a blob.
    const keys = (await s3.client().send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'deploy-a/' }))).Contents!.map((c) => c.Key);
    assert.deepEqual(keys, ['deploy-a/medmask-blob-store.json']);
    for await (const e of mine.entries()) assert.fail(`unexpected blob ${e.hash}`);
  } finally {
    await db.close();
  }
});

test('a server job end to end on the S3 store: phantoms → atlas, every referenced blob in the bucket and intact', async () => {
  const blobs = store('server');
  const s = await startTestServer({ blobs });
  try {
    const datasetId = await phantomsDataset(s, { kind: '3d', n: 2, seed: 3, size: 48, project: 's3', dataset: 's3', reviewCases: false });
    const r = await s.as('reviewer', { method: 'POST', url: '/api/jobs', payload: { type: 'atlas', input: { datasetId, models: await registerModelDirs(s, ['models/demo/demo-unet3d']), fraction: 0.5 } } });
    assert.equal(r.statusCode, 202, r.body);
    const job = await waitJob(s, r.json().job.id);
    assert.equal(job.status, 'done', JSON.stringify(job.error));
    assert.equal(job.result.recorded, 2);
    const report = await verifyStore(s.store.db, s.store.dialect, blobs);
    assert.ok(report.ok, JSON.stringify(report));
    assert.ok(report.referenced >= 2 * 3, `images, labels, merged masks and heat maps referenced (${report.referenced})`);
    let objects = 0;
    for await (const _ of blobs.entries()) objects++;
    assert.ok(objects >= report.referenced, 'the blobs are objects in the bucket');
    // The API serves an image from the bucket byte for byte.
    const img = (await s.as('viewer', { url: `/api/datasets/${datasetId}/images` })).json().images[0] as { id: string; hash: string };
    const data = await s.as('viewer', { url: `/api/images/${img.id}/data` });
    assert.equal(data.statusCode, 200);
    assert.equal(hex(data.rawPayload), img.hash);
    assert.deepEqual(await rawObject(blobs.keyOf(img.hash)), data.rawPayload);
  } finally {
    await s.close();
  }
});
