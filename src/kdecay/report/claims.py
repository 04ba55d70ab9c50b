"""The claims of the appendix, tested as one family: per table line, the summary cells that
answer it and the two comparisons at the paper's k (against our original recipe, against our
k = 1), Holm-adjusted over every printed cell of both tables (:mod:`kdecay.report.verdict`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from kdecay.config import Config, method_dir
from kdecay.report.verdict import Comparison, compare, holm

__all__ = ["COMPARISONS", "LineCells", "line_cells", "test_family"]

COMPARISONS = ("original", "control")
"""The baselines of a claim: our original recipe (what the paper compares), our k = 1."""

Cell = dict[str, Any] | None


def _cell(cells: pd.DataFrame, dataset: str, row: str, method: str) -> Cell:
    hit = cells[(cells["dataset"] == dataset) & (cells["row"] == row) & (cells["method"] == method)]
    return None if hit.empty else hit.iloc[0].to_dict()


@dataclass
class LineCells:
    """The summary cells of one table line (a dataset's appendix row)."""

    dataset: str
    row: str
    sgdr: bool  # the SGDR row: its original recipe is its k = 1 run
    paper_k: float | None
    paper_gain: float  # the paper's original error minus its k-decay error (NaN: not printed)
    original: Cell
    control: Cell
    at_paper: Cell
    k_cells: dict[float, Cell] = field(default_factory=dict)
    tests: dict[str, Comparison | None] = field(default_factory=dict)
    p_adjusted: dict[str, float] = field(default_factory=dict)

    @property
    def printed(self) -> bool:
        """A claim of the paper: a printed k-decay result (a member of the tested family)."""
        return not math.isnan(self.paper_gain) and self.paper_k is not None

    def baseline(self, which: str) -> Cell:
        return self.original if which == "original" else self.control


def line_cells(a: pd.Series, dataset: str, cells: pd.DataFrame, config: Config) -> LineCells:
    """The cells of appendix line ``a`` and its two comparisons (not yet adjusted)."""
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
    line.tests = {b: compare(line.baseline(b), line.at_paper) for b in COMPARISONS}
    return line


def test_family(lines: list[LineCells]) -> None:
    """Holm-adjust each comparison over the printed lines of every table (in place); a
    printed line without a test counts with p = 1, so missing runs never loosen the others."""
    family = [line for line in lines if line.printed]
    for which in COMPARISONS:
        raw = []
        for line in family:
            test = line.tests[which]
            raw.append(test.p if test is not None and test.tested else math.nan)
        for line, adjusted in zip(family, holm(raw), strict=True):
            line.p_adjusted[which] = adjusted
