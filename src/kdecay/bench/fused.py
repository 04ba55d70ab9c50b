"""``kdecay bench --fuse G``: G runs of one model fused in one network
(:class:`kdecay.train.fused.FusedStep`) against the same G runs one after another.

The fused group is G runs built as the ``ours_eager`` column builds one (seeds 0..G-1: own
initial weights, own loader order, crops and flips, on the same synthetic set), trained with
the eager fused step (``vmap`` batches each operation over the members). Its
competitor is the ``ours_eager`` column measured in the same process, side by side: G runs one
after another take G x its seconds per epoch. Reported: seconds per epoch of the group, per
member-epoch, total images/s over the members, the speed-up over one-by-one (and over G runs
of the ``ours_step`` column), and peak device memory.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kdecay.bench.pipelines import (
    EPOCH_IMAGES,
    bench_images,
    epoch_seconds,
    ours_trainer,
    peak_memory,
    reset_peak,
)
from kdecay.bench.timing import time_passes
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


def bench_fused(
    spec: RunSpec, runtime: Runtime, members: int, warmup: int, passes: int, steps: int
) -> dict[str, Any]:
    """Time ``members`` fused runs over epoch-shaped passes (the eager fused step)."""
    eager = dataclasses.replace(runtime, step="eager")
    reset_peak(runtime.device)
    step, loader = _fused_group(spec, eager, members, bench_images(spec.batch_size, steps))
    timed, (loss, _), _ = time_passes(loader, step, spec.batch_size, warmup, passes, eager.device)
    group = epoch_seconds(timed, spec.batch_size)
    return {
        "members": members,
        **group,
        "images_per_s": members * EPOCH_IMAGES / group["seconds_per_epoch"],
        "seconds_per_member_epoch": group["seconds_per_epoch"] / members,
        "last_loss": [float(v) for v in loss],
        "peak_memory_bytes": peak_memory(runtime.device),
        "step": "eager (torch.func.vmap over the stacked members)",
    }


def fused_vs_one_by_one(fused: dict[str, Any], cols: dict[str, dict[str, Any]]) -> None:
    """Add to ``fused`` its speed-up over G runs one after another of ``ours_eager`` and of
    ``ours_step`` (their seconds per epoch x G / the group's)."""
    group_s, members = fused["seconds_per_epoch"], fused["members"]
    for name in ("ours_eager", "ours_step"):
        fused[f"vs_{name}"] = members * cols[name]["seconds_per_epoch"] / group_s
