// The login limit under concurrency: each attempt is counted in the database in one statement
// before the password is checked, so a burst of simultaneous wrong passwords — split over two
// server processes sharing the database — checks at most the limit (SQLite and PostgreSQL).
// Password changes are limited the same way; a password change revokes API tokens unless kept;
// hashes made with weaker scrypt parameters are replaced at login.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createServer } from '../../src/server/index.js';
import { InProcessQueue } from '../../src/queue/index.js';
import { secondServerProcess, startTestServer } from '../helpers/server.js';
import { startPostgres } from '../helpers/services.js';

const LIMIT = 5;

async function burst(engine: 'sqlite' | 'postgres') {
  const pg = engine === 'postgres' ? await startPostgres() : undefined;
  const a = await startTestServer({ loginMaxAttempts: LIMIT, ...(pg ? { db: pg.url } : {}) });
  const b = await secondServerProcess(a, { loginMaxAttempts: LIMIT, ...(pg ? { db: pg.url } : {}) });
  try {
    const apps = [a.app, b.app];
    const login = (i: number, username: string, ip: string) =>
      apps[i % 2]!.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password: `wrong-password-${i}` }, remoteAddress: ip });
    // 50 wrong passwords for one user at once, from 50 addresses, over two processes.
    const one = await Promise.all(Array.from({ length: 50 }, (_, i) => login(i, 'viewer', `10.1.0.${i}`)));
    const count = (rs: typeof one, s: number) => rs.filter((r) => r.statusCode === s).length;
    assert.equal(count(one, 401), LIMIT, `checked ${count(one, 401)} passwords`);
    assert.equal(count(one, 429), 50 - LIMIT);
    // One address against 50 user names at once.
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => login(i, `ghost-${i}`, '10.2.0.1')));
    assert.equal(count(many, 401), LIMIT);
    assert.equal(count(many, 429), 50 - LIMIT);
    // The right password is refused too while the user is over the limit.
    const right = await a.app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'viewer', password: a.users.viewer.password }, remoteAddress: '10.3.0.1' });
    assert.equal(right.statusCode, 429);
    assert.ok(Number(right.headers['retry-after']) > 0);
    return { engine, checked: count(one, 401), refused: count(one, 429) };
  } finally {
    await b.close();
    await a.close();
    await pg?.stop();
  }
}

test('SQLite: a concurrent burst of 50 wrong passwords over two processes checks exactly the limit', async () => {
  await burst('sqlite');
});

test('PostgreSQL: a concurrent burst of 50 wrong passwords over two processes checks exactly the limit', async () => {
  await burst('postgres');
});

test('password change: wrong current passwords are limited; tokens are revoked unless kept; sessions end', async () => {
  const s = await startTestServer({ loginMaxAttempts: 3 });
  try {
    const u = s.users.annotator;
    const change = (current: string, extra: Record<string, unknown> = {}) =>
      s.app.inject({ method: 'POST', url: '/api/auth/password', headers: { authorization: `Bearer ${u.token}` }, payload: { currentPassword: current, newPassword: 'a-new-password-123', ...extra } });
    const wrong = await Promise.all(Array.from({ length: 8 }, () => change('not-the-password')));
    assert.equal(wrong.filter((r) => r.statusCode === 403).length, 3);
    assert.equal(wrong.filter((r) => r.statusCode === 429).length, 5);
    assert.equal((await change(u.password)).statusCode, 429, 'over the limit even with the right one');

    const t = await startTestServer({ loginMaxAttempts: 3 });
    try {
      const v = t.users.reviewer;
      const as = (token: string, opts: object) => t.app.inject({ ...opts, headers: { authorization: `Bearer ${token}` } });
      const second = (await as(v.token, { method: 'POST', url: '/api/tokens', payload: { name: 'ci job' } })).json() as { id: string; token: string };
      const third = (await as(v.token, { method: 'POST', url: '/api/tokens', payload: { name: 'kept' } })).json() as { id: string; token: string };
      const r = await as(v.token, { method: 'POST', url: '/api/auth/password', payload: { currentPassword: v.password, newPassword: 'another-password-42', keepTokens: [third.id] } });
      assert.equal(r.statusCode, 200, r.body);
      assert.equal(r.json().revokedTokens, 2);
      assert.equal((await as(v.token, { url: '/api/auth/me' })).statusCode, 401, 'the token that changed the password is revoked');
      assert.equal((await as(second.token, { url: '/api/auth/me' })).statusCode, 401);
      assert.equal((await as(third.token, { url: '/api/auth/me' })).statusCode, 200, 'the kept token still works');
      const cookie = await t.app.inject({ url: '/api/auth/me', cookies: { medmask_session: v.cookie } });
      assert.equal(cookie.statusCode, 401, 'sessions end');
    } finally {
      await t.close();
    }
  } finally {
    await s.close();
  }
});

test('a hash made with weaker scrypt parameters is replaced at login by one at the configured parameters', async () => {
  const s = await startTestServer();
  try {
    const before = await s.store.db.selectFrom('users').select('password_hash').where('username', '=', 'viewer').executeTakeFirstOrThrow();
    assert.match(before.password_hash, /^scrypt\$1024\$8\$1\$/);
    const strong = await createServer({
      store: s.store, blobs: s.blobs, queue: new InProcessQueue(), runJobs: false,
      settings: { tmpDir: join(s.dir, 'tmp-3'), scrypt: { N: 2048, r: 8, p: 1 }, decodeWorkers: 0 },
    });
    try {
      const r = await strong.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'viewer', password: s.users.viewer.password } });
      assert.equal(r.statusCode, 200, r.body);
      const after = await s.store.db.selectFrom('users').select('password_hash').where('username', '=', 'viewer').executeTakeFirstOrThrow();
      assert.match(after.password_hash, /^scrypt\$2048\$8\$1\$/);
      const again = await strong.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'viewer', password: s.users.viewer.password } });
      assert.equal(again.statusCode, 200, 'the new hash verifies');
    } finally {
      await strong.close();
    }
  } finally {
    await s.close();
  }
});
