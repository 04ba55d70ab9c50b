"""The claims of the appendix, tested as one family (:mod:`kdecay.stats`).

Each printed k-decay result is one claim: "k-decay at the paper's k beats both the row's
original recipe and its k = 1 control". Per table line, the per-seed errors of the three arms
are read from the summary's run lines at full precision; a diverged or non-finite k-decay seed
counts as a failure at chance error, a diverged control seed is left out (both named). The
claim is one intersection-union test (p = the larger of the two one-sided Welch p; the SGDR
row's original is its k = 1, one component), and the claims of both tables are one Holm
family."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from kdecay.config import Config, method_dir
from kdecay.stats.family import CellTest, holm, iut
from kdecay.stats.welch import (
    Comparison,
    Sample,
    control_sample,
    dataset_chance_error,
    kdecay_sample,
    welch,
)

__all__ = ["LineCells", "line_cells", "test_family"]

Cell = dict[str, Any] | None


def _cell(cells: pd.DataFrame, dataset: str, row: str, method: str) -> Cell:
    hit = cells[(cells["dataset"] == dataset) & (cells["row"] == row) & (cells["method"] == method)]
    return None if hit.empty else hit.iloc[0].to_dict()


def _errors(runs: pd.DataFrame, dataset: str, row: str, method: str) -> tuple[dict, list[int]]:
    """{seed: final error} of the completed runs of one arm, and its diverged seeds."""
    arm = runs[(runs["dataset"] == dataset) & (runs["row"] == row) & (runs["method"] == method)]
    errors, diverged = {}, []
    for _, r in arm.iterrows():
        seed = int(r["seed"])
        if r["status"] == "diverged":
            diverged.append(seed)
        elif r["status"] == "completed":
            value = pd.to_numeric(r["final_test_error"], errors="coerce")
            errors[seed] = float(value) if pd.notna(value) else None
    return errors, diverged


@dataclass
class LineCells:
    """The summary cells of one table line (a dataset's appendix row) and its claim."""

    dataset: str
    row: str
    sgdr: bool  # the SGDR row: its original recipe is its k = 1 run
    paper_k: float | None
    paper_gain: float  # the paper's original error minus its k-decay error (NaN: not printed)
    original: Cell
    control: Cell
    at_paper: Cell
    k_cells: dict[float, Cell] = field(default_factory=dict)
    samples: dict[str, Sample] = field(default_factory=dict)  # original, k1, kdecay
    test: CellTest | None = None
    p_holm: float = math.nan

    @property
    def printed(self) -> bool:
        """A claim of the paper: a printed k-decay result (a member of the tested family)."""
        return not math.isnan(self.paper_gain) and self.paper_k is not None

    @property
    def components(self) -> dict[str, Comparison | None]:
        return dict(self.test.components) if self.test is not None else {}

    def failures(self) -> str:
        """The failed seeds of the claim's arms in words ("" when none)."""
        notes = [f"{arm}: {s.note()}" for arm, s in self.samples.items() if s.note()]
        return "; ".join(notes)


def _samples(runs: pd.DataFrame, line: LineCells) -> dict[str, Sample]:
    chance = dataset_chance_error(line.dataset)
    arms = {"original": "original", "k1": method_dir("kdecay", 1.0)}
    if line.sgdr:
        arms["original"] = arms["k1"]
    out = {
        name: control_sample(*_errors(runs, line.dataset, line.row, method))
        for name, method in arms.items()
    }
    if line.paper_k is not None:
        kd = _errors(runs, line.dataset, line.row, method_dir("kdecay", line.paper_k))
        out["kdecay"] = kdecay_sample(kd[0], chance, kd[1])
    return out


def _claim_test(line: LineCells) -> CellTest | None:
    """The claim's IUT, or None when the line is no claim or the paper's k has no run."""
    kd = line.samples.get("kdecay")
    if not line.printed or kd is None or not kd.values:
        return None
    names = ("original",) if line.sgdr else ("original", "k1")
    comps = {}
    for name in names:
        base = line.samples[name]
        if base.values:
            comps[name] = welch(base.values, kd.values)
        elif base.dropped:  # every seed of the baseline diverged: no control to beat
            comps[name] = Comparison(math.nan, (0, len(kd.values)), no_test="runs diverged")
        else:
            comps[name] = None  # no run yet
    return iut(comps)


def line_cells(
    a: pd.Series, dataset: str, cells: pd.DataFrame, runs: pd.DataFrame, config: Config
) -> LineCells:
    """The cells of appendix line ``a`` and its claim's test (not yet Holm-adjusted)."""
    row = a["row"]
    sgdr = not config.rows[row].has_original_stage
    paper_k = None if pd.isna(a["k"]) else float(a["k"])
    control = _cell(cells, dataset, row, method_dir("kdecay", 1.0))
    line = LineCells(
        dataset=dataset,
        row=row,
        sgdr=sgdr,
        paper_k=paper_k,
        paper_gain=float(a["original_err"]) - float(a["kdecay_err"]),
        original=control if sgdr else _cell(cells, dataset, row, "original"),
        control=control,
        at_paper=None
        if paper_k is None
        else _cell(cells, dataset, row, method_dir("kdecay", paper_k)),
        k_cells={k: _cell(cells, dataset, row, method_dir("kdecay", k)) for k in config.kdecay.ks},
    )
    line.samples = _samples(runs, line)
    line.test = _claim_test(line)
    return line


def test_family(lines: list[LineCells]) -> int:
    """Holm-adjust the claims' p over the printed lines of every table (in place; a claim
    without a test counts with p = 1, so missing runs never loosen the others); returns the
    family's size m."""
    family = [line for line in lines if line.printed]
    raw = [line.test.p if line.test is not None and line.test.tested else math.nan
           for line in family]  # fmt: skip
    for line, adjusted in zip(family, holm(raw), strict=True):
        line.p_holm = adjusted
    return len(family)
