// Concurrency: 50 saves on one mask from 5 users at once, on SQLite and on PostgreSQL. Every save
// either becomes the next version (201) or is refused as stale (409) and kept as a draft; the
// history is linear (versions 1…k, each the child of the one before), and versions + drafts = saves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeDataset, uploadPng } from '../helpers/api-suite.js';
import { startPostgres } from '../helpers/services.js';

async function fiftySaves(s: TestServer): Promise<void> {
  // Five editors: the annotator, reviewer and admin of the fixture plus two more annotators.
  const extra = [];
  for (const name of ['ann2', 'ann3']) {
    await s.as('admin', { method: 'POST', url: '/api/users', payload: { username: name, password: `${name}-password-1`, role: 'annotator' } });
    const login = await s.app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: name, password: `${name}-password-1` } });
    const tok = await s.app.inject({ method: 'POST', url: '/api/tokens', cookies: { medmask_session: login.cookies[0]!.value }, headers: { 'x-csrf-token': login.json().csrfToken }, payload: { name: 't' } });
    extra.push({ ...s.users.annotator, username: name, token: tok.json().token as string });
  }
  const editors = [s.users.annotator, s.users.reviewer, s.users.admin, ...extra];
  const ds = await makeDataset(s, 'concurrency');
  const img = await uploadPng(s, ds);
  const mask = (await s.as('admin', { method: 'POST', url: `/api/images/${img.id}/cases`, payload: { target: 'lesion' } })).json().maskId as string;
  const n = 29 * 19;

  // Each editor: 10 rounds of "load the current version, edit, save on it", all editors at once.
  const results: { status: number; editor: string; base: number; body: Record<string, unknown> }[] = [];
  await Promise.all(
    editors.map(async (u, e) => {
      for (let round = 0; round < 10; round++) {
        const cur = (await s.as(u, { url: `/api/masks/${mask}` })).json().currentVersion as number;
        const labels = Buffer.alloc(n, 0);
        labels[e * 10 + round] = e + 1; // a distinct edit per save
        const r = await s.as(u, { method: 'POST', url: `/api/masks/${mask}/versions`, payload: { baseVersion: cur, labels: labels.toString('base64') } });
        results.push({ status: r.statusCode, editor: u.username, base: cur, body: r.json() });
      }
    }),
  );
  assert.equal(results.length, 50);
  assert.ok(results.every((r) => r.status === 201 || r.status === 409), JSON.stringify(results.filter((r) => r.status !== 201 && r.status !== 409)));
  const saved = results.filter((r) => r.status === 201);
  const refused = results.filter((r) => r.status === 409);
  assert.ok(refused.length > 0, 'concurrent saves should collide at least once');
  for (const r of refused) assert.ok((r.body.details as { draftId?: string }).draftId, 'every refused save names its draft');

  const m = (await s.as('viewer', { url: `/api/masks/${mask}` })).json() as { currentVersion: number; versions: { version: number; parentVersion: number | null; author: string }[]; drafts: number };
  const versions = [...m.versions].sort((a, b) => a.version - b.version);
  assert.deepEqual(versions.map((v) => v.version), Array.from({ length: saved.length }, (_, i) => i + 1), 'versions 1…k without gaps');
  for (const v of versions) assert.equal(v.parentVersion, v.version === 1 ? null : v.version - 1, 'each version is the child of the one before');
  assert.equal(m.currentVersion, saved.length);
  assert.equal(m.drafts, refused.length);
  assert.equal(versions.length + m.drafts, 50, 'versions + drafts = saves');
  // Each 201 reported the version it created, each exactly once.
  assert.deepEqual(saved.map((r) => r.body.version as number).sort((a, b) => a - b), versions.map((v) => v.version));
  // Each version was based on the version before it (the 201's base is its parent).
  for (const r of saved) assert.equal(r.base, (r.body.version as number) - 1);
  // Who saved what: the version's author is the editor whose request created it.
  const byVersion = new Map(versions.map((v) => [v.version, v.author]));
  for (const r of saved) assert.equal(byVersion.get(r.body.version as number), r.editor);
}

test('50 concurrent saves from 5 users on SQLite: linear history, versions + drafts = saves', async () => {
  const s = await startTestServer();
  try {
    await fiftySaves(s);
  } finally {
    await s.close();
  }
});

test('50 concurrent saves from 5 users on PostgreSQL: linear history, versions + drafts = saves', async () => {
  const pg = await startPostgres();
  const s = await startTestServer({ db: pg.url });
  try {
    await fiftySaves(s);
  } finally {
    await s.close();
    await pg.stop();
  }
});
