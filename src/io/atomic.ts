import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Write a file atomically: bytes go to a temporary file beside the target, then a rename replaces
 * the target, so a crash never leaves a half-written file under the final name.
 * @param path - target path (parent folders are created)
 * @param bytes - file content
 * @example
 * await atomicWrite('out/mask.png', pngBytes);
 */
export async function atomicWrite(path: string, bytes: Uint8Array | string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
