/**
 * .npy writer and reader: byte layout from the format description, and files written by numpy's
 * np.save (committed fixtures, so the test needs no Python).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { isMedmaskError } from '../../src/core/errors.js';
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

test('numpy agrees: medmask writes the bytes np.save writes and reads its files (fixtures by tools/fixtures/make_npy_fixtures.py)', () => {
  const fx = (name: string) => new Uint8Array(readFileSync(new URL(`../fixtures/npy/${name}`, import.meta.url)));
  const f32 = Float32Array.from({ length: 12 }, (_, i) => i / 4 - 1);
  const cases: [string, Float32Array | Float64Array | Uint8Array, number[]][] = [
    ['f32.npy', f32, [3, 4]],
    ['f64.npy', Float64Array.of(Math.PI), [1]],
    ['u8.npy', Uint8Array.from({ length: 12 }, (_, i) => i), [2, 3, 2]],
  ];
  for (const [name, data, shape] of cases) {
    const file = fx(name);
    assert.deepEqual(encodeNpy(data, shape), file, `${name}: byte-identical to np.save`);
    const back = decodeNpy(file, name);
    assert.deepEqual(back.shape, shape);
    assert.equal(back.data.constructor, data.constructor);
    assert.deepEqual([...back.data], [...data]);
  }
  assert.throws(() => decodeNpy(fx('f32be.npy'), 'f32be.npy'), (e: unknown) => isMedmaskError(e) && e.code === 'CORRUPT_FILE' && /f32be\.npy: data type >f4 is not supported/.test(e.message));
});
