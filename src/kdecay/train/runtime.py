"""The one device / precision / memory-layout decision, shared by training and the benchmark.

On CUDA: bf16 autocast with fp32 master weights (``train.precision: bf16``), channels_last
(``train.channels_last``), cudnn.benchmark, fused SGD. On the CPU: fp32, contiguous tensors,
foreach SGD. None of these changes the recipe (see the README's "Performance").
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from typing import Any

import torch

from kdecay.checks import ConfigError, check_choice
from kdecay.config import DEVICES, TrainOptions

__all__ = ["Runtime", "runtime_for", "select_device"]


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
    compile: bool = False

    @property
    def cuda(self) -> bool:
        """True on a CUDA device."""
        return self.device.type == "cuda"

    @property
    def precision(self) -> str:
        """``bf16-autocast`` or ``fp32`` (as recorded in metrics.json)."""
        return "bf16-autocast" if self.amp_dtype is torch.bfloat16 else "fp32"

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


def runtime_for(
    options: TrainOptions, device: str | None = None, compile_model: bool | None = None
) -> Runtime:
    """The runtime of the ``train`` options (``device``/``compile_model`` override them)."""
    dev = select_device(device or options.device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    return Runtime(
        device=dev,
        amp_dtype=torch.bfloat16 if cuda and options.precision == "bf16" else None,
        channels_last=cuda and options.channels_last,
        compile=options.compile if compile_model is None else compile_model,
    )
