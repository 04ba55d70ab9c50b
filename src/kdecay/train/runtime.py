"""The one device / precision / memory-layout / step decision, shared by training and bench.

On CUDA: bf16 autocast with fp32 master weights (``train.precision: bf16``), channels_last
(``train.channels_last``), cudnn.benchmark, the compiled step (``train.step: auto``), TF32 set
explicitly (``train.tf32``, off by default: an ``fp32`` run computes its convolutions in
fp32). On the CPU: fp32, contiguous tensors, the eager step with torch's
default (per-parameter loop) SGD. None of these
changes the recipe (see the README's "Performance").
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from typing import Any

import torch

from kdecay.checks import ConfigError, check_choice
from kdecay.config import DEVICES, STEP_FORMS, TrainOptions

__all__ = ["Runtime", "resolve_step", "runtime_for", "select_device"]


def select_device(option: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    check_choice(option, "train.device", DEVICES, ConfigError)
    if option == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device 'cuda' was asked for (train.device or --device) but no CUDA device is "
            "visible; use train.device: auto or cpu"
        )
    if option == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


@dataclass(frozen=True)
class Runtime:
    """Where and how a run computes: device, autocast dtype, memory layout, compilation."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    step: str = "eager"
    tf32: bool = False
    compile_backend: str = "inductor"

    @property
    def cuda(self) -> bool:
        """True on a CUDA device."""
        return self.device.type == "cuda"

    @property
    def precision(self) -> str:
        """``bf16-autocast`` or ``fp32`` (as recorded in metrics.json)."""
        return "bf16-autocast" if self.amp_dtype is torch.bfloat16 else "fp32"

    @property
    def conv_precision(self) -> str:
        """What the convolutions and matmuls actually compute in: ``bf16`` under autocast,
        ``tf32`` for fp32 tensors on CUDA with TF32 allowed, else ``fp32``."""
        if self.amp_dtype is torch.bfloat16:
            return "bf16"
        return "tf32" if self.cuda and self.tf32 else "fp32"

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Autocast to :attr:`amp_dtype`, or a no-op context."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def sync(self) -> None:
        """Wait for the device (before reading a clock)."""
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def device_name(self) -> str:
        """``NVIDIA H100 ...`` or ``cpu (x86_64, 2 cores)``."""
        if self.cuda:
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def resolve_step(option: str, cuda: bool) -> str:
    """``train.step``: ``auto`` -> ``compiled`` on CUDA (proven equal to eager, see
    tests/test_step.py), ``eager`` on the CPU (compiling costs more there than it saves);
    ``graph`` (CUDA graphs) needs CUDA."""
    check_choice(option, "train.step", STEP_FORMS, ConfigError)
    if option == "auto":
        return "compiled" if cuda else "eager"
    if option == "graph" and not cuda:
        raise ConfigError(
            "train.step: graph replays CUDA graphs and needs a CUDA device; use compiled or "
            "eager (or auto) on the CPU"
        )
    return option


def set_tf32(allow: bool) -> None:
    """Set both TF32 switches (cuBLAS matmuls and cuDNN convolutions) explicitly."""
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow


def runtime_for(
    options: TrainOptions, device: str | None = None, step: str | None = None
) -> Runtime:
    """The runtime of the ``train`` options (``device``/``step`` override them)."""
    dev = select_device(device or options.device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        set_tf32(options.tf32)
    return Runtime(
        device=dev,
        amp_dtype=torch.bfloat16 if cuda and options.precision == "bf16" else None,
        channels_last=cuda and options.channels_last,
        step=resolve_step(step or options.step, cuda),
        tf32=options.tf32,
    )
