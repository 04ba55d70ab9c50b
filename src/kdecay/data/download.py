"""Download of the official CIFAR archives, with md5 verification and a progress bar.

The archive is written to ``<raw_dir>/<archive>.part`` and renamed to ``<raw_dir>/<archive>``
only once its md5 matches, so an interrupted or corrupted download never leaves a file that
looks valid. An archive already present with the right md5 is kept and nothing is fetched.
Any URL scheme that :mod:`urllib` understands works, ``file://`` included (used by the tests).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from kdecay.checks import DataError
from kdecay.data.datasets import get_dataset_info

__all__ = ["download", "file_md5"]

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


def file_md5(path: Path) -> str:
    """md5 hex digest of the file at ``path`` (``hashlib.file_digest``: read in chunks)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _fetch(url: str, dest: Path, desc: str) -> None:
    """Copy ``url`` to ``dest`` with a tqdm progress bar (raises ``OSError``/``URLError``)."""
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, dest.open("wb") as out:
        length = response.headers.get("Content-Length") if response.headers else None
        total = int(length) if length and length.isdigit() else None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc) as bar:
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))


def _download_error(exc: Exception, url: str, part: Path, target: Path, expected: str) -> DataError:
    """The one-line error of a failed download: a full disk, or where to get the archive."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return DataError(
            f"no space left on device writing {part}: free space in {part.parent} (the "
            "archive is about 170 MB) and download again"
        )
    reason = getattr(exc, "reason", exc)
    return DataError(
        f"could not download {target.name} from {url}: {reason}. If this machine cannot "
        f"reach that host, obtain {target.name} (md5 {expected}) by other means and place "
        f"it by hand at {target}; it will be used after its md5 is checked. Without the "
        "real data, `make smoke` runs the whole pipeline on synthetic CIFAR-format archives."
    )


def download(dataset: str, raw_dir: Path, url: str | None = None, md5: str | None = None) -> Path:
    """Fetch the archive of ``dataset`` to ``raw_dir/<archive>`` and return its path.

    Args:
        dataset: ``"cifar10"`` or ``"cifar100"``.
        raw_dir: folder receiving the archive (created if missing).
        url: source address; defaults to the official one. ``file://`` URLs work.
        md5: expected md5 hex digest; defaults to the official archive's.

    Returns:
        The path of the verified archive, ``raw_dir/<archive>``.

    Raises:
        DataError: unknown dataset name (an ``UnknownDatasetError``, also a ``ValueError``);
            unreachable source (the message says where to place the archive by hand);
            md5 mismatch of the fetched file (the partial file is removed and the message shows
            the expected and the actual md5).
    """
    info = get_dataset_info(dataset)
    url = url or info.url
    expected = (md5 or info.md5).lower()
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    target = raw_dir / info.archive
    part = raw_dir / (info.archive + ".part")

    if target.exists():
        actual = file_md5(target)
        if actual == expected:
            print(f"{target} already present with the expected md5 {expected}; nothing to fetch")
            return target
        print(
            f"{target} exists but its md5 is {actual}, not {expected}: removing it and fetching "
            "it again"
        )
        target.unlink()

    print(f"downloading {url} -> {target}")
    _unlink_quietly(part)
    try:
        _fetch(url, part, desc=info.archive)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        _unlink_quietly(part)
        raise _download_error(exc, url, part, target, expected) from exc
    except BaseException:
        _unlink_quietly(part)
        raise

    actual = file_md5(part)
    if actual != expected:
        _unlink_quietly(part)
        raise DataError(
            f"md5 mismatch for {info.archive} downloaded from {url}: expected {expected}, got "
            f"{actual}. The partial file {part} was removed; retry the download, or place a "
            f"correct copy of the archive by hand at {target}."
        )
    os.replace(part, target)
    print(f"{target}: md5 {actual} verified")
    return target
