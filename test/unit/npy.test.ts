/**
 * .npy writer: byte layout from the format description, and numpy reading it back when Debian's
 * python3-numpy is installed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { decodeNpy, encodeNpy } from '../../src/io/npy.js';

test('header: magic, version 1.0, dict, data aligned to 64 bytes, little-endian values', () => {
  const a = Float32Array.of(1, -2.5, 3, 4, 5, 6);
  const b = encodeNpy(a, [2, 3]);
  assert.deepEqual([...b.subarray(0, 8)], [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  const hl = b[8]! | (b[9]! << 8);
  assert.equal((10 + hl) % 64, 0);
  const header = Buffer.from(b.subarray(10, 10 + hl)).toString('latin1');
  assert.match(header, /^\{'descr': '<f4', 'fortran_order': False, 'shape': \(2, 3\), \} *\n$/);
  const dv = new DataView(b.buffer, b.byteOffset + 10 + hl);
  assert.equal(dv.getFloat32(4, true), -2.5);
  assert.equal(b.length, 10 + hl + 24);
  assert.match(Buffer.from(encodeNpy(Uint8Array.of(1, 2, 3), [3])).toString('latin1'), /'descr': '\|u1'.*'shape': \(3,\)/);
  const back = decodeNpy(b);
  assert.deepEqual(back.shape, [2, 3]);
  assert.deepEqual([...back.data], [...a]);
  assert.throws(() => encodeNpy(a, [4, 2]), /holds 8 values/);
  assert.throws(() => decodeNpy(Uint8Array.of(1, 2, 3)), /not a \.npy file/);
});

test('numpy reads what medmask writes (skipped without python3-numpy)', (t) => {
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  if (probe.status !== 0) return t.skip('/usr/bin/python3 with numpy not available');
  const dir = mkdtempSync(join(tmpdir(), 'medmask-npy-'));
  try {
    writeFileSync(join(dir, 'a.npy'), encodeNpy(Float32Array.from({ length: 12 }, (_, i) => i / 4 - 1), [3, 4]));
    writeFileSync(join(dir, 'b.npy'), encodeNpy(Float64Array.of(Math.PI), [1]));
    const r = spawnSync('/usr/bin/python3', ['-c', `import numpy as np, json, sys
a = np.load(sys.argv[1]); b = np.load(sys.argv[2])
print(json.dumps({"shape": a.shape, "dtype": str(a.dtype), "a23": float(a[2, 3]), "b": float(b[0]), "bdtype": str(b.dtype)}))`, join(dir, 'a.npy'), join(dir, 'b.npy')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { shape: number[]; dtype: string; a23: number; b: number; bdtype: string };
    assert.deepEqual(j, { shape: [3, 4], dtype: 'float32', a23: 11 / 4 - 1, b: Math.PI, bdtype: 'float64' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
