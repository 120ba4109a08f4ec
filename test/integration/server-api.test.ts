// The server API suite on SQLite (the zero-set-up default). The same suite runs on PostgreSQL in
// server-api-pg.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { apiSuite } from '../helpers/api-suite.js';
import { startTestServer } from '../helpers/server.js';

apiSuite('sqlite');

test('sqlite: failed logins are rate-limited per user name (429 with Retry-After), even for the right password', async () => {
  const s = await startTestServer({ loginMaxAttempts: 3 });
  try {
    const login = (password: string) => s.app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'viewer', password } });
    for (let i = 0; i < 3; i++) assert.equal((await login('wrong-password-x')).statusCode, 401);
    const limited = await login(s.users.viewer.password);
    assert.equal(limited.statusCode, 429);
    assert.equal(limited.json().error, 'RATE_LIMITED');
    assert.ok(Number(limited.headers['retry-after']) > 0);
    // Another user from the same address is limited too (per-address counter), tokens still work.
    assert.equal((await s.app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: 'admin', password: s.users.admin.password } })).statusCode, 429);
    assert.equal((await s.as('viewer', { url: '/api/auth/me' })).statusCode, 200);
  } finally {
    await s.close();
  }
});
