"""Unit tests of the trainer's pieces: /usr/bin/python3 -m unittest discover -s tools/train"""
import os
import sys
import unittest

import nibabel as nib
import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train2d  # noqa: E402
import train3d  # noqa: E402
from models2d import build_classifier  # noqa: E402
from models3d import build_segmenter  # noqa: E402

torch.set_num_threads(1)


class Models(unittest.TestCase):
    def test_classifiers_end_in_pool_dropout_linear_with_a_16x16_target(self):
        for fam in ('resnet', 'densenet', 'efficientnet'):
            m = build_classifier(fam, 4, 0.3).eval()
            y = m(torch.zeros(2, 3, 256, 256))
            self.assertEqual(tuple(y.shape), (2, 4))
            head = m.fc if fam == 'resnet' else m.classifier
            self.assertIsInstance(head[0], nn.Dropout)
            self.assertEqual(head[0].p, 0.3)
            self.assertIsInstance(head[1], nn.Linear)
            feats = {}
            pool = m.avgpool if fam != 'densenet' else None
            if pool is not None:
                h = pool.register_forward_hook(lambda _m, i, _o: feats.update(x=i[0]))
                m(torch.zeros(1, 3, 256, 256))
                h.remove()
            else:
                feats['x'] = m.features(torch.zeros(1, 3, 256, 256))
            self.assertEqual(tuple(feats['x'].shape[2:]), (16, 16), fam)

    def test_segmenters_keep_the_patch_shape(self):
        for fam in ('unet', 'resunet', 'segresnet'):
            m = build_segmenter(fam, 10).eval()
            self.assertEqual(tuple(m(torch.zeros(1, 1, 32, 64, 64)).shape), (1, 10, 32, 64, 64))


class Geometry(unittest.TestCase):
    def test_to_lps_reorders_and_flips_axes_with_their_spacing(self):
        a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
        # array axes: 0 -> superior (3.5 mm), 1 -> anterior (2.5 mm), 2 -> right (1.5 mm)
        aff = np.array([[0, 0, 1.5, 0], [0, 2.5, 0, 0], [3.5, 0, 0, 0], [0, 0, 0, 1]], float)
        d, sp = train3d.to_lps(nib.Nifti1Image(a, aff))
        self.assertEqual(d.shape, (4, 3, 2))
        np.testing.assert_allclose(sp, [1.5, 2.5, 3.5])
        # LPS x = -R: flipped array axis 2; y = -A: flipped axis 1; z = S: axis 0
        np.testing.assert_array_equal(d, a.transpose(2, 1, 0)[::-1, ::-1, :])

    def test_resample_keeps_the_first_voxel_centre_and_is_linear(self):
        z, y, x = np.meshgrid(np.arange(7), np.arange(9), np.arange(11), indexing='ij')
        f = (2 * x * 1.0 + 3 * y * 2.0 + 5 * z * 3.0).astype(np.float32)  # linear in mm
        r = train3d.resample(f[None], (1.0, 2.0, 3.0), (2.5, 3.0, 4.0))[0].numpy()
        zz, yy, xx = np.meshgrid(np.arange(r.shape[0]), np.arange(r.shape[1]), np.arange(r.shape[2]), indexing='ij')
        np.testing.assert_allclose(r, 2 * xx * 2.5 + 3 * yy * 3.0 + 5 * zz * 4.0, rtol=1e-5, atol=1e-3)
        self.assertEqual(r.shape, (int(6 * 3 // 4) + 1, int(8 * 2 // 3) + 1, int(10 * 1 // 2.5) + 1))

    def test_window_starts_cover_the_axis_with_the_overlap(self):
        for n, p in ((90, 64), (64, 64), (40, 64), (200, 64), (45, 32)):
            s = train3d.window_starts(n, p)
            self.assertEqual(s[0], 0)
            self.assertEqual(s[-1], max(0, n - p))
            self.assertTrue(all(b - a <= p // 2 for a, b in zip(s, s[1:])))

    def test_sliding_window_of_a_pointwise_model_is_the_whole_volume_pass(self):
        class Pointwise(nn.Module):
            def forward(self, x):
                return torch.cat([x * k for k in range(train3d.NCLS)], 1)
        vol = np.random.default_rng(0).random((40, 90, 70), dtype=np.float32)
        got = train3d.sliding_window(Pointwise(), vol).numpy()
        want = torch.softmax(torch.cat([torch.as_tensor(vol)[None] * k for k in range(train3d.NCLS)]), 0).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)

    def test_gaussian_weights_follow_the_closed_form(self):
        w = train3d.gaussian_weights((8, 16, 16)).numpy()
        g = lambda n: np.exp(-((np.arange(n) - (n - 1) / 2) ** 2) / (2 * (n / 8) ** 2))  # noqa: E731
        want = g(8)[:, None, None] * g(16)[None, :, None] * g(16)[None, None, :]
        np.testing.assert_allclose(w, np.maximum(want / want.max(), 1e-3), rtol=1e-5)


class Metrics(unittest.TestCase):
    def test_dice_per_organ(self):
        a = np.zeros((4, 4, 4), np.uint8)
        b = np.zeros_like(a)
        a[:2] = 1
        b[1:3] = 1
        a[3, 0, 0] = 5
        d = train3d.dice_per_organ(a, b)
        self.assertAlmostEqual(d['spleen'], 2 * 16 / 64)
        self.assertEqual(d['liver'], 0.0)
        self.assertIsNone(d['aorta'])

    def test_auroc_matches_pairwise_counting(self):
        rng = np.random.default_rng(1)
        s = rng.integers(0, 5, 50).astype(float)
        y = rng.random(50) < 0.4
        pairs = [(1.0 if p > n else 0.5 if p == n else 0.0) for p in s[y] for n in s[~y]]
        self.assertAlmostEqual(train2d.auroc(s, y), float(np.mean(pairs)))

    def test_oracle_ratio_against_enumerated_selections(self):
        import itertools
        from failure_check import oracle_ratio
        # One case holds all the error: reviewing it (1 of 4) gains 4 x the random expectation.
        self.assertAlmostEqual(oracle_ratio({'a': [0.8, 0, 0, 0]}, 0.25), 4.0)
        # Even errors: ranking cannot help.
        self.assertAlmostEqual(oracle_ratio({'a': [0.2] * 5}, 0.2), 1.0)
        # Two sources, k = ceil(f n) per source; random = the mean over every k-subset, enumerated.
        errs = {'a': [0.5, 0.1, 0.05, 0.0, 0.3], 'b': [0.2, 0.2, 0.9]}
        top = rnd = 0.0
        for e in errs.values():
            k = int(np.ceil(0.3 * len(e)))
            top += sum(sorted(e)[::-1][:k])
            subsets = list(itertools.combinations(e, k))
            rnd += float(np.mean([sum(c) for c in subsets]))
        self.assertAlmostEqual(oracle_ratio(errs, 0.3), top / rnd)


if __name__ == '__main__':
    unittest.main()
