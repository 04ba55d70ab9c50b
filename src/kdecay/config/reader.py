"""Reading one mapping of params key by key, each value checked where it is read.

Every key of a mapping must be one its section allows: an unknown key (a typo such as
``paddng:`` or ``kss:``) is a :class:`ConfigError` naming its full path and the allowed keys,
never silently ignored. Values go through the one family of validators in
:mod:`kdecay.checks`, named by their full path (``rows.wrn16_8.optimizer.lr``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kdecay.checks import ConfigError, check_choice, check_flag, check_int, check_number

__all__ = ["MISSING", "Section"]

MISSING: Any = object()


class Section:
    """A params mapping at ``path`` whose keys are all in ``allowed``."""

    def __init__(self, raw: Any, path: str, allowed: Iterable[str], what: str = "") -> None:
        self.path, self.allowed = path, tuple(allowed)
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            what = what or f"a mapping with the keys {', '.join(self.allowed)}"
            raise ConfigError(f"{path or 'params'} must be {what}, got {raw!r}")
        unknown = sorted(str(k) for k in raw if k not in self.allowed)
        if unknown:
            where = f"{path}." if path else ""
            raise ConfigError(
                f"unknown key {', '.join(where + k for k in unknown)}; allowed "
                f"{'in ' + path if path else 'at the top level'}: {', '.join(self.allowed)}"
            )
        self.raw = raw

    def key(self, name: str) -> str:
        """The full path of ``name`` (``rows.wrn16_8.epochs``)."""
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, default: Any = MISSING) -> Any:
        """The raw value; a missing key without a default is an error naming it."""
        if name in self.raw:
            return self.raw[name]
        if default is MISSING:
            raise ConfigError(f"missing key {self.key(name)}")
        return default

    def has(self, name: str) -> bool:
        return name in self.raw

    def number(self, name: str, default: Any = MISSING, **bounds: Any) -> float:
        return check_number(self.get(name, default), self.key(name), error=ConfigError, **bounds)

    def int(self, name: str, default: Any = MISSING, low: int = 1) -> int:
        return check_int(self.get(name, default), self.key(name), low=low, error=ConfigError)

    def choice(self, name: str, allowed: tuple[str, ...], default: Any = MISSING) -> str:
        return check_choice(self.get(name, default), self.key(name), allowed, error=ConfigError)

    def flag(self, name: str, default: Any = MISSING) -> bool:
        return check_flag(self.get(name, default), self.key(name), ConfigError)

    def text(self, name: str, default: Any = MISSING) -> str:
        value = self.get(name, default)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.key(name)} must be a non-empty string, got {value!r}")
        return value

    def section(self, name: str, allowed: Iterable[str], default: Any = MISSING) -> Section:
        """The sub-mapping ``name`` (checked the same way)."""
        return Section(self.get(name, default), self.key(name), allowed)

    def table(self, name: str, keys: Iterable[str], default: Any = MISSING) -> dict[str, Any]:
        """A mapping keyed by some of ``keys`` (e.g. row names); unknown keys are errors."""
        return dict(Section(self.get(name, default), self.key(name), keys).raw)

    def unique_list(self, name: str, what: str) -> list[Any]:
        """A non-empty YAML list without repeated values (DVC expands it into stages)."""
        value = self.get(name)
        if not isinstance(value, list) or not value:
            raise ConfigError(
                f"{self.key(name)} must be a non-empty YAML list of {what} (e.g. "
                f"{self.key(name).rsplit('.', 1)[-1]}: [1, 2]), got {value!r}: DVC expands it "
                "into one stage per value"
            )
        seen = [v for i, v in enumerate(value) if v in value[:i]]
        if seen:
            raise ConfigError(
                f"{self.key(name)} repeats {seen[0]!r}: each value is one run (one DVC stage); "
                "remove the repetition"
            )
        return value
