"""What one training step launches, counted by torch's profiler.

On the CPU: the step's leaf operators (profiler events with no child event: an ``aten``
operator that does the work itself, or a kernel Inductor generated), with allocations, views
and other metadata operators left out (they launch no computation). Inductor's CPU kernels
show in the profiler only when compiled with ``torch._inductor.config.cpp.enable_kernel_profile``
(:func:`kernel_profile` turns it on for the compiles inside it). On CUDA: the CUDA kernels
launched. Both are averaged over the profiled steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = ["kernel_profile", "ops_per_step"]

_NO_WORK = (
    "aten::empty",
    "aten::view",
    "aten::as_strided",
    "aten::resize_",
    "aten::_reshape_alias",
    "aten::t",
    "aten::transpose",
    "aten::expand",
    "aten::permute",
    "aten::unsqueeze",
    "aten::squeeze",
    "aten::select",
    "aten::slice",
    "aten::detach",
    "aten::alias",
    "aten::reshape",
    "aten::unflatten",
    "aten::flatten",
    "aten::lift_fresh",
    "aten::resolve_conj",
    "aten::resolve_neg",
    "aten::_unsafe_view",
    "aten::contiguous",
)
"""Operators that allocate or re-describe a tensor without computing (prefixes)."""


def _is_op(name: str) -> bool:
    """An ``aten`` operator that computes, or an Inductor-generated kernel."""
    if name.startswith("aten::"):
        return not name.startswith(_NO_WORK)
    return "cpp_fused" in name or name.startswith("graph_")


def kernel_profile() -> contextlib.AbstractContextManager[Any]:
    """Compile (inside it) Inductor's CPU kernels with profiler records."""
    import torch._inductor.config as inductor_config

    return inductor_config.patch({"cpp.enable_kernel_profile": True})


def ops_per_step(
    step: Callable[[Any, Any], Any], batches: Iterator[tuple[Any, Any]], steps: int = 3
) -> dict[str, float]:
    """Run ``step`` on ``steps`` batches of ``batches`` under the profiler: per step, the
    leaf operators (``ops``; on the CPU: the kernels a step runs, see the module) and, on
    CUDA, the ``cuda_kernels`` launched."""
    from torch.profiler import ProfilerActivity, profile

    first = next(batches)
    cuda = first[1].device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        step(*first)
        for _ in range(steps - 1):
            step(*next(batches))
        if cuda:
            torch.cuda.synchronize()
    events = prof.events()
    out = {"ops": sum(not e.cpu_children and _is_op(e.name) for e in events) / steps}
    if cuda:
        device_cuda = torch.autograd.DeviceType.CUDA
        out["cuda_kernels"] = sum(e.device_type == device_cuda for e in events) / steps
    return out
