import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** SHA-256 over the named files of a written data set (names and bytes, in sorted order). */
export function hashTree(dir: string, files: string[]): string {
  const h = createHash('sha256');
  for (const f of [...files].sort()) h.update(f).update(readFileSync(join(dir, f)));
  return h.digest('hex');
}
