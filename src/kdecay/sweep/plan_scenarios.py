"""``kdecay plan``'s power of the configured seed plan by simulation (:mod:`kdecay.stats`):
the claims of the appendix as one Holm family of intersection-union tests, at the seeds per
arm params.yaml gives them, under three scenarios of the true gains (the paper's printed gains;
the gains shrunk by the optimism of the paper's k, picked as the best of 6 single runs on the
test set, 1.27 seed std; no effect), and under the paper's gains with 1.5x the assumed seed
noise (a std from 5 runs may be off by that much). Seeded: the same params print the same
numbers."""

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


def plan_scenarios(
    config: Config, appendix: pd.DataFrame, gpu_hours: float, n: int
) -> dict[str, Any]:
    """Per scenario, at ``n`` seeds per arm (the fewest any claim's arm gets): ``power`` per
    claim (P(yes); under no effect, the false-yes rate), ``fwer`` (P(any false yes), NaN where
    no claim is null) and ``expected_gpu_hours`` (the configured seeds are fixed: the plan's
    total)."""
    records, single = _claim_records(config, appendix)
    out: dict[str, Any] = {"seeds_per_arm": n, "experiments": EXPERIMENTS, "scenarios": {}}
    if not records or n < 2:
        return out
    cases = [(s, s, 1.0) for s in SCENARIOS] + [(f"paper_noise_{NOISE:g}x", "paper", NOISE)]
    for name, scenario, noise in cases:
        claims = scenario_claims(
            records, config.stats.seed_std, scenario, single_rows=single, noise=noise
        )
        sim = simulate(
            claims, looks=(n,), alpha=config.stats.alpha, m=len(claims), experiments=EXPERIMENTS
        )
        out["scenarios"][name] = {
            "expected_gpu_hours": gpu_hours,
            "fwer": sim.fwer,
            "power": {c.name: p for c, p in zip(claims, sim.power, strict=True)},
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
        return "no claim with 2 seeds or more per arm: no power to simulate\n"
    names = list(scenarios)
    lines = [
        "| claim | " + " | ".join(f"P(yes): {n}" for n in names) + " |",
        "|---|" + "--:|" * len(names),
    ]
    for claim in scenarios[names[0]]["power"]:
        cells = [f"{scenarios[n]['power'][claim]:.2f}" for n in names]
        lines.append(f"| {_title(claim)} | " + " | ".join(cells) + " |")
    fwer = scenarios["null"]["fwer"]
    lines.append(
        f"\nSimulated ({result['experiments']:,} seeded experiments) at {result['seeds_per_arm']} "
        "seeds per arm: every claim one intersection-union test (both one-sided Welch tests), "
        "Holm over the claims. paper: the printed gains; shrunk: minus the optimism of a k "
        f"picked as the best of 6 single runs (1.27 seed std); null: no effect; "
        f"paper_noise_{NOISE:g}x: the printed gains at {NOISE:g}x the seed std. Family-wise "
        f"error under no effect: {fwer:.3f}. Expected GPU-hours: "
        f"{_hours(scenarios)} (the seeds are fixed in params.yaml)."
    )
    return "\n".join(lines) + "\n"


def _hours(scenarios: dict[str, Any]) -> str:
    hours = {round(s["expected_gpu_hours"], 1) for s in scenarios.values()}
    return ", ".join("n/a" if math.isnan(h) else f"{h:.1f}" for h in sorted(hours))
