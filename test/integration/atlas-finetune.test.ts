/**
 * `medmask atlas finetune-hook`: the merged labels in the layout tools/train/train3d.py reads
 * (imagesTr/<case>_0000, truthTr/<case> = merged labels, dataset.json with medmask.cases), a
 * seeded held-out split, the manifest of the model to come, and the trainer command with the
 * model card's recipe. Where Debian's python3-torch is installed, the printed command is run for
 * 4 steps and the model it writes is used by `atlas predict` through the hook's manifest; and
 * `revisedShare` of the warm-started fine-tune: all 8 patches of 4 steps from the revised case at
 * 1, fewer when cases are drawn uniformly, and a share of 0 trains exactly as no share (the same
 * patches, the same held-out Dice and ONNX weights: `atlas run --rounds --revised-share 0` is the
 * uniform draw); a share outside 0…1 refused before any trainer runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createVolume } from '../../src/core/volume.js';
import { organLabel } from '../../src/core/phantom/abdomen.js';
import { readVolume, writeVolume } from '../../src/io/index.js';
import { atlasFinetuneHook } from '../../src/pipeline/atlas-finetune.js';
import { finetuneSegmenter } from '../../src/pipeline/atlas-train.js';
import { writeAbdomenDataset } from '../../src/pipeline/phantoms.js';
import { cli, ROOT } from '../helpers/cli.js';

const UNET = join(ROOT, 'models', 'demo', 'demo-unet3d');
const hasModel = existsSync(join(UNET, 'model.json')) && existsSync(join(UNET, 'card.json'));
const hasTorch = existsSync('/usr/bin/python3') && spawnSync('/usr/bin/python3', ['-c', 'import torch, nibabel'], { encoding: 'utf8' }).status === 0;

interface Hook { train: string; heldout: string; modelDir: string; cases: { train: string[]; heldout: string[] }; family: string; argv: string[]; command: string; next: string; notes: string[] }

test('atlas finetune-hook: merged labels in the trainer\'s layout, held-out split, manifest and the exact trainer command', async () => {
  assert.ok(hasModel, `the committed model ${UNET} (model.json, card.json) is missing`);
  const root = mkdtempSync(join(tmpdir(), 'medmask-atlas-ft-'));
  try {
    const data = join(root, 'data'), work = join(root, 'work'), merged = join(root, 'merged'), out = join(root, 'ft');
    await writeAbdomenDataset(data, { n: 5, seed: 6, size: 32, sources: ['flare', 'lits', 'kits', 'msd_pancreas'] });
    const ids = ['case_0000', 'case_0001', 'case_0002', 'case_0003', 'case_0004'];
    // Pseudo-labels = the truth with the stomach dropped; case_0002's stomach revised by an expert.
    mkdirSync(join(work, 'pseudo'), { recursive: true });
    mkdirSync(join(work, 'revised'));
    const stomach = organLabel('stomach');
    for (const id of ids) {
      const t = await readVolume(join(data, 'truthTr', `${id}.nii.gz`));
      const g = { spacing: t.spacing, origin: t.origin, direction: t.direction };
      await writeVolume(createVolume(t.shape, 'uint8', { ...g, data: Uint8Array.from(t.data, (l) => (l === stomach ? 0 : l)) }), join(work, 'pseudo', `${id}.nii.gz`), { labelMap: true });
      if (id === 'case_0002') await writeVolume(createVolume(t.shape, 'uint8', { ...g, data: Uint8Array.from(t.data, (l) => (l === stomach ? l : 0)) }), join(work, 'revised', `${id}.nii.gz`), { labelMap: true });
    }
    writeFileSync(join(work, 'revised', 'revised.json'), JSON.stringify({ case_0002: ['stomach'] }));
    assert.equal(cli('atlas', 'merge', '--data', data, '--work', work, '--out', merged, '--revised', join(work, 'revised')).code, 0);

    const r = cli('atlas', 'finetune-hook', '--data', data, '--merged', merged, '--out', out, '--model', UNET, '--steps', '4', '--json');
    assert.equal(r.code, 0, r.err);
    const h = JSON.parse(r.out) as Hook;
    assert.equal(h.cases.heldout.length, 1, 'round(0.2 × 5) held out');
    assert.deepEqual([...h.cases.train, ...h.cases.heldout].sort(), ids);
    // The revised case always trains: with split seed 4 the seeded order starts with case_0002
    // (the revised one), and the held-out case is the first unrevised one after it.
    const s4 = await atlasFinetuneHook(data, merged, join(root, 'ft-seed4'), { model: UNET, seed: 4 });
    assert.equal(s4.cases.heldout.length, 1);
    assert.ok(!s4.cases.heldout.includes('case_0002') && s4.cases.train.includes('case_0002'), JSON.stringify(s4.cases));
    for (const [dir, cases] of [[h.train, h.cases.train], [h.heldout, h.cases.heldout]] as const) {
      const json = JSON.parse(readFileSync(join(dir, 'dataset.json'), 'utf8')) as { medmask: { cases: { case: string }[] }; labels: Record<string, number> };
      assert.deepEqual(json.medmask.cases.map((c) => c.case), cases);
      assert.equal(json.labels.stomach, stomach);
      for (const id of cases) {
        assert.deepEqual(readFileSync(join(dir, 'imagesTr', `${id}_0000.nii.gz`)), readFileSync(join(data, 'imagesTr', `${id}_0000.nii.gz`)), `${id}: image copied as is`);
        const truth = await readVolume(join(dir, 'truthTr', `${id}.nii.gz`));
        assert.deepEqual(truth.data, (await readVolume(join(merged, 'labelsTr', `${id}.nii.gz`))).data, `${id}: truthTr = merged labels`);
      }
    }
    // The manifest of the model to come: the demo model's, renamed.
    const src = JSON.parse(readFileSync(join(UNET, 'model.json'), 'utf8')) as Record<string, unknown>;
    const made = JSON.parse(readFileSync(join(h.modelDir, 'model.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(made.name, `${String(src.name)}-ft`);
    assert.deepEqual({ ...made, name: src.name }, src);
    // The command carries the card's recipe.
    const card = JSON.parse(readFileSync(join(UNET, 'card.json'), 'utf8')) as { architecture: { family: string; options: Record<string, unknown> }; training: { seed: number; augmentation: string } };
    assert.equal(h.family, card.architecture.family);
    const py = h.argv[2]!;
    assert.match(py, new RegExp(`train_segmenter\\("${card.architecture.family}"`));
    assert.match(py, new RegExp(`seed=${card.training.seed}, steps=4, aug="${card.training.augmentation}"`));
    assert.ok(py.includes(JSON.stringify(JSON.stringify(card.architecture.options))), 'the card\'s network options');
    assert.match(h.next, /medmask atlas run --data .* --model .*demo-unet3d-ft/);

    if (hasTorch) {
      // The printed command, run as printed (from the repository root, where its paths are relative to).
      const t = spawnSync(h.argv[0]!, h.argv.slice(1), { encoding: 'utf8', cwd: ROOT });
      assert.equal(t.status, 0, t.stderr.slice(-2000));
      assert.ok(existsSync(join(h.modelDir, 'model.onnx')));
      const p = cli('atlas', 'predict', '--data', data, '--model', h.modelDir, '--work', join(root, 'work2'), '--cases', 'case_0000', '--json');
      assert.equal(p.code, 0, p.err);
      assert.equal((JSON.parse(p.out) as { models: { name: string }[] }).models[0]!.name, 'demo-unet3d-ft');
      // revisedShare: with 1 every training patch comes from the revised case (4 steps × batch 2 =
      // 8 patches); drawn uniformly over the 4 training cases, fewer (seeded: the same every run).
      const patches = async (name: string, revisedShare?: number) => {
        const r = await finetuneSegmenter(UNET, h.train, h.heldout, join(root, name), { steps: 4, threads: 1, ...(revisedShare !== undefined ? { revisedShare } : {}) });
        const c = JSON.parse(readFileSync(join(r.modelDir, 'card.json'), 'utf8')) as { training: { patches_seen: number; patches_revised: number; revised_cases: string[]; revised_share: number | null }; metrics: { heldout: { mean_dice: number } } };
        assert.deepEqual(c.training.revised_cases, ['case_0002']);
        assert.equal(c.training.patches_seen, 8);
        return { ...c.training, heldout: c.metrics.heldout.mean_dice, onnx: readFileSync(join(r.modelDir, 'model.onnx')) };
      };
      const all = await patches('share1', 1);
      assert.equal(all.revised_share, 1);
      assert.equal(all.patches_revised, 8);
      const uniform = await patches('share-none');
      assert.equal(uniform.revised_share, null);
      assert.ok(uniform.patches_revised < 8, `uniform draw: ${uniform.patches_revised} of 8 patches from the revised case`);
      const zero = await patches('share0', 0);
      assert.equal(zero.revised_share, 0);
      assert.equal(zero.patches_revised, uniform.patches_revised, 'share 0: the uniform draw');
      assert.equal(zero.heldout, uniform.heldout, 'share 0 trains as no share');
      assert.ok(zero.onnx.equals(uniform.onnx), 'share 0: the same exported weights as no share');
    }
    await assert.rejects(finetuneSegmenter(UNET, h.train, h.heldout, join(root, 'bad'), { steps: 4, revisedShare: 1.5 }), /revised share 1\.5 must be from 0 to 1/);

    // Only the revised cases: one case, held out and trained on alike (said so).
    const only = cli('atlas', 'finetune-hook', '--data', data, '--merged', merged, '--out', join(root, 'ft2'), '--only-revised', '--family', 'resunet', '--json');
    assert.equal(only.code, 0, only.err);
    const o = JSON.parse(only.out) as Hook;
    assert.deepEqual(o.cases.train, ['case_0002']);
    assert.ok(o.notes.some((n) => /only one case/.test(n)));
    assert.equal(o.argv[1], 'tools/train/train3d.py', 'relative to the working folder (the CLI ran in the repository root)');
    assert.deepEqual(o.argv.slice(2, 4), ['--family', 'resunet']);

    // Bad input.
    const few = cli('atlas', 'finetune-hook', '--data', data, '--merged', merged, '--out', join(root, 'ft3'), '--steps', '2');
    assert.equal(few.code, 2);
    assert.match(few.err, /at least 4/);
    const dsPath = join(data, 'dataset.json');
    const ds = JSON.parse(readFileSync(dsPath, 'utf8')) as { labels: Record<string, number> };
    writeFileSync(dsPath, JSON.stringify({ ...ds, labels: { ...ds.labels, spleen: 2, kidney_right: 1 } }));
    const other = cli('atlas', 'finetune-hook', '--data', data, '--merged', merged, '--out', join(root, 'ft3'));
    assert.equal(other.code, 3);
    assert.match(other.err, /train3d\.py trains the 9 AbdomenAtlas organs as 1=spleen 2=kidney_right/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
