"""Synthetic CIFAR-10/100 archives in exactly the official ``python`` layout and pickle format.

The CIFAR hosts are unreachable from the test machines, so the real download, verification
and preparation code is exercised on archives made here:

* CIFAR-10: ``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta, readme.html}``,
  data pickles with keys ``b"batch_label"``, ``b"labels"``, ``b"data"``, ``b"filenames"`` and
  ``batches.meta`` with ``b"label_names"``, ``b"num_cases_per_batch"``, ``b"num_vis"``.
* CIFAR-100: ``cifar-100-python/{train, test, meta}``, data pickles with ``b"filenames"``,
  ``b"batch_label"``, ``b"fine_labels"``, ``b"coarse_labels"``, ``b"data"`` and ``meta`` with
  ``b"fine_label_names"``, ``b"coarse_label_names"``.

``b"data"`` is a ``uint8`` array ``[n, 3072]``: per row the red, green and blue 32x32 planes,
each row-major. The pickles use protocol 2 and, like the originals (written by Python 2),
store byte strings as Python-2 ``str`` opcodes, so ``pickle.load(f, encoding="bytes")`` gives
``bytes`` keys and ``encoding="latin1"`` gives ``str`` keys (what torchvision's ``CIFAR10``
expects). Archives are byte-for-byte reproducible for a seed (fixed tar and gzip metadata).

The images are learnable but not trivially: each class owns a periodic pattern made of two
coloured sinusoidal gratings (random integer frequency vector up to 4 cycles per image, random
phase, random colour direction); an image is that pattern, circularly shifted by a uniform
random offset, scaled by a random contrast, plus a random per-channel brightness and pixel
noise. Averaged over the shifts each class pattern is flat, so the mean colour of an image
carries no label information and the per-pixel class means almost none (a nearest-centroid
classifier on raw pixels stays far from the CNN): a classifier has to look at local structure
(orientation, frequency, colour), which a small CNN learns in two or three epochs. Labels are
balanced and in random order.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdecay.checks import DataError
from kdecay.data.datasets import get_dataset_info
from kdecay.data.download import file_md5
from kdecay.data.pickles import py2_pickle_dumps

__all__ = ["SynthData", "generate", "make_archive", "py2_pickle_dumps"]

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_SIZE = 32
_MAX_FREQ = 4  # highest spatial frequency (cycles per image) of the class gratings
_GRATINGS = 2  # coloured gratings per class pattern
_AMPLITUDE = 0.2  # pattern amplitude, [0, 1] pixel units, times a contrast in [0.6, 1]
_BRIGHTNESS_STD = 0.1  # per-image, per-channel brightness offset
_NOISE_STD = 0.1  # per-pixel Gaussian noise
_CHUNK = 5000  # images generated at once (bounds memory)
_TAR_MTIME = 1_262_304_000  # 2010-01-01, fixed so that the archive md5 is reproducible


@dataclass
class SynthData:
    """The content of a synthetic archive, as numpy arrays.

    Attributes:
        train_images: ``uint8 [n_train, 3, 32, 32]``.
        train_labels: ``int64 [n_train]`` (fine labels for CIFAR-100).
        test_images: ``uint8 [n_test, 3, 32, 32]``.
        test_labels: ``int64 [n_test]``.
        classes: class names, index = label.
        train_coarse: CIFAR-100 coarse labels of the training set (``None`` for CIFAR-10).
        test_coarse: CIFAR-100 coarse labels of the test set (``None`` for CIFAR-10).
        coarse_classes: CIFAR-100 coarse class names (empty for CIFAR-10).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str]
    train_coarse: np.ndarray | None = None
    test_coarse: np.ndarray | None = None
    coarse_classes: tuple[str, ...] = ()


def _class_patterns(rng: np.random.Generator, num_classes: int) -> np.ndarray:
    """Per-class periodic patterns ``float64 [C, 3, 32, 32]``, zero mean, unit std.

    Each pattern is a sum of ``_GRATINGS`` coloured sinusoidal gratings: an integer frequency
    vector ``(u, v) != (0, 0)`` with ``|u|, |v| <= _MAX_FREQ`` cycles per image, a random phase
    and a random unit colour vector. Periodic on 32 pixels, so circular shifts keep the class.
    """
    r = np.arange(-_MAX_FREQ, _MAX_FREQ + 1)
    freqs = np.array([(u, v) for u in r for v in r if (u, v) != (0, 0)], dtype=np.float64)
    y, x = np.mgrid[0:_SIZE, 0:_SIZE].astype(np.float64)
    patterns = np.zeros((num_classes, 3, _SIZE, _SIZE))
    for c in range(num_classes):
        for _ in range(_GRATINGS):
            u, v = freqs[rng.integers(len(freqs))]
            phase = rng.uniform(0.0, 2.0 * np.pi)
            colour = rng.standard_normal(3)
            colour /= np.linalg.norm(colour)
            wave = np.cos(2.0 * np.pi * (u * y + v * x) / _SIZE + phase)
            patterns[c] += colour[:, None, None] * wave
    patterns -= patterns.mean(axis=(2, 3), keepdims=True)  # the mean colour carries no label
    patterns /= patterns.std(axis=(1, 2, 3), keepdims=True)
    return patterns


def _balanced_labels(rng: np.random.Generator, n: int, num_classes: int) -> np.ndarray:
    labels = np.arange(n, dtype=np.int64) % num_classes
    rng.shuffle(labels)
    return labels


def _render(rng: np.random.Generator, patterns: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Images ``uint8 [n, 3, 32, 32]`` of the given labels (see the module docstring)."""
    out = np.empty((len(labels), 3, _SIZE, _SIZE), dtype=np.uint8)
    grid = np.arange(_SIZE)
    channels = np.arange(3)[None, :, None, None]
    for start in range(0, len(labels), _CHUNK):
        lab = labels[start : start + _CHUNK]
        n = len(lab)
        shift = rng.integers(0, _SIZE, size=(n, 2))
        rows = (shift[:, :1] + grid) % _SIZE
        cols = (shift[:, 1:] + grid) % _SIZE
        crops = patterns[
            lab[:, None, None, None], channels, rows[:, None, :, None], cols[:, None, None, :]
        ]
        contrast = rng.uniform(0.6, 1.0, size=(n, 1, 1, 1))
        brightness = rng.normal(0.0, _BRIGHTNESS_STD, size=(n, 3, 1, 1))
        noise = rng.normal(0.0, _NOISE_STD, size=(n, 3, _SIZE, _SIZE))
        pixels = 0.5 + _AMPLITUDE * contrast * crops + brightness + noise
        out[start : start + n] = np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)
    return out


def _check_sizes(n_train: int, n_test: int) -> None:
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be positive, got {n_train} and {n_test}")


def generate(dataset: str, n_train: int = 5000, n_test: int = 1000, seed: int = 0) -> SynthData:
    """The synthetic images and labels that :func:`make_archive` writes, as arrays.

    Deterministic for ``(dataset, seed)``; the test set does not depend on ``n_train``.
    """
    info = get_dataset_info(dataset)
    _check_sizes(n_train, n_test)
    c = info.num_classes
    pattern_seq, train_seq, test_seq = np.random.SeedSequence([seed, c]).spawn(3)
    patterns = _class_patterns(np.random.default_rng(pattern_seq), c)
    rng_train = np.random.default_rng(train_seq)
    rng_test = np.random.default_rng(test_seq)
    train_labels = _balanced_labels(rng_train, n_train, c)
    test_labels = _balanced_labels(rng_test, n_test, c)
    data = SynthData(
        train_images=_render(rng_train, patterns, train_labels),
        train_labels=train_labels,
        test_images=_render(rng_test, patterns, test_labels),
        test_labels=test_labels,
        classes=list(CIFAR10_CLASSES) if c == 10 else [f"class_{i:02d}" for i in range(c)],
    )
    if c == 100:
        data.train_coarse = train_labels // 5
        data.test_coarse = test_labels // 5
        data.coarse_classes = tuple(f"superclass_{i:02d}" for i in range(20))
    return data


def _filenames(classes: list[str], labels: np.ndarray, first_index: int) -> list[bytes]:
    return [
        f"synthetic_{classes[int(label)]}_s_{first_index + i:06d}.png".encode()
        for i, label in enumerate(labels)
    ]


def _flat(images: np.ndarray) -> np.ndarray:
    """``[n, 3, 32, 32]`` -> ``[n, 3072]`` (red, green, blue planes, row-major)."""
    return np.ascontiguousarray(images.reshape(len(images), 3 * _SIZE * _SIZE))


def _cifar10_members(data: SynthData) -> list[tuple[str, bytes]]:
    n_train = len(data.train_labels)
    members: list[tuple[str, bytes]] = []
    bounds = np.linspace(0, n_train, 6).round().astype(int)  # as even as possible
    for i in range(5):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        batch = {
            b"batch_label": f"training batch {i + 1} of 5".encode(),
            b"labels": [int(v) for v in data.train_labels[lo:hi]],
            b"data": _flat(data.train_images[lo:hi]),
            b"filenames": _filenames(data.classes, data.train_labels[lo:hi], lo),
        }
        members.append((f"data_batch_{i + 1}", py2_pickle_dumps(batch)))
    test = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [int(v) for v in data.test_labels],
        b"data": _flat(data.test_images),
        b"filenames": _filenames(data.classes, data.test_labels, 0),
    }
    members.append(("test_batch", py2_pickle_dumps(test)))
    meta = {
        b"label_names": [name.encode() for name in data.classes],
        b"num_cases_per_batch": int(bounds[1] - bounds[0]),
        b"num_vis": 3 * _SIZE * _SIZE,
    }
    members.append(("batches.meta", py2_pickle_dumps(meta)))
    readme = b"<html><body>Synthetic CIFAR-10 stand-in made by kdecay.synth.</body></html>\n"
    members.append(("readme.html", readme))
    return members


def _cifar100_members(data: SynthData) -> list[tuple[str, bytes]]:
    assert data.train_coarse is not None and data.test_coarse is not None
    members: list[tuple[str, bytes]] = []
    for name, images, fine, coarse, label in (
        ("train", data.train_images, data.train_labels, data.train_coarse, "training"),
        ("test", data.test_images, data.test_labels, data.test_coarse, "testing"),
    ):
        batch = {
            b"filenames": _filenames(data.classes, fine, 0),
            b"batch_label": f"{label} batch 1 of 1".encode(),
            b"fine_labels": [int(v) for v in fine],
            b"coarse_labels": [int(v) for v in coarse],
            b"data": _flat(images),
        }
        members.append((name, py2_pickle_dumps(batch)))
    meta = {
        b"fine_label_names": [name.encode() for name in data.classes],
        b"coarse_label_names": [name.encode() for name in data.coarse_classes],
    }
    members.append(("meta", py2_pickle_dumps(meta)))
    return members


def _tar_info(name: str, *, is_dir: bool = False, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = 0o755 if is_dir else 0o644
    info.size = size
    info.mtime = _TAR_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def make_archive(
    dataset: str, out_dir: Path, n_train: int = 5000, n_test: int = 1000, seed: int = 0
) -> tuple[Path, str]:
    """Write a synthetic ``out_dir/<official archive name>`` and return ``(path, md5)``.

    The archive has the official layout and pickle format (see the module docstring); its
    content is :func:`generate` ``(dataset, n_train, n_test, seed)``. For CIFAR-10 the training
    set is split into 5 batches as evenly as possible. The same arguments give the same bytes,
    hence the same md5. The file is written under a temporary name and renamed when complete.

    Raises:
        UnknownDatasetError: for a dataset other than ``cifar10``/``cifar100``.
        ValueError: for a non-positive ``n_train`` or ``n_test``.
    """
    info = get_dataset_info(dataset)
    _check_sizes(n_train, n_test)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"generating synthetic {dataset}: {n_train} train / {n_test} test images, seed {seed}")
    data = generate(dataset, n_train=n_train, n_test=n_test, seed=seed)
    members = _cifar10_members(data) if dataset == "cifar10" else _cifar100_members(data)

    path = out_dir / info.archive
    tmp = out_dir / (info.archive + ".tmp")
    try:
        with (
            tmp.open("wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
        ):
            tar.addfile(_tar_info(info.base_folder, is_dir=True))
            for name, payload in members:
                member = _tar_info(f"{info.base_folder}/{name}", size=len(payload))
                tar.addfile(member, io.BytesIO(payload))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"could not write the synthetic archive {path}: {exc}") from exc
    md5 = file_md5(path)
    print(f"wrote {path} (md5 {md5})")
    return path, md5
