"""``kdecay clean-checkpoints``: remove the checkpoints nothing will resume from.

A run keeps its final checkpoint after it finishes, so a kill between its last write and
DVC recording the stage loses no training. Once DVC has recorded the run (its metrics.json
in dvc.lock has the md5 of the file on disk) the checkpoint is removed; so are checkpoints
of configurations no longer in params. Every other checkpoint is kept.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from kdecay.config import Config, load_config
from kdecay.data.download import file_md5

__all__ = ["clean_checkpoints"]


def _locked_md5(lock: Path) -> dict[str, str]:
    """``{output path: md5}`` of every stage output recorded in ``dvc.lock``."""
    if not lock.is_file():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}) or {}
    return {
        out["path"]: out.get("md5", "")
        for stage in stages.values()
        for out in stage.get("outs", []) or []
        if isinstance(out, dict) and "path" in out
    }


def _runs_by_hash(config: Config, runs_root: Path) -> dict[str, Path]:
    return {config.spec(run).config_hash(): run.out_dir(runs_root) for run in config.runs()}


def clean_checkpoints(
    params_file: Path = Path("params.yaml"),
    lock: Path = Path("dvc.lock"),
    runs_root: Path = Path("results/runs"),
) -> list[Path]:
    """Remove the checkpoint folders of recorded runs and of stale configs; return them."""
    config = load_config(params_file)
    root = Path(config.train.checkpoint_dir)
    if not root.is_dir():
        return []
    locked, runs, removed = _locked_md5(lock), _runs_by_hash(config, runs_root), []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        run = runs.get(folder.name)
        if run is None:
            reason = "its configuration is no longer in params"
        else:
            metrics = run / "metrics.json"
            if not metrics.is_file() or locked.get(str(metrics)) != file_md5(metrics):
                continue  # not recorded yet: a rerun resumes from it
            reason = f"{run} is recorded in {lock}"
        shutil.rmtree(folder)
        removed.append(folder)
        print(f"clean-checkpoints: removed {folder} ({reason})")
    print(f"clean-checkpoints: {len(removed)} removed, the others are kept for resuming")
    return removed
