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
from kdecay.config.claims import ClaimsSection, StatsSection
from kdecay.config.reader import Section
from kdecay.config.recipes import RowRecipe
from kdecay.config.runs import METHODS, Run, RunSpec
from kdecay.config.sections import (
    DataSection,
    KdecaySection,
    SmokeSection,
    SweepSection,
    TrainOptions,
)
from kdecay.config.yaml_io import read_yaml_mapping
from kdecay.data.datasets import DATASETS

__all__ = ["TOP_LEVEL_KEYS", "Config", "load_config"]

TOP_LEVEL_KEYS = ("data", "datasets", "seeds", "rows", "kdecay", "train", "sweep", "smoke")
TOP_LEVEL_KEYS += ("synthetic", "claims", "stats", "claim_runs")
CLAIM_GROUPS = {"claim_original": "original", "claim_kdecay": "kdecay"}
"""Run group -> its part of ``claim_runs`` (the dvc.yaml stage ``train_<group>``)."""


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
    def from_mapping(cls, raw: dict[str, Any], *, check_claim_runs: bool = True) -> Config:
        """Validate a params mapping (as read from YAML) into a :class:`Config`;
        ``check_claim_runs=False`` only for the command that rewrites ``claim_runs``."""
        s = Section(raw, "", TOP_LEVEL_KEYS)
        rows_raw = s.get("rows")
        if not isinstance(rows_raw, dict) or not rows_raw:
            raise ConfigError("rows must be a non-empty mapping of table rows")
        rows = {str(name): RowRecipe.read(str(name), r) for name, r in rows_raw.items()}
        datasets, seeds = _datasets(s), _seeds(s)
        stats = StatsSection.read(s.get("stats", {}))
        claims = ClaimsSection.read(s.get("claims", {}), tuple(rows), datasets, stats.looks[0])
        config = cls(
            data=DataSection.read(s.get("data", {})),
            datasets=datasets,
            seeds=seeds,
            claims=claims,
            stats=stats,
            rows=rows,
            kdecay=KdecaySection.read(s.get("kdecay")),
            train=TrainOptions.read(s.get("train", {})),
            sweep=SweepSection.read(s.get("sweep", {}), tuple(rows)),
            smoke=SmokeSection.read(s.get("smoke", {})),
            synthetic=s.flag("synthetic", False),
        )
        if check_claim_runs:
            config.check_claim_runs(s.get("claim_runs", None))
        return config

    def row(self, name: str) -> RowRecipe:
        if name not in self.rows:
            raise ConfigError(f"unknown row {name!r}: params rows are {', '.join(self.rows)}")
        return self.rows[name]

    def runs(self) -> list[Run]:
        """Every run the pipeline trains, in table order: per dataset and row, the original
        recipe (not for the SGDR row, whose k = 1 run is SGDR) and every k, each seed; then
        the claims' runs at their seeds the sweep lacks (``claims.cells[i].seeds``)."""
        sweep = self._sweep_runs()
        return sweep + self._claim_runs(sweep)

    def _sweep_runs(self) -> list[Run]:
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
        return out

    def _claim_runs(self, sweep: list[Run]) -> list[Run]:
        """Per claim, its arms (original unless the SGDR row, k = 1, the paper's k) at the
        claim's seeds, less the runs the sweep already has."""
        have = {run.out_dir() for run in sweep}
        out = []
        for cell in self.claims.cells:
            arms: list[tuple[str, float | None]] = [("kdecay", 1.0), ("kdecay", cell.k)]
            if self.rows[cell.row].has_original_stage:
                arms.insert(0, ("original", None))
            for method, k in arms:
                for seed in cell.seeds:
                    group = "claim_original" if method == "original" else "claim_kdecay"
                    run = Run(cell.dataset, cell.row, method, k, seed, group)
                    if run.out_dir() not in have:
                        have.add(run.out_dir())
                        out.append(run)
        return out

    def claim_runs_mapping(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``claim_runs`` as params.yaml holds it for dvc.yaml's ``foreach``: per claim
        stage, the stage key (``cifar10-wrn16_8-k3-seed1``) -> dataset, row, (k,) seed."""
        out: dict[str, dict[str, dict[str, Any]]] = {part: {} for part in CLAIM_GROUPS.values()}
        for run in self._claim_runs(self._sweep_runs()):
            item: dict[str, Any] = {"dataset": run.dataset, "row": run.row, "seed": run.seed}
            if run.k is not None:
                item["k"] = int(run.k) if float(run.k).is_integer() else run.k
            out[CLAIM_GROUPS[run.group]][run.stage.split("@", 1)[1]] = item
        return out

    def check_claim_runs(self, raw: Any) -> None:
        """Refuse a ``claim_runs`` other than :meth:`claim_runs_mapping` (DVC would train
        what it lists, not what ``claims.cells`` says)."""
        want = self.claim_runs_mapping()
        if raw is None and not any(want.values()):
            return
        fix = "`kdecay look --apply` rewrites it from claims.cells (comments kept)"
        if raw is None:
            raise ConfigError(f"claim_runs is missing: DVC trains the claims' runs from it; {fix}")
        if _canonical_runs(raw) != _canonical_runs(want):
            raise ConfigError(
                "claim_runs does not list the runs of claims.cells (a cell's seeds or k were "
                f"edited, or a row, seed or k of the sweep changed); {fix}"
            )

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


def _canonical_runs(raw: Any) -> Any:
    """``claim_runs`` in a form where 2 and 2.0 are equal (anything malformed stays unequal)."""
    if not isinstance(raw, dict):
        return raw
    out = {}
    for part, runs in raw.items():
        if not isinstance(runs, dict):
            return raw
        out[part] = {
            str(key): tuple(sorted((k, float(v) if k == "k" else v) for k, v in item.items()))
            if isinstance(item, dict) else item
            for key, item in runs.items()
        }  # fmt: skip
    return out


def load_config(path: str | Path = "params.yaml") -> Config:
    """Read and validate a params file (bounded: :mod:`kdecay.config.yaml_io`)."""
    path = Path(path)
    try:
        return Config.from_mapping(read_yaml_mapping(path))
    except ConfigError as err:
        if str(path) in str(err):
            raise
        raise ConfigError(f"{path}: {err}") from err
