/**
 * `medmask model register DIR --server URL` and `medmask model list` (issue 16 §1) against a
 * listening server: the token comes from MEDMASK_TOKEN; a non-admin is told the role registering
 * needs; a bad manifest is refused here, naming its field, before anything is sent; the demo
 * U-Net registers as version 1 with card.json's held-out Dice, and again as the same version.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ROOT } from '../helpers/cli.js';
import { cliWithToken } from '../helpers/cli-in-process.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let s: TestServer;
let dir: string;
let url: string;
const UNET = join(ROOT, 'models/demo/demo-unet3d');

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'medmask-model-cli-'));
  s = await startTestServer();
  url = await s.app.listen({ host: '127.0.0.1', port: 0 });
});
after(async () => {
  await s?.close();
  rmSync(dir, { recursive: true, force: true });
});

const cli = cliWithToken;

test('medmask model register / list: token, role, manifest field, version 1 with the card\'s held-out Dice', async () => {
  const noToken = await cli(undefined, 'model', 'register', UNET, '--server', url);
  assert.equal(noToken.code, 2);
  assert.match(noToken.err, /MEDMASK_TOKEN is not set/);

  const reviewer = await cli(s.users.reviewer.token, 'model', 'register', UNET, '--server', url);
  assert.notEqual(reviewer.code, 0);
  assert.match(reviewer.err, /FORBIDDEN/);
  assert.match(reviewer.err, /needs the role admin \(permission "model:write"\)/);
  assert.match(reviewer.err, /role reviewer may not do this/);

  // A manifest whose input layout is not one medmask knows: refused here, naming the field.
  const bad = join(dir, 'bad');
  cpSync(UNET, bad, { recursive: true });
  const m = JSON.parse(readFileSync(join(bad, 'model.json'), 'utf8')) as { input: { layout: string } };
  m.input.layout = 'NHWC-3D';
  writeFileSync(join(bad, 'model.json'), JSON.stringify(m));
  const invalid = await cli(s.users.admin.token, 'model', 'register', bad, '--server', url);
  assert.notEqual(invalid.code, 0);
  assert.match(invalid.err, /MODEL_INVALID/);
  assert.match(invalid.err, /input\.layout/);
  const none = await cli(s.users.viewer.token, 'model', 'list', '--server', url);
  assert.equal(none.code, 0, none.err);
  assert.match(none.out, /no models registered/);

  const r = await cli(s.users.admin.token, 'model', 'register', UNET, '--server', url);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^registered demo-unet3d@1 \(/);
  const again = await cli(s.users.admin.token, 'model', 'register', UNET, '--server', url, '--json');
  assert.equal(again.code, 0, again.err);
  const a = JSON.parse(again.out) as { ref: string; created: boolean; metrics: { heldout: { mean_dice: number } } };
  assert.equal(a.ref, 'demo-unet3d@1');
  assert.equal(a.created, false);

  // The held-out Dice shown is the one the trainer wrote into card.json.
  const card = JSON.parse(readFileSync(join(UNET, 'card.json'), 'utf8')) as { metrics: { heldout: { mean_dice: number } } };
  assert.equal(a.metrics.heldout.mean_dice, card.metrics.heldout.mean_dice);
  const list = await cli(s.users.viewer.token, 'model', 'list', '--server', url);
  assert.equal(list.code, 0, list.err);
  const row = list.out.split('\n').find((l) => l.startsWith('demo-unet3d '));
  assert.ok(row, list.out);
  assert.deepEqual(row.split(/\s{2,}/), ['demo-unet3d', 'demo-unet3d@1', 'segment', card.metrics.heldout.mean_dice.toFixed(4), '1', '0', '—']);
  const json = await cli(s.users.viewer.token, 'model', 'list', '--server', url, '--json');
  assert.deepEqual(JSON.parse(json.out), (await s.as('viewer', { method: 'GET', url: '/api/models' })).json());
});
