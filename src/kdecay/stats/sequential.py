"""Group-sequential testing of the family: looks, alpha spending, Holm re-testing, futility.

Design (DESIGN.md "Statistics"), fixed before any data:

* Looks at ``n = (3, 6, 10)`` seeds per arm of every open claim (:data:`LOOKS`), information
  fraction ``t_j = n_j / n_K``.
* Lan-DeMets Pocock-type alpha spending (Lan & DeMets 1983, Biometrika 70:659-663):
  ``alpha(t) = alpha * ln(1 + (e - 1) t)``, so ``alpha(1) = alpha``.
* Boundaries on the z scale under H0: ``Z_j`` jointly normal with ``corr(Z_i, Z_j) =
  sqrt(n_i / n_j)`` (i <= j: the score statistic's independent increments), and ``c_j`` solves
  ``P(Z_1 <= c_1, ..., Z_{j-1} <= c_{j-1}, Z_j > c_j) = alpha(t_j) - alpha(t_{j-1})`` with
  ``scipy.stats.multivariate_normal.cdf`` (Genz's method, fixed seed: deterministic) and
  ``scipy.optimize.brentq``. The nominal one-sided p threshold of look j is
  ``1 - Phi(c_j)`` (:func:`nominal_levels`, cached).
* Holm re-testing at each look (Maurer & Bretz 2013, Stat. Biopharm. Res. 5:311-320: each
  hypothesis carries a group-sequential design at its current local level; once one is
  rejected its level passes on and the rest are re-tested at the same look). For Holm, with r
  cells of the family of m already rejected (at any look), the smallest p among the open cells
  is compared with the nominal level of the current look for local level ``alpha / (m - r)``;
  when it is rejected, r grows and the next smallest is compared, until one is not rejected
  (:func:`decide`, :func:`decide_many`).
* Non-binding futility: at an interim look a cell whose one-sided p exceeds 0.5 (its gain
  against at least one baseline is negative) stops, "futile". The boundaries ignore futility,
  so stopping can only lower the error rate (and a claim may not be revived).

t-statistics against z boundaries (the choice made here): each cell's Welch t-test p-value is
compared with the nominal p threshold, the "significance level" approach (Pocock 1977,
Biometrika 64:191-199; Jennison & Turnbull 2000, Group Sequential Methods, on group sequential
t-tests). Equivalently the Welch t with its own dof is mapped to the z scale by ``z =
Phi^-1(1 - p)``: under H0 (normal errors) every look's p is then uniform, or conservative
(with equal seeds and spread Welch's statistic is Student's, t with ``2n - 2`` dof, referred to
Welch's fewer dof), so each look's own rejection chance is at most its nominal level; only the
joint law across looks is approximated by the known-variance correlation ``sqrt(n_i / n_j)``.
This is an approximation, and with 3 seeds a side (Welch dof 2-4) it is not negligible a
priori: :mod:`kdecay.stats.simulate` runs the actual t-tests through the whole procedure and
measures the error it gives (one null claim at alpha = 0.05, 400,000 experiments: 0.0449;
eight claims surely true and one null, 100,000: 0.046).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import optimize, stats

from kdecay.stats.family import Bound, bonferroni_label, lower_bound
from kdecay.stats.welch import Comparison

__all__ = [
    "FUTILITY",
    "LOOKS",
    "STATES",
    "decide",
    "decide_many",
    "exit_probabilities",
    "holm_thresholds",
    "look_correlation",
    "next_seeds",
    "nominal_levels",
    "repeated_bound",
    "spent",
    "z_boundaries",
]

LOOKS = (3, 6, 10)
"""Seeds per arm of an open claim at each look."""
FUTILITY = 0.5
"""An interim one-sided p above this stops a claim (non-binding)."""
STATES = ("continue", "yes", "futile", "no")
"""A claim's state after a look, by code 0..3 (:func:`decide_many`)."""
CONTINUE, YES, FUTILE, NO = range(4)
MVN_ABSEPS = 1e-9
MVN_SEED = 20040590  # Genz's randomised quasi-Monte Carlo: fixed, so the design is reproducible


def spent(alpha: float, t: float) -> float:
    """Lan-DeMets Pocock-type spending ``alpha ln(1 + (e - 1) t)`` at information ``t``."""
    return alpha * math.log1p((math.e - 1.0) * t)


def _looks(looks: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(n) for n in looks)
    if not out or out[0] < 2 or any(b <= a for a, b in itertools.pairwise(out)):
        raise ValueError(f"looks must be increasing seed counts >= 2, got {list(looks)}")
    return out


def look_correlation(looks: Sequence[int]) -> np.ndarray:
    """``corr(Z_i, Z_j) = sqrt(min(n_i, n_j) / max(n_i, n_j))``."""
    n = np.asarray(_looks(looks), dtype=float)
    return np.sqrt(np.minimum.outer(n, n) / np.maximum.outer(n, n))


def _exit(bounds: Sequence[float], c: float, corr: np.ndarray) -> float:
    """``P(Z_i <= bounds_i for i < j, Z_j > c)`` under H0, j = len(bounds): the last
    coordinate is negated so the small probability is integrated directly."""
    j = len(bounds)
    if j == 0:
        return float(stats.norm.sf(c))
    cov = corr[: j + 1, : j + 1].copy()
    cov[j, :j] *= -1.0
    cov[:j, j] *= -1.0
    x = np.array([*bounds, -c])
    value = stats.multivariate_normal.cdf(
        x, cov=cov, abseps=MVN_ABSEPS, releps=0.0, maxpts=10_000_000,
        rng=np.random.default_rng(MVN_SEED),
    )  # fmt: skip
    return float(value)


def _exit_gap(c: float, bounds: list[float], corr: np.ndarray, target: float) -> float:
    return _exit(bounds, c, corr) - target


@functools.cache
def _z_boundaries(alpha_local: float, looks: tuple[int, ...]) -> tuple[float, ...]:
    corr = look_correlation(looks)
    spend = [spent(alpha_local, n / looks[-1]) for n in looks]
    bounds: list[float] = []
    for j, total in enumerate(spend):
        if j == 0:  # closed form: P(Z_1 > c_1) = alpha(t_1)
            bounds.append(float(stats.norm.isf(total)))
            continue
        increment = total - spend[j - 1]
        lo, hi = stats.norm.isf(total) - 0.01, stats.norm.isf(increment) + 0.01
        c = optimize.brentq(_exit_gap, lo, hi, args=(bounds, corr, increment), xtol=1e-9)
        bounds.append(float(c))
    return tuple(bounds)


def z_boundaries(alpha_local: float, looks: Sequence[int] = LOOKS) -> list[float]:
    """The z boundaries ``c_j`` of the spending design at one-sided level ``alpha_local``."""
    if not 0.0 < alpha_local < 0.5:
        raise ValueError(f"one-sided level must lie in (0, 0.5), got {alpha_local}")
    return list(_z_boundaries(float(alpha_local), _looks(looks)))


def nominal_levels(alpha_local: float, looks: Sequence[int] = LOOKS) -> list[float]:
    """One-sided nominal p thresholds ``1 - Phi(c_j)`` per look (a single look: alpha)."""
    return [float(stats.norm.sf(c)) for c in z_boundaries(alpha_local, looks)]


def exit_probabilities(bounds: Sequence[float], looks: Sequence[int] = LOOKS) -> list[float]:
    """``P(first crossing at look j)`` under H0 for z boundaries ``bounds`` (a check: the
    cumulative sums are the spending function)."""
    corr = look_correlation(looks)
    return [_exit(list(bounds[:j]), c, corr) for j, c in enumerate(bounds)]


def holm_thresholds(alpha: float, m: int, looks: Sequence[int] = LOOKS) -> np.ndarray:
    """``(m, K)`` nominal levels: row r = :func:`nominal_levels` at ``alpha / (m - r)``, the
    local level of Holm's next step after r rejections in the family."""
    return np.array([nominal_levels(alpha / (m - r), looks) for r in range(m)])


def decide_many(
    look_index: int,
    p: np.ndarray,
    active: np.ndarray,
    rejected: np.ndarray,
    thresholds: np.ndarray,
    futility: float = FUTILITY,
) -> np.ndarray:
    """Vectorised look over N families: ``p`` and ``active`` are ``(N, C)`` (NaN p: no test),
    ``rejected`` ``(N,)`` earlier rejections, ``thresholds`` from :func:`holm_thresholds`.
    Returns ``(N, C)`` codes into :data:`STATES` (-1 for inactive cells)."""
    m, k = thresholds.shape
    last = look_index == k - 1
    rows = np.arange(p.shape[0])
    p_eff = np.where(active & np.isfinite(p), p, np.inf)
    yes = np.zeros(p.shape, dtype=bool)
    count = rejected.astype(int).copy()
    for _ in range(p.shape[1]):
        i = np.argmin(p_eff, axis=1)
        hit = p_eff[rows, i] <= thresholds[np.minimum(count, m - 1), look_index]
        if not hit.any():
            break
        yes[rows[hit], i[hit]] = True
        p_eff[rows[hit], i[hit]] = np.inf
        count += hit
    code = np.full(p.shape, -1, dtype=int)
    code[active] = NO if last else CONTINUE
    if not last:
        code[active & ~yes & (np.nan_to_num(p, nan=0.0) > futility)] = FUTILE
    code[yes] = YES
    return code


def decide(
    look_index: int,
    pvalues_by_cell: Mapping[str, float],
    open_cells: Sequence[str],
    alpha: float,
    m: int,
    *,
    rejected: int = 0,
    looks: Sequence[int] = LOOKS,
    futility: float = FUTILITY,
) -> dict[str, str]:
    """The state after look ``look_index`` (0-based) of every open cell: "yes" (rejected: the
    claim is confirmed), "futile" (interim p > ``futility``), "continue" or, at the last look,
    "no". ``pvalues_by_cell``: each cell's IUT p (missing or NaN: no test, p = 1);
    ``rejected``: cells of the family of ``m`` already "yes" at earlier looks."""
    looks = _looks(looks)
    if not 0 <= look_index < len(looks):
        raise ValueError(f"look {look_index} outside the design's {len(looks)} looks")
    if rejected + len(open_cells) > m:
        raise ValueError(f"{rejected} rejected + {len(open_cells)} open cells exceed m = {m}")
    if not open_cells:
        return {}
    p = np.array([[pvalues_by_cell.get(c, math.nan) for c in open_cells]], dtype=float)
    active = np.ones(p.shape, dtype=bool)
    code = decide_many(
        look_index, p, active, np.array([rejected]), holm_thresholds(alpha, m, looks), futility
    )
    return {cell: STATES[c] for cell, c in zip(open_cells, code[0], strict=True)}


def repeated_bound(
    comp: Comparison, alpha: float, m: int, look_index: int, looks: Sequence[int] = LOOKS
) -> Bound:
    """Repeated confidence bound (Jennison & Turnbull 1989, JRSS B 51:305-361) at look j:
    ``gain - t_{1 - a_j, nu} se`` with ``a_j`` the nominal level of look j for ``alpha / m``.
    Bonferroni over the m cells, spending over the looks: the bounds of every cell at every
    look hold together with probability >= 1 - alpha (up to the t-for-z approximation), and a
    bound above 0 is exactly a crossing of Holm's first-step boundary."""
    level = nominal_levels(alpha / m, looks)[look_index]
    label = f"{bonferroni_label(m)}, repeated over looks {list(_looks(looks))}"
    return Bound(lower_bound(comp, level), level, label)


def next_seeds(
    states: Mapping[str, str], look_index: int, looks: Sequence[int] = LOOKS
) -> dict[str, int]:
    """Seeds per arm each "continue" cell needs by the next look (none after the last)."""
    looks = _looks(looks)
    if look_index + 1 >= len(looks):
        return {}
    return {cell: looks[look_index + 1] for cell, s in states.items() if s == "continue"}
