/**
 * `medmask atlas run | export | report | campaign` through the CLI as a user runs them:
 * - a whole round with two pointwise ONNX models on phantoms: merged labels keep every original
 *   label (compared with labelsTr itself), the selection is the top case per source by the
 *   attention summed here from the attention files, exports keep each image's geometry and read
 *   back as nnU-Net / MSD data sets, the report's by-hand minutes are 60 × the organs dataset.json
 *   says are unlabelled; a second round reuses the predictions and takes revised labels;
 * - DICOM SEG export of a data set converted from a DICOM series (the pydicom-written fixture of
 *   tools/fixtures/make_dicom_seg_check.py): references and frames against pydicom's values, merge
 *   provenance as SegmentAlgorithmType, and dciodvfy (when installed) reports no error;
 * - the bad input: label map off the image grid, unknown label values, models with other
 *   organ lists and no mapping, prediction folders missing cases — each a one-line error naming it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dicomParser from 'dicom-parser';
import { createVolume, voxelToRas, type Volume } from '../../src/core/volume.js';
import { ABDOMEN_LABELS, ORGANS, organLabel, type OrganName } from '../../src/core/phantom/abdomen.js';
import { loadDicom } from '../../src/io/dicom-series.js';
import { decodeNpy } from '../../src/io/npy.js';
import { readVolume, writeVolume } from '../../src/io/index.js';
import { readSegmentationDataset } from '../../src/io/dataset.js';
import { writeAbdomenDataset } from '../../src/pipeline/phantoms.js';
import { cli } from '../helpers/cli.js';
import { pointwiseModel } from '../helpers/onnx-seg.js';

const geo = (v: Volume) => ({ spacing: v.spacing, origin: v.origin, direction: v.direction });

/** Two pointwise 10-channel "segmenters" that disagree (different weights). */
function writeModels(root: string): string[] {
  return (['pa', 'pb'] as const).map((name, m) => {
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    const W = [-6, ...ORGANS.map((_, k) => (1 + 0.3 * m) * (k - 4))], B = [2, ...ORGANS.map((_, k) => -0.3 * k)];
    writeFileSync(join(dir, 'model.onnx'), pointwiseModel(W, B));
    writeFileSync(join(dir, 'model.json'), JSON.stringify({
      format: 'medmask-model/1', name, task: 'segment', model: 'model.onnx',
      input: { name: 'input', layout: 'NCDHW', patch: [16, 16, 8], channels: 1 },
      preprocess: { intensity: { mode: 'ct-window', center: 40, width: 400 } },
      output: { name: 'logits', activation: 'softmax' }, labels: Object.fromEntries(ORGANS.map((o, i) => [i + 1, o])),
    }));
    return dir;
  });
}

const sameAffine = (a: Volume, b: Volume) => {
  const A = voxelToRas(a), B = voxelToRas(b);
  return A.every((x, i) => Math.abs(x - B[i]!) < 1e-4);
};

interface MedmaskCase { case: string; source: string; labelled: string[] }

test('atlas run (CLI): a whole round, then a second round with revised labels and reused predictions; report and export alone', async () => {
  const root = mkdtempSync(join(tmpdir(), 'medmask-atlas-run-'));
  try {
    const data = join(root, 'data'), work = join(root, 'work'), out = join(root, 'out');
    await writeAbdomenDataset(data, { n: 4, seed: 3, size: 32, sources: ['flare', 'lits', 'kits', 'msd_pancreas'] });
    const models = writeModels(root);
    const plain = cli('atlas', 'run', '--data', data, '--work', work, '--out', out, ...models.flatMap((m) => ['--model', m]), '--fraction', '0.25');
    assert.equal(plain.code, 0, plain.err);
    assert.match(plain.out, /^medmask atlas run: 4 case\(s\)/);
    assert.match(plain.out, /review +\d+ case\(s\) selected/);
    assert.match(plain.err, /atlas run: 34\/34 \(100%/, 'one progress over every step (4 checks + 2×4 predictions + 4 attention + rank + 4 merges + 3×4 exports + report)');
    const r = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')) as {
      predict: { ran: { name: string }[]; reused: string[] }; rank: { selected: string[] }; export: { formats: string[] };
      report: { html: string; headline: { byHandMinutes: number; expertMinutes: number } };
    };
    assert.deepEqual(r.predict.ran.map((m) => m.name), ['pa', 'pb']);
    assert.deepEqual(r.export.formats, ['nifti', 'nnunet', 'msd']);
    const meta = (JSON.parse(readFileSync(join(data, 'dataset.json'), 'utf8')) as { medmask: { cases: MedmaskCase[] } }).medmask.cases;
    // Selection: per source the case with the most attention voxels on its unlabelled organs, summed here from the heat maps.
    const priority = new Map<string, number>();
    for (const c of meta) {
      let p = 0;
      for (const o of ORGANS.filter((x) => !c.labelled.includes(x))) {
        const f = join(work, 'attention', c.case, `${o}.nii.gz`);
        if (existsSync(f)) for (const v of (await readVolume(f)).data) if (v) p++;
      }
      priority.set(c.case, p);
    }
    const want = meta.filter((c) => priority.get(c.case)! > 0).map((c) => c.case).sort(); // one case per source here
    assert.deepEqual([...r.rank.selected].sort(), want);
    // Merged labels keep every original label; exports keep the image geometry.
    for (const c of meta) {
      const image = await readVolume(join(data, 'imagesTr', `${c.case}_0000.nii.gz`));
      const partial = await readVolume(join(data, 'labelsTr', `${c.case}.nii.gz`));
      const merged = await readVolume(join(out, 'labelsTr', `${c.case}.nii.gz`));
      for (const o of c.labelled) {
        const l = organLabel(o as OrganName);
        for (let v = 0; v < partial.data.length; v++) if (partial.data[v] === l) assert.equal(merged.data[v], l, `${c.case} ${o} voxel ${v}`);
      }
      const nifti = await readVolume(join(out, 'export', 'nifti', `${c.case}.nii.gz`));
      assert.ok(sameAffine(nifti, image), `${c.case}: exported NIfTI affine equals the image's`);
      assert.deepEqual(nifti.data, merged.data);
      assert.equal(nifti.meta.intent, 'label');
    }
    const nn = await readSegmentationDataset(join(out, 'export', 'nnunet', 'Dataset501_AbdomenAtlas'));
    assert.equal(nn.cases.length, 4);
    assert.deepEqual(nn.labels, { 0: 'background', ...ABDOMEN_LABELS });
    const msd = await readSegmentationDataset(join(out, 'export', 'msd', 'Task501_AbdomenAtlas'));
    assert.equal(msd.cases.length, 4);
    for (const c of msd.cases) {
      const img = await readVolume(c.images[0]!);
      assert.ok(sameAffine(await readVolume(c.label!), img), `${c.id}: MSD label on the image grid`);
      assert.deepEqual(img.data, (await readVolume(join(data, 'imagesTr', `${c.id}_0000.nii.gz`))).data);
    }
    // Effort: 60 min per organ without an original label, 15 min per reviewed case (the paper's rates).
    const unlabelled = meta.reduce((s, c) => s + ORGANS.length - c.labelled.length, 0);
    assert.equal(r.report.headline.byHandMinutes, 60 * unlabelled);
    assert.equal(r.report.headline.expertMinutes, 15 * r.rank.selected.length);
    assert.ok(readFileSync(r.report.html, 'utf8').includes('<svg'));

    // Round 2: an expert revised the spleen of the first selected case (where spleen is not an original label).
    const target = meta.find((c) => r.rank.selected.includes(c.case) && !c.labelled.includes('spleen'))!;
    const truth = await readVolume(join(data, 'truthTr', `${target.case}.nii.gz`));
    const revisedDir = join(work, 'revised');
    mkdirSync(revisedDir);
    const rev = Uint8Array.from(truth.data, (l) => (l === organLabel('spleen') ? l : 0));
    await writeVolume(createVolume(truth.shape, 'uint8', { ...geo(truth), data: rev }), join(revisedDir, `${target.case}.nii.gz`), { labelMap: true });
    writeFileSync(join(revisedDir, 'revised.json'), JSON.stringify({ [target.case]: ['spleen'] }));
    const out2 = join(root, 'out2');
    const second = cli('atlas', 'run', '--data', data, '--work', work, '--out', out2, ...models.flatMap((m) => ['--model', m]), '--fraction', '0.25', '--format', 'nifti', '--json');
    assert.equal(second.code, 0, second.err);
    const s = JSON.parse(second.out) as { predict: { ran: unknown[]; reused: string[] }; merge: { revised: string; provenance: Record<string, number> } };
    assert.deepEqual(s.predict.ran, []);
    assert.deepEqual(s.predict.reused, ['pa', 'pb']);
    assert.equal(s.merge.revised, revisedDir);
    assert.equal(s.merge.provenance.revised, 1);
    const merged2 = await readVolume(join(out2, 'export', 'nifti', `${target.case}.nii.gz`));
    for (let v = 0; v < rev.length; v++) {
      if (rev[v]) assert.equal(merged2.data[v], rev[v], `revised spleen voxel ${v}`);
      else assert.notEqual(merged2.data[v], organLabel('spleen'), `voxel ${v} is spleen only where the expert painted it`);
    }
    const prov = JSON.parse(readFileSync(join(out2, 'provenance.json'), 'utf8')) as { cases: { case: string; provenance: Record<string, string> }[] };
    assert.equal(prov.cases.find((c) => c.case === target.case)!.provenance.spleen, 'revised');

    // report alone: same headline as the run's, with ground truth (truthTr) attention statistics.
    const rep = cli('atlas', 'report', '--data', data, '--work', work, '--merged', out2, '--out', join(root, 'rep'), '--minutes-per-case', '10', '--json');
    assert.equal(rep.code, 0, rep.err);
    const report = (JSON.parse(rep.out) as { report: { headline: { byHandMinutes: number; expertMinutes: number }; attention?: unknown } }).report;
    assert.equal(report.headline.byHandMinutes, 60 * unlabelled);
    assert.equal(report.headline.expertMinutes, 10 * r.rank.selected.length);
    assert.ok(report.attention, 'attention vs truth where truthTr exists');
    assert.ok(existsSync(join(root, 'rep', 'report.html')));

    // export alone, then its bad input.
    const ex = cli('atlas', 'export', '--data', data, '--merged', out, '--out', join(root, 'ex'), '--format', 'nnunet', '--dataset-id', '7', '--dataset-name', 'Abd', '--json');
    assert.equal(ex.code, 0, ex.err);
    assert.ok(existsSync(join(root, 'ex', 'nnunet', 'Dataset007_Abd', 'dataset.json')));
    const badFormat = cli('atlas', 'export', '--data', data, '--merged', out, '--out', join(root, 'ex'), '--format', 'png');
    assert.equal(badFormat.code, 2);
    assert.match(badFormat.err, /--format png: unknown export format/);
    assert.match(badFormat.err, /nifti, nnunet, msd, dicom-seg/);
    rmSync(join(out, 'labelsTr', `${meta[1]!.case}.nii.gz`));
    const missing = cli('atlas', 'export', '--data', data, '--merged', out, '--out', join(root, 'ex'));
    assert.equal(missing.code, 3);
    assert.match(missing.err, new RegExp(`no merged labels for 1 case\\(s\\): ${meta[1]!.case}`));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('atlas export: DICOM SEG of a data set converted from a DICOM series references that series, carries the merge provenance, passes dciodvfy', async () => {
  const FIX = new URL('../fixtures/dicom-seg/', import.meta.url).pathname;
  const expected = JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8')) as {
    salt: string; source_sop_instance_uids_remapped: string[]; series_instance_uid_remapped: string; slice_positions: number[][]; image_orientation_patient: number[];
  };
  const root = mkdtempSync(join(tmpdir(), 'medmask-atlas-seg-'));
  try {
    const data = join(root, 'data'), work = join(root, 'work'), merged = join(root, 'merged'), dicom = join(root, 'dicom');
    // The data set: the series converted to NIfTI (as `medmask convert` does), liver as the original label.
    const { volume } = await loadDicom(join(FIX, 'series'), { uidSalt: expected.salt });
    const truth = Uint8Array.from(decodeNpy(new Uint8Array(readFileSync(join(FIX, 'labels.npy')))).data);
    for (const sub of ['imagesTr', 'labelsTr']) mkdirSync(join(data, sub), { recursive: true });
    await writeVolume(volume, join(data, 'imagesTr', 'ct_0000.nii.gz'));
    const liver = organLabel('liver'), kidney = organLabel('kidney_right');
    await writeVolume(createVolume(volume.shape, 'uint8', { ...geo(volume), data: truth.map((l) => (l === liver ? l : 0)) }), join(data, 'labelsTr', 'ct.nii.gz'), { labelMap: true });
    writeFileSync(join(data, 'dataset.json'), JSON.stringify({
      channel_names: { 0: 'CT' }, labels: { background: 0, ...Object.fromEntries(Object.entries(ABDOMEN_LABELS).map(([k, v]) => [v, Number(k)])) },
      numTraining: 1, file_ending: '.nii.gz', medmask: { cases: [{ case: 'ct', source: 'hospital', labelled: ['liver'] }] },
    }));
    // Pseudo-label = the fixture labels; the expert revised the right kidney; merge gives the provenance.
    mkdirSync(join(work, 'pseudo'), { recursive: true });
    await writeVolume(createVolume(volume.shape, 'uint8', { ...geo(volume), data: truth }), join(work, 'pseudo', 'ct.nii.gz'), { labelMap: true });
    mkdirSync(join(work, 'revised'));
    await writeVolume(createVolume(volume.shape, 'uint8', { ...geo(volume), data: truth.map((l) => (l === kidney ? l : 0)) }), join(work, 'revised', 'ct.nii.gz'), { labelMap: true });
    writeFileSync(join(work, 'revised', 'revised.json'), JSON.stringify({ ct: ['kidney_right'] }));
    const m = cli('atlas', 'merge', '--data', data, '--work', work, '--out', merged, '--revised', join(work, 'revised'));
    assert.equal(m.code, 0, m.err);
    mkdirSync(dicom);
    symlinkSync(join(FIX, 'series'), join(dicom, 'ct'));
    const ex = cli('atlas', 'export', '--data', data, '--merged', merged, '--out', join(root, 'export'), '--dicom', dicom, '--uid-salt', expected.salt, '--json');
    assert.equal(ex.code, 0, ex.err);
    const summary = JSON.parse(ex.out) as { formats: string[]; dicomSeg: { file: string; referencedInstances: number }[] };
    assert.deepEqual(summary.formats, ['nifti', 'nnunet', 'msd', 'dicom-seg'], 'a DICOM source adds dicom-seg to the default formats');
    const file = summary.dicomSeg[0]!.file;
    assert.equal(summary.dicomSeg[0]!.referencedInstances, expected.source_sop_instance_uids_remapped.length);

    // Read back with dicom-parser: references, algorithm types, frames → label map.
    const bytes = new Uint8Array(readFileSync(file));
    const d = dicomParser.parseDicom(bytes);
    const seq = (ds: dicomParser.DataSet, tag: string) => (ds.elements[tag]?.items ?? []).map((i) => i.dataSet!);
    const rs = seq(d, 'x00081115')[0]!;
    assert.equal(rs.string('x0020000e'), expected.series_instance_uid_remapped);
    assert.deepEqual(seq(rs, 'x0008114a').map((i) => i.string('x00081155')).sort(), [...expected.source_sop_instance_uids_remapped].sort());
    const segments = new Map(seq(d, 'x00620002').map((s) => [s.uint16('x00620004')!, { name: s.string('x00620006')!, type: s.string('x00620008')! }]));
    const byName = new Map([...segments.values()].map((s) => [s.name, s.type]));
    assert.equal(byName.get('liver'), 'MANUAL');
    assert.equal(byName.get('kidney_right'), 'SEMIAUTOMATIC');
    assert.equal(byName.get('spleen'), 'AUTOMATIC');
    const rows = d.uint16('x00280010')!, cols = d.uint16('x00280011')!;
    assert.deepEqual([cols, rows], [volume.shape[0], volume.shape[1]]);
    const px = d.elements.x7fe00010!;
    const plane = rows * cols;
    const rebuilt = new Uint8Array(truth.length);
    seq(d, 'x52009230').forEach((fg, f) => {
      const src = seq(seq(fg, 'x00089124')[0]!, 'x00082112')[0]!.string('x00081155')!;
      const k = expected.source_sop_instance_uids_remapped.indexOf(src); // pydicom's slice order
      assert.ok(k >= 0, `frame ${f + 1} references ${src}`);
      const pos = seq(fg, 'x00209113')[0]!.string('x00200032')!.split('\\').map(Number);
      pos.forEach((p, c) => assert.ok(Math.abs(p - expected.slice_positions[k]![c]!) < 1e-3, `frame ${f + 1} position`));
      const value = ABDOMEN_LABELS_BY_NAME.get(segments.get(seq(fg, 'x0062000a')[0]!.uint16('x0062000b')!)!.name)!;
      for (let p = 0; p < plane; p++) {
        const bit = f * plane + p;
        if ((bytes[px.dataOffset + (bit >> 3)]! >> (bit & 7)) & 1) rebuilt[k * plane + p] = value;
      }
    });
    assert.deepEqual(rebuilt, truth, 'the SEG decodes back to the merged labels');
    // The NIfTI export sits where pydicom put the slices.
    const nifti = await readVolume(join(root, 'export', 'nifti', 'ct.nii.gz'));
    nifti.origin.forEach((o, c) => assert.ok(Math.abs(o - expected.slice_positions[0]![c]!) < 1e-3, 'NIfTI origin = first slice position'));
    if (existsSync('/usr/bin/dciodvfy')) {
      const v = spawnSync('/usr/bin/dciodvfy', [file], { encoding: 'utf8' });
      const lines = `${v.stdout}\n${v.stderr}`.split('\n');
      assert.ok(lines.some((l) => /Warning|Error|^\s*$/.test(l)), 'dciodvfy ran');
      assert.deepEqual(lines.filter((l) => l.startsWith('Error')), [], 'dciodvfy errors');
    }
    // A missing source is named.
    renameSync(join(dicom, 'ct'), join(dicom, 'other'));
    const bad = cli('atlas', 'export', '--data', data, '--merged', merged, '--out', join(root, 'export'), '--dicom', dicom);
    assert.equal(bad.code, 3);
    assert.match(bad.err, /no DICOM source for case ct/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

const ABDOMEN_LABELS_BY_NAME = new Map<string, number>(Object.entries(ABDOMEN_LABELS).map(([k, v]) => [v, Number(k)]));

test('atlas bad input: label map off the image grid, unknown label values, other organ lists without a mapping, prediction folders missing cases', async () => {
  const root = mkdtempSync(join(tmpdir(), 'medmask-atlas-bad-'));
  try {
    const data = join(root, 'data'), work = join(root, 'work');
    await writeAbdomenDataset(data, { n: 3, seed: 9, size: 32, sources: ['lits', 'kits', 'flare'] });
    const ids = ['case_0000', 'case_0001', 'case_0002'];
    const truth = new Map<string, Volume>();
    for (const id of ids) truth.set(id, await readVolume(join(data, 'truthTr', `${id}.nii.gz`)));
    const writePredictions = async () => {
      rmSync(work, { recursive: true, force: true });
      for (const id of ids) {
        const t = truth.get(id)!;
        mkdirSync(join(work, 'predictions', 'a'), { recursive: true });
        await writeVolume(t, join(work, 'predictions', 'a', `${id}.nii.gz`), { labelMap: true });
        mkdirSync(join(work, 'predictions', 'b', id), { recursive: true });
        for (const o of ORGANS) await writeVolume(createVolume(t.shape, 'uint8', { ...geo(t), data: Uint8Array.from(t.data, (l) => (l === organLabel(o) ? 255 : 0)) }), join(work, 'predictions', 'b', id, `${o}.nii.gz`));
      }
    };
    await writePredictions();
    assert.equal(cli('atlas', 'attention', '--data', data, '--work', work, '--json').code, 0);

    // Prediction folders missing cases: every gap of every model named at once, before any work.
    rmSync(join(work, 'predictions', 'b', 'case_0001'), { recursive: true });
    rmSync(join(work, 'predictions', 'b', 'case_0002'), { recursive: true });
    rmSync(join(work, 'predictions', 'a', 'case_0002.nii.gz'));
    const gaps = cli('atlas', 'attention', '--data', data, '--work', work);
    assert.equal(gaps.code, 3, gaps.err);
    assert.match(gaps.err, /\[NOT_FOUND\]/);
    assert.match(gaps.err, /a: no prediction for case case_0002; b: no prediction for case case_0001, case_0002/);
    assert.equal(gaps.err.trim().split('\n').length, 2, 'one line and a hint, no stack');
    await writePredictions();

    // Another organ list without a mapping: a per-organ file named as the data set does not name it …
    renameSync(join(work, 'predictions', 'b', 'case_0000', 'gallbladder.nii.gz'), join(work, 'predictions', 'b', 'case_0000', 'gall_bladder.nii.gz'));
    const named = cli('atlas', 'attention', '--data', data, '--work', work);
    assert.equal(named.code, 3);
    assert.match(named.err, /model b predicts organ "gall_bladder"/);
    assert.match(named.err, /rename\.json/);
    writeFileSync(join(work, 'predictions', 'b', 'rename.json'), JSON.stringify({ gall_bladder: 'gallbladder' }));
    assert.equal(cli('atlas', 'attention', '--data', data, '--work', work, '--cases', 'case_0000').code, 0, 'rename.json maps it');
    // … and a label map with values the data set does not name, without labels.json.
    const t0 = truth.get('case_0000')!;
    const shifted = Uint8Array.from(t0.data, (l) => (l ? l + 10 : 0));
    await writeVolume(createVolume(t0.shape, 'uint8', { ...geo(t0), data: shifted }), join(work, 'predictions', 'a', 'case_0000.nii.gz'), { labelMap: true });
    const values = cli('atlas', 'attention', '--data', data, '--work', work);
    assert.equal(values.code, 3);
    assert.match(values.err, /model a's label map holds value\(s\) 1[1-9]/);
    assert.match(values.err, /labels\.json/);
    writeFileSync(join(work, 'predictions', 'a', 'labels.json'), JSON.stringify(Object.fromEntries(ORGANS.map((o, i) => [i + 11, o]))));
    assert.equal(cli('atlas', 'attention', '--data', data, '--work', work, '--cases', 'case_0000').code, 0, 'labels.json maps it');
    rmSync(join(work, 'predictions', 'a', 'labels.json'));
    await writePredictions();

    // A label map off its image's grid: refused by run's check before any model runs.
    const [model] = writeModels(root);
    const label1 = join(data, 'labelsTr', 'case_0001.nii.gz');
    const lab = await readVolume(label1);
    await writeVolume({ ...lab, origin: [lab.origin[0] + 5, lab.origin[1], lab.origin[2]] }, label1, { labelMap: true });
    const work2 = join(root, 'work2');
    const moved = cli('atlas', 'run', '--data', data, '--work', work2, '--out', join(root, 'out'), '--model', model!);
    assert.equal(moved.code, 3, moved.err);
    assert.match(moved.err, /\[GEOMETRY_MISMATCH\]/);
    assert.match(moved.err, /labelsTr\/case_0001\.nii\.gz/);
    assert.ok(!existsSync(join(work2, 'predictions')), 'nothing predicted before the check');
    // Label values the data set does not name.
    const bad = Uint8Array.from(lab.data);
    bad[bad.length >> 1] = 42;
    await writeVolume({ ...lab, data: bad }, label1, { labelMap: true });
    const unknown = cli('atlas', 'merge', '--data', data, '--work', work, '--out', join(root, 'm'));
    assert.equal(unknown.code, 3);
    assert.match(unknown.err, /\[DATASET_INVALID\].*label value\(s\) 42/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('atlas campaign (CLI): a small simulated campaign prints attention, Dice vs fraction and the effort headline', () => {
  const root = mkdtempSync(join(tmpdir(), 'medmask-atlas-camp-'));
  try {
    const r = cli('atlas', 'campaign', '--out', root, '--n', '4', '--size', '32', '--draws', '20', '--json');
    assert.equal(r.code, 0, r.err);
    const s = JSON.parse(r.out) as { headline: { byHandMinutes: number }; cases: { labelled: string[] }[]; curve: { fraction: number }[] };
    assert.equal(s.cases.length, 4);
    assert.equal(s.headline.byHandMinutes, 60 * s.cases.reduce((a, c) => a + ORGANS.length - c.labelled.length, 0));
    assert.ok(s.curve.length > 2);
    assert.ok(existsSync(join(root, 'report', 'report.html')));
    const bad = cli('atlas', 'campaign', '--out', root, '--no-simulated');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--no-simulated leaves the campaign without models/);
    const src = cli('atlas', 'campaign', '--out', root, '--sources', 'flare,mars');
    assert.equal(src.code, 2);
    assert.match(src.err, /--sources mars: unknown source/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
