"""``kdecay plan --fuse G``: the sweep's tasks and GPU-hours with fused groups beside without.

The groups are those ``kdecay sweep --fuse G`` forms (:func:`kdecay.sweep.fusing.units` of
every run of the params). A group's seconds per epoch come from a measured report
(``--bench``: a ``kdecay bench --fuse G`` ``bench.json``, or ``kdecay proof``'s
``proof.json``): the row's model fused G ways was ``vs_ours_step`` times faster than the same
G runs one after another on the compiled step, so a group's epoch takes
``G x seconds_per_epoch(row) / vs_ours_step``. A group with fewer than G members is charged
as a full one (its kernels are as many; an upper bound). Rows without a measurement, a
measurement of another G, or one made on a CPU (a CPU speed-up says nothing about a GPU) get
no fused estimate, and the table says which.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from kdecay.checks import ConfigError, check_int, check_number
from kdecay.config import Config
from kdecay.data.datasets import DATASETS
from kdecay.sweep.fusing import Fuse, group_size

__all__ = ["fmt_hours", "fused_plan", "read_speedups", "render_fused_plan"]


def fmt_hours(hours: float | pd.Series) -> str:
    """Hours as ``12.3``; a sum over a column with any unknown (NaN) value is ``n/a``."""
    if isinstance(hours, pd.Series):
        return "n/a" if hours.isna().any() else f"{hours.sum():.1f}"
    return "n/a" if math.isnan(hours) else f"{hours:.1f}"


MAX_SPEEDUP = 1000.0  # G runs fused are at most G times faster; no G near 1,000 is run
MIN_SPEEDUP = 0.01  # a fused group 100x slower than its runs one by one is a broken report


def read_speedups(path: Path) -> tuple[dict[str, dict[str, Any]], str]:
    """Per row: ``{"members": G, "speedup": vs_ours_step}`` of a bench or proof report, and
    the device it was measured on (``cuda`` or ``cpu``)."""
    try:
        report = json.loads(path.read_text())
        if "steps" in report:  # proof.json: its bench step's result
            models = report["steps"]["bench"]["result"]["models"]
            device = "cuda" if "gpu" in report["steps"]["environment"]["result"] else "cpu"
        else:
            models, device = report["models"], report["device"]["type"]
        rows = {
            row: {
                "members": check_int(m["fused"]["members"], f"{path}: fused members", low=1),
                "speedup": check_number(
                    m["fused"]["vs_ours_step"],
                    f"{path}: fused speed-up",
                    low=MIN_SPEEDUP,
                    high=MAX_SPEEDUP,
                ),
            }
            for m in models
            if m.get("fused")
            for row in m["rows"]
        }
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:
        raise ConfigError(
            f"--bench {path}: not a readable bench.json or proof.json with fused measurements "
            f"({type(err).__name__}: {err}); write one with `kdecay bench --fuse G` or "
            "`kdecay proof`"
        ) from err
    return rows, device


def _group_counts(config: Config, fuse: Fuse) -> Counter[tuple[str, str]]:
    """Tasks per (dataset, row) when the sweep fuses up to ``fuse`` runs (per row)."""
    from kdecay.sweep.fusing import units
    from kdecay.sweep.stages import TrainStage

    stages = [
        TrainStage(run.stage, "", run.row, run.out_dir(), config.spec(run)) for run in config.runs()
    ]
    return Counter((u.stages[0].spec.dataset, u.stages[0].row) for u in units(stages, fuse))


def fused_plan(
    config: Config, fuse: int | str, speedups: dict[str, dict[str, Any]], device: str | None
) -> pd.DataFrame:
    """One line per (dataset, row): its G (``fuse``, or the row's ``sweep.fuse`` for
    ``auto``), runs, tasks, the measured speed-up used (NaN: none, with ``why``) and
    GPU-hours alone and fused."""
    groups: Fuse = config.sweep.fuse if fuse == "auto" else int(fuse)
    tasks = _group_counts(config, groups)
    runs = Counter((r.dataset, r.row) for r in config.runs())
    lines = []
    for dataset in config.datasets:
        for row, recipe in config.rows.items():
            rate = config.sweep.seconds_per_epoch.get(row, math.nan)
            n, t = runs[(dataset, row)], tasks[(dataset, row)]
            measured, g = speedups.get(row), group_size(groups, row)
            why, speedup = "", math.nan
            if t == n:
                why, speedup = "not fused", 1.0
            elif measured is None:
                why = "not measured"
            elif measured["members"] != g:
                why = f"measured with G = {measured['members']}"
            elif device != "cuda":
                why = f"measured on {device}"
            else:
                speedup = measured["speedup"]
            alone = n * recipe.epochs * rate / 3600
            members = g if t < n else 1  # a fused group is charged as G runs' epochs
            fused = t * members * recipe.epochs * rate / speedup / 3600
            lines.append(
                {
                    "dataset": dataset,
                    "row": row,
                    "members": members,
                    "runs": n,
                    "tasks": t,
                    "speedup": speedup,
                    "why": why,
                    "gpu_hours": alone,
                    "gpu_hours_fused": fused,
                }
            )
    return pd.DataFrame(lines)


def render_fused_plan(table: pd.DataFrame, fuse: int | str, source: str) -> str:
    """The fused plan as Markdown, with totals where every row has an estimate."""
    lines = [
        f"With `kdecay sweep --fuse {fuse}` (speed-ups from {source}):",
        "",
        "| dataset | row | G | runs | tasks | fused speed-up | GPU-h alone | GPU-h fused |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for _, r in table.iterrows():
        speed = r["why"] if r["why"] or math.isnan(r["speedup"]) else f"{r['speedup']:.2f}x"
        lines.append(
            f"| {DATASETS[r['dataset']].title} | {r['row']} | {r['members']} | {r['runs']} "
            f"| {r['tasks']} "
            f"| {speed} | {fmt_hours(r['gpu_hours'])} | {fmt_hours(r['gpu_hours_fused'])} |"
        )
    lines.append(
        f"| **total** | | | **{table['runs'].sum()}** | **{table['tasks'].sum()}** | "
        f"| **{fmt_hours(table['gpu_hours'])}** | **{fmt_hours(table['gpu_hours_fused'])}** |"
    )
    return "\n".join(lines) + "\n"
