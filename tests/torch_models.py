"""PyTorch models written here, as people write them (no torchvision), for the tracer's tests.

Each is built from its paper independently of :mod:`npconv.networks` (only the
published configuration tables are shared), in the idioms PyTorch users write:
``nn.Sequential`` stacks, custom blocks with ``forward``, ``out += identity``,
an in-place ``ReLU`` module called twice, ``x.view(x.size(0), -1)``,
``torch.flatten``, ``F.relu6``.  Importing this module imports torch: use
``pytest.importorskip("torch")`` first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from npconv.networks import MOBILENET_V1_BLOCKS, VGG16_CONFIGURATION


class MobileNetV1(nn.Module):
    """Howard et al. 2017, Table 1, with TensorFlow's "same" padding: at stride 2 a ``ZeroPad2d`` of
    (0, 1, 0, 1) in front of an unpadded convolution, as models ported from Keras write it."""

    def __init__(self, classes: int = 1000):
        super().__init__()

        def conv_bn(cin: int, cout: int, stride: int, groups: int = 1, kernel: int = 3) -> list[nn.Module]:
            if kernel == 3 and stride == 2:
                conv = [nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(cin, cout, 3, 2, 0, groups=groups, bias=False)]
            else:
                conv = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)]
            return [*conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        layers, cin = conv_bn(3, 32, 2), 32
        for stride, cout in MOBILENET_V1_BLOCKS:
            layers += conv_bn(cin, cin, stride, groups=cin) + conv_bn(cin, cout, 1, kernel=1)
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(1024, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class VGG16(nn.Module):
    """Simonyan & Zisserman 2015, configuration D, at ``resolution`` (the classifier reads 512 x (R/32)^2)."""

    def __init__(self, resolution: int = 224, classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for item in VGG16_CONFIGURATION:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(cin, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                cin = item
        self.features = nn.Sequential(*layers)
        side = resolution // 32
        self.classifier = nn.Sequential(
            nn.Linear(512 * side * side, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.view(x.size(0), -1)
        return self.classifier(x)


class BasicBlock(nn.Module):
    """He et al. 2016, the two-layer block: its ReLU module is called twice, the addition is in place."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet18(nn.Module):
    """He et al. 2016, Table 1, 18 layers, torchvision's layout."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, cin = [], 64
        for index, cout in enumerate((64, 128, 256, 512)):
            stride = 1 if index == 0 else 2
            stages.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


#: Sandler et al. 2018, Table 2: (expansion t, channels c, repeats n, first stride s).
MOBILENET_V2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nn.Module):
    """Expand (1x1, unless t = 1), depthwise 3x3, project (1x1, linear); ``x + block(x)`` where shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        self.residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(inplace=True),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV2(nn.Module):
    """Sandler et al. 2018 (width 1.0): a 3x3 stride-2 stem, the inverted residuals of Table 2, a 1x1 to
    1280 channels, global pooling (``F.adaptive_avg_pool2d``), dropout and a linear layer."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32))
        blocks, cin = [], 32
        for expansion, cout, repeats, stride in MOBILENET_V2_BLOCKS:
            for index in range(repeats):
                blocks.append(InvertedResidual(cin, cout, stride if index == 0 else 1, expansion))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.stem(x))
        x = F.relu6(self.head(self.blocks(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


class Uncountable(nn.Module):
    """Operations npconv does not count: an interpolation, a layer norm, a mean."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.LayerNorm([8, 16, 16])
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.conv(x), scale_factor=2.0)
        x = self.norm(x).mean((2, 3))
        return self.fc(x)


def flop_counter_total(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """``FlopCounterMode``'s total for one forward pass, on fake tensors (shapes only)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    module.eval()
    device = next(module.parameters()).device  # the CPU, or meta for a model built there
    with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True):
        x = torch.empty(input_shape, device=device)
        with FlopCounterMode(display=False) as counter:
            module(x)
    return int(counter.get_total_flops())


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
