import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createVolume } from '../../src/core/volume.js';
import { MedmaskError } from '../../src/core/errors.js';
import { readVolume, writeVolume, createDefaultRegistry } from '../../src/io/index.js';

const FIX = new URL('../fixtures/images/', import.meta.url).pathname;
const expected = JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8')) as Record<
  string,
  { width: number; height: number; components: number; dtype: string; sum: number; sha256: string; samples: Record<string, number | number[]> }
>;

for (const [name, exp] of Object.entries(expected)) {
  test(`reads ${name} (written by Pillow) with the exact pixel values`, async () => {
    const v = await readVolume(join(FIX, name));
    assert.deepEqual(v.shape, [exp.width, exp.height, 1]);
    assert.equal(v.components, exp.components);
    assert.equal(v.data.constructor.name, exp.dtype === 'uint16' ? 'Uint16Array' : 'Uint8Array');
    let sum = 0;
    for (const x of v.data) sum += x;
    assert.equal(sum, exp.sum);
    for (const [xy, val] of Object.entries(exp.samples)) {
      const [x, y] = xy.split(',').map(Number) as [number, number];
      const at = (c: number) => v.data[c + v.components * (x + exp.width * y)];
      assert.deepEqual(Array.isArray(val) ? val.map((_, c) => at(c)) : at(0), val, `pixel ${xy}`);
    }
    // Same bytes as numpy's row-major array (little-endian on this machine, as numpy's tobytes).
    const bytes = Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), exp.sha256);
  });
}

test('PNG and TIFF write → read is lossless for 8/16-bit grey and RGB', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-img-'));
  try {
    const cases = [
      createVolume([7, 5, 1], 'uint16', { data: Uint16Array.from({ length: 35 }, (_, i) => (i * 1931) % 65536) }),
      createVolume([7, 5, 1], 'uint8', { data: Uint8Array.from({ length: 35 }, (_, i) => (i * 37) % 256) }),
      createVolume([4, 3, 1], 'uint8', { components: 3, data: Uint8Array.from({ length: 36 }, (_, i) => (i * 71) % 256) }),
    ];
    for (const [k, v] of cases.entries()) {
      for (const ext of ['png', 'tif']) {
        const p = join(dir, `v${k}.${ext}`);
        await writeVolume(v, p);
        const back = await readVolume(p);
        assert.deepEqual(back.shape, v.shape);
        assert.equal(back.components, v.components);
        assert.deepEqual(Array.from(back.data), Array.from(v.data), `${ext} case ${k}`);
        assert.equal(back.data.BYTES_PER_ELEMENT, v.data.BYTES_PER_ELEMENT);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad images get clear errors naming the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-img-'));
  try {
    const empty = join(dir, 'empty.png');
    writeFileSync(empty, '');
    await assert.rejects(readVolume(empty), (e: MedmaskError) => e.code === 'CORRUPT_FILE' && e.message.includes('empty.png') && /empty/.test(e.message));
    const truncated = join(dir, 'cut.png');
    writeFileSync(truncated, readFileSync(join(FIX, 'grey16.png')).subarray(0, 200));
    await assert.rejects(readVolume(truncated), (e: MedmaskError) => e.code === 'CORRUPT_FILE' && e.message.includes('cut.png'));
    const text = join(dir, 'notes.txt');
    writeFileSync(text, 'hello');
    await assert.rejects(readVolume(text), (e: MedmaskError) => e.code === 'UNSUPPORTED_FORMAT' && e.message.includes('tried:') && e.message.includes('image:'));
    // Writing a float heat map to PNG without --rescale is refused, with the range in the message.
    const heat = createVolume([2, 2, 1], 'float32', { data: Float32Array.from([0, 0.5, 0.25, 1.5]) });
    await assert.rejects(writeVolume(heat, join(dir, 'h.png')), /float32 in \[0, 1.5\]/);
    const vol = createVolume([2, 2, 3], 'uint8');
    await assert.rejects(writeVolume(vol, join(dir, 'v.png')), /3 slices/);
    assert.throws(() => createDefaultRegistry().writerFor(join(dir, 'x.xyz')), /no writer/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
