"""Learning-rate schedules with the k-decay factor (Zhang, arXiv:2004.05909).

The paper's method in one sentence: any decay written as a function of training progress t/T
gets a new hyper-parameter k by replacing t/T with the *k-decay factor* t^k / T^k
(:func:`kdecay_factor`, the only place the formula lives). k = 1 is the original schedule.

Every schedule is a pure, picklable callable ``f(t) -> lr`` of the iteration t >= 0; for
t > total it stays at its final value. :class:`LRSchedule` adapts one to a torch optimizer,
stepping once per iteration. The poly and cosine forms equal timm's ``PolyLRScheduler`` and
``CosineLRScheduler`` with ``k_decay=k`` (warm-up and cycles off).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch.optim.lr_scheduler import LRScheduler

from kdecay.checks import check_int, check_number

__all__ = [
    "LRSchedule",
    "Schedule",
    "cosine",
    "exponential",
    "kdecay_factor",
    "poly",
    "sgdr",
    "step",
    "warmup",
]


class Schedule(Protocol):
    """A learning rate as a function of the iteration ``t``."""

    def __call__(self, t: float) -> float: ...


def kdecay_factor(t: float, total: float, k: float) -> float:
    """The k-decay factor ``t^k / T^k`` of the paper (Eq. 2), with t clipped to [0, T]."""
    t = min(max(float(t), 0.0), float(total))
    return (t / total) ** k


# ---------------------------------------------------------------------------------------------
# argument validation: each check names the argument and the allowed range


def _positive(name: str, value: float) -> None:
    check_number(value, name, low=0, low_open=True)


def _lr_range(lr0_name: str, lr0: float, lr_end_name: str, lr_end: float) -> None:
    _positive(lr0_name, lr0)
    check_number(lr_end, lr_end_name, low=0)
    if lr_end > lr0:
        raise ValueError(
            f"{lr_end_name} must satisfy 0 <= {lr_end_name} <= {lr0_name} "
            f"(got {lr_end_name}={lr_end!r}, {lr0_name}={lr0!r})"
        )


def _check_t(t: float) -> float:
    t = float(t)
    if not t >= 0:
        raise ValueError(f"iteration t must be >= 0, got {t!r}")
    return t


# ---------------------------------------------------------------------------------------------
# the schedules


@dataclass(frozen=True)
class PolySchedule:
    """``lr(t) = (lr0 - lr_end) * (1 - t^k / T^k)^N + lr_end`` (the paper's new polynomial)."""

    lr0: float
    lr_end: float
    power: float
    k: float
    total: int

    def __call__(self, t: float) -> float:
        f = kdecay_factor(_check_t(t), self.total, self.k)
        return (self.lr0 - self.lr_end) * (1.0 - f) ** self.power + self.lr_end


@dataclass(frozen=True)
class CosineSchedule:
    """``lr(t) = lr_end + (lr0 - lr_end) * (1 + cos(pi * t^k / T^k)) / 2``."""

    lr0: float
    lr_end: float
    k: float
    total: int

    def __call__(self, t: float) -> float:
        f = kdecay_factor(_check_t(t), self.total, self.k)
        return self.lr_end + (self.lr0 - self.lr_end) * (1.0 + math.cos(math.pi * f)) / 2.0


@dataclass(frozen=True)
class ExponentialSchedule:
    """``lr(t) = lr_end + (lr0 - lr_end) * exp(-rate * T * t^k / T^k)``; k = 1: exp(-rate * t)."""

    lr0: float
    lr_end: float
    rate: float
    k: float
    total: int

    def __call__(self, t: float) -> float:
        f = kdecay_factor(_check_t(t), self.total, self.k)
        return self.lr_end + (self.lr0 - self.lr_end) * math.exp(-self.rate * self.total * f)


@dataclass(frozen=True)
class StepSchedule:
    """``lr(t) = lr0 * gamma^(number of milestones <= t)``.

    The original recipes of the tables: He et al. 2016 (0.1, /10 at 32k and 48k iterations),
    Zagoruyko & Komodakis 2016 (x0.2 at epochs 60/120/160), Huang et al. 2017 (/10 at epochs
    150 and 225).
    """

    lr0: float
    milestones: tuple[int, ...]
    gamma: float

    def __call__(self, t: float) -> float:
        return self.lr0 * self.gamma ** bisect.bisect_right(self.milestones, _check_t(t))


@dataclass(frozen=True)
class WarmupSchedule:
    """``lr(t) = warmup_lr`` for ``t < warmup_iters``, else ``schedule(t)`` (t not shifted).

    He et al. 2016 train every CIFAR pre-act ResNet with 0.01 for the first 400 iterations
    ("Identity Mappings", appendix); the k-decay runs of those rows keep it before their decay.
    """

    schedule: Schedule
    warmup_iters: int
    warmup_lr: float

    def __call__(self, t: float) -> float:
        t = _check_t(t)
        return self.warmup_lr if t < self.warmup_iters else self.schedule(t)


@dataclass(frozen=True)
class SgdrSchedule:
    """SGDR (Loshchilov & Hutter 2017) with the k-decay factor inside every cycle.

    Cycle i has length ``t0 * t_mult^i`` and starts where cycle i-1 ends; at position tc of a
    cycle of length Ti: ``lr = lr_min + (lr_max - lr_min) * (1 + cos(pi * tc^k / Ti^k)) / 2``.
    A restart happens at the first iteration of each cycle; at and beyond ``total`` the LR is
    the end-of-cycle value reached at ``total``.
    """

    lr_max: float
    lr_min: float
    t0: float
    t_mult: float
    k: float
    total: int

    def cycle(self, t: float) -> tuple[float, float]:
        """(position in the current cycle, length of the current cycle) for iteration t."""
        start, length = 0.0, float(self.t0)
        while t >= start + length:
            start += length
            length *= self.t_mult
        return t - start, length

    def __call__(self, t: float) -> float:
        t = min(_check_t(t), float(self.total))
        tc, ti = self.cycle(t)
        # when total falls on a cycle boundary, the final LR is the end of the ending cycle
        f = 1.0 if (t == self.total and tc == 0 and t > 0) else kdecay_factor(tc, ti, self.k)
        return self.lr_min + (self.lr_max - self.lr_min) * (1.0 + math.cos(math.pi * f)) / 2.0


def poly(lr0: float, lr_end: float, power: float, k: float, total: int) -> PolySchedule:
    """k-decay polynomial schedule ``(lr0 - lr_end) * (1 - t^k/T^k)^power + lr_end``."""
    _lr_range("lr0", lr0, "lr_end", lr_end)
    _positive("power", power)
    _positive("k", k)
    _positive("total", total)
    return PolySchedule(float(lr0), float(lr_end), float(power), float(k), int(total))


def cosine(lr0: float, lr_end: float, k: float, total: int) -> CosineSchedule:
    """k-decay cosine schedule ``lr_end + (lr0 - lr_end) * (1 + cos(pi t^k/T^k)) / 2``."""
    _lr_range("lr0", lr0, "lr_end", lr_end)
    _positive("k", k)
    _positive("total", total)
    return CosineSchedule(float(lr0), float(lr_end), float(k), int(total))


def exponential(
    lr0: float, lr_end: float, rate: float, k: float, total: int
) -> ExponentialSchedule:
    """k-decay exponential schedule ``lr_end + (lr0 - lr_end) * exp(-rate * T * (t/T)^k)``."""
    _lr_range("lr0", lr0, "lr_end", lr_end)
    check_number(rate, "rate", low=0)
    _positive("k", k)
    _positive("total", total)
    return ExponentialSchedule(float(lr0), float(lr_end), float(rate), float(k), int(total))


def warmup(schedule: Schedule, warmup_iters: int, warmup_lr: float | None) -> Schedule:
    """``schedule`` with a constant ``warmup_lr`` for its first ``warmup_iters`` iterations
    (:class:`WarmupSchedule`); ``schedule`` itself when ``warmup_iters`` is 0."""
    warmup_iters = check_int(warmup_iters, "warmup_iters", low=0)
    if warmup_iters == 0:
        return schedule
    if warmup_lr is None:
        raise ValueError("warmup_lr must be given (a number > 0) when warmup_iters > 0")
    _positive("warmup_lr", warmup_lr)
    return WarmupSchedule(schedule, warmup_iters, float(warmup_lr))


def step(lr0: float, milestones: Sequence[int], gamma: float) -> StepSchedule:
    """Piecewise constant ``lr0 * gamma^(milestones passed)`` (a warm-up: :func:`warmup`)."""
    _positive("lr0", lr0)
    _positive("gamma", gamma)
    ms = tuple(milestones)
    if any(not isinstance(m, int) or isinstance(m, bool) or m <= 0 for m in ms):
        raise ValueError(f"milestones must be positive integers (iterations), got {list(ms)!r}")
    if any(b <= a for a, b in itertools.pairwise(ms)):
        raise ValueError(f"milestones must be strictly increasing, got {list(ms)!r}")
    return StepSchedule(float(lr0), ms, float(gamma))


def sgdr(
    lr_max: float, lr_min: float, t0: float, t_mult: float, k: float, total: int
) -> SgdrSchedule:
    """SGDR cosine annealing with warm restarts, k-decay applied inside every cycle."""
    _lr_range("lr_max", lr_max, "lr_min", lr_min)
    _positive("t0", t0)
    check_number(t_mult, "t_mult", low=1)
    _positive("k", k)
    _positive("total", total)
    return SgdrSchedule(
        float(lr_max), float(lr_min), float(t0), float(t_mult), float(k), int(total)
    )


# ---------------------------------------------------------------------------------------------
# torch adapter


class LRSchedule(LRScheduler):
    """Sets every parameter group's LR to ``schedule(t)``; call :meth:`step` once per iteration.

    ``state_dict()`` holds only the iteration counter and the last LRs (plain numbers), so it
    loads with ``torch.load(weights_only=True)``; the schedule itself is rebuilt from the config.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Schedule) -> None:
        self.schedule = schedule
        super().__init__(optimizer, last_epoch=-1)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        lr = float(self.schedule(max(self.last_epoch, 0)))
        return [lr for _ in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": int(self.last_epoch), "last_lr": list(self.get_last_lr())}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_epoch = int(state_dict["last_epoch"])
        lrs = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            if isinstance(group["lr"], torch.Tensor):  # a device-tensor LR stays that tensor
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        self._last_lr = lrs
