"""Resumable checkpoints of a run, keyed by its config hash, verified before use.

A checkpoint file is one line ``KDECAY-CHECKPOINT sha256=<hex>`` followed by the
``torch.save`` bytes that hash to it, written atomically; the previous checkpoint is kept as
``checkpoint.prev.pt``. A file that fails the check, the weights-only load or the config-hash
comparison is moved aside (``.damaged-<time>``, never deleted), the run says so in one line
and resumes from the previous good checkpoint or from scratch. The payload holds only
tensors, numbers, strings, lists and dicts, so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from kdecay.config import RunSpec
from kdecay.fileio import atomic_write_bytes, load_error_reason

__all__ = [
    "checkpoint_path",
    "good_checkpoints",
    "load_checkpoint",
    "previous_path",
    "save_checkpoint",
]

MAGIC = b"KDECAY-CHECKPOINT sha256="


class DamagedCheckpointError(Exception):
    """A checkpoint that must not be resumed from; the message says why."""


def checkpoint_path(spec: RunSpec) -> Path:
    """``<checkpoint_dir>/<config hash>/checkpoint.pt``: a changed config never resumes."""
    return Path(spec.train.checkpoint_dir) / spec.config_hash() / "checkpoint.pt"


def previous_path(path: Path) -> Path:
    """Where the checkpoint before ``path`` is kept: ``checkpoint.prev.pt``."""
    return path.with_name(path.stem + ".prev" + path.suffix)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` with its sha256 atomically; the checkpoint it replaces becomes
    :func:`previous_path`."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    if path.is_file():
        os.replace(path, previous_path(path))
    atomic_write_bytes(path, MAGIC + digest + b"\n" + payload)


def _read_verified(path: Path, config_hash: str | None) -> dict[str, Any]:
    blob = path.read_bytes()
    header, _, payload = blob.partition(b"\n")
    if not header.startswith(MAGIC):
        raise DamagedCheckpointError("no kdecay checksum header")
    if hashlib.sha256(payload).hexdigest().encode() != header[len(MAGIC) :]:
        raise DamagedCheckpointError("its sha256 does not match the one written with it")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DamagedCheckpointError(load_error_reason(exc)) from exc
    if not isinstance(state, dict):
        raise DamagedCheckpointError("it does not hold a checkpoint")
    if config_hash is not None and state.get("config_hash") != config_hash:
        raise DamagedCheckpointError("it belongs to another configuration")
    return state


def _verified_or_aside(
    candidate: Path, config_hash: str | None, fallback: str, log: Callable[[str], None]
) -> dict[str, Any] | None:
    """The checkpoint in ``candidate`` if it passes every check; else it is moved aside
    (``.damaged-<time>``) with one line, and None."""
    try:
        return _read_verified(candidate, config_hash)
    except (DamagedCheckpointError, OSError) as err:
        aside = candidate.with_name(f"{candidate.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(candidate, aside)
        log(f"checkpoint {candidate} is not usable ({err}): moved it to {aside}; {fallback}")
    return None


def load_checkpoint(
    path: Path, config_hash: str | None = None, log: Callable[[str], None] = print
) -> tuple[dict[str, Any], Path] | None:
    """The newest good checkpoint (``path``, else :func:`previous_path`) and its file; None
    when there is none. Damaged files are moved aside with one line each."""
    for candidate in (path, previous_path(path)):
        if not candidate.is_file():
            continue
        fallback = "trying the previous checkpoint" if candidate == path else "starting over"
        state = _verified_or_aside(candidate, config_hash, fallback, log)
        if state is not None:
            return state, candidate
    return None


def good_checkpoints(
    path: Path, config_hash: str | None = None, log: Callable[[str], None] = print
) -> list[tuple[dict[str, Any], Path]]:
    """Every good checkpoint of the run, newest first (``path``, then
    :func:`previous_path`), damaged ones moved aside."""
    found = []
    for candidate in (path, previous_path(path)):
        if candidate.is_file():
            state = _verified_or_aside(candidate, config_hash, "not using it", log)
            if state is not None:
                found.append((state, candidate))
    return found
