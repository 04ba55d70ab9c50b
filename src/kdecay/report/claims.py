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
from kdecay.stats.family import CellTest, iut
from kdecay.stats.welch import (
    Comparison,
    Sample,
    control_sample,
    dataset_chance_error,
    kdecay_sample,
    welch,
)

__all__ = ["LineCells", "Look", "arm_methods", "finished_seeds", "line_cells", "take_samples"]

Cell = dict[str, Any] | None


def _cell(cells: pd.DataFrame, dataset: str, row: str, method: str) -> Cell:
    hit = cells[(cells["dataset"] == dataset) & (cells["row"] == row) & (cells["method"] == method)]
    return None if hit.empty else hit.iloc[0].to_dict()


def _errors(
    runs: pd.DataFrame, dataset: str, row: str, method: str, seeds: tuple[int, ...] | None = None
) -> tuple[dict, list[int]]:
    """{seed: final error} of the completed runs of one arm, and its diverged seeds (only
    ``seeds`` when given: the seeds of a look)."""
    arm = runs[(runs["dataset"] == dataset) & (runs["row"] == row) & (runs["method"] == method)]
    errors, diverged = {}, []
    for _, r in arm.iterrows():
        seed = int(r["seed"])
        if seeds is not None and seed not in seeds:
            continue
        if r["status"] == "diverged":
            diverged.append(seed)
        elif r["status"] == "completed":
            value = pd.to_numeric(r["final_test_error"], errors="coerce")
            errors[seed] = float(value) if pd.notna(value) else None
    return errors, diverged


@dataclass(frozen=True)
class Look:
    """A claim's state: ``index`` of the last look it was tested at (-1: none yet), ``n``
    seeds per arm there, ``state`` (yes, futile, no, continue, pending), ``p`` its
    intersection-union p at that look, ``looks`` the design, ``finished`` seeds done."""

    index: int
    n: int
    state: str
    p: float
    looks: tuple[int, ...]
    finished: int

    @property
    def decided(self) -> bool:
        return self.state in ("yes", "futile", "no")

    @property
    def needs(self) -> int | None:
        """Seeds per arm the claim's next look takes (None when decided or after the last)."""
        if self.decided or self.index + 1 >= len(self.looks):
            return None
        return self.looks[self.index + 1]

    def words(self) -> str:
        """``look 2 of 3, n=6`` (or how far from its first look a pending claim is)."""
        if self.index < 0:
            return f"look 1 needs {self.looks[0]} seeds per arm, {self.finished} finished"
        return f"look {self.index + 1} of {len(self.looks)}, n={self.n}"


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
    seeds: tuple[int, ...] = ()  # the claim's seeds, in the order its looks take them
    samples: dict[str, Sample] = field(default_factory=dict)  # original, k1, kdecay
    test: CellTest | None = None
    look: Look | None = None  # where the sequential design stands (:mod:`kdecay.report.looks`)

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


def arm_methods(line: LineCells) -> dict[str, str]:
    """The claim's arms -> run folder names: original (the SGDR row: its k = 1), k1, kdecay."""
    arms = {"original": "original", "k1": method_dir("kdecay", 1.0)}
    if line.sgdr:
        arms["original"] = arms["k1"]
    if line.paper_k is not None:
        arms["kdecay"] = method_dir("kdecay", line.paper_k)
    return arms


def finished_seeds(runs: pd.DataFrame, line: LineCells) -> set[int]:
    """The seeds at which every arm of the claim has finished (completed or diverged)."""
    done = None
    for method in set(arm_methods(line).values()):
        errors, diverged = _errors(runs, line.dataset, line.row, method)
        seeds = set(errors) | set(diverged)
        done = seeds if done is None else done & seeds
    return done or set()


def take_samples(runs: pd.DataFrame, line: LineCells, seeds: tuple[int, ...] | None = None) -> None:
    """Set the line's arm samples and its claim's test from ``seeds`` (None: every seed)."""
    chance = dataset_chance_error(line.dataset)
    out = {}
    for name, method in arm_methods(line).items():
        errors, diverged = _errors(runs, line.dataset, line.row, method, seeds)
        out[name] = (
            kdecay_sample(errors, chance, diverged)
            if name == "kdecay"
            else control_sample(errors, diverged)
        )
    line.samples = out
    line.test = _claim_test(line)


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
        seeds=next(
            (c.seeds for c in config.claims.cells if (c.dataset, c.row) == (dataset, row)),
            config.seeds,
        ),
    )
    take_samples(runs, line)
    return line
