// VolumeSlices.close settles everything, whatever state its worker thread is in. Before the fix,
// close() left the job in the worker unsettled, and a reply of that job arriving after close()
// had called worker.terminate() ran the job's `finish`, whose `unref()` undid terminate()'s ref:
// with nothing else keeping the event loop alive, the process ran out of work while the worker
// was still stopping, and `await close()` never returned (node:test: "Promise resolution is still
// pending but the event loop has already resolved" — the rare hang of server-concurrency.test.ts).
// These tests keep no timer or socket of their own alive, so such a regression fails them
// (the runner reports the pending promise) instead of being hidden; each has a timeout besides.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { VolumeSlices } from '../../src/server/volume-slices.js';

const shape: [number, number, number] = [256, 256, 48];
const voxels = () => Uint8Array.from({ length: shape[0] * shape[1] * shape[2] }, (_, i) => (i * 7) % 5);

test('close while the last reply of a job is on its way: close and the job settle', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-vs-close-'));
  try {
    const vs = new VolumeSlices(dir);
    assert.equal(await vs.prepareFrom('late', shape, async () => voxels()), true, 'the axial file is made');
    // The worker now writes the coronal and sagittal files, then the description with all three
    // axes, then posts 'done'. Hold the event loop until it has (so the reply waits in the port),
    // then close: terminate() is called before the reply is read.
    const meta = join(dir, 'late.json');
    const t0 = Date.now();
    for (;;) {
      try {
        if ((JSON.parse(readFileSync(meta, 'utf8')) as { axes: string[] }).axes.length === 3) break;
      } catch {
        // between the worker's write and rename
      }
      assert.ok(Date.now() - t0 < 60_000, 'the worker wrote all three files within a minute');
    }
    const hold = Date.now() + 100;
    while (Date.now() < hold); // the 'done' message is posted right after the rename
    await vs.close();
    await vs.settled('late');
    assert.deepEqual((JSON.parse(readFileSync(meta, 'utf8')) as { axes: string[] }).axes, ['z', 'y', 'x'], 'the files made before close stay');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('close while a job is in the worker (not answered yet) or its voxels are still being read: every waiting promise settles as "no files"', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-vs-close-'));
  try {
    const vs = new VolumeSlices(join(dir, 'cache'));
    // a job handed to the worker: a worker run from source loads tsx first (a second or more),
    // so it has not answered when close() comes
    const inWorker = vs.prepareFrom('busy', shape, async () => voxels());
    // a second job whose voxels are read only after close (queued behind the first until then)
    let release!: (d: Uint8Array) => void;
    const later = vs.prepareFrom('reading', shape, () => new Promise<Uint8Array>((r) => (release = r)));
    for (let i = 0; !existsSync(join(dir, 'cache')) || !release; i++) {
      assert.ok(i < 1000, 'the jobs started');
      await sleep(10);
    }
    await sleep(50); // the first job's voxels are read and posted
    await vs.close();
    release(voxels());
    assert.equal(await inWorker, false, 'the job in the worker: no files');
    assert.equal(await later, false, 'the job read after close: no files');
    await Promise.all([vs.settled('busy'), vs.settled('reading')]);
    // after close, nothing is started and the answer is "no files", at once
    assert.equal(await vs.prepare('new', async () => new Uint8Array(8)), false);
    assert.ok(!existsSync(join(dir, 'cache', 'reading.z')), 'nothing written for the job dropped at close');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
