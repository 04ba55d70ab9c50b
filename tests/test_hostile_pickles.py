"""Pickles that try to make ``prepare`` allocate (the second fault audit): each is refused
with exit status 2 and one line naming the member, in bounded memory and time, and nothing is
left in the prepared-data folder; the real format (protocol 2, Python-2 strings) still loads."""

from __future__ import annotations

import codecs
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from archives import CIFAR10, batch, cifar10_members, tar_archive, with_meta
from kdecay.checks import DataError
from kdecay.data.prepare import prepare


class _Call:
    """A pickle that calls ``func(*args)`` when loaded (``__reduce__``)."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


def _hex_bomb(depth: int) -> object:
    inner: object = b"x" * 1024
    for _ in range(depth):
        inner = _Call(codecs.encode, inner, "hex")
    return inner


def _shared_tuple(depth: int) -> object:
    t: object = 0
    for _ in range(depth):
        t = (t, t)  # the pickle memoises t: 2^depth leaves in a few hundred bytes
    return t


# runs a command and writes its peak resident memory (KiB) to argv[1]: this process's only child
PEAK = (
    "import resource, subprocess, sys; rc = subprocess.run(sys.argv[2:]).returncode; "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
    "sys.exit(rc)"
)


HOSTILE = {
    # 1. an array of 500,000 images from one byte and zero strides
    "zero-stride": batch(
        _Call(np.ndarray, (500_000, 3072), np.dtype("u1"), b"\x07", 0, (0, 0)), [0] * 10
    ),
    # 2. an array without a buffer: leftover process memory as images
    "no-buffer": batch(_Call(np.ndarray, (10, 3072), np.dtype("u1")), list(range(10))),
    # 3. a memory bomb: _codecs.encode(..., "hex") nested 26 times on 1 KiB
    "hex-bomb": batch(np.zeros((10, 3072), np.uint8), _hex_bomb(26)),
    # 4. labels as a 40-deep shared tuple (2^40 leaves)
    "shared-tuple": batch(np.zeros((10, 3072), np.uint8), _shared_tuple(40)),
}
MESSAGES = {
    "zero-stride": "numpy.ndarray(...) is called directly",
    "no-buffer": "numpy.ndarray(...) is called directly",
    "hex-bomb": "_codecs.encode(..., 'hex')",
    "shared-tuple": "must be a flat list of integer labels",
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_allocating_pickles_are_refused_in_bounded_memory(case: str, tmp_path: Path) -> None:
    raw = tmp_path / "data" / "raw" / "cifar10"
    md5 = tar_archive(raw / "cifar-10-python.tar.gz", cifar10_members(HOSTILE[case]))
    assert (raw / "cifar-10-python.tar.gz").stat().st_size < 300_000  # all of them are small
    out = tmp_path / "data" / "prepared"
    cmd = [sys.executable, "-m", "kdecay", "prepare", "--dataset", "cifar10", "--md5", md5]
    cmd += ["--raw-dir", str(raw), "--out-dir", str(out)]
    peak = tmp_path / "peak_kib"
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(peak), *cmd],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: data_batch_1"), done.stderr
    assert MESSAGES[case] in lines[0]
    # peak resident memory of `kdecay prepare`: the refusal comes before torch is imported
    assert int(peak.read_text()) < 256 * 1024, f"{int(peak.read_text()) / 1024:.0f} MiB"
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (5, "must be a list of 10 distinct byte strings"),
        (list(range(10)), "must be a list of 10 distinct byte strings"),
        (b"abcdefghij", "must be a list of 10 distinct byte strings"),
        ([b"same"] * 10, "must be a list of 10 distinct byte strings"),
        ([b"c%d" % i for i in range(9)], "must be a list of 10 distinct byte strings"),
    ],
    ids=["int", "ints", "bytes", "repeated", "nine"],
)
def test_meta_class_names_are_checked(names: object, message: str, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    members = with_meta(cifar10_members(), {b"label_names": names})
    md5 = tar_archive(raw / "cifar-10-python.tar.gz", members)
    with pytest.raises(DataError) as info:
        prepare("cifar10", raw, tmp_path / "out", md5=md5)
    assert message in str(info.value) and "batches.meta" in str(info.value)
    assert not (tmp_path / "out" / "cifar10.pt").exists()


def test_the_real_format_still_loads(tmp_path: Path) -> None:
    """Python-3 protocol-2 bytes (``_codecs.encode(text, 'latin1')``) and Python-2 strings."""
    import pickle

    raw = tmp_path / "raw"
    data = np.arange(10 * 3072, dtype=np.uint8).reshape(10, 3072)
    batch = pickle.dumps({b"data": data, b"labels": list(range(10))}, protocol=2)
    assert b"_codecs" in batch  # how Python 3 writes bytes at protocol 2
    md5 = tar_archive(raw / "cifar-10-python.tar.gz", cifar10_members(batch))
    path = prepare("cifar10", raw, tmp_path / "out", md5=md5)
    assert path.is_file()
    assert CIFAR10 == "cifar-10-batches-py"
