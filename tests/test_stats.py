"""The statistics room (kdecay.stats): Welch from raw seeds against scipy, no test without
spread or with one seed, failed seeds, the intersection-union test, Holm against its closed
testing definition, the bounds, and the exact fixed-n power against the README and Monte Carlo."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from kdecay.stats.family import (
    cell_test,
    holm,
    interval,
    iut,
    lower_bound,
    simultaneous_bound,
)
from kdecay.stats.power import seeds_for_power, selection_optimism, welch_power
from kdecay.stats.welch import (
    Comparison,
    chance_error,
    control_sample,
    dataset_chance_error,
    kdecay_sample,
    welch,
)

ALPHA = 0.05
M = 9


def scipy_welch(base: list[float], kd: list[float]) -> stats._stats_py.TtestResult:
    return stats.ttest_ind(base, kd, equal_var=False, alternative="greater")


@pytest.mark.parametrize(
    ("base", "kd"),
    [
        ([6.41, 6.29, 6.55], [5.31, 5.12, 5.40]),
        ([4.81, 4.90, 4.77, 4.95, 4.70], [4.78, 4.92, 4.61]),  # unequal n
        ([22.1, 22.4, 21.9, 22.6], [22.3, 22.2, 22.9, 22.0, 22.5, 22.7]),  # k-decay worse
        ([5.0, 5.0, 5.0], [4.9, 4.7, 4.8]),  # zero spread on one side only: tested
    ],
)
def test_welch_p_equals_scipy_on_raw_values(base: list[float], kd: list[float]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ours is silent; scipy warns of a constant side
        ours = welch(base, kd)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        ref = scipy_welch(base, kd)
    assert ours.tested and ours.p == pytest.approx(float(ref.pvalue), rel=1e-12)
    assert ours.dof == pytest.approx(float(ref.df), rel=1e-12)
    assert ours.gain == pytest.approx(np.mean(base) - np.mean(kd), abs=1e-12)
    assert ours.gain / ours.se == pytest.approx(float(ref.statistic), rel=1e-12)
    assert ours.n == (len(base), len(kd))


def test_seven_identical_seeds_are_never_tested() -> None:
    # 5.1 along seven float paths: equal on paper, not in binary
    kd = [0.1 * 51, 5.1, 51 / 10, 1.7 * 3, 10.2 / 2, 0.3 * 17, 5.1]
    base = [6.2, 0.1 * 62, 62 / 10, 3.1 * 2, 12.4 / 2, 0.2 * 31, 6.2]
    assert 0 < np.std(kd) < 1e-14 and np.std(base) < 1e-14 and len(set(kd)) > 1
    ours = welch(base, kd)
    assert not ours.tested and ours.no_test == "zero spread on both sides" and math.isnan(ours.p)
    assert ours.gain == pytest.approx(1.1)
    # what refusing saves us from: scipy declares this float noise overwhelming evidence
    with pytest.warns(RuntimeWarning, match="Precision loss"):
        assert scipy_welch(base, kd).pvalue < 1e-100
    # a real, small spread is tested
    assert welch([6.2, 6.201, 6.199], [5.1, 5.101, 5.099]).tested


def test_one_seed_and_no_seed_are_not_tested_and_failures_must_be_built() -> None:
    one = welch([5.0, 5.2], [4.0])
    assert one.no_test == "1 seed on a side, indicative only" and one.gain == pytest.approx(1.1)
    assert welch([], [4.0, 4.1]).no_test == "no completed seed on a side"
    with pytest.raises(ValueError, match="non-finite"):
        welch([5.0, math.nan], [4.0, 4.1])


def test_chance_error_and_the_failure_helpers_name_their_seeds() -> None:
    assert (chance_error(10), chance_error(100)) == (90.0, 99.0)
    assert (dataset_chance_error("cifar10"), dataset_chance_error("cifar100")) == (90.0, 99.0)
    kd = kdecay_sample({0: 4.1, 1: math.nan, 2: 4.3, 3: 4.2}, 90.0, diverged={2, 5})
    assert kd.seeds == (0, 1, 2, 3, 5) and kd.values == (4.1, 90.0, 90.0, 4.2, 90.0)
    assert kd.substituted == (1, 2, 5) and kd.dropped == ()
    assert kd.note() == "3 diverged seeds scored at chance error (seeds 1, 2, 5)"
    base = control_sample({0: 5.0, 1: None, 2: 5.2, 3: math.inf}, diverged={2})
    assert base.values == (5.0,) and base.seeds == (0,) and base.dropped == (1, 2, 3)
    assert base.note() == "3 diverged seeds left out (seeds 1, 2, 3)"
    assert control_sample({4: 5.0}, diverged={7}).note() == "1 diverged seed left out (seed 7)"


@settings(max_examples=80, deadline=None)
@given(
    base_mean=st.floats(3.0, 30.0), shift=st.floats(-1.0, 3.0),
    sd_b=st.floats(0.01, 1.0), sd_k=st.floats(0.01, 1.0), seed=st.integers(0, 2**32 - 1),
)  # fmt: skip
def test_three_diverged_kdecay_seeds_out_of_ten_cannot_turn_no_into_yes(
    base_mean: float, shift: float, sd_b: float, sd_k: float, seed: int
) -> None:
    """Scored at chance error, failures can only weaken k-decay's case: the p with them is never
    below both the p without them and 0.5, so no level < 0.5 rejects with but not without."""
    rng = np.random.default_rng(seed)
    base = list(base_mean + sd_b * rng.standard_normal(10))
    good = {s: float(v) for s, v in enumerate(base_mean - shift + sd_k * rng.standard_normal(7))}
    kd = kdecay_sample({**good, 7: math.nan, 8: 1e9, 9: math.inf}, 90.0, diverged={8})
    assert kd.substituted == (7, 8, 9) and len(kd.values) == 10
    before, after = welch(base, list(good.values())).p, welch(base, list(kd.values)).p
    assert after >= min(before, 0.5)
    for a in (ALPHA / M, ALPHA, 0.2):
        assert not (after <= a < before)


def test_a_borderline_no_stays_no_with_three_diverged_seeds() -> None:
    base = [4.60, 4.45, 4.52, 4.70, 4.38, 4.55, 4.61, 4.49, 4.66, 4.42]
    good = {0: 4.50, 1: 4.41, 2: 4.58, 3: 4.47, 4: 4.36, 5: 4.62, 6: 4.44}
    no_fail = iut({"original": welch(base, list(good.values()))})
    kd = kdecay_sample({**good, 7: math.nan, 8: math.nan, 9: math.nan}, 90.0)
    with_fail = iut({"original": welch(base, list(kd.values))})
    assert holm([no_fail.p])[0] >= ALPHA and with_fail.p > 0.5


def comp(p: float, gain: float = 0.5) -> Comparison:
    return Comparison(gain, (5, 5), se=0.1, dof=8.0, p=p)


def test_iut_takes_the_larger_p_and_needs_every_component() -> None:
    cell = iut({"original": comp(0.001), "k1": comp(0.03)})
    assert cell.tested and cell.p == 0.03 and cell.limiting == "k1"
    sgdr = iut({"original": comp(0.004)})  # the SGDR row: its original is its k = 1
    assert sgdr.p == 0.004 and sgdr.limiting == "original"
    missing = iut({"original": comp(0.001), "k1": None})
    assert not missing.tested and math.isnan(missing.p) and missing.no_test == "vs k1: runs missing"
    one = Comparison(0.3, (1, 3), no_test="1 seed on a side, indicative only")
    assert iut({"original": one, "k1": comp(0.01)}).no_test.startswith("vs original: 1 seed")
    with pytest.raises(ValueError):
        iut({})


def test_beating_the_original_but_not_k1_is_no_yes() -> None:
    original = [5.52, 5.61, 5.47, 5.58, 5.66, 5.49, 5.55, 5.60, 5.53, 5.57]
    k1 = [4.55, 4.62, 4.49, 4.60, 4.52, 4.58, 4.47, 4.63, 4.51, 4.56]
    kd = [4.53, 4.64, 4.50, 4.61, 4.49, 4.59, 4.52, 4.57, 4.48, 4.62]
    cell = iut({"original": welch(original, kd), "k1": welch(k1, kd)})
    assert cell.components["original"].p < 1e-10 and cell.limiting == "k1"
    assert cell_test(kd, original, k1) == cell
    family = [cell.p, *[1e-6] * 8]  # even with every other claim confirmed (Holm's last step)
    assert holm(family)[0] >= ALPHA


def test_cell_test_from_raw_seeds_sgdr_and_missing_arms() -> None:
    kd, original = [4.31, 4.42, 4.29], [4.81, 4.95, 4.70]
    sgdr = cell_test(kd, original, single=True)
    assert list(sgdr.components) == ["original"] and sgdr.p == welch(original, kd).p
    assert cell_test(kd, original, None).no_test == "vs k1: runs missing"
    assert cell_test(None, original, original).no_test == (
        "vs original: runs missing; vs k1: runs missing"
    )
    assert cell_test(kd, original, [4.5]).no_test == "vs k1: 1 seed on a side, indicative only"


def test_holm_by_hand() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04: x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # nine cells, one untestable (NaN = 1): 0.001 x 9, 0.004 x 8, 0.01 x 7, 0.02 x 6,
    # 0.15 x 5, 0.2 x 4, then 0.5 x 3 and 0.6 x 2 capped at 1
    p = [0.004, 0.001, math.nan, 0.02, 0.2, 0.5, 0.15, 0.01, 0.6]
    expect = [0.032, 0.009, 1.0, 0.12, 0.8, 1.0, 0.75, 0.07, 1.0]
    assert holm(p) == pytest.approx(expect)
    assert holm([0.3, 0.3]) == pytest.approx([0.6, 0.6]) and holm([]) == []


def closed_testing(p: list[float]) -> list[float]:
    """Holm as closed testing with Bonferroni local tests (Marcus et al. 1976): adjusted
    p_i = max over index sets J containing i of min(1, |J| min_{j in J} p_j)."""
    m = len(p)
    out = []
    for i in range(m):
        worst = 0.0
        for size in range(1, m + 1):
            for subset in itertools.combinations(range(m), size):
                if i in subset:
                    worst = max(worst, min(1.0, size * min(p[j] for j in subset)))
        out.append(worst)
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6))
def test_holm_equals_closed_testing_and_is_monotone(p: list[float]) -> None:
    adjusted = holm(p)
    assert adjusted == pytest.approx(closed_testing(p), abs=1e-12)
    for a, b in itertools.combinations(range(len(p)), 2):
        if p[a] <= p[b]:
            assert adjusted[a] <= adjusted[b] + 1e-15


def test_the_simultaneous_bound_is_bonferroni_at_alpha_over_nine() -> None:
    ours = welch([4.81, 4.95, 4.70, 4.88, 4.77], [4.31, 4.42, 4.29, 4.50, 4.36])
    bound = simultaneous_bound(ours, ALPHA, M)
    assert bound.label == "simultaneous (Bonferroni, alpha/9)" and bound.level == ALPHA / M
    assert bound.value == pytest.approx(ours.gain - stats.t.ppf(1 - ALPHA / M, ours.dof) * ours.se)
    # the bound is above 0 exactly when p < alpha / 9, and then Holm says yes
    assert (bound.value > 0) == (ours.p < ALPHA / M) and holm([ours.p] * M)[0] < ALPHA
    assert math.isnan(lower_bound(Comparison(1.0, (1, 1), no_test="x"), 0.05))


def test_the_interval_says_whether_the_paper_gain_is_consistent() -> None:
    ours = welch([4.81, 4.95, 4.70, 4.88, 4.77], [4.31, 4.42, 4.29, 4.50, 4.36])
    half = stats.t.ppf(0.975, ours.dof) * ours.se
    got = interval(ours, 0.5)
    assert (got.low, got.high) == pytest.approx((ours.gain - half, ours.gain + half))
    assert got.size == "consistent"
    assert interval(ours, got.high + 0.01).size == "smaller than printed"
    assert interval(ours, got.low - 0.01).size == "larger than printed"
    assert interval(ours, math.nan).size == ""


@pytest.mark.parametrize(
    ("gain", "sigma", "seeds"),
    [(1.11, 0.15, 3), (1.0, 0.15, 3), (0.32, 0.15, 8), (0.27, 0.15, 9), (0.73, 0.3, 6),
     (0.79, 0.3, 6)],
)  # fmt: skip
def test_exact_power_gives_the_readme_seed_counts(gain: float, sigma: float, seeds: int) -> None:
    """README "Seed noise": per arm, at alpha/9 and 80% power."""
    assert seeds_for_power(gain, sigma, ALPHA / M, 0.8) == seeds
    assert seeds_for_power(-0.1, sigma, ALPHA / M, 0.8) is None


@pytest.mark.parametrize(("delta", "n", "sigma"), [(0.27, 9, 0.15), (1.0, 3, 0.15), (0.3, 2, 0.3)])
def test_exact_power_against_monte_carlo_and_the_noncentral_t(
    delta: float, n: int, sigma: float
) -> None:
    alpha = ALPHA / M
    ours = welch_power(delta, n, sigma, alpha)
    rng = np.random.default_rng(7)
    base, kd = rng.normal(delta, sigma, (60_000, n)), rng.normal(0.0, sigma, (60_000, n))
    p = stats.ttest_ind(base, kd, axis=1, equal_var=False, alternative="greater").pvalue
    assert ours == pytest.approx(float((p < alpha).mean()), abs=4 * math.sqrt(0.25 / 60_000))
    ncp = delta / (sigma * math.sqrt(2 / n))
    low, high = (stats.nct.sf(stats.t.ppf(1 - alpha, df), 2 * (n - 1), ncp)
                 for df in (n - 1, 2 * (n - 1)))  # fmt: skip
    assert low <= ours <= high


def test_selection_optimism_of_the_best_of_six() -> None:
    assert selection_optimism(6) == pytest.approx(1.2672, abs=1e-4)
    draws = np.random.default_rng(3).standard_normal((200_000, 6)).max(axis=1)
    assert selection_optimism(6) == pytest.approx(draws.mean(), abs=0.01)
    assert selection_optimism(1) == 0.0
