"""The verdict on hand-made summary cells: one seed is indicative only; with several seeds
Welch's one-sided t-test (scipy) decides, and the paper's gain is placed against our 95% CI."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from kdecay.report.verdict import compare, verdict


def cell(mean: float, std: float, n: int) -> dict:
    return {"mean_error": mean, "std_error": std if n >= 2 else math.nan, "n": n}


def test_one_seed_is_indicative_only() -> None:
    text = verdict(1.0, compare(cell(5.0, 0, 1), cell(4.0, 0, 1)))
    assert text == "1 seed: indicative only (+1.00 vs paper +1.00)"


def test_clear_improvement() -> None:
    ours = compare(cell(5.0, 0.10, 5), cell(4.5, 0.10, 5))
    text = verdict(0.45, ours)
    assert text.startswith("yes (+0.50 ± 0.06, n=5, Welch p=0.000")
    assert "paper +0.45 within our 95% CI" in text
    assert "outside our 95% CI" in verdict(2.0, ours)  # paper's gain far larger than ours


def test_clear_regression() -> None:
    text = verdict(0.5, compare(cell(4.5, 0.10, 4), cell(5.2, 0.10, 4)))
    assert text.startswith("no, k-decay worse (-0.70")


def test_noise_is_not_significant() -> None:
    ours = compare(cell(5.0, 0.30, 3), cell(4.9, 0.30, 3))
    text = verdict(0.4, ours)
    assert text.startswith("not significant (+0.10")
    p = stats.ttest_ind_from_stats(5.0, 0.3, 3, 4.9, 0.3, 3, False, alternative="greater").pvalue
    assert ours.p_better == pytest.approx(p) and p > 0.05


def test_missing_and_diverged_cells_say_why() -> None:
    assert verdict(0.5, compare(cell(5.0, 0, 0), cell(4.0, 0, 1)), "runs diverged") == (
        "n/a (runs diverged)"
    )
    assert verdict(math.nan, None) == "n/a (paper's k-decay result not in the text)"
