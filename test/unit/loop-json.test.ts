// bench/loop-json.ts: the one merge of the loop benchmarks' keys into a shared JSON file. The other
// writers' keys stay, the write is atomic, and a corrupt file is moved to a named backup (its
// bytes unchanged) with a warning naming it — never dropped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mergeJsonFile } from '../../bench/loop-json.js';

function folder(): string {
  return mkdtempSync(join(tmpdir(), 'medmask-loop-json-'));
}

test('the keys of both benchmarks stay; a function update adds one entry to a map already there', async () => {
  const dir = folder();
  try {
    const file = join(dir, 'out', 'loop.json'); // the folder is made
    // the 3D loop's run of seed 31, then the 2D bench's keys, then the 3D loop's run of seed 127
    await mergeJsonFile(file, (prev) => ({ rounds_dice: [0.7, 0.71], loop_runs: { ...(prev.loop_runs as object), '31': { d: 1 } } }));
    await mergeJsonFile(file, { mask_head_dice: { '25': 0.869 } });
    const { written } = await mergeJsonFile(file, (prev) => ({ rounds_dice: [0.8, 0.81], loop_runs: { ...(prev.loop_runs as object), '127': { d: 2 } } }));
    const onDisk = JSON.parse(readFileSync(file, 'utf8'));
    assert.deepEqual(onDisk, { rounds_dice: [0.8, 0.81], loop_runs: { '31': { d: 1 }, '127': { d: 2 } }, mask_head_dice: { '25': 0.869 } });
    assert.deepEqual(written, onDisk);
    assert.deepEqual(readdirSync(join(dir, 'out')), ['loop.json'], 'no temporary file left');
    // the harness's record of an earlier run is replaced, not merged; the benchmarks' keys stay
    await mergeJsonFile(file, { results: [1], summary: { a: 1 } });
    await mergeJsonFile(file, { results: [2] }, { drop: ['results', 'summary'] });
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { ...onDisk, results: [2] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a corrupt file (truncated JSON, or JSON that is not an object) is moved to a named backup with its bytes, with a warning naming it', async () => {
  const dir = folder();
  try {
    const file = join(dir, 'loop.json');
    const now = new Date('2026-12-07T05:30:01.250Z');
    for (const [i, bad] of ['{"loop_runs": {"31": {"d": 1}}, "rounds_di', '[1, 2]', 'null'].entries()) {
      writeFileSync(file, bad);
      const lines: string[] = [];
      const r = await mergeJsonFile(file, { mask_head_dice: { '25': 0.869 } }, { warn: (l) => lines.push(l), now });
      const expected = join(dir, `loop.json.corrupt-2026-12-07T05-30-01-250Z${i ? `-${i + 1}` : ''}`); // a taken name is not overwritten
      assert.equal(r.backup, expected);
      assert.equal(readFileSync(expected, 'utf8'), bad, 'the backup holds the old bytes unchanged');
      assert.equal(lines.length, 1);
      assert.ok(lines[0]!.includes(expected) && lines[0]!.includes(file), lines[0]);
      assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { mask_head_dice: { '25': 0.869 } }, "the run's own figures are written");
    }
    assert.equal(readdirSync(dir).length, 4);
    // a readable file is not backed up
    const lines: string[] = [];
    const r = await mergeJsonFile(file, { x: 1 }, { warn: (l) => lines.push(l) });
    assert.equal(r.backup, undefined);
    assert.deepEqual(lines, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failing merge leaves the old file as it was and no temporary file beside it', async () => {
  const dir = folder();
  try {
    const file = join(dir, 'loop.json');
    const before = JSON.stringify({ loop_runs: { '31': { d: 1 } } }, null, 1) + '\n';
    writeFileSync(file, before);
    // a figure JSON cannot write (a BigInt) fails the merge before anything is written
    await assert.rejects(mergeJsonFile(file, { n: 1n }), /BigInt/);
    assert.equal(readFileSync(file, 'utf8'), before);
    assert.deepEqual(readdirSync(dir), ['loop.json']);
    // the rename fails after the temporary file was written (the target became a non-empty folder
    // meanwhile): the temporary file is removed, nothing half-written is left
    const other = join(dir, 'other.json');
    writeFileSync(other, '{}');
    await assert.rejects(
      mergeJsonFile(other, () => {
        rmSync(other);
        mkdirSync(join(other, 'inside'), { recursive: true });
        return { a: 1 };
      }),
      /EISDIR|ENOTEMPTY|EEXIST/,
    );
    assert.deepEqual(readdirSync(dir).sort(), ['loop.json', 'other.json']);
    assert.deepEqual(readdirSync(other), ['inside']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
