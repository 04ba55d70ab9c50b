"""``kdecay smoke``: the whole pipeline on synthetic CIFAR archives, through real ``dvc repro``.

Builds a scratch git + DVC workspace (kept afterwards, so ``dvc metrics show``, ``dvc plots
show`` and single stages can be inspected) holding the repository's ``dvc.yaml`` and appendix
table, a ``params.yaml`` made from ``params.smoke.yaml`` (comments kept) whose data URLs point
(file://) at synthetic archives written by :func:`kdecay.data.synth.make_archive`, and a link
to ``src``. The real download -> md5 -> extract -> prepare -> train -> aggregate -> tables ->
figures stages then run exactly as on a GPU machine, only with tiny models and a few epochs.
A workspace already up to date is left as it is: a rerun trains nothing and commits nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kdecay.checks import ConfigError
from kdecay.config import Config
from kdecay.config.yaml_edit import edit_yaml_text
from kdecay.config.yaml_io import read_yaml_mapping
from kdecay.data.datasets import DATASETS
from kdecay.data.synth import make_archive
from kdecay.sweep.smoke_output import run_quietly
from kdecay.sweep.tools import tool_env

__all__ = ["repo_root", "run_smoke", "setup_workspace"]

GIT_IDENTITY = ["-c", "user.name=kdecay smoke", "-c", "user.email=smoke@kdecay.invalid"]
HEADER = (
    "# SYNTHETIC smoke workspace: written by `kdecay smoke` from params.smoke.yaml, with the\n"
    "# data URLs pointing at synthetic CIFAR-format archives in ./archives. Your edits are\n"
    "# kept by the next `make smoke` (`kdecay smoke --reset` restores the default).\n"
)


def repo_root() -> Path:
    """The clone this package is installed from (editable install, src layout)."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "dvc.yaml").is_file() or not (root / "paper" / "appendix_tables.csv").is_file():
        raise ConfigError(
            f"kdecay smoke needs the repository's dvc.yaml and paper/ next to src/ "
            f"(looked in {root}): run it from a clone with `pip install -e .`"
        )
    return root


def _params_source(workdir: Path, params_file: Path | None, reset: bool) -> Path:
    """The user's ``<workdir>/params.yaml`` if there is one (their edits are kept), else (or
    with ``reset``) ``params_file`` or ``params.smoke.yaml``."""
    mine = workdir / "params.yaml"
    if mine.is_file() and not reset and params_file is None:
        return mine
    return params_file or repo_root() / "params.smoke.yaml"


def _md5(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _archive_entries(workdir: Path, params: dict[str, Any]) -> dict[tuple[str, ...], str]:
    """The data.<dataset>.url/md5 values the workspace needs. An archive already in
    ``archives/`` with the md5 its params name is kept; any other is written anew.

    ``params`` (the workspace's raw params) is validated first as a whole, so a typo in it
    stops here, naming the key."""
    config = Config.from_mapping(params)
    values: dict[tuple[str, ...], str] = {}
    for dataset in config.datasets:
        source = config.data.sources.get(dataset)
        path = workdir / "archives" / DATASETS[dataset].archive
        kept = source is not None and path.is_file() and source.url == path.as_uri()
        if not (kept and source is not None and source.md5 == _md5(path)):
            path, md5 = make_archive(
                dataset,
                workdir / "archives",
                n_train=config.smoke.train_images,
                n_test=config.smoke.test_images,
                seed=config.smoke.seed,
            )
            values[("data", dataset, "url")] = path.as_uri()
            values[("data", dataset, "md5")] = md5
    return values


def _write_params(workdir: Path, source: Path) -> None:
    """``<workdir>/params.yaml`` from ``source`` with the archives filled in, written only when
    its text changes (comments and layout kept: a round trip, not a dump)."""
    text = source.read_text()
    with contextlib.redirect_stdout(io.StringIO()):  # make_archive's lines: one line below
        values = _archive_entries(workdir, read_yaml_mapping(source))
    if values:
        print(f"wrote the synthetic archives ({workdir / 'archives'})")
        text = edit_yaml_text(text, values)
    target = workdir / "params.yaml"
    if source.resolve() != target.resolve():  # made anew: say what it is; the user's is theirs
        text = HEADER + text
    if not target.is_file() or target.read_text() != text:
        target.write_text(text)


def _copy_if_changed(source: Path, target: Path) -> None:
    if not target.is_file() or target.read_bytes() != source.read_bytes():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _git(workdir: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *GIT_IDENTITY, *args], cwd=workdir, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise ConfigError(f"`git {' '.join(args)}` failed in {workdir}: {done.stderr.strip()}")
    return done.stdout


def _commit(workdir: Path, message: str) -> bool:
    """Commit everything that changed in the workspace; nothing changed, no commit."""
    _git(workdir, "add", "-A")
    if not _git(workdir, "status", "--porcelain"):
        return False
    _git(workdir, "commit", "-q", "-m", message)
    return True


def setup_workspace(workdir: Path, params_file: Path | None = None, reset: bool = False) -> Path:
    """Create (or refresh) the scratch workspace; returns its absolute path."""
    root = repo_root()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    _write_params(workdir, _params_source(workdir, params_file, reset))
    for item in (root / "paper").rglob("*"):
        if item.is_file():
            _copy_if_changed(item, workdir / "paper" / item.relative_to(root / "paper"))
    _copy_if_changed(root / "dvc.yaml", workdir / "dvc.yaml")
    ignore = (root / ".gitignore").read_text() + "/archives/\n"
    if not (workdir / ".gitignore").is_file() or (workdir / ".gitignore").read_text() != ignore:
        (workdir / ".gitignore").write_text(ignore)
    src = workdir / "src"
    if not src.exists():
        src.symlink_to(root / "src", target_is_directory=True)
    if not (workdir / ".git").exists():
        _git(workdir, "init", "-q")
    if not (workdir / ".dvc").exists():
        run_quietly([sys.executable, "-m", "dvc", "init", "-q"], workdir)
        run_quietly([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], workdir)
    _commit(workdir, "smoke workspace")
    return workdir


def up_to_date(workdir: Path) -> bool:
    """Whether every stage of the workspace is up to date (``dvc status --quiet``: exit 0)."""
    cmd = [sys.executable, "-m", "dvc", "status", "--quiet"]
    return subprocess.run(cmd, cwd=workdir, env=tool_env(), capture_output=True).returncode == 0


def run_smoke(
    workdir: Path, params_file: Path | None = None, reset: bool = False, fuse: int = 1
) -> Path:
    """Set up the workspace, train what is stale, commit dvc.lock, print the tables once.

    The tools' own output goes to ``results/logs/smoke.log`` in the workspace; the screen
    gets a progress bar, a line per group of stages and the failures. ``fuse`` > 1: the
    training stages run through ``kdecay sweep --fuse`` (Ray on this machine's CPUs, up to
    ``fuse`` runs of a row as one network, each recorded in dvc.lock; the sweep ends with
    ``dvc repro`` of the rest), which ``make smoke`` uses; 1: ``dvc repro`` trains every run
    alone."""
    start = time.perf_counter()
    workdir = setup_workspace(workdir, params_file, reset)
    print(f"smoke workspace {workdir}; the tools' output goes to results/logs/smoke.log there")
    if up_to_date(workdir):
        print("every stage is up to date: nothing to train (edit params.yaml there to change)")
    elif fuse > 1:
        cpus = str(os.cpu_count() or 1)
        sweep = ["sweep", "--fuse", str(fuse), "--gpus", "0", "--cpus", cpus]
        run_quietly([sys.executable, "-m", "kdecay", *sweep], workdir, progress=True)
    else:
        run_quietly([sys.executable, "-m", "dvc", "repro"], workdir, progress=True)
        run_quietly([sys.executable, "-m", "kdecay", "clean-checkpoints"], workdir)
    _commit(workdir, "smoke run: dvc.lock")
    _print_results(workdir, time.perf_counter() - start)
    return workdir


def _print_results(workdir: Path, seconds: float) -> None:
    """The tables once, where the outputs are, and how to open them with this venv's dvc."""
    tables = workdir / "paper_figures" / "tables" / "tables.md"
    print("\n" + tables.read_text().strip() + "\n")
    here = Path.cwd()
    shown = Path(os.path.relpath(workdir, here)) if workdir.is_relative_to(here) else workdir
    dvc = Path(sys.executable).parent / "dvc"
    near = Path(os.path.relpath(dvc, workdir))
    dvc = near if not str(near).startswith("../..") else dvc  # ../.venv/bin/dvc from smoke/
    print(
        f"smoke run finished in {seconds:.0f}s. Outputs in {shown}/: results/summary.csv, "
        f"paper_figures/tables/tables.md (.tex, .csv), paper_figures/*.png (.pdf).\n"
        f"Look at them: cd {shown} && {dvc} metrics show --md  (or `dvc plots show`); "
        f"`make smoke-figures` rebuilds them."
    )
