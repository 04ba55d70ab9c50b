"""Is the paper's improvement reproduced? A verdict that respects seed noise.

With one seed on either side a cell is indicative only. With n >= 2 seeds on both sides,
Welch's t-test (one-sided, alpha 0.05, :func:`scipy.stats.ttest_ind_from_stats` on the cells'
means, standard deviations and counts) decides whether our k-decay error is lower than our
original-recipe error; the paper's gain is then compared with the 95% confidence interval
of ours (Welch-Satterthwaite degrees of freedom).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy import stats

__all__ = ["ALPHA", "Comparison", "compare", "verdict"]

ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """Our original error minus our k-decay error, with the test behind it."""

    gain: float
    n: int  # seeds on the smaller side
    se: float = math.nan
    p_better: float = math.nan  # one-sided p, H1: k-decay lower
    p_worse: float = math.nan  # one-sided p, H1: k-decay higher
    ci: tuple[float, float] = (math.nan, math.nan)


def _stats(cell: dict[str, Any]) -> tuple[float, float, int]:
    return float(cell["mean_error"]), float(cell["std_error"]), int(cell["n"])


def compare(orig: dict[str, Any] | None, kd: dict[str, Any] | None) -> Comparison | None:
    """The comparison of two summary cells; None when either has no completed run."""
    if orig is None or kd is None or min(int(orig["n"]), int(kd["n"])) == 0:
        return None
    (m1, s1, n1), (m2, s2, n2) = _stats(orig), _stats(kd)
    gain, n = m1 - m2, min(n1, n2)
    if n < 2:
        return Comparison(gain, n)
    v1, v2 = s1**2 / n1, s2**2 / n2
    se = math.sqrt(v1 + v2)
    if se == 0:  # identical seeds on both sides: no spread to test against
        return Comparison(gain, n, 0.0, float(gain <= 0), float(gain >= 0), (gain, gain))
    dof = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    better = stats.ttest_ind_from_stats(m1, s1, n1, m2, s2, n2, False, alternative="greater")
    worse = stats.ttest_ind_from_stats(m1, s1, n1, m2, s2, n2, False, alternative="less")
    half = float(stats.t.ppf(0.975, dof)) * se
    return Comparison(
        gain, n, se, float(better.pvalue), float(worse.pvalue), (gain - half, gain + half)
    )


def verdict(paper_gain: float, ours: Comparison | None, why: str = "runs missing") -> str:
    """``1 seed: indicative only``, or ``yes`` / ``no`` / ``not significant`` from Welch's test,
    with whether the paper's gain lies in our 95% interval; ``why`` explains a missing number."""
    if math.isnan(paper_gain):
        return "n/a (paper's k-decay result not in the text)"
    if ours is None:
        return f"n/a ({why})"
    txt = f"{ours.gain:+.2f} vs paper {paper_gain:+.2f}"
    if ours.n < 2:
        return f"1 seed: indicative only ({txt})"
    lo, hi = ours.ci
    fits = "within" if lo <= paper_gain <= hi else "outside"
    detail = (
        f"{ours.gain:+.2f} ± {ours.se:.2f}, n={ours.n}, Welch p={ours.p_better:.3f}; "
        f"paper {paper_gain:+.2f} {fits} our 95% CI [{lo:+.2f}, {hi:+.2f}]"
    )
    if ours.p_better < ALPHA:
        return f"yes ({detail})"
    if ours.p_worse < ALPHA:
        return f"no, k-decay worse ({detail})"
    return f"not significant ({detail})"
