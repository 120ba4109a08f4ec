/**
 * Register model folders (model.onnx + model.json [+ card.json]) on a test server through
 * `POST /api/models` as the admin, as a real deployment would: jobs then name them `name@version`.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './cli.js';
import { multipartBody, type TestServer } from './server.js';

/**
 * Register each folder; returns the references (`name@version`) in order.
 * @example
 * const [unet] = await registerModelDirs(s, ['models/demo/demo-unet3d']); // 'demo-unet3d@1'
 */
export async function registerModelDirs(s: Pick<TestServer, 'as'>, dirs: string[], fields: Record<string, string> = {}): Promise<string[]> {
  const refs: string[] = [];
  for (const d of dirs) {
    const dir = join(ROOT, d);
    const card = join(dir, 'card.json');
    const r = await s.as('admin', {
      method: 'POST',
      url: '/api/models',
      ...multipartBody([{ name: 'model.onnx', data: readFileSync(join(dir, 'model.onnx')) }], {
        manifest: readFileSync(join(dir, 'model.json'), 'utf8'),
        ...(existsSync(card) ? { card: readFileSync(card, 'utf8') } : {}),
        ...fields,
      }),
    });
    assert.ok(r.statusCode === 201 || r.statusCode === 200, r.body);
    refs.push(r.json().ref as string);
  }
  return refs;
}
