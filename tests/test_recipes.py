"""The recipes of params.yaml against their sources (He et al. 2016 "Identity Mappings")."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdecay import schedules
from kdecay.config import build_schedule, load_config

CONFIG = load_config(Path(__file__).resolve().parents[1] / "params.yaml")
IPE = 391  # iterations per epoch at batch 128 (last partial batch kept)


@pytest.mark.parametrize("row", ["preact_resnet110", "preact_resnet164"])
def test_preact_rows_warm_up_at_0_01_for_400_iterations(row: str) -> None:
    """HE16 appendix: every CIFAR experiment starts at 0.01 for 400 iterations."""
    f = build_schedule(CONFIG.run_spec("cifar10", row, "original", None, 0), IPE)
    assert f(100) == pytest.approx(0.01) and f(399) == pytest.approx(0.01)
    assert f(400) == pytest.approx(0.1)


@pytest.mark.parametrize("row", ["preact_resnet110", "preact_resnet164"])
def test_kdecay_runs_keep_the_rows_warm_up(row: str) -> None:
    spec = CONFIG.run_spec("cifar10", row, "kdecay", 2.0, 0)
    f = build_schedule(spec, IPE)
    total = spec.epochs * IPE
    decay = schedules.poly(0.1, 0.0, CONFIG.kdecay.power, 2.0, total)
    assert f(100) == pytest.approx(0.01)
    assert f(400) == pytest.approx(decay(400)) and f(30_000) == pytest.approx(decay(30_000))


def test_rows_without_warm_up_decay_from_the_first_iteration() -> None:
    spec = CONFIG.run_spec("cifar10", "wrn16_8", "kdecay", 3.0, 0)
    f = build_schedule(spec, IPE)
    decay = schedules.poly(0.1, 0.0, CONFIG.kdecay.power, 3.0, spec.epochs * IPE)
    assert f(100) == pytest.approx(decay(100))


def test_each_row_pads_as_its_reference_code() -> None:
    """fb.resnet.torch (He et al.) and DenseNet normalise, then zero-pad (the mean colour);
    SGDR pads after subtracting the mean; WRN reflects."""
    padding = {row: CONFIG.run_spec("cifar10", row, "original" if row != "wrn28_10_sgdr"
                                else "kdecay", None if row != "wrn28_10_sgdr" else 1.0, 0).padding
               for row in CONFIG.rows}  # fmt: skip
    assert padding == {
        "preact_resnet110": "mean",
        "preact_resnet164": "mean",
        "wrn16_8": "reflect",
        "wrn28_10": "reflect",
        "wrn28_10_sgdr": "mean",
        "densenet_bc100_k12": "mean",
    }


def test_mean_padding_is_zero_after_normalisation_and_zeros_padding_is_black() -> None:
    import torch

    from kdecay.data.loader import GpuLoader

    images = torch.full((64, 3, 32, 32), 200, dtype=torch.uint8)
    labels = torch.zeros(64, dtype=torch.int64)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    batches = {
        mode: next(iter(GpuLoader(images, labels, 64, mean, std, seed=3, padding_mode=mode)))[0]
        for mode in ("mean", "zeros")
    }
    inside = torch.tensor([(200 / 255 - m) / s for m, s in zip(mean, std, strict=True)])
    black = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)])
    border = (batches["zeros"] - black[None, :, None, None]).abs().amax(1) < 1e-5
    assert border.any() and (~border).any()  # the same draws: some border, some image
    x = batches["mean"].permute(0, 2, 3, 1)
    assert (x[border] == 0).all()  # the mean colour: 0 after normalisation
    assert torch.allclose(x[~border], inside.expand_as(x[~border]), atol=1e-5)
