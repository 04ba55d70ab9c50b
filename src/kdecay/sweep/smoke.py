"""``kdecay smoke``: the whole pipeline on synthetic CIFAR archives, through real ``dvc repro``.

Builds a scratch git + DVC workspace (kept afterwards, so ``dvc metrics show``, ``dvc plots
show`` and single stages can be inspected) holding the repository's ``dvc.yaml`` and appendix
table, a ``params.yaml`` made from ``params.smoke.yaml`` whose data URLs point (file://) at
synthetic archives written by :func:`kdecay.data.synth.make_archive`, and a link to ``src``. The
real download -> md5 -> extract -> prepare -> train -> aggregate -> tables -> figures stages
then run exactly as on a GPU machine, only with tiny models and a few epochs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from kdecay.checks import CommandFailedError, ConfigError
from kdecay.config import Config
from kdecay.config.yaml_io import read_yaml_mapping
from kdecay.data.synth import make_archive
from kdecay.sweep.tools import tool_env

# exit statuses of a child stopped by Ctrl-C: SIGINT (-2, or 130 through a shell) and DVC's
# own "interrupted by the user" status (252)
INTERRUPTED = (-2, 130, 252)
GIT_IDENTITY = ["-c", "user.name=kdecay smoke", "-c", "user.email=smoke@kdecay.invalid"]


def repo_root() -> Path:
    """The clone this package is installed from (editable install, src layout)."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "dvc.yaml").is_file() or not (root / "paper" / "appendix_tables.csv").is_file():
        raise ConfigError(
            f"kdecay smoke needs the repository's dvc.yaml and paper/ next to src/ "
            f"(looked in {root}): run it from a clone with `pip install -e .`"
        )
    return root


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Run one tool; a failure (its own message is already printed above) becomes one line
    naming the command, where the workspace is, and how to resume."""
    shown = " ".join(Path(c).name if c == sys.executable else c for c in cmd)
    print(f"$ {shown}", flush=True)
    status = subprocess.run(cmd, cwd=cwd, env=env).returncode
    if status in INTERRUPTED:
        raise KeyboardInterrupt(
            f"`{shown}` stopped; the smoke workspace {cwd} is kept: `make smoke` resumes it"
        )
    if status != 0:
        raise CommandFailedError(
            f"`{shown}` failed with exit status {status} (its message is above); the smoke "
            f"workspace {cwd} is kept: fix the cause, then `make smoke` resumes it"
        )


def _workspace_params(workdir: Path, params_file: Path | None, reset: bool) -> dict[str, Any]:
    """The workspace's params: the user's ``<workdir>/params.yaml`` if there is one (their
    edits are kept), else (or with ``reset``) ``params.smoke.yaml``."""
    mine = workdir / "params.yaml"
    if mine.is_file() and not reset and params_file is None:
        print(f"keeping {mine} and your edits to it (`kdecay smoke --reset` restores the default)")
        return read_yaml_mapping(mine)
    return read_yaml_mapping(params_file or repo_root() / "params.smoke.yaml")


def _write_params(path: Path, params: dict[str, Any]) -> None:
    header = (
        "# SYNTHETIC smoke configuration written by `kdecay smoke` from params.smoke.yaml;\n"
        "# the data URLs point at synthetic CIFAR-format archives in ./archives. Your edits\n"
        "# are kept by the next `make smoke` (`kdecay smoke --reset` restores the default).\n"
    )
    path.write_text(header + yaml.safe_dump(params, sort_keys=False))


def _fill_archives(workdir: Path, params: dict[str, Any]) -> bool:
    """Write the synthetic archives; point data.<dataset> at them. True if params changed.

    ``params`` (the workspace's raw params, rewritten afterwards) is validated first as a
    whole, so a typo in it stops here, naming the key."""
    config = Config.from_mapping(params)
    changed = False
    for dataset in config.datasets:
        path, md5 = make_archive(
            dataset,
            workdir / "archives",
            n_train=config.smoke.train_images,
            n_test=config.smoke.test_images,
            seed=config.smoke.seed,
        )
        entry = {"url": path.as_uri(), "md5": md5}
        data = params.setdefault("data", {})
        if data.get(dataset) != entry:
            data[dataset], changed = entry, True
    return changed


def setup_workspace(workdir: Path, params_file: Path | None = None, reset: bool = False) -> Path:
    """Create (or refresh) the scratch workspace; returns its absolute path."""
    root = repo_root()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    params = _workspace_params(workdir, params_file, reset)
    fresh = reset or params_file is not None or not (workdir / "params.yaml").is_file()
    if _fill_archives(workdir, params) or fresh:
        _write_params(workdir / "params.yaml", params)
    shutil.copytree(root / "paper", workdir / "paper", dirs_exist_ok=True)
    shutil.copy2(root / "dvc.yaml", workdir / "dvc.yaml")
    (workdir / ".gitignore").write_text((root / ".gitignore").read_text() + "/archives/\n")
    src = workdir / "src"
    if not src.exists():
        src.symlink_to(root / "src", target_is_directory=True)
    env = tool_env()
    if not (workdir / ".git").exists():
        _run(["git", "init", "-q"], workdir, env)
    if not (workdir / ".dvc").exists():
        _run([sys.executable, "-m", "dvc", "init", "-q"], workdir, env)
        _run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], workdir, env)
    _commit(workdir, "smoke workspace", env)
    return workdir


def _commit(workdir: Path, message: str, env: dict[str, str]) -> None:
    _run(["git", "add", "-A"], workdir, env)
    _run(["git", *GIT_IDENTITY, "commit", "-q", "--allow-empty", "-m", message], workdir, env)


def run_smoke(
    workdir: Path, params_file: Path | None = None, reset: bool = False, fuse: int = 1
) -> Path:
    """Set up the workspace, run ``dvc repro`` in it, commit dvc.lock, print the tables.

    ``fuse`` > 1: the training stages run first through ``kdecay sweep --fuse`` (Ray on this
    machine's CPUs, up to ``fuse`` runs of a row as one network, each recorded in dvc.lock;
    the sweep ends with ``dvc repro`` of the rest), which ``make smoke`` uses: on the 2-core
    CPU it was faster than ``dvc repro`` (README, Performance)."""
    start = time.perf_counter()
    workdir = setup_workspace(workdir, params_file, reset)
    env = tool_env()
    if fuse > 1:
        cpus = str(os.cpu_count() or 1)
        sweep = ["sweep", "--fuse", str(fuse), "--gpus", "0", "--cpus", cpus]
        _run([sys.executable, "-m", "kdecay", *sweep], workdir, env)
    else:
        _run([sys.executable, "-m", "dvc", "repro"], workdir, env)
        _run([sys.executable, "-m", "kdecay", "clean-checkpoints"], workdir, env)
    _commit(workdir, "smoke run: dvc.lock", env)
    tables = workdir / "paper_figures" / "tables" / "tables.md"
    print("\n" + tables.read_text())
    figures = sorted((workdir / "paper_figures").glob("*.p*"))
    print("figures:\n" + "\n".join(f"  {p}" for p in figures))
    print(
        f"\nsmoke run finished in {time.perf_counter() - start:.0f}s; workspace kept at "
        f"{workdir} (try `cd {workdir} && dvc metrics show --md`, `dvc plots show`)"
    )
    return workdir
