"""What a run writes: its progress (history, status, the epoch of its last checkpoint) and,
at the end, its outputs: ``history.csv``, ``model.pt``, ``run.json`` and ``metrics.json``."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kdecay.checks import DataError
from kdecay.config import RunSpec
from kdecay.fileio import atomic_write_bytes, write_history, write_json
from kdecay.train.checkpoint import checkpoint_path
from kdecay.train.trainer import Trainer

__all__ = ["Progress", "evaluates", "final_metrics", "write_outputs"]


def evaluates(spec: RunSpec, epochs_done: int) -> bool:
    """Whether the test set is evaluated after epoch ``epochs_done`` (1-based): every
    ``train.eval_every`` epochs and after the last."""
    return epochs_done == spec.epochs or epochs_done % spec.train.eval_every == 0


@dataclass
class Progress:
    """The part of a run that a checkpoint carries besides the trainer's state."""

    history: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0
    wall_seconds: float = 0.0
    train_seconds: float = 0.0
    status: str = "completed"
    diverged_epoch: int | None = None
    checkpointed_epoch: int | None = None
    made_by: dict[str, Any] = field(default_factory=dict)  # run.json's fields of the trainer
    # that trained it, when not the run's own (a fused group: fused_with and its step)

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> Progress:
        """The progress a checkpoint payload (:meth:`checkpoint`) carries."""
        return cls(
            history=list(ckpt["history"]),
            epoch=int(ckpt["epoch"]),
            wall_seconds=float(ckpt["wall_seconds"]),
            train_seconds=float(ckpt["train_seconds"]),
            status=str(ckpt.get("status", "completed")),
            diverged_epoch=ckpt.get("diverged_epoch"),
            checkpointed_epoch=int(ckpt["epoch"]),
            made_by=dict(ckpt.get("made_by") or {}),
        )

    def diverge(self, record: dict[str, Any], train_seconds: float) -> None:
        """Close epoch ``epoch + 1`` whose training loss is NaN/inf: status "diverged", the
        epoch's line kept in the history, the epoch count not advanced."""
        self.status, self.diverged_epoch = "diverged", self.epoch + 1
        record["seconds"] = round(train_seconds, 3)
        self.history.append(record)

    def complete(
        self,
        record: dict[str, Any],
        train_seconds: float,
        seconds: float,
        test: tuple[float, float] | None,
    ) -> None:
        """Close a finished epoch: its (test loss, test error %) or None, its times."""
        test_loss, test_err = test if test is not None else (None, None)
        self.wall_seconds += seconds
        self.train_seconds += train_seconds
        self.epoch += 1
        record.update(test_loss=test_loss, test_error=test_err, seconds=round(seconds, 3))
        self.history.append(record)

    def checkpoint(self, trainer: Trainer, spec: RunSpec) -> dict[str, Any]:
        """The checkpoint payload after :attr:`epoch` epochs."""
        return {
            "trainer": trainer.state(),
            "history": self.history,
            "epoch": self.epoch,
            "wall_seconds": self.wall_seconds,
            "train_seconds": self.train_seconds,
            "status": self.status,
            "diverged_epoch": self.diverged_epoch,
            "config_hash": spec.config_hash(),
            "made_by": self.made_by,
        }


def final_metrics(progress: Progress, trainer: Trainer) -> dict[str, Any]:
    """The numbers of the run (``metrics.json``, a DVC metric)."""
    history, done = progress.history, progress.status == "completed"
    evaluated = [h for h in history if h.get("test_error") is not None]
    best = min(evaluated, key=lambda h: h["test_error"]) if evaluated else None
    last = history[-1] if done else {}
    return {
        "status": progress.status,
        "diverged_epoch": progress.diverged_epoch,
        "epochs_completed": len(history) if done else len(history) - 1,
        "final_test_error": last.get("test_error"),
        "final_test_loss": last.get("test_loss"),
        "final_train_loss": last.get("train_loss"),
        "final_train_error": last.get("train_error"),
        "best_test_error": best["test_error"] if best else None,
        "best_epoch": best["epoch"] if best else None,
        "wall_seconds": round(progress.wall_seconds, 3),
        "images_per_second": (
            round(trainer.n_train * len(history) / progress.train_seconds, 1)
            if done and progress.train_seconds > 0
            else None
        ),
        # what the convolutions computed in: bf16 | tf32 | fp32 (the step form is in run.json)
        "conv_precision": trainer.runtime.conv_precision,
    }


def write_outputs(
    out_dir: Path,
    spec: RunSpec,
    progress: Progress,
    trainer: Trainer,
    info_and_metrics: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """history.csv, model.pt, run.json, then metrics.json (last: its presence means done).
    A full disk or another write error is one line naming the file; the final checkpoint is
    kept, so the rerun writes the outputs without training again."""
    run_info, metrics = info_and_metrics
    target = out_dir / "history.csv"
    try:
        write_history(target, progress.history)
        if spec.train.save_weights:  # a diverged run's too: its weights at divergence
            buffer = io.BytesIO()
            torch.save(trainer.model.state_dict(), buffer)
            target = out_dir / "model.pt"
            atomic_write_bytes(target, buffer.getvalue())
        target = out_dir / "run.json"
        write_json(target, run_info)
        target = out_dir / "metrics.json"
        write_json(target, metrics)
    except OSError as err:
        raise DataError(
            f"could not write {target} ({err.strerror or err}): free space there (or fix its "
            f"folder), then rerun `dvc repro`: the run's final checkpoint "
            f"({checkpoint_path(spec)}) is kept, so nothing is trained again"
        ) from err
