"""XGrad-CAM + Monte Carlo Dropout (T samples) measured the naive way in PyTorch, for the explain
benchmark (bench/explain.bench.ts runs this in the same run as medmask and compares).

Naive = what a PyTorch user does with pytorch-grad-cam: hooks on the target layer (ResNet50
layer4[-1], DenseNet121 features[-1], EfficientNet-B0 features[-1]); one deterministic forward +
backward for the XGrad-CAM map of the predicted class; then T forward + backward passes with the
classifier Dropout on, each giving class probabilities and its own XGrad-CAM map; every map is
upsampled to the input size (bilinear, as cv2.resize) and min-max normalised; then mean
probability, entropies, mutual information and the per-pixel std of the maps. Weights: the same
seeds as export_fullsize.py.

    /usr/bin/python3 tools/bench/torch_naive.py --classes 4 --samples 30 --threads 2 --reps 1

Prints one JSON line: per-architecture and total milliseconds per image (model building and the
warm-up excluded).
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fullsize import ARCHS, SIZE, build, target_layer  # noqa: E402


class Hooks:
    def __init__(self, layer):
        self.act = None
        self.grad = None
        layer.register_forward_hook(self.forward)

    def forward(self, _m, _inp, out):
        self.act = out
        out.register_hook(self.backward)

    def backward(self, g):
        self.grad = g


def xgradcam(A, G):
    w = (G * A).sum(dim=(2, 3)) / (A.sum(dim=(2, 3)) + 1e-7)
    cam = torch.relu((w[:, :, None, None] * A).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=(SIZE, SIZE), mode='bilinear', align_corners=False)[0, 0]
    cam = cam - cam.min()
    return cam / (cam.max() + 1e-7)


def explain(model, hooks, x, samples):
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    for d in dropouts:
        d.eval()
    out = model(x)
    c = int(out.argmax(1))
    model.zero_grad()
    out[0, c].backward()
    cam = xgradcam(hooks.act.detach(), hooks.grad.detach())
    for d in dropouts:
        d.train()
    probs, maps = [], []
    for _ in range(samples):
        out = model(x)
        probs.append(torch.softmax(out.detach(), 1)[0])
        model.zero_grad()
        out[0, c].backward()
        maps.append(xgradcam(hooks.act.detach(), hooks.grad.detach()))
    p = torch.stack(probs)
    mean = p.mean(0)
    h = -(mean * torch.log(mean.clamp_min(1e-12))).sum()
    eh = -(p * torch.log(p.clamp_min(1e-12))).sum(1).mean()
    std = torch.stack(maps).std(0, unbiased=False)
    return cam, float(h - eh), std


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--classes', type=int, default=4)
    ap.add_argument('--samples', type=int, default=30)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--reps', type=int, default=1)
    ap.add_argument('--archs', default=','.join(ARCHS))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1, 3, SIZE, SIZE, generator=g)
    result = {'samples': a.samples, 'threads': a.threads, 'torch': torch.__version__, 'ms': {}}
    for arch in a.archs.split(','):
        model = build(arch, a.classes, mc=True)
        hooks = Hooks(target_layer(arch, model))
        explain(model, hooks, x, 1)  # warm-up
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            explain(model, hooks, x, a.samples)
            times.append((time.perf_counter() - t0) * 1000)
        result['ms'][arch] = min(times)
    result['total_ms'] = sum(result['ms'].values())
    print(json.dumps(result))


if __name__ == '__main__':
    main()
