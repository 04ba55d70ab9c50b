"""Safe extraction of a CIFAR archive and parsing of its batches into tensors.

Every tar member is checked (regular files and folders only, no absolute or escaping paths)
before tarfile's ``filter="data"`` extracts it; batches are unpickled by the restricted
:class:`kdecay.data.pickles.CifarUnpickler`.
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from kdecay.checks import DataError
from kdecay.data.datasets import DatasetInfo
from kdecay.data.pickles import load_pickle

__all__ = ["IMAGE_SHAPE", "read_classes", "read_split", "safe_extract"]

IMAGE_SHAPE = (3, 32, 32)


def check_member(member: tarfile.TarInfo, dest: Path) -> None:
    """Refuse anything but regular files and folders that stay inside ``dest``."""
    name = member.name
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"unsafe archive member {name!r}: absolute path; refusing to extract")
    if ".." in pure.parts:
        raise DataError(f"unsafe archive member {name!r}: escapes the target folder")
    if not (member.isfile() or member.isdir()):
        raise DataError(
            f"unsafe archive member {name!r}: links, devices and other special files are refused"
        )
    target = (dest / name).resolve()
    if target != dest and dest not in target.parents:
        raise DataError(f"unsafe archive member {name!r}: escapes the target folder")


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract ``archive`` into ``dest``: every member checked, then ``filter="data"``."""
    dest = dest.resolve()
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            members = tar.getmembers()
            for member in members:
                check_member(member, dest)
            tar.extractall(dest, members=members, filter="data")
    except tarfile.FilterError as exc:
        member = getattr(exc, "tarinfo", None)
        name = member.name if member is not None else "?"
        raise DataError(f"unsafe archive member {name!r} in {archive}: {exc}") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(
            f"{archive} could not be extracted ({exc}); delete it and download it again"
        ) from exc


def read_split(folder: Path, files: tuple[str, ...], info: DatasetInfo) -> tuple[Any, Any]:
    images, labels = [], []
    for name in files:
        batch = load_pickle(folder / name)
        try:
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            lab = np.asarray(batch[info.labels_key], dtype=np.int64)
        except KeyError as exc:
            raise DataError(f"{name}: missing key {exc}; not an official CIFAR archive") from exc
        if data.ndim != 2 or data.shape[1] != 3072 or len(lab) != len(data):
            raise DataError(
                f"{name}: data of shape {data.shape} with {len(lab)} labels, expected [n, 3072]"
            )
        if len(lab) and (lab.min() < 0 or lab.max() >= info.num_classes):
            raise DataError(f"{name}: labels outside 0..{info.num_classes - 1}")
        images.append(data.reshape(-1, *IMAGE_SHAPE))
        labels.append(lab)
    return (
        torch.from_numpy(np.concatenate(images)),
        torch.from_numpy(np.concatenate(labels)),
    )


def read_classes(folder: Path, info: DatasetInfo) -> list[str]:
    meta = load_pickle(folder / info.meta_file)
    try:
        names = meta[info.label_names_key]
    except KeyError as exc:
        raise DataError(f"{info.meta_file}: missing key {exc}") from exc
    classes = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
    if len(classes) != info.num_classes:
        raise DataError(
            f"{info.meta_file}: {len(classes)} class names, expected {info.num_classes}"
        )
    return classes
