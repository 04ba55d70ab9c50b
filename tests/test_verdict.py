"""The verdict on hand-made summary cells, checked against scipy: one one-sided Welch test per
claim with the bound that agrees with it, Holm over the family, no test without spread or with
one seed, diverged seeds named, and the power plan against a simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from kdecay.report.power import best_of_k_optimism, detectable_gain, power, seeds_needed
from kdecay.report.verdict import compare, holm, lower_bound, verdict

ALPHA = 0.05


def cell(mean: float, std: float, n: int, **counts: int) -> dict:
    return {"mean_error": mean, "std_error": std if n >= 2 else math.nan, "n": n, **counts}


def test_one_sided_p_between_0025_and_005_says_yes_with_a_bound_above_zero() -> None:
    base, kd = cell(5.0, 0.30, 5), cell(4.6, 0.30, 5)
    ours = compare(base, kd)
    p = stats.ttest_ind_from_stats(5.0, 0.3, 5, 4.6, 0.3, 5, False, alternative="greater").pvalue
    assert ours.p == pytest.approx(p) and 0.025 < p < 0.05
    # a family of one: Holm leaves p as it is; the one-sided 95% bound is > 0 (the two-sided
    # 95% interval, which the old verdict printed, contains 0 here)
    text = verdict(0.4, ours, holm([ours.p])[0], ALPHA)
    assert text.startswith("yes (+0.40 vs paper +0.40; one-sided Welch p=0.0")
    bound = lower_bound(ours, ours.p, ALPHA)
    assert bound > 0 and f"gain >= {bound:+.2f}" in text
    assert ours.gain - stats.t.ppf(0.975, ours.dof) * ours.se < 0


def test_holm_makes_a_raw_p_non_significant() -> None:
    ours = compare(cell(5.0, 0.30, 5), cell(4.6, 0.30, 5))  # raw p 0.03
    family = [ours.p, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, math.nan, 0.2]  # nine printed cells
    adjusted = holm(family)
    assert adjusted[0] == pytest.approx(9 * ours.p) and adjusted[0] > ALPHA
    text = verdict(0.4, ours, adjusted[0], ALPHA)
    assert text.startswith("not significant (") and f"Holm p={adjusted[0]:.3f}" in text
    assert lower_bound(ours, adjusted[0], ALPHA) < 0  # the bound agrees with the verdict


def test_holm_against_its_definition() -> None:
    # sorted p (0.01, 0.02, 0.03, 0.5): x4, x3, x2, x1 with a running maximum
    assert holm([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert holm([0.3, math.nan]) == pytest.approx([0.6, 1.0])
    assert holm([]) == []


@settings(max_examples=60, deadline=None)
@given(
    m1=st.floats(3.0, 6.0), m2=st.floats(3.0, 6.0), s1=st.floats(0.01, 0.5),
    s2=st.floats(0.01, 0.5), n1=st.integers(2, 9), n2=st.integers(2, 9),
    others=st.lists(st.floats(0.0, 1.0), max_size=8),
)  # fmt: skip
def test_the_bound_excludes_zero_exactly_when_the_verdict_is_yes(
    m1: float, m2: float, s1: float, s2: float, n1: int, n2: int, others: list[float]
) -> None:
    ours = compare(cell(m1, s1, n1), cell(m2, s2, n2))
    adjusted = holm([ours.p, *others])[0]
    if abs(adjusted - ALPHA) > 1e-6:  # away from the boundary itself
        assert (lower_bound(ours, adjusted, ALPHA) > 0) == (adjusted < ALPHA)
        assert verdict(0.5, ours, adjusted, ALPHA).startswith("yes") == (adjusted < ALPHA)


def test_zero_spread_is_no_evidence() -> None:
    ours = compare(cell(5.01, 0.0, 2), cell(5.0, 0.0, 2))  # seeds [0, 0]: the same run twice
    assert not ours.tested and math.isnan(ours.p)
    text = verdict(0.01, ours, math.nan, ALPHA)
    assert text == "no test: zero spread on both sides (+0.01 vs paper +0.01; n=2/2)"


def test_one_seed_is_indicative_only() -> None:
    text = verdict(1.0, compare(cell(5.0, 0, 1), cell(4.0, 0, 1)), math.nan, ALPHA)
    assert text == "no test: 1 seed on a side, indicative only (+1.00 vs paper +1.00; n=1/1)"


def test_diverged_and_missing_seeds_are_named_in_the_verdict() -> None:
    from kdecay.report.tables import seeds_note

    base, kd = cell(5.0, 0.2, 5), cell(4.0, 0.2, 3, n_diverged=2)
    note = seeds_note(base, kd)
    assert note == "2 diverged seeds"
    text = verdict(1.0, compare(base, kd), 0.001, ALPHA, seeds_note=note)
    assert text.startswith("yes (") and "n=5/3, 2 diverged seeds" in text
    empty = cell(math.nan, math.nan, 0, n_missing=3)
    assert verdict(1.0, compare(base, empty), math.nan, ALPHA, "runs missing",
                   seeds_note(base, empty)) == "n/a (runs missing; 3 missing seeds)"  # fmt: skip
    assert verdict(math.nan, None, math.nan, ALPHA) == (
        "n/a (paper's k-decay result not in the text)"
    )


def _simulated_power(delta: float, n: int, sigma: float, alpha: float) -> float:
    """Monte Carlo: the share of simulated experiments scipy's one-sided Welch test rejects."""
    rng = np.random.default_rng(12345)
    base = rng.normal(delta, sigma, size=(20_000, n))
    kd = rng.normal(0.0, sigma, size=(20_000, n))
    p = stats.ttest_ind(base, kd, axis=1, equal_var=False, alternative="greater").pvalue
    return float((p < alpha).mean())


@pytest.mark.parametrize(
    ("delta", "n", "sigma", "alpha"),
    [(0.27, 9, 0.15, 0.05 / 9), (0.73, 6, 0.3, 0.05 / 9), (1.11, 3, 0.15, 0.05 / 9)],
    ids=["sgdr-c10", "resnet110-c100", "resnet110-c10"],
)
def test_power_matches_an_independent_simulation_and_the_noncentral_t(
    delta: float, n: int, sigma: float, alpha: float
) -> None:
    """An independent simulation (other draws) agrees within Monte Carlo error; the noncentral
    t brackets it: n - 1 degrees of freedom (Welch's least) below, 2 (n - 1) above."""
    ours = power(delta, n, sigma, alpha)
    assert ours == pytest.approx(_simulated_power(delta, n, sigma, alpha), abs=0.015)
    ncp = delta / (sigma * math.sqrt(2 / n))
    low, high = (stats.nct.sf(stats.t.ppf(1 - alpha, df), df, ncp) for df in (n - 1, 2 * (n - 1)))
    assert low - 0.01 <= ours <= high + 0.01


def test_the_plan_functions_agree_with_each_other() -> None:
    alpha = 0.05 / 9
    needed = seeds_needed(0.27, 0.15, alpha, 0.8)  # SGDR's claimed gain on CIFAR-10
    assert 8 <= needed <= 11 and power(0.27, needed, 0.15, alpha) >= 0.8
    assert power(0.27, needed - 1, 0.15, alpha) < 0.8
    gain = detectable_gain(needed, 0.15, alpha, 0.8)
    assert gain <= 0.27 and power(gain, needed, 0.15, alpha) == pytest.approx(0.8)
    assert seeds_needed(-0.1, 0.15, alpha, 0.8) is None
    # the minimum of 6 equal k over one seed is optimistic by 1.267 sigma (E[max of 6 N(0,1)])
    assert best_of_k_optimism(6, 1, 1.0) == pytest.approx(1.2672, abs=1e-4)
    assert best_of_k_optimism(6, 4, 0.3) == pytest.approx(1.2672 * 0.3 / 2, abs=1e-4)
