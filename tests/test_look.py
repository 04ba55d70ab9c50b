"""`kdecay look --apply` on a workspace whose claims have finished their first look (3 seeds
per arm): a clear claim stops at "yes", a hopeless one stops for futility, and only the
undecided one gets the next look's seeds; params.yaml keeps its comments, `kdecay check`'s
config accepts it, and DVC renders exactly the new runs as new training stages."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from figure_runs import APPENDIX, REPO, write_run
from kdecay.cli import main as cli_main
from kdecay.config import load_config
from kdecay.report.aggregate import aggregate
from kdecay.sweep.preflight import _rendered_training_stages, check_dvc_stages
from tiny_runs import narrow

SPREAD = (-1.0, 0.0, 1.0, -0.5, 0.5, 0.2)  # per seed, times 0.15
DESIGN = {  # (row, run folder) -> mean final error over seeds
    ("wrn16_8", "original"): 6.0,  # the paper's k = 3 beats both by 2 points: clear
    ("wrn16_8", "k1"): 6.0,
    ("wrn16_8", "k3"): 4.0,
    ("preact_resnet110", "original"): 5.0,  # k = 2 is a point worse: hopeless
    ("preact_resnet110", "k1"): 5.0,
    ("preact_resnet110", "k2"): 6.0,
    ("wrn28_10_sgdr", "k1"): 5.0,  # SGDR: k = 1.5 a little better, not yet shown
    ("wrn28_10_sgdr", "k1.5"): 4.9,
    ("preact_resnet164", "k5"): 6.0,  # the other claims: hopeless too
    ("wrn28_10", "k1.5"): 6.0,
    ("densenet_bc100_k12", "k1.5"): 6.0,
}


def _workspace(tmp_path: Path) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["kdecay"]["ks"] = [1, 3]
    narrow(params, datasets=["cifar10"], seeds=[0], claim_seeds=[0, 1, 2])
    path = tmp_path / "params.yaml"
    path.write_text("# a comment --apply must keep\n" + yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    for run in load_config(path).runs():
        mean = DESIGN.get((run.row, run.method_dir), 5.0)
        final = mean + 0.15 * SPREAD[run.seed] - 4.0  # write_run adds 40 / 10 epochs
        write_run(tmp_path / "runs", run.dataset, run.row, run.method_dir, run.seed, final)
    aggregate(tmp_path / "runs", tmp_path / "summary.csv", path)
    return path


def _look(params: Path, *extra: str) -> int:
    summary = params.parent / "summary.csv"
    argv = ["look", "--params", str(params), "--summary", str(summary)]
    return cli_main([*argv, "--appendix", str(APPENDIX), *extra])


def test_look_apply_adds_seeds_only_to_the_undecided_claim(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    params = _workspace(tmp_path)
    monkeypatch.chdir(tmp_path)  # DVC reads the params of the working directory
    before = _rendered_training_stages(tmp_path)
    assert _look(params) == 0  # a plain look changes nothing
    out = capsys.readouterr().out
    assert "| CIFAR-10 wrn16_8 | 3 | 1 of 3 | 3 (3) |" in out and "decided: yes" in out
    assert "stopped: futility" in out and "| continues | 6 seeds per arm |" in out
    assert params.read_text().startswith("# a comment --apply must keep\n")

    assert _look(params, "--apply") == 3  # seeds added: make repro trains again
    assert params.read_text().startswith("# a comment --apply must keep\n")
    config = load_config(params)  # kdecay check's validation, claim_runs included
    seeds = {c.row: c.seeds for c in config.claims.cells}
    assert seeds.pop("wrn28_10_sgdr") == (0, 1, 2, 3, 4, 5)
    assert set(seeds.values()) == {(0, 1, 2)}  # decided claims: no seed more
    assert check_dvc_stages(config, tmp_path) == len(config.runs())
    after = _rendered_training_stages(tmp_path)
    assert set(before) <= set(after)
    new = sorted(set(after) - set(before))
    assert new == sorted(
        f"train_claim_kdecay@cifar10-wrn28_10_sgdr-{k}-seed{s}" for k in ("k1", "k1.5")
        for s in (3, 4, 5)
    )  # fmt: skip


def test_the_tables_say_the_look_each_verdict_was_reached_at(tmp_path: Path) -> None:
    import pandas as pd

    from kdecay.report.tables import write_tables

    params = _workspace(tmp_path)
    write_tables(tmp_path / "summary.csv", APPENDIX, tmp_path / "tables", params)
    table = pd.read_csv(tmp_path / "tables" / "cifar10.csv").set_index("row")
    assert table.loc["wrn16_8", "verdict"].startswith("yes at look 1 of 3, n=3 (")
    assert table.loc["preact_resnet110", "verdict"].startswith(
        "not confirmed: futile at look 1 of 3, n=3 (IUT p="
    )
    assert table.loc["wrn28_10_sgdr", "verdict"].startswith(
        "not confirmed yet: look 1 of 3, n=3; look 2 takes 6 seeds per arm"
    )
    assert (table["claim_state"] == "futile").sum() == 4  # every other claim: hopeless
