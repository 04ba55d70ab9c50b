"""``kdecay sweep --fuse G``: the stale training stages as the units an engine runs.

A unit is one stage, run by its own ``dvc.yaml`` command, or a fused group of 2 to G stages
that share a fuse key (:meth:`kdecay.config.RunSpec.fuse_key`: same dataset and row recipe,
different schedule or seed), run by one ``kdecay train-group`` command
(:mod:`kdecay.train.group`) as one Ray task or one SLURM job. Groups are filled in
``dvc.yaml`` order; a row whose model has dropout is never fused.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kdecay.sweep.stages import TrainStage

__all__ = ["Unit", "units"]


@dataclass(frozen=True)
class Unit:
    """What one engine task trains: one stage, or a fused group of stages."""

    stages: tuple[TrainStage, ...]

    @property
    def fused(self) -> bool:
        """More than one stage: trained as one network."""
        return len(self.stages) > 1

    @property
    def name(self) -> str:
        """The stage's name, or ``fused@<first stage>+<others>`` for a group."""
        first = self.stages[0].name
        return f"fused@{first}+{len(self.stages) - 1}" if self.fused else first

    @property
    def log_name(self) -> str:
        """File-name-safe name of the unit's log."""
        first = self.stages[0].log_name
        return f"fused_{first}+{len(self.stages) - 1}" if self.fused else first

    @property
    def config_hash(self) -> str:
        """The run's config hash, or a hash of the members' (a SLURM job of an earlier sweep
        is followed only if it trains these very runs)."""
        hashes = [s.spec.config_hash() for s in self.stages]
        if not self.fused:
            return hashes[0]
        return hashlib.sha256(",".join(hashes).encode()).hexdigest()[:16]

    def command(self, params_file: Path, step: str | None = None) -> str:
        """The stage's ``dvc.yaml`` command, or ``kdecay train-group`` of the members (with
        ``--step step`` when given)."""
        if not self.fused:
            return self.stages[0].cmd
        members = [arg for s in self.stages for arg in ("--stage", s.name)]
        form = ["--step", step] if step else []
        return shlex.join(["kdecay", "train-group", "--params", str(params_file), *form, *members])


Fuse = int | Mapping[str, int]
"""At most G runs per fused group: one G for every row (``--fuse G``), or one per row
(``--fuse auto``: ``sweep.fuse`` of the params)."""


def group_size(fuse: Fuse, row: str) -> int:
    """The most runs of ``row`` one group takes (1: alone)."""
    return fuse if isinstance(fuse, int) else fuse.get(row, 1)


def units(stages: list[TrainStage], fuse: Fuse) -> list[Unit]:
    """``stages`` as units: each alone where the row's G is 1, else groups of at most G
    stages of one fuse key (the first stage of each group in ``dvc.yaml`` order)."""
    from kdecay.train.group import has_dropout

    groups: dict[str, list[list[TrainStage]]] = {}
    order: list[list[TrainStage]] = []
    fusable: dict[str, bool] = {}
    for stage in stages:
        key = stage.spec.fuse_key()
        if key not in fusable:
            fusable[key] = group_size(fuse, stage.row) >= 2 and not has_dropout(stage.spec)
        if not fusable[key]:
            order.append([stage])
            continue
        chunks = groups.setdefault(key, [])
        if not chunks or len(chunks[-1]) == group_size(fuse, stage.row):
            chunks.append([])
            order.append(chunks[-1])
        chunks[-1].append(stage)
    return [Unit(tuple(group)) for group in order]
