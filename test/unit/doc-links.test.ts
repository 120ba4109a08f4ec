/**
 * Every relative link in the repository's Markdown points to a file or folder inside the
 * repository that exists (issue 14 §5: no link outside it, no dead link).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/cli.js';

function markdown(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir)) {
    if (['node_modules', 'dist', 'test-out'].includes(n) || n.startsWith('.')) continue;
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...markdown(p));
    else if (n.endsWith('.md')) out.push(p);
  }
  return out;
}

test('relative Markdown links stay inside the repository and resolve', () => {
  const root = ROOT.replace(/\/$/, '');
  const bad: string[] = [];
  const files = markdown(root);
  assert.ok(files.length > 20, `${files.length} Markdown files found`);
  for (const f of files) {
    const text = readFileSync(f, 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!.split('#')[0]!;
      if (!target || /^[a-z][a-z0-9+.-]*:/i.test(m[1]!)) continue; // anchors, URLs
      const abs = resolve(dirname(f), decodeURI(target));
      const rel = relative(root, abs);
      if (rel.startsWith('..')) bad.push(`${relative(root, f)}: ${m[1]} points outside the repository`);
      else if (!existsSync(abs)) bad.push(`${relative(root, f)}: ${m[1]} does not exist`);
    }
  }
  assert.deepEqual(bad, []);
});
