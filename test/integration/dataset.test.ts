import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MedmaskError } from '../../src/core/errors.js';
import { createVolume } from '../../src/core/volume.js';
import { readLabelsCsv, readSegmentationDataset, checkLabelMap } from '../../src/io/dataset.js';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'medmask-ds-'));
}

test('labels CSV: rows in order, extra columns kept, missing images all listed with line numbers', async () => {
  const dir = tmp();
  try {
    mkdirSync(join(dir, 'img'));
    for (const f of ['a.png', 'b.png']) writeFileSync(join(dir, 'img', f), 'x');
    writeFileSync(join(dir, 'labels.csv'), '\ufeffimage,label,site\nimg/a.png,healthy,A\nimg/b.png,tuberculosis,B\n');
    const rows = await readLabelsCsv(join(dir, 'labels.csv'), { classes: ['healthy', 'tuberculosis'] });
    assert.deepEqual(rows.map((r) => [r.id, r.label, r.extra.site, r.line]), [['a', 'healthy', 'A', 2], ['b', 'tuberculosis', 'B', 3]]);

    writeFileSync(join(dir, 'bad.csv'), 'image,label\nimg/a.png,healthy\nimg/missing.png,healthy\nimg/gone.png,tuberculosis\n');
    await assert.rejects(readLabelsCsv(join(dir, 'bad.csv')), (e: MedmaskError) =>
      e.code === 'NOT_FOUND' && /2 image\(s\)/.test(e.message) && e.message.includes('line 3: img/missing.png') && e.message.includes('line 4: img/gone.png'));

    writeFileSync(join(dir, 'unknown.csv'), 'file,diagnosis\nimg/a.png,tuberculosys\n');
    await assert.rejects(readLabelsCsv(join(dir, 'unknown.csv'), { classes: ['healthy', 'tuberculosis'] }), (e: MedmaskError) =>
      e.code === 'DATASET_INVALID' && e.message.includes('line 2') && e.message.includes('"tuberculosys"') && e.message.includes('known: healthy, tuberculosis'));

    writeFileSync(join(dir, 'nocol.csv'), 'picture,label\nimg/a.png,healthy\n');
    await assert.rejects(readLabelsCsv(join(dir, 'nocol.csv')), /no image column; expected one of image, file/);
    writeFileSync(join(dir, 'dup.csv'), 'image,label\nimg/a.png,healthy\nimg/a.png,healthy\n');
    await assert.rejects(readLabelsCsv(join(dir, 'dup.csv')), /listed twice \(first on line 2\)/);
    await assert.rejects(readLabelsCsv(join(dir, 'nope.csv')), (e: MedmaskError) => e.code === 'NOT_FOUND');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('nnU-Net v2 layout: cases found by file name, labels name→id, missing label named', async () => {
  const dir = tmp();
  try {
    mkdirSync(join(dir, 'imagesTr'));
    mkdirSync(join(dir, 'labelsTr'));
    for (const id of ['case_0001', 'case_0002']) {
      writeFileSync(join(dir, 'imagesTr', `${id}_0000.nii.gz`), 'x');
    }
    writeFileSync(join(dir, 'labelsTr', 'case_0001.nii.gz'), 'x');
    writeFileSync(join(dir, 'dataset.json'), JSON.stringify({ channel_names: { 0: 'CT' }, labels: { background: 0, liver: 5 }, numTraining: 2, file_ending: '.nii.gz' }));
    await assert.rejects(readSegmentationDataset(dir), (e: MedmaskError) => e.code === 'NOT_FOUND' && e.message.includes(join('labelsTr', 'case_0002.nii.gz')));
    writeFileSync(join(dir, 'labelsTr', 'case_0002.nii.gz'), 'x');
    const ds = await readSegmentationDataset(dir);
    assert.deepEqual(ds.labels, { 0: 'background', 5: 'liver' });
    assert.deepEqual(ds.cases.map((c) => c.id), ['case_0001', 'case_0002']);
    assert.ok(ds.cases[1]!.label!.endsWith(join('labelsTr', 'case_0002.nii.gz')));
    writeFileSync(join(dir, 'dataset.json'), JSON.stringify({ labels: { background: 0 }, numTraining: 3, file_ending: '.nii.gz' }));
    await assert.rejects(readSegmentationDataset(dir), /numTraining is 3 but imagesTr\/ holds 2/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('MSD layout: explicit training list with ./ paths; label ids as keys', async () => {
  const dir = tmp();
  try {
    mkdirSync(join(dir, 'imagesTr'));
    mkdirSync(join(dir, 'labelsTr'));
    writeFileSync(join(dir, 'imagesTr', 'spleen_2.nii.gz'), 'x');
    writeFileSync(join(dir, 'labelsTr', 'spleen_2.nii.gz'), 'x');
    writeFileSync(join(dir, 'dataset.json'), JSON.stringify({ name: 'Spleen', modality: { 0: 'CT' }, labels: { 0: 'background', 1: 'spleen' }, training: [{ image: './imagesTr/spleen_2.nii.gz', label: './labelsTr/spleen_2.nii.gz' }], test: [] }));
    const ds = await readSegmentationDataset(dir);
    assert.equal(ds.name, 'Spleen');
    assert.deepEqual(ds.labels, { 0: 'background', 1: 'spleen' });
    assert.equal(ds.cases[0]!.id, 'spleen_2');
    assert.deepEqual(ds.channels, { 0: 'CT' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('checkLabelMap refuses another shape, another affine and unknown label values', () => {
  const img = createVolume([4, 4, 2], 'int16', { spacing: [0.8, 0.8, 2.5] });
  assert.throws(() => checkLabelMap(img, createVolume([4, 4, 3], 'uint8')), (e: MedmaskError) => e.code === 'GEOMETRY_MISMATCH' && /4×4×3 differs from image 4×4×2/.test(e.message));
  assert.throws(() => checkLabelMap(img, createVolume([4, 4, 2], 'uint8')), (e: MedmaskError) => e.code === 'GEOMETRY_MISMATCH' && /position\/orientation/.test(e.message));
  const lab = createVolume([4, 4, 2], 'uint8', { spacing: [0.8, 0.8, 2.5] });
  lab.data[5] = 7;
  assert.throws(() => checkLabelMap(img, lab, [0, 1, 2]), /label value\(s\) 7/);
  lab.data[5] = 2;
  checkLabelMap(img, lab, [0, 1, 2]);
});
