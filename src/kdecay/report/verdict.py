"""Is the paper's improvement reproduced? One one-sided test per claim, corrected as a family.

Per cell (a table row of one dataset with a printed k-decay result), our k-decay error at the
paper's k is compared with a baseline over seeds: our original recipe (what the paper
compares) and our k = 1 of the same schedule (the effect of k alone). Each comparison is
Welch's one-sided t-test of "k-decay's mean error is lower" (:func:`compare`,
``scipy.stats.ttest_ind_from_stats(..., equal_var=False, alternative="greater")``). No test is
made with one seed on a side, or with zero spread on both sides (a p-value of 0 from identical
numbers is no evidence). The p-values of one comparison over the family of printed cells are
Holm-Bonferroni adjusted (:func:`holm`; an untestable cell counts with p = 1), and "yes" means
the adjusted p < alpha. Printed beside it: the one-sided lower confidence bound of the gain at
the level that cell's Holm step uses (``alpha * p / p_adjusted``), which is above 0 exactly
when the verdict is "yes" (:func:`lower_bound`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy import stats

__all__ = ["Comparison", "compare", "holm", "lower_bound", "verdict"]


@dataclass(frozen=True)
class Comparison:
    """Baseline error minus k-decay error (a gain > 0 favours k-decay), with its test."""

    gain: float
    n: tuple[int, int]  # completed seeds: (baseline, k-decay)
    se: float = math.nan
    dof: float = math.nan
    p: float = math.nan  # one-sided, H1: k-decay's mean error is lower
    no_test: str = ""  # why there is no test ("1 seed", "zero spread")

    @property
    def tested(self) -> bool:
        return not self.no_test


def _stats(cell: dict[str, Any]) -> tuple[float, float, int]:
    return float(cell["mean_error"]), float(cell.get("std_error", math.nan)), int(cell["n"])


def compare(base: dict[str, Any] | None, kd: dict[str, Any] | None) -> Comparison | None:
    """Welch's one-sided test of two summary cells; None when either has no completed run."""
    if base is None or kd is None or min(int(base["n"]), int(kd["n"])) == 0:
        return None
    (m1, s1, n1), (m2, s2, n2) = _stats(base), _stats(kd)
    gain = m1 - m2
    if min(n1, n2) < 2:
        return Comparison(gain, (n1, n2), no_test="1 seed on a side, indicative only")
    v1, v2 = s1**2 / n1, s2**2 / n2
    if v1 + v2 == 0:
        return Comparison(gain, (n1, n2), no_test="zero spread on both sides")
    dof = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    test = stats.ttest_ind_from_stats(m1, s1, n1, m2, s2, n2, False, alternative="greater")
    return Comparison(gain, (n1, n2), math.sqrt(v1 + v2), dof, float(test.pvalue))


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values: the i-th smallest of m is multiplied by m - i, the
    running maximum is kept (monotone) and the result capped at 1; NaN counts as 1."""
    p = [1.0 if math.isnan(v) else v for v in pvalues]
    order = sorted(range(len(p)), key=p.__getitem__)
    out, running = [1.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def lower_bound(comp: Comparison, p_adjusted: float, alpha: float) -> float:
    """One-sided lower confidence bound of the gain at level ``1 - alpha * p / p_adjusted``
    (the cell's Holm level): it is > 0 exactly when ``p_adjusted < alpha``."""
    level = alpha * comp.p / p_adjusted if p_adjusted > 0 else alpha
    return comp.gain - float(stats.t.ppf(1 - level, comp.dof)) * comp.se


def verdict(
    paper_gain: float,
    comp: Comparison | None,
    p_adjusted: float,
    alpha: float,
    why: str = "runs missing",
    seeds_note: str = "",
) -> str:
    """``yes`` / ``not significant`` with the raw and Holm-adjusted one-sided p and the lower
    bound, or why there is no test; ``seeds_note`` names diverged or missing seeds."""
    if math.isnan(paper_gain):
        return "n/a (paper's k-decay result not in the text)"
    if comp is None:
        return f"n/a ({why}{'; ' + seeds_note if seeds_note else ''})"
    n_txt = f"n={comp.n[0]}/{comp.n[1]}" + (f", {seeds_note}" if seeds_note else "")
    gain_txt = f"{comp.gain:+.2f} vs paper {paper_gain:+.2f}"
    if not comp.tested:
        return f"no test: {comp.no_test} ({gain_txt}; {n_txt})"
    bound = lower_bound(comp, p_adjusted, alpha)
    detail = (
        f"{gain_txt}; one-sided Welch p={comp.p:.3f}, Holm p={p_adjusted:.3f}; "
        f"gain >= {bound:+.2f} at the Holm level; {n_txt}"
    )
    return f"{'yes' if p_adjusted < alpha else 'not significant'} ({detail})"
