"""The smoke pipeline as `make smoke` runs it (`kdecay smoke --fuse 4`: the training stages
through `kdecay sweep --fuse 4` on Ray, each run recorded in dvc.lock, then real `dvc repro`)
in a scratch git + DVC workspace; a later `dvc repro` trains a changed run alone."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest
import yaml

from kdecay.sweep.smoke import run_smoke, setup_workspace
from kdecay.sweep.tools import tool_env

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def dvc(ws: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=ws, env=tool_env(), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def ran_stages(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", log))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The workspace of `kdecay smoke --fuse 4` as `make smoke` runs it, and what it printed."""
    ws = tmp_path_factory.mktemp("smoke") / "ws"
    cmd = [sys.executable, "-m", "kdecay", "smoke", "--workdir", str(ws), "--fuse", "4"]
    done = subprocess.run(cmd, env=tool_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return ws, done.stdout + done.stderr


@pytest.fixture(scope="module")
def smoke_ws(smoke_run: tuple[Path, str]) -> Path:
    return smoke_run[0]


def git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=ws, capture_output=True, text=True, check=True).stdout


def test_smoke_is_quiet_and_a_rerun_is_quick_commits_nothing_and_keeps_comments(
    smoke_run: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ws, printed = smoke_run
    lines = printed.split("\n")  # a progress bar's updates are one line (carriage returns)
    assert len(lines) <= 60, printed
    assert printed.count("### SYNTHETIC DATA") == 2  # each table once
    assert "clean-checkpoints" not in printed and "git add" not in printed
    head = git(ws, "rev-parse", "HEAD")
    log = ws / "results" / "logs" / "smoke.log"
    logged = log.read_text()
    run_smoke(ws, fuse=4)  # a no-op: it checks dvc status and starts nothing
    assert "every stage is up to date: nothing to train" in capsys.readouterr().out
    assert "Running stage" not in log.read_text()[len(logged) :]
    assert git(ws, "rev-parse", "HEAD") == head and git(ws, "status", "--porcelain") == ""
    ours = (ws / "params.yaml").read_text()
    comments = [c for c in (ROOT / "params.smoke.yaml").read_text().splitlines() if "#" in c]
    assert comments and all(c.split("#", 1)[1] in ours for c in comments)


def test_tables_have_every_appendix_row(smoke_ws: Path):
    appendix = pd.read_csv(ROOT / "paper" / "appendix_tables.csv")
    for dataset in ("cifar10", "cifar100"):
        table = pd.read_csv(smoke_ws / "paper_figures" / "tables" / f"{dataset}.csv")
        assert list(table["row"]) == list(appendix[appendix["dataset"] == dataset]["row"])
        assert table["our_original_err"].notna().all()  # every run of the smoke completed
        assert table["our_best_err_on_test_set"].notna().all()
        md = (smoke_ws / "paper_figures" / "tables" / f"{dataset}.md").read_text()
        assert md.startswith("### SYNTHETIC DATA")
        tex = (smoke_ws / "paper_figures" / "tables" / f"{dataset}.tex").read_text()
        assert r"\begin{tabular}" in tex
    summary = pd.read_csv(smoke_ws / "results" / "summary.csv")
    runs = summary[summary["kind"] == "run"]
    # the sweep: 2 datasets x (5 original rows + 6 rows x 2 k) x 1 seed = 34; the 4 claims'
    # first look (seeds 0, 1, 2 per arm) adds seeds 1, 2 of each original and k = 1, and the
    # paper's k at 0, 1, 2 where the smoke does not sweep it (k = 2, 1.5, 3.5), at 1, 2 where
    # it does (k = 3): 4 x (2 + 2) + 3 x 3 + 2 = 27
    assert len(runs) == 61 and (runs["status"] == "completed").all()
    cells = summary[summary["kind"] == "cell"]
    multi = cells[cells["n"] >= 2]
    assert multi["std_error"].notna().all() and len(multi) == 4 * 3  # the claims' three arms
    assert cells.loc[cells["n"] == 3, "median_error"].notna().all()
    table = pd.read_csv(smoke_ws / "paper_figures" / "tables" / "cifar10.csv")
    assert any("Welch p=" in v for v in table["vs_original"])  # wrn16_8: the paper's k = 3
    verdicts = table["verdict"]
    assert any("IUT p=" in v and "look 1 of 3, n=3" in v for v in verdicts)
    assert not any(v.startswith("1 seed") for v in verdicts)


def test_figures_are_valid_files(smoke_ws: Path):
    for name in ("lr_schedules", "ksweep", "curves"):
        pdf = smoke_ws / "paper_figures" / f"{name}.pdf"
        png = smoke_ws / "paper_figures" / f"{name}.png"
        assert pdf.read_bytes()[:4] == b"%PDF" and pdf.stat().st_size > 1000
        img = mpimg.imread(png)
        assert img.shape[0] > 200 and img.shape[1] > 200
        assert img.std() > 0  # not blank


def test_smoke_removes_the_checkpoints_of_recorded_runs(smoke_ws: Path):
    folder = smoke_ws / ".cache" / "checkpoints"
    assert not folder.exists() or not any(p.is_dir() for p in folder.iterdir())


def test_dvc_sees_metrics_and_plots(smoke_ws: Path):
    shown = dvc(smoke_ws, "metrics", "show", "--json")
    assert "final_test_error" in shown and "k3/seed0" in shown


def test_second_repro_runs_nothing_and_one_k_change_reruns_only_that_k(smoke_ws: Path):
    assert ran_stages(dvc(smoke_ws, "repro")) == set()
    params_file = smoke_ws / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["kdecay"]["ks"] = [1, 3, 5]  # k = 5: no smoke claim's k, so claim_runs stays
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    ran = ran_stages(dvc(smoke_ws, "repro"))
    trained = {s for s in ran if s.startswith("train_")}
    rows = [
        "preact_resnet110",
        "preact_resnet164",
        "wrn16_8",
        "wrn28_10",
        "wrn28_10_sgdr",
        "densenet_bc100_k12",
    ]
    datasets = ("cifar10", "cifar100")
    # the sweep's seed only: the claim runs keep their own k (claims.cells)
    assert trained == {f"train_kdecay@{d}-{r}-5-0" for d in datasets for r in rows}
    assert {"aggregate", "tables", "figures"} <= ran


def test_smoke_again_keeps_the_users_params_and_tracks_dvc_lock(smoke_ws: Path):
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=smoke_ws, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "dvc.lock" in tracked and "params.yaml" in tracked
    params_file = smoke_ws / "params.yaml"
    edited = params_file.read_text() + "# my own note: keep me\n"
    params_file.write_text(edited)
    setup_workspace(smoke_ws)
    assert params_file.read_text() == edited
    dvc(smoke_ws, "plots", "show")  # writes dvc_plots/index.html
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=smoke_ws,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "dvc_plots" not in status and "results/logs" not in status


def test_the_next_look_adds_exactly_its_runs_to_dvc(smoke_ws: Path, tmp_path: Path):
    """`kdecay look --apply` in (a copy of) the finished smoke workspace: `kdecay check`'s
    config accepts the params it wrote, and `dvc status` lists exactly the runs it added
    (none when every claim was decided at the first look)."""
    from kdecay.config import load_config

    ws = tmp_path / "ws"
    shutil.copytree(smoke_ws, ws, symlinks=True)
    before = {r.stage for r in load_config(ws / "params.yaml").runs()}
    cmd = [sys.executable, "-m", "kdecay", "look", "--apply"]
    done = subprocess.run(cmd, cwd=ws, env=tool_env(), capture_output=True, text=True)
    assert done.returncode in (0, 3), done.stdout + done.stderr
    added = {r.stage for r in load_config(ws / "params.yaml").runs()} - before
    assert (done.returncode == 3) == bool(added), done.stdout
    out = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=ws,
                         env=tool_env(), capture_output=True, text=True, check=True)  # fmt: skip
    status = json.loads(out.stdout or "{}")
    assert {s for s in status if s.startswith("train_")} == added
