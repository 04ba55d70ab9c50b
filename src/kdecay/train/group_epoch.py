"""One epoch of a fused group: every member's training pass, losses and evaluation at once;
and the member types of :mod:`kdecay.train.group` (a run of the group, a member in training).

Per iteration, each member's LR is its own schedule's value at that iteration, copied into
the fused step's ``[G]`` LR tensor from a per-epoch table on the device. The
epoch's mean loss and error of member ``g`` are accumulated on the device as
``Trainer.train_epoch`` accumulates a run's; the evaluation runs every member on the same
test batches (``FusedStep.logits``) and reduces per member as ``Trainer.evaluate`` does.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from kdecay.config import RunSpec
from kdecay.train.checkpoint import checkpoint_path, previous_path
from kdecay.train.fused import FusedLoader, FusedStep
from kdecay.train.outputs import Progress, evaluates
from kdecay.train.trainer import Trainer

__all__ = ["GroupEpoch", "Member", "MemberRun"]


@dataclass(frozen=True)
class MemberRun:
    """One run of a fused group: what it trains, where its outputs go, its DVC stage name."""

    spec: RunSpec
    out_dir: Path
    stage: str


@dataclass
class Member:
    """A member while the group trains: its run, trainer (the source of its state between
    fused passes) and progress."""

    run: MemberRun
    trainer: Trainer
    progress: Progress
    macs: int

    @property
    def spec(self) -> RunSpec:
        """The member's run."""
        return self.run.spec

    @property
    def to_train(self) -> bool:
        """Epochs left and not diverged."""
        return self.progress.status == "completed" and self.progress.epoch < self.spec.epochs

    def recorded_metrics(self, log: Callable[[str], None]) -> dict[str, Any] | None:
        """The metrics of a member trained before whose checkpoints are gone (cleaned once
        recorded) and whose outputs are complete and of this configuration (the reports'
        reader, :func:`kdecay.report.run_files.read_run`); None for a member to train or
        resume."""
        from kdecay.report.run_files import read_run

        path = checkpoint_path(self.spec)
        if path.exists() or previous_path(path).exists():
            return None
        out = self.run.out_dir
        found = read_run(out, self.spec.config_hash(), self.spec.epochs, self.run.stage)
        if found.status not in ("completed", "diverged"):
            return None
        log(f"[{self.spec.label}] already trained ({out} complete): nothing to do")
        return json.loads((out / "metrics.json").read_text())


class GroupEpoch:
    """Runs the members' next epoch on their fused step; closes each member's progress."""

    def __init__(self, step: FusedStep, loader: FusedLoader, members: Sequence[Member]) -> None:
        self.step, self.loader, self.members = step, loader, list(members)
        self.trainer = members[0].trainer  # shared: device, test loader, set sizes
        self.device = self.trainer.device

    def _train_pass(self, first_iteration: int) -> tuple[list[float], list[float]]:
        """One pass over the training set: per member (mean loss, error %). Member ``g``'s LR
        at iteration ``t`` is its schedule's value ``schedule_g(t)``, from a table written to
        the device once per epoch; its ``LRSchedule`` is then set to the epoch's end, where
        ``Trainer.train_step`` would have stepped it."""
        g, iters = len(self.members), self.trainer.iters_per_epoch
        schedules = [m.trainer.schedule for m in self.members]
        its = range(first_iteration, first_iteration + iters)
        table = torch.tensor([[s(t) for s in schedules] for t in its], dtype=torch.float32)
        table = table.to(self.device)
        loss_sum = torch.zeros(g, device=self.device, dtype=torch.float64)
        wrong = torch.zeros(g, device=self.device, dtype=torch.int64)
        for lrs, (x, y) in zip(table, self.loader, strict=True):
            self.step.lr.copy_(lrs)
            loss, wrong_batch = self.step(x, y)
            loss_sum += loss.double() * y.shape[1]
            wrong += wrong_batch
        for m in self.members:
            m.trainer.lr_schedule.load_state_dict(
                {"last_epoch": first_iteration + iters, "last_lr": []}
            )
        n = self.trainer.n_train
        return (loss_sum / n).tolist(), (100.0 * wrong.double() / n).tolist()

    @torch.no_grad()
    def _evaluate(self) -> list[tuple[float, float]]:
        """Per member: test loss and error % (no augmentation, large batches)."""
        g = len(self.members)
        loss_sum = torch.zeros(g, device=self.device, dtype=torch.float64)
        wrong = torch.zeros(g, device=self.device, dtype=torch.int64)
        n = 0
        for x, y in self.trainer.test_loader:
            out = self.step.logits(x).float()  # [G, N, classes]
            targets = y.repeat(g)
            per_image = F.cross_entropy(out.flatten(0, 1), targets, reduction="none")
            loss_sum += per_image.view(g, -1).sum(1).double()
            wrong += (out.argmax(2) != y).sum(1)
            n += y.numel()
        return list(
            zip((loss_sum / n).tolist(), (100.0 * wrong.double() / n).tolist(), strict=True)
        )

    def run(self) -> list[dict[str, Any]]:
        """Train the epoch; close every member's progress (diverged or complete, evaluated
        when due); return the members' epoch records."""
        epoch = self.members[0].progress.epoch
        t0 = time.perf_counter()
        iters = self.trainer.iters_per_epoch
        first_lrs = [m.trainer.schedule(epoch * iters) for m in self.members]
        losses, errors = self._train_pass(epoch * iters)
        self.trainer.runtime.sync()
        t_train = time.perf_counter() - t0
        records = [
            {"epoch": epoch + 1, "lr": lr, "train_loss": loss, "train_error": err}
            for lr, loss, err in zip(first_lrs, losses, errors, strict=True)
        ]
        finite = [math.isfinite(loss) for loss in losses]
        spec = self.members[0].spec
        tests = self._evaluate() if any(finite) and evaluates(spec, epoch + 1) else None
        seconds = time.perf_counter() - t0
        for g, (m, record) in enumerate(zip(self.members, records, strict=True)):
            if not finite[g]:
                m.progress.diverge(record, t_train)
            else:
                m.progress.complete(record, t_train, seconds, tests[g] if tests else None)
        return records
