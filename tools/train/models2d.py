"""Small 2D classifiers of the three families the weak-supervision method ensembles (ResNet,
DenseNet, EfficientNet), built from torchvision's own classes with reduced width and depth.

Every model ends in global average pooling -> Dropout -> Linear, so medmask's runtime can read the
head after the last 4-D activation (the CAM target) and re-sample the dropout in its head-MC mode.
The total stride is 16 instead of torchvision's 32 (the last stage at stride 1): at the phantoms'
native 256 x 256 the CAM target is 16 x 16, fine enough for lesion masks, while the stem still sees
full-resolution texture (which tells a consolidation from a cluster of nodules).
"""
import torch.nn as nn
from torchvision.models.densenet import DenseNet
from torchvision.models.efficientnet import EfficientNet, MBConvConfig
from torchvision.models.resnet import BasicBlock, ResNet


class SmallResNet(ResNet):
    """torchvision ResNet with BasicBlocks, one block per stage, widths 16-32-64-128, layer4 at
    stride 1 (total stride 16), Dropout before the classifier."""

    def __init__(self, num_classes, dropout=0.3, widths=(16, 32, 64, 128), stride=16):
        self._widths = list(widths)
        self._stride1 = {3} if stride == 16 else {2, 3}
        self._stage = 0
        super().__init__(BasicBlock, [1, 1, 1, 1], num_classes=num_classes)
        c0 = widths[0]
        self.conv1 = nn.Conv2d(3, c0, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(c0)
        self.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(widths[-1], num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if self._stage == 0:
            self.inplanes = self._widths[0]
        width = self._widths[self._stage]
        stride = 1 if self._stage in self._stride1 else stride
        self._stage += 1
        return super()._make_layer(block, width, blocks, stride, dilate)


def small_densenet(num_classes, dropout=0.3, stride=16):
    """torchvision DenseNet: growth rate 16, three dense blocks (2, 4 and 6 layers), 32 initial
    features, bottleneck 2 x growth (total stride 16: stem conv 2, stem pool 2, two transitions 2)."""
    m = DenseNet(growth_rate=16, block_config=(2, 4, 6), num_init_features=32, bn_size=2, num_classes=num_classes)
    if stride == 8:
        m.features.transition2.pool = nn.Identity()
    m.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(m.classifier.in_features, num_classes))
    nn.init.constant_(m.classifier[1].bias, 0)
    return m


def small_efficientnet(num_classes, dropout=0.3, stride=16):
    """torchvision EfficientNet (MBConv with squeeze-excitation, SiLU) with a reduced
    inverted-residual config: five stages of one block each, widths 16-24-40-64-96, strides
    2-2-2-1-1 after the stride-2 stem (total stride 16), head conv to 256 channels."""
    bn = lambda e, k, s, i, o, n: MBConvConfig(e, k, s, i, o, n, width_mult=1.0, depth_mult=1.0)  # noqa: E731
    setting = [
        bn(1, 3, 2, 16, 16, 1),
        bn(4, 3, 2, 16, 24, 1),
        bn(4, 5, 2 if stride == 16 else 1, 24, 40, 1),
        bn(4, 3, 1, 40, 64, 1),
        bn(4, 5, 1, 64, 96, 1),
    ]
    return EfficientNet(setting, dropout=dropout, stochastic_depth_prob=0.1, num_classes=num_classes, last_channel=256)


FAMILIES = {
    'resnet': lambda n, p, stride: SmallResNet(n, p, stride=stride),
    'densenet': small_densenet,
    'efficientnet': small_efficientnet,
}


def build_classifier(family, num_classes, dropout=0.3, stride=16):
    """A fresh (randomly initialised) classifier of the given family; `stride` 16 (default) or 8
    (the last two stages at stride 1: a 32 x 32 CAM target at 256 px, about twice the compute)."""
    if family not in FAMILIES:
        raise ValueError(f'unknown family {family!r}; expected one of {sorted(FAMILIES)}')
    if stride not in (8, 16):
        raise ValueError(f'stride {stride} must be 8 or 16')
    return FAMILIES[family](num_classes, dropout, stride)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())
