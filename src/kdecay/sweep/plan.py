"""``kdecay plan``: what the pipeline of a params file trains, computed, never typed in.

Per table row and dataset: runs, epochs, optimizer steps (``epochs x ceil(50,000 / batch)``,
the last partial batch kept) and the estimated GPU-hours at ``sweep.seconds_per_epoch`` of
params (H100 targets until measured; the README's Performance section says which). The
README's sweep arithmetic is this command's output.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pandas as pd

from kdecay.config import Config, load_config
from kdecay.data.datasets import DATASETS

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
        hours = "n/a" if math.isnan(r["gpu_hours"]) else f"{r['gpu_hours']:.1f}"
        lines.append(
            f"| {DATASETS[r['dataset']].title} | {r['row']} | {r['runs']} | {r['epochs_per_run']} "
            f"| {r['epochs']:,} | {r['batch_size']} | {r['steps']:,} | {rate} | {hours} |"
        )
    hours = table["gpu_hours"]
    total_h = "n/a" if hours.isna().any() else f"{hours.sum():.1f}"
    lines.append(
        f"| **total** | | **{table['runs'].sum()}** | | **{table['epochs'].sum():,}** | "
        f"| **{table['steps'].sum():,}** | | **{total_h}** |"
    )
    return "\n".join(lines) + "\n"


def print_plan(params_file: Path) -> pd.DataFrame:
    """``kdecay plan``: print the plan of ``params_file``."""
    table = plan(load_config(params_file))
    print(render_plan(table), end="")
    return table
