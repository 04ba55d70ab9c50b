"""What a test needs from outside Python (SLURM, LaTeX): skipped with one line on a
user's machine, required in CI."""

from __future__ import annotations

import os

import pytest


def need(what: str, present: bool, how: str) -> None:
    """Skip a test whose outside requirement ``what`` (SLURM, LaTeX, ...) is missing, with one
    line saying what is missing and ``how`` to get it; in CI (``CI`` set), where `.ci/run`
    installs and starts every requirement, a missing one fails the test instead. Called at a
    module's top, it skips the whole module in one line."""
    if present:
        return
    message = f"{what} is not available here ({how})"
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide it: {message}")
    pytest.skip(message, allow_module_level=True)
