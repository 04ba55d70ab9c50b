"""Reading what the pipeline wrote: a run's ``metrics.json``, a CSV, and the summary the
aggregate stage writes (run lines and cell lines). Every reader of the report package and the
sweep's adoption use these, so a damaged file is reported the same way everywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from kdecay.checks import ConfigError
from kdecay.config import Config

__all__ = ["CORRUPT", "SUMMARY_KEYS", "read_csv", "read_metrics", "read_summary"]

CORRUPT = {"status": "corrupt"}
SUMMARY_KEYS = ["dataset", "row", "method", "seed"]


def read_metrics(path: Path, quiet: bool = False) -> dict[str, Any] | None:
    """The JSON object in ``path`` (a ``metrics.json`` or ``run.json``); None if absent;
    :data:`CORRUPT` if unreadable (said in one line unless ``quiet``)."""
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        obj = None
    if not isinstance(obj, dict):
        if not quiet:
            print(f"aggregate: {path} is corrupt (not a JSON object): rerun that stage")
        return CORRUPT
    return obj


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


def _run_key(dataset: Any, row: Any, method: Any, seed: Any) -> tuple[str, str, str, int] | None:
    """The identity of a run line; None for a damaged line (a cut-off row, a non-number)."""
    try:
        return str(dataset), str(row), str(method), int(float(seed))
    except (TypeError, ValueError, OverflowError):
        return None


def read_summary(path: Path, config: Config | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(run lines, cell lines) of a summary CSV written by the aggregate stage.

    With ``config``, every run the pipeline trains must have its line: a truncated summary
    is an error naming the gap, never "not run" in a table.
    """
    if not path.is_file():
        raise ConfigError(
            f"summary {path} not found: run `kdecay aggregate` (or `dvc repro aggregate`) first"
        )
    df = read_csv(path, ["kind", *SUMMARY_KEYS, "status", "final_test_error"])
    runs, cell_lines = df[df["kind"] == "run"].copy(), df[df["kind"] == "cell"].copy()
    if config is not None:
        have = {_run_key(*r) for r in runs[SUMMARY_KEYS].itertuples(index=False)}
        want = [(r.dataset, r.row, r.method_dir, r.seed) for r in config.runs()]
        gap = [w for w in want if w not in have]
        if gap:
            shown = ", ".join(f"{d}/{r}/{m}/seed{seed}" for d, r, m, seed in gap[:4])
            raise ConfigError(
                f"summary {path} lacks {len(gap)} of the {len(want)} runs of params "
                f"(e.g. {shown}): it is truncated, damaged or stale; rerun `kdecay aggregate` "
                "(or `dvc repro aggregate`)"
            )
    return runs, cell_lines
