"""`kdecay proof --device cpu`: the GPU proof kit runs its whole sequence with tiny sizes on the
CPU, with dvc, ray and submitit unimportable (the GPU machines have none of them), and writes a
report whose schema the GPU run will fill; a budget too small for a step lists it as skipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the proof run as a child whose imports of dvc, ray and submitit fail
BLOCKED = (
    "import sys\n"
    "for name in ('dvc', 'ray', 'submitit'):\n"
    "    sys.modules[name] = None  # import raises ImportError\n"
    "from kdecay.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _proof(out: Path, budget: float) -> subprocess.CompletedProcess[str]:
    argv = ["proof", "--out", str(out), "--device", "cpu", "--budget-seconds", str(budget)]
    return subprocess.run(
        [sys.executable, "-c", BLOCKED, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_the_cpu_proof_runs_every_step_and_writes_its_report(tmp_path: Path) -> None:
    done = _proof(tmp_path, 900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "proof.json").read_text())
    steps = report["steps"]
    assert list(steps) == ["environment", "correctness", "training", "bench", "shared", "sweep"]
    assert {name: s["status"] for name, s in steps.items()} == {
        "environment": "ok",
        "correctness": "ok",
        "training": "ok",
        "bench": "ok",
        "shared": "skipped",  # CUDA only
        "sweep": "ok",
    }
    assert steps["environment"]["result"]["torch"]
    correctness = steps["correctness"]["result"]
    assert correctness["all_within_tolerance"] is True
    assert {"preact_basic/compiled", "densenet_bc/compiled", "wide_resnet/compiled"} <= set(
        correctness
    )
    assert steps["training"]["result"]["compiled"]["graph_breaks"] == 0
    models = steps["bench"]["result"]["models"]
    assert len(models) == 5 and steps["bench"]["result"]["skipped"] == []
    for m in models:
        for column in ("standard", "standard_amp", "ours_eager", "ours_compiled"):
            assert m[column]["seconds_per_epoch"] > 0
        assert m["ours_compiled"]["compile_seconds"] >= 0
    assert steps["sweep"]["result"]["unit"] == "CPU-hours"
    md = (tmp_path / "proof.md").read_text()
    assert md.startswith("# kdecay proof (cpu)") and "| bench | ok" in md


def test_a_small_budget_skips_steps_and_says_so(tmp_path: Path) -> None:
    done = _proof(tmp_path, 3)
    assert done.returncode == 0, done.stderr[-3000:]
    steps = json.loads((tmp_path / "proof.json").read_text())["steps"]
    assert steps["environment"]["status"] == "ok"
    for name in ("correctness", "training", "bench"):
        assert steps[name]["status"] == "skipped" and "of the budget left" in steps[name]["why"]
    assert steps["sweep"]["status"] == "skipped"
