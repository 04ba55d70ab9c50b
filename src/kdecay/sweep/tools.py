"""Running the pipeline's tools (dvc, git, kdecay) as child processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["tool_env"]


def tool_env() -> dict[str, str]:
    """Environment for child processes: this interpreter's bin first on PATH (so ``kdecay`` and
    ``dvc`` resolve without an activated venv) and no DVC analytics."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env
