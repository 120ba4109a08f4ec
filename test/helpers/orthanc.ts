/**
 * A real Orthanc (Debian `orthanc` + `orthanc-dicomweb`) for the PACS tests: started on a free
 * loopback HTTP port with a generated JSON configuration (DICOMweb plugin on at /dicom-web/, its
 * own storage folder, DICOM network port off, no remote access, optional HTTP basic user), seeded
 * through its REST API (`POST /instances`), stopped (and restartable on the same port and storage,
 * for outage tests). Missing packages are installed by scripts/system-deps.mjs (as root) or named
 * in the error.
 *
 * A Lua `ReceivedInstanceFilter` refuses incoming SEG instances (raises an error, so Orthanc does
 * not store them) while the file named by `refuseSegFlag` exists, so a test can make STOW-RS fail
 * and then succeed. (Returning false instead marks the instance "FilteredOut", which the DICOMweb
 * plugin 1.7 reports as stored; the raised error gives a STOW answer that does not list the
 * instance as stored — what medmask checks.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, closeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// @ts-expect-error plain ESM script without types
import { ensureSystemPackages, orthancDicomwebPlugin } from '../../scripts/system-deps.mjs';
import { freePort } from './services.js';

/** A running Orthanc. */
export interface OrthancService {
  /** REST root, e.g. http://127.0.0.1:PORT */
  url: string;
  /** DICOMweb root, e.g. http://127.0.0.1:PORT/dicom-web */
  dicomweb: string;
  /** Basic-auth user, when started with one. */
  auth?: { username: string; password: string };
  /** Create this file to make Orthanc refuse SEG instances; remove it to accept them again. */
  refuseSegFlag: string;
  /** GET a REST path as JSON. */
  get<T = unknown>(path: string): Promise<T>;
  /** POST JSON to a REST path, answer as JSON. */
  post<T = unknown>(path: string, body: unknown): Promise<T>;
  /** GET a REST path as bytes. */
  bytes(path: string): Promise<Uint8Array>;
  /** Upload DICOM files through POST /instances. @returns the Orthanc ids of the instances */
  seed(files: readonly string[]): Promise<string[]>;
  /** Stop the process, keep the storage (then `start()` again). */
  pause(): Promise<void>;
  /** Start again after pause(), same port and storage (nothing when it runs). */
  start(): Promise<void>;
  /** Stop and remove everything. */
  stop(): Promise<void>;
}

/** Options for {@link startOrthanc}. */
export interface StartOrthancOptions {
  /** Require HTTP basic auth with this user (default: no auth). */
  auth?: { username: string; password: string };
  /** Let this process exit while Orthanc runs (it is killed on exit); for benchmark children. */
  unref?: boolean;
  /** Keep the storage in this folder (kept by stop(); for benchmarks); default: a temp folder, removed. */
  storageDir?: string;
}

/**
 * Start Orthanc for a test.
 * @example
 * const orthanc = await startOrthanc();
 * await orthanc.seed(files);
 * ...
 * await orthanc.stop();
 */
export async function startOrthanc(o: StartOrthancOptions = {}): Promise<OrthancService> {
  (ensureSystemPackages as (n: string[]) => string[])(['orthanc', 'orthanc-dicomweb']);
  const plugin = (orthancDicomwebPlugin as () => string | undefined)();
  if (!plugin) throw new Error('the Orthanc DICOMweb plugin (libOrthancDicomWeb.so) is missing: apt-get install -y orthanc-dicomweb');
  const dir = mkdtempSync(join(tmpdir(), 'medmask-orthanc-'));
  const storage = o.storageDir ?? join(dir, 'storage');
  mkdirSync(storage, { recursive: true });
  const port = await freePort();
  const refuseSegFlag = join(dir, 'refuse-seg');
  const lua = join(dir, 'filter.lua');
  writeFileSync(
    lua,
    `function ReceivedInstanceFilter(dicom, origin, info)
  local f = io.open(${JSON.stringify(refuseSegFlag)}, "r")
  if f ~= nil then
    io.close(f)
    if dicom.Modality == "SEG" then error("medmask test archive refuses SEG instances") end
  end
  return true
end
`,
  );
  const config = {
    Name: 'medmask-test',
    StorageDirectory: storage,
    IndexDirectory: storage,
    HttpPort: port,
    RemoteAccessAllowed: false,
    DicomServerEnabled: false,
    DicomPort: await freePort(),
    AuthenticationEnabled: !!o.auth,
    RegisteredUsers: o.auth ? { [o.auth.username]: o.auth.password } : {},
    Plugins: [plugin],
    LuaScripts: [lua],
    StorageCompression: false,
    ConcurrentJobs: 1,
    HttpThreadsCount: 8,
    OverwriteInstances: true,
    HttpCompressionEnabled: false,
    DicomWeb: { Enable: true, Root: '/dicom-web/', EnableWado: false, Ssl: false, StudiesMetadata: 'MainDicomTags', SeriesMetadata: 'Full' },
  };
  const cfgPath = join(dir, 'orthanc.json');
  writeFileSync(cfgPath, JSON.stringify(config, null, 2));
  const url = `http://127.0.0.1:${port}`;
  const authHeader: Record<string, string> = o.auth ? { authorization: `Basic ${Buffer.from(`${o.auth.username}:${o.auth.password}`).toString('base64')}` } : {};
  let child: ChildProcess | undefined;
  const logPath = join(dir, 'orthanc.log');

  const kill = () => child?.kill('SIGKILL');
  process.once('exit', kill);

  async function start(): Promise<void> {
    if (child && child.exitCode === null && child.signalCode === null) return; // running already
    const fd = openSync(logPath, 'a');
    child = spawn('Orthanc', [cfgPath], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    if (o.unref) child.unref();
    const c = child;
    const t0 = Date.now();
    for (;;) {
      if (c.exitCode !== null) throw new Error(`Orthanc exited with ${c.exitCode}:\n${readFileSync(logPath, 'utf8').split('\n').slice(-20).join('\n')}`);
      try {
        const r = await fetch(`${url}/system`, { headers: authHeader });
        if (r.ok) break;
      } catch {
        // not listening yet
      }
      if (Date.now() - t0 > 30_000) throw new Error(`Orthanc did not answer on ${url} within 30 s; log:\n${readFileSync(logPath, 'utf8').split('\n').slice(-20).join('\n')}`);
      await new Promise((r2) => setTimeout(r2, 100));
    }
  }

  async function pause(): Promise<void> {
    const c = child;
    if (!c || c.exitCode !== null) return;
    c.kill('SIGTERM');
    await new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)));
    // Wait until the port is closed.
    for (let i = 0; i < 100; i++) {
      try {
        await fetch(`${url}/system`);
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function get<T>(path: string): Promise<T> {
    const r = await fetch(`${url}${path}`, { headers: authHeader });
    if (!r.ok) throw new Error(`Orthanc GET ${path}: ${r.status} ${await r.text()}`);
    return (await r.json()) as T;
  }

  async function post<T>(path: string, body: unknown): Promise<T> {
    const r = await fetch(`${url}${path}`, { method: 'POST', headers: authHeader, body: JSON.stringify(body) });
    if (!r.ok) throw new Error(`Orthanc POST ${path}: ${r.status} ${await r.text()}`);
    return (await r.json()) as T;
  }

  await start();
  return {
    post,
    async bytes(path) {
      const r = await fetch(`${url}${path}`, { headers: authHeader });
      if (!r.ok) throw new Error(`Orthanc GET ${path}: ${r.status}`);
      return new Uint8Array(await r.arrayBuffer());
    },
    url,
    dicomweb: `${url}/dicom-web`,
    ...(o.auth ? { auth: o.auth } : {}),
    refuseSegFlag,
    get,
    async seed(files) {
      const ids: string[] = [];
      for (const f of files) {
        const r = await fetch(`${url}/instances`, { method: 'POST', headers: { ...authHeader, 'content-type': 'application/dicom' }, body: await readFile(f) });
        if (!r.ok) throw new Error(`Orthanc POST /instances ${f}: ${r.status} ${await r.text()}`);
        ids.push(((await r.json()) as { ID: string }).ID);
      }
      return ids;
    },
    pause,
    start,
    async stop() {
      await pause();
      process.removeListener('exit', kill);
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The DICOM files of a fixture folder, recursively (README and JSON files left out), sorted. */
export function fixtureFiles(dir: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) out.push(...fixtureFiles(p));
    else if (!f.endsWith('.txt') && !f.endsWith('.json')) out.push(p);
  }
  return out.sort();
}
