/**
 * Claims and progress as the viewer sees them: a claim shows who is on a case until its heartbeat
 * is older than the expiry; "k of N done · m today" counts a data set's decided cases and the
 * caller's own decisions since a time.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createVolume } from '../../src/core/volume.js';
import { CLAIM_TTL_MS } from '../../src/server/routes/viewer.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { seedCases } from '../helpers/viewer-seed.js';

let s: TestServer;
let ids: { maskId: string }[];
before(async () => {
  s = await startTestServer();
  const c = (n: string) => ({ name: n, volume: createVolume([8, 8, 1], 'uint8'), labels: new Uint8Array(64), target: 'lesion', priority: 0.5 });
  ids = await seedCases(s.store, s.blobs, [c('a.png'), c('b.png'), c('c.png')], { project: 'p', dataset: 'claims' });
});
after(async () => {
  await s?.close();
});

test('claims: the viewer names who is on a case; a claim without a heartbeat expires', async () => {
  const id = ids[0]!.maskId;
  assert.equal((await s.as('annotator', { method: 'POST', url: `/api/masks/${id}/claim` })).statusCode, 200);
  const info = (await s.as('reviewer', { url: `/api/viewer/masks/${id}` })).json();
  assert.equal(info.claimedBy, 'annotator');
  assert.ok(Date.now() - Date.parse(info.claimedAt) < 60_000);
  // the browser went away: no heartbeat for longer than the expiry
  await s.store.db.updateTable('masks').set({ claimed_at: new Date(Date.now() - CLAIM_TTL_MS - 1000).toISOString() }).where('id', '=', id).execute();
  const stale = (await s.as('reviewer', { url: `/api/viewer/masks/${id}` })).json();
  assert.equal(stale.claimedBy, null);
  assert.equal(stale.claimedAt, null);
  // a heartbeat (the claim renewed) makes it live again
  await s.as('annotator', { method: 'POST', url: `/api/masks/${id}/claim` });
  assert.equal((await s.as('reviewer', { url: `/api/viewer/masks/${id}` })).json().claimedBy, 'annotator');
});

test('the review queue shows a claim until it expires: then nobody is on the case, "unclaimed" lists it and "mine" does not', async () => {
  const id = ids[0]!.maskId;
  assert.equal((await s.as('annotator', { method: 'POST', url: `/api/masks/${id}/claim` })).statusCode, 200);
  const queue = async (claimed: string) => (await s.as('annotator', { url: `/api/review/queue?status=all&claimed=${claimed}&limit=50` })).json() as { total: number; items: { maskId: string; claimedBy: string | null; claimedAt: string | null }[] };
  const row = (q: { items: { maskId: string; claimedBy: string | null; claimedAt: string | null }[] }) => q.items.find((i) => i.maskId === id);
  assert.equal(row(await queue('any'))?.claimedBy, 'annotator');
  assert.ok(row(await queue('me')), 'fresh: mine');
  assert.equal(row(await queue('none')), undefined, 'fresh: not unclaimed');
  // no heartbeat for longer than the expiry (a second inside it stays live)
  const at = (ms: number) => s.store.db.updateTable('masks').set({ claimed_at: new Date(Date.now() - ms).toISOString() }).where('id', '=', id).execute();
  await at(CLAIM_TTL_MS - 30_000);
  assert.equal(row(await queue('any'))?.claimedBy, 'annotator', 'inside the expiry: still claimed');
  await at(CLAIM_TTL_MS + 1000);
  const any = row(await queue('any'));
  assert.deepEqual([any?.claimedBy, any?.claimedAt], [null, null], 'expired: nobody');
  assert.equal(row(await queue('me')), undefined, 'expired: not mine');
  assert.ok(row(await queue('none')), 'expired: unclaimed');
  const mine = await queue('me');
  assert.equal(mine.total, mine.items.length, 'the count agrees with the rows');
  assert.equal((await s.as('annotator', { url: `/api/masks/${id}` })).json().claimedBy, null, 'the case itself names nobody');
  await s.as('annotator', { method: 'DELETE', url: `/api/masks/${id}/claim` });
});

test('progress: cases, cases decided, and my decisions since a time', async () => {
  const info = (await s.as('reviewer', { url: `/api/viewer/masks/${ids[1]!.maskId}` })).json();
  const since = new Date(Date.now() - 60_000).toISOString();
  const q = (role: 'reviewer' | 'admin', t = since) => s.as(role, { url: `/api/viewer/progress?dataset=${info.datasetId}&since=${encodeURIComponent(t)}` }).then((r) => r.json());
  assert.deepEqual(await q('reviewer'), { total: 3, done: 0, doneByMeSince: 0 });
  for (const [k, decision] of [[1, 'accept'], [2, 'reject']] as const) {
    const r = await s.as('reviewer', { method: 'POST', url: `/api/masks/${ids[k]!.maskId}/review`, payload: { decision, version: 1, ...(decision === 'reject' ? { reason: 'wrong organ' } : {}) } });
    assert.equal(r.statusCode, 201, r.body);
  }
  assert.deepEqual(await q('reviewer'), { total: 3, done: 2, doneByMeSince: 2 });
  assert.deepEqual(await q('admin'), { total: 3, done: 2, doneByMeSince: 0 }, 'only the caller\'s decisions');
  assert.equal((await q('reviewer', new Date(Date.now() + 60_000).toISOString())).doneByMeSince, 0, 'none after a later time');
  const bad = await s.as('reviewer', { url: `/api/viewer/progress?dataset=${info.datasetId}&since=yesterday` });
  assert.equal(bad.statusCode, 400);
  assert.match(bad.json().message, /since/);
});
