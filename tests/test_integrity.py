"""Damaged or hostile files are detected and never trained on; every failure says what to do.

One test per case of the integrity audit: a decompression bomb, silent casts in prepare, a
damaged prepared file, damaged checkpoints (random bytes, truncation, a damaged pickle), a
kill after the run's outputs were written, leftover extraction folders, zero-image batches.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from archives import CIFAR10, batch, cifar10_members, tar_archive
from kdecay.checks import DataError
from kdecay.config import Config, load_config
from kdecay.config.yaml_io import read_yaml_mapping
from kdecay.data.datasets import DATASETS
from kdecay.data.download import download
from kdecay.data.prepare import load_prepared, prepare
from kdecay.data.synth import make_archive
from kdecay.train import checkpoint_path, train_run
from kdecay.train.checkpoint import load_checkpoint, previous_path, save_checkpoint
from tiny_runs import keep_rows, narrow

# ---------------------------------------------------------------------------------------------
# archives and prepare


def test_decompression_bomb_is_refused_before_extraction(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    md5 = tar_archive(raw / "cifar-10-python.tar.gz", {}, big={"data_batch_1": 300 * 2**20})
    assert (raw / "cifar-10-python.tar.gz").stat().st_size < 2 * 2**20  # 300 MB in < 2 MB
    out = tmp_path / "out"
    with pytest.raises(DataError, match="decompression bomb") as info:
        prepare("cifar10", raw, out, md5=md5)
    assert "data_batch_1" in str(info.value) and "314,572,800 bytes" in str(info.value)
    assert list(out.iterdir()) == []  # nothing extracted, extraction folder removed


def test_only_the_expected_members_are_extracted(tmp_path: Path, monkeypatch) -> None:
    from kdecay.data import archive as archive_module

    extracted: list[str] = []
    real = tarfile.TarFile.extractfile
    monkeypatch.setattr(
        tarfile.TarFile,
        "extractfile",
        lambda self, member, *a, **k: (extracted.append(member.name), real(self, member))[1],
    )
    # tarfile's own extraction (whose filter= needs Python 3.11.4+) is never used
    monkeypatch.setattr(tarfile.TarFile, "extract", None)
    _, md5 = make_archive("cifar10", tmp_path / "raw", n_train=50, n_test=10)
    prepare("cifar10", tmp_path / "raw", tmp_path / "out", md5=md5)
    expected = archive_module.expected_members(DATASETS["cifar10"])
    assert set(extracted) == expected  # not readme.html, not the folder entry


@pytest.mark.parametrize(
    ("data", "labels", "message"),
    [
        (np.full((10, 3072), 0.7), list(range(10)), "b'data' must be a uint8 array, got float64"),
        (np.full((10, 3072), 1000), list(range(10)), "b'data' must be a uint8 array, got int64"),
        (np.zeros((10, 3072), np.uint8), [2.7] * 10, "non-integer labels"),
        (np.zeros((10, 3072), np.uint8), [float("nan")] * 10, "non-integer labels"),
        (np.zeros((10, 3072), np.uint8), [True] * 10, "non-integer labels"),
        (np.zeros((10, 3072), np.uint8), [10**30] * 10, "must hold 10 integer labels"),
        (np.zeros((10, 3072), np.uint8), [12] * 10, "labels outside 0..9"),
        (np.zeros((0, 3072), np.uint8), [], "expected [n >= 1, 3072]"),
        (np.zeros((10, 3071), np.uint8), list(range(10)), "expected [n >= 1, 3072]"),
        ("not an array", list(range(10)), "must be a uint8 array, got bytes"),
    ],
    ids=["float", "int64", "float-labels", "nan", "bool", "huge", "range", "empty", "shape", "str"],
)
def test_prepare_never_casts_silently(tmp_path: Path, data, labels, message: str) -> None:
    raw = tmp_path / "raw"
    md5 = tar_archive(raw / "cifar-10-python.tar.gz", cifar10_members(batch(data, labels)))
    with pytest.raises(DataError) as info:
        prepare("cifar10", raw, tmp_path / "out", md5=md5)
    assert message in str(info.value) and "data_batch_1" in str(info.value)
    assert not (tmp_path / "out" / "cifar10.pt").exists()


def test_leftover_extraction_folders_are_removed(tmp_path: Path) -> None:
    _, md5 = make_archive("cifar10", tmp_path / "raw", n_train=50, n_test=10)
    leftover = tmp_path / "out" / ".cifar10-extract-killed"
    (leftover / CIFAR10).mkdir(parents=True)
    (leftover / CIFAR10 / "data_batch_1").write_bytes(b"half")
    prepare("cifar10", tmp_path / "raw", tmp_path / "out", md5=md5)
    assert not leftover.exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cifar10.pt"]


def test_damaged_prepared_data_is_detected(tmp_path: Path) -> None:
    _, md5 = make_archive("cifar10", tmp_path / "raw", n_train=2000, n_test=100)
    out = prepare("cifar10", tmp_path / "raw", tmp_path / "out", md5=md5)
    load_prepared(out)  # intact: loads
    blob = bytearray(out.read_bytes())
    middle = len(blob) // 2
    blob[middle : middle + 4096] = bytes(range(256)) * 16  # 4 KB overwritten in the middle
    out.write_bytes(bytes(blob))
    with pytest.raises(DataError) as info:
        load_prepared(out)
    text = str(info.value)
    assert str(out) in text and "prepare@cifar10" in text
    assert "weights_only" not in text


# ---------------------------------------------------------------------------------------------
# checkpoints


@pytest.fixture
def run_ws(tmp_path: Path) -> Path:
    """Prepared synthetic CIFAR-10 and a params file with one tiny row, 4 epochs."""
    archive, md5 = make_archive("cifar10", tmp_path / "synth", n_train=400, n_test=100, seed=2)
    download("cifar10", tmp_path / "raw", url=archive.as_uri(), md5=md5)
    prepare("cifar10", tmp_path / "raw", tmp_path / "prepared", md5=md5)
    import yaml

    params = {
        "data": {"prepared_dir": str(tmp_path / "prepared"), "cifar10": {"md5": md5}},
        "datasets": ["cifar10"],
        "seeds": [0],
        "rows": {
            "tiny": {
                "model": {"family": "preact_resnet", "depth": 8, "base_width": 4},
                "epochs": 4,
                "batch_size": 100,
                "optimizer": {"lr": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 0},
                "original": {"schedule": "step", "milestones": [3], "gamma": 0.1},
            }
        },
        "kdecay": {"schedule": "poly", "power": 2.0, "lr_end": 0.0, "ks": [1]},
        "train": {"checkpoint_every": 1, "checkpoint_dir": str(tmp_path / "ckpt")},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def _spec(ws: Path):
    return Config.from_mapping(read_yaml_mapping(ws / "params.yaml")).run_spec(
        "cifar10", "tiny", "original", None, 0
    )


def _reference(ws: Path) -> dict:
    m = train_run(_spec(ws), ws / "ref")
    for f in checkpoint_path(_spec(ws)).parent.iterdir():
        f.unlink()
    return m


def _checkpoint_after(ws: Path, epochs: int) -> Path:
    """A run stopped after ``epochs`` epochs: its checkpoint (and the previous one) on disk."""
    import yaml

    params = yaml.safe_load((ws / "params.yaml").read_text())
    spec = Config.from_mapping(params).run_spec("cifar10", "tiny", "original", None, 0)

    class StopError(Exception):
        pass

    def log(line: str) -> None:
        if f"epoch {epochs}/" in line:
            raise StopError

    with pytest.raises(StopError):
        train_run(spec, ws / "partial", log=log)
    return checkpoint_path(spec)


@pytest.mark.parametrize("damage", ["random-bytes", "truncated", "damaged-pickle"])
def test_damaged_checkpoint_is_moved_aside_and_never_resumed(run_ws: Path, damage: str) -> None:
    reference = _reference(run_ws)
    ckpt = _checkpoint_after(run_ws, 3)  # checkpoints after epochs 1 and 2 exist
    blob = bytearray(ckpt.read_bytes())
    header_end = blob.index(b"\n") + 1
    if damage == "random-bytes":
        rng = np.random.default_rng(0)
        at = header_end + len(blob) // 2
        blob[at : at + 4096] = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    elif damage == "truncated":
        blob = blob[: len(blob) // 2]
    else:  # a damaged pickle with a correct checksum: the weights-only load refuses it
        import hashlib

        bad = b"\x80\x02cos\nsystem\nq\x00."  # a pickle that names os.system
        digest = hashlib.sha256(bad).hexdigest().encode()
        blob = bytearray(b"KDECAY-CHECKPOINT sha256=" + digest + b"\n" + bad)
    ckpt.write_bytes(bytes(blob))
    lines: list[str] = []
    m = train_run(_spec(run_ws), run_ws / "resumed", log=lines.append)
    said = [line for line in lines if "not usable" in line]
    assert len(said) == 1 and str(ckpt) in said[0], lines
    assert "weights_only" not in " ".join(lines)
    assert any("resuming from" in line and previous_path(ckpt).name in line for line in lines)
    assert list(ckpt.parent.glob("checkpoint.pt.damaged-*"))  # moved aside, not deleted
    keys = ("status", "final_test_error", "best_test_error", "final_train_loss")
    assert {k: m[k] for k in keys} == {k: reference[k] for k in keys}


def test_checkpoint_checksum_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c" / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1, "config_hash": "h", "w": torch.ones(3)})
    save_checkpoint(path, {"epoch": 2, "config_hash": "h", "w": torch.ones(3)})
    state, used = load_checkpoint(path, "h")
    assert state["epoch"] == 2 and used == path
    assert load_checkpoint(previous_path(path), "h")[0]["epoch"] == 1
    lines: list[str] = []
    assert load_checkpoint(path, "other", lines.append) is None  # another config: not used
    assert len(lines) == 2 and "another configuration" in lines[0]


def test_kill_after_the_outputs_loses_no_training(run_ws: Path) -> None:
    spec = _spec(run_ws)
    first = train_run(spec, run_ws / "run")
    (run_ws / "run" / "metrics.json").unlink()  # as if DVC never recorded the stage
    lines: list[str] = []
    again = train_run(spec, run_ws / "run", log=lines.append)
    assert any("already trained" in line for line in lines), lines
    assert not any("epoch 1/" in line for line in lines)  # no epoch trained again
    assert json.loads((run_ws / "run" / "metrics.json").read_text()) == again
    keys = ("final_test_error", "best_test_error", "final_train_loss", "wall_seconds")
    assert {k: again[k] for k in keys} == {k: first[k] for k in keys}


# ---------------------------------------------------------------------------------------------
# the report stages and the weak cases


def _report_ws(tmp_path: Path) -> tuple[Path, Path]:
    """A params file (wrn16_8 on CIFAR-10, k in {1, 2, 3}) and its runs: original diverged,
    k=1 and k=3 completed, k=2 with a corrupt metrics.json."""
    import yaml

    from kdecay.config import run_folder
    from kdecay.fileio import write_history, write_json

    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    narrow(params, datasets=["cifar10"], seeds=[0], claim_seeds=[])
    keep_rows(params, ["wrn16_8"])
    params["rows"]["wrn16_8"]["epochs"] = 3
    params["rows"]["wrn16_8"]["original"]["milestones"] = [1, 2]
    params["kdecay"]["ks"] = [1, 2, 3]  # k = 3: the paper's k for this row
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    runs = tmp_path / "runs"
    config = load_config(tmp_path / "params.yaml")
    statuses = {"original": "diverged", "k1": "completed", "k2": "completed", "k3": "completed"}
    for method, status in statuses.items():
        folder = run_folder(runs, "cifar10", "wrn16_8", method, 0)
        hist = [{"epoch": e, "lr": 0.1, "test_error": 50.0 - e} for e in (1, 2, 3)]
        write_history(folder / "history.csv", hist)
        k = None if method == "original" else float(method[1:])
        spec = config.run_spec("cifar10", "wrn16_8", "kdecay" if k else "original", k, 0)
        ids = {"epochs": 3, "config_hash": spec.config_hash()}
        write_json(folder / "run.json", ids)
        result = (
            {"final_test_error": 47.0, "best_test_error": 47.0, "best_epoch": 3,
             "epochs_completed": 3}
            if status == "completed" else {"diverged_epoch": 3}
        )  # fmt: skip
        write_json(folder / "metrics.json", {"status": status, **ids, **result})
    (runs / "cifar10" / "wrn16_8" / "k2" / "seed0" / "metrics.json").write_text('{"stat')
    return tmp_path / "params.yaml", runs


def test_corrupt_metrics_and_diverged_runs_are_named(tmp_path: Path, capsys) -> None:
    from kdecay.report.aggregate import aggregate
    from kdecay.report.figures import write_figures
    from kdecay.report.tables import write_tables

    params, runs = _report_ws(tmp_path)
    summary = aggregate(runs, tmp_path / "summary.csv", params)
    lines = summary[summary["kind"] == "run"]
    status = dict(zip(lines["method"], lines["status"], strict=True))
    assert status == {"original": "diverged", "k1": "completed", "k2": "corrupt", "k3": "completed"}
    assert "metrics.json is corrupt" in capsys.readouterr().out
    appendix = Path(__file__).parents[1] / "paper" / "appendix_tables.csv"
    write_tables(tmp_path / "summary.csv", appendix, tmp_path / "tables", params)
    table = (tmp_path / "tables" / "cifar10.md").read_text()
    assert "diverged (1/1)" in table and "n/a (runs diverged)" in table
    assert "original: 1 diverged seed left out (seed 0)" in table  # named in the verdict
    assert "runs missing" not in table
    write_figures(tmp_path / "summary.csv", runs, appendix, tmp_path / "figs", params)
    out = capsys.readouterr().out
    assert "no result for wrn16_8 original: 1 diverged; wrn16_8 k2: 1 corrupt" in out


def test_truncated_summary_and_history_are_named(tmp_path: Path, capsys) -> None:
    from kdecay.checks import ConfigError
    from kdecay.cli import main
    from kdecay.report.aggregate import aggregate
    from kdecay.report.tables import write_tables

    params, runs = _report_ws(tmp_path)
    aggregate(runs, tmp_path / "summary.csv", params)
    appendix = Path(__file__).parents[1] / "paper" / "appendix_tables.csv"
    lines = (tmp_path / "summary.csv").read_text().splitlines()
    (tmp_path / "cut.csv").write_text("\n".join(lines[:2]) + "\n")  # header + 1 of 4 runs
    with pytest.raises(ConfigError, match=r"lacks 3 of the 4 runs .*cifar10/wrn16_8/k1/seed0"):
        write_tables(tmp_path / "cut.csv", appendix, tmp_path / "t", params)
    (tmp_path / "empty.csv").write_text("")
    args = ["--appendix", str(appendix), "--params", str(params)]
    assert main(["tables", "--summary", str(tmp_path / "empty.csv"), *args]) == 2
    assert f"{tmp_path / 'empty.csv'} is not a readable CSV" in capsys.readouterr().err
    history = runs / "cifar10" / "wrn16_8" / "k1" / "seed0" / "history.csv"
    history.write_text("\n".join(history.read_text().splitlines()[:2]) + "\n")  # epoch 1 only
    from kdecay.report.figures import write_figures

    write_figures(tmp_path / "summary.csv", runs, appendix, tmp_path / "figs", params)
    assert f"warning: {history} lacks epoch(s) 2, 3 of 3" in capsys.readouterr().out


def test_tables_write_all_files_or_none(tmp_path: Path, monkeypatch) -> None:
    import errno
    import os

    from kdecay.report.aggregate import aggregate
    from kdecay.report.tables import write_tables

    params, runs = _report_ws(tmp_path)
    aggregate(runs, tmp_path / "summary.csv", params)
    appendix = Path(__file__).parents[1] / "paper" / "appendix_tables.csv"
    calls = {"n": 0}
    real_fsync = os.fsync

    def full_disk(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_tables(tmp_path / "summary.csv", appendix, tmp_path / "tables", params)
    assert list((tmp_path / "tables").iterdir()) == []  # none written, no temporary left


def test_download_on_a_full_disk_says_so(tmp_path: Path, monkeypatch) -> None:
    import errno

    from kdecay.data import download as download_module

    def full(url: str, dest: Path, desc: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download_module, "_fetch", full)
    with pytest.raises(DataError) as info:
        download("cifar10", tmp_path / "raw", url="file:///nowhere", md5="0" * 32)
    assert "no space left on device" in str(info.value)
    assert "by hand" not in str(info.value)


def test_unknown_model_is_named_before_any_data_is_read(run_ws: Path, capsys) -> None:
    import yaml

    from kdecay.cli import main

    params = yaml.safe_load((run_ws / "params.yaml").read_text())
    params["rows"]["tiny"]["model"] = {"family": "vgg", "depth": 16}
    params["data"]["prepared_dir"] = str(run_ws / "nowhere")  # would fail if data were read
    (run_ws / "p.yaml").write_text(yaml.safe_dump(params))
    argv = ["train", "--dataset", "cifar10", "--row", "tiny", "--original"]
    assert main([*argv, "--out", str(run_ws / "r"), "--params", str(run_ws / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: rows.tiny.model: unknown model family 'vgg'")


def test_unwritable_output_or_checkpoint_folder_fails_before_training(
    run_ws: Path, monkeypatch
) -> None:
    import errno

    from kdecay.checks import ConfigError
    from kdecay.train import run as run_module

    blocker = run_ws / "a-file"
    blocker.write_text("")
    lines: list[str] = []
    with pytest.raises(ConfigError, match=f"cannot write to {blocker / 'run'}"):
        train_run(_spec(run_ws), blocker / "run", log=lines.append)
    assert not any("epoch 1/" in line for line in lines)

    def full(path: Path, state: dict) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_module, "save_checkpoint", full)
    with pytest.raises(ConfigError) as info:
        train_run(_spec(run_ws), run_ws / "run", log=lines.append)
    text = str(info.value)
    assert text.startswith("could not write the checkpoint ") and "No space left" in text
    assert str(checkpoint_path(_spec(run_ws))) in text


def test_clean_checkpoints_removes_recorded_and_stale_only(run_ws: Path, monkeypatch) -> None:
    import yaml

    from kdecay.data.download import file_md5
    from kdecay.sweep.clean import clean_checkpoints

    monkeypatch.chdir(run_ws)
    spec = _spec(run_ws)
    out = Path("results/runs/cifar10/tiny/original/seed0")
    train_run(spec, out)
    stale = Path(spec.train.checkpoint_dir) / "0123456789abcdef"
    stale.mkdir()
    kept = checkpoint_path(spec).parent
    removed = clean_checkpoints(Path("params.yaml"))
    assert removed == [stale] and kept.is_dir()  # not recorded in dvc.lock yet: kept
    lock = {"stages": {"t": {"outs": [{"path": str(out / "metrics.json"), "md5": "0"}]}}}
    Path("dvc.lock").write_text(yaml.safe_dump(lock))
    assert clean_checkpoints(Path("params.yaml")) == []  # recorded md5 differs: kept
    lock["stages"]["t"]["outs"][0]["md5"] = file_md5(out / "metrics.json")
    Path("dvc.lock").write_text(yaml.safe_dump(lock))
    assert clean_checkpoints(Path("params.yaml")) == [kept]


# ---------------------------------------------------------------------------------------------
# the second fault audit: the last tracebacks, and two trainers of one run


def test_summary_cut_in_the_middle_of_a_row_is_named(tmp_path: Path, capsys) -> None:
    from kdecay.cli import main
    from kdecay.report.aggregate import aggregate

    params, runs = _report_ws(tmp_path)
    aggregate(runs, tmp_path / "summary.csv", params)
    text = (tmp_path / "summary.csv").read_text()
    cut = text.index("\n", text.index("\n") + 1) + 15  # 15 characters into the second run
    (tmp_path / "cut.csv").write_text(text[:cut])
    appendix = Path(__file__).parents[1] / "paper" / "appendix_tables.csv"
    args = ["--appendix", str(appendix), "--params", str(params), "--out", str(tmp_path / "t")]
    assert main(["tables", "--summary", str(tmp_path / "cut.csv"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lacks 3 of the 4 runs" in err[0] and "truncated" in err[0]


def test_a_full_disk_at_the_end_of_a_run_is_one_line_and_loses_nothing(
    run_ws: Path, monkeypatch
) -> None:
    import errno

    from kdecay.train import outputs

    real = outputs.atomic_write_bytes

    def full_disk(path: Path, data: bytes) -> None:
        if path.name == "model.pt":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(outputs, "atomic_write_bytes", full_disk)
    spec = _spec(run_ws)
    with pytest.raises(DataError, match=r"could not write .*model\.pt \(No space left on device\)"):
        train_run(spec, run_ws / "run", log=lambda _line: None)
    assert checkpoint_path(spec).is_file()  # the final state is kept
    monkeypatch.setattr(outputs, "atomic_write_bytes", real)
    lines: list[str] = []
    metrics = train_run(spec, run_ws / "run", log=lines.append)
    assert metrics["status"] == "completed" and (run_ws / "run" / "model.pt").is_file()
    assert any("already trained" in line and "no training" in line for line in lines), lines
    assert not any("epoch 1/" in line for line in lines)  # nothing trained again


def test_two_trainers_never_train_one_run_at_once(run_ws: Path, capsys, monkeypatch) -> None:
    """A second `kdecay train` of a run in progress (say `dvc repro -s` during a sweep) stops
    in one line, exit 2, before touching the run's checkpoint (after waiting a moment, as a
    requeued job waits for the job it replaces)."""
    from kdecay.cli import main
    from kdecay.fileio import exclusive_lock
    from kdecay.train import run

    monkeypatch.setattr(run, "LOCK_WAIT_S", 0.5)

    lock = checkpoint_path(_spec(run_ws)).parent / "train.lock"
    argv = ["train", "--dataset", "cifar10", "--row", "tiny", "--original", "--seed", "0"]
    argv += ["--out", str(run_ws / "run"), "--params", str(run_ws / "params.yaml")]
    with exclusive_lock(lock, "a test holding the run"):
        assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and "the training of cifar10/tiny/original/seed0 is already running" in (err[0])
    )
    assert not (run_ws / "run" / "metrics.json").exists()


def test_a_second_sweep_stops_in_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    pytest.importorskip("ray")
    import shutil

    from kdecay.cli import main
    from kdecay.fileio import exclusive_lock

    root = Path(__file__).parents[1]
    shutil.copy(root / "params.smoke.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    with exclusive_lock(
        tmp_path / "results" / "logs" / "sweep.lock", "a kdecay sweep of this workspace"
    ):
        assert main(["sweep", "--params", "params.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a kdecay sweep of this workspace is already running" in err[0]


def test_check_refuses_every_value_train_refuses(tmp_path: Path, capsys) -> None:
    """`make repro` runs `kdecay check` first, so a bad value stops before DVC removes any
    run's outputs (DVC deletes a stage's outputs before running its command)."""
    import yaml

    from kdecay.cli import main

    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    params["rows"]["wrn16_8"]["epochs"] = -3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["check", "--params", str(tmp_path / "params.yaml")]) == 2
    assert "rows.wrn16_8.epochs must be an integer >= 1, got -3" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("field", "value"),
    [("final_test_error", 150.0), ("status", "done"), ("epochs_completed", 3)],
    ids=["error-150", "unknown-status", "short-of-its-epochs"],
)
def test_the_sweep_never_adopts_a_forged_run(tmp_path: Path, field: str, value: Any) -> None:
    """A sweep adopts (records in dvc.lock without training) a run whose outputs say it
    finished; it reads them with the reports' reader, so a forged or damaged metrics.json is
    trained again rather than recorded."""
    from figure_runs import figure_params, run_spec, write_run
    from kdecay.config import run_folder
    from kdecay.sweep.stages import TrainStage, adoptable

    params = figure_params(tmp_path, datasets=["cifar10"])
    root = tmp_path / "runs"
    write_run(root, "cifar10", "wrn16_8", "k1", 0, 5.0, epochs=200)
    folder = run_folder(root, "cifar10", "wrn16_8", "k1", 0)
    (folder / "model.pt").write_bytes(b"weights")
    spec = run_spec(params, "cifar10", "wrn16_8", "k1", 0)
    stage = TrainStage("train_kdecay@cifar10-wrn16_8-1-0", "", "wrn16_8", folder, spec)
    assert adoptable(stage)  # as written: a finished run of this configuration
    metrics = folder / "metrics.json"
    metrics.write_text(json.dumps(json.loads(metrics.read_text()) | {field: value}))
    assert not adoptable(stage)
