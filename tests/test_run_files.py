"""`kdecay aggregate` checks every run's metrics.json and run.json: a damaged or forged file
(a non-number, an error outside [0, 100], a run cut short, an unknown status, another
configuration's hash, a spreadsheet formula, a file nested too deep) makes its run
``corrupt`` with one short ``problem`` naming the file and the field, is never averaged, and
never ends the stage in a traceback."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from figure_runs import figure_params, run_spec, write_run
from kdecay.cli import main as cli_main
from kdecay.config import run_folder
from kdecay.report.aggregate import RUN_COLUMNS, aggregate
from kdecay.report.run_files import check_run, safe_cell

ROW, SEEDS, DAMAGED = "wrn16_8", (0, 1, 2), 2  # the seed of k1 a case damages
FINALS = {"original": 5.0, "k1": 3.0}  # write_run's final error adds 40 / 10 epochs


def _workspace(tmp_path: Path) -> tuple[Path, Path]:
    """(params file, runs folder): wrn16_8 on CIFAR-10, original and k = 1, 3 good seeds."""
    params = figure_params(tmp_path, rows=(ROW,), ks=(1,), datasets=["cifar10"], seeds=[*SEEDS])
    runs = tmp_path / "runs"
    for method, final in FINALS.items():
        for seed in SEEDS:
            write_run(runs, "cifar10", ROW, method, seed, final + 0.1 * seed, params=params)
    return params, runs


def _lines(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(run lines, cell lines) of a summary, indexed by (method, seed) and method."""
    runs = summary[summary["kind"] == "run"].set_index(["method", "seed"])
    return runs, summary[summary["kind"] == "cell"].set_index("method")


def _metrics(key: str, value: Any) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def change(metrics: dict[str, Any], _run_json: dict[str, Any]) -> None:
        metrics[key] = value

    return change


def _run_json(key: str, value: Any) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def change(_metrics: dict[str, Any], run_json: dict[str, Any]) -> None:
        run_json[key] = value

    return change


def _only_status(metrics: dict[str, Any], _run_json: dict[str, Any]) -> None:
    metrics.clear()
    metrics["status"] = "completed"


HOSTILE: dict[str, tuple[Callable[..., None] | str, tuple[str, ...]]] = {
    # case: (change of the two files' objects, or metrics.json's raw text; words of `problem`)
    "nan": (_metrics("final_test_error", math.nan), ("metrics.json", "final_test_error NaN")),
    "negative": (_metrics("final_test_error", -5), ("final_test_error -5 outside [0, 100]",)),
    "above 100": (_metrics("final_test_error", 150), ("final_test_error 150 outside [0, 100]",)),
    "huge": (_metrics("best_test_error", 1e308), ("metrics.json", "best_test_error 1e+308")),
    "string": (_metrics("final_test_error", "4.2"), ("final_test_error '4.2' is not a number",)),
    "bool": (_metrics("final_test_error", True), ("final_test_error True is not a number",)),
    "only status": (_only_status, ("metrics.json: no final_test_error",)),
    "cut short": (_metrics("epochs_completed", 1), ("epochs_completed 1 is not the configured",)),
    "string epoch": (_metrics("best_epoch", "7"), ("metrics.json", "best_epoch '7'")),
    "epoch past the end": (_metrics("best_epoch", 10_000), ("best_epoch 10000 outside [1, ",)),
    "absurd epochs": (_metrics("epochs_completed", 1e30), ("epochs_completed 1e+30 is not an",)),
    "absurd params": (_metrics("params", 10**30), ("metrics.json: params 1000000000000000",)),
    "unknown status": (_metrics("status", "weird"), ("metrics.json: status 'weird'",)),
    "status number": (_metrics("status", 5), ("metrics.json: status 5 is not",)),
    "foreign hash": (
        _run_json("config_hash", "feedfacecafe0123"),
        ("run.json: config_hash 'feedfacecafe0123' is not this configuration's", "--force"),
    ),
    "formula": (_metrics("device", '=HYPERLINK("x")'), ("metrics.json: device '=HYPERLINK",)),
    "device number": (_metrics("device", 7), ("metrics.json: device 7 is not a string",)),
    "deep nesting": ("[" * 100_000 + "]" * 100_000, ("metrics.json: not readable JSON",)),
    "huge int": ('{"status": "completed", "params": ' + "9" * 5000 + "}", ("metrics.json",)),
    "not an object": ("[1, 2]", ("metrics.json: not a JSON object",)),
}


def _damage(folder: Path, change: Callable[..., None] | str) -> None:
    """Apply a case to a run folder: edit its files' objects, or replace metrics.json."""
    if isinstance(change, str):
        (folder / "metrics.json").write_text(change)
        return
    metrics = json.loads((folder / "metrics.json").read_text())
    run_json = json.loads((folder / "run.json").read_text())
    change(metrics, run_json)
    (folder / "metrics.json").write_text(json.dumps(metrics))  # NaN allowed, as a forger would
    (folder / "run.json").write_text(json.dumps(run_json))


def test_good_runs_are_completed_and_reported_at_full_precision(tmp_path: Path) -> None:
    params, runs = _workspace(tmp_path)
    summary = aggregate(runs, tmp_path / "summary.csv", params)
    lines, cells = _lines(summary)
    assert (lines["status"] == "completed").all() and lines["problem"].eq("").all()
    on_disk = pd.read_csv(tmp_path / "summary.csv")
    assert list(on_disk.columns[: len(RUN_COLUMNS)]) == RUN_COLUMNS
    assert RUN_COLUMNS[-1] == "problem" and on_disk["problem"].isna().all()
    for (method, seed), line in lines.iterrows():
        folder = run_folder(runs, "cifar10", ROW, method, seed)
        metrics = json.loads((folder / "metrics.json").read_text())
        for key in ("final_test_error", "best_test_error", "epochs_completed", "device"):
            assert line[key] == metrics[key], key
        spec = run_spec(params, "cifar10", ROW, method, seed)
        assert line["config_hash"] == spec.config_hash() and line["epochs"] == spec.epochs
    for method, final in FINALS.items():
        assert cells.loc[method, "n"] == 3 and cells.loc[method, "n_corrupt"] == 0
        assert cells.loc[method, "mean_error"] == pytest.approx(final + 4.1)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_damaged_or_forged_run_is_corrupt_and_never_averaged(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    change, words = HOSTILE[case]
    params, runs = _workspace(tmp_path)
    good = _lines(aggregate(runs, tmp_path / "good.csv", params))[0]
    _damage(run_folder(runs, "cifar10", ROW, "k1", DAMAGED), change)
    capsys.readouterr()
    out = tmp_path / "summary.csv"
    argv = ["aggregate", "--runs", str(runs), "--out", str(out), "--params", str(params)]
    assert cli_main(argv) == 0  # the stage goes on, no traceback
    said = capsys.readouterr()
    assert "Traceback" not in said.out + said.err
    assert f"{DAMAGED}/metrics.json is corrupt" in said.out or "/run.json is corrupt" in said.out
    lines, cells = _lines(pd.read_csv(out, keep_default_na=False, na_values=[""]))
    line = lines.loc[("k1", DAMAGED)]
    assert line["status"] == "corrupt", line["problem"]
    for word in words:
        assert word in line["problem"], (word, line["problem"])
    assert line["problem"].startswith(("metrics.json: ", "run.json: "))
    assert math.isnan(line["final_test_error"]) and math.isnan(line["best_test_error"])
    assert not str(line["device"]).startswith(("=", "+", "-", "@"))
    kept = good.loc[[("k1", s) for s in SEEDS if s != DAMAGED], "final_test_error"]
    assert cells.loc["k1", "n"] == 2 and cells.loc["k1", "n_corrupt"] == 1
    assert cells.loc["k1", "n_missing"] == 0
    assert cells.loc["k1", "mean_error"] == pytest.approx(kept.mean(), abs=0)
    assert cells.loc["original", "n"] == 3  # the other cell is untouched
    assert (lines.drop(index=("k1", DAMAGED))["status"] == "completed").all()


def test_a_formula_is_kept_as_text_in_the_summary(tmp_path: Path) -> None:
    params, runs = _workspace(tmp_path)
    _damage(run_folder(runs, "cifar10", ROW, "k1", 0), _run_json("device", "+1+cmd"))
    _damage(run_folder(runs, "cifar10", ROW, "k1", 0), _metrics("device", "@SUM(A1)"))
    link = '=HYPERLINK("http://x.invalid","click")'  # the audit's D14: in run.json alone
    folder = run_folder(runs, "cifar10", ROW, "original", 0)
    metrics = json.loads((folder / "metrics.json").read_text())
    del metrics["device"]  # as the trainer writes it: the device is in run.json only
    (folder / "metrics.json").write_text(json.dumps(metrics))
    _damage(folder, _run_json("device", link))
    aggregate(runs, tmp_path / "summary.csv", params)
    lines = _lines(pd.read_csv(tmp_path / "summary.csv"))[0]
    assert lines.loc[("k1", 0), "device"] == "'@SUM(A1)"
    assert lines.loc[("original", 0), "device"] == "'" + link
    assert safe_cell("-2") == "'-2" and safe_cell("\tx") == "'\tx" and safe_cell("cpu") == "cpu"


def test_missing_and_diverged_runs_keep_their_status(tmp_path: Path) -> None:
    """No metrics.json: missing (whatever run.json says); a diverged run without run.json
    (an older run) stays diverged; run.json without metrics.json is a run in progress."""
    params, runs = _workspace(tmp_path)
    gone = run_folder(runs, "cifar10", ROW, "k1", 0)
    (gone / "metrics.json").unlink()
    (gone / "run.json").write_text('{"config_hash": "forged"}')
    write_run(runs, "cifar10", ROW, "k1", 1, 0.0, status="diverged", params=params)
    (run_folder(runs, "cifar10", ROW, "k1", 1) / "run.json").unlink()
    (run_folder(runs, "cifar10", ROW, "original", 0) / "run.json").unlink()
    summary = aggregate(runs, tmp_path / "summary.csv", params)
    lines, cells = _lines(summary)
    assert lines.loc[("k1", 0), "status"] == "missing" and lines.loc[("k1", 0), "problem"] == ""
    assert lines.loc[("k1", 1), "status"] == "diverged"
    assert lines.loc[("original", 0), "status"] == "corrupt"  # completed, yet no run.json
    assert lines.loc[("original", 0), "problem"].startswith("run.json: absent")
    assert cells.loc["k1", ["n", "n_missing", "n_diverged"]].tolist() == [1, 1, 1]


def test_check_run_rules() -> None:
    ok = {"status": "diverged", "diverged_epoch": 3, "epochs_completed": 2}
    assert check_run(ok, None, "h", 10) == ("diverged", "")
    assert check_run(None, {"config_hash": "x"}, "h", 10) == ("missing", "")
    late = {**ok, "diverged_epoch": 11}
    assert check_run(late, None, "h", 10) == (
        "corrupt",
        "metrics.json: diverged_epoch 11 outside [1, 10]",
    )
    status, problem = check_run({"final_test_error": 4.0}, {"config_hash": "h"}, "h", 10)
    assert (status, problem) == ("corrupt", "metrics.json: no status")
    status, problem = check_run(ok, {"config_hash": "g"}, "h", 10, "train_original@x")
    assert status == "corrupt" and problem.endswith(
        "(trained with other params; retrain it: dvc repro --force train_original@x)"
    )
