"""One run of the pipeline: its identity (:class:`Run`: dataset, row, method, k, seed, and the
DVC stage and folder they give) and everything that determines its result (:class:`RunSpec`),
with the schedule it trains with (:func:`build_schedule`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdecay.config.sections import TrainOptions

if TYPE_CHECKING:  # the schedules import torch; reading params needs neither
    from kdecay.schedules import Schedule

__all__ = [
    "METHODS",
    "TRAINING_STAGE",
    "Run",
    "RunSpec",
    "build_schedule",
    "method_dir",
    "run_folder",
    "schedule_of",
]

METHODS = ("original", "kdecay")
TRAINING_STAGE = "train_"
"""Every training stage of dvc.yaml, and only they, are named ``train_<group>@...``."""


def method_dir(method: str, k: float | None) -> str:
    """Run folder name of a method: ``original`` or ``k<k>`` (k formatted with %g, which is
    how dvc.yaml writes it: :func:`kdecay.config.sections.canonical_k` refuses any other)."""
    return "original" if method == "original" else f"k{k:g}"


def run_folder(runs_root: Path, dataset: str, row: str, method_folder: str, seed: int) -> Path:
    """``<runs>/<dataset>/<row>/<original|k..>/seed<seed>`` (the layout of dvc.yaml)."""
    return runs_root / dataset / row / method_folder / f"seed{seed}"


@dataclass(frozen=True)
class Run:
    """One training run of the pipeline, as ``dvc.yaml`` renders it.

    ``group`` names the dvc.yaml stage that trains it: the sweep (``train_original``,
    ``train_kdecay``: every k, the seeds of ``seeds``) or a claim stage (``claim_original``,
    ``claim_kdecay``: a claim's arms at its seeds the sweep lacks, listed in ``claim_runs``).
    """

    dataset: str
    row: str
    method: str  # "original" | "kdecay"
    k: float | None
    seed: int
    group: str = "sweep"  # sweep | claim_original | claim_kdecay

    @property
    def method_dir(self) -> str:
        return method_dir(self.method, self.k)

    @property
    def stage(self) -> str:
        """The DVC stage name: ``train_kdecay@cifar10-wrn16_8-1.5-0`` (the sweep's matrix:
        dataset, row, k, seed), ``train_claim_kdecay@cifar10-wrn16_8-k3-seed1`` (a claim's
        ``claim_runs`` key)."""
        if self.group == "claim_original":
            return f"train_claim_original@{self.dataset}-{self.row}-seed{self.seed}"
        if self.group == "claim_kdecay":
            return f"train_claim_kdecay@{self.dataset}-{self.row}-k{self.k:g}-seed{self.seed}"
        if self.method == "original":
            return f"train_original@{self.dataset}-{self.row}-{self.seed}"
        return f"train_kdecay@{self.dataset}-{self.row}-{self.k:g}-{self.seed}"

    def out_dir(self, runs_root: Path = Path("results/runs")) -> Path:
        """This run's folder (:func:`run_folder`)."""
        return run_folder(runs_root, self.dataset, self.row, self.method_dir, self.seed)

    @property
    def label(self) -> str:
        """Short human name: ``cifar10/wrn16_8/k1.5/seed0``."""
        return f"{self.dataset}/{self.row}/{self.method_dir}/seed{self.seed}"


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one training run."""

    dataset: str
    row: str
    method: str  # "original" | "kdecay"
    k: float | None
    seed: int
    model: Any  # registry name or {"family": ..., kwargs}
    num_classes: int
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    padding: str
    schedule: dict[str, Any]  # {"kind": "step"|"sgdr"|"poly"|..., epoch-based arguments}
    data_md5: str
    prepared_dir: str
    train: TrainOptions = field(default_factory=TrainOptions)

    @property
    def run(self) -> Run:
        return Run(self.dataset, self.row, self.method, self.k, self.seed)

    @property
    def label(self) -> str:
        """Short human name: ``cifar10/wrn16_8/k1.5/seed0``."""
        return self.run.label

    def config_hash(self) -> str:
        """sha256 (16 hex) of every field that changes the result; excludes bookkeeping."""
        d = asdict(self)
        for key in (
            "checkpoint_every",
            "checkpoint_dir",
            "save_weights",
            "cpu_max_hours",
            "eval_batch_size",
        ):
            d["train"].pop(key)
        d.pop("prepared_dir")
        blob = json.dumps(d, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def sgd_hyper(self) -> dict[str, Any]:
        """The SGD arguments besides the LR (the row's ``optimizer``): momentum, nesterov,
        weight_decay."""
        return {
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }

    def fuse_key(self) -> str:
        """What runs trained as one fused network (:mod:`kdecay.train.group`) must share:
        every field but the schedule, method, k and seed (dataset, model, batch size, epochs,
        optimizer settings, padding, data, train options), as sorted JSON."""
        d = asdict(self)
        for key in ("schedule", "method", "k", "seed"):
            d.pop(key)
        return json.dumps(d, sort_keys=True, default=str)


def build_schedule(spec: RunSpec, iters_per_epoch: int) -> Schedule:
    """The run's LR schedule as a function of the iteration (:func:`schedule_of`)."""
    return schedule_of(spec.schedule, spec.epochs, iters_per_epoch)


def schedule_of(s: dict[str, Any], epochs: int, iters_per_epoch: int) -> Schedule:
    """An epoch-based schedule spec (``RunSpec.schedule``) as a function of the iteration
    (epoch values x iters_per_epoch).

    Step and k-decay schedules keep the row's warm-up (``warmup_iters`` at ``warmup_lr``)
    before them; the decay itself runs over all ``epochs x iters_per_epoch`` iterations.
    """
    from kdecay import schedules

    total = epochs * iters_per_epoch
    if s["kind"] == "sgdr":
        return schedules.sgdr(
            s["lr_max"], s["lr_min"], s["t0"] * iters_per_epoch, s["t_mult"], s.get("k", 1.0), total
        )
    if s["kind"] == "step":
        milestones = [round(m * iters_per_epoch) for m in s["milestones"]]
        decay: Schedule = schedules.step(s["lr0"], milestones, s["gamma"])
    elif s["kind"] == "poly":
        decay = schedules.poly(s["lr0"], s["lr_end"], s["power"], s["k"], total)
    elif s["kind"] == "cosine":
        decay = schedules.cosine(s["lr0"], s["lr_end"], s["k"], total)
    else:
        rate = s["rate"] / iters_per_epoch
        decay = schedules.exponential(s["lr0"], s["lr_end"], rate, s["k"], total)
    return schedules.warmup(decay, s.get("warmup_iters", 0), s.get("warmup_lr"))
