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
    ``BN-ReLU-conv1x1(w, stride)-BN-ReLU-conv3x3(w)-BN-ReLU-conv1x1(4w)`` with ``w`` =
    16/32/64, i.e. output widths 64/128/256; the stride on the first 1x1 convolution, as in
    the reference code (resnet-pre-act.lua);

* identity shortcuts, except when the shape changes: then option A for basic units (the
  identity subsampled and zero-padded to the new width, the CIFAR shortcuts of He et al. 2015
  that He et al. 2016 reuse; fb.resnet.torch's preresnet default) and a 1x1 projection for
  bottlenecks (resnet-pre-act.lua); either is applied to the *pre-activated* input, i.e. the
  first BN-ReLU is shared by the residual branch and the shortcut, and so is the first unit
  of every stage ("the first unit adopts the first activation right after conv1 before
  splitting", He et al. 2016; 'both_preact' in fb.resnet.torch);
* final ``BN-ReLU``, global average pooling and a fully connected classifier.

Initialisation follows the reference code: He normal (``std = sqrt(2 / fan_out)``) for the
convolutions, BN weight 1 / bias 0, linear bias 0 (linear weight keeps PyTorch's default).
"""

from __future__ import annotations

import torch
from torch import nn

from kdecay.checks import check_choice, check_int
from kdecay.models.layers import (
    SHORTCUTS,
    BasicUnit,
    BottleneckUnit,
    PreActClassifier,
    conv3x3,
    residual_stages,
)

__all__ = ["PreActResNet", "preact_resnet"]


class PreActResNet(PreActClassifier):
    """CIFAR pre-activation ResNet (He et al., ECCV 2016); see the module docstring."""

    def __init__(
        self,
        block: type[BasicUnit] | type[BottleneckUnit],
        blocks_per_stage: int,
        num_classes: int = 10,
        widths: tuple[int, int, int] = (16, 32, 64),
        shortcut: str = "A",
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(3, widths[0])

        def unit(c_in: int, width: int, stride: int, first: bool) -> nn.Module:
            # the first unit of each stage shares the BN-ReLU with its shortcut (HE16)
            return block(c_in, width, stride, shortcut=shortcut, preact_shortcut=first)

        stages, out = residual_stages(unit, widths[0], widths, blocks_per_stage, block.expansion)
        self.stage1, self.stage2, self.stage3 = stages
        self._init_head(out, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage3(self.stage2(self.stage1(self.conv1(x))))


def preact_resnet(
    depth: int,
    num_classes: int = 10,
    bottleneck: bool = False,
    base_width: int = 16,
    shortcut: str | None = None,
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
        shortcut: where a unit changes shape, ``"A"`` (zero-padded identity) or ``"B"``
            (projection). Default: A for basic units (He et al. 2016 use the CIFAR shortcuts of
            He et al. 2015; fb.resnet.torch's default), B for bottlenecks (resnet-pre-act.lua).
    """
    num_classes = check_int(num_classes, "num_classes", low=1)
    base_width = check_int(base_width, "base_width", low=1)
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
    block = BottleneckUnit if bottleneck else BasicUnit
    shortcut = check_choice(shortcut or ("B" if bottleneck else "A"), "shortcut", SHORTCUTS)
    widths = (base_width, 2 * base_width, 4 * base_width)
    return PreActResNet(block, n, num_classes=num_classes, widths=widths, shortcut=shortcut)
