"""``kdecay check``: validate a params file and the machine before ``dvc repro`` starts.

Runs in seconds, before anything is downloaded: every list-valued key DVC expands into
stages (``datasets``, ``seeds``, ``kdecay.ks``) is a non-empty list of valid values, every run
of the pipeline resolves (:func:`kdecay.config.resolve_run`), every row's model spec builds,
and, without a GPU, no full-size run would start weeks of CPU training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from kdecay.checks import ConfigError, check_int, check_number
from kdecay.config import load_params, resolve_run, row_names, train_options
from kdecay.data.datasets import DATASETS
from kdecay.models import build_from_spec, forward_macs
from kdecay.report.aggregate import expected_runs
from kdecay.train.provenance import estimated_cpu_hours
from kdecay.train.runtime import select_device

__all__ = ["check_params", "preflight"]


def _list(params: dict[str, Any], key: str) -> list[Any]:
    node: Any = params
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, list) or not node:
        raise ConfigError(
            f"{key} must be a non-empty YAML list (e.g. {key}: [1, 2]), got {node!r}: DVC "
            "expands it into one stage per value"
        )
    return node


def check_lists(params: dict[str, Any]) -> None:
    """``datasets``, ``seeds`` and ``kdecay.ks`` are non-empty lists of valid values."""
    for d in _list(params, "datasets"):
        if d not in DATASETS:
            raise ConfigError(
                f"datasets: {d!r} is not supported; this pipeline reproduces "
                f"{', '.join(DATASETS)} (the datasets of the paper's tables)"
            )
    for s in _list(params, "seeds"):
        check_int(s, "seeds: each seed", low=0, error=ConfigError)
    for k in _list(params, "kdecay.ks"):
        check_number(k, "kdecay.ks: each k", low=0, low_open=True, error=ConfigError)


def _row_models(params: dict[str, Any]) -> dict[str, int]:
    """Forward MACs of every row's model (built on the meta device: no memory, no time)."""
    macs = {}
    for row in row_names(params):
        spec = params["rows"][row].get("model")
        try:
            with torch.device("meta"):
                model = build_from_spec(spec, 10)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"rows.{row}.model: {err}") from err
        macs[row] = forward_macs(model)
    return macs


def check_save_weights(params: dict[str, Any], dvc_yaml: Path = Path("dvc.yaml")) -> None:
    """The pipeline tracks every run's ``model.pt``: ``train.save_weights: false`` would make
    each training stage fail DVC's output check after hours of training."""
    if train_options(params).save_weights or not dvc_yaml.is_file():
        return
    if "model.pt" in dvc_yaml.read_text():
        raise ConfigError(
            "train.save_weights is false, but dvc.yaml tracks each run's model.pt (a DVC "
            "output): set train.save_weights: true, or remove the model.pt lines from "
            "dvc.yaml's training stages"
        )


def check_params(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every check that needs no data; returns the expected runs."""
    check_lists(params)
    check_save_weights(params)
    runs = expected_runs(params)
    for run in runs:
        method = "original" if run["method"] == "original" else "kdecay"
        resolve_run(params, run["dataset"], run["row"], method, run["k"], run["seed"])
    return runs


def _check_machine(
    params: dict[str, Any], runs: list[dict[str, Any]], macs: dict[str, int]
) -> None:
    """Without CUDA and with ``train.device: auto``, refuse runs over train.cpu_max_hours."""
    first = runs[0]
    options = resolve_run(params, first["dataset"], first["row"], "kdecay", 1.0, 0).train
    if select_device(options.device).type == "cuda" or options.device != "auto":
        return
    too_long = {}
    for row in {r["row"] for r in runs}:
        epochs = resolve_run(params, first["dataset"], row, "kdecay", 1.0, 0).epochs
        images = DATASETS[first["dataset"]].train_images
        hours = estimated_cpu_hours(macs[row], images, epochs)
        if hours > options.cpu_max_hours:
            too_long[row] = hours
    if too_long:
        worst = max(too_long, key=too_long.get)
        total = sum(too_long[r["row"]] for r in runs if r["row"] in too_long)
        raise ConfigError(
            f"no GPU (CUDA) is visible, and {sum(r['row'] in too_long for r in runs)} runs of "
            f"this params file are full-size (rows.{worst}: about {too_long[worst]:.0f} "
            f"CPU-hours per run; about {total:.0f} CPU-hours in all, > train.cpu_max_hours = "
            f"{options.cpu_max_hours:g} per run). Nothing was downloaded. Run `make repro` on a "
            "GPU machine; `make smoke` runs the whole pipeline on synthetic data with tiny "
            "models on this CPU in minutes; set train.device: cpu to force the CPU anyway."
        )


def preflight(params_file: Path) -> None:
    """``kdecay check``: params and machine checks; prints one line when all is well."""
    params = load_params(params_file)
    runs = check_params(params)
    _check_machine(params, runs, _row_models(params))
    print(f"check: {params_file} is valid: {len(runs)} runs; this machine can run them")
