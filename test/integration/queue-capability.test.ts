// Capability routing with the in-process queue (the BullMQ lanes are in queue-fanout.test.ts):
// detection (the real probe on this machine, which has Debian's python3-torch, and the
// MEDMASK_CAPABILITIES override), a job type that needs torch refused at submission with an
// ENVIRONMENT error naming the package when the server lacks it, run when it has it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detectCapabilities } from '../../src/queue/capabilities.js';
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
