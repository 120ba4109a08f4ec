"""How well a classifier's CAMs localise the lesions, measured through medmask itself.

  /usr/bin/python3 tools/train/cam_eval.py --model models/demo/demo-resnet --data PHANTOM_DIR [--n 60]

Runs `medmask explain --class abnormal` (XGrad-CAM, Fu et al. 2020, at the manifest's target) on
the first N abnormal images of a chest phantom set and compares each map (at image resolution,
min-max normalised) with the true lesion mask:
- pointing game: the map's maximum lies on a lesion pixel (Zhang et al. 2016);
- Dice at the mask's own area: the top-k pixels of the map, k = the true lesion area (an upper
  bound for any threshold that gets the area right: it scores the ranking, not the threshold);
- Dice after Otsu thresholding of the map inside the lungs.
These are properties of the classifier; the fused, constrained masks of `medmask annotate` are
measured by `medmask evaluate`.
"""
import argparse
import csv
import json
import os
import shutil
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import run_medmask  # noqa: E402


def otsu(v):
    hist, edges = np.histogram(v, bins=256, range=(0, 1))
    p = hist / max(1, hist.sum())
    w = np.cumsum(p)
    mu = np.cumsum(p * (edges[:-1] + edges[1:]) / 2)
    between = (mu[-1] * w - mu) ** 2 / np.maximum(w * (1 - w), 1e-12)
    return edges[int(np.argmax(between)) + 1]


def dice(a, b):
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def cam_quality(model, data, work, n=60):
    model, data, work = os.path.abspath(model), os.path.abspath(data), os.path.abspath(work)
    with open(os.path.join(data, 'labels.csv'), newline='') as f:
        rows = [r for r in csv.DictReader(f) if r['abnormal'] == '1'][:n]
    imgs = os.path.join(work, 'images')
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(imgs)
    for r in rows:
        shutil.copy(os.path.join(data, r['image']), imgs)
    out = os.path.join(work, 'explain')
    run_medmask(['explain', '--model', model, '--image', imgs, '--out', out, '--class', 'abnormal', '--no-overlay', '--threads', '1'])
    name = json.load(open(os.path.join(model, 'model.json')))['name'] if os.path.isdir(model) else None
    point, top, ots = [], [], []
    for r in rows:
        stem = os.path.splitext(os.path.basename(r['image']))[0]
        d = os.path.join(out, stem)
        cam_file = [f for f in os.listdir(d) if f.endswith('.abnormal.npy') and (name is None or f.startswith(name))][0]
        cam = np.load(os.path.join(d, cam_file)).astype(np.float64)
        mask = np.asarray(Image.open(os.path.join(data, r['mask']))) > 127
        lungs = np.asarray(Image.open(os.path.join(data, r['lungs']))) > 127
        point.append(bool(mask.flat[int(np.argmax(cam))]))
        k = int(mask.sum())
        order = np.argsort(-cam, axis=None)[:k]
        pred = np.zeros(cam.size, bool)
        pred[order] = True
        top.append(dice(pred.reshape(cam.shape), mask))
        ots.append(dice((cam >= otsu(cam[lungs])) & lungs, mask))
    return {'n': len(rows), 'pointing_game': round(float(np.mean(point)), 4),
            'dice_at_true_area': round(float(np.mean(top)), 4), 'dice_otsu_in_lungs': round(float(np.mean(ots)), 4),
            'method': 'xgradcam, class abnormal, medmask explain'}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', required=True, help='model folder (with model.json)')
    ap.add_argument('--data', required=True, help='chest phantom set')
    ap.add_argument('--work', default=None)
    ap.add_argument('--n', type=int, default=60)
    a = ap.parse_args()
    work = a.work or os.path.join('.tmp', 'cam-eval', os.path.basename(os.path.normpath(a.model)))
    print(json.dumps(cam_quality(a.model, a.data, work, a.n)))


if __name__ == '__main__':
    main()
