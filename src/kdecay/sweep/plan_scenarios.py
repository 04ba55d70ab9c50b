"""``kdecay plan``'s power and expected cost of the group-sequential design by simulation
(:mod:`kdecay.stats.simulate`): the claims of the appendix as one Holm family of
intersection-union tests, looked at after ``stats.looks`` seeds per arm (Lan-DeMets Pocock
spending, futility), under three scenarios of the true gains (the paper's printed gains; the
gains shrunk by the optimism of the paper's k, picked as the best of 6 single runs on the test
set, 1.27 seed std; no effect), and under the paper's gains with 1.5x the assumed seed noise (a
std from 5 runs may be off by that much).

Expected GPU-hours of a scenario: the sweep's runs (every row, method and k at ``seeds``), plus
per claim its arms times its expected seeds per arm at stopping, less the arms' runs the sweep
already has, each at its row's hours per run (``epochs x sweep.seconds_per_epoch``). Seeded:
the same params print the same numbers."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from kdecay.config import Config
from kdecay.data.datasets import DATASETS
from kdecay.stats.simulate import SCENARIOS, scenario_claims, simulate

__all__ = ["plan_scenarios", "render_scenarios"]

NOISE = 1.5  # the pessimistic seed noise, as a multiple of stats.seed_std
EXPERIMENTS = 20_000


def _claim_records(config: Config, appendix: pd.DataFrame) -> tuple[list[dict], list[str]]:
    """The appendix's printed k-decay results among the configured datasets and rows."""
    app = appendix[appendix["dataset"].isin(config.datasets) & appendix["row"].isin(config.rows)]
    printed = app.dropna(subset=["kdecay_err", "k"])
    single = [row for row, recipe in config.rows.items() if not recipe.has_original_stage]
    return printed.to_dict("records"), single


def _claim_hours(config: Config, name: str) -> tuple[float, int]:
    """GPU-hours of one run of claim ``dataset/row``, and its arms' runs the sweep trains."""
    dataset, row = name.split("/")
    rate = config.sweep.seconds_per_epoch.get(row, math.nan)
    hours = config.rows[row].epochs * rate / 3600
    cell = next((c for c in config.claims.cells if (c.dataset, c.row) == (dataset, row)), None)
    ks = [1.0] + ([cell.k] if cell is not None else [])
    arms = len(ks) + (1 if config.rows[row].has_original_stage else 0)
    in_sweep = sum(1 for k in ks if k in config.kdecay.ks) + arms - len(ks)
    return hours, in_sweep * len(config.seeds)


def plan_scenarios(config: Config, appendix: pd.DataFrame, sweep_hours: float) -> dict[str, Any]:
    """Per scenario: ``power`` per claim (P(yes); under no effect, the false-yes rate),
    ``fwer`` (P(any false yes), NaN where no claim is null), ``expected_seeds`` per arm and
    ``expected_gpu_hours`` of the whole plan (module docstring)."""
    records, single = _claim_records(config, appendix)
    looks = config.stats.looks
    out: dict[str, Any] = {"looks": list(looks), "experiments": EXPERIMENTS, "scenarios": {}}
    if not records:
        return out
    cases = [(s, s, 1.0) for s in SCENARIOS] + [(f"paper_noise_{NOISE:g}x", "paper", NOISE)]
    for name, scenario, noise in cases:
        claims = scenario_claims(
            records, config.stats.seed_std, scenario, single_rows=single, noise=noise
        )
        sim = simulate(
            claims, looks=looks, alpha=config.stats.alpha, m=len(claims), experiments=EXPERIMENTS
        )
        hours = sweep_hours
        for claim, runs in zip(claims, sim.runs(), strict=True):
            per_run, in_sweep = _claim_hours(config, claim.name)
            hours += max(runs - in_sweep, 0.0) * per_run
        out["scenarios"][name] = {
            "expected_gpu_hours": hours,
            "fwer": sim.fwer,
            "power": {c.name: p for c, p in zip(claims, sim.power, strict=True)},
            "expected_seeds": {c.name: n for c, n in zip(claims, sim.seeds, strict=True)},
            "gains": {c.name: c.gain for c in claims},
        }
    return out


def _title(name: str) -> str:
    dataset, row = name.split("/")
    return f"{DATASETS[dataset].title} {row}"


def render_scenarios(result: dict[str, Any]) -> str:
    """The scenarios as Markdown: power per claim, then the family-wise error rates."""
    scenarios = result["scenarios"]
    if not scenarios:
        return "no printed k-decay result among the configured rows: no claim to simulate\n"
    names = list(scenarios)
    lines = [
        "| claim | " + " | ".join(f"P(yes): {n}" for n in names) + " |",
        "|---|" + "--:|" * len(names),
    ]
    for claim in scenarios[names[0]]["power"]:
        cells = [f"{scenarios[n]['power'][claim]:.2f}" for n in names]
        lines.append(f"| {_title(claim)} | " + " | ".join(cells) + " |")
    cells = [f"{scenarios[n]['expected_gpu_hours']:.1f}" for n in names]
    lines.append("| **expected GPU-hours, whole plan** | " + " | ".join(cells) + " |")
    fwer = scenarios["null"]["fwer"]
    looks = "/".join(str(n) for n in result["looks"])
    lines.append(
        f"\nSimulated ({result['experiments']:,} seeded experiments), looks at {looks} seeds per "
        "arm: every claim one intersection-union test (both one-sided Welch tests), Holm over "
        "the claims at each look, Lan-DeMets Pocock spending, futility at p > 0.5. paper: the "
        "printed gains; shrunk: minus the optimism of a k picked as the best of 6 single runs "
        f"(1.27 seed std); null: no effect; paper_noise_{NOISE:g}x: the printed gains at "
        f"{NOISE:g}x the seed std. Family-wise error under no effect: {fwer:.3f}."
    )
    return "\n".join(lines) + "\n"
