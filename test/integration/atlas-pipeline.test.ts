// The atlas round on a small phantom data set with imported predictions of three simulated models
// (label maps and probability maps made from the truth, with known mistakes): pseudo-labels are
// the majority vote, attention flags exactly the (opened) disagreement, ranking puts the case with
// a mistake in an unlabelled organ first, merging keeps every original label.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeAbdomenDataset } from '../../src/pipeline/phantoms.js';
import { atlasAttention, atlasMerge, atlasRank, readAtlasDataset, type CaseAttention } from '../../src/pipeline/atlas.js';
import { readVolume, writeVolume } from '../../src/io/index.js';
import { createVolume, type Volume } from '../../src/core/volume.js';
import { binaryOpening } from '../../src/core/atlas/morphology.js';
import { ORGANS, organLabel } from '../../src/core/phantom/abdomen.js';
import { cli } from '../helpers/cli.js';

/** A 7×7×5 block of background (truth 0) nearest the centre of the volume. */
function block(t: Volume): (i: number) => boolean {
  const [nx, ny, nz] = t.shape;
  const d = t.data as Uint8Array;
  const fits = (cx: number, cy: number, cz: number) => {
    for (let z = cz - 2; z <= cz + 2; z++) for (let y = cy - 3; y <= cy + 3; y++) for (let x = cx - 3; x <= cx + 3; x++) if (d[x + nx * (y + ny * z)]) return false;
    return true;
  };
  let best: number[] | undefined;
  let bestD = Infinity;
  for (let z = 2; z < nz - 2; z++) for (let y = 3; y < ny - 3; y++) for (let x = 3; x < nx - 3; x++) {
    const dist = (x - nx / 2) ** 2 + (y - ny / 2) ** 2 + (z - nz / 2) ** 2;
    if (dist < bestD && fits(x, y, z)) { best = [x, y, z]; bestD = dist; }
  }
  assert.ok(best, 'no background block');
  const c = best;
  return (v) => {
    const x = v % nx, y = Math.floor(v / nx) % ny, z = Math.floor(v / (nx * ny));
    return Math.abs(x - c[0]!) <= 3 && Math.abs(y - c[1]!) <= 3 && Math.abs(z - c[2]!) <= 2;
  };
}

test('atlas round on phantoms with imported predictions: pseudo-labels, attention, ranking, merging, CLI', async () => {
  const root = mkdtempSync(join(tmpdir(), 'medmask-atlas-'));
  try {
    const data = join(root, 'data'), work = join(root, 'work');
    await writeAbdomenDataset(data, { n: 4, seed: 5, size: 40, sources: ['btcv', 'lits', 'kits', 'flare'] });
    const atlas = await readAtlasDataset(data);
    assert.equal(atlas.cases.length, 4);
    const truth = new Map<string, Volume>();
    for (const c of atlas.cases) truth.set(c.id, await readVolume(join(data, 'truthTr', `${c.id}.nii.gz`)));
    // The case whose source labels liver only gets model B's false spleen blob (spleen unlabelled there);
    // the btcv case gets the same blob as liver (labelled there: must not raise its priority).
    const lits = atlas.cases.find((c) => c.source === 'lits')!;
    const btcv = atlas.cases.find((c) => c.source === 'btcv')!;
    for (const m of ['a', 'b']) mkdirSync(join(work, 'predictions', m), { recursive: true });
    const painted = new Map<string, Uint8Array>();
    for (const c of atlas.cases) {
      const t = truth.get(c.id)!;
      const inBlock = block(t);
      // Model a: the truth as a label map.
      await writeVolume(t, join(work, 'predictions', 'a', `${c.id}.nii.gz`), { labelMap: true });
      // Model b: a label map with a mistake in two cases.
      const b = Uint8Array.from(t.data as Uint8Array);
      const wrong = c.id === lits.id ? organLabel('spleen') : c.id === btcv.id ? organLabel('liver') : 0;
      if (wrong) for (let v = 0; v < b.length; v++) if (inBlock(v)) b[v] = wrong;
      painted.set(c.id, b);
      await writeVolume(createVolume(t.shape, 'uint8', { spacing: t.spacing, origin: t.origin, direction: t.direction, data: b }), join(work, 'predictions', 'b', `${c.id}.nii.gz`), { labelMap: true });
      // Model c: per-organ uint8 probability maps of the truth.
      mkdirSync(join(work, 'predictions', 'c', c.id), { recursive: true });
      for (const o of ORGANS) {
        const p = Uint8Array.from(t.data as Uint8Array, (l) => (l === organLabel(o) ? 255 : 0));
        await writeVolume(createVolume(t.shape, 'uint8', { spacing: t.spacing, origin: t.origin, direction: t.direction, data: p }), join(work, 'predictions', 'c', c.id, `${o}.nii.gz`));
      }
    }

    const summaries = await atlasAttention(data, work);
    const byCase = new Map<string, CaseAttention>(summaries.map((s) => [s.case, s]));
    for (const c of atlas.cases) {
      const t = truth.get(c.id)!;
      const b = painted.get(c.id)!;
      // Pseudo-label = majority of a, b, c (a and c are the truth, so the truth wins everywhere).
      const pseudo = await readVolume(join(work, 'pseudo', `${c.id}.nii.gz`));
      assert.deepEqual(pseudo.data, t.data, `${c.id}: pseudo-label is not the majority vote`);
      // Attention of each organ = opened disagreement between b and the truth (std of {0, 1, 0} ≈ 0.47;
      // entropy of 0/1 probabilities is 0; 0/1 votes of three models cannot overlap).
      const s = byCase.get(c.id)!;
      assert.deepEqual(s.models, ['a', 'b', 'c']);
      for (const o of ORGANS) {
        const l = organLabel(o);
        const dis = Uint8Array.from(t.data as Uint8Array, (x, v) => ((x === l) !== (b[v] === l) ? 1 : 0));
        const want = binaryOpening(dis, t.shape).reduce((a, x) => a + x, 0);
        const got = s.organs.find((x) => x.organ === o)!;
        assert.equal(got.voxels, want, `${c.id} ${o}`);
        assert.equal(got.uncertainty, 0);
        assert.equal(got.overlap, 0);
        const heat = await readVolume(join(work, 'attention', c.id, `${o}.nii.gz`));
        assert.equal((heat.data as Uint8Array).reduce((a, x) => a + (x ? 1 : 0), 0), want, `${c.id} ${o}: heat-map support`);
      }
      assert.deepEqual(s.labelled, atlas.cases.find((x) => x.id === c.id)!.labelled);
    }
    assert.ok(byCase.get(lits.id)!.organs.find((o) => o.organ === 'spleen')!.voxels > 0, 'the spleen blob survives the opening');

    // pseudoOnly (the loop's campaign scoring): the same majority-vote pseudo-labels, nothing else written.
    const only = join(root, 'pseudo-only');
    mkdirSync(only);
    symlinkSync(join(work, 'predictions'), join(only, 'predictions'), 'dir');
    assert.deepEqual(await atlasAttention(data, only, { pseudoOnly: true }), []);
    for (const c of atlas.cases) assert.deepEqual((await readVolume(join(only, 'pseudo', `${c.id}.nii.gz`))).data, truth.get(c.id)!.data, `${c.id}: pseudoOnly pseudo-label`);
    assert.deepEqual(readdirSync(only).sort(), ['predictions', 'pseudo'], 'no attention maps or summaries');

    // Ranking: only the lits case has attention on an organ without an original label.
    const r = await atlasRank(work, { fraction: 1 });
    assert.equal(r.ranked[0]!.id, lits.id);
    assert.ok(r.ranked[0]!.priority > 0, JSON.stringify(r.ranked));
    assert.equal(r.ranked.find((x) => x.id === btcv.id)!.priority, 0);
    assert.deepEqual(r.selected, [lits.id]); // zero-priority cases are not sent for review
    assert.deepEqual(r.ranked[0]!.organs, ['spleen', ...r.ranked[0]!.organs.slice(1)]);
    const all = await atlasRank(work, { fraction: 1, organs: 'all' });
    assert.ok(all.ranked.find((x) => x.id === btcv.id)!.priority > 0, JSON.stringify(all.ranked));
    assert.match(readFileSync(join(work, 'review.csv'), 'utf8'), /^case,source,priority,rank/);

    // Merge: original labels stay, the rest comes from the pseudo-labels (= truth here);
    // a revision of the spleen in the lits case wins over the pseudo-label.
    const revised = join(root, 'revised');
    mkdirSync(revised);
    const t = truth.get(lits.id)!;
    const rev = Uint8Array.from(t.data as Uint8Array, (x) => (x === organLabel('spleen') ? organLabel('spleen') : 0));
    for (let v = 0; v < 40; v++) rev[v] = organLabel('spleen'); // the expert adds a few voxels
    await writeVolume(createVolume(t.shape, 'uint8', { spacing: t.spacing, origin: t.origin, direction: t.direction, data: rev }), join(revised, `${lits.id}.nii.gz`), { labelMap: true });
    writeFileSync(join(revised, 'revised.json'), JSON.stringify({ [lits.id]: ['spleen'] }));
    const out = join(root, 'final');
    const m = await atlasMerge(data, work, out, { revised });
    for (const c of atlas.cases) {
      const final = (await readVolume(join(out, 'labelsTr', `${c.id}.nii.gz`))).data;
      const tr = truth.get(c.id)!.data;
      const prov = m.cases.find((x) => x.case === c.id)!.provenance;
      for (const o of ORGANS) {
        const expected = c.labelled!.includes(o) ? 'original' : c.id === lits.id && o === 'spleen' ? 'revised' : 'pseudo';
        assert.equal(prov[o], expected, `${c.id} ${o}`);
      }
      let diff = 0;
      for (let v = 0; v < tr.length; v++) {
        const want = c.id === lits.id && v < 40 && tr[v] !== organLabel('liver') ? organLabel('spleen') : tr[v];
        if (final[v] !== want) diff++;
      }
      assert.equal(diff, 0, `${c.id}: ${diff} voxels differ from the expected merge`);
    }

    // The CLI runs the same steps; a prediction folder missing a case is a clear error.
    const ok = cli('atlas', 'rank', '--work', work, '--fraction', '1', '--json');
    assert.equal(ok.code, 0, ok.err);
    assert.deepEqual(JSON.parse(ok.out).selected, [lits.id]);
    rmSync(join(work, 'predictions', 'b', `${btcv.id}.nii.gz`));
    const bad = cli('atlas', 'attention', '--data', data, '--work', work, '--cases', btcv.id);
    assert.equal(bad.code, 3, bad.err);
    assert.match(bad.err, new RegExp(`no prediction for case ${btcv.id}`));
    // Ranking by expected Dice loss with organ priors (the refined preset's ranking) from the CLI.
    const dice = cli('atlas', 'rank', '--work', work, '--fraction', '1', '--measure', 'dice', '--organ-priors', '--json');
    assert.equal(dice.code, 0, dice.err);
    const diceRank = JSON.parse(readFileSync(join(work, 'ranking.json'), 'utf8')) as { options: { measure: string; organPriors: boolean }; ranked: { priority: number }[] };
    assert.deepEqual([diceRank.options.measure, diceRank.options.organPriors], ['dice', true]);
    assert.ok(diceRank.ranked.every((r) => r.priority >= 0 && r.priority <= 1), 'an expected Dice loss lies in [0, 1]');
    const preset = cli('atlas', 'attention', '--data', data, '--work', work, '--preset', 'fancy');
    assert.equal(preset.code, 2);
    assert.match(preset.err, /--preset "fancy" is not one of paper, ranking, refined/);
    const usage = cli('atlas', 'rank', '--work', work, '--organs', 'some');
    assert.equal(usage.code, 2);
    assert.match(usage.err, /--organs "some" is not one of unlabelled, all/);
    // An original label map with an unknown value, then one on another grid.
    const orig = join(data, 'labelsTr', `${lits.id}.nii.gz`);
    const lab = await readVolume(orig);
    (lab.data as Uint8Array)[5] = 42;
    await writeVolume(lab, orig, { labelMap: true });
    const unknown = cli('atlas', 'merge', '--data', data, '--work', work, '--out', join(root, 'final2'), '--cases', lits.id);
    assert.equal(unknown.code, 3, unknown.err);
    assert.match(unknown.err, /label value\(s\) 42/);
    (lab.data as Uint8Array)[5] = 0;
    await writeVolume({ ...lab, origin: [lab.origin[0] + 5, lab.origin[1], lab.origin[2]] }, orig, { labelMap: true });
    const moved = cli('atlas', 'merge', '--data', data, '--work', work, '--out', join(root, 'final2'), '--cases', lits.id);
    assert.equal(moved.code, 3, moved.err);
    assert.match(moved.err, /GEOMETRY_MISMATCH/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('atlas predict (CLI): a pointwise model writes uint8 soft predictions per organ on each image grid; unknown organ names are refused', async () => {
  const { pointwiseModel } = await import('../helpers/onnx-seg.js');
  const root = mkdtempSync(join(tmpdir(), 'medmask-atlas-'));
  try {
    const data = join(root, 'data'), work = join(root, 'work'), model = join(root, 'pw');
    await writeAbdomenDataset(data, { n: 2, seed: 8, size: 32, sources: ['lits', 'kits'] });
    mkdirSync(model);
    const W = [-4, 6, 3], B = [1.5, -2, -0.5];
    writeFileSync(join(model, 'model.onnx'), pointwiseModel(W, B));
    const manifest = (labels: Record<string, string>) => JSON.stringify({
      format: 'medmask-model/1', name: 'pw', task: 'segment', model: 'model.onnx',
      input: { name: 'input', layout: 'NCDHW', patch: [16, 16, 8], channels: 1 },
      preprocess: { intensity: { mode: 'ct-window', center: 40, width: 400 } },
      output: { name: 'logits', activation: 'softmax' }, labels,
    });
    writeFileSync(join(model, 'model.json'), manifest({ 1: 'liver', 2: 'spleen' }));
    const r = cli('atlas', 'predict', '--data', data, '--model', model, '--work', work, '--no-skip', '--json');
    assert.equal(r.code, 0, r.err);
    assert.equal(JSON.parse(r.out).models[0].cases, 2);
    const atlas = await readAtlasDataset(data);
    for (const c of atlas.cases) {
      const ct = await readVolume(c.image);
      for (const [organ, ch] of [['liver', 1], ['spleen', 2]] as const) {
        const p = await readVolume(join(work, 'predictions', 'pw', c.id, `${organ}.nii.gz`));
        assert.deepEqual(p.shape, ct.shape);
        assert.ok(p.origin.every((o, i) => Math.abs(o - ct.origin[i]!) < 1e-3) && p.spacing.every((s, i) => Math.abs(s - ct.spacing[i]!) < 1e-4));
        let worst = 0;
        for (let v = 0; v < p.data.length; v++) {
          const x = Math.fround(Math.min(1, Math.max(0, (ct.data[v]! + 160) / 400)));
          const z = W.map((w, k) => Math.fround(w * x + B[k]!));
          const m = Math.max(...z), e = z.map((t) => Math.exp(t - m)), s = e.reduce((a, b) => a + b, 0);
          worst = Math.max(worst, Math.abs(p.data[v]! - Math.round((e[ch]! / s) * 255)));
        }
        assert.ok(worst <= 1, `${c.id} ${organ}: off by ${worst} steps of 1/255`);
      }
    }
    writeFileSync(join(model, 'model.json'), manifest({ 1: 'liver', 2: 'gall_bladder' }));
    const bad = cli('atlas', 'predict', '--data', data, '--model', model, '--work', work);
    assert.equal(bad.code, 4, bad.err);
    assert.match(bad.err, /gall_bladder/);
    assert.match(bad.err, /rename/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('atlas predict with compress false (a job\'s scratch): plain .nii soft predictions holding the .nii.gz bytes; pseudo-labels, attention and merged labels byte-identical', async () => {
  const { pointwiseModel } = await import('../helpers/onnx-seg.js');
  const { atlasPredict } = await import('../../src/pipeline/atlas.js');
  const { gunzipSync } = await import('node:zlib');
  const root = mkdtempSync(join(tmpdir(), 'medmask-atlas-'));
  try {
    const data = join(root, 'data');
    await writeAbdomenDataset(data, { n: 2, seed: 9, size: 32, sources: ['lits', 'kits'] });
    // Two models that disagree (different weights), so the attention maps are not empty.
    const models = [[-4, 6, 3, 1.5, -2, -0.5], [-3, 5, 4, 1, -1.5, -1]].map((wb, i) => {
      const dir = join(root, `pw${i}`);
      mkdirSync(dir);
      writeFileSync(join(dir, 'model.onnx'), pointwiseModel(wb.slice(0, 3), wb.slice(3)));
      writeFileSync(join(dir, 'model.json'), JSON.stringify({
        format: 'medmask-model/1', name: `pw${i}`, task: 'segment', model: 'model.onnx',
        input: { name: 'input', layout: 'NCDHW', patch: [16, 16, 8], channels: 1 },
        preprocess: { intensity: { mode: 'ct-window', center: 40, width: 400 } },
        output: { name: 'logits', activation: 'softmax' }, labels: { 1: 'liver', 2: 'spleen' },
      }));
      return dir;
    });
    const runs = [true, false].map(async (compress) => {
      const work = join(root, `work-${compress}`);
      await atlasPredict(data, models, work, { compress, skipEmpty: false });
      const summaries = await atlasAttention(data, work);
      await atlasMerge(data, work, join(work, 'out'));
      return { work, summaries };
    });
    const [gz, raw] = [await runs[0]!, await runs[1]!];
    assert.deepEqual(raw.summaries, gz.summaries);
    assert.ok(gz.summaries.some((s) => s.organs.some((o) => o.voxels > 0)), 'the models should disagree somewhere');
    const atlas = await readAtlasDataset(data);
    for (const c of atlas.cases) {
      for (const m of ['pw0', 'pw1']) {
        const files = readdirSync(join(raw.work, 'predictions', m, c.id)).sort();
        assert.deepEqual(files, ['liver.nii', 'spleen.nii']);
        for (const organ of ['liver', 'spleen']) {
          // The plain file is exactly what zlib inflates the compressed one to.
          assert.ok(readFileSync(join(raw.work, 'predictions', m, c.id, `${organ}.nii`)).equals(gunzipSync(readFileSync(join(gz.work, 'predictions', m, c.id, `${organ}.nii.gz`)))), `${m} ${c.id} ${organ}`);
        }
      }
      const same = (rel: string) => assert.ok(readFileSync(join(raw.work, rel)).equals(readFileSync(join(gz.work, rel))), rel);
      same(join('pseudo', `${c.id}.nii.gz`));
      same(join('out', 'labelsTr', `${c.id}.nii.gz`));
      for (const organ of ['liver', 'spleen']) same(join('attention', c.id, `${organ}.nii.gz`));
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
