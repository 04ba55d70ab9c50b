"""The family of claims: one intersection-union test per printed cell, Holm over the nine cells,
and the bounds printed beside the verdicts.

* Intersection-union test (Berger 1982, Technometrics 24:295-300; Berger & Hsu 1996, Statist.
  Sci. 11:283-319): a cell claims that k-decay at the paper's k beats BOTH the row's original
  recipe AND its k = 1 control. H0 of the cell is the union "not better than the original, or
  not better than k = 1"; it is rejected at level a when every component is, so
  ``p_cell = max(p_vs_original, p_vs_k1)`` (:func:`iut`) is a valid level-a p-value with no
  multiplicity cost inside the cell. The SGDR row's original recipe IS its k = 1 (the same runs):
  its cell has one component.
* Holm's step-down (Holm 1979, Scand. J. Statist. 6:65-70) over the ``m`` printed cells: with
  ``p_(1) <= ... <= p_(m)``, ``p~_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))`` (:func:`holm`);
  a cell with no test counts with p = 1, so a missing run never loosens the others.
* A simultaneous one-sided lower bound of each component's gain by Bonferroni at ``alpha / m``
  with Welch's t quantile: ``gain - t_{1 - alpha/m, nu} se`` (:func:`simultaneous_bound`). Over
  the m cells, the smaller of a cell's two bounds is a level-alpha/m bound on the cell's smaller
  true gain (the IUT argument), so those m bounds hold together with probability >= 1 - alpha;
  the label says so ("simultaneous (Bonferroni, alpha/9)"). A bound above 0 implies Holm's first
  step rejects, so a positive bound is always a "yes" (not conversely).
* A two-sided interval ``gain +- t_{1 - (1-c)/2, nu} se`` (:func:`interval`, c = 95%) says
  whether our gain is consistent with the paper's printed gain: "consistent" when the printed
  gain lies inside, else "smaller than printed" / "larger than printed". After a sequential
  design stopped early these fixed-sample intervals are descriptive (they ignore the stopping
  rule); :func:`kdecay.stats.sequential.repeated_bound` is the bound that accounts for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from scipy import stats

from kdecay.stats.welch import Comparison, welch

__all__ = [
    "Bound",
    "CellTest",
    "Interval",
    "bonferroni_label",
    "cell_test",
    "holm",
    "interval",
    "iut",
    "lower_bound",
    "simultaneous_bound",
]

MISSING = "runs missing"


@dataclass(frozen=True)
class CellTest:
    """The intersection-union test of one cell: its components and ``p = max`` of theirs."""

    components: Mapping[str, Comparison | None] = field(default_factory=dict)
    p: float = math.nan
    no_test: str = ""  # why the cell is untestable (empty: tested)

    @property
    def tested(self) -> bool:
        """True when every component has a p-value."""
        return not self.no_test

    @property
    def limiting(self) -> str | None:
        """The component whose p is the cell's (the weaker comparison); None if untested."""
        p = {k: c.p for k, c in self.components.items() if c is not None and c.tested}
        return max(p, key=p.__getitem__) if self.tested else None


def iut(components: Mapping[str, Comparison | None]) -> CellTest:
    """The cell's IUT: ``p = max`` of the component p's; untestable (``p`` NaN) when any
    component is missing (None) or untested, with every reason named."""
    if not components:
        raise ValueError("an intersection-union test needs at least one component")
    reasons = []
    for name, comp in components.items():
        if comp is None or not comp.tested:
            reasons.append(f"vs {name}: {MISSING if comp is None else comp.no_test}")
    if reasons:
        return CellTest(dict(components), math.nan, "; ".join(reasons))
    return CellTest(dict(components), max(c.p for c in components.values() if c is not None))


def cell_test(
    kd: Sequence[float] | None,
    original: Sequence[float] | None,
    k1: Sequence[float] | None = None,
    *,
    single: bool = False,
) -> CellTest:
    """The cell's IUT from raw per-seed errors (built with :func:`kdecay.stats.welch.
    kdecay_sample` / ``control_sample``): k-decay at the paper's k against the original and
    against k = 1; ``single`` for the SGDR row (its original is its k = 1: one component).
    An arm given as None has no runs (the cell is untestable)."""
    arms = {"original": original} if single else {"original": original, "k1": k1}
    return iut({name: None if kd is None or base is None else welch(base, kd)
                for name, base in arms.items()})  # fmt: skip


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (module docstring), in the input order: monotone in the
    raw p, capped at 1; NaN (an untestable cell) counts as 1."""
    p = [1.0 if math.isnan(v) else float(v) for v in pvalues]
    order = sorted(range(len(p)), key=p.__getitem__)
    out, running = [1.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


@dataclass(frozen=True)
class Bound:
    """A one-sided lower confidence bound of a gain, its error level and what it covers."""

    value: float
    level: float  # one-sided error probability of this bound alone
    label: str


def lower_bound(comp: Comparison, level: float) -> float:
    """``gain - t_{1 - level, nu} se``: the one-sided lower bound at error ``level``; NaN when
    the comparison has no test."""
    if not comp.tested:
        return math.nan
    return comp.gain - float(stats.t.ppf(1.0 - level, comp.dof)) * comp.se


def bonferroni_label(m: int) -> str:
    """What a Bonferroni bound over ``m`` cells covers, in the tables' words."""
    return f"simultaneous (Bonferroni, alpha/{m})"


def simultaneous_bound(comp: Comparison, alpha: float, m: int) -> Bound:
    """Bonferroni's simultaneous lower bound at ``alpha / m`` (``m``: the family size, 9)."""
    level = alpha / m
    return Bound(lower_bound(comp, level), level, bonferroni_label(m))


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval of a gain and how it sits against the paper's gain."""

    low: float
    high: float
    confidence: float
    size: str  # "consistent", "smaller than printed", "larger than printed" ("" if unknown)


def interval(comp: Comparison, paper_gain: float, confidence: float = 0.95) -> Interval:
    """``gain +- t_{1 - (1 - confidence)/2, nu} se`` and its size word against ``paper_gain``
    (no word when the paper's gain is unknown or there is no test)."""
    if not comp.tested:
        return Interval(math.nan, math.nan, confidence, "")
    half = float(stats.t.ppf(1.0 - (1.0 - confidence) / 2.0, comp.dof)) * comp.se
    low, high = comp.gain - half, comp.gain + half
    if math.isnan(paper_gain):
        size = ""
    elif paper_gain > high:
        size = "smaller than printed"  # our whole interval lies below the paper's gain
    elif paper_gain < low:
        size = "larger than printed"
    else:
        size = "consistent"
    return Interval(low, high, confidence, size)
