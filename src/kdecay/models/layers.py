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
    "SHORTCUTS",
    "BasicUnit",
    "BottleneckUnit",
    "PreActClassifier",
    "PreActUnit",
    "ZeroPadShortcut",
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


def he_init_(model: nn.Module, conv_mode: str = "fan_out", bn_weight: str = "ones") -> nn.Module:
    """Initialise ``model`` in place as its reference code does.

    Convolutions: He normal, ``N(0, 2 / (k*k*channels))`` with the output channels
    (``fan_out``: fb.resnet.torch and resnet-pre-act.lua for He et al., DenseNet's code) or the
    input channels (``fan_in``: WRN's MSRinit); conv biases 0. Batch norm: bias 0, weight 1
    (``ones``: He et al., DenseNet) or uniform in (0, 1) (``uniform``: WRN, whose BN layers
    keep Torch's reset). Linear: PyTorch default weight, bias 0.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=conv_mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            if bn_weight == "uniform":
                nn.init.uniform_(m.weight, 0.0, 1.0)
            else:
                nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
    return model


SHORTCUTS = ("A", "B")
"""Shortcut where a unit changes shape (He et al. 2015): ``A`` the identity, subsampled by the
stride and zero-padded to the new width (no parameters; He et al. 2016 on CIFAR, as the
default of fb.resnet.torch's preresnet); ``B`` a 1x1 projection (WRN, the bottleneck nets)."""


class ZeroPadShortcut(nn.Module):
    """Option A: ``x[:, :, ::stride, ::stride]`` with zero channels appended up to
    ``out_channels`` (fb.resnet.torch: a strided 1x1 average pool and a zero-filled concat)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.extra, self.stride = out_channels - in_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


class PreActUnit(nn.Module):
    """A pre-activation residual unit: ``BN-ReLU``, then ``branch(out) + shortcut``.

    Where the shape changes, the shortcut (a projection, or option A) is applied to the
    *pre-activated* input: the first BN-ReLU is shared by the residual branch and the shortcut,
    as in the reference codes of He et al. and of WRN. With ``preact_shortcut`` an identity
    shortcut takes the pre-activated input too: He et al. 2016 state that the first unit
    adopts the activation right after conv1 before splitting (fb.resnet.torch: 'both_preact'
    for the first unit of every stage).
    """

    expansion = 1

    def _init_shortcut(
        self, in_channels: int, out_channels: int, stride: int, kind: str, preact: bool
    ) -> None:
        """Called last in ``__init__``: module order (hence the seeded initialisation) is
        bn1, the branch's layers, then the shortcut, as in the reference codes."""
        self.preact_shortcut = preact
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            if kind == "A" and out_channels >= in_channels:
                self.shortcut = ZeroPadShortcut(in_channels, out_channels, stride)
            else:
                self.shortcut = conv1x1(in_channels, out_channels, stride)

    def branch(self, out: torch.Tensor) -> torch.Tensor:
        """The residual branch after the shared ``BN-ReLU``."""
        raise TypeError(f"{type(self).__name__} must define branch()")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        source = out if self.shortcut is not None or self.preact_shortcut else x
        identity = self.shortcut(source) if self.shortcut is not None else source
        return self.branch(out) + identity


class BasicUnit(PreActUnit):
    """``BN-ReLU-conv3x3(stride)-BN-ReLU-[dropout]-conv3x3`` (+ shortcut).

    The pre-act ResNet basic unit (He et al. 2016; ``dropout=0``) and the WRN block
    (Zagoruyko & Komodakis 2016; dropout between the two convolutions).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        dropout: float = 0.0,
        shortcut: str = "B",
        preact_shortcut: bool = False,
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(out_channels, out_channels)
        self._init_shortcut(in_channels, out_channels, stride, shortcut, preact_shortcut)

    def branch(self, out: torch.Tensor) -> torch.Tensor:
        out = self.conv1(out)
        return self.conv2(self.dropout(F.relu(self.bn2(out))))


class BottleneckUnit(PreActUnit):
    """Pre-activation bottleneck unit (He et al. 2016), output width ``4 * width``:

    ``BN-ReLU-conv1x1(w, stride)-BN-ReLU-conv3x3(w)-BN-ReLU-conv1x1(4w)`` (+ shortcut): the
    stride sits on the first 1x1 convolution, as in the authors' reference code
    (KaimingHe/resnet-1k-layers, resnet-pre-act.lua).
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int = 1,
        shortcut: str = "B",
        preact_shortcut: bool = False,
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv1x1(in_channels, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, width * self.expansion)
        self._init_shortcut(in_channels, width * self.expansion, stride, shortcut, preact_shortcut)

    def branch(self, out: torch.Tensor) -> torch.Tensor:
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return self.conv3(F.relu(self.bn3(out)))


def residual_stages(
    make_unit: Callable[[int, int, int, bool], nn.Module],
    in_channels: int,
    widths: Sequence[int],
    units: int,
    expansion: int = 1,
) -> tuple[list[nn.Sequential], int]:
    """Stages of ``units`` residual units each, one per width, at strides 1, 2, 2, ... (the
    stride on the first unit of a stage); ``make_unit(in_channels, width, stride, first)``
    builds a unit whose output has ``width * expansion`` channels (``first``: the first unit
    of its stage). Returns (stages, output channels)."""
    stages = []
    for i, width in enumerate(widths):
        blocks = []
        for j in range(units):
            blocks.append(make_unit(in_channels, width, 2 if i > 0 and j == 0 else 1, j == 0))
            in_channels = width * expansion
        stages.append(nn.Sequential(*blocks))
    return stages, in_channels


class PreActClassifier(nn.Module):
    """Base of the pre-activation networks: final ``BN-ReLU``, global average pool, linear.

    Subclasses build their trunk, call :meth:`_init_head` with its output width, and map an
    input to trunk features in :meth:`features`.
    """

    conv_init = "fan_out"  # see he_init_: the reference code of each family
    bn_init = "ones"

    def _init_head(self, in_channels: int, num_classes: int) -> None:
        self.bn_final = nn.BatchNorm2d(in_channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        he_init_(self, self.conv_init, self.bn_init)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk output before the final ``BN-ReLU``."""
        raise TypeError(f"{type(self).__name__} must define features()")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn_final(self.features(x)))
        return self.fc(torch.flatten(self.pool(out), 1))
