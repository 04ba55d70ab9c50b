"""A fused member computes in the dtypes its run alone computes in under bf16 autocast.

``torch.autocast`` does not reach operations batched by ``torch.func.vmap``: under ``vmap`` a
convolution runs in fp32 on the CPU (a member would silently train in fp32 while its run alone
trains in bf16), and on CUDA batch norm fails ("Expected running_mean to have type BFloat16
but got Float", measured on an H200, docs/gpu/proof-h200.md). So a fused group does not use
autocast: its architecture (the meta-device copy :class:`kdecay.train.fused.FusedStep` calls
through ``functional_call``) applies autocast's policy for the layers these models have,
explicitly:

* convolution and linear layers (autocast's lower-precision list, CPU and CUDA): input, weight
  and bias cast to the autocast dtype; output in that dtype;
* batch norm (in neither autocast list: it runs on its input's dtype, with fp32 weight and
  statistics, and cuDNN and the CPU kernel accumulate in fp32): computed in fp32 on the input
  cast up, the output cast back to the input's dtype;
* everything else (ReLU, pooling, dropout, concatenation, padding) follows its input's dtype,
  as under autocast; the loss is taken on fp32 logits, as autocast's fp32 list does for
  cross-entropy.

A test (tests/test_fused_compiled.py) checks every layer's output dtype of a fused member
against its run alone under autocast, on the CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["cast_like_autocast"]


def _cast_args(
    layer: nn.Conv2d | nn.Linear, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Input, weight and bias in the layer's ``cast_dtype``, as autocast casts them."""
    d = layer.cast_dtype  # type: ignore[union-attr]
    bias = None if layer.bias is None else layer.bias.to(d)
    return x.to(d), layer.weight.to(d), bias


class _CastConv2d(nn.Conv2d):
    """``nn.Conv2d`` computing in ``cast_dtype`` (autocast's lower-precision list)."""

    cast_dtype: torch.dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(*_cast_args(self, x))


class _CastLinear(nn.Linear):
    """``nn.Linear`` computing in ``cast_dtype`` (autocast's lower-precision list)."""

    cast_dtype: torch.dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(*_cast_args(self, x))


class _Fp32BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` computed in fp32, output in its input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


_CASTS: dict[type[nn.Module], type[nn.Module]] = {
    nn.Conv2d: _CastConv2d,
    nn.Linear: _CastLinear,
    nn.BatchNorm2d: _Fp32BatchNorm2d,
}


def cast_like_autocast(model: nn.Module, dtype: torch.dtype | None) -> nn.Module:
    """Give ``model``'s convolution, linear and batch-norm layers autocast's ``dtype`` policy
    (in place: the same parameter and buffer names, no new weights); ``None`` leaves it fp32.
    Any other parametrised layer type is refused: its autocast policy is not written here."""
    if dtype is None:
        return model
    for name, module in model.named_modules():
        kind = type(module)
        if kind in _CASTS:
            module.__class__ = _CASTS[kind]
            module.cast_dtype = dtype  # type: ignore[assignment]
        elif kind not in _CASTS.values() and list(module.parameters(recurse=False)):
            raise TypeError(f"layer {name} ({kind.__name__}) has no fused bf16 policy")
    return model
