// removeDeadEntries: entries of dead processes go, those of live ones (this process, pid 1) stay;
// entries without a pid follow the policy. And the two users keep their naming rules: temporary
// uploads / job scratch (`upload-<pid>-…`, `job-…-<pid>`, unnamed kept) and blob spool files
// (`<pid>-…`, unnamed removed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeDeadEntries } from '../../src/store/dead-entries.js';
import { removeDeadSpool } from '../../src/store/blob-store.js';
import { removeStaleTemp } from '../../src/server/service.js';

/** The pid of a process that has exited. */
const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid!;

function folder(names: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'medmask-dead-'));
  for (const n of names) {
    if (n.endsWith('/')) {
      mkdirSync(join(dir, n), { recursive: true });
      writeFileSync(join(dir, n, 'inside'), 'x');
    } else writeFileSync(join(dir, n), 'x');
  }
  return dir;
}

test('removeDeadEntries: dead pids removed (folders recursively), live and own kept, unnamed per policy', async () => {
  const dead = deadPid();
  const names = [`a-${dead}-x/`, `a-${process.pid}-y/`, 'a-1-z', 'notes'];
  const pidOf = (n: string) => Number(/^a-(\d+)-/.exec(n)?.[1]) || null;
  for (const [unnamed, left] of [['keep', ['a-1-z', `a-${process.pid}-y`, 'notes']], ['remove', ['a-1-z', `a-${process.pid}-y`]]] as const) {
    const dir = folder(names);
    try {
      assert.equal(await removeDeadEntries(dir, pidOf, { unnamed }), 4 - left.length);
      assert.deepEqual(readdirSync(dir).sort(), [...left].sort(), unnamed);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  assert.equal(await removeDeadEntries(join(tmpdir(), 'medmask-no-such-folder'), pidOf, { unnamed: 'remove' }), 0);
});

test('removeStaleTemp (uploads, job scratch) and removeDeadSpool (blob spool) keep their naming rules', async () => {
  const dead = deadPid();
  const tmp = folder([`upload-${dead}-abc/`, `job-0123abcd-${dead}/`, `upload-${process.pid}-def/`, `job-0123abcd-reduce-${process.pid}/`, 'keep-me']);
  const spool = folder([`${dead}-0011aabb`, `${process.pid}-2233ccdd`, 'stray']);
  try {
    assert.equal(await removeStaleTemp(tmp), 2);
    assert.deepEqual(readdirSync(tmp).sort(), [`job-0123abcd-reduce-${process.pid}`, 'keep-me', `upload-${process.pid}-def`].sort());
    assert.equal(await removeDeadSpool(spool), 2);
    assert.deepEqual(readdirSync(spool), [`${process.pid}-2233ccdd`]);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(spool, { recursive: true, force: true });
  }
});
