"""Hand-made CIFAR-10 archives for the integrity tests: a tar.gz with the members given (or
zero-filled members of a declared size, streamed), and a valid member layout whose first
training batch or meta member a test replaces."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

from kdecay.data.download import file_md5
from kdecay.data.pickles import py2_pickle_dumps
from kdecay.data.synth import generate

CIFAR10 = "cifar-10-batches-py"


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, streamed (a bomb member without holding it in memory)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n

    def readable(self) -> bool:
        return True


def tar_archive(path: Path, members: dict[str, bytes], big: dict[str, int] | None = None) -> str:
    """A gzip tar with ``members`` (name -> bytes) and ``big`` zero-filled ones (name ->
    size) in the CIFAR-10 folder; returns its md5."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        folder = tarfile.TarInfo(CIFAR10)
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, size in (big or {}).items():
            info = tarfile.TarInfo(f"{CIFAR10}/{name}")
            info.size = size
            tar.addfile(info, _Zeros(size))
        for name, payload in members.items():
            info = tarfile.TarInfo(f"{CIFAR10}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return file_md5(path)


def batch(data: object, labels: object) -> bytes:
    """A CIFAR-10 batch pickle with ``data`` and ``labels``."""
    return py2_pickle_dumps({b"data": data, b"labels": labels, b"batch_label": b"x"})


def cifar10_members(first: bytes | None = None) -> dict[str, bytes]:
    """A valid CIFAR-10 layout (10 images a batch) whose first training batch is ``first``."""
    good = generate("cifar10", n_train=50, n_test=10, seed=0)
    ok = batch(good.train_images[:10].reshape(10, -1), [int(v) for v in good.train_labels[:10]])
    meta = py2_pickle_dumps({b"label_names": [b"c%d" % i for i in range(10)]})
    members = {f"data_batch_{i}": ok for i in range(2, 6)}
    return {"data_batch_1": first or ok, **members, "test_batch": ok, "batches.meta": meta}


def with_meta(members: dict[str, bytes], meta: dict[bytes, Any]) -> dict[str, bytes]:
    """``members`` with ``batches.meta`` replaced by the pickle of ``meta``."""
    return {**members, "batches.meta": py2_pickle_dumps(meta)}
