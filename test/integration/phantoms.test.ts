import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeAbdomenDataset, writeChestDataset } from '../../src/pipeline/phantoms.js';
import { readVolume } from '../../src/io/index.js';
import { readLabelsCsv, readSegmentationDataset } from '../../src/io/dataset.js';
import { PHANTOM_SOURCES, organLabel, type SourceName } from '../../src/core/phantom/abdomen.js';
import { cli } from '../helpers/cli.js';
import { hashTree } from '../helpers/hash-tree.js';

test('2D data set: identical bytes for the same seed; masks and lungs read back as written; splits and OOD present', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'medmask-ph2-'));
  try {
    const a = await writeChestDataset(join(tmp, 'a'), { n: 14, seed: 5, size: 64 });
    const b = await writeChestDataset(join(tmp, 'b'), { n: 14, seed: 5, size: 64 });
    assert.equal(hashTree(a.dir, a.files), hashTree(b.dir, b.files));
    const c = await writeChestDataset(join(tmp, 'c'), { n: 14, seed: 6, size: 64 });
    assert.notEqual(hashTree(a.dir, a.files), hashTree(c.dir, c.files));

    const rows = await readLabelsCsv(join(a.dir, 'labels.csv'), { classes: ['healthy', 'nodule', 'consolidation', 'cavity'] });
    assert.equal(rows.length, 14);
    const truth = JSON.parse(readFileSync(join(a.dir, 'truth.json'), 'utf8')) as { images: { image: string; label: string; lesionPixels: number }[] };
    const csv = readFileSync(join(a.dir, 'labels.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
    assert.ok(new Set(csv.map((r) => r[5])).has('train'));
    for (const [k, r] of csv.entries()) {
      const [image, label, abnormal, mask, lungs] = r as [string, string, string, string, string];
      assert.equal(abnormal, label === 'healthy' ? '0' : '1');
      const m = await readVolume(join(a.dir, mask)), l = await readVolume(join(a.dir, lungs)), img = await readVolume(join(a.dir, image));
      assert.deepEqual(m.shape, [64, 64, 1]);
      assert.deepEqual(img.shape, [64, 64, 1]);
      let px = 0;
      for (let i = 0; i < m.data.length; i++) {
        assert.ok(m.data[i] === 0 || m.data[i] === 255);
        if (m.data[i]) {
          px++;
          assert.equal(l.data[i], 255, `${mask}: lesion pixel ${i} outside the lungs`);
        }
      }
      assert.equal(px, truth.images[k]!.lesionPixels);
      assert.equal(px > 0, label !== 'healthy', `${image} (${label}) has ${px} lesion pixels`);
    }
    const ood = readFileSync(join(a.dir, 'ood.csv'), 'utf8').trim().split('\n');
    assert.equal(ood.length, 1 + Math.round(14 * 0.1));
    assert.ok(existsSync(join(a.dir, ood[1]!.split(',')[0]!)));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('3D data set: nnU-Net layout that medmask reads back; partial labels equal the truth on each source\'s organs', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'medmask-ph3-'));
  try {
    const w = await writeAbdomenDataset(join(tmp, 'a'), { n: 3, seed: 2, size: 40 });
    const again = await writeAbdomenDataset(join(tmp, 'b'), { n: 3, seed: 2, size: 40 });
    assert.equal(hashTree(w.dir, w.files), hashTree(again.dir, again.files));
    const d = await readSegmentationDataset(w.dir);
    assert.equal(d.cases.length, 3);
    assert.equal(d.labels[5], 'liver');
    const cases = (d.json as { medmask: { cases: { case: string; source: SourceName; labelled: string[] }[] } }).medmask.cases;
    for (const c of d.cases) {
      const info = cases.find((x) => x.case === c.id)!;
      const img = await readVolume(c.images[0]!);
      const lab = await readVolume(c.label!);
      const tru = await readVolume(join(w.dir, 'truthTr', `${c.id}.nii.gz`));
      assert.equal(img.meta.format, 'nifti1');
      assert.ok(img.data instanceof Int16Array, 'CT stays int16');
      assert.ok(lab.data instanceof Uint8Array, 'labels are uint8');
      for (let i = 0; i < 3; i++) {
        assert.ok(Math.abs(img.spacing[i]! - lab.spacing[i]!) < 1e-4 && Math.abs(img.origin[i]! - tru.origin[i]!) < 1e-3);
      }
      const keep = new Set(PHANTOM_SOURCES[info.source].labelled.map(organLabel));
      let labelled = 0;
      for (let i = 0; i < tru.data.length; i++) {
        const t = tru.data[i]!;
        assert.equal(lab.data[i], keep.has(t) ? t : 0);
        if (lab.data[i]) labelled++;
      }
      assert.ok(labelled > 0, `${c.id} (${info.source}) has labelled voxels`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('CLI: phantoms 2d/3d write and summarise; bad kind or count is a usage error; demo prints where results are', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'medmask-phcli-'));
  try {
    const r = cli('phantoms', '2d', '--n', '5', '--seed', '1', '--size', '48', '--out', join(tmp, 'c'), '--json');
    assert.equal(r.code, 0, r.err);
    const s = JSON.parse(r.out) as { files: number; counts: Record<string, number> };
    assert.equal(s.files, 5 * 3 + 2 + 1 + 1);
    const r3 = cli('phantoms', '3d', '--n', '2', '--size', '32', '--sources', 'lits,kits', '--out', join(tmp, 'a'));
    assert.equal(r3.code, 0, r3.err);
    assert.match(r3.out, /wrote 7 files .*(lits 1, kits 1|kits 1, lits 1)/);
    const bad = cli('phantoms', '4d', '--out', join(tmp, 'x'));
    assert.equal(bad.code, 2);
    assert.match(bad.err, /phantom kind "4d" is not 2d or 3d/);
    assert.doesNotMatch(bad.err, /\n\s+at /);
    const badN = cli('phantoms', '2d', '--n', 'ten', '--out', join(tmp, 'x'));
    assert.equal(badN.code, 2);
    assert.match(badN.err, /--n "ten"/);
    const badSrc = cli('phantoms', '3d', '--sources', 'lits,tcia', '--out', join(tmp, 'x'));
    assert.match(badSrc.err, /unknown source\(s\) tcia/);
    const demo = cli('demo', '--out', join(tmp, 'demo'), '--quick');
    assert.equal(demo.code, 0, demo.err);
    assert.match(demo.out, /Everything is in /);
    assert.ok(existsSync(join(tmp, 'demo', 'chest-2d', 'labels.csv')));
    assert.ok(existsSync(join(tmp, 'demo', 'abdomen-3d', 'dataset.json')));
    // The Dice interval comes from a separate, never-trained-on set of lesion images (40 in quick mode).
    const ev = /evaluation set: mean Dice of lesion masks (0\.\d{3}) \(95 % t-interval (0\.\d{3})–([01]\.\d{3}), ±(0\.\d{3}); (\d+) unseen lesion images/.exec(demo.out);
    assert.ok(ev, demo.out);
    const [mean, lo, hi, half] = ev.slice(1, 5).map(Number) as [number, number, number, number];
    assert.ok(lo < mean && mean < hi && Math.abs((hi - lo) / 2 - half) < 0.0011 && Number(ev[5]) >= 35 && Number(ev[5]) <= 40, ev[0]);
    assert.ok(existsSync(join(tmp, 'demo', 'chest-2d-eval', 'labels.csv')) && existsSync(join(tmp, 'demo', 'run-chest-eval', 'evaluation.json')));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
