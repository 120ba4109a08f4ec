/**
 * The campaign over several seeds (atlas-campaign-seeds.ts) on small realistic phantoms with the
 * simulated models, with attention's shape priors on: the series' bands and gains are recomputed
 * here from each run's own cases, the per-source random gain from its closed form, the shape-prior
 * counts from the pseudo-labels on disk; ranked review is at least as good as random on this seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMedmaskError } from '../../src/core/errors.js';
import { shapePriorFlags } from '../../src/core/atlas/shape-priors.js';
import { meanCi95 } from '../../src/core/metrics/interval.js';
import { readVolume } from '../../src/io/index.js';
import { runCampaignSeries } from '../../src/pipeline/atlas-campaign-seeds.js';
import type { CaseAttention } from '../../src/pipeline/atlas.js';

test('campaign over seeds: bands and gains from the runs, per-source random gain in closed form, ranked ≥ random', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'medmask-campaign-seeds-'));
  try {
    const s = await runCampaignSeries(dir, { seeds: [3, 4], n: 8, size: 40, randomDraws: 40, fractions: [0, 0.25, 1], shapePriors: true });
    assert.equal(s.runs.length, 2);
    for (const f of [0, 0.25, 1]) {
      const p = s.curve.find((x) => x.fraction === f)!;
      const pts = s.runs.map((r) => r.report.curve!.find((x) => x.fraction === f)!);
      const none = s.runs.map((r) => r.report.curve!.find((x) => x.fraction === 0)!.ranked);
      const ci = meanCi95(pts.map((x) => x.ranked));
      assert.ok(Math.abs(p.ranked.mean - ci.mean) < 1e-12 && Math.abs(p.ranked.high - ci.high) < 1e-12);
      const rg = pts.map((x, i) => x.ranked - none[i]!), xg = pts.map((x, i) => x.random - none[i]!);
      const mean = (a: number[]) => a.reduce((u, v) => u + v, 0) / a.length;
      if (f > 0) assert.ok(Math.abs(p.gainRatio - mean(rg) / mean(xg)) < 1e-9);
      if (f === 0) assert.ok(Math.abs(p.rankedGain.mean) < 1e-12 && Math.abs(p.randomGain.mean) < 1e-12);
    }
    const at = s.curve.find((x) => x.fraction === 0.25)!;
    const sum = (f: (g: (typeof s.bySource)[number]) => number) => s.bySource.reduce((t, g) => t + f(g), 0);
    assert.ok(sum((g) => g.rankedGain.mean) > sum((g) => g.randomGain.mean), 'over the sources, ranked review gains more than random');
    assert.ok(at.ranked.mean >= at.random.mean - 1e-12, `ranked ${at.ranked.mean} vs random ${at.random.mean}`);
    for (const g of s.bySource) {
      // Random gain per source: k of n cases at random gains k/n of reviewing them all (exact).
      const per = s.runs.map((r) => {
        const cs = r.cases.filter((c) => c.source === g.source);
        const all = cs.reduce((t, c) => t + c.diceAfter - c.diceBefore, 0) / cs.length;
        return (cs.filter((c) => c.selected).length / cs.length) * all;
      });
      assert.ok(Math.abs(g.randomGain.mean - per.reduce((a, b) => a + b, 0) / per.length) < 1e-12, g.source);
    }
    const c = s.attention.counts;
    assert.equal(c.errorVoxels, s.runs.reduce((t, r) => t + r.attention.counts.errorVoxels, 0));
    // Shape-prior voxels recorded per organ equal the priors recomputed from the pseudo-label file.
    const run = s.runs[0]!;
    const summary = JSON.parse(readFileSync(join(run.work, 'attention', 'case_0000.json'), 'utf8')) as CaseAttention;
    const pseudo = await readVolume(join(run.work, 'pseudo', 'case_0000.nii.gz'));
    const values: Record<string, number> = { spleen: 1, kidney_right: 2, kidney_left: 3, gallbladder: 4, liver: 5, stomach: 6, aorta: 7, postcava: 8, pancreas: 9 };
    for (const o of summary.organs) assert.equal(o.shapePrior, shapePriorFlags(pseudo.data, values[o.organ]!, pseudo.shape as [number, number, number]).voxels, o.organ);
    assert.ok(existsSync(s.files.html) && readFileSync(s.files.html, 'utf8').includes('<polygon'), 'bands drawn');
    const json = JSON.parse(readFileSync(s.files.json, 'utf8')) as { seeds: number[] };
    assert.deepEqual(json.seeds, [3, 4]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  await assert.rejects(runCampaignSeries(join(tmpdir(), 'never'), { seeds: [1] }), (e: unknown) => isMedmaskError(e) && e.code === 'USAGE' && /seeds 1/.test(e.message));
});
