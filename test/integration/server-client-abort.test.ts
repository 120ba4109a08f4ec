// A client that drops mid-upload is its own fault: on every upload route (image upload, data-set
// archive, mask save as JSON and as binary) a real socket destroyed part-way through the body
// leaves an audit row with a 4xx status, no level-50 (error) log line, no temporary file, and a
// server that keeps answering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import { existsSync, readdirSync } from 'node:fs';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { makeDataset, uploadPng } from '../helpers/api-suite.js';
import { startTestServer, waitFor } from '../helpers/server.js';

/** Send `head` + part of a body declared `declared` bytes long on a raw socket, then destroy it. */
async function dropMidBody(server: Server, head: string, body: Buffer, delayMs: number, before?: () => void): Promise<void> {
  const port = (server.address() as { port: number }).port;
  // The server has parsed the request line and headers when it emits 'request'.
  const seen = new Promise<void>((resolve) => server.once('request', () => resolve()));
  const sock = connect(port, '127.0.0.1', () => {
    sock.write(head);
    sock.write(body);
  });
  await seen;
  await new Promise((r) => setTimeout(r, delayMs));
  before?.();
  sock.destroy();
}

test('a client that drops mid-body is audited as 4xx on every upload route, logs no error, leaves no temp file', async () => {
  const lines: Array<{ level: number; msg: string }> = [];
  const stream = new Writable({ write(chunk, _e, cb) { for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l)); cb(); } });
  const s = await startTestServer({ logger: { level: 'info', stream }, maxUploadBytes: 64 * 2 ** 20 });
  try {
    await s.app.listen({ port: 0, host: '127.0.0.1' });
    const port = (s.app.server.address() as { port: number }).port;
    const ds = await makeDataset(s, 'abort');
    const img = await uploadPng(s, ds);
    const maskId = (await s.as('reviewer', { method: 'POST', url: `/api/images/${img.id}/cases`, payload: { target: 'lesion', priority: 0.5 } })).json().maskId as string;
    const auth = `Authorization: Bearer ${s.users.reviewer.token}\r\n`;
    const admin = `Authorization: Bearer ${s.users.admin.token}\r\n`;
    const declared = 8 * 2 ** 20;
    const chunk = Buffer.alloc(256 * 1024, 0x41);
    const boundary = 'xAbortBoundary';
    const mpHead = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.nii"\r\nContent-Type: application/octet-stream\r\n\r\n`);
    const cases: Array<{ action: string; head: string; body: Buffer }> = [
      { action: `POST /api/datasets/:id/images`, head: `POST /api/datasets/${ds}/images HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${declared}\r\n\r\n`, body: Buffer.concat([mpHead, chunk]) },
      { action: `POST /api/datasets/:id/archive`, head: `POST /api/datasets/${ds}/archive HTTP/1.1\r\nHost: x\r\n${admin}Content-Type: application/gzip\r\nContent-Length: ${declared}\r\n\r\n`, body: gzipSync(Buffer.alloc(4 * 2 ** 20)).subarray(0, 2000) },
      { action: `POST /api/masks/:id/versions`, head: `POST /api/masks/${maskId}/versions HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: ${declared}\r\n\r\n`, body: Buffer.concat([Buffer.from('{"baseVersion":0,"labels":"'), chunk]) },
      { action: `PUT /api/masks/:id/data`, head: `PUT /api/masks/${maskId}/data?baseVersion=0 HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/octet-stream\r\nContent-Length: ${declared}\r\n\r\n`, body: chunk },
    ];
    const since = new Date().toISOString();
    const tmp = join(s.dir, 'tmp');
    const uploadsInTmp = () => (existsSync(tmp) ? readdirSync(tmp).filter((f) => f.startsWith('upload-') || f.startsWith('dataset-')) : []);
    let sawTemp = false;
    for (const delay of [0, 20, 300]) {
      for (const c of cases) await dropMidBody(s.app.server, c.head, c.body, delay, () => (sawTemp ||= uploadsInTmp().length > 0));
    }
    assert.ok(sawTemp, 'the multipart upload had written a temp folder before the client dropped');
    const rows = await waitFor(async () => {
      const r = await s.store.db.selectFrom('audit_log').select(['action', 'status', 'details']).where('action', 'in', cases.map((c) => c.action)).where('at', '>=', since).execute();
      return r.length >= 3 * cases.length ? r : undefined;
    }, 10_000, 'an audit row per dropped request');
    for (const c of cases) {
      const mine = rows.filter((r) => r.action === c.action);
      assert.equal(mine.length, 3, `${c.action}: one row per dropped request`);
      for (const row of mine) {
        assert.equal(row.status, 400, `${c.action}: audited as ${row.status}`);
        assert.deepEqual(JSON.parse(String(row.details)), { clientClosed: true }, c.action);
      }
    }
    assert.equal(lines.filter((l) => l.msg === 'client closed the connection mid-request').length, 3 * cases.length, 'each logged at info');
    assert.deepEqual(lines.filter((l) => l.level >= 50), [], 'no error-level log line');
    await waitFor(async () => uploadsInTmp().length === 0, 5000, 'temp files removed');
    assert.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
  } finally {
    await s.close();
  }
});
