"""The training steps of ``kdecay proof``: fused groups trained on the device against the
same runs alone, and one full epoch of ``kdecay train``.

``fused``: for each thin row (:data:`kdecay.bench.proof_checks.THIN`), runs of seeds 0..7 are
trained alone (eager step, fp32) for two short epochs, then the first G = 4 and all G = 8 of
them as one fused group (:class:`kdecay.train.group_epoch.GroupEpoch`, the code of
``kdecay train-group``); every member's epoch losses must follow its run alone within
``0.01 + 1% |loss|`` (fp32 on both sides; the batched kernels round differently), and the
second epoch is timed on both sides (G runs alone one after another against the group).

``epoch``: the plan's largest row trained by :func:`kdecay.train.run.train_run` for one epoch
on CIFAR-shaped random data written as a prepared dataset (50,000 + 10,000 images on CUDA,
2,000 + 500 on the CPU), with the row's step form, evaluation and final checkpoint.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from kdecay.bench.pipelines import bench_images, ours_trainer, synthetic_data
from kdecay.bench.proof_bench import by_plan_share
from kdecay.bench.proof_checks import THIN
from kdecay.bench.targets import select_targets
from kdecay.bench.timing import free, sync
from kdecay.config import RunSpec, load_config
from kdecay.data.prepare import save_prepared
from kdecay.train import Runtime
from kdecay.train.group import stack_members
from kdecay.train.group_epoch import GroupEpoch, Member, MemberRun
from kdecay.train.outputs import Progress

__all__ = ["GROUPS", "full_epoch", "fused_groups"]

GROUPS = (4, 8)
TOL = (0.01, 0.01)  # absolute, relative: fp32 on both sides


def _alone(spec: RunSpec, runtime: Runtime, n_train: int, seeds: int) -> dict[str, Any]:
    """Runs of seeds 0..seeds-1 alone: their two epochs' mean losses, the second timed."""
    losses, seconds = [], []
    for g in range(seeds):
        trainer = ours_trainer(dataclasses.replace(spec, seed=g), runtime, n_train)
        first = trainer.train_epoch()[0]
        sync(runtime.device)
        t0 = time.perf_counter()
        second = trainer.train_epoch()[0]
        seconds.append(time.perf_counter() - t0)
        losses.append([first, second])
        del trainer
    return {"losses": losses, "seconds": seconds}


def _group(spec: RunSpec, runtime: Runtime, n_train: int, members: int) -> dict[str, Any]:
    """The first ``members`` runs as one fused group: their two epochs, the second timed."""
    group = [
        Member(
            MemberRun(dataclasses.replace(spec, seed=g), Path("."), f"seed{g}"),
            ours_trainer(dataclasses.replace(spec, seed=g), runtime, n_train),
            Progress(),
            0,
        )
        for g in range(members)
    ]
    step, loader = stack_members(group)
    epoch = GroupEpoch(step, loader, group)
    first = epoch.run()
    sync(runtime.device)
    t0 = time.perf_counter()
    second = epoch.run()
    seconds = time.perf_counter() - t0
    losses = [[a["train_loss"], b["train_loss"]] for a, b in zip(first, second, strict=True)]
    return {"losses": losses, "seconds": seconds}


def _compare(fused: list[list[float]], alone: list[list[float]]) -> dict[str, Any]:
    pairs = [
        (f, a) for fs, as_ in zip(fused, alone, strict=True) for f, a in zip(fs, as_, strict=True)
    ]
    gap = max(abs(f - a) for f, a in pairs)
    within = all(abs(f - a) <= TOL[0] + TOL[1] * abs(a) for f, a in pairs)
    return {"max_abs_gap": gap, "within_tolerance": within}


def fused_groups(
    params: Path, runtime: Runtime, steps: int, result: dict[str, Any], log: Any
) -> dict[str, Any]:
    """Each thin row of ``params`` fused at G = 4 and 8 against its runs alone (fills
    ``result`` row by row, so a stopped step keeps the rows it finished)."""
    eager = dataclasses.replace(runtime, step="eager", amp_dtype=None, channels_last=False)
    config = load_config(params)
    for target in [t for t in select_targets(config, None) if t.name in THIN]:
        spec, n_train = target.spec, bench_images(target.spec.batch_size, steps)
        row: dict[str, Any] = {"batch_size": spec.batch_size, "images": n_train, "groups": {}}
        result[target.name] = row
        alone = _alone(spec, eager, n_train, max(GROUPS))
        row["alone_seconds_per_epoch"] = sorted(alone["seconds"])[len(alone["seconds"]) // 2]
        for g in GROUPS:
            fused = _group(spec, eager, n_train, g)
            row["groups"][str(g)] = {
                **_compare(fused["losses"], alone["losses"][:g]),
                "group_seconds_per_epoch": fused["seconds"],
                "speedup_vs_alone_eager": g * row["alone_seconds_per_epoch"] / fused["seconds"],
            }
            free(runtime.device)
            log(f"[proof] fused {target.name} G={g}: {row['groups'][str(g)]}")
    result["all_within_tolerance"] = all(
        grp["within_tolerance"]
        for row in result.values() if isinstance(row, dict)
        for grp in row["groups"].values()
    )  # fmt: skip
    result["tolerance"] = f"{TOL[0]} + {TOL[1]} x |loss| on each epoch's mean training loss"
    return result


def full_epoch(params: Path, device: str, result: dict[str, Any], log: Any) -> dict[str, Any]:
    """One epoch of ``train_run`` for the plan's largest row: seconds, test error, files."""
    from kdecay.train.run import train_run

    config = load_config(params)
    target = by_plan_share(config, select_targets(config, None))[0]
    n_train, n_test = (50_000, 10_000) if device == "cuda" else (2_000, 500)
    with tempfile.TemporaryDirectory(prefix="kdecay-proof-epoch-") as tmp:
        work = Path(tmp)
        data = synthetic_data(n_train, target.spec.num_classes, seed=3, n_test=n_test)
        save_prepared(data, target.spec.dataset, work / "prepared")
        train = dataclasses.replace(
            target.spec.train, device=device, eval_every=1, checkpoint_dir=str(work / "ckpt")
        )
        spec = dataclasses.replace(
            target.spec, epochs=1, prepared_dir=str(work / "prepared"), train=train
        )
        result |= {"row": target.rows[0], "train_images": n_train, "test_images": n_test}
        t0 = time.perf_counter()
        metrics = train_run(spec, work / "out", log)
        result["wall_seconds"] = time.perf_counter() - t0
        result["files"] = sorted(p.name for p in (work / "out").iterdir())
        result["checkpoint_written"] = any((work / "ckpt").rglob("*.pt"))
        result["metrics"] = metrics
    return result
