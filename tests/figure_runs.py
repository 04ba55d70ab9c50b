"""Designed runs for the figure tests (test_figures, test_figure_print): a narrowed copy of
params.yaml and run folders (history.csv, run.json + metrics.json) with chosen final errors."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import yaml

from kdecay.config import Config, RunSpec, load_config, run_folder
from kdecay.fileio import write_history, write_json
from tiny_runs import keep_rows, narrow

REPO = Path(__file__).resolve().parents[1]
APPENDIX = REPO / "paper" / "appendix_tables.csv"
ROWS = ("preact_resnet110", "wrn16_8", "wrn28_10_sgdr")  # fewer panels keep the tests fast


def figure_params(
    tmp_path: Path, rows: Sequence[str] = ROWS, ks: Sequence[float] = (1, 2, 3), **changes: object
) -> Path:
    """params.yaml with ``rows``, ``ks``, seeds 0 and 1 and no claim seeds, plus ``changes``
    (top-level keys; ``datasets`` also drops the other datasets' claims), written into
    ``tmp_path``; its path."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["kdecay"]["ks"] = list(ks)
    keep_rows(params, list(rows))
    narrow(params, seeds=[0, 1], claim_seeds=[])
    if "datasets" in changes:
        narrow(params, datasets=changes["datasets"])
    params.update(changes)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@lru_cache
def _config(params: Path) -> Config:
    return load_config(params)


def run_spec(params: Path, dataset: str, row: str, method: str, seed: int) -> RunSpec:
    """The spec the params file ``params`` gives the run of folder ``method`` (``original``,
    ``k<k>``)."""
    k = None if method == "original" else float(method.removeprefix("k"))
    return _config(params).run_spec(dataset, row, "original" if k is None else "kdecay", k, seed)


def write_run(
    runs: Path,
    dataset: str,
    row: str,
    method: str,
    seed: int,
    final: float,
    status: str = "completed",
    epochs: int = 10,
    params: Path = REPO / "params.yaml",
) -> None:
    """One run folder whose test error is ``final + 40 / epoch`` (best: the last), evaluated
    every other epoch and at the last; a diverged run ends in NaN and has no errors.
    run.json and metrics.json carry the config hash and epochs ``params`` gives the run (the
    history has ``epochs`` epochs all the same)."""
    spec = run_spec(params, dataset, row, method, seed)
    folder = run_folder(runs, dataset, row, method, seed)
    history = [
        {
            "epoch": e,
            "lr": 0.1,
            "train_loss": 1.0,
            "train_error": 50.0,
            "test_loss": 1.0,
            "seconds": 1.0,
            # every other epoch unevaluated (empty test_error), the last one always
            "test_error": (final + 40.0 / e) if (e % 2 == 0 or e == epochs) else None,
        }
        for e in range(1, epochs + 1)
    ]
    if status == "diverged":
        history[-1].update(train_loss=float("nan"), test_error=None, test_loss=None)
    write_history(folder / "history.csv", history)
    done = status == "completed"
    write_json(
        folder / "run.json",
        {"params": 1000, "epochs": spec.epochs, "device": "cpu", "config_hash": spec.config_hash()},
    )
    write_json(
        folder / "metrics.json",
        {
            "status": status,
            "final_test_error": history[-1]["test_error"] if done else None,
            "best_test_error": history[-1]["test_error"] if done else None,
            "best_epoch": epochs,
            "params": 1000,
            "epochs": spec.epochs,
            "epochs_completed": spec.epochs if done else epochs - 1,
            "diverged_epoch": None if done else epochs,
            "wall_seconds": 1.0,
            "images_per_second": 10.0,
            "device": "cpu",
            "config_hash": spec.config_hash(),
        },
    )
