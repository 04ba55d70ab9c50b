"""Timing helpers of the benchmarks: a device's measured matmul peak, timed step loops, an
endless batch iterator, and freeing device memory between pipelines."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

__all__ = ["cycle", "free", "measure_peak_flops", "sync", "time_passes"]


def sync(device: torch.device) -> None:
    """Wait for ``device`` (before reading a clock)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device: torch.device) -> None:
    """Drop unreachable tensors and cached device memory."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def cycle(loader: Iterable[Any]) -> Iterator[Any]:
    """Iterate ``loader`` again and again."""
    while True:
        yield from loader


def time_passes(
    loader: Iterable[tuple[Any, Any]],
    step: Callable[[Any, Any], Any],
    batch_size: int,
    warmup: int,
    passes: int,
    device: torch.device,
) -> tuple[list[tuple[float, float]], Any, float]:
    """Time whole passes over ``loader`` (full batches, then at most one partial batch; a
    batch's size is its labels' last dimension).

    ``warmup`` untimed passes (their wall time, compilation included, is the third value
    returned), then ``passes`` timed ones. In a timed pass the clock is read (after a device
    sync) at its start, before its partial batch and at its end, so each pass gives (seconds
    per full step, seconds of the partial step; 0 without one). Returns those pairs, the last
    step's result and the warmup seconds.
    """
    result = None
    sync(device)
    t_warm = time.perf_counter()
    for _ in range(warmup):
        for x, y in loader:
            result = step(x, y)
    sync(device)
    warmup_seconds = time.perf_counter() - t_warm
    out = []
    for _ in range(passes):
        sync(device)
        t0 = t_partial = time.perf_counter()
        full = 0
        for x, y in loader:
            if y.shape[-1] == batch_size:  # labels [B], or [G, B] for fused members
                full += 1
            else:
                sync(device)
                t_partial = time.perf_counter()
            result = step(x, y)
        sync(device)
        t_end = time.perf_counter()
        if t_partial == t0:  # no partial batch
            t_partial = t_end
        out.append(((t_partial - t0) / max(full, 1), t_end - t_partial))
    return out, result, warmup_seconds


def measure_peak_flops(device: torch.device) -> dict[str, Any]:
    """Measured dense matmul rate of ``device``, the denominator of the MFU.

    CUDA: bf16 ``8192 x 8192 @ 8192 x 8192`` (tensor cores), best of 5 timed bursts of 10.
    CPU: fp32 ``1024^3`` (a CPU has no bf16 matrix units worth the name; the CPU pipelines
    train in fp32), best of 5 single products. Returns ``flops`` (FLOP/s) and a description.
    """
    if device.type == "cuda":
        n, dtype, reps, trials = 8192, torch.bfloat16, 10, 5
    else:
        n, dtype, reps, trials = 1024, torch.float32, 1, 5
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    for _ in range(3):
        c = a @ b
    sync(device)
    best = math.inf
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(reps):
            c = a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    del a, b, c
    free(device)
    flops = 2 * n**3 * reps / best
    kind = "bf16" if dtype == torch.bfloat16 else "fp32"
    note = "" if device.type == "cuda" else " (CPU: fp32, since the CPU pipelines run in fp32)"
    return {
        "flops": flops,
        "dtype": kind,
        "matmul_size": n,
        "method": f"{kind} matmul {n}x{n} @ {n}x{n}, best of {trials} timed runs{note}",
    }
