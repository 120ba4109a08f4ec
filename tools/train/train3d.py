"""Train a small 3D segmenter on an abdominal phantom set written by `medmask phantoms 3d`
(nnU-Net v2 layout: imagesTr/case_XXXX_0000.nii.gz, truthTr/case_XXXX.nii.gz full truth).

Geometry: each case is brought to LPS voxel axes (nibabel orientation transforms; the phantoms
are already LPS) and resampled to the model spacing (`SPACING`, mm, x y z) on a grid whose first
voxel centre is the case's first voxel centre; image trilinear, labels nearest. Tensors are
[z, y, x] (x fastest), as medmask's Volume stores voxels. Intensity: CT window (clip to
centre +- width/2, then to [0, 1]).

Training: random patches (default 48 x 48 x 24, smaller than the inference patch `PATCH` to save
CPU time; the networks are fully convolutional), two thirds of them centred on a voxel of a
randomly chosen organ; loss = class-weighted cross-entropy (1 / sqrt(frequency)) + soft Dice over
the 9 organs; AdamW, one-cycle; per-model augmentation.

Fine-tuning (--init): the same loss but with unweighted cross-entropy (--ce-weights none, the
default there). Measured on the loop's first round (demo-unet3d, 13 merged training cases, 3
held-out; docs/atlas.md "Why fine-tunes used to get worse"): with the frequency weights the training
loss falls while Dice falls with it, on the held-out cases (0.913 -> 0.882 after 40 steps at 2e-5)
and on the training cases themselves (0.920 -> 0.890, full truth) — the weights (background 0.07,
gallbladder 2.2) pay for over-segmenting small organs, which Dice punishes; the same 40 steps with
unweighted cross-entropy raise both (0.913 -> 0.915 / 0.920 -> 0.921 at 2e-5, 0.913 -> 0.937
held-out at 3e-4). From random weights the class weights are kept: they help the rare organs be
found at all (build_zoo.py's recipe).

Several fine-tunes in one process (--jobs FILE, what `medmask atlas run --rounds` uses for a
round's models): torch is imported once and a folder is read once (the shared training export and
the fixed held-out set); a parent whose held-out metrics the loop already knows (parent_heldout) is
not evaluated again.

Held-out evaluation: a sliding window over the whole resampled volume (overlap 0.5, Gaussian
importance weights with sigma = patch / 8, as MONAI's `sliding_window_inference` and nnU-Net),
softmax probabilities resampled back to the case's own grid (trilinear), argmax, Dice per organ
against the full truth at the original geometry.
"""
import argparse
import json
import os
import time

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from common import export_onnx, log, seed_everything, set_threads, write_reference
from models2d import count_parameters
from models3d import build_segmenter

ORGANS = ['spleen', 'kidney_right', 'kidney_left', 'gallbladder', 'liver', 'stomach', 'aorta', 'postcava', 'pancreas']
NCLS = len(ORGANS) + 1
SPACING = (4.0, 4.0, 6.0)  # mm, x y z
PATCH = (64, 64, 32)  # x y z
WINDOW = {'center': 40.0, 'width': 400.0}


def window(hu):
    lo = WINDOW['center'] - WINDOW['width'] / 2
    return np.clip((hu - lo) / WINDOW['width'], 0, 1).astype(np.float32)


def to_lps(img):
    """(data [x, y, z] in LPS voxel order, spacing x y z) of a nibabel image."""
    ornt = nib.orientations.io_orientation(img.affine)
    lps = nib.orientations.axcodes2ornt(('L', 'P', 'S'))
    tr = nib.orientations.ornt_transform(ornt, lps)
    data = nib.orientations.apply_orientation(np.asanyarray(img.dataobj), tr)
    zooms = np.array(img.header.get_zooms()[:3], np.float64)
    spacing = zooms[np.argsort(tr[:, 0])]  # input axis i goes to output axis tr[i, 0]
    return data, spacing


def resample(vol, src_spacing, dst_spacing, dst_shape=None, mode='bilinear'):
    """Resample vol [C, z, y, x] from src to dst spacing (x y z, mm); both grids start at the
    same first voxel centre. dst_shape (z, y, x) defaults to what covers the source extent."""
    c, nz, ny, nx = vol.shape
    src_n = (nx, ny, nz)
    if dst_shape is None:
        dst_shape = tuple(int(np.floor((src_n[a] - 1) * src_spacing[a] / dst_spacing[a])) + 1 for a in (2, 1, 0))
    axes = []
    for a, n_dst in zip((0, 1, 2), (dst_shape[2], dst_shape[1], dst_shape[0])):
        src_coord = torch.arange(n_dst, dtype=torch.float64) * dst_spacing[a] / src_spacing[a]
        axes.append((2 * src_coord / max(1, src_n[a] - 1) - 1).float())
    gz, gy, gx = torch.meshgrid(axes[2], axes[1], axes[0], indexing='ij')
    grid = torch.stack([gx, gy, gz], -1)[None]
    x = torch.as_tensor(vol, dtype=torch.float32)[None]
    out = F.grid_sample(x, grid, mode=mode, padding_mode='border', align_corners=True)
    return out[0]


_READ_CACHE = {}


def read_abdomen(root, cases=None):
    """Cases of a phantom set at the model spacing: dicts with image [z, y, x] float32 (windowed),
    label [z, y, x] uint8, and the original truth / spacing for evaluation. Within one process a
    folder is read once (the fine-tunes of one loop round share their held-out set, --jobs)."""
    key = (os.path.realpath(root), cases)
    if key not in _READ_CACHE:
        _READ_CACHE[key] = _read_abdomen(root, cases)
    return _READ_CACHE[key]


def _read_abdomen(root, cases=None):
    with open(os.path.join(root, 'dataset.json')) as f:
        ds = json.load(f)
    names = [c['case'] for c in ds['medmask']['cases']] if 'medmask' in ds else sorted(
        n[:-len('_0000.nii.gz')] for n in os.listdir(os.path.join(root, 'imagesTr')))
    # Label provenance per organ (original / revised / pseudo), as `medmask atlas finetune` writes it.
    prov = {c['case']: c.get('provenance') or {} for c in ds.get('medmask', {}).get('cases', [])}
    if cases is not None:
        names = names[:cases]
    out = []
    for name in names:
        im, sp = to_lps(nib.load(os.path.join(root, 'imagesTr', f'{name}_0000.nii.gz')))
        lab, sp2 = to_lps(nib.load(os.path.join(root, 'truthTr', f'{name}.nii.gz')))
        if not np.allclose(sp, sp2, atol=1e-4) or im.shape != lab.shape:
            raise ValueError(f'{root}/{name}: image and truth geometry differ')
        im = window(np.asarray(im, np.float32)).transpose(2, 1, 0)
        lab = np.asarray(lab, np.uint8).transpose(2, 1, 0)
        img_r = resample(im[None], sp, SPACING)[0].numpy()
        lab_r = resample(lab[None].astype(np.float32), sp, SPACING, mode='nearest')[0].numpy().astype(np.uint8)
        out.append({'case': name, 'image': np.ascontiguousarray(img_r), 'label': np.ascontiguousarray(lab_r),
                    'truth': np.ascontiguousarray(lab), 'spacing': sp, 'shape': lab.shape, 'provenance': prov.get(name, {})})
    return out


def pad_to(arr, shape, value):
    pads = []
    for n, p in zip(arr.shape[-3:], shape):
        d = max(0, p - n)
        pads.append((d // 2, d - d // 2))
    if not any(a or b for a, b in pads):
        return arr, [(0, 0)] * 3
    return np.pad(arr, [(0, 0)] * (arr.ndim - 3) + pads, constant_values=value), pads


def sample_patch(case, g, fg_prob=0.67, patch=PATCH):
    """A random patch (image [1, pz, py, px], label [pz, py, px]); seeded by torch generator g."""
    pz, py, px = patch[2], patch[1], patch[0]
    img, _ = pad_to(case['image'], (pz, py, px), 0.0)
    lab, _ = pad_to(case['label'], (pz, py, px), 0)
    nz, ny, nx = lab.shape
    if float(torch.rand(1, generator=g)) < fg_prob:
        present = case.setdefault('_present', [c for c in range(1, NCLS) if (case['label'] == c).any()])
        cls = present[int(torch.randint(0, len(present), (1,), generator=g))]
        idx = case.setdefault('_idx', {}).get(cls)
        if idx is None:
            idx = np.argwhere(lab == cls)
            case['_idx'][cls] = idx
        cz, cy, cx = idx[int(torch.randint(0, len(idx), (1,), generator=g))]
        jitter = lambda p: int(torch.randint(-p // 4, p // 4 + 1, (1,), generator=g))  # noqa: E731
        z0, y0, x0 = cz - pz // 2 + jitter(pz), cy - py // 2 + jitter(py), cx - px // 2 + jitter(px)
    else:
        z0, y0, x0 = (int(torch.randint(0, n - p + 1, (1,), generator=g)) for n, p in ((nz, pz), (ny, py), (nx, px)))
    z0 = min(max(0, z0), nz - pz)
    y0 = min(max(0, y0), ny - py)
    x0 = min(max(0, x0), nx - px)
    return img[None, z0:z0 + pz, y0:y0 + py, x0:x0 + px], lab[z0:z0 + pz, y0:y0 + py, x0:x0 + px]


def augment(x, g, kind):
    """x [b, 1, z, y, x]. 'none'; 'intensity': contrast/brightness/gamma + noise; 'spatial':
    intensity plus a random anisotropic zoom of +-10 % (labels zoomed with it, nearest)."""
    if kind == 'none':
        return x
    b = x.shape[0]
    c = 1 + 0.15 * (2 * torch.rand(b, 1, 1, 1, 1, generator=g) - 1)
    s = 0.05 * (2 * torch.rand(b, 1, 1, 1, 1, generator=g) - 1)
    gamma = torch.exp(0.2 * (2 * torch.rand(b, 1, 1, 1, 1, generator=g) - 1))
    x = (x.clamp(0, 1) ** gamma) * c + s
    return x + 0.03 * torch.randn(x.shape, generator=g)


def zoom_pair(x, y, g):
    """Random zoom about the patch centre (same for image and labels)."""
    b = x.shape[0]
    f = 1 + 0.1 * (2 * torch.rand(b, 3, generator=g) - 1)
    theta = torch.zeros(b, 3, 4)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 2, 2] = f[:, 0], f[:, 1], f[:, 2]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)
    y = F.grid_sample(y[:, None].float(), grid, mode='nearest', padding_mode='border', align_corners=False)[:, 0].long()
    return x, y


def weighted_loss(logits, y, class_w, vw):
    """Class-weighted cross-entropy with a per-voxel weight vw (label provenance) + soft Dice over
    the voxels whose weight is not 0. With vw all 1 this is F.cross_entropy(weight=class_w) + Dice."""
    ce = F.cross_entropy(logits, y, weight=class_w, reduction='none')
    den = (class_w[y] * vw).sum()
    ce = (ce * vw).sum() / den.clamp_min(1e-8)
    return ce + dice_loss(logits, y, (vw > 0).float())


def dice_loss(logits, y, mask=None):
    p = torch.softmax(logits, 1)[:, 1:]
    oh = F.one_hot(y, NCLS).permute(0, 4, 1, 2, 3).float()[:, 1:]
    if mask is not None:
        p, oh = p * mask[:, None], oh * mask[:, None]
    dims = (0, 2, 3, 4)
    inter = (p * oh).sum(dims)
    den = p.sum(dims) + oh.sum(dims)
    return 1 - ((2 * inter + 1) / (den + 1)).mean()


def gaussian_weights(shape_zyx):
    """Importance map: product of 1-D Gaussians with sigma = patch / 8, centred, max 1."""
    w = torch.ones(shape_zyx)
    for ax, n in enumerate(shape_zyx):
        c = (n - 1) / 2
        g = torch.exp(-((torch.arange(n, dtype=torch.float32) - c) ** 2) / (2 * (n / 8) ** 2))
        sh = [1, 1, 1]
        sh[ax] = n
        w = w * g.view(sh)
    return (w / w.max()).clamp_min(1e-3)


def window_starts(n, p, overlap=0.5):
    if n <= p:
        return [0]
    steps = int(np.ceil((n - p) / (p * (1 - overlap)))) + 1
    return sorted({int(round(i * (n - p) / (steps - 1))) for i in range(steps)})


def sliding_window(model, image, overlap=0.5, batch=4):
    """Softmax probabilities [C, z, y, x] over a whole volume [z, y, x] at the model spacing."""
    pz, py, px = PATCH[2], PATCH[1], PATCH[0]
    img, pads = pad_to(image, (pz, py, px), 0.0)
    nz, ny, nx = img.shape
    w = gaussian_weights((pz, py, px))
    acc = torch.zeros(NCLS, nz, ny, nx)
    norm = torch.zeros(nz, ny, nx)
    starts = [(z, y, x) for z in window_starts(nz, pz, overlap) for y in window_starts(ny, py, overlap) for x in window_starts(nx, px, overlap)]
    t = torch.as_tensor(img)
    model.eval()
    with torch.no_grad():
        for i in range(0, len(starts), batch):
            chunk = starts[i:i + batch]
            xb = torch.stack([t[z:z + pz, y:y + py, x:x + px] for z, y, x in chunk])[:, None]
            prob = torch.softmax(model(xb), 1)
            for (z, y, x), pr in zip(chunk, prob):
                acc[:, z:z + pz, y:y + py, x:x + px] += pr * w
                norm[z:z + pz, y:y + py, x:x + px] += w
    acc /= norm
    (z0, z1), (y0, y1), (x0, x1) = pads
    return acc[:, z0:nz - z1, y0:ny - y1, x0:nx - x1]


def dice_per_organ(pred, truth, skip=()):
    out = {}
    for c, name in enumerate(ORGANS, start=1):
        if name in skip:
            out[name] = None
            continue
        a, b = pred == c, truth == c
        s = a.sum() + b.sum()
        out[name] = None if s == 0 else float(2 * (a & b).sum() / s)
    return out


def predict_case(model, case):
    """Label map at the case's original geometry, via the sliding window at the model spacing."""
    prob = sliding_window(model, case['image'])
    prob = resample(prob.numpy(), SPACING, case['spacing'], dst_shape=case['shape'])
    return prob.argmax(0).numpy().astype(np.uint8)


def evaluate(model, cases):
    per_case, preds = [], []
    for c in cases:
        pred = predict_case(model, c)
        preds.append(pred)
        # Organs whose held-out label is a pseudo-label (the parent's own prediction) are not scored:
        # against them any change from the parent would count as an error.
        per_case.append(dice_per_organ(pred, c['truth'], {n for n, p in c.get('provenance', {}).items() if p in ('pseudo', 'none')}))
    organs = {}
    for name in ORGANS:
        v = [d[name] for d in per_case if d[name] is not None]
        organs[name] = round(float(np.mean(v)), 4) if v else None
    scored = [v for v in organs.values() if v is not None]
    if not scored:
        raise ValueError('no held-out organ has an original or revised label to score against (all are pseudo-labels)')
    mean = round(float(np.mean(scored)), 4)
    return {'dice': organs, 'mean_dice': mean, 'n': len(cases)}, preds


def parse_label_weights(text):
    """'original=1,revised=1,pseudo=0.5' -> dict; a weight 0 leaves those labels out of the loss."""
    out = {'original': 1.0, 'revised': 1.0, 'pseudo': 1.0}
    for part in filter(None, (text or '').split(',')):
        k, _, v = part.partition('=')
        if k.strip() not in out:
            raise ValueError(f'--label-weights: unknown provenance {k!r}; use original, revised, pseudo')
        w = float(v)
        if not 0 <= w <= 10:
            raise ValueError(f'--label-weights: {k}={v} must be a number from 0 to 10')
        out[k.strip()] = w
    return out


def label_weight_lut(case, weights):
    """Per label value, the loss weight of its voxels: the weight of the provenance of that organ's
    label in this case (merge rule: original > revised > pseudo); background and organs without a
    recorded provenance weigh 1."""
    lut = np.ones(NCLS, np.float32)
    for c, name in enumerate(ORGANS, start=1):
        p = case.get('provenance', {}).get(name)
        if p in weights:
            lut[c] = weights[p]
    return lut


def class_weights(cases, mode='frequency'):
    """Cross-entropy weights 1 / sqrt(voxel frequency), mean 1: small organs count more;
    mode 'none': all 1 (plain cross-entropy, the fine-tuning default: see the module docstring)."""
    if mode == 'none':
        return torch.ones(NCLS)
    if mode != 'frequency':
        raise ValueError(f'--ce-weights {mode!r}: use frequency or none')
    counts = np.zeros(NCLS)
    for c in cases:
        counts += np.bincount(c['label'].ravel(), minlength=NCLS)
    w = 1 / np.sqrt(np.maximum(counts, 1) / counts.sum())
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def train_segmenter(family, data, heldout, out_dir, work, seed=0, steps=200, batch=2, lr=3e-3, aug='none',
                    model_kw=None, threads=2, train_cases=None, heldout_cases=None, train_patch=(48, 48, 24),
                    init=None, label_weights=None, ce_weights=None, parent_heldout=None, revised_share=None):
    """Train (or, with `init` = a parent's model.onnx, fine-tune) a segmenter; export ONNX.
    init: warm start from that ONNX file (warmstart.py: initializers mapped into the network, every
    BatchNorm frozen in eval mode while training); the parent is evaluated on the same held-out
    cases first ('parent_heldout'). label_weights: loss weight per label provenance
    ({'original': 1, 'revised': 1, 'pseudo': 0.5}; 0 = leave those labels out). steps may be 0.
    ce_weights: 'frequency' (1 / sqrt(frequency)) or 'none'; default 'none' with init, else 'frequency'.
    parent_heldout: the parent's metrics on these same held-out cases when already known (the loop's
    fixed held-out set: an accepted child of the last round was scored there as it was exported, and
    a 0-step warm start reproduces it to 1e-5): the parent is then not evaluated again.
    revised_share: the share of patches drawn from the cases holding an expert revision (label
    provenance 'revised'), the rest from all cases; default None: every patch from a case drawn
    uniformly (the reviews are then a few of many cases)."""
    ce_weights = ce_weights or ('none' if init else 'frequency')
    set_threads(threads)
    seed_everything(seed)
    t0 = time.time()
    train = read_abdomen(data, train_cases)
    test = read_abdomen(heldout, heldout_cases)
    log(f'[{family}] {len(train)} training cases, {len(test)} held-out ({time.time() - t0:.1f} s to read)')
    model = build_segmenter(family, NCLS, **(model_kw or {}))
    parent_metrics = None
    if init:
        from warmstart import load_onnx_weights, freeze_batchnorm
        # The probe input only orders the layers (one forward pass): 16³ divides by every family's
        # down-sampling and costs 1/32 of a full patch (the patch-sized probe was a sixth of a
        # test-sized fine-tune's time).
        n = load_onnx_weights(model, init, torch.zeros(1, 1, 16, 16, 16))
        log(f'[{family}] warm start: {n} tensors from {os.path.basename(init)}')
        if parent_heldout is not None:
            parent_metrics = parent_heldout
        else:
            parent_metrics, _ = evaluate(model, test)
        log(f'[{family}] parent held-out mean Dice {parent_metrics["mean_dice"]:.3f}{" (known)" if parent_heldout is not None else ""}')
    lw = parse_label_weights(label_weights) if isinstance(label_weights, (str, type(None))) else label_weights
    luts = [label_weight_lut(c, lw) for c in train]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=max(0.1, 3 / steps)) if steps > 0 else None
    g = torch.Generator().manual_seed(seed)
    weight = class_weights(train, ce_weights)
    revised_idx = [i for i, c in enumerate(train) if 'revised' in c.get('provenance', {}).values()]
    if revised_share is not None and not 0 <= revised_share <= 1:
        raise ValueError(f'revised_share {revised_share} must be from 0 to 1')
    history = []
    patches_revised = 0
    t1 = time.time()
    run = 0.0
    for step in range(steps):
        model.train()
        if init:
            freeze_batchnorm(model)
        picks = torch.randint(0, len(train), (batch,), generator=g).tolist()
        if revised_share and revised_idx:
            # A share of 0 draws no extra numbers, so it trains exactly as no share (the same patches).
            # Each patch's case: a revised case with probability revised_share, else the uniform pick.
            coin = torch.rand(batch, generator=g).tolist()
            alt = torch.randint(0, len(revised_idx), (batch,), generator=g).tolist()
            picks = [revised_idx[a] if u < revised_share else p for p, u, a in zip(picks, coin, alt)]
        patches_revised += sum(i in revised_idx for i in picks)
        pairs = [sample_patch(train[i], g, patch=train_patch) for i in picks]
        xb = torch.as_tensor(np.stack([p[0] for p in pairs]))
        yb = torch.as_tensor(np.stack([p[1] for p in pairs]).astype(np.int64))
        if aug == 'spatial':
            xb, yb = zoom_pair(xb, yb, g)
        xb = augment(xb, g, 'none' if aug == 'none' else 'intensity')
        logits = model(xb)
        vw = torch.as_tensor(np.stack([luts[i][y.numpy()] for i, y in zip(picks, yb)]))
        loss = weighted_loss(logits, yb, weight, vw)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if not torch.isfinite(loss):
            raise RuntimeError(f'[{family}] loss is {float(loss)} at step {step + 1}: lower --lr')
        run = 0.9 * run + 0.1 * float(loss) if step else float(loss)
        if (step + 1) % 25 == 0 or step + 1 == steps:
            history.append({'step': step + 1, 'loss': round(run, 4)})
            log(f'[{family}] step {step + 1}/{steps} loss {run:.4f} ({time.time() - t1:.0f} s)')
    train_s = time.time() - t1
    t2 = time.time()
    metrics, preds = evaluate(model, test)
    log(f'[{family}] held-out mean Dice {metrics["mean_dice"]:.3f} {metrics["dice"]} ({time.time() - t2:.0f} s to evaluate)')
    os.makedirs(out_dir, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    example = torch.as_tensor(np.stack([sample_patch(test[0], torch.Generator().manual_seed(1))[0] for _ in range(2)]))
    model.eval()
    export_onnx(model, example, os.path.join(out_dir, 'model.onnx'))
    write_reference(model, example, os.path.join(work, 'reference.bin'))
    np.savez_compressed(os.path.join(work, 'heldout-predictions.npz'), **{c['case']: p for c, p in zip(test, preds)})
    return {
        'family': family, 'parameters': count_parameters(model), 'steps': steps, 'batch': batch, 'lr': lr, 'seed': seed,
        'augmentation': aug, 'model_kw': model_kw or {}, 'train_seconds': round(train_s, 1), 'history': history,
        'n_train': len(train), 'patches_seen': steps * batch, 'train_patch': list(train_patch),
        'class_weights': [round(float(v), 3) for v in weight], 'heldout': metrics,
        'heldout_cases': [c['case'] for c in test], 'train_cases': [c['case'] for c in train],
        'parent_heldout': parent_metrics, 'warm_start': os.path.basename(init) if init else None,
        'label_weights': lw, 'ce_weights': ce_weights, 'threads': threads, 'revised_share': revised_share,
        'patches_revised': patches_revised, 'revised_cases': [train[i]['case'] for i in revised_idx],
    }


def finetune_outputs(r, parent_dir, out_dir):
    """model.json (the parent's manifest: same name, input, labels) and card.json / card.md (the
    parent's card with this training, its held-out metrics and the parent's on the same cases)."""
    with open(os.path.join(parent_dir, 'model.json')) as f:
        manifest = json.load(f)
    manifest['model'] = 'model.onnx'
    manifest['card'] = 'card.md'
    card = {}
    if os.path.exists(os.path.join(parent_dir, 'card.json')):
        with open(os.path.join(parent_dir, 'card.json')) as f:
            card = json.load(f)
    card['training'] = {k: r[k] for k in ('steps', 'batch', 'lr', 'seed', 'augmentation', 'train_seconds', 'n_train', 'patches_seen', 'train_patch', 'label_weights', 'warm_start', 'ce_weights', 'threads', 'revised_share', 'revised_cases', 'patches_revised')}
    card['data'] = {'train': {'cases': r['train_cases'], 'n': r['n_train']}, 'heldout': {'cases': r['heldout_cases'], 'n': len(r['heldout_cases'])}}
    card['metrics'] = {'heldout': r['heldout'], 'parent_heldout': r['parent_heldout']}
    card['summary'] = f"{manifest.get('name')} fine-tuned from its parent on {r['n_train']} case(s) of merged labels (original > revised > pseudo) for {r['steps']} steps."
    with open(os.path.join(out_dir, 'model.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
    with open(os.path.join(out_dir, 'card.json'), 'w') as f:
        json.dump(card, f, indent=1)
    ph = r['parent_heldout'] or {}
    with open(os.path.join(out_dir, 'card.md'), 'w') as f:
        f.write(f"# {manifest.get('name')} (fine-tuned)\n\n{card['summary']}\n\n"
                f"Held-out mean Dice {r['heldout']['mean_dice']:.4f} (parent {ph.get('mean_dice', float('nan')):.4f}) on {len(r['heldout_cases'])} case(s).\n"
                f"Label weights by provenance: {r['label_weights']}; cross-entropy class weights: {r['ce_weights']}. Trained {r['train_seconds']} s.\n")


def finetune_job(spec):
    """One warm-started fine-tune (a `--jobs` entry, or the command line with --init): spec keys
    init (a model folder), data, heldout, out, steps, seed, threads, lr (default 3e-4),
    label_weights ('original=1,...' or a dict), ce_weights, family (default: the card's).
    Writes model.onnx, model.json, card.json, card.md and work/ into out; returns the summary
    line's dict."""
    kw, family = {}, spec.get('family')
    card_path = os.path.join(spec['init'], 'card.json')
    if os.path.exists(card_path):
        with open(card_path) as f:
            arch = json.load(f).get('architecture', {})
        family = family or arch.get('family')
        kw = arch.get('options', {}) or {}
    if not family:
        raise ValueError(f"{spec['init']}: no card.json naming the family; pass --family")
    lr = spec.get('lr') if spec.get('lr') is not None else 3e-4
    steps = int(spec.get('steps', 40))
    if steps < 0 or 0 < steps < 4:
        raise ValueError(f'--steps {steps}: 0 (export the warm-started model as is) or at least 4 (the one-cycle schedule)')
    r = train_segmenter(family, spec['data'], spec['heldout'], spec['out'], os.path.join(spec['out'], 'work'), int(spec.get('seed', 0)), steps,
                        lr=lr, aug=spec.get('aug', 'none'), model_kw=kw, threads=int(spec.get('threads', 1)),
                        init=os.path.join(spec['init'], 'model.onnx'), label_weights=spec.get('label_weights'), ce_weights=spec.get('ce_weights'),
                        parent_heldout=spec.get('parent_heldout'), revised_share=spec.get('revised_share'))
    finetune_outputs(r, spec['init'], spec['out'])
    return {'heldout': r['heldout'], 'parent_heldout': r['parent_heldout'], 'train_seconds': r['train_seconds'],
            'steps': r['steps'], 'train_cases': r['train_cases'], 'heldout_cases': r['heldout_cases'],
            'label_weights': r['label_weights'], 'ce_weights': r['ce_weights'], 'family': family, 'model_kw': kw, 'lr': lr}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--family', choices=['unet', 'resunet', 'segresnet'], help="default: the --init model's card")
    ap.add_argument('--data')
    ap.add_argument('--heldout')
    ap.add_argument('--out')
    ap.add_argument('--steps', type=int, default=200)
    ap.add_argument('--aug', default='none', choices=['none', 'intensity', 'spatial'])
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--lr', type=float, default=None, help='peak learning rate (default 3e-3; 3e-4 with --init, the best of 2e-5, 1e-4, 3e-4 measured on the loop\'s first round)')
    ap.add_argument('--ce-weights', choices=['frequency', 'none'], default=None, help='cross-entropy class weights: 1/sqrt(frequency) (default from random weights) or none (default with --init: the weights trade Dice for small-organ recall)')
    ap.add_argument('--init', help='warm start: a model folder (model.onnx, model.json, card.json) to fine-tune')
    ap.add_argument('--label-weights', default='', help='loss weight per label provenance, e.g. original=1,revised=1,pseudo=0.5 (0 leaves pseudo-labels out)')
    ap.add_argument('--jobs', help='several warm-started fine-tunes in this one process (torch imported once; a held-out folder read once): '
                    'a JSON file holding a list of {init, data, heldout, out, steps, seed, threads, lr, label_weights, parent_heldout?, revised_share?}; '
                    'prints one JSON line per job, {"job": i, ...}, in order')
    a = ap.parse_args()
    if a.jobs:
        with open(a.jobs) as f:
            jobs = json.load(f)
        for i, spec in enumerate(jobs):
            r = finetune_job(spec)
            print(json.dumps({'job': i, **r}), flush=True)
        return
    for k in ('data', 'heldout', 'out'):
        if getattr(a, k) is None:
            ap.error(f'--{k} is required (or --jobs FILE)')
    if a.init:
        if a.steps < 0 or (0 < a.steps < 4):
            ap.error(f'--steps {a.steps}: 0 (export the warm-started model as is) or at least 4 (the one-cycle schedule)')
        r = finetune_job({'init': a.init, 'family': a.family, 'data': a.data, 'heldout': a.heldout, 'out': a.out, 'steps': a.steps, 'seed': a.seed,
                          'threads': a.threads, 'lr': a.lr, 'aug': a.aug, 'label_weights': a.label_weights, 'ce_weights': a.ce_weights})
        print(json.dumps(r))
        return
    if not a.family:
        ap.error('--family is required (or an --init model whose card.json names it)')
    lr = a.lr if a.lr is not None else 3e-3
    r = train_segmenter(a.family, a.data, a.heldout, a.out, a.out, a.seed, a.steps, lr=lr, aug=a.aug,
                        threads=a.threads, label_weights=a.label_weights, ce_weights=a.ce_weights)
    print(json.dumps({'heldout': r['heldout'], 'parent_heldout': r['parent_heldout'], 'train_seconds': r['train_seconds'],
                      'steps': r['steps'], 'train_cases': r['train_cases'], 'heldout_cases': r['heldout_cases'],
                      'label_weights': r['label_weights'], 'ce_weights': r['ce_weights'], 'family': a.family, 'model_kw': {}, 'lr': lr}))


if __name__ == '__main__':
    main()
