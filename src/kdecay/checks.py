"""The errors a user can act on, and the one family of argument validators.

Every validator names the argument and the allowed range in its message (``lr0 must be a number
> 0, got -0.1``) and raises the exception class it is given: ``ValueError`` for library calls,
:class:`ConfigError` for params keys and command-line options (which the CLI turns into one
``error:`` line and exit status 2).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = [
    "CommandFailedError",
    "ConfigError",
    "DataError",
    "LockedError",
    "check_choice",
    "check_flag",
    "check_int",
    "check_number",
]


class ConfigError(ValueError):
    """A params value or option is missing or out of range; the message names the key and fix."""


class LockedError(ConfigError):
    """Another process is doing the same work (a run, a sweep); the message names it."""


class DataError(Exception):
    """A data-layer failure (download, checksum, extraction, parsing, a damaged file).

    Messages name the file involved and say how to fix the problem.
    """


class CommandFailedError(Exception):
    """A child tool (``dvc``, ``git``) failed after printing its own message; the CLI prints
    one line naming the command and what was kept, and exits 1."""


def _bounds(low: float | None, low_open: bool, high: float | None, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return (" " + " and ".join(parts)) if parts else ""


def check_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    low_open: bool = False,
    high: float | None = None,
    high_open: bool = False,
    integer: bool = False,
    error: type[Exception] = ValueError,
) -> float:
    """``value`` as a float if it is a finite real number (not a bool) inside the bounds.

    ``integer=True`` also requires an integral value (``3`` or ``3.0``); use :func:`check_int`
    to get an ``int`` back.
    """
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        kind = "an integer" if integer else "a number"
        raise error(
            f"{name} must be {kind}{_bounds(low, low_open, high, high_open)}, got {value!r}"
        )
    return float(value)


MAX_SEED = 2**63 - 1
"""The largest seed every generator a run seeds accepts (``torch.manual_seed`` takes at most
2**64 - 1, a signed 64-bit one 2**63 - 1)."""


def check_int(
    value: Any,
    name: str,
    *,
    low: int | None = None,
    high: int | None = None,
    error: type[Exception] = ValueError,
) -> int:
    """``value`` as an ``int`` if it is integral and inside ``[low, high]`` (see check_number)."""
    return int(check_number(value, name, low=low, high=high, integer=True, error=error))


def check_choice(
    value: Any, name: str, allowed: Iterable[str], error: type[Exception] = ValueError
) -> str:
    """``value`` if it is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise error(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


def check_flag(value: Any, name: str, error: type[Exception] = ValueError) -> bool:
    """``value`` if it is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise error(f"{name} must be true or false, got {value!r}")
    return value
