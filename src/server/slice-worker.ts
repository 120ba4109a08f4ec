/**
 * Worker thread of {@link VolumeSlices.prepare}: decodes one stored `.nii.gz` (once) and writes its
 * slice-addressable files — axial planes as stored, coronal `[j][k][i]` and sagittal `[i][k][j]`
 * planes contiguous — plus small facts the viewer's first request needs (label values present,
 * display range and window), so neither the decode nor the transposes run on the server's event
 * loop. The axial file and its description are written first and announced (`stage: 'z'`), so a
 * waiting first slice is answered before the transposes are done. Every file is written to a
 * temporary name and renamed.
 * @module
 */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort } from 'node:worker_threads';
import { allocVoxels, voxelTypeOf, type VoxelArray } from '../core/volume.js';
import { decodeNifti } from '../io/nifti.js';
import { displayStats } from './viewer-cache.js';
import type { SliceJob, SliceReply } from './volume-slices.js';

function put(dir: string, name: string, bytes: Uint8Array | string): void {
  const f = join(dir, name);
  const tmp = `${f}.w${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, f);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

const bytesOf = (a: VoxelArray) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

async function run(m: SliceJob): Promise<void> {
  const post = (r: Omit<SliceReply, 'id'>) => parentPort!.postMessage({ id: m.id, ...r } satisfies SliceReply);
  let shape: [number, number, number];
  let d: VoxelArray;
  if (m.gz) {
    const vol = await decodeNifti(m.gz, `blob ${m.key.slice(0, 12)}`);
    if (vol.components !== 1) return post({ stage: 'done', skipped: 'several components' });
    shape = vol.shape;
    d = vol.data;
  } else {
    shape = m.raw!.shape;
    d = m.raw!.data;
  }
  const [nx, ny, nz] = shape;
  const type = voxelTypeOf(d);
  put(m.dir, `${m.key}.z`, bytesOf(d));
  if (type === 'uint8') {
    const seen = new Uint8Array(256);
    for (let i = 0; i < d.length; i++) seen[d[i]!] = 1;
    const vals: number[] = [];
    for (let v = 1; v < 256; v++) if (seen[v]) vals.push(v);
    put(m.dir, `${m.key}.values.json`, JSON.stringify(vals));
  }
  put(m.dir, `${m.key}.stats.json`, JSON.stringify(displayStats(d, nz)));
  put(m.dir, `${m.key}.json`, JSON.stringify({ shape, type, axes: ['z'] }));
  post({ stage: 'z', decoded: !!m.gz });
  const out = allocVoxels(type, d.length);
  for (let j = 0; j < ny; j++) for (let k = 0; k < nz; k++) out.set(d.subarray((k * ny + j) * nx, (k * ny + j + 1) * nx) as never, (j * nz + k) * nx);
  put(m.dir, `${m.key}.y`, bytesOf(out));
  for (let i = 0, o = 0; i < nx; i++) {
    for (let k = 0; k < nz; k++) for (let j = 0, src = k * ny * nx + i; j < ny; j++, src += nx) out[o++] = d[src]!;
  }
  put(m.dir, `${m.key}.x`, bytesOf(out));
  put(m.dir, `${m.key}.json`, JSON.stringify({ shape, type, axes: ['z', 'y', 'x'] }));
  post({ stage: 'done' });
}

parentPort!.on('message', (m: SliceJob) => {
  run(m).catch((e: unknown) => parentPort!.postMessage({ id: m.id, stage: 'done', error: e instanceof Error ? e.message : String(e) } satisfies SliceReply));
});
