"""Resumable checkpoints of a run, keyed by its config hash, written atomically.

A checkpoint holds only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``; a changed configuration has another hash and never resumes.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from kdecay.config import RunSpec
from kdecay.fileio import atomic_write_bytes

__all__ = ["checkpoint_path", "load_checkpoint", "save_checkpoint"]


def checkpoint_path(spec: RunSpec) -> Path:
    """``<checkpoint_dir>/<config hash>/checkpoint.pt``: a changed config never resumes."""
    return Path(spec.train.checkpoint_dir) / spec.config_hash() / "checkpoint.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically ``torch.save`` a checkpoint (tensors, numbers, strings, lists, dicts only)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """Load a checkpoint with ``weights_only=True``; None when there is none."""
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
