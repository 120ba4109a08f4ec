/**
 * Reading a CT-sized `.nii.gz` (512×512×200 int16, ~100 MB raw): medmask's NIfTI reader (native
 * zlib) against nifti-reader-js's plain decode (its fflate inflate + readHeader + readImage), the
 * way a viewer or script that uses that library alone reads a file.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as nifti from 'nifti-reader-js';
import { createVolume } from '../src/core/volume.js';
import { mulberry32 } from '../src/core/random.js';
import { encodeNifti, niftiReader } from '../src/io/nifti.js';
import { atomicWrite } from '../src/io/atomic.js';
import { defineBenchmark } from './run.js';

interface State {
  path: string;
  shape: [number, number, number];
  rawMiB: number;
  gzMiB: number;
}

/**
 * CT-like phantom in HU: air outside an elliptic body (soft tissue ≈ 40 HU), two lungs (≈ −850),
 * a spine and a rib ring (bone 300–1200), table-free; Gaussian-ish noise σ ≈ 12 HU everywhere, as
 * in a real scan — noise is what keeps real CT from compressing to nothing.
 */
function phantomCt(nx: number, ny: number, nz: number): Int16Array {
  const out = new Int16Array(nx * ny * nz);
  const rnd = mulberry32(20250601);
  // Noise table: sums of three uniforms ≈ Gaussian; reused with a moving offset (cheap, non-periodic enough).
  const noise = new Int16Array(1 << 20);
  for (let i = 0; i < noise.length; i++) noise[i] = Math.round((rnd() + rnd() + rnd() - 1.5) * 24);
  const cx = nx / 2, cy = ny / 2;
  let n = 0;
  for (let k = 0; k < nz; k++) {
    const z = k / nz;
    const ax = 0.42 * nx * (1 - 0.1 * Math.cos(z * Math.PI * 2)), ay = 0.3 * ny;
    const lung = z > 0.35 ? 0.12 * nx * Math.sin(Math.min(1, (z - 0.35) / 0.4) * Math.PI * 0.5) : 0;
    const off = Math.floor(rnd() * noise.length);
    for (let j = 0; j < ny; j++) {
      const dy = (j - cy) / ay;
      for (let i = 0; i < nx; i++, n++) {
        const dx = (i - cx) / ax;
        const r2 = dx * dx + dy * dy;
        let hu: number;
        if (r2 > 1) hu = -1000;
        else if (r2 > 0.9) hu = -80; // subcutaneous fat
        else if (r2 > 0.8 && r2 < 0.84) hu = 700; // rib ring
        else {
          const sx = i - cx, sy = j - (cy + 0.2 * ay);
          if (sx * sx + sy * sy < 0.0025 * nx * nx) hu = 1100; // vertebra
          else {
            const lx = Math.abs(i - cx) - 0.2 * nx, ly = j - cy + 0.05 * ny;
            hu = lung > 0 && lx * lx + ly * ly < lung * lung ? -850 : 40 + 20 * Math.sin(i / 17) * Math.cos(j / 23);
          }
        }
        out[n] = hu + noise[(off + n) & (noise.length - 1)]!;
      }
    }
  }
  return out;
}

export default defineBenchmark<State>({
  description: 'read a CT-like int16 .nii.gz: medmask niftiReader vs nifti-reader-js decode (fflate)',
  repetitions: 5,
  async setup(dir, quick) {
    const shape: [number, number, number] = quick ? [512, 512, 48] : [512, 512, 200];
    const path = join(dir, `ct_${shape.join('x')}.nii.gz`);
    if (!existsSync(path)) {
      const vol = createVolume(shape, 'int16', { data: phantomCt(...shape), spacing: [0.78, 0.78, 1.5], origin: [-200, -200, -150] });
      await atomicWrite(path, gzipSync(encodeNifti(vol), { level: 6 }));
    }
    const rawMiB = (shape[0] * shape[1] * shape[2] * 2) / 2 ** 20;
    return { path, shape, rawMiB: +rawMiB.toFixed(1), gzMiB: +(statSync(path).size / 2 ** 20).toFixed(1) };
  },
  cases: [
    {
      name: 'nifti-reader-js',
      baseline: true,
      async run({ state }) {
        const buf = await readFile(state.path);
        let ab: ArrayBufferLike = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
        if (nifti.isCompressed(ab as ArrayBuffer)) ab = nifti.decompress(ab as ArrayBuffer);
        const h = nifti.readHeader(ab as ArrayBuffer);
        const img = new Int16Array(nifti.readImage(h, ab as ArrayBuffer));
        return img[img.length >> 1];
      },
    },
    {
      name: 'medmask niftiReader',
      async run({ state }) {
        const v = await niftiReader.read(state.path);
        return v.data[v.data.length >> 1];
      },
    },
  ],
});

