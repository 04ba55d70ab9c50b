"""Runs -> ``results/summary.csv``: one line per run and one per (dataset, row, method) cell.

The expected set of runs is :meth:`kdecay.config.Config.runs`, so a run that never finished
shows up as ``missing`` instead of silently shrinking a mean, and a run whose files fail
their checks (:mod:`kdecay.report.run_files`) as ``corrupt`` with its ``problem``. Errors are
test error rates in percent after the last epoch.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from kdecay.config import Config, load_config
from kdecay.fileio import atomic_write_bytes
from kdecay.report.run_files import read_run

RUN_COLUMNS = [
    "kind",
    "dataset",
    "row",
    "method",
    "k",
    "seed",
    "status",
    "final_test_error",
    "best_test_error",
    "best_epoch",
    "params",
    "epochs",
    "epochs_completed",
    "diverged_epoch",
    "wall_seconds",
    "images_per_second",
    "device",
    "config_hash",
    "problem",
]
INT_COLUMNS = [
    "seed",
    "best_epoch",
    "params",
    "epochs",
    "epochs_completed",
    "diverged_epoch",
    "n",
    "n_diverged",
    "n_missing",
    "n_corrupt",
]
CELL_COLUMNS = [
    "kind",
    "dataset",
    "row",
    "method",
    "k",
    "n",
    "mean_error",
    "std_error",
    "median_error",
    "min_error",
    "n_diverged",
    "n_missing",
    "n_corrupt",
    "mean_best_error",
    "params",
]


def collect(runs_root: Path, config: Config) -> pd.DataFrame:
    """One line per expected run, with status ``missing`` where no finished metrics exist and
    ``corrupt`` (and its ``problem``) where its files fail :func:`kdecay.report.run_files.read_run`:
    a damaged or forged file, or one of another configuration, is never averaged."""
    lines = []
    for r in config.runs():
        spec = config.spec(r)
        folder = r.out_dir(runs_root)
        files = read_run(folder, spec.config_hash(), spec.epochs, r.stage)
        if files.status == "corrupt":
            name, _, reason = files.problem.partition(": ")
            fix = (
                "" if "dvc repro" in reason else f"; rerun that stage: dvc repro --force {r.stage}"
            )
            print(f"aggregate: {folder / name} is corrupt: {reason}{fix}")
        run = {"dataset": r.dataset, "row": r.row, "k": r.k, "seed": r.seed, "method": r.method_dir}
        lines.append(
            {"kind": "run", **run, "status": files.status, **files.values, "problem": files.problem}
        )
    df = pd.DataFrame(lines, columns=RUN_COLUMNS)
    df.loc[df["status"] != "completed", ["final_test_error", "best_test_error"]] = math.nan
    return df


def cells(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean/std (n - 1)/median/count over seeds per (dataset, row, method), with
    diverged/missing counts."""
    out = []
    for (dataset, row, method), g in runs.groupby(["dataset", "row", "method"], sort=False):
        ok = g[g["status"] == "completed"]
        err = ok["final_test_error"].astype(float)
        out.append(
            {
                "kind": "cell",
                "dataset": dataset,
                "row": row,
                "method": method,
                "k": g["k"].iloc[0],
                "n": len(ok),
                "mean_error": err.mean() if len(ok) else math.nan,
                "std_error": err.std(ddof=1) if len(ok) >= 2 else math.nan,
                "median_error": err.median() if len(ok) else math.nan,
                "min_error": err.min() if len(ok) else math.nan,
                "n_diverged": int((g["status"] == "diverged").sum()),
                "n_missing": int((g["status"] == "missing").sum()),
                "n_corrupt": int((g["status"] == "corrupt").sum()),
                "mean_best_error": ok["best_test_error"].astype(float).mean()
                if len(ok)
                else math.nan,
                "params": ok["params"].dropna().iloc[0] if ok["params"].notna().any() else math.nan,
            }
        )
    return pd.DataFrame(out, columns=CELL_COLUMNS)


def aggregate(
    runs_root: Path,
    out: Path,
    params_file: Path = Path("params.yaml"),
    plots_dir: Path | None = None,
) -> pd.DataFrame:
    """Write the summary CSV (run lines, then cell lines) atomically and return it; with
    ``plots_dir``, also the data files of the DVC plots (:mod:`kdecay.report.plotdata`)."""
    config = load_config(params_file)
    runs = collect(runs_root, config)
    cell_lines = cells(runs)
    summary = pd.concat([runs, cell_lines], ignore_index=True, sort=False)
    for col in INT_COLUMNS:
        summary[col] = pd.to_numeric(summary[col]).round().astype("Int64")
    atomic_write_bytes(out, summary.to_csv(index=False).encode())  # floats round-trip exact
    if plots_dir is not None:
        from kdecay.report.plotdata import write_plot_data

        write_plot_data(runs, cell_lines, runs_root, config, plots_dir)
    done = int((runs["status"] == "completed").sum())
    print(
        f"aggregate: {done}/{len(runs)} runs completed, "
        f"{int((runs['status'] == 'diverged').sum())} diverged, "
        f"{int((runs['status'] == 'missing').sum())} missing, "
        f"{int((runs['status'] == 'corrupt').sum())} corrupt -> {out}"
    )
    return summary
