"""Download (md5, .part file, re-use, errors) and prepare (safe extraction, parsing, output file)
on synthetic CIFAR archives served through file:// URLs."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from kdecay.data import archive as archive_module
from kdecay.data.datasets import (
    DATASETS,
    DataError,
    UnknownDatasetError,
    get_dataset_info,
)
from kdecay.data.download import download, file_md5
from kdecay.data.prepare import load_prepared, prepare, prepared_path
from kdecay.data.synth import generate

DATASET_NAMES = ("cifar10", "cifar100")


def _forbid_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make any urlopen call fail loudly and record it."""
    calls: list[str] = []

    def fail(url: object, *args: object, **kwargs: object) -> None:
        calls.append(str(url))
        raise AssertionError(f"unexpected fetch of {url}")

    monkeypatch.setattr(urllib.request, "urlopen", fail)
    return calls


# ---------------------------------------------------------------------------------------------
# dataset table


def test_dataset_table() -> None:
    assert DATASETS["cifar10"].archive == "cifar-10-python.tar.gz"
    assert DATASETS["cifar10"].md5 == "c58f30108f718f92721af3b95e74349a"
    assert DATASETS["cifar10"].base_folder == "cifar-10-batches-py"
    assert DATASETS["cifar10"].num_classes == 10
    assert DATASETS["cifar100"].archive == "cifar-100-python.tar.gz"
    assert DATASETS["cifar100"].md5 == "eb9058c3a382ffc7106e4002c42a8d85"
    assert DATASETS["cifar100"].base_folder == "cifar-100-python"
    assert DATASETS["cifar100"].num_classes == 100
    for info in DATASETS.values():
        assert info.url.startswith("https://www.cs.toronto.edu/~kriz/")
        assert info.url.endswith(info.archive)


def test_unknown_dataset_is_a_clear_error(tmp_path: Path) -> None:
    message = "unknown dataset 'mnist': choose one of cifar10, cifar100"
    for call in (
        lambda: get_dataset_info("mnist"),
        lambda: download("mnist", tmp_path),
        lambda: prepare("mnist", tmp_path, tmp_path),
        lambda: prepared_path("mnist", tmp_path),
    ):
        with pytest.raises(UnknownDatasetError) as info:
            call()
        assert str(info.value) == message
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, DataError)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# download


@pytest.mark.parametrize("dataset", DATASET_NAMES)
def test_synth_download_prepare_roundtrip(
    dataset: str,
    synth_archives: dict[str, tuple[Path, str]],
    synth_spec: tuple[int, int, int],
    tmp_path: Path,
) -> None:
    n_train, n_test, _ = synth_spec
    source, md5 = synth_archives[dataset]
    raw = tmp_path / "raw"
    path = download(dataset, raw, url=source.as_uri(), md5=md5)
    info = get_dataset_info(dataset)
    assert path == raw / info.archive
    assert file_md5(path) == md5
    assert sorted(p.name for p in raw.iterdir()) == [info.archive]  # no .part left

    out = prepare(dataset, raw, tmp_path / "prepared", md5=md5)
    assert (
        out
        == prepared_path(dataset, tmp_path / "prepared")
        == tmp_path / "prepared" / (f"{dataset}.pt")
    )
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temp files left

    expected = generate(dataset, *synth_spec)
    # loads with weights_only=True, plain tensors and lists
    raw_dict = torch.load(out, weights_only=True)
    assert raw_dict["train_images"].dtype == torch.uint8
    data = load_prepared(out)
    assert data.train_images.shape == (n_train, 3, 32, 32)
    assert data.test_images.shape == (n_test, 3, 32, 32)
    assert data.train_labels.dtype == data.test_labels.dtype == torch.int64
    assert torch.equal(data.train_images, torch.from_numpy(expected.train_images))
    assert torch.equal(data.train_labels, torch.from_numpy(expected.train_labels))
    assert torch.equal(data.test_images, torch.from_numpy(expected.test_images))
    assert torch.equal(data.test_labels, torch.from_numpy(expected.test_labels))
    assert data.classes == expected.classes
    assert data.num_classes == info.num_classes
    pixels = expected.train_images.astype(np.float64) / 255.0
    np.testing.assert_allclose(data.mean, pixels.mean(axis=(0, 2, 3)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(data.std, pixels.std(axis=(0, 2, 3)), rtol=0, atol=1e-9)
    assert isinstance(data.mean, tuple) and len(data.mean) == 3
    assert isinstance(data.std, tuple) and len(data.std) == 3


def test_second_download_fetches_nothing(
    synth_archives: dict[str, tuple[Path, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, md5 = synth_archives["cifar10"]
    path = download("cifar10", tmp_path, url=source.as_uri(), md5=md5)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    capsys.readouterr()
    calls = _forbid_network(monkeypatch)
    again = download("cifar10", tmp_path, url=source.as_uri(), md5=md5)
    assert again == path
    assert calls == []
    assert path.stat().st_mtime_ns == 1_000_000_000
    assert "nothing to fetch" in capsys.readouterr().out


def test_corrupted_download_is_rejected_and_removed(
    synth_archives: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    source, md5 = synth_archives["cifar10"]
    wrong = "0" * 32
    with pytest.raises(DataError) as info:
        download("cifar10", tmp_path, url=source.as_uri(), md5=wrong)
    message = str(info.value)
    assert "md5 mismatch" in message
    assert f"expected {wrong}" in message
    assert f"got {md5}" in message
    assert "cifar-10-python.tar.gz" in message
    assert list(tmp_path.iterdir()) == []  # neither the archive nor the .part file


def test_truncated_source_is_rejected(
    synth_archives: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    source, md5 = synth_archives["cifar100"]
    bad = tmp_path / "src" / source.name
    bad.parent.mkdir()
    bad.write_bytes(source.read_bytes()[:-100])
    raw = tmp_path / "raw"
    with pytest.raises(DataError, match=f"expected {md5}, got {file_md5(bad)}"):
        download("cifar100", raw, url=bad.as_uri(), md5=md5)
    assert list(raw.iterdir()) == []


def test_existing_file_with_wrong_md5_is_refetched(
    synth_archives: dict[str, tuple[Path, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, md5 = synth_archives["cifar10"]
    target = tmp_path / "cifar-10-python.tar.gz"
    target.write_bytes(b"not an archive")
    path = download("cifar10", tmp_path, url=source.as_uri(), md5=md5)
    assert path == target
    assert path.read_bytes() == source.read_bytes()
    assert "removing it" in capsys.readouterr().out


@pytest.mark.parametrize(
    "url", ["file:///nonexistent/dir/cifar-10-python.tar.gz", "http://127.0.0.1:9/x.tar.gz"]
)
def test_unreachable_source_says_place_by_hand(
    url: str, synth_archives: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    source, md5 = synth_archives["cifar10"]
    target = tmp_path / "cifar-10-python.tar.gz"
    with pytest.raises(DataError) as info:
        download("cifar10", tmp_path, url=url, md5=md5)
    message = str(info.value)
    assert url in message
    assert f"place it by hand at {target}" in message
    assert "make smoke" in message
    assert md5 in message
    assert list(tmp_path.iterdir()) == []

    # placed by hand: used after its md5 is checked, nothing fetched
    shutil.copyfile(source, target)
    assert download("cifar10", tmp_path, url=url, md5=md5) == target

    # a wrong file placed by hand is removed, and the unreachable source reported again
    target.write_bytes(b"garbage")
    with pytest.raises(DataError, match="place it by hand"):
        download("cifar10", tmp_path, url=url, md5=md5)
    assert not target.exists()


def test_default_url_and_md5_are_the_official_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _forbid_network(monkeypatch)
    with pytest.raises(AssertionError):
        download("cifar100", tmp_path)
    assert calls == [DATASETS["cifar100"].url]


# ---------------------------------------------------------------------------------------------
# prepare


def test_prepare_checks_md5_before_unpickling(
    synth_archives: dict[str, tuple[Path, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, _ = synth_archives["cifar10"]
    shutil.copyfile(source, tmp_path / source.name)

    def no_unpickling(*args: object, **kwargs: object) -> None:
        raise AssertionError("unpickled before the md5 check")

    monkeypatch.setattr(archive_module, "load_pickle", no_unpickling)
    monkeypatch.setattr(archive_module, "safe_extract", no_unpickling)
    with pytest.raises(DataError) as info:
        prepare("cifar10", tmp_path, tmp_path / "out")  # official md5 expected
    message = str(info.value)
    assert "md5 mismatch" in message
    assert f"expected {DATASETS['cifar10'].md5}, got {file_md5(source)}" in message
    assert not (tmp_path / "out" / "cifar10.pt").exists()


def test_prepare_without_archive_says_download(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="download it first"):
        prepare("cifar100", tmp_path, tmp_path)


def _tar_gz(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> str:
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        for info, payload in members:
            if payload is None:
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return file_md5(path)


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    return info


@pytest.mark.parametrize(
    ("member", "payload"),
    [
        (_file("cifar-10-batches-py/../../escaped.txt"), b"x"),
        (_file("../escaped.txt"), b"x"),
        (_file("/tmp/kdecay-absolute-escape.txt"), b"x"),
        (_link("cifar-10-batches-py/link", "/etc/passwd", tarfile.SYMTYPE), None),
        (_link("cifar-10-batches-py/hard", "/etc/passwd", tarfile.LNKTYPE), None),
        (_device("cifar-10-batches-py/dev"), None),
    ],
    ids=["dotdot-nested", "dotdot", "absolute", "symlink", "hardlink", "device"],
)
def test_prepare_refuses_unsafe_members(
    member: tarfile.TarInfo, payload: bytes | None, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    archive = raw / "cifar-10-python.tar.gz"
    folder = tarfile.TarInfo("cifar-10-batches-py")
    folder.type = tarfile.DIRTYPE
    md5 = _tar_gz(
        archive, [(folder, None), (_file("cifar-10-batches-py/ok"), b"ok"), (member, payload)]
    )
    with tarfile.open(archive) as tar:  # the hostile name really is in the archive
        assert member.name in tar.getnames()
    out = tmp_path / "out"
    with pytest.raises(DataError) as info:
        prepare("cifar10", raw, out, md5=md5)
    assert repr(member.name) in str(info.value)
    assert "unsafe archive member" in str(info.value)
    assert not (tmp_path / "escaped.txt").exists()
    assert not (out / "escaped.txt").exists()
    assert not Path("/tmp/kdecay-absolute-escape.txt").exists()
    assert list(out.iterdir()) == []  # temporary extraction folder removed, no output


def test_prepare_rejects_foreign_pickle_globals(tmp_path: Path) -> None:
    """Even with a matching md5, only the globals a CIFAR pickle needs are resolved."""

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned > /dev/null",))

    raw = tmp_path / "raw"
    raw.mkdir()
    folder = tarfile.TarInfo("cifar-100-python")
    folder.type = tarfile.DIRTYPE
    md5 = _tar_gz(
        raw / "cifar-100-python.tar.gz",
        [(folder, None), (_file("cifar-100-python/train"), pickle.dumps(Evil(), protocol=2))],
    )
    with pytest.raises(DataError, match="is not allowed"):
        prepare("cifar100", raw, tmp_path / "out", md5=md5)


def test_prepare_rejects_wrong_layout(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    md5 = _tar_gz(raw / "cifar-10-python.tar.gz", [(_file("something/else"), b"x")])
    with pytest.raises(DataError, match="has no cifar-10-batches-py/ folder"):
        prepare("cifar10", raw, tmp_path / "out", md5=md5)


def test_load_prepared_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="kdecay prepare"):
        load_prepared(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match="could not be read"):
        load_prepared(bad)
    torch.save({"train_images": torch.zeros(2, 3, 32, 32, dtype=torch.uint8)}, bad)
    with pytest.raises(DataError, match="has format None, not 2"):  # no content checksum
        load_prepared(bad)
