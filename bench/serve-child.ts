/**
 * For benchmarks that measure a real server: start `medmask serve` (from source) as a child
 * process, log in as the first admin and make an API token. The child is killed when the case
 * process exits, and does not keep it alive.
 * @module
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(new URL('.', import.meta.url).pathname, '..');
const PASSWORD = 'bench-password-123';

/** A running `medmask serve` child. */
export interface ServeChild {
  url: string;
  pid: number;
  /** An admin's API token. */
  token: string;
}

/**
 * Start `medmask serve --data-dir DIR --port 0` plus `args`; `dir` is removed when the process exits.
 * @param o.nodeArgs - options for node itself (e.g. `--cpu-prof`); a child started with them gets
 *   SIGTERM at exit (it shuts down cleanly and writes what they ask for), otherwise SIGKILL
 * @example
 * const { url, token } = await startServeChild({ dir, args: ['--log-level', 'silent'] });
 */
export async function startServeChild(o: { dir: string; args?: string[]; env?: Record<string, string>; nodeArgs?: string[] }): Promise<ServeChild> {
  const child = spawn(process.execPath, [...(o.nodeArgs ?? []), '--import', 'tsx', join(ROOT, 'src/cli/run.ts'), 'serve', '--data-dir', o.dir, '--port', '0', ...(o.args ?? [])], {
    cwd: ROOT,
    env: { ...process.env, MEDMASK_ADMIN_PASSWORD: PASSWORD, ...o.env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  process.once('exit', () => {
    child.kill(o.nodeArgs?.length ? 'SIGTERM' : 'SIGKILL');
    rmSync(o.dir, { recursive: true, force: true });
  });
  const url = await new Promise<string>((res, rej) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(buf);
      if (m) res(m[1]!);
    });
    child.once('exit', (c) => rej(new Error(`medmask serve exited with ${c}`)));
  });
  // The case process must be able to exit when its repetitions are done (the exit hook kills the server).
  child.unref();
  (child.stdout as unknown as { unref(): void }).unref();
  const login = await fetch(`${url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: PASSWORD }) });
  const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
  const { csrfToken } = (await login.json()) as { csrfToken: string };
  const t = await fetch(`${url}/api/tokens`, { method: 'POST', headers: { 'content-type': 'application/json', cookie, 'x-csrf-token': csrfToken }, body: JSON.stringify({ name: 'bench' }) });
  const { token } = (await t.json()) as { token: string };
  return { url, pid: child.pid!, token };
}
