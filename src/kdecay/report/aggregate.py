"""Runs -> ``results/summary.csv``: one line per run and one per (dataset, row, method) cell.

The expected set of runs comes from params (datasets x rows x methods x seeds), so a run that
never finished shows up as ``missing`` instead of silently shrinking a mean. Errors are test
error rates in percent after the last epoch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from kdecay.checks import ConfigError
from kdecay.config import load_params, method_dir, row_names
from kdecay.fileio import atomic_write_bytes

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
    "min_error",
    "n_diverged",
    "n_missing",
    "n_corrupt",
    "mean_best_error",
    "params",
]


def is_original_sgdr(row: dict[str, Any]) -> bool:
    """The SGDR row has no separate original stage: its k = 1 k-decay run *is* SGDR."""
    return row.get("original", {}).get("schedule") == "sgdr"


def expected_runs(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every (dataset, row, method, k, seed) the pipeline trains, in table order."""
    ks = params.get("kdecay", {}).get("ks")
    if not isinstance(ks, list) or not ks:
        raise ConfigError("kdecay.ks must be a non-empty list of k values")
    seeds = params.get("seeds", [0])
    out = []
    for dataset in params.get("datasets", []):
        for row in row_names(params):
            methods: list[tuple[str, float | None]] = []
            if not is_original_sgdr(params["rows"][row]):
                methods.append(("original", None))
            methods += [("kdecay", float(k)) for k in ks]
            for method, k in methods:
                for seed in seeds:
                    out.append(
                        {
                            "dataset": dataset,
                            "row": row,
                            "k": k,
                            "seed": int(seed),
                            "method": method_dir(method, k),
                        }
                    )
    return out


def run_dir(runs_root: Path, run: dict[str, Any]) -> Path:
    """``<runs>/<dataset>/<row>/<original|k..>/seed<seed>`` (the layout of dvc.yaml)."""
    return runs_root / run["dataset"] / run["row"] / run["method"] / f"seed{run['seed']}"


CORRUPT = {"status": "corrupt"}


def _read_metrics(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if absent; :data:`CORRUPT` if unreadable."""
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        obj = None
    if not isinstance(obj, dict):
        print(f"aggregate: {path} is corrupt (not a JSON object): rerun that stage")
        return CORRUPT
    return obj


def collect(runs_root: Path, params: dict[str, Any]) -> pd.DataFrame:
    """One line per expected run, with status ``missing`` where no finished metrics exist."""
    lines = []
    for run in expected_runs(params):
        folder = run_dir(runs_root, run)
        m = {
            **(_read_metrics(folder / "run.json") or {}),
            **(_read_metrics(folder / "metrics.json") or {}),
        }
        status = m.get("status", "missing")
        if status not in ("completed", "diverged", "corrupt"):
            status = "missing"  # e.g. metrics of a run still in progress
        lines.append(
            {
                "kind": "run",
                **run,
                "status": status,
                **{
                    c: m.get(c) for c in RUN_COLUMNS if c not in run and c not in ("kind", "status")
                },
            }
        )
    df = pd.DataFrame(lines, columns=RUN_COLUMNS)
    df.loc[df["status"] != "completed", ["final_test_error", "best_test_error"]] = math.nan
    return df


def cells(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean/std/count over seeds per (dataset, row, method), with diverged/missing counts."""
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
    params = load_params(params_file)
    runs = collect(runs_root, params)
    cell_lines = cells(runs)
    summary = pd.concat([runs, cell_lines], ignore_index=True, sort=False)
    for col in INT_COLUMNS:
        summary[col] = pd.to_numeric(summary[col]).round().astype("Int64")
    atomic_write_bytes(out, summary.to_csv(index=False, float_format="%.4f").encode())
    if plots_dir is not None:
        from kdecay.report.plotdata import write_plot_data

        write_plot_data(runs, cell_lines, runs_root, params, plots_dir)
    done = int((runs["status"] == "completed").sum())
    print(
        f"aggregate: {done}/{len(runs)} runs completed, "
        f"{int((runs['status'] == 'diverged').sum())} diverged, "
        f"{int((runs['status'] == 'missing').sum())} missing, "
        f"{int((runs['status'] == 'corrupt').sum())} corrupt -> {out}"
    )
    return summary


SUMMARY_KEYS = ["dataset", "row", "method", "seed"]


def read_summary(
    path: Path, params: dict[str, Any] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(run lines, cell lines) of a summary CSV written by :func:`aggregate`.

    With ``params``, every run the pipeline trains must have its line: a truncated summary
    is an error naming the gap, never "not run" in a table.
    """
    if not path.is_file():
        raise ConfigError(
            f"summary {path} not found: run `kdecay aggregate` (or `dvc repro aggregate`) first"
        )
    df = read_csv(path, ["kind", *SUMMARY_KEYS, "status", "final_test_error"])
    runs, cell_lines = df[df["kind"] == "run"].copy(), df[df["kind"] == "cell"].copy()
    if params is not None:
        have = {_run_key(*r) for r in runs[SUMMARY_KEYS].itertuples(index=False)}
        want = [_run_key(*(r[k] for k in SUMMARY_KEYS)) for r in expected_runs(params)]
        gap = [w for w in want if w not in have]
        if gap:
            shown = ", ".join(f"{d}/{r}/{m}/seed{seed}" for d, r, m, seed in gap[:4])
            raise ConfigError(
                f"summary {path} lacks {len(gap)} of the {len(want)} runs of params "
                f"(e.g. {shown}): it is truncated or stale; rerun `kdecay aggregate` (or "
                "`dvc repro aggregate`)"
            )
    return runs, cell_lines


def _run_key(dataset: Any, row: Any, method: Any, seed: Any) -> tuple[str, str, str, int]:
    return str(dataset), str(row), str(method), int(float(seed))


def read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    """A CSV with at least ``columns``; a damaged or empty file is a ConfigError naming it."""
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not a readable CSV ({err}): regenerate it") from err
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ConfigError(f"{path} lacks the column(s) {', '.join(missing)}: regenerate it")
    return df
