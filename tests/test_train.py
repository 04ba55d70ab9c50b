"""One training run on synthetic CIFAR: learning, determinism, LR column, resume, divergence,
and every bad-params error (CPU, tiny models)."""

from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from kdecay.cli import main as cli_main
from kdecay.config import Config, ConfigError, build_schedule
from kdecay.config.yaml_io import read_yaml_mapping
from kdecay.data.download import download
from kdecay.data.prepare import prepare
from kdecay.data.synth import make_archive
from kdecay.train import checkpoint_path, train_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic CIFAR-10 prepared through the real download + prepare code, and a params file
    with one tiny row per schedule kind."""
    ws = tmp_path_factory.mktemp("train_ws")
    archive, md5 = make_archive("cifar10", ws / "synth", n_train=1000, n_test=300, seed=1)
    download("cifar10", ws / "raw", url=archive.as_uri(), md5=md5)
    prepare("cifar10", ws / "raw", ws / "prepared", md5=md5)
    tiny = {
        "model": {"family": "preact_resnet", "depth": 8},
        "epochs": 4,
        "batch_size": 64,
        "optimizer": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
        "padding": "zeros",
        "original": {
            "schedule": "step",
            "milestones": [3],
            "gamma": 0.1,
            "warmup_iters": 3,
            "warmup_lr": 0.01,
        },
    }
    sgdr_row = {
        **copy.deepcopy(tiny),
        "original": {"schedule": "sgdr", "t0": 1, "t_mult": 2, "lr_max": 0.05, "lr_min": 0.0},
    }
    sgdr_row["epochs"] = 3
    params = {
        "data": {
            "raw_dir": str(ws / "raw"),
            "prepared_dir": str(ws / "prepared"),
            "cifar10": {"url": archive.as_uri(), "md5": md5},
        },
        "datasets": ["cifar10"],
        "seeds": [0],
        "rows": {"tiny": tiny, "tiny_sgdr": sgdr_row},
        "kdecay": {"schedule": "poly", "power": 2.0, "lr_end": 0.0, "ks": [1, 3]},
        "train": {
            "device": "auto",
            "eval_every": 1,
            "checkpoint_every": 1,
            "checkpoint_dir": str(ws / "ckpt"),
            "eval_batch_size": 300,
        },
    }
    write_params(ws / "params.yaml", params)
    return ws


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def spec_for(ws: Path, method: str = "original", k: float | None = None, params=None, **kw):
    params = params or read_yaml_mapping(ws / "params.yaml")
    return Config.from_mapping(params).run_spec(
        kw.get("dataset", "cifar10"), kw.get("row", "tiny"), method, k, kw.get("seed", 0)
    )


def read_history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv") as f:
        return list(csv.DictReader(f))


def without_timing(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


RESULT_KEYS = (
    "final_test_error",
    "final_test_loss",
    "final_train_loss",
    "best_test_error",
    "best_epoch",
    "status",
    "epochs_completed",
)


def test_run_learns_and_writes_metrics(workspace: Path):
    out = workspace / "runs" / "learn"
    m = train_run(spec_for(workspace), out)
    assert m["status"] == "completed"
    assert m["final_test_error"] < 40.0  # chance is 90%
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == m
    for key in (
        "best_test_error",
        "best_epoch",
        "epochs_completed",
        "wall_seconds",
        "images_per_second",
        "final_train_loss",
    ):
        assert key in m
    # metrics.json holds only numbers (and the status): provenance lives in run.json
    labels = ("status", "conv_precision")
    assert all(isinstance(v, int | float) or v is None for k, v in m.items() if k not in labels)
    assert m["conv_precision"] == "fp32"  # the CPU path
    info = json.loads((out / "run.json").read_text())
    for key in (
        "params",
        "epochs",
        "device",
        "precision",
        "torch_version",
        "cuda_version",
        "git_commit",
        "git_dirty",
        "config_hash",
        "argv",
    ):
        assert key in info and key not in m
    assert len(read_history(out)) == 4
    # the final state is kept until the run is recorded (`kdecay clean-checkpoints` removes it)
    assert checkpoint_path(spec_for(workspace)).is_file()


def forget_checkpoints(spec) -> None:
    """What `kdecay clean-checkpoints` does once a run is recorded."""
    shutil.rmtree(checkpoint_path(spec).parent, ignore_errors=True)


def test_same_seed_identical_metrics_and_lr_column(workspace: Path):
    spec = spec_for(workspace, "kdecay", 3.0)
    a = train_run(spec, workspace / "runs" / "det_a")
    forget_checkpoints(spec)  # train again from scratch, not from the kept final state
    b = train_run(spec, workspace / "runs" / "det_b")
    assert {k: a[k] for k in RESULT_KEYS} == {k: b[k] for k in RESULT_KEYS}
    ha, hb = read_history(workspace / "runs" / "det_a"), read_history(workspace / "runs" / "det_b")
    assert without_timing(ha) == without_timing(hb)
    info = json.loads((workspace / "runs" / "det_a" / "run.json").read_text())
    f = build_schedule(spec, m_ipe := info["iterations_per_epoch"])
    assert [float(r["lr"]) for r in ha] == pytest.approx(
        [f(e * m_ipe) for e in range(4)], rel=1e-12
    )


def test_sgdr_row_lr_column_restarts(workspace: Path):
    spec = spec_for(workspace, "kdecay", 1.0, row="tiny_sgdr")
    m = train_run(spec, workspace / "runs" / "sgdr")
    lrs = [float(r["lr"]) for r in read_history(workspace / "runs" / "sgdr")]
    assert m["status"] == "completed"
    assert lrs[0] == pytest.approx(0.05) and lrs[1] == pytest.approx(0.05)  # restart at epoch 1


def _train_cmd(params: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "kdecay",
        "train",
        "--dataset",
        "cifar10",
        "--row",
        "tiny",
        "--k",
        "2",
        "--seed",
        "0",
        "--out",
        str(out),
        "--params",
        str(params),
    ]


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted(workspace: Path):
    params = read_yaml_mapping(workspace / "params.yaml")
    params["rows"]["tiny"]["epochs"] = 6
    pfile = write_params(workspace / "params_kill.yaml", params)
    spec = Config.from_mapping(params).run_spec("cifar10", "tiny", "kdecay", 2.0, 0)
    ckpt = checkpoint_path(spec)
    out = workspace / "runs" / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        _train_cmd(pfile, out), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.time() + 300
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "run finished before a checkpoint could be interrupted"
    time.sleep(0.05)  # somewhere inside the next epoch (a tiny epoch: 16 batches)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists()
    assert not (out / "metrics.json").exists()

    resumed = subprocess.run(
        _train_cmd(pfile, out), env=env, capture_output=True, text=True, check=True
    )
    assert "resuming from" in resumed.stdout
    killed_metrics = json.loads((out / "metrics.json").read_text())
    forget_checkpoints(spec)

    fresh = train_run(spec, workspace / "runs" / "uninterrupted")
    assert {k: killed_metrics[k] for k in RESULT_KEYS} == {k: fresh[k] for k in RESULT_KEYS}
    assert without_timing(read_history(out)) == without_timing(
        read_history(workspace / "runs" / "uninterrupted")
    )


def test_changed_config_never_resumes(workspace: Path, capsys):
    params = read_yaml_mapping(workspace / "params.yaml")
    spec_a = Config.from_mapping(params).run_spec("cifar10", "tiny", "kdecay", 1.5, 0)
    params["rows"]["tiny"]["optimizer"]["lr"] = 0.04
    spec_b = Config.from_mapping(params).run_spec("cifar10", "tiny", "kdecay", 1.5, 0)
    assert checkpoint_path(spec_a) != checkpoint_path(spec_b)
    # leave a checkpoint of config A behind, as an interrupted run would
    from kdecay.train.checkpoint import save_checkpoint

    save_checkpoint(checkpoint_path(spec_a), {"epoch": 2, "bogus": 1})
    m = train_run(spec_b, workspace / "runs" / "changed")
    assert m["status"] == "completed" and "resuming" not in capsys.readouterr().out
    assert len(read_history(workspace / "runs" / "changed")) == 4
    assert checkpoint_path(spec_a).exists()  # not touched, not used


def test_absurd_lr_diverges_with_exit_0(workspace: Path, capsys):
    params = read_yaml_mapping(workspace / "params.yaml")
    params["rows"]["tiny"]["optimizer"]["lr"] = 1.0e4  # the largest config accepts
    pfile = write_params(workspace / "params_div.yaml", params)
    out = workspace / "runs" / "diverged"
    rc = cli_main(
        [
            "train",
            "--dataset",
            "cifar10",
            "--row",
            "tiny",
            "--k",
            "1",
            "--seed",
            "0",
            "--out",
            str(out),
            "--params",
            str(pfile),
        ]
    )
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["status"] == "diverged" and m["diverged_epoch"] == 1
    assert m["final_test_error"] is None
    assert "DIVERGED at epoch 1" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("edit", "args", "message"),
    [
        (None, ["--dataset", "cifar11", "--original"], "invalid choice: 'cifar11'"),
        (None, ["--row", "nope", "--original"], "unknown row 'nope'"),
        (None, ["--k", "0"], "k must be a number > 0"),
        (None, ["--k", "-1.5"], "k must be a number > 0"),
        (
            lambda p: p["rows"]["tiny"]["original"].update(milestones=[2, 9]),
            ["--original"],
            "rows.tiny.original.milestones",
        ),
        (
            lambda p: p["rows"]["tiny"]["original"].update(milestones=[3, 2]),
            ["--original"],
            "strictly increasing",
        ),
        (lambda p: p["rows"]["tiny"].update(epochs=0), ["--original"], "rows.tiny.epochs"),
        (
            lambda p: p["rows"]["tiny"]["optimizer"].update(momentum=1.5),
            ["--original"],
            "rows.tiny.optimizer.momentum",
        ),
        (
            lambda p: p["rows"]["tiny"].update(padding="edge"),
            ["--original"],
            "rows.tiny.padding must be one of zeros, mean, reflect",
        ),
        (lambda p: p["kdecay"].update(power=0), ["--k", "2"], "kdecay.power"),
        (lambda p: p["train"].update(precision="fp8"), ["--original"], "train.precision"),
        (lambda p: p["train"].update(epochs=3), ["--original"], "unknown key train.epochs"),
        (
            lambda p: p["data"].update(prepared_dir="/nonexistent/prepared"),
            ["--original"],
            "kdecay prepare --dataset cifar10",
        ),
    ],
)
def test_bad_params_fail_before_any_work(
    workspace: Path, tmp_path: Path, capsys, edit, args, message
):
    params = read_yaml_mapping(workspace / "params.yaml")
    if edit:
        edit(params)
    pfile = write_params(tmp_path / "params.yaml", params)
    base = {"--dataset": "cifar10", "--row": "tiny"}
    for flag in ("--dataset", "--row"):
        if flag in args:
            base.pop(flag)
    argv = [
        "train",
        *[x for kv in base.items() for x in kv],
        *args,
        "--seed",
        "0",
        "--out",
        str(tmp_path / "run"),
        "--params",
        str(pfile),
    ]
    try:
        rc = cli_main(argv)
    except SystemExit as usage_error:  # argparse: an option outside its choices
        rc = usage_error.code
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_original_and_k_together_is_a_usage_error(workspace: Path, tmp_path: Path):
    with pytest.raises(SystemExit) as exc:
        cli_main(
            [
                "train",
                "--dataset",
                "cifar10",
                "--row",
                "tiny",
                "--original",
                "--k",
                "2",
                "--out",
                str(tmp_path / "r"),
                "--params",
                str(workspace / "params.yaml"),
            ]
        )
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        cli_main(
            [
                "train",
                "--dataset",
                "cifar10",
                "--row",
                "tiny",
                "--out",
                str(tmp_path / "r"),
                "--params",
                str(workspace / "params.yaml"),
            ]
        )
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the guard is for machines without a GPU")
def test_full_size_run_without_gpu_stops_before_reading_data(tmp_path: Path):
    """The refusal comes first: a CPU user is not sent to download CIFAR only to learn that
    the run needs a GPU (no prepared data exists here at all)."""
    params = read_yaml_mapping(ROOT / "params.yaml")
    params["data"]["prepared_dir"] = str(tmp_path / "no-data-here")
    spec = Config.from_mapping(params).run_spec("cifar10", "wrn16_8", "original", None, 0)
    with pytest.raises(ConfigError) as err:
        train_run(spec, tmp_path / "run")
    text = str(err.value)
    assert "hours" in text and "make smoke" in text and "train.device: cpu" in text
    assert "prepared" not in text and "download" not in text
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_ctrl_c_prints_one_line_and_exits_130(workspace: Path):
    params = read_yaml_mapping(workspace / "params.yaml")
    params["rows"]["tiny"]["epochs"] = 7  # a config of its own (no kept final state to reuse)
    pfile = write_params(workspace / "params_sigint.yaml", params)
    ckpt = checkpoint_path(
        Config.from_mapping(params).run_spec("cifar10", "tiny", "kdecay", 2.0, 0)
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        _train_cmd(pfile, workspace / "runs" / "sigint"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as in a terminal: a shell without job control (CI, `cmd &`) makes children ignore
        # SIGINT, and Python keeps an ignored SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 300
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "run finished before it could be interrupted"
    # at once: on a fast machine a tiny epoch takes less than a few tenths of a second, and
    # the line must name the checkpoint after epoch 1
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("interrupted: cifar10/tiny/k2/seed0 stopped in epoch")
    assert "kept the checkpoint after epoch 1" in lines[0] and "dvc repro" in lines[0]
    assert ckpt.exists()
