// RegionsPool: the viewer's flagged regions in a worker thread owned by one server. Known regions
// come back through the thread, and close() settles every waiting call before it stops the
// thread, so a server's close never hangs on it (the mechanism of the close hang fixed in
// volume-slices.ts and decode-pool.ts). These tests keep no timer or socket of their own alive,
// so a close that leaves a call pending fails them instead of being hidden.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isMedmaskError } from '../../src/core/errors.js';
import { RegionsPool } from '../../src/server/regions-pool.js';

const shuttingDown = (e: unknown) => isMedmaskError(e) && e.code === 'ENVIRONMENT' && /shutting down/.test(e.message);

/** A 10×10×4 map: a 3×3×2 block at 200 and a 2×2×1 block at 250, the rest 0. */
function twoBlocks(): Uint8Array {
  const map = new Uint8Array(10 * 10 * 4);
  const set = (i: number, j: number, k: number, v: number) => (map[i + 10 * (j + 10 * k)] = v);
  for (let k = 1; k <= 2; k++) for (let j = 2; j <= 4; j++) for (let i = 1; i <= 3; i++) set(i, j, k, 200);
  for (let j = 7; j <= 8; j++) for (let i = 6; i <= 7; i++) set(i, j, 3, 250);
  return map;
}

test('regions come back from the worker: two blocks, ranked by total attention, with their bounds', { timeout: 120_000 }, async () => {
  const pool = new RegionsPool();
  try {
    const r = await pool.regions(twoBlocks(), [10, 10, 4], { threshold: 128 });
    assert.equal(r.length, 2);
    // 18 voxels × 200 = 3600 before 4 × 250 = 1000
    assert.deepEqual(r.map((x) => [x.rank, x.voxels, x.min, x.max, x.peak]), [
      [1, 18, [1, 2, 1], [3, 4, 2], 200],
      [2, 4, [6, 7, 3], [7, 8, 3], 250],
    ]);
    assert.deepEqual(r[0]!.centroid, [2, 3, 1.5]);
    assert.equal((await pool.regions(twoBlocks(), [10, 10, 4], { threshold: 128, minVoxels: 5 })).length, 1, 'minVoxels drops the small block');
  } finally {
    await pool.close();
  }
});

test('close while a call waits on the worker: the call fails as "shutting down", close returns, later calls are refused', { timeout: 120_000 }, async () => {
  const pool = new RegionsPool();
  const waiting = assert.rejects(pool.regions(twoBlocks(), [10, 10, 4], { threshold: 128 }), shuttingDown); // the worker still loads
  await new Promise((r) => setImmediate(r));
  await pool.close();
  await waiting;
  await assert.rejects(pool.regions(twoBlocks(), [10, 10, 4], { threshold: 128 }), shuttingDown);
  await pool.close(); // twice is harmless
});

test('close after a reply is on its way: close returns and nothing is left pending', { timeout: 120_000 }, async () => {
  const pool = new RegionsPool();
  assert.equal((await pool.regions(twoBlocks(), [10, 10, 4], { threshold: 128 })).length, 2, 'the worker is up');
  const p = assert.rejects(pool.regions(twoBlocks(), [10, 10, 4], { threshold: 128 }), shuttingDown);
  const hold = Date.now() + 300;
  while (Date.now() < hold); // the worker answers meanwhile; the reply is read only after close
  await pool.close();
  await p;
});
