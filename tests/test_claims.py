"""Designed runs through `kdecay aggregate` and `kdecay tables`: the claim is the paper's
(k-decay at its k beats both the original recipe and k = 1), a divergence can only weaken it,
and identical seeds are no evidence, at full precision."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from figure_runs import APPENDIX, figure_params, write_run
from kdecay.config import load_config
from kdecay.report.aggregate import aggregate
from kdecay.report.tables import write_tables

ROW = "wrn16_8"  # CIFAR-10's printed k-decay result at k = 3
SPREAD = [(i - 4.5) / 3.03 for i in range(10)]  # mean 0, sample std ~1
FINAL = 4.0  # write_run's final error is its `final` + 40 / epochs (10 epochs)


def _claim(tmp_path: Path, seeds: int, design: dict[str, list[float | None]]) -> pd.Series:
    """The CIFAR-10 table line of ``ROW`` when its arms (``original``, ``k1``, ``k3``) have
    the per-seed errors of ``design`` (None: the seed diverged); every other run 5.0 +- 0.15."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    params = figure_params(tmp_path, ks=(1, 3), datasets=["cifar10"], seeds=list(range(seeds)))
    runs = tmp_path / "runs"
    for run in load_config(params).runs():
        errors = design.get(run.method_dir) if run.row == ROW else None
        error = errors[run.seed] if errors else 5.0 + 0.15 * SPREAD[run.seed]
        status = "diverged" if error is None else "completed"
        write_run(runs, run.dataset, run.row, run.method_dir, run.seed,
                  (error or 0.0) - FINAL, status)  # fmt: skip
    aggregate(runs, tmp_path / "summary.csv", params)
    write_tables(tmp_path / "summary.csv", APPENDIX, tmp_path / "tables", params)
    table = pd.read_csv(tmp_path / "tables" / "cifar10.csv")
    return table[table["row"] == ROW].iloc[0]


def arm(mean: float, sd: float = 0.15, n: int = 10) -> list[float | None]:
    return [mean + sd * SPREAD[i] for i in range(n)]


def test_beating_the_original_but_not_k1_is_not_a_yes(tmp_path: Path) -> None:
    both = _claim(tmp_path / "both", 10, {"original": arm(6.0), "k1": arm(6.0), "k3": arm(5.0)})
    assert both["verdict"].startswith("yes at look 1 of 3, n=3 (")  # the test can say yes
    line = _claim(tmp_path / "one", 10, {"original": arm(6.0), "k1": arm(5.0), "k3": arm(5.0)})
    assert line["vs_original_p"] < 0.001 and line["vs_k1_p"] > 0.4
    assert line["verdict"].startswith("not confirmed") and line["claim_state"] != "yes"
    assert line["claim_p_iut"] == pytest.approx(line["vs_k1_p"])  # the larger of the two


def test_three_diverged_kdecay_seeds_cannot_turn_no_into_yes(tmp_path: Path) -> None:
    """The same seven good seeds are a "yes" if the three others had trained well, and stay
    "not confirmed" when those three diverged (scored at chance error), never the reverse.
    The three are the first look's seeds (0, 1, 2), the ones a verdict is read from first."""
    good = arm(4.7, n=10)
    fine = _claim(tmp_path / "fine", 10, {"original": arm(5.0), "k1": arm(5.0), "k3": good})
    assert fine["verdict"].startswith("yes at look")
    line = _claim(tmp_path / "diverged", 10, {"original": arm(5.0), "k1": arm(5.0),
                                             "k3": [None, None, None, *good[3:]]})  # fmt: skip
    assert line["verdict"].startswith("not confirmed") and line["claim_state"] != "yes"
    assert "3 diverged seeds scored at chance error (seeds 0, 1, 2)" in line["verdict"]


def test_seven_identical_seeds_are_never_a_yes_even_unrounded(tmp_path: Path) -> None:
    """Equal numbers written in different float spellings (0.1 * 51 != 5.1) leave a std of
    about 1e-15 in a full-precision summary: no test, whatever p such a std would give."""
    same = [0.1 * 51, 5.1, 51 / 10, 5.1, 0.1 * 51, 5.1, 5.1]
    lower = [v - 1.0 for v in same]
    line = _claim(tmp_path, 7, {"original": same, "k1": same, "k3": lower})
    assert line["verdict"].startswith("no test (") and "zero spread" in line["verdict"]
    assert line["claim_state"] != "yes"


def test_the_summary_keeps_every_float_exactly(tmp_path: Path) -> None:
    value = 4.0 + 1 / 3
    _claim(tmp_path, 2, {"original": [value, value + 1e-12], "k1": arm(5.0, n=2),
                         "k3": arm(4.0, n=2)})  # fmt: skip
    summary = pd.read_csv(tmp_path / "summary.csv")
    runs = summary[(summary["kind"] == "run") & (summary["row"] == ROW)
                   & (summary["method"] == "original")]  # fmt: skip
    assert sorted(runs["final_test_error"]) == [value, value + 1e-12]
