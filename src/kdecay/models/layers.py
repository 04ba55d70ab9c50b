"""Building blocks shared by the CIFAR networks: convolutions, initialisation, the
pre-activation residual units and the pre-activation classifier head.

The pre-activation basic unit of He et al. 2016 and the wide basic block of Zagoruyko &
Komodakis 2016 are the same unit (``BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3`` plus a
shortcut); WRN only adds the dropout and the width. :class:`BasicUnit` is both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BasicUnit",
    "BottleneckUnit",
    "PreActClassifier",
    "PreActUnit",
    "conv1x1",
    "conv3x3",
    "he_init_",
    "residual_stages",
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


class PreActUnit(nn.Module):
    """A pre-activation residual unit: ``BN-ReLU``, then ``branch(out) + shortcut``.

    The shortcut is the identity, or, when the shape changes, a ``conv1x1`` (with the unit's
    stride) applied to the *pre-activated* input: the first BN-ReLU is shared by the residual
    branch and the shortcut, as in the reference codes of He et al. and of WRN.
    """

    expansion = 1

    def _init_shortcut(self, in_channels: int, out_channels: int, stride: int) -> None:
        """Called last in ``__init__``: module order (hence the seeded initialisation) is
        bn1, the branch's layers, then the shortcut, as in the reference codes."""
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = conv1x1(in_channels, out_channels, stride)

    def branch(self, out: torch.Tensor) -> torch.Tensor:
        """The residual branch after the shared ``BN-ReLU``."""
        raise TypeError(f"{type(self).__name__} must define branch()")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        identity = self.shortcut(out) if self.shortcut is not None else x
        return self.branch(out) + identity


class BasicUnit(PreActUnit):
    """``BN-ReLU-conv3x3(stride)-BN-ReLU-[dropout]-conv3x3`` (+ shortcut).

    The pre-act ResNet basic unit (He et al. 2016; ``dropout=0``) and the WRN block
    (Zagoruyko & Komodakis 2016; dropout between the two convolutions).
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(out_channels, out_channels)
        self._init_shortcut(in_channels, out_channels, stride)

    def branch(self, out: torch.Tensor) -> torch.Tensor:
        out = self.conv1(out)
        return self.conv2(self.dropout(F.relu(self.bn2(out))))


class BottleneckUnit(PreActUnit):
    """Pre-activation bottleneck unit (He et al. 2016), output width ``4 * width``:

    ``BN-ReLU-conv1x1(w)-BN-ReLU-conv3x3(w, stride)-BN-ReLU-conv1x1(4w)`` (+ shortcut).
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv1x1(in_channels, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, width * self.expansion)
        self._init_shortcut(in_channels, width * self.expansion, stride)

    def branch(self, out: torch.Tensor) -> torch.Tensor:
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return self.conv3(F.relu(self.bn3(out)))


def residual_stages(
    make_unit: Callable[[int, int, int], nn.Module],
    in_channels: int,
    widths: Sequence[int],
    units: int,
    expansion: int = 1,
) -> tuple[list[nn.Sequential], int]:
    """Stages of ``units`` residual units each, one per width, at strides 1, 2, 2, ... (the
    stride on the first unit of a stage); ``make_unit(in_channels, width, stride)`` builds a
    unit whose output has ``width * expansion`` channels. Returns (stages, output channels)."""
    stages = []
    for i, width in enumerate(widths):
        blocks = []
        for j in range(units):
            blocks.append(make_unit(in_channels, width, 2 if i > 0 and j == 0 else 1))
            in_channels = width * expansion
        stages.append(nn.Sequential(*blocks))
    return stages, in_channels


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
