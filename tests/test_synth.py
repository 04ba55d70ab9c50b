"""Synthetic archives: official layout and pickle format, determinism, torchvision can read
them, and the images are learnable by a small CNN while the labels need the pixels."""

from __future__ import annotations

import pickle
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from kdecay.data.archive import safe_extract
from kdecay.data.datasets import DATASETS, UnknownDatasetError
from kdecay.data.download import file_md5
from kdecay.data.loader import EvalLoader, GpuLoader
from kdecay.data.prepare import channel_stats
from kdecay.data.synth import generate, make_archive


def _members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def _read(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def test_cifar10_layout_and_format(
    synth_archives: dict[str, tuple[Path, str]], synth_spec: tuple[int, int, int]
) -> None:
    n_train, n_test, _ = synth_spec
    path, md5 = synth_archives["cifar10"]
    assert path.name == "cifar-10-python.tar.gz"
    assert file_md5(path) == md5
    members = _members(path)
    base = "cifar-10-batches-py"
    expected_files = {f"data_batch_{i}" for i in range(1, 6)} | {
        "test_batch",
        "batches.meta",
        "readme.html",
    }
    assert set(members) == {base} | {f"{base}/{n}" for n in expected_files}
    assert members[base].isdir()
    assert all(m.isfile() for name, m in members.items() if name != base)

    data = generate("cifar10", *synth_spec)
    per_batch = n_train // 5
    for i in range(1, 6):
        raw = _read(path, f"{base}/data_batch_{i}")
        assert raw[:2] == b"\x80\x02"  # pickle protocol 2
        batch = pickle.loads(raw, encoding="bytes")
        assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}
        assert batch[b"batch_label"] == f"training batch {i} of 5".encode()
        assert isinstance(batch[b"labels"], list) and len(batch[b"labels"]) == per_batch
        assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (per_batch, 3072)
        assert all(isinstance(f, bytes) for f in batch[b"filenames"])
        lo = (i - 1) * per_batch
        # row-major RGB planes: first 1024 values red, then green, then blue
        np.testing.assert_array_equal(
            batch[b"data"][:, :1024].reshape(-1, 32, 32), data.train_images[lo : lo + per_batch, 0]
        )
        np.testing.assert_array_equal(
            batch[b"data"][:, 2048:].reshape(-1, 32, 32), data.train_images[lo : lo + per_batch, 2]
        )
        assert batch[b"labels"] == data.train_labels[lo : lo + per_batch].tolist()
    test = pickle.loads(_read(path, f"{base}/test_batch"), encoding="bytes")
    assert set(test) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert test[b"data"].shape == (n_test, 3072)
    meta = pickle.loads(_read(path, f"{base}/batches.meta"), encoding="bytes")
    assert set(meta) == {b"label_names", b"num_cases_per_batch", b"num_vis"}
    assert meta[b"label_names"][0] == b"airplane" and len(meta[b"label_names"]) == 10
    assert meta[b"num_cases_per_batch"] == per_batch and meta[b"num_vis"] == 3072

    # like the Python-2 originals: latin1 decoding gives str keys
    latin = pickle.loads(_read(path, f"{base}/data_batch_1"), encoding="latin1")
    assert set(latin) == {"batch_label", "labels", "data", "filenames"}


def test_cifar100_layout_and_format(
    synth_archives: dict[str, tuple[Path, str]], synth_spec: tuple[int, int, int]
) -> None:
    n_train, n_test, _ = synth_spec
    path, _ = synth_archives["cifar100"]
    assert path.name == "cifar-100-python.tar.gz"
    base = "cifar-100-python"
    assert set(_members(path)) == {base} | {f"{base}/{n}" for n in ("train", "test", "meta")}
    data = generate("cifar100", *synth_spec)
    for name, n, labels in (("train", n_train, data.train_labels), ("test", n_test, None)):
        raw = _read(path, f"{base}/{name}")
        assert raw[:2] == b"\x80\x02"
        batch = pickle.loads(raw, encoding="bytes")
        assert set(batch) == {
            b"filenames",
            b"batch_label",
            b"fine_labels",
            b"coarse_labels",
            b"data",
        }
        assert batch[b"data"].shape == (n, 3072) and batch[b"data"].dtype == np.uint8
        assert len(batch[b"fine_labels"]) == len(batch[b"coarse_labels"]) == n
        assert all(0 <= c < 20 for c in batch[b"coarse_labels"])
        if labels is not None:
            assert batch[b"fine_labels"] == labels.tolist()
    meta = pickle.loads(_read(path, f"{base}/meta"), encoding="bytes")
    assert set(meta) == {b"fine_label_names", b"coarse_label_names"}
    assert len(meta[b"fine_label_names"]) == 100 and len(meta[b"coarse_label_names"]) == 20


def test_archive_is_deterministic(tmp_path: Path) -> None:
    a, md5_a = make_archive("cifar10", tmp_path / "a", n_train=50, n_test=10, seed=7)
    b, md5_b = make_archive("cifar10", tmp_path / "b", n_train=50, n_test=10, seed=7)
    _, md5_c = make_archive("cifar10", tmp_path / "c", n_train=50, n_test=10, seed=8)
    assert md5_a == md5_b == file_md5(a) == file_md5(b)
    assert a.read_bytes() == b.read_bytes()
    assert md5_c != md5_a
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["cifar-10-python.tar.gz"]


def test_uneven_split_and_balanced_labels() -> None:
    data = generate("cifar10", n_train=1003, n_test=20, seed=1)
    counts = np.bincount(data.train_labels, minlength=10)
    assert counts.max() - counts.min() <= 1
    assert np.bincount(data.test_labels, minlength=10).tolist() == [2] * 10
    # the test set does not depend on the size of the training set
    other = generate("cifar10", n_train=40, n_test=20, seed=1)
    np.testing.assert_array_equal(other.test_images, data.test_images)


def test_uneven_batches_in_archive(tmp_path: Path) -> None:
    path, _ = make_archive("cifar10", tmp_path, n_train=23, n_test=3, seed=0)
    sizes = [
        len(
            pickle.loads(_read(path, f"cifar-10-batches-py/data_batch_{i}"), encoding="bytes")[
                b"labels"
            ]
        )
        for i in range(1, 6)
    ]
    assert sum(sizes) == 23 and max(sizes) - min(sizes) <= 1


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(UnknownDatasetError, match="choose one of cifar10, cifar100"):
        make_archive("svhn", tmp_path)
    with pytest.raises(ValueError, match="positive"):
        make_archive("cifar10", tmp_path, n_train=0)


class _PatchedCIFAR10(torchvision.datasets.CIFAR10):
    pass


class _PatchedCIFAR100(torchvision.datasets.CIFAR100):
    pass


@pytest.mark.parametrize(
    ("dataset", "cls"), [("cifar10", _PatchedCIFAR10), ("cifar100", _PatchedCIFAR100)]
)
def test_torchvision_reads_synthetic_archives(
    dataset: str,
    cls: type[torchvision.datasets.CIFAR10],
    synth_archives: dict[str, tuple[Path, str]],
    synth_spec: tuple[int, int, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, _ = synth_archives[dataset]
    safe_extract(path, tmp_path, DATASETS[dataset])  # tarfile's filter= needs 3.11.4+
    folder = tmp_path / cls.base_folder

    def with_our_md5(entries: list[list[str]]) -> list[list[str]]:
        return [[name, file_md5(folder / name)] for name, _ in entries]

    # torchvision checks the md5 of every extracted file against the official ones
    monkeypatch.setattr(cls, "train_list", with_our_md5(cls.train_list))
    monkeypatch.setattr(cls, "test_list", with_our_md5(cls.test_list))
    meta = dict(cls.meta)
    meta["md5"] = file_md5(folder / meta["filename"])
    monkeypatch.setattr(cls, "meta", meta)

    expected = generate(dataset, *synth_spec)
    train = cls(str(tmp_path), train=True, download=False)
    test = cls(str(tmp_path), train=False, download=False)
    np.testing.assert_array_equal(train.data, expected.train_images.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(test.data, expected.test_images.transpose(0, 2, 3, 1))
    assert train.targets == expected.train_labels.tolist()
    assert test.targets == expected.test_labels.tolist()
    assert train.classes == expected.classes
    image, label = train[3]
    np.testing.assert_array_equal(np.asarray(image), expected.train_images[3].transpose(1, 2, 0))
    assert label == expected.train_labels[3]


# ---------------------------------------------------------------------------------------------
# learnability


def _nearest_centroid_accuracy(
    train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray
) -> float:
    classes = np.unique(train_labels)
    centroids = np.stack([train[train_labels == c].mean(axis=0) for c in classes])
    dist = ((test[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    return float((classes[dist.argmin(axis=1)] == test_labels).mean())


def test_labels_need_the_pixels() -> None:
    """The mean colour of an image does not predict its label (chance is 10%), and a linear
    nearest-centroid classifier on raw pixels stays far below the CNN (the per-pixel class
    means are flat up to sampling noise: circular shifts average each class pattern out)."""
    data = generate("cifar10", n_train=2000, n_test=1000, seed=0)
    train = data.train_images.astype(np.float64) / 255.0
    test = data.test_images.astype(np.float64) / 255.0
    colour = _nearest_centroid_accuracy(
        train.mean(axis=(2, 3)), data.train_labels, test.mean(axis=(2, 3)), data.test_labels
    )
    per_pixel = _nearest_centroid_accuracy(
        train.reshape(len(train), -1),
        data.train_labels,
        test.reshape(len(test), -1),
        data.test_labels,
    )
    shuffled = np.random.default_rng(0).permutation(data.train_labels)
    shuffled_acc = _nearest_centroid_accuracy(
        train.reshape(len(train), -1), shuffled, test.reshape(len(test), -1), data.test_labels
    )
    print(
        f"nearest centroid: colour {colour:.1%}, pixels {per_pixel:.1%}, "
        f"pixels with shuffled labels {shuffled_acc:.1%}"
    )
    assert colour < 0.15, colour
    assert shuffled_acc < 0.15, shuffled_acc
    assert per_pixel < 0.4, per_pixel


def _small_cnn(num_classes: int) -> nn.Module:
    def block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]

    return nn.Sequential(
        *block(3, 16, stride=2),
        *block(16, 32, stride=2),
        *block(32, 64),
        nn.MaxPool2d(2),
        *block(64, 64),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )


def test_small_cnn_learns_synthetic_cifar10() -> None:
    """3 epochs on 2000 images with the real augmenting loader: under 10% test error."""
    start = time.perf_counter()
    torch.manual_seed(0)
    data = generate("cifar10", n_train=2000, n_test=1000, seed=0)
    train_images = torch.from_numpy(data.train_images)
    mean, std = channel_stats(train_images)
    loader = GpuLoader(
        train_images, torch.from_numpy(data.train_labels), 64, mean, std, device="cpu", seed=0
    )
    test_loader = EvalLoader(
        torch.from_numpy(data.test_images), torch.from_numpy(data.test_labels), mean, std
    )
    model = _small_cnn(10)
    epochs, lr = 3, 0.1
    optimizer = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, lr, total_steps=epochs * len(loader), pct_start=0.25
    )
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    wrong = 0
    with torch.no_grad():
        for x, y in test_loader:
            wrong += int((model(x).argmax(dim=1) != y).sum())
    error = wrong / len(data.test_labels)
    elapsed = time.perf_counter() - start
    print(f"synthetic CIFAR-10, small CNN, 3 epochs: test error {error:.2%} in {elapsed:.1f} s")
    assert error < 0.10
