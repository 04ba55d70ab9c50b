"""How many seeds a claim needs: the power of the one-sided Welch test the verdicts use.

Welch's degrees of freedom are themselves estimated from the seeds, so no closed form gives
the test's exact power. It is computed here by simulating the test itself: ``SIMULATIONS``
experiments of two arms of ``n`` seeds, the baseline's errors ``delta + sigma * Z`` and
k-decay's ``sigma * Z'`` (``Z, Z'`` standard normal, a fixed seed, so the same draws serve
every ``delta``: power is then monotone in ``delta``), each tested exactly as a verdict is
(``scipy.stats.ttest_ind(..., equal_var=False, alternative="greater")``). The noncentral t
with ``n - 1`` and ``2 (n - 1)`` degrees of freedom brackets it (the tests check both).

The plan uses the family-corrected level ``alpha / m`` (Holm's first, strictest step over
``m`` tested cells), so the power it states holds for every cell whatever its rank.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import integrate, optimize, stats

__all__ = ["best_of_k_optimism", "detectable_gain", "power", "seeds_needed"]

MAX_SEEDS = 60
SIMULATIONS = 20_000


@functools.cache
def _draws(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20040590)  # fixed: the plan is the same on every machine
    return rng.standard_normal((SIMULATIONS, n)), rng.standard_normal((SIMULATIONS, n))


def power(delta: float, n: int, sigma: float, alpha: float) -> float:
    """Probability that the one-sided Welch test at ``alpha`` detects a true gain ``delta``
    with ``n`` seeds per arm (``n >= 2``), by simulation of the test (module docstring)."""
    base, kd = _draws(n)
    p = stats.ttest_ind(
        delta + sigma * base, sigma * kd, axis=1, equal_var=False, alternative="greater"
    ).pvalue
    return float(np.mean(p < alpha))


def detectable_gain(n: int, sigma: float, alpha: float, target: float) -> float:
    """The smallest gain detected with probability ``target`` by ``n`` seeds per arm."""
    return float(optimize.brentq(lambda d: power(d, n, sigma, alpha) - target, 1e-9, 100 * sigma))


def seeds_needed(delta: float, sigma: float, alpha: float, target: float) -> int | None:
    """The fewest seeds per arm (>= 2) that detect ``delta`` with probability ``target``;
    None above :data:`MAX_SEEDS` (or for a gain <= 0, which no test can detect)."""
    if not delta > 0:
        return None
    for n in range(2, MAX_SEEDS + 1):
        if power(delta, n, sigma, alpha) >= target:
            return n
    return None


def best_of_k_optimism(k_values: int, n: int, sigma: float) -> float:
    """Expected optimism of the lowest of ``k_values`` cell means (each over ``n`` seeds) when
    every k is truly equal: ``E[max of K standard normals] * sigma / sqrt(n)``, the expected
    maximum being ``integral x K phi(x) Phi(x)^(K-1) dx`` (1.267 for K = 6)."""
    if k_values < 2:
        return 0.0
    value, _ = integrate.quad(
        lambda x: x * k_values * stats.norm.pdf(x) * stats.norm.cdf(x) ** (k_values - 1),
        -12,
        12,
    )
    return value * sigma / math.sqrt(n)
