"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdecay.data.synth import make_archive

# The longest test files, longest first (minutes each on 2 cores). `make test` runs `-n 2 --dist
# loadfile --no-loadscope-reorder`: a worker takes whole files in this order, so the long ones
# start at once, side by side, and the short ones fill in, instead of a long file collected
# last running alone at the end.
LONGEST_FIRST = (
    "test_slurm.py",
    "test_sweep.py",
    "test_pipeline.py",
    "test_front_door.py",
    "test_group.py",
    "test_smoke_ctrl_c.py",
    "test_proof.py",
    "test_slurm_follow.py",
    "test_engines.py",
    "test_bench.py",
    "test_fused_compiled.py",
)

SYNTH_TRAIN = 500
SYNTH_TEST = 100
SYNTH_SEED = 0


@pytest.fixture(scope="session")
def synth_spec() -> tuple[int, int, int]:
    """``(n_train, n_test, seed)`` of the archives made by :func:`synth_archives`."""
    return SYNTH_TRAIN, SYNTH_TEST, SYNTH_SEED


@pytest.fixture(scope="session")
def synth_archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Small synthetic CIFAR-10 and CIFAR-100 archives (500 train / 100 test images, seed 0),
    made once per session: ``{dataset: (archive path, md5)}``. Treat them as read-only."""
    out = tmp_path_factory.mktemp("synth_archives")
    return {
        dataset: make_archive(dataset, out / dataset, SYNTH_TRAIN, SYNTH_TEST, SYNTH_SEED)
        for dataset in ("cifar10", "cifar100")
    }


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the files of :data:`LONGEST_FIRST` first, in that order (the rest after, in their
    collected order; the tests of a file keep theirs)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
