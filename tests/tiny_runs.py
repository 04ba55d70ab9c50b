"""Tiny training runs shared by the trajectory tests (test_fast_path, test_step): a one-row
params dict for a given model spec, a learnable synthetic CIFAR-shaped set, a Trainer built
from both, its loss trajectory, and the tolerance test the trajectory tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from kdecay.config import Config
from kdecay.data.prepare import PreparedData
from kdecay.models import build_from_spec
from kdecay.train import Runtime, Trainer


def tiny_params(model: dict[str, Any], lr: float, batch: int, **train: Any) -> dict[str, Any]:
    """params.yaml content with one row ``tiny`` (step schedule, milestone at epoch 9)."""
    return {
        "data": {"cifar10": {"url": "unused", "md5": "unused"}},
        "datasets": ["cifar10"],
        "seeds": [0],
        "rows": {
            "tiny": {
                "model": model,
                "epochs": 10,
                "batch_size": batch,
                "optimizer": {"lr": lr, "momentum": 0.9, "nesterov": False, "weight_decay": 5e-4},
                "padding": "zeros",
                "original": {"schedule": "step", "milestones": [9], "gamma": 0.1},
            }
        },
        "kdecay": {"schedule": "poly", "power": 2.0, "lr_end": 0.0, "ks": [1]},
        "train": {"device": "cpu", **train},
    }


def keep_rows(params: dict[str, Any], rows: list[str]) -> dict[str, Any]:
    """``params`` with only ``rows`` (and their entries of the per-row ``sweep`` tables and of
    ``claims.cells``, which may name only rows of params)."""
    params["rows"] = {r: params["rows"][r] for r in rows}
    if params.get("claims"):
        params["claims"]["cells"] = [c for c in params["claims"]["cells"] if c["row"] in rows]
    for table in (params.get("sweep") or {}).values():
        if isinstance(table, dict):
            for row in [r for r in table if r not in rows]:
                del table[row]
    return sync_claim_runs(params)


def narrow(
    params: dict[str, Any],
    datasets: list[str] | None = None,
    seeds: list[int] | None = None,
    claim_seeds: list[int] | None = None,
) -> dict[str, Any]:
    """``params`` with fewer datasets (and the claims of those only), other ``seeds`` and
    every claim's seeds ``claim_seeds`` (``[]``: no claims cells, so no claim runs), with
    ``claim_runs`` rewritten to match."""
    claims = params.setdefault("claims", {"cells": []})
    if datasets is not None:
        params["datasets"] = datasets
        claims["cells"] = [c for c in claims.get("cells", []) if c["dataset"] in datasets]
    if seeds is not None:
        params["seeds"] = seeds
    if claim_seeds == []:
        claims["cells"] = []
    elif claim_seeds is not None:
        for cell in claims["cells"]:
            cell["seeds"] = list(claim_seeds)
    return sync_claim_runs(params)


def sync_claim_runs(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``claim_runs`` as ``kdecay look --apply`` writes it."""
    params["claim_runs"] = Config.from_mapping(params, check_claim_runs=False).claim_runs_mapping()
    return params


def learnable_data(n: int, classes: int = 10, n_test: int = 8) -> PreparedData:
    """Learnable synthetic CIFAR: each class has a mean colour, plus Gaussian pixel noise."""
    g = torch.Generator().manual_seed(123)
    colors = torch.randint(0, 256, (classes, 3, 1, 1), generator=g).float()
    labels = torch.randint(0, classes, (n,), generator=g)
    noise = torch.randn((n, 3, 32, 32), generator=g) * 40
    images = (colors[labels] + noise).round().clamp(0, 255).to(torch.uint8)
    return PreparedData(
        train_images=images,
        train_labels=labels,
        test_images=images[:n_test].clone(),
        test_labels=labels[:n_test].clone(),
        classes=[str(i) for i in range(classes)],
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )


def tiny_trainer(
    model: dict[str, Any],
    runtime: Runtime,
    *,
    lr: float,
    batch: int,
    data: PreparedData,
    seed: int = 0,
    run_seed: int = 0,
    **train: Any,
) -> Trainer:
    """A Trainer of the one-row params of :func:`tiny_params` on ``data``; ``seed`` sets the
    initial weights, ``run_seed`` the run's seed (its loader's order, crops and flips)."""
    spec = Config.from_mapping(tiny_params(model, lr, batch, **train)).run_spec(
        "cifar10", "tiny", "original", None, run_seed
    )
    torch.manual_seed(seed)
    return Trainer(spec, data, build_from_spec(spec.model, spec.num_classes), runtime)


def epoch_losses(trainer: Trainer) -> list[torch.Tensor]:
    """The losses of one epoch through the Trainer's own loader and train_step."""
    trainer.model.train()
    return [trainer.train_step(x, y)[0] for x, y in trainer.train_loader]


def trajectory(trainer: Trainer, epochs: int = 1) -> torch.Tensor:
    """The float losses of ``epochs`` epochs, in order."""
    return torch.stack([loss for _ in range(epochs) for loss in epoch_losses(trainer)]).float()


def outside(fast: torch.Tensor, ref: torch.Tensor, abs_tol: float, rel_tol: float) -> torch.Tensor:
    """Per-step excess over ``|fast - ref| <= abs_tol + rel_tol * |ref|`` (> 0: outside)."""
    return (fast - ref).abs() - (abs_tol + rel_tol * ref.abs())


def mini_workspace(top: Path) -> Path:
    """The mini smoke workspace of the sweep tests (11 runs: CIFAR-10, k = 1, seed 0, no claim
    runs), committed to its own git repository under ``top/base``."""
    import yaml

    from kdecay.config.yaml_io import read_yaml_mapping
    from kdecay.sweep.smoke import setup_workspace

    root = Path(__file__).resolve().parents[1]
    params = narrow(read_yaml_mapping(root / "params.smoke.yaml"), ["cifar10"], [0], [])
    params["kdecay"]["ks"] = [1]
    (top / "mini.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return setup_workspace(top / "base", top / "mini.yaml")


def clone(base: Path, name: str) -> Path:
    """A git clone of workspace ``base`` beside it."""
    import subprocess

    dest = base.parent / name
    subprocess.run(["git", "clone", "-q", str(base), str(dest)], check=True)
    return dest
