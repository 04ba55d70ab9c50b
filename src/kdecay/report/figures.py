"""Summary + runs + the paper's appendix -> the figures (each as PDF and PNG).

* ``lr_schedules``: per row, the schedules the runs use (the original recipe and the k-decay
  schedule of every swept k, through :func:`kdecay.config.schedule_of`).
* ``ksweep``: final test error against k per dataset, one line per table row, with our
  original-recipe error and the paper's numbers overlaid.
* ``curves``: test error over epochs: original recipe, k = 1 control and our best k, per
  (dataset, row) (:mod:`kdecay.report.curves`).

Built with ``matplotlib.figure.Figure`` (Agg rendering, no pyplot global state). Missing or
diverged runs are left out (never drawn as 0); panels without data say "no runs yet".
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from kdecay.config import Config, load_config, schedule_of
from kdecay.data.datasets import DATASETS
from kdecay.fileio import atomic_write_many
from kdecay.report.curves import curves_figure
from kdecay.report.summary import read_summary
from kdecay.report.tables import DATASET_TITLES, load_appendix
from kdecay.schedules import Schedule

SYNTHETIC_PREFIX = "SYNTHETIC DATA (smoke run) — "
DPI = 150
STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "figure.titlesize": 9,
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h")
STAR = {"ls": "none", "marker": "*", "ms": 10, "mec": "black", "mew": 0.5, "zorder": 5}
PAPER_ORIG = {"ls": "none", "marker": "<", "ms": 6, "mfc": "none", "mew": 1.2, "zorder": 5}


def figure_title(config: Config, text: str) -> str:
    """``text``, prefixed with a loud SYNTHETIC marker when params say ``synthetic: true``."""
    return (SYNTHETIC_PREFIX if config.synthetic else "") + text


def datasets_title(config: Config) -> str:
    """``CIFAR-10 / CIFAR-100`` for the datasets of params."""
    return " / ".join(DATASET_TITLES.get(d, d) for d in config.datasets)


def _render(fig: Figure, out: Path, name: str) -> dict[Path, bytes]:
    files = {}
    for ext in ("pdf", "png"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=DPI)
        files[out / f"{name}.{ext}"] = buf.getvalue()
    return files


def failed_cells(cells: pd.DataFrame, dataset: str) -> list[str]:
    """``row k=3: 1 diverged`` for every cell of ``dataset`` without a completed run."""
    out = []
    for _, c in cells[cells["dataset"] == dataset].iterrows():
        if int(c["n"]) == 0:
            kinds = [f"{int(c[f'n_{k}'])} {k}" for k in ("diverged", "corrupt") if c.get(f"n_{k}")]
            if kinds:
                out.append(f"{c['row']} {c['method']}: {', '.join(kinds)}")
    return out


def _note(ax: Axes, text: str, y: float = 0.5) -> None:
    """A grey note on a white box, drawn over the lines so that none hides it."""
    box = {"boxstyle": "round", "fc": "white", "ec": "0.8", "alpha": 0.9}
    ax.text(0.5, y, text, transform=ax.transAxes, ha="center", va="top", color="0.4", bbox=box,
            zorder=10, wrap=True)  # fmt: skip


def _ks(config: Config) -> list[float]:
    return sorted(config.kdecay.ks)


# ---------------------------------------------------------------------------------------------
# (a) the schedules


def row_schedules(config: Config, row: str) -> tuple[int, list[tuple[str, Schedule]]]:
    """(iterations per epoch, [(label, schedule)]) of a row: its original recipe and the
    k-decay schedule of every swept k, built by the code the runs use
    (:func:`kdecay.config.schedule_of`), at the row's real iterations per epoch. The SGDR
    row has no separate original: its k = 1 curve is SGDR, and its label says so."""
    dataset, recipe = config.datasets[0], config.rows[row]
    synthetic_images = config.smoke.train_images if config.synthetic else None
    images = synthetic_images or DATASETS[dataset].train_images
    per_epoch = math.ceil(images / recipe.batch_size)  # the smoke run's sets are smaller
    curves = []
    if recipe.has_original_stage:
        curves.append(("original recipe", schedule_of(recipe.original, recipe.epochs, per_epoch)))
    control = " (control)" if recipe.has_original_stage else " (control = the original SGDR)"
    for k in _ks(config):
        label = f"k = {k:g}" + (control if k == 1.0 else "")
        kd = recipe.kdecay_schedule(config.kdecay, k)
        curves.append((label, schedule_of(kd, recipe.epochs, per_epoch)))
    return per_epoch, curves


def _lr_figure(config: Config) -> Figure:
    rows, ks = list(config.rows), _ks(config)
    cmap = mpl.colormaps["viridis"]
    colour = {f"k = {k:g}": cmap(0.1 + 0.8 * i / max(len(ks) - 1, 1)) for i, k in enumerate(ks)}
    cols = 2 if len(rows) > 1 else 1
    fig = Figure(figsize=(7.0, 2.2 * math.ceil(len(rows) / cols) + 0.8), layout="constrained")
    axes = fig.subplots(math.ceil(len(rows) / cols), cols, squeeze=False).ravel()
    for ax, row in zip(axes, rows, strict=False):
        per_epoch, curves = row_schedules(config, row)
        epochs = config.rows[row].epochs
        t = np.unique(np.linspace(0, epochs * per_epoch, 800).astype(int))
        for label, f in curves:
            style = {"color": "black", "lw": 1.6, "zorder": 3} if label.startswith("orig") else {
                "color": colour[label.split(" (")[0]], "lw": 1.0}  # fmt: skip
            ax.plot(t / per_epoch, [f(x) for x in t], label=label, **style)
        ax.set(title=f"{row} ({per_epoch} it./epoch)", xlabel="epoch", ylabel="learning rate")
        ax.set_xlim(0, epochs)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    for ax in axes[len(rows) :]:
        ax.set_visible(False)
    by_label: dict[str, Line2D] = {}
    for ax in axes[: len(rows)]:  # every label of every panel, once
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            by_label.setdefault(
                label.split(" (")[0] if label.startswith("k = 1 ") else label, handle
            )
    labels = [label + (" (control)" if label == "k = 1" else "") for label in by_label]
    fig.legend(
        list(by_label.values()), labels, loc="outside lower center", ncol=min(len(labels), 4)
    )
    text = "LR schedules of the runs: original recipe and k-decay, per row"
    if any(not config.rows[r].has_original_stage for r in rows):
        text += "\n(SGDR row: its original recipe is SGDR itself, the k = 1 line)"
    fig.suptitle(figure_title(config, text))
    return fig


# ---------------------------------------------------------------------------------------------
# (b) error against k


def _cell_rows(cells: pd.DataFrame, dataset: str, row: str) -> pd.DataFrame:
    c = cells[(cells["dataset"] == dataset) & (cells["row"] == row)].copy()
    for col in ("k", "n", "mean_error", "std_error"):
        c[col] = pd.to_numeric(c[col], errors="coerce")
    return c[np.isfinite(c["mean_error"])]


def _ksweep_figure(config: Config, cells: pd.DataFrame, appendix: pd.DataFrame) -> Figure:
    ks, rows, datasets = _ks(config), list(config.rows), config.datasets
    colours = mpl.colormaps["tab10"].colors
    if config.synthetic:  # CIFAR numbers next to synthetic data mislead
        appendix = appendix.iloc[0:0]
    left = ks[0] - 0.5  # x of the paper's original-recipe markers
    n = pd.to_numeric(cells["n"], errors="coerce")
    multi_seed = bool((n >= 2).any())
    # at least 7 inches wide: the title and the legend fit even with one dataset
    fig = Figure(figsize=(max(3.5 * len(datasets) + 0.2, 7.0), 4.4), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets, strict=True):
        ours = 0
        for i, row in enumerate(rows):
            col, mk = colours[i % len(colours)], MARKERS[i % len(MARKERS)]
            c = _cell_rows(cells, dataset, row)
            kc = c[c["method"] != "original"].dropna(subset=["k"]).sort_values("k")
            if len(kc) and multi_seed:
                yerr = np.where(kc["n"] >= 2, kc["std_error"].fillna(0), 0.0)
                ax.errorbar(kc["k"], kc["mean_error"], yerr, color=col, marker=mk, ms=4, capsize=2)
            elif len(kc):
                ax.plot(kc["k"], kc["mean_error"], color=col, marker=mk, ms=4)
            ours += len(kc)
            for y in c.loc[c["method"] == "original", "mean_error"]:
                ax.axhline(y, color=col, ls="--", lw=0.9)
            a = appendix[(appendix["dataset"] == dataset) & (appendix["row"] == row)]
            for _, p in a.iterrows():
                if np.isfinite(p["kdecay_err"]) and np.isfinite(p["k"]):
                    dx = 0.04 * (i - (len(rows) - 1) / 2)  # equal paper values stay visible
                    ax.plot(p["k"] + dx, p["kdecay_err"], mfc=col, **STAR)
                if np.isfinite(p["original_err"]):
                    ax.plot(left, p["original_err"], mec=col, **PAPER_ORIG)
        failed = failed_cells(cells, dataset)
        if failed:
            _note(ax, "no result: " + "; ".join(failed), 0.12)
            print(f"figures: {dataset}: no result for " + "; ".join(failed))
        if not ours and not failed:
            _note(ax, "no runs yet" + (" (paper values only)" if len(appendix) else ""), 0.5)
        ax.set(
            title=DATASET_TITLES.get(dataset, dataset),
            xlabel="k",
            ylabel="final test error (%)",
            xlim=(left - 0.3, ks[-1] + 0.3),
        )
        if len(appendix):
            ax.set_xticks([left, *ks], ["paper\norig.", *(f"{k:g}" for k in ks)])
        else:
            ax.set_xticks(ks, [f"{k:g}" for k in ks])
            ax.set_xlim(ks[0] - 0.3, ks[-1] + 0.3)
        ax.grid(alpha=0.3)
    handles = [
        Line2D([], [], color=colours[i % len(colours)], marker=MARKERS[i % len(MARKERS)], ms=4)
        for i in range(len(rows))
    ]
    ours_label = "mean ± std over seeds" if multi_seed else "one seed"
    labels = [*rows, f"ours: k-decay ({ours_label})", "ours: original recipe"]
    handles += [Line2D([], [], color="0.3", marker="o", ms=4), Line2D([], [], color="0.3", ls="--")]
    if len(appendix):
        labels += ["paper: k-decay at its k", "paper: original recipe"]
        handles += [Line2D([], [], mfc="0.7", **STAR), Line2D([], [], mec="0.3", **PAPER_ORIG)]
    fig.legend(handles, labels, loc="outside lower center", ncol=3 if len(datasets) > 1 else 2)
    fig.suptitle(figure_title(config, f"{datasets_title(config)}: final test error vs k"))
    return fig


def write_figures(
    summary: Path, runs: Path, appendix: Path, out: Path, params_file: Path = Path("params.yaml")
) -> list[Path]:
    """Write lr_schedules, ksweep and curves (PDF + PNG each) into ``out``; return the paths.

    Raises :class:`kdecay.config.ConfigError` when the summary, appendix or params file is
    missing.
    """
    config = load_config(params_file)
    _, cells = read_summary(Path(summary), config)
    paper = load_appendix(Path(appendix))
    out = Path(out)
    files: dict[Path, bytes] = {}
    with mpl.rc_context(STYLE):
        files |= _render(_lr_figure(config), out, "lr_schedules")
        files |= _render(_ksweep_figure(config, cells, paper), out, "ksweep")
        curves = curves_figure(config, cells, Path(runs))
        text = f"{datasets_title(config)}: test error during training (smallest seed)"
        curves.suptitle(figure_title(config, text))
        files |= _render(curves, out, "curves")
    atomic_write_many(files)  # all of them or none
    print(f"figures: wrote {', '.join(p.name for p in files)} under {out}")
    return list(files)
