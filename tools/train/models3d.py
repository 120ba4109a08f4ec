"""Small 3D segmentation networks of three families, as the AbdomenAtlas-8K ensemble mixes
architectures (Qu et al. 2023 used Swin UNETR, U-Net and nnU-Net):

- `UNet3D`: the classic U-Net (Ronneberger et al. 2015; Cicek et al. 2016): two conv-BN-ReLU per
  level, max-pool down, transposed conv up, skip connections by concatenation.
- `ResUNet3D`: a residual U-Net (as MONAI's UNet with residual units): residual units with a
  strided convolution down, transposed conv up, additive skips.
- `SegResNetLike`: after MONAI's SegResNet (Myronenko 2018): pre-activation residual blocks in an
  asymmetric encoder (more blocks deep) / light decoder, 1x1x1 conv + trilinear upsampling, skips
  added.

All take [N, 1, z, y, x] and return [N, classes, z, y, x] logits (softmax over classes, channel 0
background). BatchNorm (not Instance/GroupNorm) so that each window's output depends only on the
window's voxels through fixed statistics in eval mode, and the ONNX graph stays plain.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn_relu(cin, cout, k=3, stride=1):
    return nn.Sequential(nn.Conv3d(cin, cout, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class UNet3D(nn.Module):
    def __init__(self, classes=10, widths=(8, 16, 32, 48)):
        super().__init__()
        self.widths = list(widths)
        self.enc = nn.ModuleList()
        cin = 1
        for w in widths:
            self.enc.append(nn.Sequential(conv_bn_relu(cin, w), conv_bn_relu(w, w)))
            cin = w
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in range(len(widths) - 1, 0, -1):
            self.up.append(nn.ConvTranspose3d(widths[i], widths[i - 1], 2, stride=2))
            self.dec.append(nn.Sequential(conv_bn_relu(2 * widths[i - 1], widths[i - 1]), conv_bn_relu(widths[i - 1], widths[i - 1])))
        self.head = nn.Conv3d(widths[0], classes, 1)

    def forward(self, x):
        skips = []
        for i, block in enumerate(self.enc):
            x = block(x if i == 0 else F.max_pool3d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], 1))
        return self.head(x)


class ResUnit(nn.Module):
    """Two conv-BN-ReLU with an identity (or 1x1x1 strided projection) shortcut."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(cin, cout, stride=stride), nn.Conv3d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout))
        self.short = nn.Identity() if cin == cout and stride == 1 else nn.Sequential(nn.Conv3d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x):
        return F.relu(self.body(x) + self.short(x))


class ResUNet3D(nn.Module):
    def __init__(self, classes=10, widths=(12, 24, 48, 64)):
        super().__init__()
        self.widths = list(widths)
        self.stem = ResUnit(1, widths[0])
        self.down = nn.ModuleList([ResUnit(widths[i - 1], widths[i], stride=2) for i in range(1, len(widths))])
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in range(len(widths) - 1, 0, -1):
            self.up.append(nn.Sequential(nn.ConvTranspose3d(widths[i], widths[i - 1], 2, stride=2, bias=False), nn.BatchNorm3d(widths[i - 1]), nn.ReLU(inplace=True)))
            self.dec.append(ResUnit(widths[i - 1], widths[i - 1]))
        self.head = nn.Conv3d(widths[0], classes, 1)

    def forward(self, x):
        x = self.stem(x)
        skips = [x]
        for d in self.down:
            x = d(x)
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = dec(up(x) + skips.pop())
        return self.head(x)


class PreActBlock(nn.Module):
    """SegResNet's ResBlock: BN-ReLU-conv twice, identity shortcut."""

    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm3d(c), nn.ReLU(inplace=False), nn.Conv3d(c, c, 3, padding=1, bias=False),
                                  nn.BatchNorm3d(c), nn.ReLU(inplace=True), nn.Conv3d(c, c, 3, padding=1, bias=False))

    def forward(self, x):
        return x + self.body(x)


class SegResNetLike(nn.Module):
    def __init__(self, classes=10, init=8, blocks_down=(1, 2, 2, 3), blocks_up=(1, 1, 1)):
        super().__init__()
        self.init = init
        self.stem = nn.Conv3d(1, init, 3, padding=1, bias=False)
        self.down = nn.ModuleList()
        c = init
        for i, n in enumerate(blocks_down):
            layers = [] if i == 0 else [nn.Conv3d(c // 2, c, 3, stride=2, padding=1, bias=False)]
            layers += [PreActBlock(c) for _ in range(n)]
            self.down.append(nn.Sequential(*layers))
            c *= 2
        c //= 2
        self.up_conv = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for n in blocks_up:
            self.up_conv.append(nn.Conv3d(c, c // 2, 1, bias=False))
            c //= 2
            self.up_blocks.append(nn.Sequential(*[PreActBlock(c) for _ in range(n)]))
        self.head = nn.Sequential(nn.BatchNorm3d(c), nn.ReLU(inplace=True), nn.Conv3d(c, classes, 1))

    def forward(self, x):
        x = self.stem(x)
        skips = []
        for d in self.down:
            x = d(x)
            skips.append(x)
        skips.pop()
        for conv, blocks in zip(self.up_conv, self.up_blocks):
            x = F.interpolate(conv(x), scale_factor=2, mode='trilinear', align_corners=False)
            x = blocks(x + skips.pop())
        return self.head(x)


FAMILIES = {
    'unet': UNet3D,
    'resunet': ResUNet3D,
    'segresnet': SegResNetLike,
}


def build_segmenter(family, classes=10, **kw):
    if family not in FAMILIES:
        raise ValueError(f'unknown family {family!r}; expected one of {sorted(FAMILIES)}')
    return FAMILIES[family](classes=classes, **kw)
