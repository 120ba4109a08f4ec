// DecodePool.close settles every decode and itself, whatever its worker threads are doing. Before
// the fix, a decode's reply read after close() had called worker.terminate() ran `finish`, whose
// `unref()` undid terminate()'s ref: with nothing else keeping the event loop alive, the process
// ran out of work while the worker was still stopping and `await close()` never returned (the
// mechanism of the rare server-concurrency.test.ts hang, there in VolumeSlices). These tests keep no
// timer or socket of their own alive, so such a regression fails them instead of being hidden.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { isMedmaskError } from '../../src/core/errors.js';
import { DecodePool } from '../../src/server/decode-pool.js';

const PNG = join(import.meta.dirname, '../fixtures/images/grey8.png');
const shuttingDown = (e: unknown) => isMedmaskError(e) && e.code === 'ENVIRONMENT' && /shutting down/.test(e.message);

test('close while a decode reply is on its way: the decode is refused as "shutting down" and close returns', { timeout: 120_000 }, async () => {
  const pool = new DecodePool({ size: 1 });
  assert.deepEqual((await pool.read(PNG, {})).shape, [29, 19, 1], 'the worker is up');
  const p = assert.rejects(pool.read(PNG, {}), shuttingDown); // (a handler attached before it settles)
  const hold = Date.now() + 500;
  while (Date.now() < hold); // the worker decodes the 551-pixel PNG meanwhile and posts its reply
  await pool.close();
  await p;
  await assert.rejects(pool.read(PNG, {}), shuttingDown, 'nothing is decoded after close');
});

test('close while a decode is running or queued: both are refused as "shutting down", not as a worker crash', { timeout: 120_000 }, async () => {
  const pool = new DecodePool({ size: 1 });
  const running = assert.rejects(pool.read(PNG, {}), shuttingDown); // the worker still loads (from source: tsx first)
  const queued = assert.rejects(pool.read(PNG, {}), shuttingDown);
  await new Promise((r) => setImmediate(r));
  await pool.close();
  await Promise.all([running, queued]);
});
