/**
 * The campaign accept rule's greedy selection (src/pipeline/atlas-loop-accept.ts greedySelect)
 * against an exhaustive search over every subset of children, on seeded random score tables: a
 * kept set always scores at least the current models; when the score of a set is additive in its
 * members (each child changes the pseudo-labels by its own amount) the greedy set is the best
 * subset; children that fall alone are never tried in a set.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { greedySelect } from '../../src/pipeline/atlas-loop-accept.js';
import { Rng } from '../../src/core/random.js';

/** Subsets of 0..n-1. */
const subsets = (n: number) => Array.from({ length: 2 ** n }, (_, m) => [...Array(n).keys()].filter((i) => m & (1 << i)));

test('greedySelect: with additive effects it finds the best subset; never keeps a set worse than the current models', async () => {
  const rng = new Rng(7);
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + (trial % 4);
    const current = 0.7 + 0.1 * rng.random();
    const effect = Array.from({ length: n }, () => 0.02 * (rng.random() - 0.5));
    const additive = trial % 2 === 0;
    // Non-additive tables: a random score per set (members interact).
    const table = new Map(subsets(n).map((s) => [s.join(','), s.length ? current + (additive ? s.reduce((a, i) => a + effect[i]!, 0) : 0.02 * (rng.random() - 0.5)) : current]));
    const score = (s: number[]) => table.get([...s].sort((a, b) => a - b).join(','))!;
    const asked: number[][] = [];
    const g = await greedySelect(current, [...Array(n).keys()].map((index) => ({ index, alone: score([index]) })), async (s) => {
      asked.push(s);
      return score(s);
    });
    assert.ok(g.score >= current, `trial ${trial}: kept ${g.kept} scores ${g.score} < current ${current}`);
    assert.ok(Math.abs(g.score - score(g.kept)) < 1e-12, `trial ${trial}: the reported score is the kept set's`);
    for (const s of asked) for (const i of s) assert.ok(score([i]) >= current, `trial ${trial}: child ${i} fell alone and was tried in ${s}`);
    assert.ok(asked.length <= Math.max(0, n - 1), `trial ${trial}: ${asked.length} extra scorings for ${n} children`);
    if (additive) {
      const best = Math.max(...subsets(n).map(score));
      assert.ok(Math.abs(g.score - best) < 1e-12, `trial ${trial}: greedy ${g.score} (${g.kept}) vs best subset ${best}`);
      assert.deepEqual([...g.kept].sort(), [...Array(n).keys()].filter((i) => effect[i]! >= 0).sort(), `trial ${trial}: exactly the children that do not lower the score`);
    }
  }
});

test('greedySelect: no child kept when every child falls alone', async () => {
  const g = await greedySelect(0.8, [{ index: 0, alone: 0.79 }, { index: 1, alone: 0.7999 }], async () => assert.fail('no set may be scored'));
  assert.deepEqual(g, { kept: [], score: 0.8, tried: [] });
});
