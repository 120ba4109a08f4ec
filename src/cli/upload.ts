/**
 * `medmask upload DATASET_DIR --server URL`: send a Decathlon / nnU-Net data set folder to a
 * medmask server in one request (a tar.gz streamed from disk, never held in memory), into a data
 * set found or created by name, with dataset.json's `medmask.cases` sources; the API token comes
 * from the environment (MEDMASK_TOKEN).
 * @module
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { relative } from 'node:path';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { Command } from 'commander';
import tar from 'tar-stream';
import { ERRORS, MedmaskError, type ErrorCode } from '../core/errors.js';
import { readSegmentationDataset } from '../io/dataset.js';
import { caseOrigins } from '../server/dataset-upload.js';
import { startProgress } from './output.js';

interface UploadOpts { server?: string; project?: string; dataset?: string; datasetId?: string; source?: string; target?: string; json?: boolean; quiet?: boolean }

/** A small client of the medmask API with a bearer token; errors become coded MedmaskErrors. */
export class ApiClient {
  constructor(readonly base: string, private readonly token: string) {}

  /** Call the API; JSON in and out. */
  async call<T>(method: string, path: string, body?: unknown, init: { headers?: Record<string, string>; stream?: Readable; form?: FormData } = {}): Promise<T> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.base), {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...init.headers },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(init.stream ? { body: Readable.toWeb(init.stream) as ReadableStream, duplex: 'half' } : {}),
        ...(init.form ? { body: init.form } : {}),
      } as RequestInit);
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new MedmaskError('ENVIRONMENT', `cannot reach the medmask server at ${this.base}: ${cause?.code ?? cause?.message ?? (e as Error).message}`, { cause: e, hint: 'check --server (or MEDMASK_SERVER) and that `medmask serve` runs there' });
    }
    const text = await res.text();
    let json: { error?: string; message?: string; hint?: string; details?: Record<string, unknown> } & Record<string, unknown>;
    try {
      json = text ? (JSON.parse(text) as typeof json) : {};
    } catch {
      json = { message: text.slice(0, 300) };
    }
    if (!res.ok) {
      const code = (json.error && json.error in ERRORS ? json.error : res.status === 401 ? 'UNAUTHENTICATED' : 'ENVIRONMENT') as ErrorCode;
      const hint = code === 'UNAUTHENTICATED' ? 'set MEDMASK_TOKEN to a valid API token (POST /api/tokens, or the web UI)' : json.hint;
      throw new MedmaskError(code, `server: ${json.message ?? `HTTP ${res.status}`}`, { ...(hint ? { hint } : {}), ...(json.details ? { details: json.details } : {}) });
    }
    return json as T;
  }
}

/**
 * The API client of `--server` (or MEDMASK_SERVER) with the token of MEDMASK_TOKEN — never a token
 * on the command line, where other users could see it.
 * @throws MedmaskError USAGE when the server or the token is missing, or the server is not an http(s) URL
 */
export function serverClient(serverOpt: string | undefined): ApiClient {
  const server = serverOpt ?? process.env.MEDMASK_SERVER;
  if (!server) throw new MedmaskError('USAGE', 'no server given', { hint: 'pass --server http://host:8080 or set MEDMASK_SERVER' });
  if (!/^https?:\/\/[^/]+/i.test(server)) throw new MedmaskError('USAGE', `--server ${JSON.stringify(server)} is not an http(s) URL`, { hint: 'e.g. --server http://127.0.0.1:8080' });
  const token = process.env.MEDMASK_TOKEN;
  if (!token) throw new MedmaskError('USAGE', 'MEDMASK_TOKEN is not set', { hint: 'export MEDMASK_TOKEN=<an API token> (POST /api/tokens); tokens are never taken on the command line, where other users could see them' });
  return new ApiClient(server.replace(/\/+$/, '') + '/', token);
}

/** Find a project / data set by name, creating it when absent; returns the data set id. */
async function ensureRemoteDataset(api: ApiClient, project: string, dataset: string): Promise<{ id: string; created: boolean }> {
  const projects = (await api.call<{ projects: { id: string; name: string }[] }>('GET', '/api/projects')).projects;
  const projectId = projects.find((p) => p.name === project)?.id ?? (await api.call<{ id: string }>('POST', '/api/projects', { name: project })).id;
  const sets = (await api.call<{ datasets: { id: string; name: string }[] }>('GET', `/api/projects/${projectId}/datasets`)).datasets;
  const found = sets.find((d) => d.name === dataset);
  if (found) return { id: found.id, created: false };
  return { id: (await api.call<{ id: string }>('POST', `/api/projects/${projectId}/datasets`, { name: dataset, description: 'uploaded with medmask upload' })).id, created: true };
}

/**
 * The data set folder as a tar.gz stream: dataset.json and the case files of imagesTr/, labelsTr/,
 * imagesTs/ (what the server keeps), read one file at a time.
 */
function archiveStream(root: string, files: { path: string; size: number }[], onBytes: (n: number) => void): Readable {
  const pack = tar.pack();
  void (async () => {
    try {
      for (const f of files) {
        const entry = pack.entry({ name: relative(root, f.path).split('\\').join('/'), size: f.size, mode: 0o644 });
        for await (const chunk of createReadStream(f.path)) {
          onBytes((chunk as Buffer).length);
          if (!entry.write(chunk)) await new Promise<void>((r) => entry.once('drain', () => r()));
        }
        await new Promise<void>((res, rej) => entry.end((e?: Error | null) => (e ? rej(e) : res())));
      }
      pack.finalize();
    } catch (e) {
      pack.destroy(e as Error);
    }
  })();
  return pack.pipe(createGzip({ level: 1 }));
}

/** Register `medmask upload`. */
export function registerUpload(program: Command): void {
  program
    .command('upload')
    .description('upload a Decathlon / nnU-Net data set folder (dataset.json, imagesTr/, labelsTr/) to a medmask server, with each case\'s source from dataset.json\'s medmask.cases')
    .argument('<dataset-dir>', 'folder holding dataset.json, imagesTr/ and labelsTr/')
    .option('--server <url>', 'the server, e.g. https://medmask.example.org (env MEDMASK_SERVER)')
    .option('--project <name>', 'project to upload into (found or created; default "uploads")')
    .option('--dataset <name>', 'data set to create or add to (default: dataset.json\'s name)')
    .option('--dataset-id <id>', 'an existing data set id (instead of --project / --dataset)')
    .option('--source <name>', 'source of the cases dataset.json names none for (default: "default" at ranking)')
    .option('--target <name>', 'name of the label maps\' structure (default "organs", as atlas jobs expect)')
    .option('--json', 'print the server\'s answer as JSON')
    .option('--quiet', 'no progress output')
    .addHelpText('after', '\nThe API token comes from MEDMASK_TOKEN (make one with POST /api/tokens as a user with data:write).\nExample: MEDMASK_TOKEN=… medmask upload data/abdomen --server http://127.0.0.1:8080 --project abdomen')
    .action(async (dir: string, o: UploadOpts) => {
      const api = serverClient(o.server);
      const server = api.base.replace(/\/$/, '');
      // Check the folder here first: a missing file is named before anything is sent.
      const ds = await readSegmentationDataset(dir);
      caseOrigins(ds);
      const paths = [`${ds.root}/dataset.json`, ...ds.cases.flatMap((c) => [...c.images, ...(c.label ? [c.label] : [])])];
      const files = await Promise.all(paths.map(async (p) => ({ path: p, size: (await stat(p)).size })));
      const total = files.reduce((s, f) => s + f.size, 0);
      const datasetId = o.datasetId ?? (await ensureRemoteDataset(api, o.project ?? 'uploads', o.dataset ?? ds.name)).id;
      const say = (s: string) => process.stderr.write(`medmask upload: ${s}\n`);
      if (!o.quiet) say(`${ds.cases.length} case(s), ${(total / 2 ** 20).toFixed(1)} MiB → data set ${datasetId} on ${server}`);
      const kib = Math.max(1, Math.ceil(total / 1024));
      const bar = startProgress('sending', kib, { quiet: !!o.quiet });
      let sent = 0, ticked = 0;
      const stream = archiveStream(ds.root, files, (n) => {
        sent += n;
        const k = Math.min(kib, Math.floor(sent / 1024));
        if (k > ticked) {
          bar.tick(k - ticked);
          ticked = k;
        }
      });
      const q = new URLSearchParams({ ...(o.source ? { source: o.source } : {}), ...(o.target ? { target: o.target } : {}) }).toString();
      let r: { cases: number; labels: number; sources: Record<string, number>; ignored: string[] };
      try {
        r = await api.call('POST', `/api/datasets/${datasetId}/archive${q ? `?${q}` : ''}`, undefined, { headers: { 'content-type': 'application/gzip' }, stream });
      } finally {
        bar.stop();
      }
      if (o.json) process.stdout.write(JSON.stringify({ datasetId, ...r }) + '\n');
      else process.stdout.write(`uploaded ${r.cases} case(s) with ${r.labels} label map(s) to data set ${datasetId}; sources: ${Object.entries(r.sources).map(([k, v]) => `${k} ${v}`).join(', ')}\n`);
    });
}
