#!/usr/bin/python3
"""Do realistic phantoms make the 3D demo models fail, and on which cases?

  /usr/bin/python3 tools/train/failure_check.py --models models/demo/demo-unet3d ... [--n 24] [--size 64] [--seed 5005]
      [--sources flare,lits,kits,msd_pancreas] [--work .tmp/failure-check] [--json out.json]

Writes `--n` realistic phantoms per source (`medmask phantoms 3d --realistic`), runs every model
through the trainer's sliding window (weights loaded from the ONNX, warmstart.py), and reports per
case the mean organ Dice (organs present in the truth or the prediction), its distribution per
source (mean, 10th percentile, cases below 0.6) and the **oracle review gain ratio**: reviewing the
top `--fraction` of each source's cases by error (1 - Dice of the ensemble's mean-probability
argmax, the pseudo-label), fixing them completely, against the expected gain of as many random
cases per source. A ratio near 1 means the errors are spread evenly over cases (ranking cannot
help); the AbdomenAtlas premise needs it well above 2.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import make_phantoms, log  # noqa: E402
from models3d import build_segmenter  # noqa: E402
from train3d import NCLS, ORGANS, SPACING, read_abdomen, resample, sliding_window  # noqa: E402
from warmstart import load_onnx_weights  # noqa: E402


def load_model(folder):
    with open(os.path.join(folder, 'card.json')) as f:
        arch = json.load(f)['architecture']
    model = build_segmenter(arch['family'], NCLS, **(arch.get('options') or {}))
    model.eval()
    load_onnx_weights(model, os.path.join(folder, 'model.onnx'), torch.zeros(1, 1, 16, 16, 16))
    model.eval()
    return model


def mean_dice(pred, truth):
    ds = []
    for k in range(1, len(ORGANS) + 1):
        a, b = pred == k, truth == k
        s = a.sum() + b.sum()
        if s:
            ds.append(2 * (a & b).sum() / s)
    return float(np.mean(ds))


def oracle_ratio(per_source_errors, fraction):
    """Gain of reviewing the worst ceil(fraction * n) cases per source vs the same number at random."""
    top = rnd = 0.0
    for errs in per_source_errors.values():
        k = max(1, math.ceil(fraction * len(errs) - 1e-9))
        e = sorted(errs, reverse=True)
        top += sum(e[:k])
        rnd += k / len(e) * sum(e)
    return top / rnd if rnd > 0 else float('nan')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--models', nargs='+', required=True)
    ap.add_argument('--n', type=int, default=24, help='cases per source')
    ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--seed', type=int, default=5005)
    ap.add_argument('--sources', default='flare,lits,kits,msd_pancreas')
    ap.add_argument('--fraction', type=float, default=0.05)
    ap.add_argument('--work', default='.tmp/failure-check')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--json')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sources = a.sources.split(',')
    data = os.path.join(a.work, f'phantoms-{a.seed}-{a.size}-{a.n}-{"_".join(sources)}')
    make_phantoms('3d', a.n * len(sources), a.seed, data, ['--size', a.size, '--realistic', '--sources', ','.join(sources)])
    with open(os.path.join(data, 'dataset.json')) as f:
        meta = {c['case']: c for c in json.load(f)['medmask']['cases']}
    cases = read_abdomen(data)
    models = {os.path.basename(os.path.normpath(m)): load_model(m) for m in a.models}
    rows = []
    for i, c in enumerate(cases):
        probs = {}
        for name, model in models.items():
            p = sliding_window(model, c['image'])
            probs[name] = resample(p.numpy(), SPACING, c['spacing'], dst_shape=c['shape'])
        row = {'case': c['case'], 'source': meta[c['case']]['source'], 'findings': meta[c['case']].get('findings', []),
               'phase': meta[c['case']].get('scanner', {}).get('phase'), 'kernel': meta[c['case']].get('scanner', {}).get('kernel')}
        for name, p in probs.items():
            row[name] = round(mean_dice(p.argmax(0).numpy().astype(np.uint8), c['truth']), 4)
        ens = sum(probs.values()) / len(probs)
        row['ensemble'] = round(mean_dice(ens.argmax(0).numpy().astype(np.uint8), c['truth']), 4)
        rows.append(row)
        log(f'{i + 1}/{len(cases)} {row["case"]} {row["source"]} {row["phase"]}/{row["kernel"]} {",".join(row["findings"])}: ' + ' '.join(f'{k} {row[k]:.3f}' for k in list(models) + ['ensemble']))
    summary = {}
    for key in list(models) + ['ensemble']:
        per = {}
        for r in rows:
            per.setdefault(r['source'], []).append(r[key])
        summary[key] = {
            'by_source': {s: {'mean': round(float(np.mean(v)), 4), 'p10': round(float(np.percentile(v, 10)), 4), 'below_0.6': int(sum(x < 0.6 for x in v)), 'n': len(v)} for s, v in per.items()},
            'oracle_ratio': round(oracle_ratio({s: [1 - x for x in v] for s, v in per.items()}, a.fraction), 3),
            'oracle_ratio_20': round(oracle_ratio({s: [1 - x for x in v] for s, v in per.items()}, 0.2), 3),
        }
    out = {'models': a.models, 'n_per_source': a.n, 'size': a.size, 'seed': a.seed, 'fraction': a.fraction, 'summary': summary, 'cases': rows}
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(out, f, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == '__main__':
    main()
