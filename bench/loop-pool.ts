/**
 * Pools the 3D loop benchmark's runs over several phantom seeds (issue 16): the per-case paired
 * changes of the pseudo-label Dice on the never-reviewed evaluation cases (round 3 − round 1) of
 * every run, their pooled mean with its 95 % Student-t interval over all cases, and each seed's own
 * figures beside it.
 *
 * Inputs: the `loop_runs` entries of `bench/out/loop.json` (written by `bench/loop.bench.ts`, one
 * per seed) — or of the files named on the command line —, and, as `LABEL=PATH`, an
 * `atlas run --rounds` OUT/loop.json (its rounds' `evalPerCase`, e.g. an earlier run of the same
 * recipe saved aside; LABEL names its seed). Only full runs (the three demo models) are pooled
 * unless `--quick` is given; `--seeds 127,131,137` keeps only those seeds' entries; `--model-rule`
 * takes the runs of the trainer's accept rule alone (`<seed>-model`, MEDMASK_LOOP_ACCEPT=model)
 * instead of the campaign rule's (the default since the seventh pass). Runs whose
 * fine-tune recipe or accept set (the held-out count `heldout_cases`: 6 in the runs before the
 * sixth pass, recorded in their recipe, 12 since) differs from the first one's are refused, since
 * a pooled figure over two recipes or two accept rules means nothing.
 *
 * The cases of one seed share one training run, so the pooled interval treats them as independent
 * draws the way each seed's own interval does; the per-seed means (one value per seed) are printed
 * too, with the interval over seeds when there are at least two.
 *
 * `--phantoms N` picks the runs of one set size (126, the default since the eighth pass; 51 or 45 for
 * the earlier runs, whose keys carry no `-n<phantoms>`).
 *
 * Run: `node --import tsx bench/loop-pool.ts [FILE | LABEL=PATH …] [--quick] [--model-rule] [--seeds A,B,…] [--phantoms N] [--json OUT]`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MedmaskError } from '../src/core/errors.js';
import { meanCi95 } from '../src/core/metrics/interval.js';

/** One run's paired changes and the figures printed beside them. */
interface Run {
  label: string;
  models: string[];
  recipe?: Record<string, unknown>;
  /** Held-out cases of the accept rule (undefined for an `atlas run --rounds` loop.json without it). */
  heldout?: number;
  roundsDice: number[];
  trainMinutes: number[];
  decisions: string[];
  deltas: number[];
}

const ROOT = new URL('..', import.meta.url).pathname;
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const modelRule = argv.includes('--model-rule');
const jsonAt = argv.indexOf('--json');
const jsonOut = jsonAt >= 0 ? argv[jsonAt + 1] : undefined;
const seedsAt = argv.indexOf('--seeds');
const seeds = seedsAt >= 0 ? (argv[seedsAt + 1] ?? '').split(',').filter(Boolean) : undefined;
if (seeds && (!seeds.length || seeds.some((x) => !/^\d+$/.test(x)))) throw new MedmaskError('USAGE', `--seeds ${JSON.stringify(argv[seedsAt + 1] ?? '')} is not a comma-separated list of phantom seeds`, { hint: 'e.g. --seeds 127,131,137' });
const phantomsAt = argv.indexOf('--phantoms');
// The benchmark's sets (bench/loop.bench.ts PHANTOMS): 126 since the eighth pass, 51 before (45 before the sixth pass's second round).
const phantoms = phantomsAt >= 0 ? Number(argv[phantomsAt + 1]) : 126;
if (!Number.isInteger(phantoms) || phantoms < 1) throw new MedmaskError('USAGE', `--phantoms ${JSON.stringify(argv[phantomsAt + 1] ?? '')} is not a whole number`, { hint: 'the phantom count of the runs to pool: 126 (the default, since the eighth pass), 51 or 45' });
const inputs = argv.filter((a, i) => !a.startsWith('--') && ![jsonAt, seedsAt, phantomsAt].some((at) => at >= 0 && i === at + 1));
if (!inputs.length) inputs.push(join(ROOT, 'bench/out/loop.json'));

const round4 = (x: number) => Number(x.toFixed(4));
const runs: Run[] = [];
for (const input of inputs) {
  const eq = input.indexOf('=');
  const [label, path] = eq > 0 ? [input.slice(0, eq), input.slice(eq + 1)] : [undefined, input];
  const doc = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  if (label !== undefined) {
    // An `atlas run --rounds` OUT/loop.json: per-round evalPerCase over the evaluation cases.
    const rounds = doc.rounds as { evalDice: number; evalPerCase: number[]; trainMinutes: number; finetune: { model: string; decision: string; heldout: number; parentHeldout: number }[] }[] | undefined;
    if (!rounds?.length || !rounds[0]!.evalPerCase?.length) throw new MedmaskError('USAGE', `${path}: no rounds with evalPerCase (an atlas run --rounds loop.json with truth was expected)`);
    const first = rounds[0]!.evalPerCase, last = rounds[rounds.length - 1]!.evalPerCase;
    if (seeds && !seeds.includes(label)) continue;
    const held = (doc.evaluation as { heldout?: string[] } | undefined)?.heldout;
    runs.push({
      label,
      ...(held ? { heldout: held.length } : {}),
      models: (doc.models as string[]).map((m) => m.split('/').pop()!.replace(/-ft$/, '')),
      roundsDice: rounds.map((r) => round4(r.evalDice)),
      trainMinutes: rounds.map((r) => Number(r.trainMinutes.toFixed(2))),
      decisions: rounds.map((r) => r.finetune.map((f) => `${f.model.replace(/-ft$/, '')} ${f.decision[0]} ${f.heldout.toFixed(3)}/${f.parentHeldout.toFixed(3)}`).join(', ')),
      deltas: last.map((x, i) => x - first[i]!),
    });
    continue;
  }
  const entries = doc.loop_runs as Record<string, { models: string[]; recipe: Record<string, unknown>; heldout_cases?: number; phantoms?: number; rounds_dice: number[]; round_train_minutes: number[]; rounds_finetune_heldout: Record<string, { decision: string; child: number; parent: number }>[]; delta_31_per_case: Record<string, number> }> | undefined;
  if (!entries) throw new MedmaskError('USAGE', `${path}: no loop_runs (run MEDMASK_LOOP_SEED=N npm run bench -- loop.bench first)`);
  for (const [key, e] of Object.entries(entries)) {
    // Keys: <seed>[-n<phantoms>][-model][-quick] (-n126 since the eighth pass, none before; -model: a run of the trainer's accept rule alone, MEDMASK_LOOP_ACCEPT=model, picked with --model-rule).
    const k = /^(\d+)(?:-n(\d+))?(-model)?(-quick)?$/.exec(key);
    if (!k || Boolean(k[4]) !== quick || Boolean(k[3]) !== modelRule) continue;
    if (seeds && !seeds.includes(k[1]!)) continue;
    // Runs before the sixth pass kept the sets' sizes in the recipe (heldout_cases 6, phantoms 45).
    const { heldout_cases: oldHeld, phantoms: oldPhantoms, ...recipe } = e.recipe;
    if ((k[2] !== undefined ? Number(k[2]) : (e.phantoms ?? (oldPhantoms as number | undefined))) !== phantoms) continue;
    runs.push({
      label: key,
      models: e.models,
      recipe,
      heldout: e.heldout_cases ?? (oldHeld as number),
      roundsDice: e.rounds_dice,
      trainMinutes: e.round_train_minutes,
      decisions: e.rounds_finetune_heldout.map((r) => Object.entries(r).map(([m, f]) => `${m.replace(/-ft$/, '')} ${f.decision[0]} ${f.child.toFixed(3)}/${f.parent.toFixed(3)}`).join(', ')),
      deltas: Object.values(e.delta_31_per_case),
    });
  }
}
if (!runs.length) throw new MedmaskError('USAGE', `no ${quick ? 'quick' : 'full'} runs${seeds ? ` of seeds ${seeds.join(', ')}` : ''} with ${phantoms} phantoms in ${inputs.join(', ')}`, { hint: 'runs of the earlier sets: --phantoms 51 (or 45)' });
const missing = seeds?.filter((x) => !runs.some((r) => /^\d+/.exec(r.label)![0] === x));
if (missing?.length) throw new MedmaskError('USAGE', `no ${quick ? 'quick' : 'full'} run of seed ${missing.join(', ')} with ${phantoms} phantoms in ${inputs.join(', ')}`, { hint: `run MEDMASK_LOOP_SEED=${missing[0]} npm run bench -- loop.bench first` });
const seen = new Set<string>();
for (const r of runs) {
  // The same seed twice (a loop.json entry and a saved run of that seed) would count its cases twice.
  if (seen.has(r.label)) throw new MedmaskError('USAGE', `run ${r.label} is given twice`, { hint: 'pass each seed once (a loop.json keeps one entry per seed)' });
  seen.add(r.label);
}
const withHeld = runs.filter((r) => r.heldout !== undefined);
for (const r of withHeld) {
  if (r.heldout !== withHeld[0]!.heldout) throw new MedmaskError('USAGE', `run ${r.label}'s accept rule judged each child on ${r.heldout} held-out cases, run ${withHeld[0]!.label}'s on ${withHeld[0]!.heldout}: pool runs of one accept set at a time`, { hint: 'pick the runs with --seeds' });
}
const withRecipe = runs.filter((r) => r.recipe);
for (const r of withRecipe) {
  if (JSON.stringify(r.recipe) !== JSON.stringify(withRecipe[0]!.recipe)) throw new MedmaskError('USAGE', `run ${r.label}'s recipe ${JSON.stringify(r.recipe)} differs from run ${withRecipe[0]!.label}'s ${JSON.stringify(withRecipe[0]!.recipe)}: pool one recipe at a time`);
}
for (const r of runs) {
  if (r.models.join() !== runs[0]!.models.join()) throw new MedmaskError('USAGE', `run ${r.label} used ${r.models.join(', ')}, run ${runs[0]!.label} ${runs[0]!.models.join(', ')}: pool runs of the same models`);
}

const ci = (xs: number[]) => {
  const c = meanCi95(xs);
  return { mean: round4(c.mean), low: round4(c.low), high: round4(c.high), n: c.n };
};
const sign = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(4)}`;
const show = (c: { mean: number; low: number; high: number; n: number }) => `${sign(c.mean)} (95 % ${sign(c.low)} … ${sign(c.high)}, n ${c.n})`;
const perSeed = runs.map((r) => ({ label: r.label, heldout_cases: r.heldout, rounds_dice: r.roundsDice, delta_31: ci(r.deltas), round_train_minutes: r.trainMinutes, finetune: r.decisions }));
for (const s of perSeed) {
  console.log(`${s.label}: Dice ${s.rounds_dice.join(' → ')}; round 3 − round 1 ${show(s.delta_31)}; training min ${s.round_train_minutes.join(' / ')}`);
  s.finetune.forEach((d, i) => console.log(`  round ${i + 1}: ${d}`));
}
const pooled = ci(runs.flatMap((r) => r.deltas));
const overSeeds = runs.length > 1 ? ci(perSeed.map((s) => s.delta_31.mean)) : undefined;
console.log(`pooled over ${runs.length} run(s) (${runs.map((r) => r.label).join(', ')}), ${runs[0]!.models.join(', ')}${withHeld.length ? `, ${withHeld[0]!.heldout} held-out cases` : ''}: round 3 − round 1 ${show(pooled)}`);
if (overSeeds) console.log(`over the ${runs.length} seed means: ${show(overSeeds)}`);
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ runs: perSeed, heldout_cases: withHeld[0]?.heldout, pooled_delta_31: pooled, seed_means_delta_31: overSeeds, models: runs[0]!.models }, null, 1) + '\n');
