"""``kdecay bench --fuse G``: G runs of one model fused in one network
(:class:`kdecay.train.fused.FusedStep`) against the same G runs one after another.

The fused group is G runs built as the ``ours_eager`` column builds one (seeds 0..G-1: own
initial weights, own loader order, crops and flips, on the same synthetic set), trained with
the fused step in two forms: eager (``vmap`` batches each operation over the members) and the
form of the ``ours_step`` column (compiled: forward, backward and update in one graph). Their
competitors are the ``ours_eager`` and ``ours_step`` columns measured in the same process, side
by side: G runs one after another take G x the column's seconds per epoch. Reported per form:
seconds per epoch of the group, per member-epoch, total images/s over the members, operators
(CPU) or CUDA kernels per member-step (:mod:`kdecay.bench.ops`), the speed-ups over one by one,
and peak device memory.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from kdecay.bench.ops import kernel_profile, ops_per_step
from kdecay.bench.pipelines import (
    EPOCH_IMAGES,
    bench_images,
    epoch_seconds,
    ours_trainer,
    peak_memory,
    reset_peak,
)
from kdecay.bench.timing import cycle, time_passes
from kdecay.config import RunSpec
from kdecay.train import Runtime
from kdecay.train.fused import FusedLoader, FusedStep

__all__ = ["bench_fused", "fused_vs_one_by_one"]


def _fused_group(spec: RunSpec, runtime: Runtime, members: int, n_train: int) -> Any:
    """The FusedStep of ``members`` runs of ``spec`` (run ``g`` with seed ``g``: its initial
    weights and its loader's order, crops and flips, as the ``ours_eager`` column builds one
    run) and their fused loader."""
    runs = [
        ours_trainer(dataclasses.replace(spec, seed=g), runtime, n_train) for g in range(members)
    ]
    hyper = spec.sgd_hyper()
    step = FusedStep([run.model for run in runs], runtime, [spec.lr] * members, hyper)
    return step, FusedLoader([run.train_loader for run in runs])


def _time_group(
    spec: RunSpec, runtime: Runtime, members: int, warmup: int, passes: int, steps: int
) -> dict[str, Any]:
    """Time one fused group in ``runtime.step``'s form; its ops per member-step."""
    reset_peak(runtime.device)
    with kernel_profile():
        step, loader = _fused_group(spec, runtime, members, bench_images(spec.batch_size, steps))
        timed, (loss, _), warm_s = time_passes(
            loader, step, spec.batch_size, warmup, passes, runtime.device
        )
        ops = ops_per_step(step, cycle(loader))
    group = epoch_seconds(timed, spec.batch_size)
    return {
        **group,
        "images_per_s": members * EPOCH_IMAGES / group["seconds_per_epoch"],
        "seconds_per_member_epoch": group["seconds_per_epoch"] / members,
        "ops_per_member_step": {k: v / members for k, v in ops.items()},
        "warmup_seconds": warm_s,
        "last_loss": [float(v) for v in loss],
        "peak_memory_bytes": peak_memory(runtime.device),
    }


def bench_fused(
    spec: RunSpec, runtime: Runtime, members: int, warmup: int, passes: int, steps: int
) -> dict[str, Any]:
    """Time ``members`` fused runs over epoch-shaped passes in ``runtime.step``'s form (the
    form of the ``ours_step`` column; the top-level figures) and eagerly (``eager``)."""
    eager = _time_group(
        spec, dataclasses.replace(runtime, step="eager"), members, warmup, passes, steps
    )
    torch.compiler.reset()
    stepped = eager
    if runtime.step != "eager":
        stepped = _time_group(spec, runtime, members, warmup, passes, steps)
        torch.compiler.reset()
    return {
        "members": members,
        **stepped,
        "step": f"{runtime.step} (torch.func.vmap over the stacked members)",
        "eager": eager,
    }


def fused_vs_one_by_one(fused: dict[str, Any], cols: dict[str, dict[str, Any]]) -> None:
    """Add to ``fused`` its speed-ups over G runs one after another: ``vs_ours_step`` (the
    fused step form against G x the ``ours_step`` column's seconds per epoch) and
    ``vs_ours_eager`` (the eager fused step against G x ``ours_eager``'s)."""
    members = fused["members"]
    fused["vs_ours_step"] = (
        members * cols["ours_step"]["seconds_per_epoch"] / fused["seconds_per_epoch"]
    )
    fused["vs_ours_eager"] = (
        members * cols["ours_eager"]["seconds_per_epoch"] / fused["eager"]["seconds_per_epoch"]
    )
