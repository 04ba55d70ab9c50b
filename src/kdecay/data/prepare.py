"""Turn a verified CIFAR archive into one tensor file that loads in seconds.

:func:`prepare` checks the archive's md5 *before* anything is unpickled, extracts it safely
into a temporary folder, parses the official pickles and writes ``out_dir/<dataset>.pt``
atomically. :func:`load_prepared` reads that file with ``torch.load(weights_only=True)``; the
archive is not needed any more.

File content (a dict of plain tensors and lists): ``train_images``/``test_images`` ``uint8
[N, 3, 32, 32]``, ``train_labels``/``test_labels`` ``int64 [N]``, ``classes`` (list of str),
``mean``/``std`` (per channel, of the training set, in ``[0, 1]`` pixel units), ``dataset``,
``format_version``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdecay.checks import DataError
from kdecay.data import archive as cifar_archive
from kdecay.data.archive import IMAGE_SHAPE
from kdecay.data.datasets import DatasetInfo, get_dataset_info
from kdecay.data.download import file_md5
from kdecay.fileio import load_error_reason

if TYPE_CHECKING:  # torch is imported where it is used: an archive is verified without it
    import torch

__all__ = [
    "PreparedData",
    "channel_stats",
    "load_prepared",
    "prepare",
    "prepared_path",
    "save_prepared",
]

FORMAT_VERSION = 2  # 2: a sha256 of the content is stored with it


@dataclass
class PreparedData:
    """A prepared dataset, all on the CPU.

    Attributes:
        train_images: ``uint8 [N, 3, 32, 32]``.
        train_labels: ``int64 [N]``.
        test_images: ``uint8 [M, 3, 32, 32]``.
        test_labels: ``int64 [M]``.
        classes: class names, index = label.
        mean: per-channel mean of the training images, ``[0, 1]`` pixel units.
        std: per-channel standard deviation (population) of the training images, same units.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)


def prepared_path(dataset: str, out_dir: Path) -> Path:
    """Where :func:`prepare` writes ``dataset``: ``out_dir / f"{dataset}.pt"``."""
    get_dataset_info(dataset)
    return Path(out_dir) / f"{dataset}.pt"


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of ``uint8 [N, C, H, W]`` images, in [0, 1] units.

    Exact integer sums (in chunks) keep memory low and the result independent of chunking.
    """
    c = images.shape[1]
    import torch

    total = torch.zeros(c, dtype=torch.int64)
    total_sq = torch.zeros(c, dtype=torch.int64)
    for start in range(0, len(images), 4096):
        chunk = images[start : start + 4096].to(torch.int64)
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += (chunk * chunk).sum(dim=(0, 2, 3))
    count = images.numel() // c
    mean = total.double() / count
    var = (total_sq.double() / count - mean * mean).clamp_min(0.0)
    return (
        tuple(float(v) for v in mean / 255.0),
        tuple(float(v) for v in var.sqrt() / 255.0),
    )


# ---------------------------------------------------------------------------------------------
# public API


def prepare(dataset: str, raw_dir: Path, out_dir: Path, md5: str | None = None) -> Path:
    """Verify, extract and convert ``raw_dir/<archive>`` into ``out_dir/<dataset>.pt``.

    Args:
        dataset: ``"cifar10"`` or ``"cifar100"``.
        raw_dir: folder holding the archive (as left by :func:`kdecay.data.download.download`).
        out_dir: folder receiving the prepared file (created if missing).
        md5: expected md5 of the archive; defaults to the official one.

    Returns:
        The path of the written file (:func:`prepared_path`).

    Raises:
        DataError: unknown dataset, missing archive, md5 mismatch (checked before anything is
            unpickled), unsafe member (absolute path, ``..``, link, device: named in the
            message), or content that is not in the official format.
    """
    info = get_dataset_info(dataset)
    archive = Path(raw_dir) / info.archive
    _verify_archive(archive, info, dataset, (md5 or info.md5).lower())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prepared_path(dataset, out_dir)  # checks the name
    for leftover in out_dir.glob(f".{dataset}-extract-*"):  # of a prepare killed mid-way
        print(f"removing {leftover}, left by an interrupted prepare")
        shutil.rmtree(leftover, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f".{dataset}-extract-", dir=out_dir) as tmp:
        print(f"extracting {archive.name}")
        cifar_archive.safe_extract(archive, Path(tmp), info)
        folder = Path(tmp) / info.base_folder
        if not folder.is_dir():
            raise DataError(
                f"{archive} has no {info.base_folder}/ folder; not an official CIFAR archive"
            )
        print("parsing pickles")
        train_images, train_labels = cifar_archive.read_split(folder, info.train_files, info)
        test_images, test_labels = cifar_archive.read_split(folder, info.test_files, info)
        classes = cifar_archive.read_classes(folder, info)
    import torch  # only now: every member was verified without it (bounded memory)

    train_images, train_labels, test_images, test_labels = (
        torch.from_numpy(a) for a in (train_images, train_labels, test_images, test_labels)
    )
    mean, std = channel_stats(train_images)
    data = PreparedData(train_images, train_labels, test_images, test_labels, classes, mean, std)
    return save_prepared(data, dataset, out_dir)


def save_prepared(data: PreparedData, dataset: str, out_dir: Path) -> Path:
    """Write ``data`` as ``out_dir/<dataset>.pt`` (atomically, with its content hash); the
    file :func:`load_prepared` reads and training uses."""
    out = prepared_path(dataset, Path(out_dir))
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "train_images": data.train_images.contiguous(),
        "train_labels": data.train_labels.contiguous(),
        "test_images": data.test_images.contiguous(),
        "test_labels": data.test_labels.contiguous(),
        "classes": list(data.classes),
        "mean": list(data.mean),
        "std": list(data.std),
    }
    payload["sha256"] = content_sha256(payload)
    _save_atomic(payload, out)
    print(
        f"wrote {out}: {len(data.train_labels)} train / {len(data.test_labels)} test images, "
        f"{len(data.classes)} classes, mean {tuple(round(m, 4) for m in data.mean)}, "
        f"std {tuple(round(s, 4) for s in data.std)}"
    )
    return out


def _verify_archive(archive: Path, info: DatasetInfo, dataset: str, expected: str) -> None:
    """The archive exists and has the expected md5 (checked before anything is unpickled)."""
    if not archive.is_file():
        raise DataError(
            f"{archive} not found: download it first (kdecay download {dataset}) or place the "
            f"official {info.archive} there by hand"
        )
    print(f"checking md5 of {archive}")
    actual = file_md5(archive)
    if actual != expected:
        raise DataError(
            f"md5 mismatch for {archive}: expected {expected}, got {actual}; delete it and "
            "download it again"
        )


def _save_atomic(payload: dict[str, object], out: Path) -> None:
    import torch

    tmp_out = out.with_name(out.name + ".tmp")
    try:
        torch.save(payload, tmp_out)
        os.replace(tmp_out, out)
    except OSError as exc:
        tmp_out.unlink(missing_ok=True)
        raise DataError(
            f"could not write {out} ({exc.strerror or exc}): free space there or make the "
            "folder writable, then prepare again (the archive is fine)"
        ) from exc
    except BaseException:
        tmp_out.unlink(missing_ok=True)
        raise


def content_sha256(payload: dict[str, Any]) -> str:
    """sha256 of a prepared file's content: every tensor's bytes, the classes, mean and std."""
    digest = hashlib.sha256()
    for key in ("train_images", "train_labels", "test_images", "test_labels"):
        tensor = payload[key].contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.numpy().tobytes())
    meta = {k: payload[k] for k in ("dataset", "classes", "mean", "std")}
    digest.update(json.dumps(meta, sort_keys=True).encode())
    return digest.hexdigest()


def _verify(raw: Any, path: Path, fix: str) -> None:
    """The file is a dict of the current format whose content matches its stored sha256."""
    if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
        version = raw.get("format_version") if isinstance(raw, dict) else None
        raise DataError(
            f"prepared data {path} has format {version!r}, not {FORMAT_VERSION} (written by "
            f"another kdecay version, or damaged): {fix}"
        )
    try:
        actual = content_sha256(raw)
    except (KeyError, TypeError, AttributeError, RuntimeError) as exc:
        raise DataError(f"prepared data {path} is malformed ({exc}): {fix}") from exc
    if actual != raw.get("sha256"):
        raise DataError(
            f"prepared data {path} is damaged: the sha256 of its content is {actual}, the "
            f"file says {raw.get('sha256')}; it is not used: {fix}"
        )


def load_prepared(path: Path) -> PreparedData:
    """Load a file written by :func:`prepare` (``torch.load(weights_only=True)``, on the CPU).

    Raises:
        DataError: missing, unreadable, malformed or damaged file (its content does not match
            the sha256 written with it); the message says how to rebuild it.
    """
    path = Path(path)
    name = path.stem
    fix = (
        f"rebuild it with `dvc repro --force prepare@{name}` (or `kdecay prepare --dataset {name}`)"
    )
    if not path.is_file():
        raise DataError(f"prepared data {path} not found: {fix}")
    import torch

    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = load_error_reason(exc)
        raise DataError(f"prepared data {path} could not be read ({reason}): {fix}") from exc
    _verify(raw, path, fix)
    try:
        data = PreparedData(
            train_images=raw["train_images"],
            train_labels=raw["train_labels"],
            test_images=raw["test_images"],
            test_labels=raw["test_labels"],
            classes=[str(c) for c in raw["classes"]],
            mean=tuple(float(v) for v in raw["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in raw["std"]),  # type: ignore[arg-type]
        )
    except (KeyError, TypeError) as exc:
        raise DataError(f"prepared data {path} lacks {exc}: {fix}") from exc
    for split in ("train", "test"):
        images = getattr(data, f"{split}_images")
        labels = getattr(data, f"{split}_labels")
        if (
            images.dtype != torch.uint8
            or tuple(images.shape[1:]) != IMAGE_SHAPE
            or labels.dtype != torch.int64
            or labels.shape != (len(images),)
        ):
            raise DataError(f"prepared data {path} has malformed {split} tensors: {fix}")
    if len(data.mean) != 3 or len(data.std) != 3:
        raise DataError(f"prepared data {path} has malformed mean/std: {fix}")
    return data
