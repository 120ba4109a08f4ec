/**
 * The test handlers (test-handlers.ts) as a plain JavaScript module on the built `dist/`, so that
 * `medmask worker` processes start from `bin/medmask.js` without tsx (about twice as fast to start,
 * and the code they run is the built one, as in a deployment). Needs `npm run build` first.
 * @module
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';

const ROOT = join(new URL('.', import.meta.url).pathname, '../..');

/**
 * Write the module into `dir` and return its path (for `medmask worker --handlers`).
 * @example
 * spawn(process.execPath, ['bin/medmask.js', 'worker', '--handlers', testHandlersJs(dir), …]);
 */
export function testHandlersJs(dir: string): string {
  const src = readFileSync(join(ROOT, 'test/helpers/test-handlers.ts'), 'utf8');
  const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
  const file = join(dir, 'test-handlers.mjs');
  writeFileSync(file, js.replaceAll("'../../src/", `'${pathToFileURL(join(ROOT, 'dist')).href}/`));
  return file;
}
