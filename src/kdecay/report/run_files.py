"""A run's finished files (``metrics.json``, ``run.json``) checked before the aggregate stage
averages them: against a schema (types, ranges, the fields a completed run always writes)
and against the configuration (its epochs, its config hash), so a damaged or forged file is
reported as ``corrupt`` with one short reason naming the file and the field, never averaged.

The values copied into ``summary.csv`` are the checked ones only: a number that fails its
rule becomes None, and a string cannot start a spreadsheet formula (:func:`safe_cell`).
"""

from __future__ import annotations

import json
import math
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdecay.report.summary import CORRUPT, read_metrics

__all__ = ["RunFiles", "check_run", "read_object", "read_run", "safe_cell", "summary_values"]

FINISHED = ("completed", "diverged")
"""The statuses the trainer writes (:func:`kdecay.train.outputs.final_metrics`); it writes
metrics.json only once a run has ended, so a run in progress has none (``missing``)."""
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MAX_INT = 2**53  # exact as a float, and far inside Int64
REQUIRED = ("final_test_error", "best_test_error", "best_epoch", "epochs_completed")
"""What a completed run's metrics.json always holds (besides its status)."""
STRINGS = ("device", "config_hash")

_short = reprlib.Repr()
_short.maxstring = _short.maxother = _short.maxlong = 40


@dataclass(frozen=True)
class RunFiles:
    """What a run's folder says: its status, the reason it is corrupt ("" otherwise) and the
    checked values of the summary's columns."""

    status: str
    problem: str = ""
    values: dict[str, Any] = field(default_factory=dict)


def _rules(epochs: int) -> dict[str, tuple[type, float, float]]:
    """(kind, low, high) of every number copied into the summary, for a run of ``epochs``."""
    return {
        "final_test_error": (float, 0, 100),
        "best_test_error": (float, 0, 100),
        "best_epoch": (int, 1, epochs),
        "params": (int, 0, MAX_INT),
        "epochs": (int, 0, MAX_INT),
        "epochs_completed": (int, 0, epochs),
        "diverged_epoch": (int, 1, epochs),
        "wall_seconds": (float, 0, math.inf),
        "images_per_second": (float, 0, math.inf),
    }


def _shown(value: Any) -> str:
    """``value`` short, as its file spells it: NaN and Infinity as JSON writes them."""
    if isinstance(value, float) and not math.isfinite(value):
        return json.dumps(value)
    return _short.repr(value)


def _bad_number(name: str, value: Any, rule: tuple[type, float, float]) -> str:
    """Why ``value`` breaks ``rule`` ("" if it keeps it; None, an absent value, keeps it)."""
    kind, low, high = rule
    if value is None:
        return ""
    shown = _shown(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return (
            f"{name} {shown} is not a number"
            if kind is float
            else f"{name} {shown} is not an integer"
        )
    if kind is int and not isinstance(value, int):
        return f"{name} {shown} is not an integer"
    if not math.isfinite(value):
        return f"{name} {shown} is not finite"
    if not low <= value <= high:
        bound = f"below {low}" if math.isinf(high) else f"outside [{low}, {high}]"
        return f"{name} {shown} {bound}"
    return ""


def _bad_string(name: str, value: Any) -> str:
    """Why ``value`` cannot be a run's ``device``/``config_hash`` ("" if it can, or is None)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return f"{name} {_shown(value)} is not a string"
    if value.startswith(FORMULA_START):
        return f"{name} {_shown(value)} would start a spreadsheet formula"
    return ""


def safe_cell(value: str) -> str:
    """``value`` as a spreadsheet shows it as text: a leading apostrophe before ``= + - @``,
    a tab or a carriage return, which would otherwise start a formula."""
    return "'" + value if value.startswith(FORMULA_START) else value


def _source(name: str, metrics: dict[str, Any]) -> str:
    """The file a merged value came from (metrics.json wins, as in :func:`summary_values`)."""
    return "metrics.json" if name in metrics else "run.json"


def _check_hash(
    metrics: dict[str, Any], run_json: dict[str, Any] | None, expected: str, stage: str
) -> str:
    """run.json (and metrics.json, should it carry one) name this configuration's hash; a
    completed run always wrote run.json with its hash. "" if so."""
    retrain = f"retrain it: dvc repro --force {stage}" if stage else "retrain it"
    completed = metrics.get("status") == "completed"
    if run_json is None:
        return (
            f"run.json: absent, which a completed run always writes; {retrain}" if completed else ""
        )
    if "config_hash" not in run_json and completed:
        return f"run.json: no config_hash, which a completed run always writes; {retrain}"
    for name, obj in (("run.json", run_json), ("metrics.json", metrics)):
        if "config_hash" in obj and obj["config_hash"] != expected:
            return (
                f"{name}: config_hash {_shown(obj['config_hash'])} is not this "
                f"configuration's {expected} (trained with other params; {retrain})"
            )
    return ""


def _check_values(merged: dict[str, Any], metrics: dict[str, Any], epochs: int) -> str:
    """The first value of the summary's columns that breaks its rule, named ("" if none)."""
    for name, rule in _rules(epochs).items():
        reason = _bad_number(name, merged.get(name), rule)
        if reason:
            return f"{_source(name, metrics)}: {reason}"
    reason = _bad_string("device", merged.get("device"))
    return f"{_source('device', metrics)}: {reason}" if reason else ""


def _check_completed(merged: dict[str, Any], metrics: dict[str, Any], epochs: int) -> str:
    """A completed run has its errors, its best epoch and all ``epochs`` epochs ("" if so)."""
    for name in REQUIRED:
        if merged.get(name) is None:
            return f"metrics.json: no {name}, which a completed run always writes"
    done = merged["epochs_completed"]
    if done != epochs:
        return (
            f"{_source('epochs_completed', metrics)}: epochs_completed {done} is not the "
            f"configured {epochs} epochs"
        )
    return ""


def check_run(
    metrics: dict[str, Any] | None,
    run_json: dict[str, Any] | None,
    expected_hash: str,
    epochs: int,
    stage: str = "",
) -> tuple[str, str]:
    """(status, problem) of a run whose readable files are ``metrics`` and ``run_json``
    (None: absent), trained for ``epochs`` epochs with config hash ``expected_hash`` by the
    DVC stage ``stage``: ``missing`` without metrics, ``completed``/``diverged`` when every
    rule holds (problem ""), else ``corrupt`` and the first broken rule."""
    if metrics is None:
        return "missing", ""
    if "status" not in metrics:
        return "corrupt", "metrics.json: no status"
    status = metrics["status"]
    if not isinstance(status, str) or status not in FINISHED:
        return "corrupt", f"metrics.json: status {_shown(status)} is not completed or diverged"
    merged = {**(run_json or {}), **metrics}
    problem = _check_hash(metrics, run_json, expected_hash, stage) or _check_values(
        merged, metrics, epochs
    )
    if not problem and status == "completed":
        problem = _check_completed(merged, metrics, epochs)
    return ("corrupt", problem) if problem else (status, "")


def summary_values(
    metrics: dict[str, Any] | None, run_json: dict[str, Any] | None, epochs: int
) -> dict[str, Any]:
    """The summary's columns from a run's files (metrics.json over run.json): numbers that
    break their rule as None, strings made safe for a spreadsheet, anything else None."""
    merged = {**(run_json or {}), **(metrics or {})}
    out: dict[str, Any] = {
        name: None if _bad_number(name, merged.get(name), rule) else merged.get(name)
        for name, rule in _rules(epochs).items()
    }
    for name in STRINGS:
        value = merged.get(name)
        out[name] = safe_cell(value) if isinstance(value, str) else None
    return out


def read_object(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(the JSON object in ``path`` or None if absent, "") or (None, why it is unreadable),
    the why naming the file; never a traceback, even for a deeply nested or huge file."""
    try:
        obj = read_metrics(path, quiet=True)
    except (RecursionError, ValueError) as err:  # nested too deep; an int of 4300+ digits
        return None, f"{path.name}: not readable JSON ({type(err).__name__})"
    if obj is CORRUPT:
        return None, f"{path.name}: not a JSON object, damaged or cut off"
    return obj, ""


def read_run(folder: Path, expected_hash: str, epochs: int, stage: str = "") -> RunFiles:
    """The checked status, problem and summary values of the run folder ``folder``
    (:func:`check_run`, :func:`summary_values`). Without metrics.json the run is missing,
    whatever its run.json."""
    metrics, problem = read_object(folder / "metrics.json")
    run_json, run_problem = read_object(folder / "run.json")
    if not problem and metrics is not None:
        problem = run_problem
    if problem:
        status = "corrupt"
    else:
        status, problem = check_run(metrics, run_json, expected_hash, epochs, stage)
    return RunFiles(status, problem, summary_values(metrics, run_json, epochs))
