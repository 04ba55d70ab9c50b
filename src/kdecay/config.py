"""params.yaml -> validated, typed run specifications.

Every check runs before any work and raises :class:`ConfigError`, whose message names the
offending key (``rows.wrn16_8.original.milestones``) and the allowed values.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kdecay import schedules
from kdecay.checks import ConfigError, check_choice, check_flag, check_int, check_number
from kdecay.data.augment import PADDING_MODES
from kdecay.data.datasets import DATASETS
from kdecay.schedules import Schedule

__all__ = ["ConfigError", "RunSpec", "TrainOptions", "build_schedule", "load_params", "resolve_run"]

METHODS = ("original", "kdecay")
PRECISIONS = ("bf16", "fp32")
DEVICES = ("auto", "cuda", "cpu")
STEP_FORMS = ("auto", "eager", "compiled", "graph")
"""``train.step``: how a training step executes (:mod:`kdecay.train.step`)."""
KDECAY_SCHEDULES = ("poly", "cosine", "exponential")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read a params file; a missing or malformed file is a :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {path} not found: pass --params FILE or run from the repo")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"params file {path} is not valid YAML: {err}") from err
    if not isinstance(params, dict):
        raise ConfigError(f"params file {path} must hold a mapping at the top level")
    return params


def _get(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise ConfigError(f"missing key {where}.{key}" if where else f"missing key {key}")
    return mapping[key]


def _number(value: Any, key: str, **bounds: Any) -> float:
    return check_number(value, key, error=ConfigError, **bounds)


def _int(value: Any, key: str, low: int = 1) -> int:
    return check_int(value, key, low=low, error=ConfigError)


def _choice(value: Any, key: str, allowed: tuple[str, ...]) -> str:
    return check_choice(value, key, allowed, error=ConfigError)


@dataclass(frozen=True)
class TrainOptions:
    """Runtime options of the ``train`` section (none of them changes the recipe)."""

    device: str = "auto"
    precision: str = "bf16"
    channels_last: bool = True
    step: str = "auto"
    tf32: bool = False
    eval_every: int = 1
    eval_batch_size: int = 1000
    checkpoint_every: int = 5
    checkpoint_dir: str = ".cache/checkpoints"
    save_weights: bool = False
    cpu_max_hours: float = 2.0


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
    def label(self) -> str:
        """Short human name: ``cifar10/wrn16_8/k1.5/seed0``."""
        return f"{self.dataset}/{self.row}/{method_dir(self.method, self.k)}/seed{self.seed}"

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


def method_dir(method: str, k: float | None) -> str:
    """Run folder name of a method: ``original`` or ``k<k>`` (k formatted with %g)."""
    return "original" if method == "original" else f"k{k:g}"


def train_options(params: dict[str, Any]) -> TrainOptions:
    """Validate the ``train`` section."""
    t = params.get("train", {}) or {}
    if not isinstance(t, dict):
        raise ConfigError("train must be a mapping of runtime options")
    d = TrainOptions()
    known = set(asdict(d))
    unknown = set(t) - known
    if unknown:
        raise ConfigError(
            f"unknown key(s) train.{', train.'.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(known))}"
        )
    v = {**asdict(d), **t}
    return TrainOptions(
        device=_choice(v["device"], "train.device", DEVICES),
        precision=_choice(v["precision"], "train.precision", PRECISIONS),
        channels_last=check_flag(v["channels_last"], "train.channels_last", ConfigError),
        step=_choice(v["step"], "train.step", STEP_FORMS),
        tf32=check_flag(v["tf32"], "train.tf32", ConfigError),
        eval_every=_int(v["eval_every"], "train.eval_every"),
        eval_batch_size=_int(v["eval_batch_size"], "train.eval_batch_size"),
        checkpoint_every=_int(v["checkpoint_every"], "train.checkpoint_every"),
        checkpoint_dir=str(v["checkpoint_dir"]),
        save_weights=check_flag(v["save_weights"], "train.save_weights", ConfigError),
        cpu_max_hours=_number(v["cpu_max_hours"], "train.cpu_max_hours", low=0),
    )


def _original_schedule(orig: Any, key: str, epochs: int, lr: float) -> dict[str, Any]:
    kind = _choice(_get(orig, "schedule", key), f"{key}.schedule", ("step", "sgdr"))
    if kind == "step":
        ms = _get(orig, "milestones", key)
        if not isinstance(ms, list) or not ms:
            raise ConfigError(f"{key}.milestones must be a non-empty list of epochs")
        ms = [_number(m, f"{key}.milestones", low=0, low_open=True) for m in ms]
        if any(b <= a for a, b in itertools.pairwise(ms)):
            raise ConfigError(f"{key}.milestones must be strictly increasing, got {ms}")
        if ms[-1] >= epochs:
            raise ConfigError(
                f"{key}.milestones: milestone {ms[-1]:g} is not before the last "
                f"epoch ({epochs}); every milestone must be < epochs"
            )
        warm = _int(orig.get("warmup_iters", 0), f"{key}.warmup_iters", low=0)
        return {
            "kind": "step",
            "lr0": lr,
            "milestones": ms,
            "gamma": _number(
                _get(orig, "gamma", key), f"{key}.gamma", low=0, low_open=True, high=1
            ),
            "warmup_iters": warm,
            "warmup_lr": _number(
                orig.get("warmup_lr", lr), f"{key}.warmup_lr", low=0, low_open=True
            ),
        }
    lr_max = _number(_get(orig, "lr_max", key), f"{key}.lr_max", low=0, low_open=True)
    lr_min = _number(_get(orig, "lr_min", key), f"{key}.lr_min", low=0, high=lr_max)
    t0 = _number(_get(orig, "t0", key), f"{key}.t0", low=0, low_open=True)
    if t0 > epochs:
        raise ConfigError(f"{key}.t0 ({t0:g} epochs) is longer than the run ({epochs} epochs)")
    return {
        "kind": "sgdr",
        "lr_max": lr_max,
        "lr_min": lr_min,
        "t0": t0,
        "t_mult": _number(_get(orig, "t_mult", key), f"{key}.t_mult", low=1),
    }


def _kdecay_schedule(
    params: dict[str, Any], original: dict[str, Any], lr: float, k: float
) -> dict[str, Any]:
    if original["kind"] == "sgdr":  # the SGDR row: k-decay applied inside every SGDR cycle
        return {**original, "k": k}
    kd = _get(params, "kdecay", "")
    kind = _choice(_get(kd, "schedule", "kdecay"), "kdecay.schedule", KDECAY_SCHEDULES)
    lr_end = _number(_get(kd, "lr_end", "kdecay"), "kdecay.lr_end", low=0, high=lr)
    out: dict[str, Any] = {"kind": kind, "lr0": lr, "lr_end": lr_end, "k": k}
    # the row's warm-up (He et al. 2016: 0.01 for 400 iterations) stays before the decay
    out["warmup_iters"] = original.get("warmup_iters", 0)
    out["warmup_lr"] = original.get("warmup_lr", lr)
    if kind == "poly":
        out["power"] = _number(_get(kd, "power", "kdecay"), "kdecay.power", low=0, low_open=True)
    if kind == "exponential":
        out["rate"] = _number(_get(kd, "rate", "kdecay"), "kdecay.rate", low=0)
    return out


def row_names(params: dict[str, Any]) -> list[str]:
    """The table rows defined in params."""
    rows = _get(params, "rows", "")
    if not isinstance(rows, dict) or not rows:
        raise ConfigError("rows must be a non-empty mapping of table rows")
    return list(rows)


def _check_run_id(params: dict[str, Any], dataset: str, row: str, method: str) -> None:
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    rows = row_names(params)
    if row not in rows:
        raise ConfigError(f"unknown row {row!r}: params rows are {', '.join(rows)}")
    _choice(method, "method", METHODS)


def _optimizer(r: dict[str, Any], key: str) -> dict[str, Any]:
    """The validated ``rows.<row>.optimizer`` section (SGD: lr, momentum, nesterov, wd)."""
    key = f"{key}.optimizer"
    opt = _get(r, "optimizer", key.rsplit(".", 1)[0])
    out = {
        "lr": _number(_get(opt, "lr", key), f"{key}.lr", low=0, low_open=True),
        "momentum": _number(_get(opt, "momentum", key), f"{key}.momentum", low=0, high=1),
        "nesterov": check_flag(_get(opt, "nesterov", key), f"{key}.nesterov", ConfigError),
        "weight_decay": _number(_get(opt, "weight_decay", key), f"{key}.weight_decay", low=0),
    }
    if out["nesterov"] and out["momentum"] == 0:
        raise ConfigError(f"{key}.nesterov needs momentum > 0")
    return out


def resolve_run(
    params: dict[str, Any], dataset: str, row: str, method: str, k: float | None, seed: int
) -> RunSpec:
    """Validate everything one run needs and return its :class:`RunSpec`."""
    _check_run_id(params, dataset, row, method)
    if method == "kdecay":
        k = _number(k, "k", low=0, low_open=True)
    elif k is not None:
        raise ConfigError(
            "k is only meaningful for a k-decay run: give --original or --k, not both"
        )
    key = f"rows.{row}"
    r = params["rows"][row]
    if not isinstance(r, dict):
        raise ConfigError(f"{key} must be a mapping (model, epochs, batch_size, ...)")
    model = _get(r, "model", key)
    if not isinstance(model, str | dict):
        raise ConfigError(f"{key}.model must be a registry name or a mapping with 'family'")
    epochs = _int(_get(r, "epochs", key), f"{key}.epochs")
    opt = _optimizer(r, key)
    original = _original_schedule(_get(r, "original", key), f"{key}.original", epochs, opt["lr"])
    schedule = (
        original
        if method == "original"
        else _kdecay_schedule(params, original, opt["lr"], float(k))  # type: ignore[arg-type]
    )
    data = _get(params, "data", "")
    return RunSpec(
        dataset=dataset,
        row=row,
        method=method,
        k=float(k) if k is not None else None,
        seed=_int(seed, "seed", low=0),
        model=model,
        num_classes=DATASETS[dataset].num_classes,
        epochs=epochs,
        batch_size=_int(_get(r, "batch_size", key), f"{key}.batch_size"),
        **opt,
        padding=_choice(r.get("padding", "zeros"), f"{key}.padding", PADDING_MODES),
        schedule=schedule,
        data_md5=str(_get(_get(data, dataset, "data"), "md5", f"data.{dataset}")),
        prepared_dir=str(data.get("prepared_dir", "data/prepared")),
        train=train_options(params),
    )


def build_schedule(spec: RunSpec, iters_per_epoch: int) -> Schedule:
    """The run's LR schedule as a function of the iteration (epoch values x iters_per_epoch).

    Step and k-decay schedules keep the row's warm-up (``warmup_iters`` at ``warmup_lr``)
    before them; the decay itself runs over all ``epochs x iters_per_epoch`` iterations.
    """
    s, total = spec.schedule, spec.epochs * iters_per_epoch
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
