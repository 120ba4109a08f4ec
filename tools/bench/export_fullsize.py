"""Export full-size torchvision ResNet50, DenseNet121 and EfficientNet-B0 (224², seeded random
weights) to ONNX for `npm run bench -- explain`. Outputs (~300 MB) go to a git-ignored folder:

    /usr/bin/python3 tools/bench/export_fullsize.py [--out bench/out/models] [--classes 4]

Per architecture: ARCH.onnx (eval export; the classifier Dropout vanishes), ARCH-mc.onnx (a
Dropout before the classifier kept as a Dropout node, for full Monte Carlo Dropout) and a
medmask manifest for each (docs/model-manifest.md). Needs Debian's python3-torch and
python3-torchvision (torch 1.13, opset 14).
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fullsize import ARCHS, DROPOUT, SIZE, build  # noqa: E402


def export(model, path, training):
    x = torch.zeros(1, 3, SIZE, SIZE)
    torch.onnx.export(model, x, path, opset_version=14, input_names=['input'], output_names=['logits'],
                      dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}}, training=training,
                      do_constant_folding=True)


def manifest(name, onnx, classes):
    return {
        'format': 'medmask-model/1', 'name': name, 'task': 'classify', 'model': onnx,
        'description': 'torchvision architecture with seeded random weights, for benchmarks only',
        'input': {'name': 'input', 'layout': 'NCHW', 'height': SIZE, 'width': SIZE, 'channels': 3},
        'preprocess': {'resize': 'stretch', 'channels': 'grey-to-rgb',
                       'intensity': {'mode': 'mean-std', 'mean': [0.485, 0.456, 0.406],
                                     'std': [0.229, 0.224, 0.225], 'scale': 255}},
        'output': {'name': 'logits', 'activation': 'softmax'},
        'classes': [f'class_{i}' for i in range(classes)],
        'mc': {'dropout': DROPOUT, 'samples': 30},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'bench', 'out', 'models')))
    ap.add_argument('--classes', type=int, default=4, help='classifier outputs (default 4, as the demo models)')
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for arch in ARCHS:
        for mc in (False, True):
            name = arch + ('-mc' if mc else '')
            path = os.path.join(a.out, name + '.onnx')
            export(build(arch, a.classes, mc=mc), path, torch.onnx.TrainingMode.PRESERVE if mc else torch.onnx.TrainingMode.EVAL)
            with open(os.path.join(a.out, name + '.json'), 'w') as f:
                json.dump(manifest(name, name + '.onnx', a.classes), f, indent=1)
            print(f'{path}  {os.path.getsize(path) / 2**20:.1f} MiB')
    with open(os.path.join(a.out, 'export.json'), 'w') as f:
        json.dump({'archs': list(ARCHS), 'size': SIZE, 'classes': a.classes, 'dropout': DROPOUT,
                   'torch': torch.__version__}, f, indent=1)


if __name__ == '__main__':
    main()
