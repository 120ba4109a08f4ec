"""Warm start: load an exported medmask segmenter (ONNX) back into the trainer's torch network.

Choice (issue 16 §2): the ONNX initializers are mapped into the torch network, so every model in
the registry — the bundled demo zoo included, which ships no PyTorch weights — can be fine-tuned
from the one file the product keeps. No state dict is stored beside a model.

How the mapping works. `torch.onnx.export(..., do_constant_folding=True)` keeps parameters that
reach the graph unchanged under their module names (`head.weight`, `up.0.bias`) and folds an
eval-mode BatchNorm that directly follows a convolution into that convolution's weight and bias
(the folded tensors get generated names such as `onnx::Conv_146`). So names alone cannot place
every tensor; the graph's order can: ONNX nodes appear in execution order, and a forward pass of
the torch network with hooks gives its parameterised layers (Conv3d, ConvTranspose3d,
BatchNorm3d) in the same order. Walking both lists together:

- ONNX Conv/ConvTranspose ↔ the next torch convolution of the same kind and weight shape: the
  weight is copied; when the ONNX node has a bias the torch layer lacks, the BatchNorm that follows
  the torch convolution was folded into it — that BatchNorm becomes the identity plus the bias
  (gamma 1, running mean 0, running variance 1 − eps, beta = the folded bias), which gives the
  same eval-mode output as the ONNX graph.
- ONNX BatchNormalization ↔ the next torch BatchNorm3d: scale, bias, mean and variance copied.
- Where a tensor name equals a torch parameter name, the two must agree (a check, not the mapping).

Anything left over on either side is an error naming the first mismatch. Fine-tuning keeps every
BatchNorm in eval mode (frozen statistics; `freeze_batchnorm`), the usual way to fine-tune on few
cases, so a folded BatchNorm stays the identity-plus-bias it was loaded as and a fine-tune of
0 steps reproduces the parent's ONNX output exactly.
"""
import numpy as np
import torch
import torch.nn as nn


def _onnx_param_nodes(path):
    import onnx
    from onnx import numpy_helper
    model = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes = []
    for n in model.graph.node:
        if n.op_type in ('Conv', 'ConvTranspose'):
            w = inits.get(n.input[1])
            b = inits.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
            if w is None:
                raise ValueError(f'{path}: {n.op_type} node {n.name} has a weight that is not an initializer')
            nodes.append({'op': n.op_type, 'name': n.name, 'w': w, 'b': b, 'names': list(n.input[1:])})
        elif n.op_type == 'BatchNormalization':
            scale, bias, mean, var = (inits[i] for i in n.input[1:5])
            eps = next((a.f for a in n.attribute if a.name == 'epsilon'), 1e-5)
            nodes.append({'op': 'BatchNormalization', 'name': n.name, 'scale': scale, 'bias': bias, 'mean': mean, 'var': var, 'eps': eps})
    return nodes, inits


def _torch_param_layers(model, example):
    order = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod))
             for m in model.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d, nn.BatchNorm3d))]
    model.eval()
    with torch.no_grad():
        model(example)
    for h in hooks:
        h.remove()
    seen, out = set(), []
    for m in order:  # a module called twice would appear twice; each is loaded once
        if id(m) not in seen:
            seen.add(id(m))
            out.append(m)
    return out


def load_onnx_weights(model, path, example):
    """Load the initializers of the ONNX file `path` into `model` (see the module docstring).
    `example` is an input of the model's shape ([1, 1, z, y, x]). Returns the number of tensors set."""
    nodes, inits = _onnx_param_nodes(path)
    layers = _torch_param_layers(model, example)
    names = {id(m): n for n, m in model.named_modules()}
    i = j = 0
    loaded = 0
    with torch.no_grad():
        while i < len(layers) and j < len(nodes):
            m, n = layers[i], nodes[j]
            where = f'{path}: ONNX node {j} ({n["op"]} {n["name"]}) vs torch layer {names.get(id(m))} ({type(m).__name__})'
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                want = 'Conv' if isinstance(m, nn.Conv3d) else 'ConvTranspose'
                if n['op'] != want or tuple(n['w'].shape) != tuple(m.weight.shape):
                    raise ValueError(f'{where}: kinds or weight shapes differ ({tuple(n["w"].shape)} vs {tuple(m.weight.shape)})')
                m.weight.copy_(torch.tensor(n['w']))
                loaded += 1
                i += 1
                if n['b'] is not None:
                    if m.bias is not None:
                        m.bias.copy_(torch.tensor(n['b']))
                    else:
                        bn = layers[i] if i < len(layers) else None
                        if not isinstance(bn, nn.BatchNorm3d) or bn.num_features != n['b'].shape[0]:
                            raise ValueError(f'{where}: the ONNX convolution has a bias, the torch one has none and no BatchNorm follows it to fold')
                        bn.weight.fill_(1.0)
                        bn.bias.copy_(torch.tensor(n['b']))
                        bn.running_mean.zero_()
                        bn.running_var.fill_(1.0 - bn.eps)
                        i += 1
                    loaded += 1
                elif m.bias is not None:
                    raise ValueError(f'{where}: the torch convolution has a bias, the ONNX one none')
                j += 1
            else:
                if n['op'] != 'BatchNormalization' or n['scale'].shape[0] != m.num_features:
                    raise ValueError(f'{where}: expected a BatchNormalization of {m.num_features} channels')
                m.weight.copy_(torch.tensor(n['scale']))
                m.bias.copy_(torch.tensor(n['bias']))
                m.running_mean.copy_(torch.tensor(n['mean']))
                m.running_var.copy_(torch.tensor(n['var']))
                m.eps = float(n['eps'])
                loaded += 4
                i += 1
                j += 1
        if i < len(layers) or j < len(nodes):
            raise ValueError(f'{path}: {len(layers) - i} torch layer(s) and {len(nodes) - j} ONNX node(s) left unmatched: '
                             'the file was not exported from this architecture and these options')
        # Names that survived export must agree with what the walk put there.
        params = dict(model.named_parameters())
        for name, arr in inits.items():
            if name in params and not np.allclose(params[name].detach().numpy(), arr, atol=0):
                raise ValueError(f'{path}: initializer {name} disagrees with the torch parameter of that name after loading')
    return loaded


def freeze_batchnorm(model):
    """Put every BatchNorm in eval mode (running statistics frozen; gamma/beta still train).
    Call after each model.train()."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    return model
