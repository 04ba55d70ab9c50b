"""``kdecay plan``: what the pipeline of a params file trains, computed, never typed in.

Per table row and dataset: runs, epochs, optimizer steps (``epochs x ceil(50,000 / batch)``,
the last partial batch kept) and the estimated GPU-hours at ``sweep.seconds_per_epoch`` of
params (H100 targets until measured; the README's Performance section says which). The
README's sweep arithmetic is this command's output.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from pathlib import Path

import pandas as pd

from kdecay.checks import ConfigError
from kdecay.config import ClaimsSection, Config, load_config
from kdecay.data.datasets import DATASETS
from kdecay.sweep.plan_fused import fmt_hours

__all__ = ["plan", "render_plan"]


def plan(config: Config) -> pd.DataFrame:
    """One line per (dataset, row): runs, epochs, steps, estimated hours (NaN if no rate)."""
    counts = Counter((r.dataset, r.row) for r in config.runs())
    lines = []
    for dataset in config.datasets:
        for row, spec in config.rows.items():
            n = counts[(dataset, row)]
            per_epoch = math.ceil(DATASETS[dataset].train_images / spec.batch_size)
            rate = config.sweep.seconds_per_epoch.get(row)
            lines.append(
                {
                    "dataset": dataset,
                    "row": row,
                    "runs": n,
                    "epochs_per_run": spec.epochs,
                    "epochs": n * spec.epochs,
                    "batch_size": spec.batch_size,
                    "steps": n * spec.epochs * per_epoch,
                    "seconds_per_epoch": math.nan if rate is None else rate,
                    "gpu_hours": math.nan if rate is None else n * spec.epochs * rate / 3600,
                }
            )
    return pd.DataFrame(lines)


def render_plan(table: pd.DataFrame) -> str:
    """The plan as a Markdown table with a total line."""
    head = (
        "| dataset | row | runs | epochs/run | epochs | batch | optimizer steps | s/epoch | GPU-h |"
    )
    lines = [head, "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for _, r in table.iterrows():
        rate = "n/a" if math.isnan(r["seconds_per_epoch"]) else f"{r['seconds_per_epoch']:g}"
        lines.append(
            f"| {DATASETS[r['dataset']].title} | {r['row']} | {r['runs']} | {r['epochs_per_run']} "
            f"| {r['epochs']:,} | {r['batch_size']} | {r['steps']:,} | {rate} "
            f"| {fmt_hours(r['gpu_hours'])} |"
        )
    lines.append(
        f"| **total** | | **{table['runs'].sum()}** | | **{table['epochs'].sum():,}** | "
        f"| **{table['steps'].sum():,}** | | **{fmt_hours(table['gpu_hours'])}** |"
    )
    return "\n".join(lines) + "\n"


def power_plan(config: Config, appendix: pd.DataFrame) -> pd.DataFrame:
    """Per printed k-decay result of the appendix (the tested family): the most seeds per arm
    the looks give it (``stats.looks[-1]``; the sweep's seeds for a result with no claims
    cell), the smallest gain detectable with ``stats.power`` at the Holm-corrected level
    ``alpha / m`` with that many seeds in one look, given ``stats.seed_std``, the paper's
    claimed gain and the seeds it needs (:mod:`kdecay.stats.power`: the exact power of the
    one-sided Welch test). The simulated power of the sequential design is
    :mod:`kdecay.sweep.plan_scenarios`'s."""
    from kdecay.stats.power import detectable_gain, seeds_for_power

    app = appendix[appendix["dataset"].isin(config.datasets) & appendix["row"].isin(config.rows)]
    printed = app.dropna(subset=["kdecay_err", "k"])
    level, target = config.stats.alpha / max(len(printed), 1), config.stats.power
    lines = []
    for _, a in printed.iterrows():
        dataset, row, k = a["dataset"], a["row"], float(a["k"])
        claimed = (dataset, row) in {(c.dataset, c.row) for c in config.claims.cells}
        n = config.stats.looks[-1] if claimed else len(config.seeds)
        sigma = config.stats.seed_std.get(dataset, math.nan)
        gain = float(a["original_err"]) - float(a["kdecay_err"])
        known = not math.isnan(sigma)
        detectable = detectable_gain(n, sigma, level, target) if n >= 2 and known else math.nan
        lines.append(
            {
                "dataset": dataset,
                "row": row,
                "paper_k": k,
                "seeds": n,
                "seed_std": sigma,
                "detectable_gain": detectable,
                "paper_gain": gain,
                "seeds_needed": seeds_for_power(gain, sigma, level, target) if known else None,
                "level": level,
            }
        )
    return pd.DataFrame(lines)


def render_power(table: pd.DataFrame, power_target: float) -> str:
    """The power plan as Markdown, with the cells that do not reach the target named."""
    if table.empty:
        return "no printed k-decay result among the configured datasets and rows: no test\n"
    pct = f"{power_target:.0%}"
    lines = [
        f"| dataset | row | paper k | seeds per arm, last look | seed std "
        f"| gain detectable at {pct} "
        "| paper's gain | seeds it needs |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    short = []
    for _, r in table.iterrows():
        detect = "no test" if math.isnan(r["detectable_gain"]) else f"{r['detectable_gain']:.2f}"
        needed = "> 60" if pd.isna(r["seeds_needed"]) else str(int(r["seeds_needed"]))
        if pd.isna(r["seeds_needed"]) or r["seeds"] < r["seeds_needed"]:
            short.append(f"{DATASETS[r['dataset']].title} {r['row']}")
        lines.append(
            f"| {DATASETS[r['dataset']].title} | {r['row']} | {r['paper_k']:g} | {r['seeds']} "
            f"| {r['seed_std']:g} | {detect} | {r['paper_gain']:+.2f} | {needed} |"
        )
    level = table["level"].iloc[0]
    verdict = (
        f"Below {pct} for the paper's gain: {', '.join(short)}."
        if short
        else f"Every tested cell reaches {pct} for the paper's gain."
    )
    lines.append(
        f"\nOne-sided Welch at the Holm-corrected level {level:.4f} (alpha / {len(table)} tested "
        f"cells), power {pct}, exact (quadrature); seed std from stats.seed_std. {verdict}"
    )
    return "\n".join(lines) + "\n"


def _sweep_hours(config: Config) -> tuple[float, int]:
    """GPU-hours and runs of the sweep alone (no claim's extra seeds)."""
    sweep_only = plan(dataclasses.replace(config, claims=ClaimsSection()))
    return float(sweep_only["gpu_hours"].sum()), int(sweep_only["runs"].sum())


def plan_json(config: Config, appendix: pd.DataFrame) -> dict:
    """``kdecay plan --json``: the run table's totals (the runs params.yaml lists now: the
    current look) and the simulated scenarios of the whole sequential plan."""
    from kdecay.sweep.plan_scenarios import plan_scenarios

    table = plan(config)
    return {
        "runs": int(table["runs"].sum()),
        "epochs": int(table["epochs"].sum()),
        "optimizer_steps": int(table["steps"].sum()),
        "gpu_hours": float(table["gpu_hours"].sum()),
        "rows": table.to_dict("records"),
        **plan_scenarios(config, appendix, _sweep_hours(config)[0]),
    }


def print_plan(
    params_file: Path,
    appendix: Path = Path("paper/appendix_tables.csv"),
    fuse: int | str | None = None,
    bench: Path | None = None,
    as_json: bool = False,
) -> None:
    """``kdecay plan``: print the runs and GPU-hours of ``params_file``, with ``fuse`` the
    same with fused groups (speed-ups from the ``bench`` report), its power plan and the
    simulated scenarios (:mod:`kdecay.sweep.plan_scenarios`); ``as_json``: the totals and the
    scenarios as JSON, for scripts."""
    from kdecay.report.tables import load_appendix
    from kdecay.sweep.plan_scenarios import plan_scenarios, render_scenarios

    if bench is not None and fuse is None:
        raise ConfigError("--bench gives fused speed-ups: add --fuse G (the G it measured)")
    if fuse is not None and fuse != "auto" and int(fuse) < 2:
        raise ConfigError(f"--fuse {fuse}: give G >= 2 runs per fused group, or auto")
    config = load_config(params_file)
    from kdecay.sweep.plan_fused import read_speedups

    speedups, device = read_speedups(bench) if bench else ({}, None)  # bad report: before all
    if as_json:
        print(json.dumps(plan_json(config, load_appendix(appendix)), indent=1, default=str))
        return
    table = plan(config)
    print(render_plan(table), end="")
    sweep_hours, sweep_runs = _sweep_hours(config)
    runs, hours = int(table["runs"].sum()), float(table["gpu_hours"].sum())
    print(
        f"\nOf these, the sweep with seeds {list(config.seeds)} is {sweep_runs} runs, "
        f"{sweep_hours:.1f} GPU-h; the claims' seeds at their current look add "
        f"{runs - sweep_runs} runs, {hours - sweep_hours:.1f} GPU-h. Later looks add seeds only "
        "to undecided claims (kdecay look --apply): the expected total is simulated below.\n"
    )
    if fuse is not None:
        from kdecay.sweep.plan_fused import fused_plan, render_fused_plan

        source = str(bench) if bench else "no report: give --bench bench.json"
        print(render_fused_plan(fused_plan(config, fuse, speedups, device), fuse, source))
    app = load_appendix(appendix)
    print(render_power(power_plan(config, app), config.stats.power))
    scenarios = plan_scenarios(config, app, sweep_hours)
    print(render_scenarios(scenarios), end="")
