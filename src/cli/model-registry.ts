/**
 * `medmask model register DIR --server URL` and `medmask model list --server URL`: the server's
 * model registry (issue 16) from the command line. DIR is a model folder as `medmask atlas
 * finetune` and the demo zoo write it (model.json, the ONNX file it names, card.json optional);
 * the manifest is checked here first, so a bad field is named before anything is sent. The API
 * token comes from MEDMASK_TOKEN, as for `medmask upload`; registering needs the `model:write`
 * permission (the admin role).
 * @module
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import type { Command } from 'commander';
import { MedmaskError } from '../core/errors.js';
import { readManifest } from '../runtime/manifest.js';
import { ROLE_PERMISSIONS } from '../server/permissions.js';
import type { ModelSummary, ModelVersionView } from '../store/models.js';
import { serverClient } from './upload.js';

interface ServerOpts { server?: string; json?: boolean }

/** The roles that may register models, from the permission matrix (today: admin). */
function rolesThatRegister(): string[] {
  return Object.entries(ROLE_PERMISSIONS).filter(([, p]) => p.includes('model:write')).map(([r]) => r);
}

/**
 * What `model register` sends: the manifest (validated), the ONNX bytes it names, card.json when present.
 * @param path - a model folder, or its model.json
 * @throws MedmaskError NOT_FOUND (no manifest / ONNX file), MODEL_INVALID naming the bad manifest field
 */
export async function readModelFolder(path: string): Promise<{ manifestText: string; onnx: Buffer; onnxName: string; card?: string; name: string }> {
  if (!existsSync(path)) throw new MedmaskError('NOT_FOUND', `model folder ${path} does not exist`, { hint: 'give a folder holding model.json and its .onnx file' });
  const manifestPath = statSync(path).isDirectory() ? join(path, 'model.json') : path;
  if (extname(manifestPath).toLowerCase() !== '.json' || !existsSync(manifestPath)) {
    throw new MedmaskError('NOT_FOUND', `${path}: no model.json`, { hint: 'a registered model needs its manifest (docs/model-manifest.md); medmask atlas finetune and the demo zoo write one beside model.onnx' });
  }
  const manifest = await readManifest(manifestPath); // MODEL_INVALID names each bad field
  const onnxPath = join(dirname(manifestPath), manifest.model);
  if (!existsSync(onnxPath)) throw new MedmaskError('NOT_FOUND', `${manifestPath}: its "model" field names ${manifest.model}, and ${onnxPath} does not exist`, { hint: 'put the ONNX file beside model.json or fix the "model" field' });
  const cardPath = join(dirname(manifestPath), 'card.json');
  let card: string | undefined;
  if (existsSync(cardPath)) {
    card = await readFile(cardPath, 'utf8');
    try {
      JSON.parse(card);
    } catch (e) {
      throw new MedmaskError('MODEL_INVALID', `${cardPath} is not valid JSON: ${(e as Error).message}`, { hint: 'fix or remove card.json (it is optional)' });
    }
  }
  return { manifestText: await readFile(manifestPath, 'utf8'), onnx: await readFile(onnxPath), onnxName: basename(onnxPath), ...(card !== undefined ? { card } : {}), name: manifest.name };
}

const held = (m: Record<string, unknown> | null): string => {
  const d = (m?.heldout as { mean_dice?: number } | undefined)?.mean_dice;
  return typeof d === 'number' ? d.toFixed(4) : '—';
};

/**
 * Register `medmask model register` and `medmask model list` under `medmask model`.
 * @param program - the root command
 * @example
 * registerModelRegistry(program); // in src/cli/main.ts
 */
export function registerModelRegistry(program: Command): void {
  const model = program.commands.find((c) => c.name() === 'model') ?? program.command('model').description('inspect ONNX models; register them on a server');
  model
    .command('register')
    .description('register a model folder (model.json, its .onnx file, card.json) on a medmask server as the next version of its name')
    .argument('<dir>', 'model folder (or its model.json)')
    .option('--server <url>', 'the server, e.g. https://medmask.example.org (env MEDMASK_SERVER)')
    .option('--parent <ref>', 'parent version name@version ("none": no parent; default the current version of the same name)')
    .option('--metrics <file>', 'held-out metrics, JSON (default: card.json\'s "metrics")')
    .option('--json', 'print the server\'s answer as JSON')
    .addHelpText('after', `\nThe API token comes from MEDMASK_TOKEN; registering needs the permission "model:write" (role: ${rolesThatRegister().join(', ')}).\nExample: MEDMASK_TOKEN=… medmask model register models/demo/demo-unet3d --server http://127.0.0.1:8080`)
    .action(async (dir: string, o: ServerOpts & { parent?: string; metrics?: string }) => {
      const api = serverClient(o.server);
      const m = await readModelFolder(dir);
      const form = new FormData();
      form.append('manifest', m.manifestText);
      if (m.card !== undefined) form.append('card', m.card);
      const metrics = o.metrics ? await readFile(o.metrics, 'utf8') : m.card !== undefined ? JSON.stringify((JSON.parse(m.card) as { metrics?: unknown }).metrics ?? null) : undefined;
      if (metrics !== undefined && metrics !== 'null') form.append('metrics', metrics);
      if (o.parent) form.append('parent', o.parent);
      form.append('file', new Blob([m.onnx]), m.onnxName);
      let r: ModelVersionView & { created: boolean };
      try {
        r = await api.call('POST', '/api/models', undefined, { form });
      } catch (e) {
        if (e instanceof MedmaskError && e.code === 'FORBIDDEN') {
          throw new MedmaskError('FORBIDDEN', `registering a model needs the role ${rolesThatRegister().join(' or ')} (permission "model:write"); ${e.message.replace(/^server: /, 'the server says: ')}`, { hint: 'use an API token of an admin (POST /api/tokens as that user)' });
        }
        throw e;
      }
      if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      else process.stdout.write(`${r.created ? 'registered' : 'already registered'} ${r.ref} (${r.hash.slice(0, 12)}, ${(r.size / 1e6).toFixed(2)} MB${r.parent?.ref ? `, parent ${r.parent.ref}` : ''})\n`);
    });
  model
    .command('list')
    .description('list the models registered on a medmask server: current version, held-out mean Dice, counts of versions and rejected candidates')
    .option('--server <url>', 'the server (env MEDMASK_SERVER)')
    .option('--json', 'print the server\'s answer as JSON')
    .action(async (o: ServerOpts) => {
      const r = await serverClient(o.server).call<{ models: ModelSummary[] }>('GET', '/api/models');
      if (o.json) return void process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      if (!r.models.length) return void process.stdout.write('no models registered (medmask model register DIR)\n');
      const rows = r.models.map((x) => [x.name, x.current?.ref ?? '—', x.current?.manifest ? String((x.current.manifest as { task?: string }).task ?? '') : '', held(x.current?.metrics as Record<string, unknown> | null), String(x.versions), String(x.rejected), x.current?.parent?.ref ?? '—']);
      const head = ['name', 'current', 'task', 'held-out Dice', 'versions', 'rejected', 'parent'];
      const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
      for (const row of [head, ...rows]) process.stdout.write(row.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd() + '\n');
    });
}
