"""The sweep's view of the DVC pipeline, through DVC's Python API (``dvc.repo.Repo``).

DVC stays the single source of truth: which training stages are stale comes from
``Repo.status``, what a stage runs from its ``cmd`` in ``dvc.yaml``, and a finished run is
recorded by ``Repo.commit`` of that one stage (which also fills DVC's run-cache, so
``dvc push --run-cache`` publishes it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from kdecay.checks import ConfigError
from kdecay.config import TRAINING_STAGE, RunSpec, load_config
from kdecay.report.run_files import read_run

__all__ = ["TrainStage", "adoptable", "commit_stage", "stale_training_stages"]


@dataclass(frozen=True)
class TrainStage:
    """One stale training stage: its DVC name, its command and the run it trains."""

    name: str
    cmd: str
    row: str
    out_dir: Path
    spec: RunSpec

    @property
    def log_name(self) -> str:
        """File-name-safe stage name (``train_kdecay_cifar10-wrn16_8-2-0``)."""
        return self.name.replace("@", "_")


def stale_training_stages(root: Path, params_file: Path) -> list[TrainStage]:
    """Every training stage DVC reports as changed (``dvc status``), in dvc.yaml order, each
    matched to its run of :meth:`kdecay.config.Config.runs` by its stage name."""
    from dvc.repo import Repo

    config = load_config(params_file)
    runs = {run.stage: run for run in config.runs()}
    with Repo(str(root)) as repo:
        stages = [s for s in repo.index.stages if s.addressing.startswith(TRAINING_STAGE)]
        changed = repo.status(targets=[s.addressing for s in stages]) if stages else {}
        out = []
        for stage in stages:
            if stage.addressing not in changed:
                continue
            run = runs.get(stage.addressing)
            if run is None:
                raise ConfigError(
                    f"dvc.yaml's stage {stage.addressing} is not a run of {params_file}: "
                    "`kdecay check` names every difference between the two"
                )
            cmd = stage.cmd if isinstance(stage.cmd, str) else " ".join(stage.cmd)
            spec = config.spec(run)
            out.append(TrainStage(stage.addressing, cmd, run.row, root / run.out_dir(), spec))
    return out


def adoptable(stage: TrainStage) -> bool:
    """True if the stage's run already finished with this very configuration (its outputs are
    complete and ``run.json`` carries the config hash the params give now), so that recording
    it is enough: a driver killed between a run's end and its ``dvc commit`` loses nothing.
    The files are read by the reports' own reader (:func:`kdecay.report.run_files.read_run`):
    a damaged or forged run (a status outside the closed set, errors outside [0, 100], a
    completed run short of its epochs, another config's hash) is never adopted."""
    needed = [stage.out_dir / n for n in ("run.json", "metrics.json", "history.csv")]
    if stage.spec.train.save_weights:
        needed.append(stage.out_dir / "model.pt")
    if not all(p.is_file() for p in needed):
        return False
    spec = stage.spec
    found = read_run(stage.out_dir, spec.config_hash(), spec.epochs, stage.name)
    return found.status in ("completed", "diverged")


COMMIT_WAIT_S = 300.0  # how long a commit waits for another DVC command to let go


def commit_stage(root: Path, name: str, wait_s: float = COMMIT_WAIT_S) -> None:
    """Record one finished stage in dvc.lock and the cache (``dvc commit --force <stage>``).
    While another DVC command holds the workspace's lock (a `dvc repro` started beside the
    sweep), it waits and tries again, for up to ``wait_s`` seconds, rather than failing."""
    from dvc.lock import LockError
    from dvc.repo import Repo

    give_up, pause = time.monotonic() + wait_s, 0.5
    while True:
        try:
            with Repo(str(root)) as repo:
                repo.commit(name, force=True)
            return
        except LockError:
            if time.monotonic() + pause > give_up:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 10.0)
