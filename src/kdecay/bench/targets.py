"""What ``kdecay bench`` measures: the distinct (model, batch size) pairs of the params rows.

``wrn28_10_sgdr`` shares ``wrn28_10``'s model and batch, so it is timed once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kdecay.checks import ConfigError
from kdecay.config import Config, RunSpec

__all__ = ["BenchTarget", "select_targets"]


@dataclass
class BenchTarget:
    """One architecture to benchmark: a (model spec, batch size) pair and the rows using it."""

    name: str
    rows: list[str]
    spec: RunSpec  # resolved spec of the first row (model, batch, optimizer, padding)
    key: str = field(repr=False)


def _group_key(model: Any, batch_size: int) -> str:
    return json.dumps({"model": model, "batch_size": batch_size}, sort_keys=True, default=str)


def select_targets(config: Config, models: Sequence[str] | None) -> list[BenchTarget]:
    """The architectures to benchmark, from row names or registry model names.

    ``None`` selects every distinct (model, batch size) pair of the rows, in row order. A row
    name selects its row's pair; a registry model name selects every pair whose row uses that
    model. Raises :class:`ConfigError` for an unknown name, listing the known rows and models.
    """
    groups: dict[str, BenchTarget] = {}
    row_key: dict[str, str] = {}
    for row, recipe in config.rows.items():
        method = "original" if recipe.has_original_stage else "kdecay"
        spec = config.run_spec(
            config.datasets[0], row, method, None if method == "original" else 1.0, 0
        )
        key = _group_key(spec.model, spec.batch_size)
        row_key[row] = key
        if key in groups:
            groups[key].rows.append(row)
        else:
            name = spec.model if isinstance(spec.model, str) else row
            groups[key] = BenchTarget(name=name, rows=[row], spec=spec, key=key)
    if models is None:
        return list(groups.values())

    model_names = sorted({g.spec.model for g in groups.values() if isinstance(g.spec.model, str)})
    chosen: list[str] = []
    for name in models:
        if name in row_key:
            keys = [row_key[name]]
        else:
            keys = [k for k, g in groups.items() if g.spec.model == name]
        if not keys:
            known = ", ".join(row_key)
            extra = f"; models: {', '.join(model_names)}" if model_names else ""
            raise ConfigError(f"unknown model/row {name!r} for bench: rows are {known}{extra}")
        chosen += [k for k in keys if k not in chosen]
    return [groups[k] for k in chosen]
