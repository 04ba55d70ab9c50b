"""G runs of one row trained together as one fused network (``kdecay train-group``).

The members share everything :meth:`kdecay.config.RunSpec.fuse_key` names (dataset, model,
batch size, epochs, optimizer settings, padding, train options) and differ in their schedule
and seed. Each member is built exactly as ``kdecay train`` builds its run alone (a
:class:`~kdecay.train.trainer.Trainer`: initial weights from its seed, its own loader, its
schedule); the members' models are then stacked into one
:class:`~kdecay.train.fused.FusedStep`, whose every kernel does the work of all members. What
stays each member's own:

* its learning rate: its own schedule is stepped every iteration, and its value is written
  into the member's slot of the fused step's LR vector;
* its epoch record, evaluation, ``history.csv``, ``metrics.json``, ``model.pt`` (its slice of
  the stacked weights, the plain model's ``state_dict``) and ``run.json``, which adds
  ``fused_with`` (the stage names trained together) and ``step: fused-<form>``;
* its divergence: a member whose epoch loss is NaN/inf is recorded as diverged at that epoch
  (its weights at divergence saved, as a run alone does), and the group goes on without it;
* its checkpoint, in the single-run format at the single-run path: a ``kdecay train`` of the
  same run resumes from it, and a group killed at any point resumes every member from its
  own newest good checkpoint (never an older one); the members furthest behind train as a
  group until they reach the next member's epoch, which then joins them.

The group's step (:class:`~kdecay.train.fused.FusedStep`) runs in the form ``train.step`` (or
``--step``) names: eager, or forward, backward and update compiled into one graph (``compiled``;
``graph`` adds CUDA graphs); ``run.json`` says which.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from kdecay.checks import ConfigError
from kdecay.config import RunSpec, load_config
from kdecay.fileio import check_writable, exclusive_lock, remove_stale_temps, write_history
from kdecay.models import build_from_spec, forward_macs
from kdecay.train.checkpoint import checkpoint_path, good_checkpoints
from kdecay.train.fused import FusedLoader, FusedStep
from kdecay.train.group_epoch import GroupEpoch, Member, MemberRun
from kdecay.train.outputs import Progress, final_metrics, write_outputs
from kdecay.train.provenance import fmt_seconds, provenance
from kdecay.train.run import (
    LOCK_WAIT_S,
    check_cpu_budget,
    load_run_data,
    log_epoch,
    save_progress,
)
from kdecay.train.runtime import resolve_step, runtime_for
from kdecay.train.trainer import Trainer

__all__ = [
    "Member",
    "MemberRun",
    "check_fusable",
    "has_dropout",
    "member_runs",
    "stack_members",
    "train_group",
]

Log = Callable[[str], None]


def member_runs(params_file: Path, stages: Sequence[str]) -> list[MemberRun]:
    """The runs of ``stages`` (dvc.yaml training stage names) under ``params_file``."""
    config = load_config(params_file)
    runs = {run.stage: run for run in config.runs()}
    unknown = [s for s in stages if s not in runs]
    if unknown:
        raise ConfigError(
            f"{', '.join(unknown)}: not a training stage of {params_file} (names as in "
            "`dvc status`, e.g. train_kdecay@cifar10-wrn16_8-1.5-0)"
        )
    return [MemberRun(config.spec(runs[s]), runs[s].out_dir(), s) for s in stages]


def has_dropout(spec: RunSpec) -> bool:
    """Whether the run's model has a dropout layer with p > 0 (built on the meta device: no
    storage, no time)."""
    with torch.device("meta"):
        model = build_from_spec(spec.model, spec.num_classes)
    return any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules())


def check_fusable(runs: Sequence[MemberRun]) -> None:
    """Refuse (ConfigError) a group that cannot be one network: fewer than 2 runs, a run
    twice, runs of different fuse keys, or a model with dropout (its random masks would
    come from one generator for all members, not each run's own)."""
    if len(runs) < 2:
        raise ConfigError("a fused group needs 2 runs or more: train a single run with train")
    stages = [r.stage for r in runs]
    if len(set(stages)) != len(stages):
        raise ConfigError(f"a run appears twice in the group: {', '.join(stages)}")
    first = runs[0].spec
    for r in runs[1:]:
        if r.spec.fuse_key() != first.fuse_key():
            raise ConfigError(
                f"{r.stage} cannot be fused with {runs[0].stage}: fused runs must share "
                "dataset, row recipe (model, batch, epochs, optimizer, padding) and train "
                "options, and differ only in schedule and seed"
            )
    if has_dropout(first):
        raise ConfigError(f"{first.row}: a model with dropout is not fused; train it alone")


def _build_members(runs: Sequence[MemberRun]) -> list[Member]:
    """Each member's Trainer, built as ``train_run`` builds it (weights from its seed)."""
    spec0 = runs[0].spec
    runtime = dataclasses.replace(runtime_for(spec0.train), step="eager")
    data = load_run_data(spec0)
    members = []
    for run in runs:
        torch.manual_seed(run.spec.seed)
        try:
            model = build_from_spec(run.spec.model, run.spec.num_classes)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"rows.{run.spec.row}.model: {err}") from err
        macs = forward_macs(model)
        check_cpu_budget(run.spec, runtime, macs, int(data.train_labels.numel()))
        first = members[0].trainer if members else None  # one copy of the data on the device
        trainer = Trainer(run.spec, data, model, runtime, share_data_with=first)
        members.append(Member(run, trainer, Progress(), macs))
    return members


def _resume(members: list[Member], log: Log) -> None:
    """Every member from its own newest good checkpoint (or from scratch): no member is set
    back to an older epoch, so no checkpoint is overwritten by an older one and no epoch is
    trained twice beyond one checkpoint interval. Finished members (all epochs, or diverged)
    load their final checkpoint and are not trained."""
    for m in members:
        found = good_checkpoints(
            checkpoint_path(m.spec),
            m.spec.config_hash(),
            lambda s, m=m: log(f"[{m.spec.label}] {s}"),
        )
        if not found:
            continue
        state, path = found[0]
        m.trainer.load_state(state["trainer"])
        m.progress = Progress.from_checkpoint(state)
        if m.to_train:
            log(f"[{m.spec.label}] resuming from {path} after epoch {m.progress.epoch}")
        else:
            log(f"[{m.spec.label}] already trained ({path}): no training")


def stack_members(members: list[Member], form: str = "eager") -> tuple[FusedStep, FusedLoader]:
    """The fused step (in ``form``: eager, compiled, graph) and loader of ``members`` from
    their trainers' current state (weights, batch norm statistics, momentum, loader
    position)."""
    spec = members[0].spec
    lrs = [float(m.trainer.optimizer.param_groups[0]["lr"]) for m in members]
    models = [m.trainer.model for m in members]
    runtime = dataclasses.replace(members[0].trainer.runtime, step=form)
    step = FusedStep(models, runtime, lrs, spec.sgd_hyper(), full_batch=spec.batch_size)
    for g, m in enumerate(members):
        for buf, p in zip(step.momentum, m.trainer.model.parameters(), strict=True):
            saved = m.trainer.optimizer.state.get(p, {}).get("momentum_buffer")
            if saved is not None:
                buf[g].copy_(saved)
    return step, FusedLoader([m.trainer.train_loader for m in members])


def _unstack(step: FusedStep, members: list[Member]) -> None:
    """Write each member's slice of the fused state back into its trainer (weights, batch
    norm statistics, momentum): what its checkpoint and ``model.pt`` hold."""
    for g, m in enumerate(members):
        m.trainer.model.load_state_dict(step.member_state_dict(g))
        for buf, p in zip(step.momentum, m.trainer.model.parameters(), strict=True):
            m.trainer.optimizer.state[p]["momentum_buffer"] = buf[g].detach().clone()


def _train(members: list[Member], stages: list[str], form: str, log: Log) -> None:
    """The epoch loop: the members furthest behind train together until they reach the next
    member's epoch, which then joins them (members resumed from different epochs meet); the
    group shrinks when one diverges."""
    epochs_run, session_seconds, first = 0, 0.0, True
    while todo := [m for m in members if m.to_train]:
        epoch = min(m.progress.epoch for m in todo)
        active = [m for m in todo if m.progress.epoch == epoch]
        until = min((m.progress.epoch for m in todo if m.progress.epoch > epoch), default=None)
        if not first or len(active) < len(members):
            log(
                f"[fused] going on with {len(active)} of {len(stages)} members from epoch "
                f"{epoch}" + (f" until epoch {until}, where the others are" if until else "")
            )
        first = False
        step, loader = stack_members(active, form)
        group_epoch = GroupEpoch(step, loader, active)
        while all(m.to_train for m in active) and active[0].progress.epoch != until:
            records = group_epoch.run()
            epochs_run += 1
            session_seconds += max(r["seconds"] for r in records)
            _unstack(step, active)
            _after_epoch(active, records, session_seconds / epochs_run, log)


def _after_epoch(
    active: list[Member], records: list[dict[str, Any]], per_epoch: float, log: Log
) -> None:
    """Per member: its log line and history; its checkpoint when due (at once when it
    diverged: its weights at divergence are kept, as a run alone keeps them)."""
    for m, record in zip(active, records, strict=True):
        spec, progress = m.spec, m.progress
        if progress.status == "diverged":
            log(
                f"[{spec.label}] DIVERGED at epoch {record['epoch']}: training loss is "
                f"{record['train_loss']}; status 'diverged' recorded, the other members go on"
            )
            save_progress(checkpoint_path(spec), progress, m.trainer, spec)
            continue
        log_epoch(spec, record, (spec.epochs - progress.epoch) * per_epoch, log)
        write_history(m.run.out_dir / "history.csv", progress.history)
        due = progress.epoch % spec.train.checkpoint_every == 0
        if progress.epoch < spec.epochs and due:
            save_progress(checkpoint_path(spec), progress, m.trainer, spec)


def _finish(members: list[Member], stages: list[str], log: Log) -> list[dict[str, Any]]:
    """Final checkpoints (kept until recorded) and every member's outputs."""
    all_metrics = []
    for m in members:
        spec, progress = m.spec, m.progress
        if progress.checkpointed_epoch != progress.epoch or progress.status != "completed":
            save_progress(checkpoint_path(spec), progress, m.trainer, spec)
        info = provenance(spec, m.trainer, m.macs) | m.progress.made_by
        metrics = final_metrics(progress, m.trainer)
        write_outputs(m.run.out_dir, spec, progress, m.trainer, (info, metrics))
        if progress.status == "completed":
            log(
                f"[{spec.label}] done: final test error {metrics['final_test_error']:.2f}% "
                f"(best {metrics['best_test_error']:.2f}% at epoch {metrics['best_epoch']}), "
                f"wall {fmt_seconds(metrics['wall_seconds'])}"
            )
        all_metrics.append(metrics)
    return all_metrics


def _interrupted(members: list[Member]) -> str:
    kept = sorted({str(m.progress.checkpointed_epoch) for m in members if m.to_train})
    return (
        f"fused group of {len(members)} stopped; checkpoints kept after epoch "
        f"{', '.join(kept) or 'none yet'}: rerun the same command (or `kdecay sweep --fuse`) "
        "to resume every member from its checkpoint"
    )


def train_group(
    runs: Sequence[MemberRun], step: str | None = None, log: Log = print
) -> list[dict[str, Any]]:
    """Train ``runs`` as one fused network; write each member's outputs as ``train_run``
    writes a run's; return the members' metrics (in order). ``step``: the fused step's form
    (``auto``, ``eager``, ``compiled``, ``graph``; default the params' ``train.step``, whose
    ``auto`` is compiled on CUDA and eager on the CPU).

    Raises:
        ConfigError: the runs cannot be fused, or a folder is not writable.
        KeyboardInterrupt: on Ctrl-C, saying which checkpoints were kept.
    """
    check_fusable(runs)
    members = _build_members(runs)
    form = resolve_step(step or runs[0].spec.train.step, members[0].trainer.runtime.cuda)
    stages = [r.stage for r in runs]
    for m in members:
        check_writable(m.run.out_dir, f"output folder of {m.run.stage}")
        check_writable(checkpoint_path(m.spec).parent, "checkpoint folder (train.checkpoint_dir)")
    with contextlib.ExitStack() as locks:
        for m in sorted(members, key=lambda m: str(checkpoint_path(m.spec))):
            lock = checkpoint_path(m.spec).parent / "train.lock"
            what = f"the training of {m.spec.label}"
            locks.enter_context(exclusive_lock(lock, what, wait_s=LOCK_WAIT_S))
        for m in members:
            remove_stale_temps(m.run.out_dir)  # a killed write's leftovers
        everyone = members
        done = {id(m): metrics for m in members if (metrics := m.recorded_metrics(log)) is not None}
        if len(done) == len(members):
            return [done[id(m)] for m in members]
        members = [m for m in members if id(m) not in done]
        stages = [m.run.stage for m in members]
        _resume(members, log)
        for m in members:  # what its checkpoints and run.json say trained it
            if m.to_train:
                m.progress.made_by = {"fused_with": stages, "step": f"fused-{form}"}
        spec = members[0].spec
        log(
            f"[fused] {len(members)} runs of {spec.row} as one network: {spec.epochs} epochs x "
            f"{members[0].trainer.iters_per_epoch} it, {form} step, device "
            f"{members[0].trainer.runtime.device_name()}: {', '.join(stages)}"
        )
        t0 = time.perf_counter()
        try:
            _train(members, stages, form, log)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(_interrupted(members)) from None
        done |= dict(zip(map(id, members), _finish(members, stages, log), strict=True))
    log(f"[fused] group of {len(members)} done in {fmt_seconds(time.perf_counter() - t0)}")
    return [done[id(m)] for m in everyone]
