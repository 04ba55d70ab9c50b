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

__all__ = ["Progress", "final_metrics", "write_outputs"]


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
