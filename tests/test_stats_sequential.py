"""The group-sequential design (kdecay.stats.sequential) against independent integrals and a
plain re-implementation of Holm re-testing, and the simulation (kdecay.stats.simulate): the
family-wise error under no effect and in the least favourable case, the expected seeds, power,
and a single fixed look against the exact power."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from kdecay.stats.power import selection_optimism, welch_power
from kdecay.stats.sequential import (
    LOOKS,
    decide,
    exit_probabilities,
    next_seeds,
    nominal_levels,
    repeated_bound,
    spent,
    z_boundaries,
)
from kdecay.stats.simulate import Claim, scenario_claims, simulate
from kdecay.stats.welch import welch

ALPHA = 0.05
M = 9
APPENDIX = Path(__file__).parents[1] / "paper" / "appendix_tables.csv"
SEED_STD = {"cifar10": 0.15, "cifar100": 0.3}


@pytest.mark.parametrize("alpha", [ALPHA, ALPHA / M, 0.001])
def test_a_single_look_spends_all_alpha_at_once(alpha: float) -> None:
    assert nominal_levels(alpha, (10,)) == [pytest.approx(alpha, rel=1e-12)]
    assert spent(alpha, 1.0) == pytest.approx(alpha, rel=1e-15)


def test_two_looks_against_a_one_dimensional_integral() -> None:
    """P(Z_1 <= c_1, Z_2 > c_2), corr sqrt(1/2), by quad: the spending increment."""
    c1, c2 = z_boundaries(0.025, (5, 10))
    assert c1 == pytest.approx(stats.norm.isf(spent(0.025, 0.5)), abs=1e-12)
    rho = math.sqrt(0.5)
    second, _ = integrate.quad(
        lambda z: stats.norm.pdf(z) * stats.norm.sf((c2 - rho * z) / math.sqrt(1 - rho**2)),
        -12, c1, epsabs=1e-13,
    )  # fmt: skip
    assert second == pytest.approx(0.025 - spent(0.025, 0.5), rel=1e-6)
    assert (c1, c2) == pytest.approx((2.1570, 2.2010), abs=1e-4)  # the LD-Pocock, K = 2 values


def three_look_exit(c: list[float], looks: tuple[int, ...]) -> float:
    """P(Z_1 <= c_1, Z_2 <= c_2, Z_3 > c_3) from the independent increments of the sum
    S_j = sqrt(n_j) Z_j, by a double integral over S_1 and S_2 (no multivariate normal cdf)."""
    n1, n2, n3 = looks
    s1, d2, d3 = math.sqrt(n1), math.sqrt(n2 - n1), math.sqrt(n3 - n2)

    def integrand(x2: float, x1: float) -> float:
        return (stats.norm.pdf(x1, scale=s1) * stats.norm.pdf(x2 - x1, scale=d2)
                * stats.norm.sf(c[2] * math.sqrt(n3) - x2, scale=d3))  # fmt: skip

    value, _ = integrate.dblquad(
        integrand, -10 * s1, c[0] * s1, -10 * math.sqrt(n2), c[1] * math.sqrt(n2),
        epsabs=1e-12, epsrel=1e-9,
    )  # fmt: skip
    return value


@pytest.mark.parametrize("alpha", [ALPHA / M, ALPHA])
def test_the_boundaries_spend_alpha_as_designed(alpha: float) -> None:
    c = z_boundaries(alpha, LOOKS)
    spend = [spent(alpha, n / LOOKS[-1]) for n in LOOKS]
    assert np.cumsum(exit_probabilities(c, LOOKS)) == pytest.approx(spend, rel=1e-6)
    assert three_look_exit(c, LOOKS) == pytest.approx(spend[2] - spend[1], rel=1e-5)
    levels = nominal_levels(alpha, LOOKS)
    assert all(0 < a < alpha for a in levels) and levels[0] == pytest.approx(spend[0])


def test_nominal_levels_grow_with_the_holm_level() -> None:
    """Maurer & Bretz need boundaries monotone in the local level: a rejection only helps."""
    rows = [nominal_levels(ALPHA / (M - r)) for r in range(M)]
    for low, high in itertools.pairwise(rows):
        assert all(a < b for a, b in zip(low, high, strict=True))


def reference_decide(
    j: int, p: dict[str, float], open_cells: list[str], rejected: int
) -> dict[str, str]:
    """Holm re-testing at one look, written plainly: smallest p first, each at the nominal
    level of look j for alpha / (m - rejections so far); then futility or "no"."""
    states, r = {}, rejected
    for cell in sorted(open_cells, key=lambda c: math.inf if math.isnan(p[c]) else p[c]):
        if math.isnan(p[cell]) or p[cell] > nominal_levels(ALPHA / (M - r))[j]:
            break
        states[cell], r = "yes", r + 1
    for cell in open_cells:
        if cell not in states:
            last = j == len(LOOKS) - 1
            states[cell] = "no" if last else "futile" if p[cell] > 0.5 else "continue"
    return states


def test_decide_by_hand() -> None:
    # look 1: alpha/9 -> 0.00231, then alpha/8 -> 0.00260, then alpha/7 -> 0.00295
    p = {"a": 0.0015, "b": 0.0025, "c": 0.003, "d": 0.6, "e": math.nan, "f": 0.2}
    got = decide(0, p, list(p), ALPHA, M)
    assert got == {"a": "yes", "b": "yes", "c": "continue", "d": "futile", "e": "continue",
                   "f": "continue"}  # fmt: skip
    assert nominal_levels(ALPHA / M)[0] < 0.0025  # b is a "yes" only thanks to a (re-testing)
    assert decide(0, {"b": 0.0025}, ["b"], ALPHA, M)["b"] == "continue"
    assert decide(0, {"b": 0.0025}, ["b"], ALPHA, M, rejected=1)["b"] == "yes"
    last = decide(2, {"c": 0.003, "d": 0.6, "e": math.nan}, ["c", "d", "e"], ALPHA, M)
    assert last == {"c": "no", "d": "no", "e": "no"}
    assert next_seeds(got, 0) == {"c": 6, "e": 6, "f": 6} and next_seeds(last, 2) == {}
    with pytest.raises(ValueError):
        decide(0, p, list(p), ALPHA, M, rejected=4)
    with pytest.raises(ValueError):
        decide(3, p, list(p), ALPHA, M)


@settings(max_examples=60, deadline=None)
@given(
    logp=st.lists(st.one_of(st.floats(-5.0, 0.0), st.just(math.nan)), min_size=1, max_size=9),
    j=st.integers(0, 2), rejected=st.integers(0, 4),
)  # fmt: skip
def test_decide_matches_the_plain_reference(logp: list[float], j: int, rejected: int) -> None:
    cells = [f"c{i}" for i in range(min(len(logp), M - rejected))]
    p = {c: 10**v for c, v in zip(cells, logp, strict=False)}
    assert decide(j, p, cells, ALPHA, M, rejected=rejected) == reference_decide(
        j, p, cells, rejected
    )


def test_the_repeated_bound_crosses_zero_with_the_first_boundary() -> None:
    ours = welch([4.81, 4.95, 4.70], [4.31, 4.42, 4.29])
    bound = repeated_bound(ours, ALPHA, M, 0)
    assert bound.level == nominal_levels(ALPHA / M)[0] and "repeated over looks" in bound.label
    assert (bound.value > 0) == (ours.p <= bound.level)


def test_beating_the_original_but_not_k1_never_says_yes_at_any_look() -> None:
    kd = np.array([4.53, 4.64, 4.50, 4.61, 4.49, 4.59, 4.52, 4.57, 4.48, 4.62])
    original = kd + 1.0  # k-decay beats the original by a point at every look
    k1 = kd[[1, 2, 0, 5, 3, 4, 9, 6, 7, 8]] + 0.01  # k = 1 only 0.01 worse at every look
    states = []
    for j, n in enumerate(LOOKS):
        p_o, p_1 = welch(original[:n], kd[:n]).p, welch(k1[:n], kd[:n]).p
        assert p_o < 1e-3 and 0.2 < p_1 < 0.5
        # every other claim confirmed: the loosest level Holm can reach
        states.append(decide(j, {"cell": max(p_o, p_1)}, ["cell"], ALPHA, M, rejected=8)["cell"])
    assert states == ["continue", "continue", "no"]


def appendix_claims(scenario: str, noise: float = 1.0) -> list[Claim]:
    records = pd.read_csv(APPENDIX).to_dict("records")
    return scenario_claims(records, SEED_STD, scenario, noise=noise)


def test_the_scenarios() -> None:
    paper, shrunk, null = (appendix_claims(s) for s in ("paper", "shrunk", "null"))
    assert len(paper) == M and [c.arms for c in paper].count(2) == 1
    sgdr = next(c for c in paper if c.name == "cifar10/wrn28_10_sgdr")
    assert sgdr.gain_k1 is None and sgdr.gain == pytest.approx(3.86 - 3.59)
    cut = selection_optimism(6) * 0.15
    assert next(c for c in shrunk if c.name == sgdr.name).gain == pytest.approx(0.27 - cut)
    assert all(c.gain == 0 for c in null)
    assert appendix_claims("shrunk", noise=1.5)[0].sigma == pytest.approx(0.225)


def test_no_effect_keeps_the_family_wise_error_and_stops_early() -> None:
    sim = simulate(appendix_claims("null"), experiments=4_000)
    assert sim.fwer <= ALPHA
    assert all(s < 10 for s in sim.seeds) and all(f > 0.5 for f in sim.futile)


def test_the_least_favourable_case_keeps_the_error_near_alpha() -> None:
    """Eight claims surely true (rejected, so the ninth is tested at alpha itself) and one
    null: the t-for-z approximation at 3 seeds a side must not inflate the error."""
    claims = [Claim(f"sure{i}", 0.15, 5.0, 5.0) for i in range(8)] + [Claim("null", 0.15, 0.0)]
    sim = simulate(claims, experiments=20_000)
    assert min(sim.power[:8]) == 1.0
    assert sim.fwer <= ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / 20_000)


def test_the_paper_gains_confirm_an_easy_claim_with_few_seeds() -> None:
    sim = simulate(appendix_claims("paper"), experiments=2_000)
    easy = [c.name for c in sim.claims].index("cifar10/preact_resnet110")
    assert sim.claims[easy].gain == pytest.approx(1.11) and sim.power[easy] > 0.95
    assert sim.seeds[easy] < 6 and math.isnan(sim.fwer)
    assert sim.runs()[easy] == pytest.approx(3 * sim.seeds[easy])


@pytest.mark.parametrize(("delta", "n"), [(0.27, 9), (0.43, 4)])
def test_one_fixed_look_matches_the_exact_power(delta: float, n: int) -> None:
    sim = simulate(
        [Claim("one", 0.15, delta)], looks=(n,), alpha=ALPHA / M, m=1, experiments=20_000
    )
    exact = welch_power(delta, n, 0.15, ALPHA / M)
    assert sim.power[0] == pytest.approx(exact, abs=4 * math.sqrt(0.25 / 20_000))
    assert sim.seeds == (n,) and sim.futile == (0.0,)
