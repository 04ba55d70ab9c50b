"""What a run is and what it ran on (``run.json``), and the CPU-time estimate of a run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from kdecay import __version__
from kdecay.config import RunSpec
from kdecay.train.trainer import Trainer

__all__ = ["code_version", "estimated_cpu_hours", "fmt_seconds", "provenance"]

# Optimistic multiply-add rate of a many-core CPU training in fp32; only used to estimate how
# long a run would take without a GPU before refusing it (README, "Reliability").
CPU_MACS_PER_SECOND = 1.0e11


def estimated_cpu_hours(macs_per_image: int, images_per_epoch: int, epochs: int) -> float:
    """Forward + backward ~ 3 x forward MACs per image, at :data:`CPU_MACS_PER_SECOND`."""
    return 3 * macs_per_image * images_per_epoch * epochs / CPU_MACS_PER_SECOND / 3600


def code_version() -> dict[str, Any]:
    """Commit of the checkout this package runs from, and whether its tracked files differ."""
    here = str(Path(__file__).resolve().parent)

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", "-C", here, *args], capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip()

    try:
        return {
            "git_commit": git("rev-parse", "HEAD"),
            "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        }
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": None}


def fmt_seconds(s: float) -> str:
    s = round(s)
    return f"{s // 3600}h{(s % 3600) // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def provenance(spec: RunSpec, trainer: Trainer, macs: int) -> dict[str, Any]:
    """What the run is and what it ran on: ``run.json`` beside metrics.json (not a metric)."""
    return {
        "dataset": spec.dataset,
        "row": spec.row,
        "method": spec.method,
        "k": spec.k,
        "seed": spec.seed,
        "model": spec.model if isinstance(spec.model, str) else dict(spec.model),
        "schedule": spec.schedule["kind"],
        "params": trainer.params,
        "forward_macs": macs,
        "epochs": spec.epochs,
        "batch_size": spec.batch_size,
        "iterations_per_epoch": trainer.iters_per_epoch,
        "device": trainer.runtime.device_name(),
        "precision": trainer.runtime.precision,
        "conv_precision": trainer.runtime.conv_precision,
        "tf32": trainer.runtime.tf32,
        "step": trainer.runtime.step,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "kdecay_version": __version__,
        **code_version(),
        "config_hash": spec.config_hash(),
        "argv": list(sys.argv),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
