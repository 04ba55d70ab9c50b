"""Model size and cost: trainable parameters and multiply-adds of one forward pass.

MACs are measured with :class:`torch.utils.flop_counter.FlopCounterMode`, which counts matrix
products and convolutions (``conv``, ``mm``, ``addmm``, ...) only; batch norm, activations,
pooling and additions are not counted.  ``MACs = FLOPs / 2``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_params", "forward_macs"]


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (``requires_grad``) of ``model``, shared ones once."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def forward_macs(model: nn.Module, input_size: Sequence[int] = (3, 32, 32)) -> int:
    """Multiply-accumulates of one eval-mode forward pass of a single ``input_size`` image.

    The model is run on a batch of one zero image, in eval mode and under ``torch.no_grad``,
    on the device and dtype of its first parameter (or buffer).  Each submodule's
    ``training`` flag is restored afterwards; the model's weights, buffers and device are not
    changed (BN running statistics are not updated in eval mode).
    """
    ref = next(model.parameters(), None)
    if ref is None:
        ref = next(model.buffers(), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    x = torch.zeros((1, *input_size), device=device, dtype=dtype)

    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
    finally:
        for m, training in modes:
            m.training = training
    return int(counter.get_total_flops()) // 2
