"""DenseNet-BC for CIFAR.

Source: G. Huang, Z. Liu, L. van der Maaten, K. Q. Weinberger, "Densely Connected
Convolutional Networks", CVPR 2017 (arXiv:1608.06993), Sections 3-4, and the authors'
reference code (github.com/liuzhuang13/DenseNet).

Structure of DenseNet-BC (``depth = 6n + 4``, growth rate ``k``, compression ``theta``):

* ``conv3x3(3 -> 2k)``;
* three dense blocks of ``n = (depth - 4) / 6`` bottleneck layers
  ``BN-ReLU-conv1x1(4k)-[dropout]-BN-ReLU-conv3x3(k)-[dropout]``, each layer's output being
  concatenated (channel dimension) to its input;
* between blocks, transition layers ``BN-ReLU-conv1x1(floor(theta * C))-[dropout]-avgpool2x2``;
* final ``BN-ReLU``, global average pooling and a fully connected classifier.

DenseNet-BC-100 with k = 12 (n = 16, theta = 0.5) has about 0.77M parameters.

Initialisation as in the reference code: He normal ``fan_out`` for convolutions, BN weight 1 /
bias 0, linear bias 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kdecay.checks import check_int, check_number
from kdecay.models.layers import PreActClassifier, conv1x1, conv3x3

__all__ = ["DenseBlock", "DenseLayer", "DenseNetBC", "Transition", "densenet_bc"]


class DenseLayer(nn.Module):
    """Bottleneck dense layer; returns ``cat([x, new_features], dim=1)``."""

    def __init__(self, in_channels: int, growth_rate: int, dropout: float = 0.0) -> None:
        super().__init__()
        inter = 4 * growth_rate
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv1x1(in_channels, inter)
        self.bn2 = nn.BatchNorm2d(inter)
        self.conv2 = conv3x3(inter, growth_rate)
        self.dropout = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.conv1(F.relu(self.bn1(x))))
        out = self.dropout(self.conv2(F.relu(self.bn2(out))))
        # Both operands share x's memory format (convs propagate channels_last), and torch.cat
        # keeps a memory format common to all its inputs.
        return torch.cat([x, out], dim=1)


class DenseBlock(nn.Sequential):
    """``num_layers`` dense layers; output has ``in_channels + num_layers * growth`` channels."""

    def __init__(
        self, num_layers: int, in_channels: int, growth_rate: int, dropout: float = 0.0
    ) -> None:
        layers = [
            DenseLayer(in_channels + i * growth_rate, growth_rate, dropout)
            for i in range(num_layers)
        ]
        super().__init__(*layers)
        self.out_channels = in_channels + num_layers * growth_rate


class Transition(nn.Module):
    """Transition layer ``BN-ReLU-conv1x1-[dropout]-avgpool2x2``."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.conv = conv1x1(in_channels, out_channels)
        self.dropout = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.dropout(self.conv(F.relu(self.bn(x)))))


class DenseNetBC(PreActClassifier):
    """DenseNet-BC for 32x32 inputs (Huang et al. 2017); see the module docstring."""

    def __init__(
        self,
        depth: int,
        growth_rate: int,
        num_classes: int = 10,
        compression: float = 0.5,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        n = (depth - 4) // 6
        channels = 2 * growth_rate
        self.conv1 = conv3x3(3, channels)
        self.block1 = DenseBlock(n, channels, growth_rate, dropout)
        channels = self.block1.out_channels
        out = max(1, math.floor(compression * channels))
        self.trans1 = Transition(channels, out, dropout)
        self.block2 = DenseBlock(n, out, growth_rate, dropout)
        channels = self.block2.out_channels
        out = max(1, math.floor(compression * channels))
        self.trans2 = Transition(channels, out, dropout)
        self.block3 = DenseBlock(n, out, growth_rate, dropout)
        self._init_head(self.block3.out_channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.trans1(self.block1(self.conv1(x)))
        return self.block3(self.trans2(self.block2(out)))


def densenet_bc(
    depth: int,
    growth_rate: int,
    num_classes: int = 10,
    compression: float = 0.5,
    dropout: float = 0.0,
) -> DenseNetBC:
    """Build DenseNet-BC-``depth`` with growth rate ``k`` (Huang et al. 2017, arXiv:1608.06993).

    Args:
        depth: total depth, of the form ``6n + 4`` with ``n >= 1`` (e.g. 100 -> 16 bottleneck
            layers per dense block).
        growth_rate: channels added by each dense layer (``k``, positive int).
        num_classes: size of the classifier output.
        compression: transition compression factor ``theta`` in ``(0, 1]``.
        dropout: dropout probability after each convolution (except the first), in ``[0, 1)``.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(
            "depth of a DenseNet-BC must be an int of the form 6n+4 with n >= 1 "
            f"(e.g. 100, 190), got {depth!r}"
        )
    growth_rate = check_int(growth_rate, "growth_rate", low=1)
    num_classes = check_int(num_classes, "num_classes", low=1)
    compression = check_number(compression, "compression", low=0, low_open=True, high=1)
    dropout = check_number(dropout, "dropout", low=0, high=1, high_open=True)
    return DenseNetBC(
        depth, growth_rate, num_classes=num_classes, compression=compression, dropout=dropout
    )
