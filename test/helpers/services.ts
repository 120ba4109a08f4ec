/**
 * Real PostgreSQL and Redis servers for tests and benchmarks, started from Debian's binaries in a
 * temporary folder on a free loopback port and stopped afterwards (also when the process exits).
 * Missing packages are installed by scripts/system-deps.mjs (as root) or named in the error.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
// @ts-expect-error plain ESM script without types
import { ensureSystemPackages, postgresBinDir } from '../../scripts/system-deps.mjs';

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

/** A running service. */
export interface Service {
  url: string;
  stop(): Promise<void>;
}

/** A service that a fault test can take down and bring back on the same port and data. */
export interface RestartableService extends Service {
  /** Take it down (PostgreSQL: fast shutdown; Redis: SIGKILL), keeping its data folder. */
  down(): Promise<void>;
  /** Start it again on the same port and folder; resolves when it answers. */
  up(): Promise<void>;
}

const isRoot = () => process.getuid?.() === 0;

function run(cmd: string, args: string[], asPostgres: boolean): void {
  const [c, a] = asPostgres ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  const r = spawnSync(c, a, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${r.stderr || r.stdout}`);
}

/**
 * Start PostgreSQL: initdb in a temp folder (as the postgres user when running as root — initdb
 * refuses root), trust auth for user "app" on 127.0.0.1, fsync off (a test database).
 * @returns the URL (postgres://app@127.0.0.1:PORT/postgres) and stop()
 */
export async function startPostgres(): Promise<RestartableService> {
  (ensureSystemPackages as (n: string[]) => string[])(['postgresql']);
  const bin = (postgresBinDir as () => string | undefined)() ?? '';
  const tool = (n: string) => (bin ? join(bin, n) : n);
  const dir = mkdtempSync(join(tmpdir(), 'medmask-pg-'));
  const asPg = isRoot() && userInfo().username === 'root';
  if (asPg) {
    const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    chownSync(dir, Number(id.stdout.trim()), Number(gid.stdout.trim()));
  }
  const data = join(dir, 'data');
  run(tool('initdb'), ['-D', data, '-U', 'app', '--auth=trust', '-E', 'UTF8', '--no-sync'], asPg);
  const port = await freePort();
  const start = () => run(tool('pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '60', '-o', `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`, 'start'], asPg);
  start();
  let stopped = false;
  const stopSync = () => {
    if (stopped) return;
    stopped = true;
    spawnSync(asPg ? 'runuser' : tool('pg_ctl'), asPg ? ['-u', 'postgres', '--', tool('pg_ctl'), '-D', data, '-m', 'immediate', '-w', 'stop'] : ['-D', data, '-m', 'immediate', '-w', 'stop']);
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stopSync);
  return {
    url: `postgres://app@127.0.0.1:${port}/postgres`,
    async stop() {
      stopSync();
      process.removeListener('exit', stopSync);
    },
    async down() {
      run(tool('pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop'], asPg);
    },
    async up() {
      start();
    },
  };
}

/**
 * Start redis-server on a free port; stopped by stop() or when this process exits.
 * @param o - persistence: `appendonly yes` with `appendfsync always` (default none)
 */
export async function startRedis(o: { persistence?: boolean } = {}): Promise<RestartableService> {
  (ensureSystemPackages as (n: string[]) => string[])(['redis-server']);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'medmask-redis-'));
  const persist = o.persistence ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  let child: ChildProcess;
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persist, '--dir', dir, '--daemonize', 'no'], { stdio: 'ignore' });
    // Wait until it answers.
    const t0 = Date.now();
    for (;;) {
      const r = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' });
      if (r.stdout?.trim() === 'PONG') break;
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
      if (Date.now() - t0 > 10_000) throw new Error('redis-server did not answer within 10 s');
      await new Promise((r2) => setTimeout(r2, 50));
    }
  };
  const kill = () => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', kill);
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      process.removeListener('exit', kill);
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
    async down() {
      child.kill('SIGKILL');
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
    },
    up: start,
  };
}
