"""The README's own commands, typed as a newcomer would: `make repro` and `make figures` in a
fresh copy of the repository, in a plain shell (the venv is not activated, so the `kdecay`
commands of dvc.yaml must resolve through the Makefile), with the CIFAR archive placed by hand
where the README says and a tiny configuration in params.yaml.

The copy reuses this checkout's venv (``make VENV=...``) instead of installing torch again;
everything else (Makefile, dvc.yaml, params, DVC, every stage) is the copy's own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from kdecay.data.synth import make_archive
from tiny_runs import narrow

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.front_door]


def fresh_copy(dest: Path) -> Path:
    """The files a clone of this checkout has (tracked + untracked, not ignored), mtimes kept,
    committed to a new git repository."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())
    # the shared venv's install stamp must stay newer than pyproject.toml, or make would
    # reinstall the package from the copy into this checkout's venv
    os.utime(dest / "pyproject.toml", (0, 0))
    ident = ["-c", "user.name=newcomer", "-c", "user.email=newcomer@kdecay.invalid"]
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", *ident, "commit", "-qm", "c"]):
        subprocess.run(cmd, cwd=dest, check=True)
    return dest


def plain_shell_env() -> dict[str, str]:
    """The environment of a new terminal: no activated venv, no venv on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    venv_bin = str(VENV / "bin")
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    return env


def make(clone: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", *targets, f"VENV={VENV}"],
        cwd=clone,
        env=plain_shell_env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )


def tiny_params(archive_md5: str) -> dict:
    """The smoke rows (tiny members of every family; dvc.yaml names all six rows), k in {1},
    CIFAR-10 only: 11 runs."""
    smoke = yaml.safe_load((ROOT / "params.smoke.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    narrow(params, datasets=["cifar10"], claim_seeds=[])  # the claim stages: in the smoke test
    params["data"]["cifar10"]["md5"] = archive_md5  # the archive placed by hand
    params["rows"] = smoke["rows"]
    params["kdecay"]["ks"] = [1]
    params["train"] = smoke["train"]
    params["synthetic"] = True
    return params


@pytest.fixture(scope="module")
def repro_clone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    clone = fresh_copy(tmp_path_factory.mktemp("newcomer") / "kdecay")
    archive, md5 = make_archive("cifar10", clone / "data" / "raw" / "cifar10", 600, 300, seed=0)
    assert archive.name == "cifar-10-python.tar.gz"  # where the README says to place it
    (clone / "params.yaml").write_text(yaml.safe_dump(tiny_params(md5), sort_keys=False))
    done = make(clone, "repro")
    if done.returncode != 0:
        pytest.fail(f"make repro failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return clone, done.stdout + done.stderr


def test_make_repro_runs_every_stage_from_a_plain_shell(repro_clone: tuple[Path, str]) -> None:
    clone, log = repro_clone
    assert "kdecay: command not found" not in log
    for stage in (
        "download@cifar10",
        "prepare@cifar10",
        "train_original@cifar10-preact_resnet110-0",
        "train_kdecay@cifar10-preact_resnet110-1-0",
        "train_kdecay@cifar10-wrn28_10_sgdr-1-0",
        "aggregate",
        "tables",
        "figures",
    ):
        assert f"Running stage '{stage}'" in log, stage
    assert "already present with the expected md5" in log  # the hand-placed archive was used
    summary = pd.read_csv(clone / "results" / "summary.csv")
    runs = summary[summary["kind"] == "run"]
    assert len(runs) == 11 and (runs["status"] == "completed").all()
    assert (clone / "paper_figures" / "tables" / "cifar10.md").read_text().startswith("### SYN")
    assert (clone / "paper_figures" / "ksweep.png").stat().st_size > 1000


def test_make_figures_rebuilds_without_training(repro_clone: tuple[Path, str]) -> None:
    clone, _ = repro_clone
    (clone / "paper_figures" / "curves.png").unlink()
    done = make(clone, "figures")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Running stage 'figures'" in done.stdout
    assert "train_" not in done.stdout.replace("train_loss", "")
    assert (clone / "paper_figures" / "curves.png").is_file()


def test_dvc_views_are_readable(repro_clone: tuple[Path, str]) -> None:
    clone, _ = repro_clone
    dvc = [str(VENV / "bin" / "dvc")]
    env = plain_shell_env()
    shown = subprocess.run(
        [*dvc, "metrics", "show", "--json"], cwd=clone, env=env, capture_output=True, text=True
    )
    metrics = json.loads(shown.stdout)
    files = next(iter(metrics.values()))["data"]
    for path, entry in files.items():
        assert path.endswith("metrics.json")
        assert "device" not in entry["data"] and "git_commit" not in entry["data"]
    table = subprocess.run(
        [*dvc, "metrics", "show", "--md"], cwd=clone, env=env, capture_output=True, text=True
    ).stdout.splitlines()
    lines = [line for line in table if line.startswith("| results/runs/")]
    assert len(lines) == 11  # one line per run
    assert len(table[0].split("|")) - 2 <= 12  # path + the run's numbers, no provenance
    exp = subprocess.run(
        [*dvc, "exp", "show", "--csv"], cwd=clone, env=env, capture_output=True, text=True
    )
    assert exp.returncode == 0, exp.stderr
    run = "results/runs/cifar10/wrn16_8/original/seed0/metrics.json:"
    columns = [c for c in exp.stdout.splitlines()[0].split(",") if c.startswith(run)]
    assert 0 < len(columns) <= 11, columns  # the run's numbers only (was 26 columns a run)
    plots = subprocess.run(
        [*dvc, "plots", "show", "--json"], cwd=clone, env=env, capture_output=True, text=True
    )
    data = json.loads(plots.stdout)["data"]
    curves = data["results/plots/curves/cifar10-preact_resnet110.csv"][0]["content"]
    series = {v["series"] for v in curves["data"]["values"]}
    assert series == {"original", "k=1"}  # every curve of the row on one chart
    assert "results/plots/ksweep/cifar10.csv" in data
    assert not any("history.csv" in key for key in data)  # no 82 single-line charts


@pytest.mark.skipif(torch.cuda.is_available(), reason="the no-GPU path of make repro")
def test_make_repro_without_gpu_stops_before_downloading(tmp_path: Path) -> None:
    clone = fresh_copy(tmp_path / "kdecay")
    done = make(clone, "repro")
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "no GPU" in out and "make smoke" in out
    assert "downloading" not in out and not (clone / "data" / "raw").exists()


def test_make_figures_without_runs_says_where_runs_come_from(tmp_path: Path) -> None:
    clone = fresh_copy(tmp_path / "kdecay")
    done = make(clone, "figures")
    assert done.returncode != 0
    assert "make figures: no finished runs in results/runs yet: 'make repro' trains them" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr and "Errno" not in done.stderr
