"""params.yaml -> one typed, validated :class:`Config`, and the one list of runs.

Loaded once (:func:`load_config`), validated as a whole before any work: every unknown key
anywhere is an error naming its full path, every value is checked where its section is read
(:mod:`kdecay.config.sections`, :mod:`kdecay.config.recipes`), and the lists DVC expands into
stages (``datasets``, ``seeds``, ``kdecay.ks``) hold no repetition. Every module reads this
object; none reads the raw mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdecay.checks import MAX_SEED, ConfigError, check_choice, check_int, check_number
from kdecay.config.reader import Section
from kdecay.config.recipes import RowRecipe
from kdecay.config.runs import METHODS, Run, RunSpec
from kdecay.config.sections import (
    ClaimsSection,
    DataSection,
    KdecaySection,
    SmokeSection,
    StatsSection,
    SweepSection,
    TrainOptions,
)
from kdecay.config.yaml_io import read_yaml_mapping
from kdecay.data.datasets import DATASETS

__all__ = ["TOP_LEVEL_KEYS", "Config", "load_config"]

TOP_LEVEL_KEYS = ("data", "datasets", "seeds", "rows", "kdecay", "train", "sweep", "smoke")
TOP_LEVEL_KEYS += ("synthetic", "claims", "stats")


def _datasets(s: Section) -> tuple[str, ...]:
    names = s.unique_list("datasets", "dataset names")
    for d in names:
        if d not in DATASETS:
            raise ConfigError(
                f"datasets: {d!r} is not supported; this pipeline reproduces "
                f"{', '.join(DATASETS)} (the datasets of the paper's tables)"
            )
    return tuple(names)


def _seeds(s: Section) -> tuple[int, ...]:
    return tuple(
        check_int(v, "seeds: each seed", low=0, high=MAX_SEED, error=ConfigError)
        for v in s.unique_list("seeds", "integer seeds >= 0")
    )


@dataclass(frozen=True)
class Config:
    """The whole params file, typed and validated."""

    data: DataSection
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    rows: dict[str, RowRecipe]
    kdecay: KdecaySection
    train: TrainOptions
    sweep: SweepSection
    smoke: SmokeSection
    synthetic: bool = False
    claims: ClaimsSection = field(default_factory=ClaimsSection)
    stats: StatsSection = field(default_factory=StatsSection)

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> Config:
        """Validate a params mapping (as read from YAML) into a :class:`Config`."""
        s = Section(raw, "", TOP_LEVEL_KEYS)
        rows_raw = s.get("rows")
        if not isinstance(rows_raw, dict) or not rows_raw:
            raise ConfigError("rows must be a non-empty mapping of table rows")
        rows = {str(name): RowRecipe.read(str(name), r) for name, r in rows_raw.items()}
        datasets, seeds = _datasets(s), _seeds(s)
        claims = ClaimsSection.read(s.get("claims", {}), tuple(rows), datasets)
        both = sorted(set(seeds) & set(claims.extra_seeds))
        if both:
            raise ConfigError(
                f"claims.extra_seeds repeats seed {both[0]} of seeds: the claim runs already "
                "have every seed of seeds; list only the extra ones"
            )
        return cls(
            data=DataSection.read(s.get("data", {})),
            datasets=datasets,
            seeds=seeds,
            claims=claims,
            stats=StatsSection.read(s.get("stats", {})),
            rows=rows,
            kdecay=KdecaySection.read(s.get("kdecay")),
            train=TrainOptions.read(s.get("train", {})),
            sweep=SweepSection.read(s.get("sweep", {}), tuple(rows)),
            smoke=SmokeSection.read(s.get("smoke", {})),
            synthetic=s.flag("synthetic", False),
        )

    def row(self, name: str) -> RowRecipe:
        if name not in self.rows:
            raise ConfigError(f"unknown row {name!r}: params rows are {', '.join(self.rows)}")
        return self.rows[name]

    def runs(self) -> list[Run]:
        """Every run the pipeline trains, in table order: per dataset and row, the original
        recipe (not for the SGDR row, whose k = 1 run is SGDR) and every k, each seed; then
        the claim runs' extra seeds (:class:`~kdecay.config.sections.ClaimsSection`)."""
        out = []
        for dataset in self.datasets:
            for recipe in self.rows.values():
                methods: list[tuple[str, float | None]] = []
                if recipe.has_original_stage:
                    methods.append(("original", None))
                methods += [("kdecay", k) for k in self.kdecay.ks]
                out += [
                    Run(dataset, recipe.name, method, k, seed)
                    for method, k in methods
                    for seed in self.seeds
                ]
        return out + self._claim_runs()

    def _claim_runs(self) -> list[Run]:
        extra = self.claims.extra_seeds
        out = [
            Run(dataset, recipe.name, "original", None, seed, "claim_original")
            for dataset in self.datasets
            for recipe in self.rows.values()
            if recipe.has_original_stage
            for seed in extra
        ]
        for i, cell in enumerate(self.claims.cells):
            for group, k in (("claim_control", 1.0), ("claim_kdecay", cell.k)):
                out += [Run(cell.dataset, cell.row, "kdecay", k, s, group, i) for s in extra]
        return out

    def paper_k(self, dataset: str, row: str) -> float | None:
        """The k of the paper's printed k-decay result of a cell (``claims.cells``)."""
        hit = [c.k for c in self.claims.cells if (c.dataset, c.row) == (dataset, row)]
        return hit[0] if hit else None

    def spec(self, run: Run) -> RunSpec:
        """Everything that determines ``run``'s result."""
        return self.run_spec(run.dataset, run.row, run.method, run.k, run.seed)

    def run_spec(self, dataset: str, row: str, method: str, k: float | None, seed: int) -> RunSpec:
        """The :class:`RunSpec` of one run (any dataset/row/method/k/seed, checked)."""
        if dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
        recipe = self.row(row)
        check_choice(method, "method", METHODS, error=ConfigError)
        if method == "kdecay":
            k = check_number(k, "k", low=0, low_open=True, error=ConfigError)
            schedule = recipe.kdecay_schedule(self.kdecay, k)
        elif k is not None:
            raise ConfigError(
                "k is only meaningful for a k-decay run: give --original or --k, not both"
            )
        else:
            schedule = recipe.original
        opt = recipe.optimizer
        return RunSpec(
            dataset=dataset,
            row=row,
            method=method,
            k=float(k) if k is not None else None,
            seed=check_int(seed, "seed", low=0, high=MAX_SEED, error=ConfigError),
            model=recipe.model,
            num_classes=DATASETS[dataset].num_classes,
            epochs=recipe.epochs,
            batch_size=recipe.batch_size,
            lr=opt.lr,
            momentum=opt.momentum,
            nesterov=opt.nesterov,
            weight_decay=opt.weight_decay,
            padding=recipe.padding,
            schedule=schedule,
            data_md5=self.data.source(dataset).md5,
            prepared_dir=self.data.prepared_dir,
            train=self.train,
        )


def load_config(path: str | Path = "params.yaml") -> Config:
    """Read and validate a params file (bounded: :mod:`kdecay.config.yaml_io`)."""
    path = Path(path)
    try:
        return Config.from_mapping(read_yaml_mapping(path))
    except ConfigError as err:
        if str(path) in str(err):
            raise
        raise ConfigError(f"{path}: {err}") from err
