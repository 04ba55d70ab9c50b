"""Wide Residual Networks for CIFAR.

Source: S. Zagoruyko, N. Komodakis, "Wide Residual Networks", BMVC 2016 (arXiv:1605.07146),
Table 1 and Section 2, and the authors' reference code
(github.com/szagoruyko/wide-residual-networks).

Structure of WRN-``depth``-``k`` (``depth = 6n + 4``):

* ``conv3x3(3 -> 16)``;
* three groups of ``n = (depth - 4) / 6`` pre-activation basic blocks
  ``BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3`` with widths ``16k / 32k / 64k`` and strides
  1 / 2 / 2 (stride on the first block of each group);
* identity shortcut, except when the number of channels (or the resolution) changes: then a
  ``conv1x1`` (with the block's stride) applied to the pre-activated input (the first BN-ReLU is
  shared with the shortcut, as in the reference code);
* final ``BN-ReLU``, global average pooling (8x8) and a fully connected classifier.

Initialisation as in the reference code (szagoruyko/wide-residual-networks, models/utils.lua):
He normal with ``fan_in`` for convolutions, BN weight uniform in (0, 1) (Torch's reset) and
bias 0, linear bias 0.
"""

from __future__ import annotations

import torch

from kdecay.checks import check_int, check_number
from kdecay.models.layers import BasicUnit, PreActClassifier, conv3x3, residual_stages

__all__ = ["WideResNet", "wide_resnet"]


class WideResNet(PreActClassifier):
    """WRN-depth-k for 32x32 inputs (Zagoruyko & Komodakis 2016); see the module docstring."""

    conv_init = "fan_in"  # WRN's MSRinit: n = kW*kH*nInputPlane (models/utils.lua)
    bn_init = "uniform"  # WRN's BN keeps Torch's reset: weight uniform(0, 1)

    def __init__(
        self,
        depth: int,
        widen_factor: int,
        num_classes: int = 10,
        dropout: float = 0.0,
        base_width: int = 16,
    ) -> None:
        super().__init__()
        n = (depth - 4) // 6
        widths = tuple(base_width * m * widen_factor for m in (1, 2, 4))
        self.conv1 = conv3x3(3, base_width)
        groups, out = residual_stages(
            lambda c_in, width, stride, _first: BasicUnit(c_in, width, stride, dropout),
            base_width,
            widths,
            n,
        )
        self.group1, self.group2, self.group3 = groups
        self._init_head(out, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.group3(self.group2(self.group1(self.conv1(x))))


def wide_resnet(
    depth: int,
    widen_factor: int,
    num_classes: int = 10,
    dropout: float = 0.0,
    base_width: int = 16,
) -> WideResNet:
    """Build WRN-``depth``-``widen_factor`` (Zagoruyko & Komodakis 2016, arXiv:1605.07146).

    Args:
        depth: total depth, of the form ``6n + 4`` with ``n >= 1`` (e.g. 16, 28, 40).
        widen_factor: width multiplier ``k`` (positive int); group widths are 16k/32k/64k.
        num_classes: size of the classifier output.
        dropout: dropout probability between the two convolutions of a block, in ``[0, 1)``.
        base_width: stem width and the 16 of 16k/32k/64k (16 in the paper; smaller values
            only make tiny versions for tests and the smoke run).
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(
            "depth of a wide ResNet must be an int of the form 6n+4 with n >= 1 "
            f"(e.g. 16, 28, 40), got {depth!r}"
        )
    widen_factor = check_int(widen_factor, "widen_factor", low=1)
    base_width = check_int(base_width, "base_width", low=1)
    num_classes = check_int(num_classes, "num_classes", low=1)
    dropout = check_number(dropout, "dropout", low=0, high=1, high_open=True)
    return WideResNet(
        depth, widen_factor, num_classes=num_classes, dropout=dropout, base_width=base_width
    )
