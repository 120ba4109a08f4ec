#!/usr/bin/python3
"""Rebuild medmask's demo zoo (models/demo/) from nothing, on CPU, seeded.

  /usr/bin/python3 tools/train/build_zoo.py [--work .tmp/zoo] [--out models/demo] [--only NAME ...] [--quick] [--steps-factor F] [--readme-only]

1. Writes phantom sets with the medmask CLI (`medmask phantoms 2d|3d`): a training set and a
   held-out set with a different seed, for each of 2D and 3D (cached in --work by arguments).
2. Trains the three 2D classifiers and the three 3D segmenters (train2d.py, train3d.py).
3. Exports ONNX (opset 17, input "input", output "logits", dynamic batch), writes model.json.
4. Checks every export in medmask itself (tools/train/check-export.ts: onnxruntime-node output vs
   torch's on the same input; classifiers loaded through the runtime's ClassifierSession, which
   finds the CAM target and reads the head; `medmask model inspect` for the classifiers' target).
5. Writes card.md + card.json per model and models/demo/README.md.
`--quick` trains for a fraction of the time (a smoke test of the pipeline, not the zoo).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cam_eval import cam_quality  # noqa: E402
from cards import add_cam_metrics, classifier_manifest, segmenter_manifest, write_classifier_card, write_segmenter_card  # noqa: E402
from common import ROOT, log, make_phantoms, rel, run_medmask, write_json  # noqa: E402
from failure_check import mean_dice  # noqa: E402
from train2d import train_classifier  # noqa: E402
from train3d import ORGANS, train_segmenter  # noqa: E402

# Phantom sets: (n, seed). Held-out seeds differ from the training seeds.
DATA_2D = {'train': (1200, 1001), 'heldout': (400, 2002)}
DATA_3D = {'train': (36, 3003), 'heldout': (14, 4004)}
SIZE_3D = 96
# Realistic phantoms (scanner profiles and findings per source, docs/phantoms.md). Like the
# paper's models (trained on public sets, then met others), each segmenter trains on three of four
# "seen" sources; flare, lits and msd_pancreas are held out from all three. The held-out set has two
# cases of every source, so the cards give Dice per source, seen and unseen.
SEEN_3D = ['btcv', 'amos', 'kits', 'msd_spleen']
HELDOUT_SOURCES_3D = ['btcv', 'amos', 'flare', 'lits', 'kits', 'msd_spleen', 'msd_pancreas']

# Lesion presence (healthy / abnormal): the lesion class (nodule vs consolidation) did not reach
# 0.9 in CPU minutes (ResNet, 24 epochs: nodule/consolidation near chance, healthy and cavity
# perfect); see README.md.
TASK_2D = 'presence'
CLASSIFIERS = [
    {'name': 'demo-resnet', 'family': 'resnet', 'epochs': 10, 'seed': 11, 'lr': 3e-3},
    # cam_target pins the manifest's cam.target. The DenseNet keeps norm5's output before the ReLU
    # of forward(): on this model it localises better than the runtime's default (the ReLU output
    # that feeds the pooling): pointing game 0.15 vs 0.00, demo mean lesion Dice 0.83 vs 0.81.
    {'name': 'demo-densenet', 'family': 'densenet', 'epochs': 10, 'seed': 12, 'lr': 3e-3,
     'cam_target': '/features/norm5/BatchNormalization_output_0'},
    {'name': 'demo-efficientnet', 'family': 'efficientnet', 'epochs': 12, 'seed': 13, 'lr': 5e-3},
]
SEGMENTERS = [
    # Steps: from random weights on the fourth pass's realistic phantoms, 350 / 420 / 294 (0.7 of
    # the then 500 / 600 / 420) proved too few (U-Net held-out 0.456; tools/train/README.md). The
    # committed models are fine-tunes of the clean-phantom zoo: --init-dir OLD_ZOO
    # --steps-factor 0.34 (119 / 143 / 100 steps).
    {'name': 'demo-unet3d', 'family': 'unet', 'steps': 350, 'aug': 'none', 'seed': 21, 'model_kw': {'widths': [8, 16, 32, 48]},
     'sources': ['btcv', 'amos', 'kits'],
     'imperfection': 'no augmentation and the fewest steps of the three (see Training): the least converged, and the most thrown by appearances it never saw (no intensity augmentation).'},
    {'name': 'demo-resunet3d', 'family': 'resunet', 'steps': 420, 'aug': 'intensity', 'seed': 22, 'model_kw': {'widths': [8, 16, 32, 48]},
     'sources': ['amos', 'kits', 'msd_spleen'],
     'imperfection': 'intensity augmentation (contrast, brightness, gamma, noise), no spatial augmentation.'},
    {'name': 'demo-segresnet3d', 'family': 'segresnet', 'steps': 294, 'aug': 'spatial', 'seed': 23, 'model_kw': {'init': 8},
     'sources': ['btcv', 'kits', 'msd_spleen'],
     'imperfection': 'random +-10 % zooms and intensity augmentation, light decoder (one block per level): smoother, less exact borders.'},
]


def phantom_data(kind, spec, work, extra=(), per_split=None):
    """per_split: extra arguments of one split only (e.g. its --sources)."""
    out = {}
    for k, (n, seed) in spec.items():
        d = os.path.join(work, f'phantoms-{kind}-{k}')
        t = time.time()
        extra_k = list(extra) + list((per_split or {}).get(k, []))
        make_phantoms(kind, n, seed, d, extra_k)
        log(f'phantoms {kind} {k}: {n} at seed {seed} in {rel(d)} ({time.time() - t:.0f} s)')
        cmd = f'medmask phantoms {kind} --n {n} --seed {seed}' + ''.join(f' {e}' for e in extra_k) + ' --out DIR'
        note = 'split "train" for training, "val" for picking the epoch' if (kind == '2d' and k == 'train') else \
            ('all images' if kind == '2d' else 'full truth (truthTr)')
        out[k] = {'dir': d, 'n': n, 'seed': seed, 'command': cmd, 'note': note}
    return out


def dice_by_source(pred_npz, heldout_dir, seen):
    """Mean organ Dice per source of the held-out set (organs present in the truth or the prediction;
    an organ absent from both, such as a missing kidney correctly left out, is not counted)."""
    import nibabel as nib
    from train3d import to_lps
    with open(os.path.join(heldout_dir, 'dataset.json')) as f:
        cases = json.load(f)['medmask']['cases']
    z = np.load(pred_npz)
    per = {}
    for c in cases:
        lab, _ = to_lps(nib.load(os.path.join(heldout_dir, 'truthTr', f'{c["case"]}.nii.gz')))
        truth = np.asarray(lab, np.uint8).transpose(2, 1, 0)
        per.setdefault(c['source'], []).append(mean_dice(z[c['case']], truth))
    return {s: {'mean_dice': round(float(np.mean(v)), 4), 'n': len(v), 'seen_in_training': s in seen} for s, v in sorted(per.items())}


def seen_vs_unseen(by_source):
    """Held-out Dice over the sources a model trained on and over those it never saw, each the mean
    over their cases (so the per-source table's two halves in one figure each)."""
    out = {}
    for key, seen in (('seen_sources', True), ('unseen_sources', False)):
        part = {s: v for s, v in by_source.items() if v['seen_in_training'] == seen}
        n = sum(v['n'] for v in part.values())
        out[key] = {'sources': sorted(part), 'n': n,
                    'mean_dice': round(sum(v['mean_dice'] * v['n'] for v in part.values()) / n, 4) if n else None}
    return out


def train_job(module, kw):
    """Run in a worker process: train one model, return its summary."""
    if module == 'train2d':
        return train_classifier(**kw)
    return train_segmenter(**kw)


def check_exports(pairs):
    cmd = ['node', '--import', 'tsx', os.path.join(ROOT, 'tools', 'train', 'check-export.ts')] + [f'{m}:{r}' for m, r in pairs]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f'export check failed:\n{r.stdout}\n{r.stderr}')
    return json.loads(r.stdout)


def agreement(preds):
    """Mean (over cases and organs present in either) Dice between two models' label maps."""
    names = list(preds)
    out = {n: {} for n in names}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ds = []
            for case in preds[a]:
                pa, pb = preds[a][case], preds[b][case]
                for c in range(1, len(ORGANS) + 1):
                    x, y = pa == c, pb == c
                    s = x.sum() + y.sum()
                    if s:
                        ds.append(2 * (x & y).sum() / s)
            out[a][b] = out[b][a] = round(float(np.mean(ds)), 4)
    return out


def main():
    ap = argparse.ArgumentParser(description='Rebuild the demo zoo (models/demo) from phantoms.')
    ap.add_argument('--work', default=os.path.join(ROOT, '.tmp', 'zoo'))
    ap.add_argument('--out', default=os.path.join(ROOT, 'models', 'demo'))
    ap.add_argument('--only', nargs='*', help='model names to rebuild (default: all)')
    ap.add_argument('--quick', action='store_true', help='smoke test: tiny data, few steps')
    ap.add_argument('--jobs', type=int, default=2, help='models trained at once, one process each (default 2)')
    ap.add_argument('--threads', type=int, default=1, help='torch threads per process (default 1)')
    ap.add_argument('--readme-only', action='store_true', help='rewrite README.md from the recorded zoo.json (no training)')
    ap.add_argument('--steps-factor', type=float, default=1.0,
                    help='3D: train each segmenter for this fraction of its steps (a smaller rebuild on a busy machine; the cards record the steps)')
    ap.add_argument('--init-dir', help='3D: warm start each segmenter from DIR/NAME/model.onnx (e.g. the zoo trained on clean phantoms of every source) and fine-tune it on its realistic sources (train3d --init: BatchNorm frozen)')
    ap.add_argument('--init-lr', type=float, default=1e-3, help='3D with --init-dir: peak learning rate of the fine-tune (default 1e-3)')
    a = ap.parse_args()
    if a.readme_only:
        with open(os.path.join(a.out, 'zoo.json')) as f:
            zoo = json.load(f)
        write_readme(a.out, zoo['models'], zoo['timings'])
        return
    t_all = time.time()
    only = set(a.only or [])
    want = lambda name: not only or name in only  # noqa: E731
    clf = [c for c in CLASSIFIERS if want(c['name'])]
    seg = [s for s in SEGMENTERS if want(s['name'])]
    d2, d3 = dict(DATA_2D), dict(DATA_3D)
    if a.quick:
        d2 = {'train': (160, 1001), 'heldout': (40, 2002)}
        d3 = {'train': (4, 3003), 'heldout': (2, 4004)}
    os.makedirs(a.work, exist_ok=True)
    timings = {}
    results = {}

    jobs = []  # (name, task, module, kwargs, data, spec); the longer 3D jobs first
    if seg:
        t = time.time()
        # One held-out set of every source; one training set per model from its own sources.
        data3 = {}
        for s in seg:
            spec = {f'train-{s["name"]}': d3['train'], 'heldout': d3['heldout']}
            data3[s['name']] = phantom_data('3d', spec, a.work, ['--size', SIZE_3D, '--realistic'],
                                            {f'train-{s["name"]}': ['--sources', ','.join(s['sources'])],
                                             'heldout': ['--sources', ','.join(HELDOUT_SOURCES_3D)]})
            data3[s['name']]['train'] = data3[s['name']].pop(f'train-{s["name"]}')
        timings['phantoms_3d_s'] = round(time.time() - t, 1)
        for s in seg:
            data = data3[s['name']]
            kw = dict(family=s['family'], data=data['train']['dir'], heldout=data['heldout']['dir'], out_dir=os.path.join(a.out, s['name']),
                      work=os.path.join(a.work, s['name']), seed=s['seed'], steps=10 if a.quick else max(10, round(s['steps'] * a.steps_factor)), aug=s['aug'],
                      model_kw=s['model_kw'], threads=a.threads)
            if a.init_dir:
                # The parent is copied first: the model's own folder is emptied before training.
                parent = os.path.join(a.work, s['name'] + '-parent.onnx')
                shutil.copyfile(os.path.join(a.init_dir, s['name'], 'model.onnx'), parent)
                kw.update(init=parent, lr=a.init_lr)
            jobs.append((s['name'], 'segment', 'train3d', kw, data, s))
    if clf:
        t = time.time()
        data = phantom_data('2d', d2, a.work)
        timings['phantoms_2d_s'] = round(time.time() - t, 1)
        for c in clf:
            kw = dict(family=c['family'], data=data['train']['dir'], heldout=data['heldout']['dir'], out_dir=os.path.join(a.out, c['name']),
                      work=os.path.join(a.work, c['name']), task=TASK_2D, seed=c['seed'], epochs=2 if a.quick else c['epochs'], lr=c['lr'],
                      threads=a.threads)
            jobs.append((c['name'], 'classify', 'train2d', kw, data, c))
    for name, *_ in jobs:
        shutil.rmtree(os.path.join(a.out, name), ignore_errors=True)
    # Each model trains in its own process, single-threaded by default, --jobs at a time: on a
    # small CPU that beats one multi-threaded process after another, and every model stays
    # seeded and deterministic on its own.
    t = time.time()
    with ProcessPoolExecutor(max_workers=a.jobs, mp_context=get_context('spawn')) as pool:
        futures = {name: pool.submit(train_job, module, kw) for name, task, module, kw, data, spec in jobs}
        for name, task, module, kw, data, spec in jobs:
            results[name] = (task, futures[name].result(), data, spec)
    timings['training_s'] = round(time.time() - t, 1)

    # Manifests first (the export check reads them), then the checks, then the cards.
    inspections = {}
    for name, (task, r, data, spec) in results.items():
        out_dir = os.path.join(a.out, name)
        if task == 'classify':
            pin = ['--target', spec['cam_target']] if spec.get('cam_target') else []
            inspections[name] = json.loads(run_medmask(['model', 'inspect', os.path.join(out_dir, 'model.onnx'), '--json', *pin], capture=True))
            write_json(os.path.join(out_dir, 'model.json'), classifier_manifest(name, r, inspections[name]['target']))
        else:
            write_json(os.path.join(out_dir, 'model.json'), segmenter_manifest(name))
    checks = check_exports([(os.path.join(a.out, n), os.path.join(a.work, n, 'reference.bin')) for n in results])
    preds = {}
    for name, (task, r, data, spec) in results.items():
        if task == 'segment':
            z = np.load(os.path.join(a.work, name, 'heldout-predictions.npz'))
            preds[name] = {k: z[k] for k in z.files}
    agree = agreement(preds) if len(preds) > 1 else {}
    summary = {}
    for name, (task, r, data, spec) in results.items():
        out_dir = os.path.join(a.out, name)
        check = checks[os.path.join(a.out, name)]
        tol = 1e-3 * max(1.0, check['maxAbsLogit'])
        if check['maxAbsDiff'] > tol:
            raise RuntimeError(f'{name}: onnxruntime output differs from torch by {check["maxAbsDiff"]} (> {tol})')
        cdata = {k: {kk: vv for kk, vv in v.items() if kk != 'dir'} | {'generator': 'medmask phantoms'} for k, v in data.items()}
        if task == 'classify':
            if check['target'] != inspections[name]['target']:
                raise RuntimeError(f'{name}: ClassifierSession target {check["target"]} != model inspect {inspections[name]["target"]}')
            if len(check['targetDims']) != 4:
                raise RuntimeError(f'{name}: CAM target {check["target"]} is not 4-D: {check["targetDims"]}')
            card = write_classifier_card(out_dir, name, r, cdata, check, inspections[name])
            cam = cam_quality(out_dir, data['heldout']['dir'], os.path.join(a.work, name, 'cam-eval'))
            add_cam_metrics(out_dir, cam)
            summary[name] = {'task': 'classify', 'family': r['family'], 'heldout_accuracy': r['heldout']['accuracy'],
                             'parameters': r['parameters'], 'bytes': card['export']['bytes'], 'cam_target_dims': check['targetDims'][1:],
                             'cam_pointing_game': cam['pointing_game'], **({'cam_target_pinned': spec['cam_target']} if spec.get('cam_target') else {})}
        else:
            by_source = dice_by_source(os.path.join(a.work, name, 'heldout-predictions.npz'), data['heldout']['dir'], spec['sources'])
            split = seen_vs_unseen(by_source)
            card = write_segmenter_card(out_dir, name, r, cdata, check, spec['imperfection'], agree.get(name), by_source, split, spec['sources'])
            summary[name] = {'task': 'segment', 'family': r['family'], 'heldout_mean_dice': r['heldout']['mean_dice'],
                             'heldout_dice': r['heldout']['dice'], 'parameters': r['parameters'], 'bytes': card['export']['bytes'],
                             'train_sources': spec['sources'], 'heldout_dice_by_source': by_source,
                             'heldout_dice_seen_sources': split['seen_sources']['mean_dice'],
                             'heldout_dice_unseen_sources': split['unseen_sources']['mean_dice'],
                             'unseen_sources': split['unseen_sources']['sources'], 'agreement_with_other_models': agree.get(name),
                             **({'warm_start_parent_dice': (r.get('parent_heldout') or {}).get('mean_dice'), 'steps': r.get('steps')} if r.get('warm_start') else {})}
        log(f'{name}: export ok (max |ort - torch| {check["maxAbsDiff"]:.1e})')
    timings['total_s'] = round(time.time() - t_all, 1)
    if not a.quick:
        update_readme(a.out, summary, timings, partial=bool(only))
    print(json.dumps({'models': summary, 'timings': timings}, indent=2))


def update_readme(out, summary, timings, partial=False):
    """README.md + zoo.json; a partial rebuild (--only) merges its models into the recorded zoo and
    keeps the last full build's total time (its own timings go under 'partial_timings')."""
    zoo_json = os.path.join(out, 'zoo.json')
    if partial and os.path.exists(zoo_json):
        with open(zoo_json) as f:
            old = json.load(f)
        merged = {n: old['models'].get(n) or summary[n] for n in list(old['models']) + [n for n in summary if n not in old['models']]}
        merged.update(summary)
        timings = dict(old.get('timings', {}), partial_timings=timings)
        summary = merged
    write_readme(out, summary, timings)


def by_source_md(summary):
    """Held-out Dice per source of the segmenters trained on some sources only (realistic phantoms)."""
    seg = {n: v for n, v in summary.items() if v.get('task') == 'segment' and v.get('heldout_dice_by_source')}
    if not seg:
        return ''
    sources = sorted({s for v in seg.values() for s in v['heldout_dice_by_source']})
    fmt = lambda d: '-' if d is None else f'{d:.3f}'  # noqa: E731
    rows = '\n'.join(f'| {n} | {", ".join(v["train_sources"])} | {fmt(v.get("heldout_dice_seen_sources"))} | {fmt(v.get("heldout_dice_unseen_sources"))} | ' + ' | '.join(
        (lambda d: '-' if d is None else (f'{d["mean_dice"]:.3f}' if d['seen_in_training'] else f'**{d["mean_dice"]:.3f}**'))(v['heldout_dice_by_source'].get(s))
        for s in sources) + ' |' for n, v in seg.items())
    trained = {s for v in seg.values() for s in v['train_sources']}
    by_none = [s for s in sources if s not in trained]
    own = '; '.join(f'{n} did not see {", ".join(s for s in sorted(trained) if s not in v["train_sources"])}' for n, v in seg.items())
    return f"""
**Sources.** Trained on realistic phantoms (per-source scanner profiles and findings,
docs/phantoms.md) of some sources only, as the paper's models were trained on public data sets and
then met others. Each model misses a source the others saw ({own}), so the ensemble disagrees
where one of them meets new data — the disagreement that AbdomenAtlas's attention map reads;
{', '.join(by_none)} were seen by none (their scanners and findings are new to all three: an
out-of-distribution check). Held-out mean organ Dice per source (2 cases each), sources a model did
not see in bold, and the mean over the cases of the sources it saw and of those it did not:

| model | trained on | seen sources | unseen sources | {' | '.join(sources)} |
|---|---|---|---|{'---|' * len(sources)}
{rows}
"""


def pinned_md(summary):
    """The classifiers whose manifest pins the CAM target (build spec 'cam_target')."""
    pinned = [(n, v['cam_target_pinned']) for n, v in summary.items() if v.get('cam_target_pinned')]
    return ''.join(f', except {n}, whose manifest pins `{t}` (it localises better there; see its card)' for n, t in pinned)


def agreement_md(summary):
    """Between-model agreement of the segmenters' held-out label maps (mean organ Dice), when recorded."""
    pairs = sorted({v for n, s in summary.items() if s.get('task') == 'segment' for v in (s.get('agreement_with_other_models') or {}).values()})
    if not pairs:
        return ''
    return (f' (steps, augmentation, capacity, sources seen): between models, the mean organ Dice of their held-out label\n'
            f'maps is {pairs[0]:.2f}–{pairs[-1]:.2f}, so they disagree at borders, on the small organs and on sources one of them did not see')


def warm_start_md(summary):
    """How the segmenters were trained when they are fine-tunes of an earlier zoo (build_zoo --init-dir)."""
    seg = {n: v for n, v in summary.items() if v.get('task') == 'segment' and 'warm_start_parent_dice' in v}
    if not seg:
        return ''
    each = '; '.join(f'{n} {v["steps"]} steps, held-out Dice {v["warm_start_parent_dice"]:.3f} → {v["heldout_mean_dice"]:.3f}' for n, v in seg.items())
    return f"""
**Warm start.** Each segmenter was first trained on clean phantoms of every source, then fine-tuned
(`build_zoo.py --init-dir`, BatchNorm frozen) on realistic phantoms of its own sources only ({each};
the same held-out cases before and after the fine-tune). The clean-phantom parents are not shipped.
"""


def partial_md(timings):
    """The time of the last partial rebuild (--only), when the zoo holds one."""
    t = timings.get('partial_timings')
    return f' (the last partial rebuild, {t["total_s"] / 60:.1f} min)' if t and 'total_s' in t else ''


def write_readme(out, summary, timings):
    total = sum(v['bytes'] for v in summary.values())
    rows2 = '\n'.join(f'| [{n}]({n}/card.md) | {v["family"]} | {v["parameters"]:,} | {v["bytes"] / 1e6:.2f} MB | {v["heldout_accuracy"]:.3f} | {v["cam_target_dims"][1]}x{v["cam_target_dims"][2]} | {v["cam_pointing_game"]:.2f} |'
                      for n, v in summary.items() if v['task'] == 'classify')
    rows3 = '\n'.join(f'| [{n}]({n}/card.md) | {v["family"]} | {v["parameters"]:,} | {v["bytes"] / 1e6:.2f} MB | {v["heldout_mean_dice"]:.3f} | '
                      + ' | '.join('-' if v['heldout_dice'][o] is None else f'{v["heldout_dice"][o]:.2f}' for o in ORGANS) + ' |'
                      for n, v in summary.items() if v['task'] == 'segment')
    md = f"""# models/demo — the bundled demo zoo

Small models trained here, on CPU, from medmask's own phantoms (synthetic images; **not for clinical
use**), so that medmask works out of the box: three 2D classifiers for the weak-supervision workflow
(`medmask explain` / `annotate`) and three 3D segmenters for the multi-organ workflow (`medmask atlas`).
Each folder holds `model.onnx`, `model.json` (the medmask manifest), `card.md` and `card.json`
(data, seeds, training, architecture, parameter count, held-out metrics, export check).

Rebuild all of them with `/usr/bin/python3 tools/train/build_zoo.py` (see `tools/train/README.md`);
the last full rebuild took {timings['total_s'] / 60:.1f} min on 2 CPU cores{partial_md(timings)}. Total size {total / 1e6:.1f} MB.

## 2D classifiers — chest phantoms, lesion presence (healthy / abnormal)
Input 3 x 256 x 256 (grey copied to RGB; the phantoms' native size), softmax; Dropout before the final Linear (head MC dropout);
CAM target = the tensor that feeds the global pooling (the runtime's default){pinned_md(summary)}.

| model | family | parameters | size | held-out accuracy | CAM grid | CAM pointing game |
|---|---|---|---|---|---|---|
{rows2}

CAM pointing game: share of 60 held-out abnormal images where the XGrad-CAM maximum (through
`medmask explain`) lies on a lesion (tools/train/cam_eval.py; the cards add Dice figures). The
maps find the right lung field but are diffuse: the weak masks of `medmask annotate` lean on its
constraints and refinement.

## 3D segmenters — abdominal CT phantoms, 9 organs + background
Patch [64, 64, 32] (x y z), spacing [4, 4, 6] mm, CT window 40 / 400 HU, softmax (channel 0 background).
Held-out Dice per organ (sliding window, at each case's own geometry); deliberately imperfect in different ways{agreement_md(summary)}.
{warm_start_md(summary)}
| model | family | parameters | size | mean Dice | {' | '.join(ORGANS)} |
|---|---|---|---|---|{'---|' * len(ORGANS)}
{rows3}
{by_source_md(summary)}"""
    with open(os.path.join(out, 'README.md'), 'w') as f:
        f.write(md)
    write_json(os.path.join(out, 'zoo.json'), {'models': summary, 'timings': timings})


if __name__ == '__main__':
    main()
