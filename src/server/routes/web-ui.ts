/**
 * The review UI's files at `/`: `index.html` and the hashed assets Vite built into `dist/web`
 * (bundled into the package, so the UI works offline, with no CDN). Public: the login page must
 * load before anyone is logged in; the API behind it checks every request.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { MedmaskError } from '../../core/errors.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
};

/**
 * Where the built UI is: `dist/web` beside the compiled server, or the repository's `dist/web`
 * when the server runs from source (tsx).
 * @returns the folder, or null when the UI has not been built
 */
export function findWebDist(): string | null {
  const here = fileURLToPath(new URL('.', import.meta.url));
  for (const c of [join(here, '..', '..', 'web'), join(here, '..', '..', '..', 'dist', 'web')]) {
    if (existsSync(join(c, 'index.html'))) return resolve(c);
  }
  return null;
}

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>medmask</title><body style="font:16px system-ui;margin:3em">
<h1>medmask</h1><p>The review UI has not been built. Run <code>npm run build</code> (or <code>npm ci</code>, which builds it) and restart <code>medmask serve</code>.</p>
<p>The API works without it: see <a href="/docs">/docs</a>.</p>`;

/**
 * Register `/` and `/assets/*`.
 * @param dir - the built UI (default {@link findWebDist})
 * @example
 * webUiRoutes(app);
 */
export function webUiRoutes(app: FastifyInstance, dir: string | null = findWebDist()): void {
  const indexHtml = dir ? readFileSync(join(dir, 'index.html')) : null;
  const hide = { hide: true } as Record<string, unknown>;
  app.get('/', { config: { permission: 'public' }, schema: hide }, async (_req, reply) => {
    void reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache');
    return reply.send(indexHtml ?? NOT_BUILT);
  });
  app.get<{ Params: { '*': string } }>('/assets/*', { config: { permission: 'public' }, schema: hide }, async (req, reply) => {
    const rel = req.params['*'];
    if (!dir || !rel || rel.includes('..') || rel.includes('\\') || rel.includes('\0')) throw new MedmaskError('NOT_FOUND', `no asset ${rel}`);
    const base = join(dir, 'assets');
    const file = resolve(base, rel);
    if (!file.startsWith(base + sep)) throw new MedmaskError('NOT_FOUND', `no asset ${rel}`);
    const st = await stat(file).catch(() => null);
    if (!st?.isFile()) throw new MedmaskError('NOT_FOUND', `no asset ${rel}`, { hint: 'the page may be older than the server: reload it' });
    // Vite names assets by content hash: they never change under the same name.
    void reply.type(TYPES[extname(file)] ?? 'application/octet-stream').header('cache-control', 'public, max-age=31536000, immutable');
    return reply.send(await readFile(file));
  });
}
