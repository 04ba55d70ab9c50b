"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdecay.data.synth import make_archive

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
