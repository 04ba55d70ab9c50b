"""The training-curves figure: test error over epochs per (dataset, row), drawn from the runs'
history.csv (smallest completed seed): the original recipe, the k = 1 control and our best k.

No curve is ever hidden: the y-range covers the last three quarters of every drawn curve (the
first epochs may be clipped, never a whole line), legends sit beside the axes, not over the
data, and epoch ticks are integers.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from kdecay.config import Config, run_folder
from kdecay.report.plotdata import read_history
from kdecay.report.summary import read_metrics
from kdecay.report.tables import DATASET_TITLES

__all__ = ["curves_figure", "visible_range"]

VISIBLE_FROM = 0.25  # every curve is fully visible from this fraction of its epochs on


def _best_k(cells: pd.DataFrame, dataset: str, row: str) -> str | None:
    c = cells[(cells["dataset"] == dataset) & (cells["row"] == row)]
    c = c[(c["method"] != "original") & pd.to_numeric(c["mean_error"], errors="coerce").notna()]
    if c.empty:
        return None
    return str(c.loc[pd.to_numeric(c["mean_error"]).idxmin(), "method"])


def _lines(cells: pd.DataFrame, dataset: str, row: str, sgdr: bool) -> list[tuple[str, str, str]]:
    """(run folder, colour, label): original, the k = 1 control and the best k, once each."""
    lines = [] if sgdr else [("original", "0.2", "original recipe")]
    lines.append(("k1", "tab:blue", "k=1 (SGDR, control)" if sgdr else "k=1 (control)"))
    best = _best_k(cells, dataset, row)
    if best is not None and best not in ("k1", "original"):
        lines.append((best, "tab:red", f"best k={best[1:]}"))
    elif best is not None:
        lines = [(m, c, f"{lab} = best k" if m == best else lab) for m, c, lab in lines]
    return lines


def _history(runs_root: Path, config: Config, key: tuple[str, str, str]) -> pd.DataFrame | None:
    """The history of the smallest seed of ``(dataset, row, method folder)`` that has one."""
    for seed in sorted(config.seeds):
        folder = run_folder(runs_root, *key, seed)
        completed = (read_metrics(folder / "metrics.json", quiet=True) or {}).get("status")
        epochs = config.rows[key[1]].epochs if completed == "completed" else None
        h = read_history(folder / "history.csv", epochs)
        if h is not None:
            return h
    return None


def visible_range(curves: list[pd.DataFrame]) -> tuple[float, float]:
    """y-limits showing every curve from :data:`VISIBLE_FROM` of its epochs on."""
    lo = min(float(h["test_error"].min()) for h in curves)
    hi = max(
        float(h.loc[h["epoch"] >= VISIBLE_FROM * h["epoch"].max(), "test_error"].max())
        for h in curves
    )
    pad = 0.05 * (hi - lo) + 0.1
    return max(0.0, lo - pad), hi + pad


def _panel(
    ax: Axes, runs_root: Path, config: Config, cells: pd.DataFrame, key: tuple[str, str]
) -> None:
    dataset, row = key
    drawn = []
    sgdr = not config.rows[row].has_original_stage
    for method, colour, label in _lines(cells, dataset, row, sgdr):
        h = _history(runs_root, config, (dataset, row, method))
        if h is None:
            continue
        err = h["test_error"]
        last = f"{err.iloc[-1]:.2f}% @ ep {h['epoch'].iloc[-1]:g}"
        ax.plot(h["epoch"], err, color=colour, lw=1.0, label=f"{label}: {last}")
        drawn.append(h)
    if drawn:
        ax.set_ylim(*visible_range(drawn))
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False)
    else:
        ax.text(0.5, 0.6, "no runs yet", transform=ax.transAxes, ha="center", color="0.4")
        ax.set_yticks([])
    ax.set_title(f"{DATASET_TITLES.get(dataset, dataset)} / {row}")
    ax.set_xlim(1, max(config.rows[row].epochs, 2))  # the first point is epoch 1
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def curves_figure(config: Config, cells: pd.DataFrame, runs_root: Path) -> Figure:
    """One panel per (row, dataset), legends to the right of each panel."""
    rows, datasets = list(config.rows), config.datasets
    fig = Figure(figsize=(5.6 * len(datasets), 1.7 * len(rows) + 0.6), layout="constrained")
    axes = fig.subplots(len(rows), len(datasets), squeeze=False)
    for i, row in enumerate(rows):
        for j, dataset in enumerate(datasets):
            _panel(axes[i][j], runs_root, config, cells, (dataset, row))
            if i == len(rows) - 1:
                axes[i][j].set_xlabel("epoch")
            if j == 0:
                axes[i][j].set_ylabel("test error (%)")
    return fig
