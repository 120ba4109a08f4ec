"""Train a small 2D classifier on a chest phantom set written by `medmask phantoms 2d`.

Data: DIR/labels.csv (image,label,abnormal,mask,lungs,split), 8-bit grey PNGs. The models take
the phantoms' native 256 x 256, so no resampling happens for them; images of another size are
resized here, once, with two kernels (PIL's antialiased bilinear and box averaging) and each
training sample picks one at random, so the model does not depend on the exact resampling kernel
the product uses. Grey is copied to three channels ("grey-to-rgb") and
normalised as the manifest says: x / 255, then (x - 0.5) / 0.25.

Augmentation (training only): horizontal flip, translation by up to 1/16 of the size (edge padding),
brightness / contrast jitter, Gaussian noise.

Run on its own for one model:
  /usr/bin/python3 tools/train/train2d.py --family resnet --data DIR --heldout DIR2 --out models/demo/x
(build_zoo.py does this for the whole zoo).
"""
import argparse
import csv
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from common import export_onnx, log, seed_everything, set_threads, write_reference
from models2d import build_classifier, count_parameters

CLASSES_LESION = ['healthy', 'nodule', 'consolidation', 'cavity']
CLASSES_PRESENCE = ['healthy', 'abnormal']
MEAN, STD, SCALE = 0.5, 0.25, 255.0


def read_chest(root, size=128, splits=None):
    """Read a chest phantom set: (images uint8 [n, 2 kernels, size, size], rows of labels.csv)."""
    with open(os.path.join(root, 'labels.csv'), newline='') as f:
        rows = [r for r in csv.DictReader(f) if splits is None or r['split'] in splits]
    if not rows:
        raise ValueError(f'{root}/labels.csv has no rows for splits {splits}')
    out = np.empty((len(rows), 2, size, size), np.uint8)
    for i, r in enumerate(rows):
        im = Image.open(os.path.join(root, r['image'])).convert('L')
        if im.size == (size, size):
            out[i, 0] = out[i, 1] = np.asarray(im)
        else:
            out[i, 0] = np.asarray(im.resize((size, size), Image.BILINEAR))
            out[i, 1] = np.asarray(im.resize((size, size), Image.BOX))
    return out, rows


def targets(rows, task):
    if task == 'lesion':
        return np.array([CLASSES_LESION.index(r['label']) for r in rows], np.int64)
    return np.array([int(r['abnormal']) for r in rows], np.int64)


def normalise(x_uint8):
    """uint8 [n, h, w] -> float [n, 3, h, w] as the manifest's preprocessing does."""
    x = (torch.as_tensor(x_uint8, dtype=torch.float32) / SCALE - MEAN) / STD
    return x[:, None].expand(-1, 3, -1, -1).contiguous()


def augment(x, g):
    """x: float [b, 1, h, w] (normalised). Seeded by the generator g."""
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    pad = h // 16
    xp = F.pad(x, (pad, pad, pad, pad), mode='replicate')
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=g)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=g)
    x = torch.stack([xp[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
    contrast = 1 + 0.15 * (2 * torch.rand(b, 1, 1, 1, generator=g) - 1)
    bright = 0.2 * (2 * torch.rand(b, 1, 1, 1, generator=g) - 1)
    x = x * contrast + bright
    x = x + 0.05 * torch.randn(x.shape, generator=g)
    return x


def evaluate(model, x_uint8, y, batch=128):
    """Accuracy, confusion matrix and softmax probabilities on kernel-0 (bilinear) images."""
    model.eval()
    probs = []
    with torch.no_grad():
        for i in range(0, len(y), batch):
            probs.append(torch.softmax(model(normalise(x_uint8[i:i + batch, 0])), 1))
    p = torch.cat(probs).numpy()
    pred = p.argmax(1)
    k = p.shape[1]
    conf = np.zeros((k, k), np.int64)
    for t, q in zip(y, pred):
        conf[t, q] += 1
    return {'accuracy': float((pred == y).mean()), 'confusion': conf.tolist(), 'n': int(len(y))}, p


def auroc(score, positive):
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    pos, neg = score[positive], score[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind='mergesort')
    ranks = np.empty(len(order))
    vals = np.concatenate([pos, neg])[order]
    i = 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def train_classifier(family, data, heldout, out_dir, work, task='presence', seed=0, epochs=8, batch=32, lr=3e-3,
                     dropout=0.3, size=256, threads=2, stride=16):
    """Train, pick the epoch with the best validation accuracy, evaluate on the held-out set,
    export ONNX and a torch reference. Returns a summary dict for the card."""
    set_threads(threads)
    seed_everything(seed)
    classes = CLASSES_LESION if task == 'lesion' else CLASSES_PRESENCE
    t0 = time.time()
    xtr, rtr = read_chest(data, size, {'train'})
    xva, rva = read_chest(data, size, {'val'})
    xte, rte = read_chest(heldout, size)
    ytr, yva, yte = targets(rtr, task), targets(rva, task), targets(rte, task)
    log(f'[{family}] train {len(ytr)}, val {len(yva)}, held-out {len(yte)} ({time.time() - t0:.1f} s to read)')

    model = build_classifier(family, len(classes), dropout, stride)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(ytr) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    g = torch.Generator().manual_seed(seed)
    counts = np.bincount(ytr, minlength=len(classes)).astype(np.float64)
    weight = torch.tensor(counts.sum() / (len(classes) * np.maximum(counts, 1)), dtype=torch.float32)
    best = (-1.0, None, -1)
    history = []
    t1 = time.time()
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(ytr), generator=g).numpy()
        kernel = torch.randint(0, 2, (len(ytr),), generator=g).numpy()
        tot, nb = 0.0, 0
        for i in range(0, len(perm), batch):
            idx = perm[i:i + batch]
            xb = (torch.as_tensor(xtr[idx, kernel[idx]], dtype=torch.float32) / SCALE - MEAN) / STD
            xb = augment(xb[:, None], g).expand(-1, 3, -1, -1)
            loss = F.cross_entropy(model(xb), torch.as_tensor(ytr[idx]), weight=weight, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss)
            nb += 1
        va, _ = evaluate(model, xva, yva)
        history.append({'epoch': ep + 1, 'train_loss': round(tot / nb, 4), 'val_accuracy': round(va['accuracy'], 4)})
        log(f'[{family}] epoch {ep + 1}/{epochs} loss {tot / nb:.4f} val acc {va["accuracy"]:.3f} ({time.time() - t1:.0f} s)')
        if va['accuracy'] >= best[0]:
            best = (va['accuracy'], {k: v.detach().clone() for k, v in model.state_dict().items()}, ep + 1)
    model.load_state_dict(best[1])
    train_s = time.time() - t1
    te, p = evaluate(model, xte, yte)
    abnormal = np.array([int(r['abnormal']) for r in rte]).astype(bool)
    p_abnormal = 1 - p[:, 0]
    metrics = {
        'accuracy': round(te['accuracy'], 4),
        'n': te['n'],
        'confusion': te['confusion'],
        'per_class_recall': {c: round(te['confusion'][i][i] / max(1, sum(te['confusion'][i])), 4) for i, c in enumerate(classes)},
        'auroc_abnormal': None if auroc(p_abnormal, abnormal) is None else round(auroc(p_abnormal, abnormal), 4),
    }
    log(f'[{family}] held-out accuracy {metrics["accuracy"]:.3f} (best val epoch {best[2]}, {train_s:.0f} s training)')

    os.makedirs(out_dir, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    model.eval()
    example = normalise(xte[:2, 0])
    export_onnx(model, example, os.path.join(out_dir, 'model.onnx'))
    write_reference(model, example, os.path.join(work, 'reference.bin'))
    return {
        'task': task, 'classes': classes, 'family': family, 'size': size, 'dropout': dropout,
        'parameters': count_parameters(model), 'stride': stride, 'epochs': epochs, 'best_epoch': best[2], 'batch': batch, 'lr': lr,
        'seed': seed, 'train_seconds': round(train_s, 1), 'history': history,
        'n_train': int(len(ytr)), 'n_val': int(len(yva)), 'val_accuracy': round(best[0], 4), 'heldout': metrics,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--family', required=True, choices=['resnet', 'densenet', 'efficientnet'])
    ap.add_argument('--data', required=True)
    ap.add_argument('--heldout', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--work', default=None)
    ap.add_argument('--task', default='presence', choices=['lesion', 'presence'])
    ap.add_argument('--epochs', type=int, default=8)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--stride', type=int, default=16, choices=[8, 16])
    a = ap.parse_args()
    r = train_classifier(a.family, a.data, a.heldout, a.out, a.work or a.out, a.task, a.seed, a.epochs, threads=a.threads, stride=a.stride)
    print(r['heldout'])


if __name__ == '__main__':
    main()
