"""Full-size torchvision classifiers with seeded random weights, shared by export_fullsize.py and
torch_naive.py (the same seed gives the same weights in both). ImageNet weights cannot be
downloaded here; the speed of a forward pass does not depend on the weights' values."""
import torch
import torchvision

ARCHS = ('resnet50', 'densenet121', 'efficientnet_b0')
SIZE = 224
DROPOUT = 0.2  # torchvision EfficientNet-B0's own classifier dropout; used for all three


def build(arch, num_classes, seed=20261125, mc=False):
    """The architecture with seeded weights. mc=True: a Dropout(DROPOUT) before the classifier's
    Linear (EfficientNet-B0 has one already), in train mode so MC Dropout can sample it."""
    torch.manual_seed(seed)
    if arch == 'resnet50':
        m = torchvision.models.resnet50(weights=None, num_classes=num_classes)
        if mc:
            m.fc = torch.nn.Sequential(torch.nn.Dropout(DROPOUT), m.fc)
    elif arch == 'densenet121':
        m = torchvision.models.densenet121(weights=None, num_classes=num_classes)
        if mc:
            m.classifier = torch.nn.Sequential(torch.nn.Dropout(DROPOUT), m.classifier)
    elif arch == 'efficientnet_b0':
        m = torchvision.models.efficientnet_b0(weights=None, num_classes=num_classes)
    else:
        raise ValueError(arch)
    m.eval()
    if mc:
        for mod in m.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.train()
    return m


def target_layer(arch, m):
    """pytorch-grad-cam's target layers: ResNet layer4[-1], DenseNet features[-1] (norm5),
    EfficientNet features[-1]."""
    return {'resnet50': lambda: m.layer4[-1], 'densenet121': lambda: m.features[-1],
            'efficientnet_b0': lambda: m.features[-1]}[arch]()
