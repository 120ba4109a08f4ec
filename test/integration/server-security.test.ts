// Server hardening: security headers on every response (the review UI's policy has no
// 'unsafe-inline'), the JSON-body 413 names the JSON limit, names refuse NUL and bidi overrides,
// four-eyes review as a setting, and `medmask serve` writes the first admin password to a 0600
// file (never to stdout) with the data folder 0700 and the database 0600.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/server/config.js';
import { startServe } from '../../src/server/service.js';
import { makeDataset, uploadPng } from '../helpers/api-suite.js';
import { multipartBody, startTestServer } from '../helpers/server.js';

test('every response carries the security headers; the UI policy allows no inline script or style', async () => {
  const s = await startTestServer();
  try {
    for (const url of ['/health', '/', '/api/projects', '/no/such/route']) {
      const r = await s.as(url === '/api/projects' ? 'viewer' : null, { url });
      const csp = String(r.headers['content-security-policy']);
      assert.match(csp, /default-src 'self'/, url);
      assert.match(csp, /script-src 'self'(;|$)/, url);
      assert.match(csp, /frame-ancestors 'none'/, url);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, url);
      assert.equal(r.headers['x-content-type-options'], 'nosniff', url);
      assert.equal(r.headers['x-frame-options'], 'DENY', url);
      assert.equal(r.headers['referrer-policy'], 'no-referrer', url);
      assert.equal(r.headers['strict-transport-security'], undefined, 'no HSTS unless behind HTTPS');
    }
    const docs = await s.app.inject({ url: '/docs/' });
    assert.match(String(docs.headers['content-security-policy']), /style-src 'self' 'unsafe-inline'/, 'swagger-ui needs inline styles');
  } finally {
    await s.close();
  }
});

test('a JSON body over 2 MiB is refused naming the 2 MiB limit, not the upload limit', async () => {
  const s = await startTestServer({ maxUploadBytes: 5 * 2 ** 20 });
  try {
    const r = await s.as('admin', { method: 'POST', url: '/api/projects', payload: { name: 'x', pad: 'y'.repeat(3 * 2 ** 20) } });
    assert.equal(r.statusCode, 413);
    assert.match(r.json().message, /larger than this route's limit of 2 MiB/);
    assert.doesNotMatch(r.json().message, /5 MiB/);
  } finally {
    await s.close();
  }
});

test('names with NUL, control characters or bidi overrides are refused; ordinary Unicode names are kept', async () => {
  const s = await startTestServer();
  try {
    for (const name of ['evil\u202Egnp.exe', 'a\u0000b', 'tab\there', 'iso\u2066late']) {
      const r = await s.as('admin', { method: 'POST', url: '/api/projects', payload: { name } });
      assert.equal(r.statusCode, 400, `${JSON.stringify(name)}: ${r.body}`);
      const t = await s.as('viewer', { method: 'POST', url: '/api/tokens', payload: { name } });
      assert.equal(t.statusCode, 400, `token ${JSON.stringify(name)}`);
    }
    assert.equal((await s.as('admin', { method: 'POST', url: '/api/projects', payload: { name: 'Thorax – Zürich 胸部' } })).statusCode, 201);
    const ds = await makeDataset(s, 'names');
    const up = await s.as('reviewer', { method: 'POST', url: `/api/datasets/${ds}/images`, ...multipartBody([{ name: 'scan\u202Egnp.png', data: Buffer.from([0x89]) }]) });
    assert.equal(up.statusCode, 400);
    assert.match(up.json().message, /\\\\u202e/, 'the message shows the override escaped, not applied');
  } finally {
    await s.close();
  }
});

test('four-eyes review: with the setting on, a reviewer cannot accept a version they wrote; another reviewer can', async () => {
  for (const fourEyesReview of [false, true]) {
    const s = await startTestServer({ settings: { fourEyesReview } });
    try {
      const ds = await makeDataset(s, 'eyes');
      const img = await uploadPng(s, ds);
      const maskId = (await s.as('reviewer', { method: 'POST', url: `/api/images/${img.id}/cases`, payload: { target: 'lesion', priority: 0.5 } })).json().maskId as string;
      const v1 = await s.as('reviewer', { method: 'POST', url: `/api/masks/${maskId}/versions`, payload: { baseVersion: 0, labels: Buffer.alloc(29 * 19, 1).toString('base64') } });
      assert.equal(v1.statusCode, 201, v1.body);
      const own = await s.as('reviewer', { method: 'POST', url: `/api/masks/${maskId}/review`, payload: { decision: 'accept', version: 1 } });
      if (!fourEyesReview) {
        assert.equal(own.statusCode, 201, 'off: self-review allowed');
        continue;
      }
      assert.equal(own.statusCode, 403, own.body);
      assert.match(own.json().message, /four-eyes review is on: you wrote version 1/);
      const other = await s.as('admin', { method: 'POST', url: `/api/masks/${maskId}/review`, payload: { decision: 'accept', version: 1 } });
      assert.equal(other.statusCode, 201, other.body);
    } finally {
      await s.close();
    }
  }
  assert.equal(loadConfig({}, { MEDMASK_FOUR_EYES_REVIEW: 'true' }).fourEyesReview, true);
});

test('medmask serve: the first admin password goes to a 0600 file, not stdout; data folder 0700, database 0600', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-serve-sec-'));
  const umask = process.umask();
  const lines: string[] = [];
  const saved = process.env.MEDMASK_ADMIN_PASSWORD;
  delete process.env.MEDMASK_ADMIN_PASSWORD;
  try {
    const cfg = loadConfig({ dataDir: join(dir, 'data'), port: '0', logLevel: 'silent' }, {});
    const svc = await startServe(cfg, (l) => lines.push(l));
    try {
      const file = join(dir, 'data', 'initial-admin-password');
      const password = readFileSync(file, 'utf8').trim();
      assert.match(password, /^[a-z0-9]{5}(-[a-z0-9]{5}){3}$/);
      assert.ok(!lines.join('\n').includes(password), 'the password is not printed');
      assert.ok(lines.some((l) => l.includes(file)), 'stdout says where it is');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(statSync(join(dir, 'data')).mode & 0o777, 0o700);
      assert.equal(statSync(join(dir, 'data', 'medmask.sqlite')).mode & 0o777, 0o600);
      const login = await fetch(`${svc.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password }) });
      assert.equal(login.status, 200);
    } finally {
      await svc.stop();
    }
  } finally {
    process.umask(umask);
    if (saved !== undefined) process.env.MEDMASK_ADMIN_PASSWORD = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});
