// Faults: `medmask serve` killed with SIGKILL while uploads are in flight. After a restart on the
// same data folder no row references a missing or half-written blob, the SQLite file passes its
// integrity check, temporary files of the dead process are gone, and every listed image reads
// back. Then a SIGTERM shuts the server down cleanly (exit code 0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createVolume } from '../../src/core/volume.js';
import { mulberry32 } from '../../src/core/random.js';
import { decodeNifti, encodeNifti } from '../../src/io/nifti.js';
import { ROOT, watchLines } from '../helpers/cli.js';

const PASSWORD = 'fault-test-password-1';

function serve(dataDir: string): { child: ChildProcess; url: Promise<string>; lines: string[] } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/run.ts'), 'serve', '--data-dir', dataDir, '--port', '0', '--log-level', 'silent'], {
    cwd: ROOT,
    env: { ...process.env, MEDMASK_ADMIN_PASSWORD: PASSWORD, MEDMASK_SHUTDOWN_GRACE_MS: '2000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { lines, found: url } = watchLines(child, (l) => /listening on (http:\/\/\S+)/.exec(l)?.[1], 'serve');
  return { child, url, lines };
}

async function token(url: string): Promise<string> {
  const login = await fetch(`${url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: PASSWORD }) });
  assert.equal(login.status, 200);
  const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
  const { csrfToken } = (await login.json()) as { csrfToken: string };
  const t = await fetch(`${url}/api/tokens`, { method: 'POST', headers: { 'content-type': 'application/json', cookie, 'x-csrf-token': csrfToken }, body: JSON.stringify({ name: 'fault' }) });
  return ((await t.json()) as { token: string }).token;
}

test('SIGKILL during uploads: after restart no half-written blob is referenced and the database is intact; SIGTERM exits cleanly', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'medmask-faults-'));
  let first = serve(dataDir);
  try {
    let url = await first.url;
    let tok = await token(url);
    const auth = (t: string) => ({ authorization: `Bearer ${t}` });
    const j = async (r: Response) => (await r.json()) as Record<string, unknown>;
    const project = await j(await fetch(`${url}/api/projects`, { method: 'POST', headers: { ...auth(tok), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'faults' }) }));
    const ds = await j(await fetch(`${url}/api/projects/${project.id}/datasets`, { method: 'POST', headers: { ...auth(tok), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'd' }) }));
    // Noise volumes (2 MiB each; noise does not compress, so every blob write takes a while).
    const rnd = mulberry32(7);
    const volumes = Array.from({ length: 24 }, () => encodeNifti(createVolume([128, 128, 64], 'int16', { data: Int16Array.from({ length: 128 * 128 * 64 }, () => (rnd() * 4000 - 1000) | 0) })));
    let ok = 0;
    let killed = false;
    const upload = async (i: number) => {
      const form = new FormData();
      form.append('file', new Blob([volumes[i]!]), `v${String(i).padStart(2, '0')}.nii`);
      try {
        const r = await fetch(`${url}/api/datasets/${ds.id}/images`, { method: 'POST', headers: auth(tok), body: form });
        if (r.status === 201) ok++;
        else assert.fail(`upload ${i}: ${r.status} ${await r.text()}`);
      } catch (e) {
        assert.ok(killed, `upload ${i} failed before the kill: ${(e as Error).message}`);
      }
      if (ok === 3 && !killed) {
        killed = true;
        first.child.kill('SIGKILL');
      }
    };
    // Six at a time, so several are mid-write when the kill lands.
    const queue = volumes.map((_, i) => i);
    await Promise.all(Array.from({ length: 6 }, async () => {
      while (queue.length && !killed) await upload(queue.shift()!);
    }));
    await new Promise((r) => (first.child.exitCode !== null || first.child.signalCode !== null ? r(null) : first.child.once('exit', r)));
    assert.equal(first.child.signalCode, 'SIGKILL');
    const left = (sub: string) => (existsSync(join(dataDir, sub)) ? readdirSync(join(dataDir, sub)) : []);
    t.diagnostic(`left by the killed server: ${left('blobs/tmp').length} blob temp file(s), ${left('tmp').length} upload folder(s); ${ok} uploads answered`);

    // Restart on the same folder.
    first = serve(dataDir);
    url = await first.url;
    tok = await token(url);
    const tmp = join(dataDir, 'blobs', 'tmp');
    assert.deepEqual(existsSync(tmp) ? readdirSync(tmp) : [], [], 'temporary blob files of the killed server are removed on start');
    assert.deepEqual(left('tmp'), [], 'upload folders of the killed server are removed on start');
    const integrity = await j(await fetch(`${url}/api/admin/integrity`, { headers: auth(tok) }));
    assert.equal(integrity.ok, true, JSON.stringify(integrity));
    assert.equal(integrity.database, 'ok');
    const images = (await j(await fetch(`${url}/api/datasets/${ds.id}/images?limit=100`, { headers: auth(tok) }))).images as { id: string; name: string }[];
    assert.ok(images.length >= ok, `${images.length} images listed, ${ok} uploads answered 201`);
    for (const img of images) {
      const r = await fetch(`${url}/api/images/${img.id}/data`, { headers: auth(tok) });
      assert.equal(r.status, 200);
      const vol = await decodeNifti(new Uint8Array(gunzipSync(Buffer.from(await r.arrayBuffer()))));
      const i = Number(/v(\d+)/.exec(img.name)![1]);
      assert.deepEqual(Buffer.from(vol.data.buffer, vol.data.byteOffset, vol.data.byteLength), Buffer.from(volumes[i]!.subarray(352)), `${img.name} reads back whole`);
    }
    // Uploads work again after the restart.
    const form = new FormData();
    form.append('file', new Blob([volumes[23]!]), 'after.nii');
    assert.equal((await fetch(`${url}/api/datasets/${ds.id}/images`, { method: 'POST', headers: auth(tok), body: form })).status, 201);

    first.child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => first.child.once('exit', (c) => r(c)));
    assert.equal(code, 0, first.lines.join('\n'));
    assert.ok(first.lines.some((l) => l.includes('shutting down')));
  } finally {
    first.child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  }
});
