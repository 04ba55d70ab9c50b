"""Safe extraction of a CIFAR archive and parsing of its batches into tensors.

Every tar member is checked (regular files and folders only, no absolute or escaping paths,
bounded sizes) and then copied out by this module itself, byte for byte from
``TarFile.extractfile``: tarfile's ``extract`` is never called, so extraction is equally safe on
every CPython 3.11 (its ``filter=`` argument only exists from 3.11.4; Debian 12 ships 3.11.2).
Batches are unpickled by the restricted :class:`kdecay.data.pickles.CifarUnpickler`.
"""

from __future__ import annotations

import errno
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from kdecay.checks import DataError
from kdecay.data.datasets import DatasetInfo
from kdecay.data.pickles import load_pickle

__all__ = ["IMAGE_SHAPE", "expected_members", "read_classes", "read_split", "safe_extract"]

IMAGE_SHAPE = (3, 32, 32)
# The largest official member is CIFAR-100's ``train`` (50,000 x 3,072 pixels + labels and
# file names: about 155 MB); the official archives unpack to about 178 MB (CIFAR-10) and
# 184 MB (CIFAR-100). Anything beyond these bounds is not a CIFAR archive.
MAX_MEMBER_BYTES = 200 * 2**20
MAX_TOTAL_BYTES = 400 * 2**20


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


def expected_members(info: DatasetInfo) -> set[str]:
    """The archive members :func:`read_split`/:func:`read_classes` need (nothing else is
    extracted)."""
    names = (*info.train_files, *info.test_files, info.meta_file)
    return {f"{info.base_folder}/{name}" for name in names}


def _check_size(member: tarfile.TarInfo, total: int, archive: Path) -> int:
    """Running total of the extracted bytes; refuses what no CIFAR archive holds."""
    if member.size > MAX_MEMBER_BYTES or total + member.size > MAX_TOTAL_BYTES:
        what = "member" if member.size > MAX_MEMBER_BYTES else "archive"
        raise DataError(
            f"{archive}: member {member.name!r} declares {member.size:,} bytes, which makes the "
            f"{what} larger than any CIFAR archive ({MAX_MEMBER_BYTES:,} bytes a member, "
            f"{MAX_TOTAL_BYTES:,} in all): refusing to extract it (a decompression bomb or "
            "not a CIFAR archive); delete it and download the official one"
        )
    return total + member.size


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    """Write one checked member under ``dest``: folders are created, regular files are copied
    from the archive stream (plain permissions, no owner, no special bits)."""
    target = dest / member.name
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(member)
    if source is None:  # only regular files reach here: check_member refused everything else
        raise tarfile.ExtractError(f"member {member.name!r} has no data")
    with source, open(target, "wb") as out:
        shutil.copyfileobj(source, out, length=2**20)


def safe_extract(archive: Path, dest: Path, info: DatasetInfo) -> None:
    """Extract the members of :func:`expected_members` from ``archive`` into ``dest``.

    Members are read one at a time in archive order and each is checked before anything is
    written: type and path (:func:`check_member`) and size (at most :data:`MAX_MEMBER_BYTES`
    each, :data:`MAX_TOTAL_BYTES` in all); the first excess stops the extraction. The checked
    members are copied out by :func:`_copy_member`, never by ``TarFile.extract``.
    """
    dest, wanted, total = dest.resolve(), expected_members(info), 0
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                check_member(member, dest)
                if member.name not in wanted:
                    continue
                total = _check_size(member, total, archive)
                _copy_member(tar, member, dest)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DataError(f"no space left on device extracting {archive} into {dest}") from exc
        raise DataError(
            f"{archive} could not be extracted ({exc}); delete it and download it again"
        ) from exc
    except (tarfile.TarError, EOFError) as exc:
        raise DataError(
            f"{archive} could not be extracted ({exc}); delete it and download it again"
        ) from exc


def _batch_arrays(batch: dict[bytes, Any], name: str, info: DatasetInfo) -> tuple[Any, Any]:
    """``(data, labels)`` of one batch, checked exactly: no value is ever cast silently."""
    fix = "the archive is damaged or not an official CIFAR archive; download it again"
    if b"data" not in batch or info.labels_key not in batch:
        missing = b"data" if b"data" not in batch else info.labels_key
        raise DataError(f"{name}: missing key {missing!r}; {fix}")
    data, labels = batch[b"data"], batch[info.labels_key]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        kind = data.dtype if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{name}: b'data' must be a uint8 array, got {kind}; {fix}")
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] == 0:
        raise DataError(f"{name}: b'data' has shape {data.shape}, expected [n >= 1, 3072]; {fix}")
    if isinstance(labels, list):
        # a flat list of Python ints (no bool, float, tuple): checked item by item, stops early
        if not all(type(v) is int for v in labels):
            raise DataError(f"{name}: {info.labels_key!r} holds non-integer labels; {fix}")
    elif not isinstance(labels, np.ndarray):
        # never walked: a tuple or nested containers could stand for 2^40 values
        raise DataError(
            f"{name}: {info.labels_key!r} must be a flat list of integer labels, got a "
            f"{type(labels).__name__}; {fix}"
        )
    lab = np.asarray(labels)
    if lab.dtype.kind not in "iu" or lab.shape != (len(data),):
        raise DataError(
            f"{name}: {info.labels_key!r} must hold {len(data)} integer labels, got "
            f"{lab.dtype} {lab.shape}; {fix}"
        )
    if lab.min() < 0 or lab.max() >= info.num_classes:
        raise DataError(f"{name}: labels outside 0..{info.num_classes - 1}; {fix}")
    return data, lab.astype(np.int64)


def read_split(folder: Path, files: tuple[str, ...], info: DatasetInfo) -> tuple[Any, Any]:
    """uint8 ``[N, 3, 32, 32]`` images and int64 labels of the batches ``files`` (numpy)."""
    images, labels = [], []
    for name in files:
        data, lab = _batch_arrays(load_pickle(folder / name), name, info)
        images.append(data.reshape(-1, *IMAGE_SHAPE))
        labels.append(lab)
    return np.concatenate(images), np.concatenate(labels)


def read_classes(folder: Path, info: DatasetInfo) -> list[str]:
    """The class names of the meta member: exactly ``num_classes`` distinct byte strings."""
    meta = load_pickle(folder / info.meta_file)
    try:
        names = meta[info.label_names_key]
    except KeyError as exc:
        raise DataError(f"{info.meta_file}: missing key {exc}") from exc
    n = info.num_classes
    ok = isinstance(names, list) and len(names) == n
    ok = ok and all(isinstance(v, bytes) and 0 < len(v) <= 100 for v in names)
    if not ok or len(set(names)) != n:
        shown = repr(names)[:80]
        raise DataError(
            f"{info.meta_file}: {info.label_names_key!r} must be a list of {n} distinct byte "
            f"strings (the class names), got {shown}; the archive is damaged or not an "
            "official CIFAR archive; download it again"
        )
    try:
        return [v.decode("utf-8") for v in names]
    except UnicodeDecodeError as exc:
        raise DataError(f"{info.meta_file}: a class name is not text ({exc})") from exc
