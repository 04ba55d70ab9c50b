"""The training-curves figure: test error over epochs per (dataset, row), drawn from the runs'
history.csv (smallest completed seed): the original recipe, the k = 1 control and our best k.

Made to print: at most :data:`TEXT_WIDTH` inches wide (a page's text width, so it is never
scaled down and its text keeps the sizes of the report style, 7 pt and up), two panels a
line, every panel with its title (dataset / row, and the row's best k) and its y label, and
ONE legend for the whole figure, below the panels. Coinciding curves stay visible: each line
has its own dash pattern and its own hollow markers, placed at staggered positions, and the
solid line lies underneath.

No curve is ever hidden: the y-range covers the last three quarters of every drawn curve (the
first epochs may be clipped, never a whole line), the legend sits outside the panels, and
epoch ticks are integers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from kdecay.config import Config, run_folder
from kdecay.report.plotdata import read_history
from kdecay.report.summary import read_metrics
from kdecay.report.tables import DATASET_TITLES

__all__ = ["ROLES", "TEXT_WIDTH", "curves_figure", "visible_range"]

VISIBLE_FROM = 0.25  # every curve is fully visible from this fraction of its epochs on
TEXT_WIDTH = 6.5  # inches: the text width of a one-column page (letter or A4, 1 in margins)
PANEL_HEIGHT = 1.25  # inches per line of panels, title and tick labels included
COLUMNS = 2  # panels per line: one per dataset with both datasets
_MARK = {"ms": 3.5, "mfc": "white", "mew": 0.8}
# role -> legend label and line style, drawn bottom to top. The markers of the three roles sit
# at staggered fractions of each panel's diagonal: on identical curves none hides another.
ROLES: dict[str, str] = {
    "best": "our best k (its k: in the panel title)",
    "control": "k = 1 (control; SGDR row: SGDR itself)",
    "original": "original recipe",
}
_STYLES: dict[str, dict[str, Any]] = {
    "best": {"color": "tab:red", "ls": "-", "lw": 1.8, "marker": "o"},
    "control": {"color": "tab:blue", "ls": (0, (4, 2)), "lw": 1.0, "marker": "s"},
    "original": {"color": "black", "ls": (0, (1, 1.5)), "lw": 1.0, "marker": "^"},
}
_MARK_FROM = {"best": 0.0, "control": 0.04, "original": 0.08}  # then every 0.12 diagonal


def _style(role: str) -> dict[str, Any]:
    """The line style of a role, stacked in the order of :data:`ROLES` (first = bottom)."""
    every = (_MARK_FROM[role], 0.12)
    return {**_MARK, **_STYLES[role], "markevery": every, "zorder": 2 + list(ROLES).index(role)}


def _best_k(cells: pd.DataFrame, dataset: str, row: str) -> str | None:
    c = cells[(cells["dataset"] == dataset) & (cells["row"] == row)]
    c = c[(c["method"] != "original") & pd.to_numeric(c["mean_error"], errors="coerce").notna()]
    if c.empty:
        return None
    return str(c.loc[pd.to_numeric(c["mean_error"]).idxmin(), "method"])


def _lines(cells: pd.DataFrame, dataset: str, row: str, sgdr: bool) -> list[tuple[str, str, str]]:
    """(run folder, role, label): original, the k = 1 control and the best k, once each."""
    lines = [] if sgdr else [("original", "original", "original recipe")]
    lines.append(("k1", "control", "k=1 (SGDR, control)" if sgdr else "k=1 (control)"))
    best = _best_k(cells, dataset, row)
    if best is not None and best not in ("k1", "original"):
        lines.append((best, "best", f"best k={best[1:]}"))
    elif best is not None:
        lines = [(m, r, f"{lab} = best k" if m == best else lab) for m, r, lab in lines]
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
) -> set[str]:
    """Draw the curves of ``(dataset, row)`` into ``ax``; return the roles drawn."""
    dataset, row = key
    drawn, roles = [], set()
    sgdr = not config.rows[row].has_original_stage
    for method, role, label in _lines(cells, dataset, row, sgdr):
        h = _history(runs_root, config, (dataset, row, method))
        if h is not None:
            ax.plot(h["epoch"], h["test_error"], label=label, **_style(role))
            drawn.append(h)
            roles.add(role)
    if drawn:
        ax.set_ylim(*visible_range(drawn))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    else:
        ax.text(0.5, 0.6, "no runs yet", transform=ax.transAxes, ha="center", color="0.4")
        ax.set_yticks([])
    best = _best_k(cells, dataset, row)
    suffix = f" (best k = {best[1:]})" if best is not None else ""
    ax.set_title(f"{DATASET_TITLES.get(dataset, dataset)} / {row}{suffix}")
    ax.set_ylabel("test error (%)")
    ax.set_xlim(1, max(config.rows[row].epochs, 2))  # the first point is epoch 1
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    ax.grid(alpha=0.3)
    return roles


def curves_figure(config: Config, cells: pd.DataFrame, runs_root: Path) -> Figure:
    """One panel per (row, dataset), :data:`COLUMNS` a line (with both datasets: one column
    per dataset), and one legend for the figure below them."""
    keys = [(dataset, row) for row in config.rows for dataset in config.datasets]
    cols = min(COLUMNS, len(keys))
    lines = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(TEXT_WIDTH, PANEL_HEIGHT * lines + 0.9), layout="constrained")
    axes = fig.subplots(lines, cols, squeeze=False).ravel()
    roles: set[str] = set()
    for i, (ax, key) in enumerate(zip(axes, keys, strict=False)):
        roles |= _panel(ax, runs_root, config, cells, key)
        if i + cols >= len(keys):  # no panel below it
            ax.set_xlabel("epoch")
    for ax in axes[len(keys) :]:
        ax.remove()
    shown = [r for r in reversed(ROLES) if r in roles]  # original, control, best
    if shown:
        handles = [Line2D([], [], **{**_style(r), "markevery": None}) for r in shown]
        fig.legend(handles, [ROLES[r] for r in shown], loc="outside lower center",
                   ncol=len(shown), frameon=False, handlelength=2.5)  # fmt: skip
    return fig
