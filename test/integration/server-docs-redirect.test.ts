/**
 * `/docs` (the OpenAPI UI) opened in a browser before login goes to the review UI's login page;
 * API clients asking for JSON (or anything but HTML) keep the 401 with its error body.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestServer, type TestServer } from '../helpers/server.js';

let s: TestServer;
before(async () => {
  s = await startTestServer();
});
after(async () => s?.close());

const BROWSER = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

test('a browser without a login is redirected from /docs to the login page', async () => {
  for (const url of ['/docs', '/docs/', '/docs/json', '/docs/static/index.html']) {
    const r = await s.app.inject({ method: 'GET', url, headers: { accept: BROWSER } });
    assert.equal(r.statusCode, 302, `${url}: ${r.statusCode} ${r.body.slice(0, 120)}`);
    assert.equal(r.headers.location, `/?next=${encodeURIComponent(url)}#/login`, url);
  }
});

test('API clients keep the 401 with the JSON error', async () => {
  for (const accept of ['application/json', '*/*', undefined]) {
    const r = await s.app.inject({ method: 'GET', url: '/docs/json', ...(accept ? { headers: { accept } } : {}) });
    assert.equal(r.statusCode, 401, String(accept));
    assert.equal(r.json().error, 'UNAUTHENTICATED');
  }
  const api = await s.app.inject({ method: 'GET', url: '/api/tokens', headers: { accept: BROWSER } });
  assert.equal(api.statusCode, 401, 'only /docs redirects; the API answers 401 even to a browser');
});

test('after login the browser gets the documentation', async () => {
  const r = await s.as('viewer', { method: 'GET', url: '/docs/json', headers: { accept: BROWSER } });
  assert.equal(r.statusCode, 200);
  assert.equal(r.json().info.title, 'medmask API');
  const ui = await s.as('viewer', { method: 'GET', url: '/docs', headers: { accept: BROWSER } });
  assert.doesNotMatch(String(ui.headers.location ?? ''), /#\/login/);
  assert.ok(ui.statusCode < 400, String(ui.statusCode));
});
