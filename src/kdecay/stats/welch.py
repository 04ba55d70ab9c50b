"""One comparison of one claim: Welch's one-sided t-test on the raw per-seed errors.

For a baseline arm ``b`` (our original recipe, or our k = 1) and the k-decay arm ``k`` at the
paper's k, with ``n_b``, ``n_k`` seeds, sample means ``m_b``, ``m_k`` and sample variances
``s_b^2``, ``s_k^2`` (``ddof = 1``), all in full precision (never the rounded table values):

* gain ``g = m_b - m_k`` (points of test error; > 0 favours k-decay),
* standard error ``se = sqrt(s_b^2 / n_b + s_k^2 / n_k)``,
* Welch-Satterthwaite degrees of freedom
  ``nu = se^4 / ((s_b^2/n_b)^2 / (n_b - 1) + (s_k^2/n_k)^2 / (n_k - 1))``
  (Welch 1947, Biometrika 34:28-35; Satterthwaite 1946, Biometrics Bull. 2:110-114),
* one-sided p of H1 "k-decay's mean error is lower": ``p = P(T_nu >= g / se)``, computed by
  ``scipy.stats.ttest_ind(base, kd, equal_var=False, alternative="greater")``.

No test is made (``Comparison.no_test`` says why) with fewer than 2 seeds on a side, or when the
pooled spread is zero within floating-point noise: ``s_b^2 + s_k^2 <= (ZERO_SPREAD * max(1,
|mean|))^2`` with ``ZERO_SPREAD = 1e-9``. Seven copies of one error computed along different
float paths have a numpy std of ~1e-15, and a t-test on them returns a p-value near 0 that is
no evidence at all; the tolerance refuses it.

Failed runs (DESIGN.md "Statistics"): a diverged or non-finite k-decay seed is scored at the
dataset's chance error ``100 (1 - 1 / classes)`` (90.0 for CIFAR-10, 99.0 for CIFAR-100) by
:func:`kdecay_sample`, so a divergence can only weaken k-decay's case: the chance error is above
every real error, so the k-decay mean rises (the gain falls) and its variance grows; while the
gain stays positive the t statistic can only fall, and once it turns negative ``p > 0.5``, which
no level below 0.5 rejects. A diverged or non-finite control seed is left out by
:func:`control_sample` (a failed baseline must not make k-decay look good). Both return the seeds
they substituted or dropped, so the tables can name them (:meth:`Sample.note`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "ZERO_SPREAD",
    "Comparison",
    "Sample",
    "chance_error",
    "control_sample",
    "dataset_chance_error",
    "kdecay_sample",
    "welch",
]

ZERO_SPREAD = 1e-9
"""Relative tolerance below which the pooled standard deviation counts as zero."""

ONE_SEED = "1 seed on a side, indicative only"
NO_SEED = "no completed seed on a side"
ZERO = "zero spread on both sides"


@dataclass(frozen=True)
class Comparison:
    """Baseline error minus k-decay error (a gain > 0 favours k-decay), with its Welch test."""

    gain: float
    n: tuple[int, int]  # seeds: (baseline, k-decay)
    se: float = math.nan
    dof: float = math.nan
    p: float = math.nan  # one-sided, H1: k-decay's mean error is lower
    no_test: str = ""  # why there is no test (empty: tested)

    @property
    def tested(self) -> bool:
        """True when a p-value was computed."""
        return not self.no_test


def _finite(values: Sequence[float], side: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"non-finite {side} error: build the sample with kdecay/control_sample")
    return arr


def welch(base: Sequence[float], kd: Sequence[float]) -> Comparison:
    """Welch's one-sided test that k-decay's mean error (``kd``) is below the baseline's
    (``base``), from the raw per-seed errors (module docstring for every formula)."""
    b, k = _finite(base, "baseline"), _finite(kd, "k-decay")
    n = (b.size, k.size)
    if min(n) == 0:
        return Comparison(math.nan, n, no_test=NO_SEED)
    gain = float(b.mean() - k.mean())
    if min(n) < 2:
        return Comparison(gain, n, no_test=ONE_SEED)
    vb, vk = float(b.var(ddof=1)), float(k.var(ddof=1))
    scale = ZERO_SPREAD * max(1.0, float(abs(np.concatenate([b, k]).mean())))
    if vb + vk <= scale**2:
        return Comparison(gain, n, no_test=ZERO)
    ub, uk = vb / n[0], vk / n[1]
    dof = (ub + uk) ** 2 / (ub**2 / (n[0] - 1) + uk**2 / (n[1] - 1))
    with warnings.catch_warnings():  # one constant side is fine: the spread check is ours
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        test = stats.ttest_ind(b, k, equal_var=False, alternative="greater")
    return Comparison(gain, n, math.sqrt(ub + uk), dof, float(test.pvalue))


def chance_error(classes: int) -> float:
    """The test error (%) of guessing: ``100 (1 - 1 / classes)``."""
    if classes < 2:
        raise ValueError(f"a classifier needs >= 2 classes, got {classes}")
    return 100.0 * (1.0 - 1.0 / classes)


def dataset_chance_error(dataset: str) -> float:
    """Chance error of a dataset by name: 90.0 for ``cifar10``, 99.0 for ``cifar100``."""
    from kdecay.data.datasets import get_dataset_info

    return chance_error(get_dataset_info(dataset).num_classes)


@dataclass(frozen=True)
class Sample:
    """One arm's per-seed errors as tested, and the failed seeds and what became of them."""

    values: tuple[float, ...]
    seeds: tuple[int, ...]  # the seed behind each value, in order
    substituted: tuple[int, ...] = ()  # diverged k-decay seeds scored at chance error
    dropped: tuple[int, ...] = ()  # diverged control seeds left out

    def note(self) -> str:
        """The failed seeds in words ("" when none), for the tables."""
        parts = []
        for seeds, what in ((self.substituted, "scored at chance error"),
                            (self.dropped, "left out")):  # fmt: skip
            if seeds:
                plural = "s" if len(seeds) > 1 else ""
                listed = ", ".join(str(s) for s in seeds)
                parts.append(f"{len(seeds)} diverged seed{plural} {what} (seed{plural} {listed})")
        return "; ".join(parts)


def _failed(errors: Mapping[int, float | None], diverged: Collection[int]) -> list[int]:
    bad = {s for s, v in errors.items() if v is None or not math.isfinite(v)}
    return sorted(bad | set(diverged))


def _value(errors: Mapping[int, float | None], seed: int) -> float:
    value = errors[seed]
    assert value is not None  # failed seeds were filtered out before
    return float(value)


def kdecay_sample(
    errors: Mapping[int, float | None], chance: float, diverged: Collection[int] = ()
) -> Sample:
    """The k-decay arm: every seed, a diverged (``diverged``) or non-finite one scored at
    ``chance`` (:func:`chance_error`); ``errors`` maps seed to final test error (%)."""
    failed = _failed(errors, diverged)
    seeds = sorted(set(errors) | set(failed))
    values = tuple(chance if s in failed else _value(errors, s) for s in seeds)
    return Sample(values, tuple(seeds), substituted=tuple(failed))


def control_sample(errors: Mapping[int, float | None], diverged: Collection[int] = ()) -> Sample:
    """A baseline arm (original recipe, k = 1): diverged or non-finite seeds left out."""
    failed = _failed(errors, diverged)
    seeds = [s for s in sorted(errors) if s not in failed]
    values = tuple(_value(errors, s) for s in seeds)
    return Sample(values, tuple(seeds), dropped=tuple(failed))
