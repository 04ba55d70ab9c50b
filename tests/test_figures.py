"""The figures: every PDF/PNG is written and valid, with partial, diverged and missing runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import pytest

from figure_runs import APPENDIX, REPO, figure_params, write_run
from kdecay.config import ConfigError, load_config
from kdecay.report.aggregate import aggregate
from kdecay.report.figures import SYNTHETIC_PREFIX, _lr_figure, figure_title, write_figures
from kdecay.report.tables import load_appendix

NAMES = ("lr_schedules", "ksweep", "curves")


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    write_run(root, "cifar10", "wrn16_8", "original", 0, 4.8)
    write_run(root, "cifar10", "wrn16_8", "original", 1, 4.9)
    write_run(root, "cifar10", "wrn16_8", "k1", 0, 4.5)
    write_run(root, "cifar10", "wrn16_8", "k1", 1, 4.7)  # n = 2: an error bar
    write_run(root, "cifar10", "wrn16_8", "k2", 1, 4.0)  # only seed 1: curves must fall back to it
    write_run(root, "cifar10", "wrn16_8", "k3", 0, 0.0, status="diverged")
    write_run(root, "cifar10", "wrn28_10_sgdr", "k1", 0, 3.9)
    write_run(root, "cifar10", "wrn28_10_sgdr", "k2", 0, 3.7)
    write_run(root, "cifar100", "preact_resnet110", "k3", 0, 24.0)  # no original run
    return root


def _check(paths: list[Path], out: Path) -> None:
    assert sorted(paths) == sorted(out / f"{n}.{e}" for n in NAMES for e in ("pdf", "png"))
    for p in paths:
        data = p.read_bytes()
        assert len(data) > 1000, p
        if p.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n")
            img = mpimg.imread(p)
            assert img.ndim == 3 and 300 < img.shape[1] < 3000 and 200 < img.shape[0] < 4000
        else:
            assert data.startswith(b"%PDF")


def _texts(ax: Any) -> list[str]:
    return [t.get_text() for t in ax.texts]


def _points(ax: Any) -> list[list[tuple[float, float]]]:
    """The (x, y) points of every drawn line of an axes (error-bar lines included)."""
    return [
        [(float(x), float(y)) for x, y in zip(*line.get_data(), strict=True)]
        for line in ax.get_lines()
    ]


def test_figures_with_partial_diverged_and_missing_runs(tmp_path: Path, runs: Path) -> None:
    from kdecay.report.curves import curves_figure
    from kdecay.report.figures import _ksweep_figure
    from kdecay.report.summary import read_summary

    params = figure_params(tmp_path)
    summary = tmp_path / "summary.csv"
    aggregate(runs, summary, params)
    out = tmp_path / "figs"
    _check(write_figures(summary, runs, APPENDIX, out, params_file=params), out)
    config, cells = load_config(params), read_summary(summary)[1]
    c10, c100 = _ksweep_figure(config, cells, load_appendix(APPENDIX)).axes
    # wrn16_8: k = 1 (mean of 2 seeds) and k = 2 drawn; the diverged k = 3 is no point
    assert [(1.0, pytest.approx(8.6)), (2.0, pytest.approx(8.0))] in _points(c10)  # final + 4
    assert not any(x == 3.0 and y <= 0.0 for line in _points(c10) for x, y in line)
    assert any("wrn16_8 k3: 1 diverged" in t for t in _texts(c10))  # said, not drawn as 0
    assert [(3.0, pytest.approx(28.0))] in _points(c100)  # the one CIFAR-100 run
    curves = curves_figure(config, cells, runs)
    by_title = {ax.get_title().split(" (best")[0]: ax for ax in curves.axes}
    wrn = by_title["CIFAR-10 / wrn16_8"]
    labels = [line.get_label().split(":")[0] for line in wrn.get_lines()]
    assert labels == ["original recipe", "k=1 (control)", "best k=2"]  # k2 from seed 1
    assert wrn.get_xlim()[0] == 1  # the first point is epoch 1
    assert "no runs yet" in _texts(by_title["CIFAR-10 / preact_resnet110"])


def test_figures_without_any_run(tmp_path: Path) -> None:
    from kdecay.report.curves import curves_figure
    from kdecay.report.figures import _ksweep_figure
    from kdecay.report.summary import read_summary

    params = figure_params(tmp_path, synthetic=True)
    summary = tmp_path / "summary.csv"
    aggregate(tmp_path / "none", summary, params)
    out = tmp_path / "figs"
    _check(write_figures(summary, tmp_path / "none", APPENDIX, out, params_file=params), out)
    config, cells = load_config(params), read_summary(summary)[1]
    fig = _ksweep_figure(config, cells, load_appendix(APPENDIX))
    for ax in fig.axes:
        assert _points(ax) == [] and _texts(ax) == ["no runs yet"]  # no CIFAR numbers either
    assert fig.get_suptitle().startswith(SYNTHETIC_PREFIX)
    for ax in curves_figure(config, cells, tmp_path / "none").axes:
        assert ax.get_lines() == [] and _texts(ax) == ["no runs yet"]


def test_figure_title_marks_synthetic_data() -> None:
    config = load_config(REPO / "params.yaml")
    synthetic = dataclasses.replace(config, synthetic=True)
    assert figure_title(synthetic, "CIFAR-10").startswith(SYNTHETIC_PREFIX)
    assert figure_title(config, "CIFAR-10") == "CIFAR-10"


def test_synthetic_flag_reaches_the_figure(tmp_path: Path) -> None:
    synthetic = _lr_figure(load_config(figure_params(tmp_path, synthetic=True)))
    assert synthetic.get_suptitle().startswith(SYNTHETIC_PREFIX)
    real = _lr_figure(load_config(figure_params(tmp_path)))
    assert "SYNTHETIC" not in real.get_suptitle()


def test_missing_inputs_raise_config_error(tmp_path: Path, runs: Path) -> None:
    params = figure_params(tmp_path)
    with pytest.raises(ConfigError, match="summary"):
        write_figures(tmp_path / "nope.csv", runs, APPENDIX, tmp_path / "f", params_file=params)
    summary = tmp_path / "summary.csv"
    aggregate(runs, summary, params)
    with pytest.raises(ConfigError, match=r"nope_appendix\.csv"):
        write_figures(
            summary, runs, tmp_path / "nope_appendix.csv", tmp_path / "f", params_file=params
        )


def _curves_fixture(tmp_path: Path, seeds: int = 1) -> tuple[Path, Path, Path]:
    """wrn16_8 on CIFAR-10 where the original recipe ends far above every k (the case the old
    clipping rule hid), k = 1 in between, k = 2 best."""
    params = figure_params(tmp_path, seeds=list(range(seeds)), datasets=["cifar10"])
    root = tmp_path / "runs"
    for seed in range(seeds):
        write_run(root, "cifar10", "wrn16_8", "original", seed, 60.0 + seed, epochs=20)
        write_run(root, "cifar10", "wrn16_8", "k1", seed, 8.0 + seed, epochs=20)
        write_run(root, "cifar10", "wrn16_8", "k2", seed, 2.0 + seed, epochs=20)
    summary = tmp_path / "summary.csv"
    aggregate(root, summary, params)
    return params, summary, root


def test_curves_never_hide_a_curve_and_keep_legends_off_the_data(tmp_path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from kdecay.report.curves import curves_figure
    from kdecay.report.summary import read_summary

    params, summary, root = _curves_fixture(tmp_path)
    fig = curves_figure(load_config(params), read_summary(summary)[1], root)
    FigureCanvasAgg(fig).draw()
    ax = next(a for a in fig.axes if a.get_title().startswith("CIFAR-10 / wrn16_8 "))
    labels = [line.get_label() for line in ax.get_lines()]
    assert any(label.startswith("original recipe") for label in labels)
    assert any(label.startswith("k=1 (control)") for label in labels)
    assert any(label.startswith("best k=2") for label in labels)
    lo, hi = ax.get_ylim()
    for line in ax.get_lines():  # every curve's second half lies inside the y-range
        y = line.get_ydata()[len(line.get_ydata()) // 2 :]
        assert ((y >= lo) & (y <= hi)).all(), (line.get_label(), lo, hi)
    legend = fig.legends[0].get_window_extent()  # one legend, beside no panel's data
    assert not any(legend.overlaps(a.get_window_extent()) for a in fig.axes)
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert all(float(t).is_integer() for t in ticks)


@pytest.mark.parametrize(("seeds", "label"), [(1, "one seed"), (2, "mean ± std over seeds")])
def test_ksweep_legend_says_std_only_with_several_seeds(tmp_path: Path, seeds, label) -> None:
    from kdecay.report.figures import _ksweep_figure
    from kdecay.report.summary import read_summary
    from kdecay.report.tables import load_appendix

    params, summary, _ = _curves_fixture(tmp_path, seeds)
    fig = _ksweep_figure(load_config(params), read_summary(summary)[1], load_appendix(APPENDIX))
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert f"ours: k-decay ({label})" in texts
    caps = [c for ax in fig.axes for c in ax.containers]
    assert bool(caps) == (seeds > 1)  # error bars only when there is a spread to show
    # one dataset: the figure stays wide enough for its title and legend (nothing clipped)
    assert fig.get_size_inches()[0] >= 7.0
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    for artist in (fig._suptitle, fig.legends[0]):
        box = artist.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= fig.bbox.width, artist


def test_lr_figure_draws_each_rows_own_schedules(tmp_path: Path) -> None:
    """The schedules the runs use, at the rows' real iterations per epoch: the step rows'
    original recipe is the step schedule (with its warm-up), k = 1 is the control."""
    import math

    from kdecay.config import build_schedule
    from kdecay.report.figures import _lr_figure, row_schedules

    params = load_config(figure_params(tmp_path))
    per_epoch, curves = row_schedules(params, "preact_resnet110")
    assert per_epoch == math.ceil(50_000 / 128)
    labels = [label for label, _ in curves]
    assert labels == ["original recipe", "k = 1 (control)", "k = 2", "k = 3"]
    spec = params.run_spec("cifar10", "preact_resnet110", "original", None, 0)
    step = build_schedule(spec, per_epoch)
    assert [curves[0][1](t) for t in (0, 399, 400, 82 * 391)] == [
        step(t) for t in (0, 399, 400, 82 * 391)
    ]
    assert curves[0][1](100) == pytest.approx(0.01)
    assert "original recipe" not in [
        label for label, _ in row_schedules(params, "wrn28_10_sgdr")[1]
    ]
    fig = _lr_figure(params)
    # the SGDR row has no separate original: its k = 1 line is SGDR, and the figure says so
    assert "SGDR row: its original recipe is SGDR itself" in fig.get_suptitle()
    sgdr_labels = [line.get_label() for line in fig.axes[2].get_lines()]
    assert "original recipe" not in sgdr_labels and "k = 1 (control = the original SGDR)" in (
        sgdr_labels
    )
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == [
        f"{row} ({391} it./epoch)" for row in ("preact_resnet110", "wrn16_8", "wrn28_10_sgdr")
    ]


def test_a_garbage_history_row_is_named_and_left_out(tmp_path: Path, capsys) -> None:
    """A history.csv row no trainer writes (a word for a number, an error of 150%, epoch 0 or
    past the run's epochs) is left out of the curves and named in one warning line; an empty
    test error (an epoch not evaluated) is no garbage."""
    from kdecay.report.plotdata import read_history

    path = tmp_path / "history.csv"
    path.write_text(
        "epoch,lr,test_error\n1,0.1,50\n2,0.1,\nx,0.1,40\n3,0.1,abc\n4,0.1,150\n0,0.1,9\n5,0.1,30\n"
        "9,0.1,20\n"
    )
    h = read_history(path, epochs=5)
    assert h is not None and h["epoch"].tolist() == [1, 5] and h["test_error"].tolist() == [50, 30]
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == f"warning: {path}: 5 row(s) not a trainer's (line 4, 5, 6, 7, 9), left out"
