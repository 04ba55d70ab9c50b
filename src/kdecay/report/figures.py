"""Summary + runs + the paper's appendix -> the figures (each as PDF and PNG).

* ``lr_schedules``: per row, the schedules the runs use (the original recipe and the k-decay
  schedule of every swept k, through :func:`kdecay.config.schedule_of`).
* ``ksweep``: final test error against k per dataset, one line per table row, with our
  original-recipe error and the paper's numbers overlaid (at the paper's k, a labelled tick
  even where that k is not swept).
* ``curves``: test error over epochs: original recipe, k = 1 control and our best k, per
  (dataset, row), 6.5 in wide for a page's text width (:mod:`kdecay.report.curves`).

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


def _multi_seed(cells: pd.DataFrame) -> bool:
    """Whether some cell has two seeds or more (then the sweep draws error bars)."""
    return bool((pd.to_numeric(cells["n"], errors="coerce") >= 2).any())


def claim_ks(appendix: pd.DataFrame, dataset: str, rows: list[str]) -> list[float]:
    """The k of every k-decay result the paper prints for ``dataset`` and ``rows``, sorted."""
    a = appendix[(appendix["dataset"] == dataset) & appendix["row"].isin(rows)]
    a = a[np.isfinite(a["kdecay_err"]) & np.isfinite(a["k"])]
    return sorted({float(k) for k in a["k"]})


def _ksweep_panel(
    ax: Axes, cells: pd.DataFrame, appendix: pd.DataFrame, key: tuple[str, list[str]], left: float
) -> tuple[list[float], list[float]]:
    """Draw one dataset's panel: ours per row, our original recipe, the paper's numbers.
    Return (the x of every point drawn, the k of each of our k-decay points)."""
    dataset, rows = key
    colours = mpl.colormaps["tab10"].colors
    multi_seed = _multi_seed(cells)
    xs: list[float] = []
    ours: list[float] = []
    for i, row in enumerate(rows):
        col, mk = colours[i % len(colours)], MARKERS[i % len(MARKERS)]
        c = _cell_rows(cells, dataset, row)
        kc = c[c["method"] != "original"].dropna(subset=["k"]).sort_values("k")
        if len(kc) and multi_seed:
            yerr = np.where(kc["n"] >= 2, kc["std_error"].fillna(0), 0.0)
            ax.errorbar(kc["k"], kc["mean_error"], yerr, color=col, marker=mk, ms=4, capsize=2)
        elif len(kc):
            ax.plot(kc["k"], kc["mean_error"], color=col, marker=mk, ms=4)
        ours += [float(k) for k in kc["k"]]
        xs += ours[-len(kc) :] if len(kc) else []
        for y in c.loc[c["method"] == "original", "mean_error"]:
            ax.axhline(y, color=col, ls="--", lw=0.9)
        a = appendix[(appendix["dataset"] == dataset) & (appendix["row"] == row)]
        for _, p in a.iterrows():
            if np.isfinite(p["kdecay_err"]) and np.isfinite(p["k"]):
                x = p["k"] + 0.04 * (i - (len(rows) - 1) / 2)  # equal paper values stay visible
                ax.plot(x, p["kdecay_err"], mfc=col, **STAR)
                xs.append(float(x))
            if np.isfinite(p["original_err"]):
                ax.plot(left, p["original_err"], mec=col, **PAPER_ORIG)
                xs.append(left)
    return xs, ours


def _k_axis(ax: Axes, xs: list[float], ticks: list[float], left: float | None) -> None:
    """An x-range over every drawn x and every tick; ticks labelled with their k at ``ticks``
    (the swept ks and the paper's), and "paper orig." at ``left`` unless it is None."""
    every = [*xs, *ticks, *([] if left is None else [left])]
    ax.set_xlim(min(every) - 0.3, max(every) + 0.3)
    labels = [f"{k:g}" for k in ticks]
    if left is None:
        ax.set_xticks(ticks, labels)
    else:
        ax.set_xticks([left, *ticks], ["paper\norig.", *labels])


def _ksweep_legend(fig: Figure, rows: list[str], multi_seed: bool, paper: bool) -> None:
    """The sweep's one legend: the rows' colours, then what each kind of mark means."""
    colours = mpl.colormaps["tab10"].colors
    handles = [
        Line2D([], [], color=colours[i % len(colours)], marker=MARKERS[i % len(MARKERS)], ms=4)
        for i in range(len(rows))
    ]
    ours_label = "mean ± std over seeds" if multi_seed else "one seed"
    labels = [*rows, f"ours: k-decay ({ours_label})", "ours: original recipe"]
    handles += [Line2D([], [], color="0.3", marker="o", ms=4), Line2D([], [], color="0.3", ls="--")]
    if paper:
        labels += ["paper: k-decay at its k", "paper: original recipe"]
        handles += [Line2D([], [], mfc="0.7", **STAR), Line2D([], [], mec="0.3", **PAPER_ORIG)]
    ncol = 3 if len(fig.axes) > 1 else 2
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol)


def _ksweep_figure(config: Config, cells: pd.DataFrame, appendix: pd.DataFrame) -> Figure:
    """Final test error against k, one panel per dataset, one line per row, with the paper's
    numbers. The x-range covers every point drawn (the paper's k may lie outside the swept
    ks) and every k drawn, swept or the paper's, is a labelled tick."""
    ks, rows, datasets = _ks(config), list(config.rows), config.datasets
    if config.synthetic:  # CIFAR numbers next to synthetic data mislead
        appendix = appendix.iloc[0:0]
    claims = {d: claim_ks(appendix, d, rows) for d in datasets}
    left = min([*ks, *(k for d in datasets for k in claims[d])]) - 0.5  # the paper's originals
    # at least 7 inches wide: the title and the legend fit even with one dataset
    fig = Figure(figsize=(max(3.5 * len(datasets) + 0.2, 7.0), 4.4), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets, strict=True):
        xs, ours = _ksweep_panel(ax, cells, appendix, (dataset, rows), left)
        failed = failed_cells(cells, dataset)
        if failed:
            _note(ax, "no result: " + "; ".join(failed), 0.12)
            print(f"figures: {dataset}: no result for " + "; ".join(failed))
        if not ours and not failed:
            _note(ax, "no runs yet" + (" (paper values only)" if len(appendix) else ""), 0.5)
        ax.set(title=DATASET_TITLES.get(dataset, dataset), xlabel="k")
        ax.set_ylabel("final test error (%)")
        ticks = sorted({*ks, *claims[dataset], *ours})  # claim cells' k too (claims.cells)
        _k_axis(ax, xs, ticks, left if len(appendix) else None)
        ax.grid(alpha=0.3)
    _ksweep_legend(fig, rows, _multi_seed(cells), bool(len(appendix)))
    fig.suptitle(figure_title(config, f"{datasets_title(config)}: final test error vs k"))
    return fig


def build_figures(
    config: Config, cells: pd.DataFrame, paper: pd.DataFrame, runs: Path
) -> dict[str, Figure]:
    """``{name: Figure}`` of lr_schedules, ksweep and curves, built in the report style
    (:data:`STYLE`): what :func:`write_figures` writes, for inspection."""
    with mpl.rc_context(STYLE):
        curves = curves_figure(config, cells, Path(runs))
        text = f"{datasets_title(config)}: test error during training (smallest seed)"
        curves.suptitle(figure_title(config, text))
        return {
            "lr_schedules": _lr_figure(config),
            "ksweep": _ksweep_figure(config, cells, paper),
            "curves": curves,
        }


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
        for name, fig in build_figures(config, cells, paper, Path(runs)).items():
            files |= _render(fig, out, name)
    atomic_write_many(files)  # all of them or none
    print(f"figures: wrote {', '.join(p.name for p in files)} under {out}")
    return list(files)
