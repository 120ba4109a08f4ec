// The failed-login limit is kept in the database (login_attempts), so it holds across server
// processes sharing one database, per user name (reset by a successful login) and per address.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { secondServerProcess, startTestServer, type TestServer } from '../helpers/server.js';
import { loadConfig } from '../../src/server/config.js';

/** Another server process on the test server's database. */
function secondProcess(a: TestServer, loginMaxAttempts: number, trustProxy?: string[]) {
  return secondServerProcess(a, { loginMaxAttempts, ...(trustProxy ? { trustProxy } : {}) });
}

test('failed logins counted on one server process are refused by another sharing the database; the user counter resets on success', async () => {
  const a = await startTestServer({ loginMaxAttempts: 3 });
  const { app: b, close } = await secondProcess(a, 3);
  try {
    const login = (app: typeof b, username: string, password: string, ip: string) => app.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password }, remoteAddress: ip });
    const right = a.users.viewer.password;
    // Per user name, from changing addresses, alternating between the two processes.
    assert.equal((await login(a.app, 'viewer', 'wrong-password-1', '10.0.0.1')).statusCode, 401);
    assert.equal((await login(b, 'viewer', 'wrong-password-2', '10.0.0.2')).statusCode, 401);
    assert.equal((await login(a.app, 'viewer', right, '10.0.0.3')).statusCode, 200, 'two failures: still allowed');
    // The success resets the user counter: two more failures do not reach the limit of 3.
    assert.equal((await login(b, 'viewer', 'wrong-password-3', '10.0.0.4')).statusCode, 401);
    assert.equal((await login(a.app, 'viewer', 'wrong-password-4', '10.0.0.5')).statusCode, 401);
    assert.equal((await login(b, 'viewer', right, '10.0.0.6')).statusCode, 200, 'counted since the last success');
    for (const [i, app] of [a.app, b, a.app].entries()) assert.equal((await login(app, 'viewer', `wrong-${i}-password`, `10.0.1.${i}`)).statusCode, 401);
    const limited = await login(b, 'viewer', right, '10.0.2.1');
    assert.equal(limited.statusCode, 429, 'three failures on two processes: the other refuses');
    assert.equal(limited.json().error, 'RATE_LIMITED');
    assert.ok(Number(limited.headers['retry-after']) > 0);
    // Another user is not affected by viewer's counter; an address is counted across user names.
    assert.equal((await login(a.app, 'admin', a.users.admin.password, '10.0.2.1')).statusCode, 200);
    for (const u of ['admin', 'reviewer', 'nobody']) assert.equal((await login(u === 'reviewer' ? b : a.app, u, 'wrong-password-x', '10.9.9.9')).statusCode, 401);
    assert.equal((await login(b, 'annotator', a.users.annotator.password, '10.9.9.9')).statusCode, 429, 'the address used up its attempts');
    assert.equal((await login(b, 'annotator', a.users.annotator.password, '10.9.9.8')).statusCode, 200);
  } finally {
    await close();
    await a.close();
  }
});

test('behind a trusted reverse proxy the client address comes from X-Forwarded-For; the setting is validated as a list', async () => {
  const a = await startTestServer({ loginMaxAttempts: 2 });
  const { app, store, close } = await secondProcess(a, 2, ['127.0.0.1']);
  try {
    const via = (client: string, username: string) => app.inject({ method: 'POST', url: '/api/auth/login', payload: { username, password: 'wrong-password-x' }, headers: { 'x-forwarded-for': client } });
    assert.equal((await via('203.0.113.5', 'ghost-1')).statusCode, 401);
    assert.equal((await via('203.0.113.5', 'ghost-2')).statusCode, 401);
    assert.equal((await via('203.0.113.5', 'ghost-3')).statusCode, 429, 'that client used up its attempts');
    assert.equal((await via('203.0.113.6', 'ghost-4')).statusCode, 401, 'another client behind the same proxy is not');
    const rows = await store.db.selectFrom('audit_log').select('ip').where('action', '=', 'POST /api/auth/login').where('status', '=', 401).execute();
    assert.ok(rows.some((r) => r.ip === '203.0.113.6'), 'the audit log names the client, not the proxy');
  } finally {
    await close();
    await a.close();
  }
  assert.deepEqual(loadConfig({ trustProxy: '10.0.0.0/8, 127.0.0.1' }, {}).trustProxy, ['10.0.0.0/8', '127.0.0.1']);
  assert.deepEqual(loadConfig({}, {}).trustProxy, []);
});
