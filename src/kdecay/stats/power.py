"""Exact fixed-n power of the one-sided Welch test, and the optimism of the paper's chosen k.

Exact power with ``n`` seeds per arm and one seed std ``sigma`` on both arms, true gain
``delta``, level ``alpha`` (:func:`welch_power`). With equal n, Welch's statistic is Student's
pooled one, ``T = (m_b - m_k) / sqrt((s_b^2 + s_k^2) / n)``, which is noncentral t with
``2 (n - 1)`` dof and noncentrality ``lambda = delta / (sigma sqrt(2 / n))``. Welch's dof depend
only on the variance share ``R = s_b^2 / (s_b^2 + s_k^2)``: ``nu(R) = (n - 1) / (R^2 + (1 -
R)^2)``, between ``n - 1`` and ``2 (n - 1)``. ``R ~ Beta((n-1)/2, (n-1)/2)`` is independent of
``s_b^2 + s_k^2`` (Lukacs 1955, Ann. Math. Statist. 26:319-324) and of the means, so of ``T``:

    power = E_R[ P(T > t_{1 - alpha, nu(R)}) ]
          = 2 * integral_0^{1/2} nct.sf(t.ppf(1 - alpha, nu(R(u))), 2n - 2, lambda) du,

``R(u) = beta.ppf(u, (n-1)/2, (n-1)/2)`` (the integrand is symmetric in ``u <-> 1 - u``): one
quadrature (``scipy.integrate.quad``) of scipy's distributions, exact up to its tolerance. It
checks the simulation of :mod:`kdecay.stats.simulate` on a single fixed look.

Selection optimism (:func:`selection_optimism`): the paper printed, per row, the best of its
six swept k, each a single run. If the six k were truly equal, the printed k-decay error is the
minimum of six single runs and sits ``E[max of 6 N(0, 1)] * sigma = 1.2672 sigma`` below the
chosen k's true mean (``E[max of K] = integral x K phi(x) Phi(x)^(K-1) dx``; Tippett 1925,
Biometrika 17:364-387). The printed original error is one unselected run (noisy, unbiased), so
the printed gain is biased up by that amount. Different true k shrink the bias, so subtracting
``1.2672 sigma`` is the pessimistic end (the "shrunk" scenario); it is not ``sqrt(2)`` times
that: ``sqrt(2) sigma`` is the spread of a difference of two runs, not a bias.
"""

from __future__ import annotations

import functools
import math

from scipy import integrate, optimize, stats

__all__ = [
    "MAX_SEEDS",
    "best_of_k_optimism",
    "detectable_gain",
    "seeds_for_power",
    "selection_optimism",
    "welch_power",
]

MAX_SEEDS = 60


def welch_power(delta: float, n: int, sigma: float, alpha: float) -> float:
    """Exact power of the one-sided Welch test at ``alpha`` for a true gain ``delta`` with
    ``n >= 2`` seeds per arm of std ``sigma`` (module docstring)."""
    if n < 2:
        raise ValueError(f"a Welch test needs >= 2 seeds per arm, got {n}")
    a = (n - 1) / 2.0
    lam = delta / (sigma * math.sqrt(2.0 / n))

    def conditional(u: float) -> float:
        r = float(stats.beta.ppf(u, a, a))
        nu = (n - 1) / (r**2 + (1.0 - r) ** 2)
        return float(stats.nct.sf(stats.t.ppf(1.0 - alpha, nu), 2 * (n - 1), lam))

    value, _ = integrate.quad(conditional, 0.0, 0.5, epsabs=1e-9, epsrel=1e-9, limit=200)
    return min(1.0, max(0.0, 2.0 * value))


def seeds_for_power(
    delta: float, sigma: float, alpha: float, target: float = 0.8, max_seeds: int = MAX_SEEDS
) -> int | None:
    """The fewest seeds per arm (>= 2) whose exact power reaches ``target``; None for a gain
    <= 0 or when ``max_seeds`` do not suffice."""
    if not delta > 0:
        return None
    for n in range(2, max_seeds + 1):
        if welch_power(delta, n, sigma, alpha) >= target:
            return n
    return None


@functools.cache
def selection_optimism(k_values: int = 6) -> float:
    """``E[max of k_values iid N(0, 1)]`` (1.2672 for 6): the optimism, in seed std, of the
    best of ``k_values`` single runs of equal true mean (module docstring)."""
    if k_values < 2:
        return 0.0
    value, _ = integrate.quad(
        lambda x: x * k_values * stats.norm.pdf(x) * stats.norm.cdf(x) ** (k_values - 1),
        -math.inf,
        math.inf,
    )
    return float(value)


def detectable_gain(n: int, sigma: float, alpha: float, target: float = 0.8) -> float:
    """The smallest true gain that ``n`` seeds per arm detect with probability ``target``
    (the root of :func:`welch_power` ``- target``, ``scipy.optimize.brentq``)."""
    return float(
        optimize.brentq(lambda d: welch_power(d, n, sigma, alpha) - target, 1e-9, 100 * sigma)
    )


def best_of_k_optimism(k_values: int, n: int, sigma: float) -> float:
    """Expected optimism of the lowest of ``k_values`` cell means, each over ``n`` seeds of
    std ``sigma``, when every k is truly equal: :func:`selection_optimism` ``* sigma /
    sqrt(n)`` (what the tables print beside "our best k", chosen on the test set)."""
    return selection_optimism(k_values) * sigma / math.sqrt(n)
