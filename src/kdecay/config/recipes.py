"""``rows.<row>``: one table row's recipe, from its model paper (params.yaml names each
source), checked once when params are loaded."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from kdecay.checks import ConfigError, check_number
from kdecay.config.reader import Section
from kdecay.config.sections import KdecaySection
from kdecay.data.datasets import PADDING_MODES

__all__ = ["Optimizer", "RowRecipe"]

ROW_KEYS = ("model", "epochs", "batch_size", "optimizer", "padding", "original")
MAX_LR = 1.0e4
"""The largest learning rate accepted: no SGD recipe of CIFAR uses one above 1 (the rows use
0.05-0.1); 1e30 or 1e6 is a typo (a run at such a rate either diverges or ends "completed" at
chance error). Up to 1e4 stays possible, e.g. to provoke a divergence on purpose (the
divergence test does)."""
STEP_KEYS = ("schedule", "milestones", "gamma", "warmup_iters", "warmup_lr")
SGDR_KEYS = ("schedule", "t0", "t_mult", "lr_max", "lr_min")


@dataclass(frozen=True)
class Optimizer:
    """``rows.<row>.optimizer``: SGD with momentum (Nesterov or not) and weight decay."""

    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float

    @classmethod
    def read(cls, s: Section) -> Optimizer:
        out = cls(
            lr=s.number("lr", low=0, low_open=True, high=MAX_LR),
            momentum=s.number("momentum", low=0, high=1),
            nesterov=s.flag("nesterov"),
            weight_decay=s.number("weight_decay", low=0),
        )
        if out.nesterov and out.momentum == 0:
            raise ConfigError(f"{s.key('nesterov')} needs momentum > 0")
        return out


def _step_schedule(s: Section, epochs: int, lr: float) -> dict[str, Any]:
    ms = s.get("milestones")
    if not isinstance(ms, list) or not ms:
        raise ConfigError(f"{s.key('milestones')} must be a non-empty list of epochs")
    ms = [check_number(m, s.key("milestones"), low=0, low_open=True, error=ConfigError) for m in ms]
    if any(b <= a for a, b in itertools.pairwise(ms)):
        raise ConfigError(f"{s.key('milestones')} must be strictly increasing, got {ms}")
    if ms[-1] >= epochs:
        raise ConfigError(
            f"{s.key('milestones')}: milestone {ms[-1]:g} is not before the last epoch "
            f"({epochs}); every milestone must be < epochs"
        )
    return {
        "kind": "step",
        "lr0": lr,
        "milestones": ms,
        "gamma": s.number("gamma", low=0, low_open=True, high=1),
        "warmup_iters": s.int("warmup_iters", 0, low=0),
        "warmup_lr": s.number("warmup_lr", lr, low=0, low_open=True, high=MAX_LR),
    }


def _sgdr_schedule(s: Section, epochs: int) -> dict[str, Any]:
    lr_max = s.number("lr_max", low=0, low_open=True, high=MAX_LR)
    t0 = s.number("t0", low=0, low_open=True)
    if t0 > epochs:
        raise ConfigError(f"{s.key('t0')} ({t0:g} epochs) is longer than the run ({epochs} epochs)")
    return {
        "kind": "sgdr",
        "lr_max": lr_max,
        "lr_min": s.number("lr_min", low=0, high=lr_max),
        "t0": t0,
        "t_mult": s.number("t_mult", low=1),
    }


def _original_schedule(raw: Any, key: str, epochs: int, lr: float) -> dict[str, Any]:
    kind = Section(raw, key, tuple(dict.fromkeys((*STEP_KEYS, *SGDR_KEYS)))).choice(
        "schedule", ("step", "sgdr")
    )
    if kind == "step":
        return _step_schedule(Section(raw, key, STEP_KEYS), epochs, lr)
    return _sgdr_schedule(Section(raw, key, SGDR_KEYS), epochs)


@dataclass(frozen=True)
class RowRecipe:
    """One table row: model, budget, optimizer, padding and the original LR schedule (epoch
    based; ``kind`` step or sgdr)."""

    name: str
    model: Any  # a registry name or {"family": ..., kwargs} (built by kdecay.models)
    epochs: int
    batch_size: int
    optimizer: Optimizer
    padding: str
    original: dict[str, Any]

    @property
    def has_original_stage(self) -> bool:
        """The SGDR row has no separate original stage: its k = 1 k-decay run *is* SGDR."""
        return self.original["kind"] != "sgdr"

    @classmethod
    def read(cls, name: str, raw: Any) -> RowRecipe:
        key = f"rows.{name}"
        s = Section(raw, key, ROW_KEYS, f"a mapping ({', '.join(ROW_KEYS)})")
        model = s.get("model")
        if not isinstance(model, str | dict):
            raise ConfigError(f"{key}.model must be a registry name or a mapping with 'family'")
        epochs = s.int("epochs")
        opt = Optimizer.read(s.section("optimizer", ("lr", "momentum", "nesterov", "weight_decay")))
        return cls(
            name=name,
            model=model,
            epochs=epochs,
            batch_size=s.int("batch_size"),
            optimizer=opt,
            padding=s.choice("padding", PADDING_MODES, "zeros"),
            original=_original_schedule(s.get("original"), f"{key}.original", epochs, opt.lr),
        )

    def kdecay_schedule(self, kd: KdecaySection, k: float) -> dict[str, Any]:
        """The k-decay schedule of this row at ``k``: SGDR with k inside every cycle for the
        SGDR row, else ``kd.schedule`` from the row's lr to ``kd.lr_end`` after the row's
        warm-up (He et al. 2016: 0.01 for 400 iterations)."""
        if self.original["kind"] == "sgdr":
            return {**self.original, "k": k}
        lr = self.optimizer.lr
        check_number(kd.lr_end, "kdecay.lr_end", low=0, high=lr, error=ConfigError)
        out: dict[str, Any] = {"kind": kd.schedule, "lr0": lr, "lr_end": kd.lr_end, "k": k}
        out["warmup_iters"] = self.original.get("warmup_iters", 0)
        out["warmup_lr"] = self.original.get("warmup_lr", lr)
        if kd.schedule == "poly":
            out["power"] = kd.power
        if kd.schedule == "exponential":
            out["rate"] = kd.rate
        return out
