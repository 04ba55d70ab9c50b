"""Data files of the DVC plots (``dvc plots show``), written by the aggregate stage.

* ``<out>/curves/<dataset>-<row>.csv``: ``epoch, series, test_error``: the test-error curve of
  the original recipe and of every k, mean over the completed seeds, one chart per file with
  every curve overlaid;
* ``<out>/ksweep/<dataset>.csv``: ``k, series, test_error``: final test error (mean over
  seeds) against k, one series per table row.

dvc.yaml's top-level ``plots:`` draws them with ``paper/plots/series.json`` (colour = series).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kdecay.config import Config, run_folder
from kdecay.fileio import atomic_write_bytes
from kdecay.report.summary import read_csv

__all__ = ["read_history", "series_label", "write_plot_data"]


def read_history(path: Path, epochs: int | None = None) -> pd.DataFrame | None:
    """``(epoch, test_error)`` of the evaluated epochs of a history.csv; None if absent/empty.

    With ``epochs`` (a completed run's length) a history lacking epochs is reported in one
    line naming the file and the gap (a truncated file is drawn as far as it goes, never
    silently).
    """
    if not path.is_file():
        return None
    table = read_csv(path, ["epoch", "test_error"])
    h = table[["epoch", "test_error"]].apply(pd.to_numeric, errors="coerce")
    _drop_garbage(path, table, h, epochs)
    if epochs is not None:
        missing = sorted(set(range(1, epochs + 1)) - set(h["epoch"].dropna().astype(int)))
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
            print(f"warning: {path} lacks epoch(s) {shown} of {epochs}: truncated or damaged")
    h = h.dropna()
    return h if len(h) else None


def _drop_garbage(path: Path, raw: pd.DataFrame, h: pd.DataFrame, epochs: int | None) -> None:
    """Blank (in place) and name in one warning line the rows of ``h`` that no trainer
    writes: an epoch that is not a whole number >= 1 (or past ``epochs``), a test error that
    is not a number in [0, 100] (an empty cell is an epoch not evaluated, kept)."""
    epoch, error = h["epoch"], h["test_error"]
    written = raw["test_error"].astype(str).str.strip().ne("") & raw["test_error"].notna()
    bad_epoch = epoch.isna() | (epoch < 1) | (epoch % 1 != 0)
    if epochs is not None:
        bad_epoch |= epoch > epochs
    bad_error = (written & error.isna()) | (error < 0) | (error > 100)
    bad = bad_epoch | bad_error
    if bad.any():
        lines = ", ".join(str(i + 2) for i in bad[bad].index[:5]) + (
            " ..." if bad.sum() > 5 else ""
        )
        print(f"warning: {path}: {int(bad.sum())} row(s) not a trainer's (line {lines}), left out")
        h.loc[bad, :] = float("nan")


def series_label(method: str) -> str:
    """``original`` or ``k=1.5`` (from the run folder names ``original``/``k1.5``)."""
    return method if method == "original" else f"k={method[1:]}"


def _curves(runs: pd.DataFrame, runs_root: Path, dataset: str, row: str) -> pd.DataFrame:
    parts = []
    done = runs[(runs["dataset"] == dataset) & (runs["row"] == row)]
    for method, g in done[done["status"] == "completed"].groupby("method", sort=False):
        hist = [
            read_history(run_folder(runs_root, dataset, row, str(method), seed) / "history.csv")
            for seed in g["seed"]
        ]
        hist = [h for h in hist if h is not None]
        if hist:
            mean = pd.concat(hist).groupby("epoch", as_index=False)["test_error"].mean()
            parts.append(mean.assign(series=series_label(str(method))))
    cols = ["epoch", "series", "test_error"]
    return pd.concat(parts)[cols] if parts else pd.DataFrame(columns=cols)


def write_plot_data(
    runs: pd.DataFrame, cells: pd.DataFrame, runs_root: Path, config: Config, out: Path
) -> list[Path]:
    """Write the curves and k-sweep files of every dataset and row that has a completed run;
    return their paths. (A row without runs gets no file, so ``dvc plots show`` draws no
    empty chart for it.)"""
    written = []
    for dataset in config.datasets:
        for row in config.rows:
            curves = _curves(runs, runs_root, dataset, row)
            path = out / "curves" / f"{dataset}-{row}.csv"
            if curves.empty:
                path.unlink(missing_ok=True)
                continue
            atomic_write_bytes(path, curves.to_csv(index=False, float_format="%.4f").encode())
            written.append(path)
        c = cells[(cells["dataset"] == dataset) & (cells["method"] != "original")]
        sweep = c.dropna(subset=["mean_error"]).rename(
            columns={"row": "series", "mean_error": "test_error"}
        )[["k", "series", "test_error"]]
        path = out / "ksweep" / f"{dataset}.csv"
        atomic_write_bytes(path, sweep.to_csv(index=False, float_format="%.4f").encode())
        written.append(path)
    return written
