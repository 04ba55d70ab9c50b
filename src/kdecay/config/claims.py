"""The params that decide the verdicts: ``claims`` (the printed k-decay results of the appendix
and each one's seeds at the current look) and ``stats`` (level, looks, the seed noise the plan
assumes).

Each claim has three arms, the row's original recipe, its k = 1 and k-decay at the paper's k
(two for the SGDR row, whose original is its k = 1), trained at the same seeds
``claims.cells[i].seeds``. A claim starts at the first look (``stats.looks[0]`` seeds: 0, 1,
2 by default) and ``kdecay look --apply`` adds seeds only to the claims still open
(:mod:`kdecay.stats.sequential`). The runs those seeds add beyond the sweep's are listed, once,
under ``claim_runs`` (DVC's ``foreach`` needs them spelt out, keyed by stage name):
:func:`claim_runs_mapping` computes that listing and the config refuses one that differs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from kdecay.checks import MAX_SEED, ConfigError, check_int
from kdecay.config.reader import Section
from kdecay.config.sections import canonical_k
from kdecay.data.datasets import DATASETS

__all__ = ["LOOKS", "ClaimCell", "ClaimsSection", "StatsSection"]

LOOKS = (3, 6, 10)
"""Default ``stats.looks``: seeds per arm of an open claim at each look."""


@dataclass(frozen=True)
class ClaimCell:
    """One printed k-decay result of the appendix: its dataset, row, k, and the seeds its
    arms are trained at (in the order the looks take them: look j uses the first
    ``looks[j]``)."""

    dataset: str
    row: str
    k: float
    seeds: tuple[int, ...] = (0, 1, 2)


def _cell_seeds(c: Section, first_look: int) -> tuple[int, ...]:
    if not c.has("seeds"):
        return tuple(range(first_look))
    name = "each seed"
    values = c.unique_list("seeds", "integer seeds >= 0")
    return tuple(
        check_int(v, f"{c.key('seeds')}: {name}", low=0, high=MAX_SEED, error=ConfigError)
        for v in values
    )


@dataclass(frozen=True)
class ClaimsSection:
    """``claims.cells``: each printed k-decay result and its seeds at the current look."""

    cells: tuple[ClaimCell, ...] = ()

    @classmethod
    def read(
        cls, raw: Any, rows: tuple[str, ...], datasets: tuple[str, ...], first_look: int
    ) -> ClaimsSection:
        s = Section(raw, "claims", ("cells",))
        cells = s.get("cells", [])
        if not isinstance(cells, list):
            raise ConfigError(
                f"claims.cells must be a YAML list of {{dataset, row, k, seeds}}, got {cells!r}"
            )
        out: list[ClaimCell] = []
        for i, raw_cell in enumerate(cells):
            c = Section(raw_cell, f"claims.cells[{i}]", ("dataset", "row", "k", "seeds"))
            for key, allowed in (("dataset", datasets), ("row", rows)):
                if c.get(key) not in allowed:
                    raise ConfigError(
                        f"claims.cells[{i}].{key} is {c.get(key)!r}, not one of the "
                        f"{key}s of params ({', '.join(allowed)}): remove that cell from "
                        f"claims.cells, or add it to {key}s (DVC trains every listed cell)"
                    )
            cell = ClaimCell(
                dataset=c.get("dataset"),
                row=c.get("row"),
                k=canonical_k(c.get("k"), f"claims.cells[{i}].k"),
                seeds=_cell_seeds(c, first_look),
            )
            if cell.k == 1.0:
                raise ConfigError(
                    f"claims.cells[{i}]: k = 1 is the control, which every cell gets anyway"
                )
            if any((o.dataset, o.row) == (cell.dataset, cell.row) for o in out):
                raise ConfigError(f"claims.cells[{i}] repeats {cell.dataset}/{cell.row}")
            out.append(cell)
        return cls(cells=tuple(out))


def _looks(s: Section) -> tuple[int, ...]:
    raw = s.get("looks", list(LOOKS))
    key = s.key("looks")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{key} must be a YAML list of seed counts (e.g. [3, 6, 10]): {raw!r}")
    looks = tuple(check_int(v, f"{key}: each look", low=2, error=ConfigError) for v in raw)
    if any(b <= a for a, b in itertools.pairwise(looks)):
        raise ConfigError(f"{key} must increase (seeds per arm at each look), got {list(looks)}")
    if looks[-1] > 100:
        raise ConfigError(f"{key}: {looks[-1]} seeds per arm is beyond any plan here (<= 100)")
    return looks


@dataclass(frozen=True)
class StatsSection:
    """``stats``: how verdicts are decided and planned: one-sided Welch tests, one
    intersection-union test per claim, Holm over the claims at family level ``alpha``, looks
    at ``looks`` seeds per arm with Lan-DeMets Pocock-type spending; the plan's ``power``
    target and ``seed_std`` (the standard deviation of a run's final test error over seeds,
    in points) per dataset."""

    alpha: float = 0.05
    power: float = 0.8
    looks: tuple[int, ...] = LOOKS
    seed_std: dict[str, float] = field(default_factory=dict)

    @classmethod
    def read(cls, raw: Any) -> StatsSection:
        s = Section(raw, "stats", ("alpha", "power", "looks", "seed_std"))
        std = Section(s.get("seed_std", {}), "stats.seed_std", tuple(DATASETS))
        return cls(
            alpha=s.number("alpha", 0.05, low=0, low_open=True, high=0.5, high_open=True),
            power=s.number("power", 0.8, low=0, low_open=True, high=1, high_open=True),
            looks=_looks(s),
            seed_std={d: std.number(d, low=0, low_open=True) for d in DATASETS if std.has(d)},
        )
