"""The typed sections of params.yaml other than the rows: ``data``, ``kdecay``, ``train``,
``sweep`` and ``smoke``. Each is built from a :class:`~kdecay.config.reader.Section`, so every
unknown key is an error naming its path, and every value is checked once, here."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from kdecay.checks import ConfigError
from kdecay.config.reader import Section
from kdecay.data.datasets import DATASETS

__all__ = [
    "DEVICES",
    "KDECAY_SCHEDULES",
    "PRECISIONS",
    "STEP_FORMS",
    "DataSection",
    "DataSource",
    "KdecaySection",
    "SmokeSection",
    "SweepSection",
    "TrainOptions",
    "canonical_k",
]

PRECISIONS = ("bf16", "fp32")
DEVICES = ("auto", "cuda", "cpu")
STEP_FORMS = ("auto", "eager", "compiled", "graph")
"""``train.step``: how a training step executes (:mod:`kdecay.train.step`)."""
KDECAY_SCHEDULES = ("poly", "cosine", "exponential")


@dataclass(frozen=True)
class DataSource:
    """``data.<dataset>``: where the archive comes from (only ``kdecay download`` needs it)
    and its md5 (which every stage after it checks)."""

    md5: str
    url: str | None = None


@dataclass(frozen=True)
class DataSection:
    """``data``: the archive and prepared-data folders and one source per dataset."""

    raw_dir: str = "data/raw"
    prepared_dir: str = "data/prepared"
    sources: dict[str, DataSource] = field(default_factory=dict)

    @classmethod
    def read(cls, raw: Any) -> DataSection:
        s = Section(raw, "data", ("raw_dir", "prepared_dir", *DATASETS))
        sources = {}
        for name in DATASETS:
            if s.has(name):
                d = s.section(name, ("url", "md5"))
                url = d.text("url") if d.has("url") else None
                sources[name] = DataSource(md5=d.text("md5"), url=url)
        return cls(
            raw_dir=s.text("raw_dir", "data/raw"),
            prepared_dir=s.text("prepared_dir", "data/prepared"),
            sources=sources,
        )

    def source(self, dataset: str) -> DataSource:
        if dataset not in self.sources:
            raise ConfigError(f"missing key data.{dataset} (its url and md5)")
        return self.sources[dataset]


def canonical_k(value: Any, key: str) -> float:
    """A k of ``kdecay.ks``: a number > 0 written as its run folder names it.

    DVC writes the YAML text of each k into the stage name and the ``--out`` folder
    (``k1.5``), while every reader names the folder ``k{k:g}``: ``3.0`` (folder ``k3.0`` vs
    ``k3``) or ``0.1000001`` (``k0.1``) would lose their runs, so they are refused.
    """
    from kdecay.checks import check_number

    k = check_number(value, key, low=0, low_open=True, error=ConfigError)
    if str(value) != f"{k:g}":
        raise ConfigError(
            f"{key}: write {value!r} as {k:g} (its run folder is k{k:g}; DVC would name it "
            f"k{value}); at most 6 significant digits"
        )
    return k


@dataclass(frozen=True)
class KdecaySection:
    """``kdecay``: the k-decay schedule of the sweep and its k values (k = 1: the control)."""

    schedule: str
    lr_end: float
    ks: tuple[float, ...]
    power: float | None = None  # poly's N
    rate: float | None = None  # exponential's lambda, per epoch

    @classmethod
    def read(cls, raw: Any) -> KdecaySection:
        s = Section(raw, "kdecay", ("schedule", "power", "lr_end", "rate", "ks"))
        schedule = s.choice("schedule", KDECAY_SCHEDULES)
        ks = tuple(canonical_k(k, "kdecay.ks: each k") for k in s.unique_list("ks", "k > 0"))
        return cls(
            schedule=schedule,
            lr_end=s.number("lr_end", low=0),
            ks=ks,
            power=s.number("power", low=0, low_open=True) if schedule == "poly" else None,
            rate=s.number("rate", low=0) if schedule == "exponential" else None,
        )


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
    save_weights: bool = True  # dvc.yaml tracks every run's model.pt
    cpu_max_hours: float = 2.0

    @classmethod
    def read(cls, raw: Any) -> TrainOptions:
        d = asdict(cls())
        s = Section(raw, "train", tuple(d), "a mapping of runtime options")
        return cls(
            device=s.choice("device", DEVICES, d["device"]),
            precision=s.choice("precision", PRECISIONS, d["precision"]),
            channels_last=s.flag("channels_last", d["channels_last"]),
            step=s.choice("step", STEP_FORMS, d["step"]),
            tf32=s.flag("tf32", d["tf32"]),
            eval_every=s.int("eval_every", d["eval_every"]),
            eval_batch_size=s.int("eval_batch_size", d["eval_batch_size"]),
            checkpoint_every=s.int("checkpoint_every", d["checkpoint_every"]),
            checkpoint_dir=s.text("checkpoint_dir", d["checkpoint_dir"]),
            save_weights=s.flag("save_weights", d["save_weights"]),
            cpu_max_hours=s.number("cpu_max_hours", d["cpu_max_hours"], low=0),
        )


@dataclass(frozen=True)
class SweepSection:
    """``sweep``: what each run of a row asks an engine for, the seconds per epoch ``kdecay
    plan`` estimates GPU-hours with (targets until measured), and how many runs of a row
    ``--fuse auto`` trains as one network (``fuse``; 1, alone, for a row not listed)."""

    gpu_fraction: dict[str, float]
    cpus_per_run: float = 1.0
    seconds_per_epoch: dict[str, float] = field(default_factory=dict)
    fuse: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, raw: Any, rows: tuple[str, ...]) -> SweepSection:
        keys = ("gpu_fraction", "cpus_per_run", "seconds_per_epoch", "fuse")
        s = Section(raw, "sweep", keys)
        fractions = Section(s.get("gpu_fraction", {}), "sweep.gpu_fraction", rows)
        rates = Section(s.get("seconds_per_epoch", {}), "sweep.seconds_per_epoch", rows)
        fuse = Section(s.get("fuse", {}), "sweep.fuse", rows)
        return cls(
            gpu_fraction={r: fractions.number(r, 1, low=0, low_open=True, high=1) for r in rows},
            cpus_per_run=s.number("cpus_per_run", 1, low=1),  # Ray: >= 1 CPU a task
            seconds_per_epoch={
                r: rates.number(r, low=0, low_open=True) for r in rows if rates.has(r)
            },
            fuse={r: fuse.int(r, 1, low=1) for r in rows},
        )


@dataclass(frozen=True)
class SmokeSection:
    """``smoke``: the sizes of the synthetic archives ``kdecay smoke`` builds."""

    train_images: int = 1000
    test_images: int = 500
    seed: int = 0

    @classmethod
    def read(cls, raw: Any) -> SmokeSection:
        s = Section(raw, "smoke", ("train_images", "test_images", "seed"))
        return cls(
            train_images=s.int("train_images", 1000),
            test_images=s.int("test_images", 500),
            seed=s.int("seed", 0, low=0),
        )
