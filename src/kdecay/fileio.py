"""Atomic files: the stages write their outputs (metrics.json, history.csv, model.pt, the
summary, tables, figures, checkpoints) through :func:`atomic_write_bytes` or
:func:`atomic_write_many`; ``prepare`` streams its large tensor file through ``torch.save`` to a
temporary name and renames it the same way (:func:`kdecay.data.prepare.prepare`).

Every write goes to a temporary file in the same folder and is renamed over the target, so a
kill -9 at any moment leaves either the old or the new file, never a torn one.
:func:`exclusive_lock` keeps two processes from doing the same work at once (a run, a sweep).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kdecay.checks import ConfigError, LockedError

HISTORY_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_error",
    "test_loss",
    "test_error",
    "seconds",
)


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` as the user's umask lets a newly created file have it (0o644 for umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary sibling file and ``os.replace``.

    The file gets the permissions of the user's umask, like any file the user creates
    (``tempfile`` alone would leave it readable by its owner only).
    """
    atomic_write_many({path: data})


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove the temporary siblings (``.<name>.*.tmp``) that an atomic write killed before its
    rename left in ``folder`` (they would make ``dvc status`` of a recorded run dirty); call it
    holding the folder's writer lock, so no live write is removed. Returns what it removed."""
    stale = sorted(folder.glob(".*.tmp")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def atomic_write_many(files: dict[Path, bytes]) -> None:
    """Write several files all or none: every temporary sibling file is written first (a
    failure removes them and leaves the old files untouched), then each is renamed into
    place. Files get the permissions of the user's umask."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temps.append((tmp, path))
            os.fchmod(fd, umask_mode())
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        raise
    for tmp, path in temps:
        os.replace(tmp, path)


def _try_lock(handle: Any, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created) for the block, or raise
    :class:`LockedError` if another process still holds it after ``wait_s`` seconds (time for
    a process being stopped, say a requeued job's, to let go): ``what`` names the work the
    lock guards. The kernel releases the lock when the holder exits, even by kill -9."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        if not _try_lock(handle, wait_s):
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise LockedError(
                f"{what} is already running (process {holder}, lock {path}): wait for it to "
                "end; two at once would write the same files"
            )
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_json(path: Path, obj: dict[str, Any]) -> None:
    """Atomically write a JSON object (pretty-printed, keys in insertion order)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def write_history(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Atomically write the per-epoch history as CSV with :data:`HISTORY_COLUMNS`."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in HISTORY_COLUMNS})
    atomic_write_bytes(path, buf.getvalue().encode())


def load_error_reason(exc: BaseException) -> str:
    """A short reason why ``torch.load`` failed, without torch's advice to turn off
    ``weights_only`` (never the fix for a file this project wrote)."""
    text = str(exc)
    if "weights_only" in text or "Weights only" in text:
        return "it holds data a weights-only load refuses (damaged or not written by kdecay)"
    return (text.splitlines() or [type(exc).__name__])[0][:200]


def check_writable(folder: Path, what: str) -> None:
    """Fail before any work (a run's first epoch, a proof's first step), not after hours of
    it, if ``folder`` cannot be made or written: one line naming it and ``what`` it is for."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".kdecay-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"cannot write to {folder} ({err.strerror or err}): the {what} needs a writable folder"
        ) from err
