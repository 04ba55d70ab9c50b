"""The power plan of `kdecay plan` against an independent simulation and the noncentral t, and
the optimism of a best k chosen on the test set. (The tests themselves: tests/test_stats.py;
the claims through aggregate and tables: tests/test_claims.py.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from kdecay.stats.power import best_of_k_optimism, detectable_gain, seeds_for_power
from kdecay.stats.power import welch_power as power


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
    needed = seeds_for_power(0.27, 0.15, alpha, 0.8)  # SGDR's claimed gain on CIFAR-10
    assert 8 <= needed <= 11 and power(0.27, needed, 0.15, alpha) >= 0.8
    assert power(0.27, needed - 1, 0.15, alpha) < 0.8
    gain = detectable_gain(needed, 0.15, alpha, 0.8)
    assert gain <= 0.27 and power(gain, needed, 0.15, alpha) == pytest.approx(0.8)
    assert seeds_for_power(-0.1, 0.15, alpha, 0.8) is None
    # the minimum of 6 equal k over one seed is optimistic by 1.267 sigma (E[max of 6 N(0,1)])
    assert best_of_k_optimism(6, 1, 1.0) == pytest.approx(1.2672, abs=1e-4)
    assert best_of_k_optimism(6, 4, 0.3) == pytest.approx(1.2672 * 0.3 / 2, abs=1e-4)


def test_plan_json_gives_every_scenario_with_power_fwer_and_hours(capsys) -> None:
    """`kdecay plan --json` on the default params: the totals and, per scenario (the paper's
    gains, the gains shrunk by the paper's choice of k, no effect, 1.5x the seed noise), each
    claim's power, the family-wise error and the expected GPU-hours."""
    import json
    from pathlib import Path

    from kdecay.sweep.plan import print_plan

    root = Path(__file__).resolve().parents[1]
    print_plan(root / "params.yaml", root / "paper" / "appendix_tables.csv", as_json=True)
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == 134 and out["looks"] == [3, 6, 10]  # the first look's runs
    scenarios = out["scenarios"]
    assert set(scenarios) == {"paper", "shrunk", "null", "paper_noise_1.5x"}
    for s in scenarios.values():  # at least the first look, at most 10 seeds everywhere
        assert len(s["power"]) == 9 and out["gpu_hours"] < s["expected_gpu_hours"] < 56.6
        assert all(3 <= n <= 10 for n in s["expected_seeds"].values())
    # the whole plan, looks and all, costs at most 40 GPU-hours whether k-decay works or not
    assert scenarios["paper"]["expected_gpu_hours"] <= 40
    assert scenarios["null"]["expected_gpu_hours"] <= 40
    assert scenarios["null"]["fwer"] <= 0.05
    assert all(p <= 0.05 for p in scenarios["null"]["power"].values())
    paper, shrunk = scenarios["paper"]["power"], scenarios["shrunk"]["power"]
    assert paper["cifar10/preact_resnet110"] > 0.95  # a gain of 1.11 at sigma 0.15
    assert all(shrunk[c] <= paper[c] + 0.01 for c in paper)  # smaller gains, less power
