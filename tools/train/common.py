"""Shared pieces of the trainer: seeding, calling the medmask CLI, ONNX export, manifests and cards."""
import hashlib
import json
import os
import platform
import random
import subprocess
import sys

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
OPSET = 17


def seed_everything(seed):
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels (CPU)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


_INTEROP_SET = False


def set_threads(n=2):
    global _INTEROP_SET
    torch.set_num_threads(n)
    if not _INTEROP_SET:  # may be set once per process, before any parallel work
        torch.set_num_interop_threads(1)
        _INTEROP_SET = True


def medmask_cmd():
    """The medmask CLI: the built one when `dist/` is up to date is not checked, so always run the
    TypeScript sources through tsx (what `npm test` runs too)."""
    return ['node', '--import', 'tsx', os.path.join(ROOT, 'src', 'cli', 'run.ts')]


def run_medmask(args, capture=False):
    """Run `medmask ARGS` from the repository root; raise with its output when it fails."""
    cmd = medmask_cmd() + [str(a) for a in args]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f'medmask {" ".join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}')
    return r.stdout if capture else None


def make_phantoms(kind, n, seed, out, extra=()):
    """`medmask phantoms 2d|3d --n N --seed S --out DIR`, skipped when DIR already holds a set made
    with the same arguments (a stamp file records them)."""
    stamp = os.path.join(out, '.trainer-stamp.json')
    want = {'kind': kind, 'n': n, 'seed': seed, 'extra': list(map(str, extra))}
    if os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == want:
                return out
    os.makedirs(out, exist_ok=True)
    run_medmask(['phantoms', kind, '--n', n, '--seed', seed, '--out', out, *extra])
    with open(stamp, 'w') as f:
        json.dump(want, f)
    return out


def export_onnx(model, example, path, dynamic_spatial=False):
    """Export in eval mode, opset 17, input "input", output "logits", dynamic batch dimension."""
    model.eval()
    axes = {0: 'batch'}
    torch.onnx.export(
        model, example, path, opset_version=OPSET, input_names=['input'], output_names=['logits'],
        dynamic_axes={'input': dict(axes), 'logits': dict(axes)}, do_constant_folding=True,
        training=torch.onnx.TrainingMode.EVAL)
    return path


def write_reference(model, x, path):
    """Torch's output for a fixed input, for the export check: float32 little-endian input then
    logits, with a JSON index beside (shapes)."""
    model.eval()
    with torch.no_grad():
        y = model(x)
    xa = x.detach().numpy().astype('<f4')
    ya = y.detach().numpy().astype('<f4')
    with open(path, 'wb') as f:
        f.write(xa.tobytes())
        f.write(ya.tobytes())
    with open(path + '.json', 'w') as f:
        json.dump({'input': list(xa.shape), 'logits': list(ya.shape)}, f)


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def write_json(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f, indent=2)
        f.write('\n')


def environment():
    import torchvision
    return {'python': platform.python_version(), 'torch': torch.__version__, 'torchvision': torchvision.__version__,
            'numpy': np.__version__, 'threads': torch.get_num_threads()}


def rel(path):
    return os.path.relpath(path, ROOT)


def log(*a):
    print(*a, flush=True, file=sys.stderr)
