"""The torch side of bench/atlas.bench.ts: the same network as a medmask demo 3D model, run over the
same CT by a straightforward torch CPU sliding window (every window of the grid, overlap 0.5,
Gaussian weights, as MONAI's sliding_window_inference by default), for `speedup_vs_torch` and
`dice_vs_torch`.

"The same network": the ONNX graph itself, dumped by the bench (graph.json: nodes, attributes,
initializer offsets into weights.bin), executed op by op with torch.nn.functional (Conv,
ConvTranspose, BatchNormalization, Relu, Add, Concat, MaxPool, Resize, Constant). The pipeline
around it is tools/train/train3d.py's own evaluation: LPS reorientation, trilinear resampling to
the model spacing, CT window, `sliding_window`, probabilities resampled back to the CT grid,
argmax. Only that is timed (not the torch import, not reading the CT).

usage: /usr/bin/python3 bench/torch_sliding_window.py GRAPH_DIR CT.nii.gz OUT_LABELS.npy [THREADS]
prints one JSON line: seconds, windows, shape
"""
import json
import os
import resource
import sys
import time

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tools', 'train'))
import train3d  # noqa: E402


class OnnxGraph(torch.nn.Module):
    """An ONNX graph of the ops the demo segmenters use, executed with torch."""

    def __init__(self, graph, weights):
        super().__init__()
        self.graph = graph
        self.consts = {}
        for name, t in graph['initializers'].items():
            if 'values' in t:
                arr = np.array(t['values'], dtype=np.float64 if t['type'] == 'float' else np.int64).reshape(t['dims'])
            else:
                arr = np.frombuffer(weights, dtype='<f4', count=int(np.prod(t['dims'])) if t['dims'] else 1, offset=t['offset']).reshape(t['dims'])
            self.consts[name] = torch.as_tensor(np.array(arr))

    def forward(self, x):
        env = dict(self.consts)
        env[self.graph['input']] = x
        for n in self.graph['nodes']:
            a = [env[i] if i else None for i in n['inputs']]
            at = n['attrs']
            op = n['op']
            if op == 'Conv':
                pads = at.get('pads', [0] * 6)
                y = F.conv3d(a[0], a[1], a[2] if len(a) > 2 else None, stride=at.get('strides', [1, 1, 1]), padding=pads[:3],
                             dilation=at.get('dilations', [1, 1, 1]), groups=at.get('group', 1) or 1)
            elif op == 'ConvTranspose':
                pads = at.get('pads', [0] * 6)
                y = F.conv_transpose3d(a[0], a[1], a[2] if len(a) > 2 else None, stride=at.get('strides', [1, 1, 1]), padding=pads[:3],
                                       output_padding=at.get('output_padding', [0, 0, 0]), groups=at.get('group', 1) or 1,
                                       dilation=at.get('dilations', [1, 1, 1]))
            elif op == 'BatchNormalization':
                y = F.batch_norm(a[0], a[3], a[4], a[1], a[2], False, 0.0, at.get('epsilon', 1e-5))
            elif op == 'Relu':
                y = F.relu(a[0])
            elif op == 'Add':
                y = a[0] + a[1]
            elif op == 'Concat':
                y = torch.cat(a, dim=at['axis'])
            elif op == 'MaxPool':
                pads = at.get('pads', [0] * 6)
                y = F.max_pool3d(a[0], at['kernel_shape'], stride=at.get('strides'), padding=pads[:3], ceil_mode=bool(at.get('ceil_mode', 0)))
            elif op == 'Constant':
                y = env[n['outputs'][0]]
            elif op == 'Resize':
                scales = a[2] if len(a) > 2 and a[2] is not None and a[2].numel() else None
                mode = at.get('mode', 'nearest')
                align = at.get('coordinate_transformation_mode', 'half_pixel') == 'align_corners'
                kw = {'scale_factor': [float(s) for s in scales.tolist()[2:]]} if scales is not None else {'size': [int(s) for s in a[3].tolist()[2:]]}
                y = F.interpolate(a[0], mode='trilinear' if mode == 'linear' else 'nearest', **kw, **({'align_corners': align} if mode == 'linear' else {}))
            else:
                raise NotImplementedError(f'ONNX op {op} is not in the bench interpreter')
            env[n['outputs'][0]] = y
        return env[self.graph['output']]


def main():
    graph_dir, ct_path, out_path = sys.argv[1:4]
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    torch.set_num_threads(threads)
    with open(os.path.join(graph_dir, 'graph.json')) as f:
        graph = json.load(f)
    with open(os.path.join(graph_dir, 'weights.bin'), 'rb') as f:
        weights = f.read()
    model = OnnxGraph(graph, weights).eval()
    img = nib.load(ct_path)
    data, spacing = train3d.to_lps(img)
    hu = np.asarray(data, np.float32).transpose(2, 1, 0)  # [z, y, x]
    t0 = time.perf_counter()
    im = train3d.window(hu)
    im_r = train3d.resample(im[None], spacing, train3d.SPACING)[0].numpy()
    prob = train3d.sliding_window(model, np.ascontiguousarray(im_r))
    prob = train3d.resample(prob.numpy(), train3d.SPACING, spacing, dst_shape=hu.shape)
    labels = prob.argmax(0).numpy().astype(np.uint8)
    seconds = time.perf_counter() - t0
    starts = [len(train3d.window_starts(max(n, p), p)) for n, p in zip(im_r.shape, (train3d.PATCH[2], train3d.PATCH[1], train3d.PATCH[0]))]
    # Back to the file's voxel axes (to_lps reoriented them), stored x fastest as medmask's label maps.
    back = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt(('L', 'P', 'S')), nib.orientations.io_orientation(img.affine))
    labels = nib.orientations.apply_orientation(labels.transpose(2, 1, 0), back).transpose(2, 1, 0)
    np.save(out_path, np.ascontiguousarray(labels))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({'seconds': seconds, 'windows': int(np.prod(starts)), 'shape': list(labels.shape), 'peak_rss_mb': round(peak)}))


if __name__ == '__main__':
    main()
