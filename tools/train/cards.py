"""Manifests (model.json, format medmask-model/1) and model cards (card.md + card.json)."""
import json
import os

from common import OPSET, environment, sha256, write_json
from train2d import MEAN, SCALE, STD
from train3d import ORGANS, PATCH, SPACING, WINDOW

ARCH_2D = {
    'resnet': 'torchvision.models.resnet.ResNet with BasicBlock, one block per stage, widths 16-32-64-128, '
              'layer4 at stride 1 (total stride 16); Dropout before the final Linear',
    'densenet': 'torchvision.models.DenseNet, growth rate 16, three dense blocks (2, 4 and 6 layers), 32 initial features, '
                'bottleneck 2 x growth (total stride 16); Dropout before the final Linear',
    'efficientnet': 'torchvision.models.efficientnet.EfficientNet (MBConv + squeeze-excitation, SiLU) with a reduced '
                    'inverted-residual config: 5 stages of one block, widths 16-24-40-64-96, strides 2-2-2-1-1, head conv '
                    '256 channels (total stride 16); its classifier Dropout before the final Linear',
}
ARCH_3D = {
    'unet': '3D U-Net (Cicek et al. 2016): two conv-BN-ReLU per level, max-pool down, transposed conv up, concatenated skips',
    'resunet': 'residual 3D U-Net (as MONAI UNet with residual units): strided residual units down, transposed conv up, additive skips',
    'segresnet': 'SegResNet-like (Myronenko 2018): pre-activation residual blocks, asymmetric encoder (1-2-2-3 blocks), '
                 'light decoder, 1x1x1 conv + trilinear upsampling, additive skips',
}


TASK_NOTE = ('\n- **Task:** lesion presence: `abnormal` = any nodule, consolidation or cavity (the `abnormal` column of '
             'the phantoms\' labels.csv); `medmask train-head` can fit a lesion-class head on these features.')


def classifier_manifest(name, r, target):
    return {
        'format': 'medmask-model/1',
        'name': name,
        'task': 'classify',
        'model': 'model.onnx',
        'card': 'card.md',
        'input': {'name': 'input', 'layout': 'NCHW', 'height': r['size'], 'width': r['size'], 'channels': 3},
        'preprocess': {
            'resize': 'stretch',
            'channels': 'grey-to-rgb',
            'intensity': {'mode': 'mean-std', 'mean': [MEAN] * 3, 'std': [STD] * 3, 'scale': SCALE},
        },
        'output': {'name': 'logits', 'activation': 'softmax'},
        'classes': r['classes'],
        'cam': {'target': target},
        'mc': {'dropout': r['dropout'], 'samples': 30},
    }


def segmenter_manifest(name):
    return {
        'format': 'medmask-model/1',
        'name': name,
        'task': 'segment',
        'model': 'model.onnx',
        'card': 'card.md',
        'input': {'name': 'input', 'layout': 'NCDHW', 'patch': list(PATCH), 'channels': 1},
        'spacing': list(SPACING),
        'preprocess': {'intensity': {'mode': 'ct-window', 'center': WINDOW['center'], 'width': WINDOW['width']}},
        'output': {'name': 'logits', 'activation': 'softmax'},
        'labels': {str(i + 1): o for i, o in enumerate(ORGANS)},
    }


def _export_info(out_dir, check):
    path = os.path.join(out_dir, 'model.onnx')
    return {'opset': OPSET, 'bytes': os.path.getsize(path), 'sha256': sha256(path),
            'ort_vs_torch_max_abs_diff': check['maxAbsDiff'], 'max_abs_logit': check['maxAbsLogit']}


def write_classifier_card(out_dir, name, r, data, check, inspect):
    card = {
        'name': name,
        'task': 'classify',
        'summary': f'Small {r["family"]} classifier of chest phantoms ({", ".join(r["classes"])}); a demo model, '
                   'trained on synthetic images only: not for clinical use.',
        'architecture': {'family': r['family'], 'description': ARCH_2D[r['family']], 'parameters': r['parameters'],
                         'input': [3, r['size'], r['size']], 'dropout': r['dropout'],
                         'cam_target': inspect['target'], 'head': [n['op'] for n in inspect['head']]},
        'data': data,
        'training': {k: r[k] for k in ('seed', 'epochs', 'best_epoch', 'batch', 'lr', 'train_seconds', 'n_train', 'n_val', 'history')}
        | {'optimizer': 'AdamW (weight decay 1e-4), one-cycle learning rate, class-weighted cross-entropy with label smoothing 0.05',
           'augmentation': 'horizontal flip, translation up to 1/16 of the size, brightness/contrast jitter, Gaussian noise'},
        'metrics': {'val_accuracy': r['val_accuracy'], 'heldout': r['heldout']},
        'export': _export_info(out_dir, check),
        'environment': environment(),
    }
    write_json(os.path.join(out_dir, 'card.json'), card)
    h = r['heldout']
    conf = '\n'.join(f'| {c} | ' + ' | '.join(str(v) for v in row) + ' |' for c, row in zip(r['classes'], h['confusion']))
    md = f"""# {name}

{card['summary']}

- **Architecture:** {ARCH_2D[r['family']]}. {r['parameters']:,} parameters, input 3 x {r['size']} x {r['size']} (grey copied to 3 channels).
- **Output:** `logits`, softmax over {', '.join(r['classes'])}.{TASK_NOTE if r['task'] == 'presence' else ''}
- **CAM target** ({'pinned in model.json; the runtime default is the tensor that feeds the global pooling' if inspect['candidates'][0]['activations'] else "the runtime's default"}, checked with `medmask model inspect`): `{inspect['target']}`; head after it: {' -> '.join(n['op'] for n in inspect['head'])}.
- **Head MC dropout:** rate {r['dropout']} (the Dropout before the final Linear).

## Data
{_data_md(data)}

## Training
Seed {r['seed']}, {r['epochs']} epochs (kept the epoch with the best validation accuracy: {r['best_epoch']}), batch {r['batch']},
AdamW (lr {r['lr']}, one-cycle, weight decay 1e-4), class-weighted cross-entropy with label smoothing 0.05,
{r['n_train']} training / {r['n_val']} validation images; {r['train_seconds']} s on {card['environment']['threads']} CPU thread(s).
Augmentation: {card['training']['augmentation']}.

## Held-out metrics ({h['n']} images, seed {data['heldout']['seed']})
- **Accuracy: {h['accuracy']:.3f}** (validation {r['val_accuracy']:.3f})
- AUROC abnormal vs healthy (1 - p(healthy)): {h['auroc_abnormal']}
- Recall per class: {', '.join(f'{k} {v:.3f}' for k, v in h['per_class_recall'].items())}

Confusion matrix (rows: truth, columns: prediction):

| truth \\ predicted | {' | '.join(r['classes'])} |
|---|{'---|' * len(r['classes'])}
{conf}

## Export
ONNX opset {OPSET}, input `input` [batch, 3, {r['size']}, {r['size']}], output `logits` [batch, {len(r['classes'])}], dynamic batch;
{card['export']['bytes']:,} bytes, sha256 `{card['export']['sha256'][:16]}…`; onnxruntime vs torch max |difference| {check['maxAbsDiff']:.2e}.
Rebuild: `/usr/bin/python3 tools/train/build_zoo.py` (see tools/train/README.md).
"""
    with open(os.path.join(out_dir, 'card.md'), 'w') as f:
        f.write(md)
    return card


def _by_source_md(by_source, split=None):
    if not by_source:
        return ''
    both = ''
    if split:
        f = lambda k: f"{split[k]['mean_dice']:.3f} over {split[k]['n']} cases of {', '.join(split[k]['sources'])}"  # noqa: E731
        both = f"\nSources seen in training: **{f('seen_sources')}**; sources never seen: **{f('unseen_sources')}**.\n"
    rows = '\n'.join(f'| {s} | {v["n"]} | {"yes" if v["seen_in_training"] else "**no**"} | {v["mean_dice"]:.3f} |' for s, v in by_source.items())
    return f"""
Per source (mean organ Dice per case, organs present in the truth or the prediction; sources not seen
in training in bold):

| source | cases | seen in training | mean Dice |
|---|---|---|---|
{rows}
{both}"""


def _data_md(data):
    lines = []
    for k in ('train', 'heldout'):
        d = data[k]
        lines.append(f'- {k}: `{d["command"]}` ({d["note"]})')
    return '\n'.join(lines)


def _warm_md(r):
    if not r.get('warm_start'):
        return ''
    p = r.get('parent_heldout') or {}
    return (f"\nWarm start: fine-tuned from `{r['warm_start']}` (the demo model trained on clean phantoms of every source; "
            f"BatchNorm frozen, cross-entropy {'unweighted' if r.get('ce_weights') == 'none' else 'class-weighted'}); "
            f"that start's mean Dice on the same held-out cases: {p.get('mean_dice', float('nan')):.3f}.")


def write_segmenter_card(out_dir, name, r, data, check, imperfection, agreement=None, by_source=None, split=None, train_sources=None):
    """by_source: held-out Dice per source; split: seen vs unseen sources (build_zoo.seen_vs_unseen);
    train_sources: the sources of the training set (None: all)."""
    card = {
        'name': name,
        'task': 'segment',
        'summary': f'Small {r["family"]} 3D segmenter of abdominal CT phantoms (9 organs + background); a demo model, '
                   'trained on synthetic volumes only: not for clinical use.',
        'architecture': {'family': r['family'], 'description': ARCH_3D[r['family']], 'parameters': r['parameters'],
                         'options': r['model_kw'], 'patch_xyz': list(PATCH), 'spacing_mm_xyz': list(SPACING)},
        'data': data,
        'training': {k: r[k] for k in ('seed', 'steps', 'batch', 'lr', 'augmentation', 'train_seconds', 'n_train', 'patches_seen',
                                       'train_patch', 'class_weights', 'history')}
        | {'optimizer': 'AdamW (weight decay 1e-4), one-cycle learning rate',
           'loss': 'class-weighted cross-entropy (1 / sqrt(voxel frequency)) + soft Dice (9 organs)',
           'sampling': 'random patches, 2/3 centred (+- patch/4) on a voxel of a randomly chosen organ present in the case'},
        'imperfection': imperfection,
        'metrics': {'heldout': r['heldout'],
                    'evaluation': 'sliding window at the model spacing (overlap 0.5, Gaussian weights sigma = patch/8), '
                                  'softmax resampled to each case\'s own grid, argmax, Dice vs the full truth'},
        'export': _export_info(out_dir, check),
        'environment': environment(),
    }
    if agreement:
        card['metrics']['agreement_with_other_models'] = agreement
    if by_source:
        card['metrics']['heldout_by_source'] = by_source
    if split:
        card['metrics']['heldout_seen_vs_unseen'] = split
    if train_sources:
        card['data']['train_sources'] = list(train_sources)
    if r.get('warm_start'):
        # A fine-tune of an earlier model (build_zoo.py --init-dir): what it started from, and that
        # start's Dice on the same held-out cases.
        card['training']['warm_start'] = {'parent': r['warm_start'], 'parent_heldout': r.get('parent_heldout'),
                                          'batchnorm': 'frozen (eval mode)', 'ce_weights': r.get('ce_weights')}
        if r.get('ce_weights') == 'none':
            card['training']['loss'] = 'cross-entropy (unweighted) + soft Dice (9 organs)'
    write_json(os.path.join(out_dir, 'card.json'), card)
    h = r['heldout']
    rows = '\n'.join(f'| {o} | {"-" if v is None else f"{v:.3f}"} |' for o, v in h['dice'].items())
    agree = ''
    if agreement:
        agree = '\nMean Dice between this model\'s held-out label maps and the other demo models\': ' + \
            ', '.join(f'{k} {v:.3f}' for k, v in agreement.items()) + ' (they differ, as an ensemble should).\n'
    md = f"""# {name}

{card['summary']}

- **Architecture:** {ARCH_3D[r['family']]}. {r['parameters']:,} parameters.
- **Input:** `input` [batch, 1, z, y, x] = [batch, 1, {PATCH[2]}, {PATCH[1]}, {PATCH[0]}] (patch x y z = {list(PATCH)}), voxels in LPS order
  at spacing {list(SPACING)} mm (x y z); CT window centre {WINDOW['center']:g} / width {WINDOW['width']:g} HU, then [0, 1].
- **Output:** `logits` [batch, 10, z, y, x], softmax over channels; channel 0 background, channel k = label k
  ({', '.join(f'{i + 1} {o}' for i, o in enumerate(ORGANS))}).
- **Deliberately imperfect:** {imperfection}

## Data
{_data_md(data)}

## Training
Seed {r['seed']}, {r['steps']} steps of {r['batch']} training patches of {r['train_patch']} (x y z; {r['patches_seen']} patches) from {r['n_train']} cases,
AdamW (lr {r['lr']}, one-cycle), class-weighted cross-entropy + soft Dice, augmentation: {r['augmentation']};
{r['train_seconds']} s on {card['environment']['threads']} CPU thread(s).{_warm_md(r)}

## Held-out metrics ({h['n']} cases, seed {data['heldout']['seed']})
**Mean organ Dice: {h['mean_dice']:.3f}** ({card['metrics']['evaluation']}).

| organ | Dice |
|---|---|
{rows}
{_by_source_md(by_source, split)}{agree}
## Export
ONNX opset {OPSET}, dynamic batch; {card['export']['bytes']:,} bytes, sha256 `{card['export']['sha256'][:16]}…`;
onnxruntime vs torch max |difference| {check['maxAbsDiff']:.2e} on two patches.
Rebuild: `/usr/bin/python3 tools/train/build_zoo.py` (see tools/train/README.md).
"""
    with open(os.path.join(out_dir, 'card.md'), 'w') as f:
        f.write(md)
    return card


def add_cam_metrics(out_dir, cam):
    """Add the CAM localisation figures (cam_eval.py) to a classifier's card.json and card.md."""
    path = os.path.join(out_dir, 'card.json')
    with open(path) as f:
        card = json.load(f)
    card['metrics']['cam_localisation'] = cam
    write_json(path, card)
    md_path = os.path.join(out_dir, 'card.md')
    with open(md_path) as f:
        md = f.read()
    section = (f"\n## CAM localisation ({cam['n']} held-out abnormal images)\n"
               f"XGrad-CAM for `abnormal` through `medmask explain` vs the true lesion masks (tools/train/cam_eval.py): "
               f"pointing game {cam['pointing_game']:.2f}, Dice of the top-k pixels with k = the true lesion area "
               f"{cam['dice_at_true_area']:.2f}, Dice after Otsu inside the lungs {cam['dice_otsu_in_lungs']:.2f}.\n")
    head, sep, tail = md.partition('\n## Export')
    md = head.split('\n## CAM localisation')[0].rstrip('\n') + '\n' + section + sep + tail
    with open(md_path, 'w') as f:
        f.write(md)
