"""``kdecay bench`` on the CPU with the smoke params' tiny models (batch 24, passes of 2 full
batches + the partial one): report files, the four columns, consistency of every derived
number, the sweep estimate, errors, and the CLI. Timings are never asserted (the machine is
shared). The five-model run compiles ``ours_step`` with the ``aot_eager`` backend (the same
graphs without code generation); one CLI run compiles with Inductor, as training does."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from kdecay.bench import EPOCH_IMAGES, run_bench, select_targets
from kdecay.bench import run as run_mod
from kdecay.bench.pipelines import PIPELINES
from kdecay.cli import main as cli_main
from kdecay.config import ConfigError, load_config
from kdecay.config.yaml_io import read_yaml_mapping

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "params.smoke.yaml"


@pytest.fixture(scope="module")
def tiny_params(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke params (tiny members of every model family, all six rows) at batch 24."""
    params = read_yaml_mapping(SMOKE)
    for row in params["rows"].values():
        row["batch_size"] = 24
    path = tmp_path_factory.mktemp("bench_params") / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def bench_run(
    tiny_params: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path, list[str]]:
    out = tmp_path_factory.mktemp("bench_out")
    lines: list[str] = []
    real = run_mod.runtime_for
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            run_mod,
            "runtime_for",
            lambda *a, **k: dataclasses.replace(real(*a, **k), compile_backend="aot_eager"),
        )
        report = run_bench(
            models=None,
            device="cpu",
            steps=2,
            warmup=1,
            repeats=2,
            out_dir=out,
            params_file=tiny_params,
            shared=2,
            fuse=3,
            log=lines.append,
        )
    return report, out, lines


@pytest.mark.slow  # torch.compile: minutes with a cold compile cache
def test_report_files_and_numbers(bench_run: tuple[dict[str, Any], Path, list[str]]) -> None:
    report, out, lines = bench_run
    assert (out / "bench.md").is_file()
    data = json.loads((out / "bench.json").read_text())
    assert data == json.loads(json.dumps(report))

    # the five distinct architectures; wrn28_10_sgdr shares wrn28_10's model and is benched once
    names = [m["name"] for m in data["models"]]
    assert names == [
        "preact_resnet110",
        "preact_resnet164",
        "wrn16_8",
        "wrn28_10",
        "densenet_bc100_k12",
    ]
    assert data["models"][3]["rows"] == ["wrn28_10", "wrn28_10_sgdr"]
    assert sum(1 for line in lines if line.startswith("[bench] ") and "s/epoch" in line) == 5

    peak = data["peak"]["flops"]
    assert peak > 0 and "fp32" in data["peak"]["method"]
    for m in data["models"]:
        assert m["params"] > 0 and m["forward_macs"] > 0 and m["batch_size"] == 24
        for kind in PIPELINES:
            r = m[kind]
            assert len(r["passes"]) == 2
            per_pass = sorted(
                (EPOCH_IMAGES // 24) * p["seconds_per_full_step"] + p["seconds_partial_step"]
                for p in r["passes"]
            )
            assert r["seconds_per_epoch"] == pytest.approx(sum(per_pass) / 2)  # median of 2
            assert r["seconds_per_epoch_min"] <= r["seconds_per_epoch"]
            assert r["seconds_per_epoch"] <= r["seconds_per_epoch_max"]
            assert all(p["seconds_partial_step"] > 0 for p in r["passes"])  # 50,000 % 24 = 8 images
            assert r["images_per_s"] == pytest.approx(EPOCH_IMAGES / r["seconds_per_epoch"])
            mfu = 3 * m["forward_macs"] * 2 * r["images_per_s"] / peak
            assert r["mfu"] == pytest.approx(mfu)
            assert r["vs_standard"] == pytest.approx(
                r["images_per_s"] / m["standard"]["images_per_s"]
            )
            assert r["peak_memory_bytes"] is None  # CPU: no device memory counter
            assert math.isfinite(r["last_loss"])
        assert m["ratio"] == m["ours_step"]["vs_standard"]
        assert (m["standard"]["precision"], m["standard_amp"]["precision"]) == ("fp32", "bf16")
        assert m["standard_amp"]["channels_last"] and not m["standard"]["channels_last"]
        assert (m["ours_eager"]["step"], m["ours_step"]["step"]) == ("eager", "compiled")
        assert m["ours_step"]["precision"] == "fp32" and m["ours_step"]["eval_seconds"] > 0

    assert data["device"]["type"] == "cpu"
    assert data["settings"]["steps"] == 2 and data["settings"]["warmup"] == 1
    assert data["settings"]["passes"] == 2 and data["settings"]["step"] == "compiled"
    assert data["shared"] == {"skipped": "shared-GPU test needs CUDA; not run on the CPU"}

    for m in data["models"]:  # --fuse 3: three runs in one network vs the same one by one
        f = m["fused"]
        assert f["members"] == 3 and f["step"].startswith("compiled")
        for form, col in ((f["eager"], "ours_eager"), (f, "ours_step")):
            assert len(form["passes"]) == 2 and len(form["last_loss"]) == 3
            assert all(math.isfinite(v) for v in form["last_loss"])
            assert form["images_per_s"] == pytest.approx(
                3 * EPOCH_IMAGES / form["seconds_per_epoch"]
            )
            assert form["seconds_per_member_epoch"] == pytest.approx(form["seconds_per_epoch"] / 3)
            one_by_one = 3 * m[col]["seconds_per_epoch"]
            assert f[f"vs_{col}"] == pytest.approx(one_by_one / form["seconds_per_epoch"])
            assert form["ops_per_member_step"]["ops"] > 0
    assert sum(1 for line in lines if "3 fused:" in line) == 5

    md = (out / "bench.md").read_text()
    assert "| preact_resnet110 | 3 | eager |" in md and "| preact_resnet110 | 3 | compiled |" in md
    assert "| preact_resnet110 |" in md and "CPU-hours, not GPU-hours" in md and "n/a" in md
    assert all(f"{p} s/epoch" in md for p in PIPELINES)


@pytest.mark.slow  # torch.compile: minutes with a cold compile cache
def test_sweep_estimate_is_epochs_times_seconds_per_epoch(
    bench_run: tuple[dict[str, Any], Path, list[str]], tiny_params: Path
) -> None:
    _, out, _ = bench_run
    data = json.loads((out / "bench.json").read_text())
    config = load_config(tiny_params)
    by_row = {row: m for m in data["models"] for row in m["rows"]}
    runs = config.runs()
    for kind in PIPELINES:
        hours = sum(
            config.rows[r.row].epochs * by_row[r.row][kind]["seconds_per_epoch"] for r in runs
        )
        assert data["sweep"]["hours"][kind] == pytest.approx(hours / 3600)
    evals = sum(
        config.rows[r.row].epochs * by_row[r.row]["ours_step"]["eval_seconds"] for r in runs
    )  # the smoke params evaluate every epoch
    total = data["sweep"]["hours"]["ours_step"] + evals / 3600
    assert data["sweep"]["ours_step_with_eval_hours"] == pytest.approx(total)
    sweep = data["sweep"]
    assert sweep["complete"] and sweep["runs_total"] == sweep["runs_covered"] == len(runs)
    assert sweep["unit"] == "CPU-hours" and sweep["measured_on"] == "cpu"


def test_select_targets_on_the_real_params() -> None:
    params = load_config(ROOT / "params.yaml")
    targets = select_targets(params, None)
    assert [t.name for t in targets] == [
        "preact_resnet110",
        "preact_resnet164",
        "wrn16_8",
        "wrn28_10",
        "densenet_bc100_k12",
    ]
    # a registry model name and the row that shares it select the same single target
    for name in ("wrn28_10", "wrn28_10_sgdr"):
        (t,) = select_targets(params, [name])
        assert t.rows == ["wrn28_10", "wrn28_10_sgdr"] and t.spec.batch_size == 128


def test_bad_options(tiny_params: Path, tmp_path: Path) -> None:
    kw: dict[str, Any] = {"device": "cpu", "out_dir": tmp_path, "params_file": tiny_params}
    with pytest.raises(ConfigError, match=r"resnet_999.*preact_resnet110.*densenet_bc100_k12"):
        run_bench(models=["resnet_999"], steps=1, warmup=0, **kw)
    with pytest.raises(ConfigError, match="--steps"):
        run_bench(models=None, steps=0, warmup=0, **kw)
    with pytest.raises(ConfigError, match="--warmup"):
        run_bench(models=None, steps=1, warmup=-1, **kw)
    with pytest.raises(ConfigError, match="--repeats"):
        run_bench(models=None, steps=1, warmup=0, repeats=0, **kw)
    with pytest.raises(ConfigError, match=r"--fuse 1 fuses nothing"):
        run_bench(models=None, steps=1, warmup=0, fuse=1, **kw)
    with pytest.raises(ConfigError, match="--fuse"):
        run_bench(models=None, steps=1, warmup=0, fuse=-2, **kw)
    with pytest.raises(ConfigError, match=r"train.step: graph .* needs a CUDA device"):
        run_bench(models=None, steps=1, warmup=0, step="graph", **kw)
    assert not (tmp_path / "bench.json").exists()


@pytest.mark.slow
def test_cli(tiny_params: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench"
    argv = ["bench", "--device", "cpu", "--steps", "1", "--warmup", "1", "--repeats", "1"]
    argv += ["--models", "wrn16_8", "--params", str(tiny_params), "--out", str(out)]
    assert cli_main(argv) == 0
    data = json.loads((out / "bench.json").read_text())
    assert [m["name"] for m in data["models"]] == ["wrn16_8"]
    assert data["models"][0]["ours_step"]["step"] == "compiled"  # Inductor, as training
    assert not data["sweep"]["complete"] and data["sweep"]["runs_covered"] > 0
    assert "wrn16_8" in capsys.readouterr().out

    bad = [*argv[:9], "--models", "nope", "--params", str(tiny_params), "--out", str(out)]
    assert cli_main(bad) == 2
    assert "unknown model/row 'nope'" in capsys.readouterr().err
