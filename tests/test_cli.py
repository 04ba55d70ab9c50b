"""The command line as a user meets it: every command the README names exists, help texts are
plain text with the choices spelled out, files get the user's permissions, Ctrl-C is one line."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from kdecay import cli
from kdecay.fileio import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _subcommands() -> dict[str, str]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return {name: p.format_help() for name, p in sub.choices.items()}


def test_every_make_target_the_readme_names_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9_-]*):", makefile, flags=re.M))
    named = set(re.findall(r"`make ([a-z][a-z0-9_-]*)", README))
    assert named, "the README names no make target"
    assert named <= targets, f"README names missing make targets: {named - targets}"


def test_every_kdecay_subcommand_the_readme_names_exists() -> None:
    named = set(re.findall(r"\bkdecay ([a-z][a-z-]*)\b", README))
    named -= {"command"}  # `kdecay <command>` in prose
    assert {"train", "smoke", "check", "plan"} <= named
    assert named <= set(_subcommands()), named - set(_subcommands())


def test_help_texts_are_plain_and_name_the_choices() -> None:
    helps = _subcommands()
    for name, text in [("kdecay", cli.build_parser().format_help()), *helps.items()]:
        assert "``" not in text and ":func:" not in text and ":mod:" not in text, name
    train = helps["train"]
    for option in ("--dataset", "--row", "--original", "--k", "--seed", "--out", "--params"):
        assert option in train
    assert "{cifar10,cifar100}" in train


def test_bench_flags_reach_run_bench(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict] = []
    monkeypatch.setattr("kdecay.bench.run_bench", lambda **kw: seen.append(kw))
    assert cli.main(["bench", "--steps", "2", "--device", "cpu"]) == 0
    argv = ["bench", "--step", "graph", "--shared", "3", "--repeats", "5", "--warmup", "0"]
    assert cli.main(argv) == 0
    assert [(kw["warmup"], kw["repeats"], kw["step"], kw["shared"]) for kw in seen] == [
        (1, 3, None, 0),
        (0, 5, "graph", 3),
    ]
    with pytest.raises(SystemExit) as exit_info:  # eager is its own column already
        cli.main(["bench", "--step", "eager"])
    assert exit_info.value.code == 2


def test_atomic_files_get_the_users_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.json", b"{}")
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "b.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o600


def test_check_refuses_bad_lists_and_unknown_datasets(tmp_path: Path, capsys) -> None:
    import yaml

    for edit, message in (
        (lambda p: p.update(seeds=0), "seeds must be a non-empty YAML list"),
        (lambda p: p["kdecay"].update(ks=3), "kdecay.ks must be a non-empty YAML list"),
        (lambda p: p.update(datasets=["svhn"]), "'svhn' is not supported"),
        (lambda p: p["rows"]["wrn16_8"].update(model="resnet_999"), "rows.wrn16_8.model"),
        (
            lambda p: p["train"].update(save_weights=False),
            "train.save_weights is false, but dvc.yaml tracks each run's model.pt",
        ),
    ):
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        edit(params)
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        assert cli.main(["check", "--params", str(tmp_path / "params.yaml")]) == 2
        assert message in capsys.readouterr().err


def test_sweep_refuses_bad_options_before_any_work(tmp_path: Path, capsys) -> None:
    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["sweep"]["gpu_fraction"]["nope"] = 0.5
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(["sweep", "--params", str(tmp_path / "bad.yaml")]) == 2
    assert "unknown key sweep.gpu_fraction.nope; allowed in sweep.gpu_fraction:" in (
        capsys.readouterr().err
    )
    params["sweep"]["gpu_fraction"] = {"wrn16_8": 1.5}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(["sweep", "--params", str(tmp_path / "bad.yaml")]) == 2
    assert "sweep.gpu_fraction.wrn16_8" in capsys.readouterr().err
    assert cli.main(["sweep", "--address", "10.0.0.1:6379", "--gpus", "2"]) == 2
    assert "drop --gpus/--cpus" in capsys.readouterr().err
    refused = {  # an option the chosen engine or executor would not read is an error
        ("--partition", "gpu"): "--partition: options of --engine slurm",
        ("--engine", "slurm", "--gpus", "2"): "--gpus: options of --engine ray",
        (
            "--engine",
            "slurm",
            "--cluster",
            "local",
            "--partition",
            "gpu",
            "--cpus-per-job",
            "8",
        ): "--cpus-per-job/--partition: no effect with --cluster local",
        (
            "--engine",
            "slurm",
            "--cluster",
            "debug",
            "--time",
            "01:00:00",
        ): "--time: no effect with --cluster debug",
    }
    for args, message in refused.items():
        assert cli.main(["sweep", *args]) == 2, args
        assert message in capsys.readouterr().err
    assert cli.main(["sweep", "--shard", "2/2"]) == 2
    assert "--shard (I of I/N)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweep", "--shard", "half"])
    assert exit_info.value.code == 2


def test_plan_counts_the_default_sweep(capsys) -> None:
    assert cli.main(["plan", "--params", str(ROOT / "params.yaml")]) == 0
    out = capsys.readouterr().out
    total = next(line for line in out.splitlines() if line.startswith("| **total**"))
    assert "**134**" in total and "**26,128**" in total  # runs and epochs, the first look
    assert "the sweep with seeds [0] is 82 runs" in out  # the one-seed sweep: 16,192 epochs
    assert "| **expected GPU-hours, whole plan** |" in out
    assert "Every tested cell reaches 80% for the paper's gain." in out


def test_the_local_executor_gets_the_time_limit_and_gpus(tmp_path: Path) -> None:
    """--cluster local reads --time (default 24:00:00, not submitit's 2 minutes) and
    --gpus-per-job (default 1, not submitit's 0, which sets CUDA_VISIBLE_DEVICES="" and
    hides every GPU from the jobs); the other SLURM flags are refused (test above)."""
    pytest.importorskip("submitit")
    from kdecay.sweep.slurm import slurm_executor

    default = slurm_executor(tmp_path, "local", {}).parameters
    assert (default["timeout_min"], default["gpus_per_node"]) == (24 * 60, 1)
    given = slurm_executor(tmp_path, "local", {"timeout_min": 90, "gpus_per_job": 2}).parameters
    assert (given["timeout_min"], given["gpus_per_node"]) == (90, 2)


def test_every_option_has_a_help_text() -> None:
    """Every option of every subcommand says what it is (`--summary`, `--runs`, `--appendix`,
    `sweep --logs` with its default, `--cluster debug`)."""
    import argparse

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {'/'.join(action.option_strings)}"
        for name, command in sub.choices.items()
        for action in command._actions
        if action.option_strings and action.help in (None, "") and action.dest != "help"
    ]
    assert missing == []
    sweep = {a.dest: a.help for a in sub.choices["sweep"]._actions}
    assert "default: results/logs" in sweep["logs"]
    assert "debug runs them one by one" in sweep["cluster"]


def test_every_subcommand_help_has_a_paragraph_and_shows_its_defaults() -> None:
    """`kdecay X --help` opens with a paragraph on what X does, and every option with a
    default says it (`aggregate --runs/--out`, `bench --out`, `proof --budget-seconds`)."""
    import argparse

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        assert len(command.description or "") > 80, name
        assert " ".join(command.description.split()) in " ".join(command.format_help().split())
        formatter = command.formatter_class(prog=name)
        for action in command._actions:
            if action.option_strings and action.default is not None and action.dest != "help":
                shown = formatter._get_help_string(action) or ""
                assert action.default is False or "default" in shown, (
                    f"kdecay {name} {action.option_strings[0]} hides its default"
                )
    proof = " ".join(sub.choices["proof"].format_help().split())
    assert "(default: results/proof)" in proof and "(default 540 on cuda" in proof


@pytest.mark.parametrize(
    ("status", "code", "line"),
    [(1, 1, "failed with exit status 1"), (252, 130, "stopped; the smoke workspace")],
    ids=["failure", "ctrl-c"],
)
def test_smoke_ends_a_failed_dvc_repro_in_one_line(
    status: int, code: int, line: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    """DVC prints its own message (to the workspace's log; the screen shows its end); kdecay
    smoke adds one line (no CalledProcessError traceback) saying the workspace is kept and how
    to resume: exit 1, or 130 on Ctrl-C (DVC's "interrupted by the user" is its exit status
    252)."""
    import subprocess
    import sys

    from kdecay.sweep import smoke_output

    real = subprocess.Popen

    def dvc_repro_fails(cmd: list[str], **kw: object) -> subprocess.Popen[str]:
        if cmd[1:4] == ["-m", "dvc", "repro"]:
            cmd = [sys.executable, "-c", f"print('ERROR: dvc says no'); exit({status})"]
        return real(cmd, **kw)

    monkeypatch.setattr(smoke_output.subprocess, "Popen", dvc_repro_fails)
    assert cli.main(["smoke", "--workdir", str(tmp_path / "ws")]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert line in err[-1] and "make smoke" in err[-1]
    assert not any("Traceback" in e for e in err)
    if code == 1:
        assert "ERROR: dvc says no" in err  # the end of the tool's output
    assert "ERROR: dvc says no" in (tmp_path / "ws" / "results/logs/smoke.log").read_text()


def test_sweep_refuses_full_size_runs_without_a_gpu_before_downloading(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """Like `make repro`'s `kdecay check`: a Ray started here trains on this machine."""
    pytest.importorskip("ray")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal is for machines without one")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sweep", "--params", str(ROOT / "params.yaml")]) == 2
    err = capsys.readouterr().err
    assert "no GPU (CUDA) is visible" in err and "Nothing was downloaded" in err
    assert not (tmp_path / "data").exists()


def test_sweep_on_slurm_without_sbatch_says_so(tmp_path: Path, capsys, monkeypatch) -> None:
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    code = cli.main(["sweep", "--engine", "slurm", "--params", str(ROOT / "params.smoke.yaml")])
    assert code == 2
    assert "no `sbatch` on this machine's PATH" in capsys.readouterr().err


def test_plan_with_fusion_uses_only_a_gpu_speedup_of_the_same_g(tmp_path: Path, capsys) -> None:
    """`kdecay plan --fuse 4 --bench`: a row measured fused 4 ways on CUDA at 2x the runs one
    by one gets 4 groups (13 runs at the first look) x 4 runs x 164 epochs x 2 s / 2 = 0.73
    GPU-h; another G, a CPU
    measurement or no measurement give no estimate, and a damaged report exits 2. (The
    report is a hand-made fixture of the bench.json format: it tests the arithmetic.)"""
    model = {"name": "preact_resnet110", "rows": ["preact_resnet110"]}
    report = {
        "device": {"type": "cuda"},
        "models": [model | {"fused": {"members": 4, "vs_ours_step": 2.0}}],
    }
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(report))
    params = str(ROOT / "params.yaml")
    assert cli.main(["plan", "--params", params, "--fuse", "4", "--bench", str(bench)]) == 0
    out = capsys.readouterr().out
    assert "| CIFAR-10 | preact_resnet110 | 4 | 13 | 4 | 2.00x | 1.2 | 0.7 |" in out
    assert "| CIFAR-10 | wrn16_8 | 4 | 13 | 4 | not measured | 1.4 | n/a |" in out
    # --fuse auto: each row's G from sweep.fuse (thin rows 8, the WRN rows alone); a speed-up
    # measured with G = 4 is not one of G = 8
    assert cli.main(["plan", "--params", params, "--fuse", "auto", "--bench", str(bench)]) == 0
    out = capsys.readouterr().out
    assert "| CIFAR-10 | preact_resnet110 | 8 | 13 | 2 | measured with G = 4 | 1.2 | n/a |" in out
    assert "| CIFAR-10 | wrn28_10 | 1 | 13 | 13 | not fused | 4.3 | 4.3 |" in out
    with pytest.raises(SystemExit) as exited:  # argparse's usage error
        cli.main(["plan", "--params", params, "--fuse", "often"])
    assert exited.value.code == 2
    assert "give a whole number G >= 1, or auto" in capsys.readouterr().err
    assert cli.main(["plan", "--params", params, "--fuse", "2", "--bench", str(bench)]) == 0
    assert "| 7 | measured with G = 4 |" in capsys.readouterr().out
    report["device"]["type"] = "cpu"
    bench.write_text(json.dumps(report))
    assert cli.main(["plan", "--params", params, "--fuse", "4", "--bench", str(bench)]) == 0
    assert "| 4 | measured on cpu |" in capsys.readouterr().out
    bench.write_text("{not json")
    assert cli.main(["plan", "--params", params, "--fuse", "4", "--bench", str(bench)]) == 2
    assert "--bench" in capsys.readouterr().err
    assert cli.main(["plan", "--params", params, "--bench", str(bench)]) == 2
    assert "add --fuse G" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("members", "speedup"),
    [(4, 0), (4, -1), (4, "inf"), (4, 1e308), (4, 1e-320), (4.7, 2.0), (0, 2.0)],
    ids=["zero", "negative", "inf", "huge", "denormal", "fractional-G", "no-members"],
)
def test_plan_refuses_a_bench_report_with_impossible_fused_figures(
    members: object, speedup: object, tmp_path: Path, capsys
) -> None:
    """A speed-up that is not finite and positive (nor below 1,000), or a member count that is
    not a positive integer, is one line naming the report (exit 2): never a negative, zero,
    infinite or divided-by-zero GPU-hour figure. A report nested past Python's recursion
    limit is the same one line."""
    fused = {"members": members, "vs_ours_step": float(speedup)}
    model = {"name": "preact_resnet110", "rows": ["preact_resnet110"], "fused": fused}
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"device": {"type": "cuda"}, "models": [model]}))
    params = str(ROOT / "params.yaml")
    assert cli.main(["plan", "--params", params, "--fuse", "4", "--bench", str(bench)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bench) in err[0] and "Traceback" not in err[0]
    bench.write_text("[" * 100_000 + "]" * 100_000)
    assert cli.main(["plan", "--params", params, "--fuse", "4", "--bench", str(bench)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_proof_refuses_a_report_folder_it_cannot_use_in_one_line(tmp_path: Path, capsys) -> None:
    """`kdecay proof --out` at a file or under a file: one line naming the path, exit 2,
    before any step runs."""
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    for out in (a_file, a_file / "below"):
        assert cli.main(["proof", "--device", "cpu", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"cannot write to {out}" in err[0] and "--out" in err[0]
