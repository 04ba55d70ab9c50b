"""Pre-activation ResNets for CIFAR.

Source: K. He, X. Zhang, S. Ren, J. Sun, "Identity Mappings in Deep Residual Networks",
ECCV 2016 (arXiv:1603.05027), Sections 4-5 and Table 2/3, and the authors' reference code
(github.com/KaimingHe/resnet-1k-layers, ``resnet-pre-act.lua``).

Structure (CIFAR, 32x32 inputs):

* ``conv3x3(3 -> 16)``;
* three stages of ``n`` pre-activation residual units at 32x32, 16x16 and 8x8; the first
  unit of stages 2 and 3 has stride 2;

  - basic unit (depth = 6n + 2, e.g. ResNet-110 with n = 18):
    ``BN-ReLU-conv3x3-BN-ReLU-conv3x3`` with widths 16/32/64;
  - bottleneck unit (depth = 9n + 2, e.g. ResNet-164 with n = 18):
    ``BN-ReLU-conv1x1(w)-BN-ReLU-conv3x3(w)-BN-ReLU-conv1x1(4w)`` with ``w`` = 16/32/64,
    i.e. output widths 64/128/256;

* identity shortcuts, except when the shape changes: then a projection shortcut
  (``conv1x1`` with the unit's stride) is applied to the *pre-activated* input, i.e. the
  first BN-ReLU is shared by the residual branch and the shortcut (as in the reference code);
* final ``BN-ReLU``, global average pooling and a fully connected classifier.

Initialisation follows the reference code: He normal (``std = sqrt(2 / fan_out)``) for the
convolutions, BN weight 1 / bias 0, linear bias 0 (linear weight keeps PyTorch's default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PreActBasicBlock",
    "PreActBottleneck",
    "PreActClassifier",
    "PreActResNet",
    "conv1x1",
    "conv3x3",
    "he_init_",
    "preact_resnet",
]


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BN always precedes or follows it)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, padding=0, bias=False)


def he_init_(model: nn.Module) -> nn.Module:
    """Initialise ``model`` in place as the ResNet / WRN / DenseNet reference code does.

    Convolutions: He normal with ``fan_out`` (``N(0, 2 / (k*k*out_channels))``); conv biases 0.
    Batch norm: weight 1, bias 0.  Linear: PyTorch default weight, bias 0.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
    return model


class PreActBasicBlock(nn.Module):
    """Pre-activation basic unit: ``BN-ReLU-conv3x3-BN-ReLU-conv3x3`` (+ shortcut)."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, out_channels)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = conv1x1(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        identity = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + identity


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck unit.

    ``BN-ReLU-conv1x1(w)-BN-ReLU-conv3x3(w, stride)-BN-ReLU-conv1x1(4w)`` (+ shortcut).
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv1x1(in_channels, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = conv1x1(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        identity = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + identity


class PreActClassifier(nn.Module):
    """Base of the pre-activation networks: final ``BN-ReLU``, global average pool, linear.

    Subclasses build their trunk, call :meth:`_init_head` with its output width, and map an
    input to trunk features in :meth:`features`.
    """

    def _init_head(self, in_channels: int, num_classes: int) -> None:
        self.bn_final = nn.BatchNorm2d(in_channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        self.num_features = in_channels
        he_init_(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk output before the final ``BN-ReLU``."""
        raise TypeError(f"{type(self).__name__} must define features()")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn_final(self.features(x)))
        return self.fc(torch.flatten(self.pool(out), 1))


class PreActResNet(PreActClassifier):
    """CIFAR pre-activation ResNet (He et al., ECCV 2016); see the module docstring."""

    def __init__(
        self,
        block: type[PreActBasicBlock] | type[PreActBottleneck],
        blocks_per_stage: int,
        num_classes: int = 10,
        widths: tuple[int, int, int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(3, widths[0])
        in_channels = widths[0]
        stages = []
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(blocks_per_stage):
                blocks.append(block(in_channels, width, stride if j == 0 else 1))
                in_channels = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stage1, self.stage2, self.stage3 = stages
        self._init_head(in_channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage3(self.stage2(self.stage1(self.conv1(x))))


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is a positive ``int`` (not ``bool``), else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def preact_resnet(
    depth: int, num_classes: int = 10, bottleneck: bool = False, base_width: int = 16
) -> PreActResNet:
    """Build a CIFAR pre-activation ResNet (He et al. 2016, arXiv:1603.05027).

    Args:
        depth: number of weighted layers; ``6n + 2`` for basic units (ResNet-110: n = 18) or
            ``9n + 2`` for bottleneck units (ResNet-164: n = 18), with ``n >= 1``.
        num_classes: size of the classifier output.
        bottleneck: use bottleneck units (output widths 64/128/256) instead of basic units
            (widths 16/32/64).
        base_width: width of the first stage (16 in the paper; smaller values only make tiny
            versions for tests and the smoke run); the stages are base x 1/2/4.
    """
    check_positive_int("num_classes", num_classes)
    check_positive_int("base_width", base_width)
    if not isinstance(bottleneck, bool):
        raise ValueError(f"bottleneck must be a bool, got {bottleneck!r}")
    per_block = 9 if bottleneck else 6
    kind = "bottleneck" if bottleneck else "basic"
    if (
        isinstance(depth, bool)
        or not isinstance(depth, int)
        or depth < per_block + 2
        or (depth - 2) % per_block != 0
    ):
        raise ValueError(
            f"depth for a {kind} pre-activation ResNet must be an int of the form "
            f"{per_block}n+2 with n >= 1 (e.g. {per_block * 18 + 2}), got {depth!r}"
        )
    n = (depth - 2) // per_block
    block = PreActBottleneck if bottleneck else PreActBasicBlock
    widths = (base_width, 2 * base_width, 4 * base_width)
    return PreActResNet(block, n, num_classes=num_classes, widths=widths)
