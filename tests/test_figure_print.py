"""The figures print: curves.png fits a 6.5 in text width with every text at 7 pt or more, one
legend for the figure, every panel labelled, and coinciding curves all visible; ksweep.png
draws and labels the paper's k even where it lies outside the swept ks.

Built from a small designed summary (two swept ks, the paper's k beyond them) through
:func:`kdecay.report.figures.build_figures`, the builder :func:`write_figures` renders."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib as mpl
import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.text import Text

from figure_runs import APPENDIX, figure_params, write_run
from kdecay.config import Config, load_config
from kdecay.report import curves
from kdecay.report.aggregate import aggregate
from kdecay.report.figures import DPI, STYLE, build_figures, write_figures
from kdecay.report.summary import read_summary
from kdecay.report.tables import load_appendix

ROWS = ("preact_resnet164", "wrn16_8", "wrn28_10_sgdr")  # the paper's k: 5, 3, 1.5 / 3.5, 1.5
KS = (1, 2)
TEXT_WIDTH = 6.5  # inches
SAME = "CIFAR-10 / wrn16_8"  # the panel whose three curves coincide
RUNS = [  # (dataset, row, run folder, final error); CIFAR-100 / wrn28_10_sgdr has no run
    ("cifar10", "wrn16_8", "original", 5.0),
    ("cifar10", "wrn16_8", "k1", 5.0),  # the very same curve as the original recipe
    ("cifar10", "wrn16_8", "k2", 4.99),  # and the best k, 0.01 below: one line on paper
    ("cifar10", "preact_resnet164", "original", 6.0),
    ("cifar10", "preact_resnet164", "k1", 5.5),
    ("cifar10", "preact_resnet164", "k2", 5.2),
    ("cifar10", "wrn28_10_sgdr", "k1", 4.0),
    ("cifar10", "wrn28_10_sgdr", "k2", 3.8),
    ("cifar100", "preact_resnet164", "original", 24.0),
    ("cifar100", "preact_resnet164", "k1", 23.5),
    ("cifar100", "preact_resnet164", "k2", 23.0),
    ("cifar100", "wrn16_8", "original", 21.0),
    ("cifar100", "wrn16_8", "k1", 20.5),  # best k = 1
    ("cifar100", "wrn16_8", "k2", 20.8),
]


@pytest.fixture(scope="module")
def design(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, pd.DataFrame, Path, Path]:
    """(config, summary cells, runs folder, params file) of the designed runs."""
    tmp = tmp_path_factory.mktemp("print")
    params = figure_params(tmp, rows=ROWS, ks=KS, seeds=[0])
    root = tmp / "runs"
    for dataset, row, method, final in RUNS:
        write_run(root, dataset, row, method, 0, final, epochs=20)
    aggregate(root, tmp / "summary.csv", params)
    config = load_config(params)
    return config, read_summary(tmp / "summary.csv", config)[1], root, params


@pytest.fixture(scope="module")
def figures(design: tuple[Config, pd.DataFrame, Path, Path]) -> dict[str, Figure]:
    """The figures as :func:`write_figures` renders them, drawn once."""
    config, cells, root, _ = design
    figs = build_figures(config, cells, load_appendix(APPENDIX), root)
    for fig in figs.values():
        FigureCanvasAgg(fig).draw()
    return figs


def _png(fig: Figure) -> np.ndarray:
    """The figure's RGB pixels (0-255) as the PNG is written (at :data:`DPI`)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return mpimg.imread(io.BytesIO(buf.getvalue()), format="png")[..., :3] * 255


def _inside(png: np.ndarray, ax: Axes) -> np.ndarray:
    """The pixels inside the frame of ``ax`` (its spines left out)."""
    h, w = png.shape[:2]
    box = ax.get_position()  # figure fraction: the same at every dpi
    top, bottom = int((1 - box.y1) * h) + 3, int((1 - box.y0) * h) - 3
    left, right = int(box.x0 * w) + 3, int(box.x1 * w) - 3
    return png[top:bottom, left:right]


def _pixels_of(pixels: np.ndarray, colour: object) -> int:
    """How many pixels have (about) ``colour``: a line drawn in it and not covered."""
    rgb = np.array(to_rgb(colour)) * 255
    return int((np.abs(pixels - rgb).max(axis=-1) <= 40).sum())


def test_curves_fit_the_text_width_with_one_legend(figures: dict[str, Figure]) -> None:
    fig = figures["curves"]
    width, height = fig.get_size_inches()
    assert width <= TEXT_WIDTH and height <= 9.0  # a page's text block: never scaled down
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == [curves.ROLES[r] for r in ("original", "control", "best")]
    legend = fig.legends[0].get_window_extent()
    assert not any(legend.overlaps(ax.get_window_extent()) for ax in fig.axes)
    titles = [ax.get_title() for ax in fig.axes]  # the colour "best k" names its k per panel
    assert "CIFAR-10 / wrn16_8 (best k = 2)" in titles
    assert "CIFAR-100 / wrn16_8 (best k = 1)" in titles


@pytest.mark.parametrize("name", ["curves", "ksweep"])
def test_every_text_is_7pt_or_more_and_inside_the_figure(
    figures: dict[str, Figure], name: str
) -> None:
    fig = figures[name]
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert len(texts) > 20  # titles, labels, tick labels, the legend
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < 7.0]
    assert not small
    box = fig.get_tightbbox(FigureCanvasAgg(fig).get_renderer())  # inches
    width, height = fig.get_size_inches()
    assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height, box


@pytest.mark.parametrize("name", ["curves", "ksweep"])
def test_every_panel_has_a_title_and_a_y_label(figures: dict[str, Figure], name: str) -> None:
    axes = figures[name].axes
    assert len(axes) == {"curves": len(ROWS) * 2, "ksweep": 2}[name]
    for ax in axes:
        assert ax.get_title().strip() and ax.get_ylabel().strip(), ax.get_title()


def test_ksweep_shows_and_labels_every_claim_k(
    figures: dict[str, Figure], design: tuple[Config, pd.DataFrame, Path, Path]
) -> None:
    paper = load_appendix(APPENDIX)
    for ax, dataset in zip(figures["ksweep"].axes, design[0].datasets, strict=True):
        a = paper[(paper["dataset"] == dataset) & paper["row"].isin(ROWS)].dropna(
            subset=["kdecay_err", "k"]
        )
        claims = sorted(set(a["k"]))
        assert max(claims) > max(KS)  # the case at stake: the paper's k beyond the sweep
        lo, hi = ax.get_xlim()
        drawn = [
            float(x)
            for line in ax.get_lines()
            if line.get_transform() is ax.transData  # not the axhlines (axes-wide x)
            for x in line.get_xdata()
        ]
        assert drawn and all(lo < x < hi for x in drawn), (dataset, (lo, hi), drawn)
        for k in claims:  # every claim point drawn, at its k
            assert any(abs(x - k) <= 0.15 for x in drawn), (dataset, k)
        shown = {t.get_text() for t in ax.get_xticklabels()} | {t.get_text() for t in ax.texts}
        assert {f"{k:g}" for k in claims} <= shown, (dataset, claims, shown)
        assert all(lo < t < hi for t in ax.get_xticks())


def test_coinciding_curves_stay_visible(
    figures: dict[str, Figure],
    design: tuple[Config, pd.DataFrame, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fig = figures["curves"]
    ax = next(a for a in fig.axes if a.get_title().startswith(SAME))
    colours = [line.get_color() for line in ax.get_lines()]
    assert len(colours) == 3  # original recipe, k = 1, best k: one curve on paper
    seen = {c: _pixels_of(_inside(_png(fig), ax), c) for c in colours}
    assert all(n >= 40 for n in seen.values()), seen
    # the measure sees hiding: the same lines drawn solid and unmarked leave only the top one
    config, cells, root, _ = design
    solid = {r: {"color": s["color"], "lw": 1.3, "marker": ""} for r, s in curves._STYLES.items()}
    monkeypatch.setattr(curves, "_STYLES", solid)
    with mpl.rc_context(STYLE):
        plain = curves.curves_figure(config, cells, root)
    ax = next(a for a in plain.axes if a.get_title().startswith(SAME))
    hidden = {c: _pixels_of(_inside(_png(plain), ax), c) for c in colours}
    assert sorted(n < 40 for n in hidden.values()) == [False, True, True], hidden


def test_the_written_png_is_text_width(
    tmp_path: Path, design: tuple[Config, pd.DataFrame, Path, Path]
) -> None:
    _, _, root, params = design
    write_figures(root.parent / "summary.csv", root, APPENDIX, tmp_path, params_file=params)
    png = mpimg.imread(tmp_path / "curves.png")
    assert png.shape[1] <= TEXT_WIDTH * DPI
