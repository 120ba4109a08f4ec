/**
 * Hostile uploads against a real `medmask serve` child process (built `dist/`, SQLite, in-process
 * queue): a NIfTI gzip bomb (4×4×4 header + 1.5 GiB of zeros, 1.5 MB on the wire), a 16000×16000
 * PNG with the server's cap lowered to 10^8 voxels, and a 94-byte NRRD header with no known
 * extension. For each: the answer and its time, the server's peak RSS increase over idle (from
 * /proc), and /health latency (p50 / p99 / max, polled every 10 ms) while the upload runs, next to
 * /health idle — the baseline measured in the same run.
 *
 *   npm run build && node --import tsx bench/hostile-upload.ts
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hugePng, niftiBomb } from '../test/helpers/hostile.js';

const ROOT = join(new URL('.', import.meta.url).pathname, '..');
const PASSWORD = 'bench-password-123';

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-hostile-bench-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'medmask.js'), 'serve', '--port', String(port), '--data-dir', join(dir, 'data')], {
    env: { ...process.env, MEDMASK_ADMIN_PASSWORD: PASSWORD, MEDMASK_MAX_VOXELS: '100000000', MEDMASK_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${url}/health`)).ok) break;
      } catch {
        if (i > 300) throw new Error('server did not start');
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const login = await fetch(`${url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: PASSWORD }) });
    const { csrfToken } = (await login.json()) as { csrfToken: string };
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const tok = await fetch(`${url}/api/tokens`, { method: 'POST', headers: { 'content-type': 'application/json', cookie, 'x-csrf-token': csrfToken }, body: JSON.stringify({ name: 'bench' }) });
    const token = ((await tok.json()) as { token: string }).token;
    const auth = { authorization: `Bearer ${token}` };
    const post = async (path: string, body: unknown) => (await fetch(`${url}${path}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) })).json() as Promise<{ id: string }>;
    const project = await post('/api/projects', { name: 'bench' });
    const ds = await post(`/api/projects/${project.id}/datasets`, { name: 'bench' });

    const pollHealth = (stop: { done: boolean }) => {
      const lat: number[] = [];
      let peak = rssMiB(child.pid!);
      const run = (async () => {
        while (!stop.done) {
          const t0 = performance.now();
          await fetch(`${url}/health`);
          lat.push(performance.now() - t0);
          peak = Math.max(peak, rssMiB(child.pid!));
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      return { lat, run, peak: () => peak };
    };

    // Warm the decode workers with one ordinary upload, then the idle baseline.
    const warm = new FormData();
    warm.append('file', new Blob([hugePng(8, 8)]), 'warm.png');
    await fetch(`${url}/api/datasets/${ds.id}/images`, { method: 'POST', headers: auth, body: warm });
    const idleStop = { done: false };
    const idle = pollHealth(idleStop);
    await new Promise((r) => setTimeout(r, 3000));
    idleStop.done = true;
    await idle.run;
    const idleRss = rssMiB(child.pid!);
    console.log(`idle: /health p50 ${pct(idle.lat, 50).toFixed(1)} ms, p99 ${pct(idle.lat, 99).toFixed(1)} ms (${idle.lat.length} polls); RSS ${idleRss.toFixed(0)} MiB`);

    const header94 = Buffer.from('NRRD0004\ntype: short\ndimension: 3\nsizes: 64 64 64\nencoding: raw\nendian: little\n\n'.padEnd(93, '#') + '\n');
    const cases: Array<[string, string, Buffer]> = [
      ['NIfTI gzip bomb (1.5 GiB of zeros)', 'bomb.nii.gz', niftiBomb(1536)],
      ['PNG 16000×16000 (cap 10^8 voxels)', 'huge.png', hugePng(16000, 16000)],
      [`NRRD header, ${header94.length} bytes, no known extension`, 'header.bin', header94],
    ];
    for (const [label, name, bytes] of cases) {
      const stop = { done: false };
      const h = pollHealth(stop);
      const form = new FormData();
      form.append('file', new Blob([bytes]), name);
      const t0 = performance.now();
      const r = await fetch(`${url}/api/datasets/${ds.id}/images`, { method: 'POST', headers: auth, body: form });
      const ms = performance.now() - t0;
      const body = (await r.json()) as { error?: string; message?: string };
      await new Promise((res) => setTimeout(res, 300));
      stop.done = true;
      await h.run;
      console.log(`${label} (${(bytes.length / 1e6).toFixed(2)} MB): ${r.status} ${body.error ?? ''} in ${ms.toFixed(0)} ms; peak RSS +${(h.peak() - idleRss).toFixed(0)} MiB; /health p50 ${pct(h.lat, 50).toFixed(1)} ms, p99 ${pct(h.lat, 99).toFixed(1)} ms, max ${Math.max(...h.lat).toFixed(1)} ms (${h.lat.length} polls)`);
      console.log(`  ${String(body.message).slice(0, 160)}`);
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
