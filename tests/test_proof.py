"""`kdecay proof --device cpu`: the GPU proof kit runs its whole sequence with tiny sizes on the
CPU, in worker processes that cannot import dvc, ray or submitit (the GPU machines have none of
them), within its budget, and writes a report that opens with its conclusions. A worker killed
mid-model costs that model alone; `--resume` completes the proof; a budget too small for a step
lists it as skipped; deadlines stop a unit of work even where a library swallows them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdecay.bench.deadline import DeadlineError, caused_by_deadline, deadline
from kdecay.bench.proof import STEPS

ROOT = Path(__file__).resolve().parents[1]
# the proof run as a child whose imports of dvc, ray and submitit fail
BLOCKED = (
    "import sys\n"
    "for name in ('dvc', 'ray', 'submitit'):\n"
    "    sys.modules[name] = None  # import raises ImportError\n"
    "from kdecay.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
MODELS = {"preact_resnet110", "preact_resnet164", "wrn16_8", "wrn28_10", "densenet_bc100_k12"}


def _argv(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", BLOCKED, "proof", "--device", "cpu", *extra]


def _proof(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _argv(out, "--out", str(out), *extra),
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def _worker_pids(out: Path) -> list[int]:
    """The proof workers writing into ``out`` (found by their command line)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"run_steps" in a for a in args) and str(out).encode() in args:
            pids.append(int(pid))
    # Inductor's compile workers are forked from the worker, with its command line: the
    # worker is the one whose parent is not one of them
    return [pid for pid in pids if _parent(pid) not in pids]


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state


def _kill_worker_in_bench(out: Path, log: Path) -> subprocess.Popen[str]:
    """Start a proof and kill -9 its worker once the first model has a column measured."""
    with log.open("w") as sink:
        proc = subprocess.Popen(
            _argv(out, "--out", str(out)), cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
    deadline_at = time.monotonic() + 600
    while "s per (member-)epoch" not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline_at, log.read_text()[-3000:]
        time.sleep(0.2)
    pids = _worker_pids(out)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    return proc


@pytest.mark.slow
def test_a_killed_worker_costs_one_model_and_resume_completes_the_proof(tmp_path: Path) -> None:
    out = tmp_path / "proof"
    proc = _kill_worker_in_bench(out, tmp_path / "log")
    assert proc.wait(timeout=900) == 0, (tmp_path / "log").read_text()[-3000:]
    report = json.loads((out / "proof.json").read_text())
    steps = report["steps"]
    assert list(steps) == list(STEPS)
    assert report["elapsed_seconds"] <= report["budget_seconds"] + 60  # the default budget
    models = {m["name"]: m for m in steps["bench"]["result"]["models"]}
    crashed = [n for n, m in models.items() if m["status"] == "crashed"]
    assert len(crashed) == 1 and "signal 9" in models[crashed[0]]["why"]
    assert models[crashed[0]]["ours_eager"]["seconds_per_epoch"] > 0  # partial figures kept
    # the others went on in a new worker (done, or stopped at a deadline on a loaded machine)
    assert all(m["status"] != "crashed" for n, m in models.items() if n not in crashed)
    assert steps["environment"]["status"] == "ok" and steps["shared"]["status"] == "skipped"
    md = (out / "proof.md").read_text()
    assert md.startswith("# kdecay proof (cpu)") and md.index("## Conclusions") < md.index(
        "## Steps"
    )
    assert "[crashed: crashed: its process died (signal 9)" in md

    kept = {  # finished steps (the bench, with its crashed model, is not finished)
        n: s["seconds"]
        for n, s in steps.items()
        if s["status"] == "ok" and s["result"].get("complete", True)
    }
    done = _proof(out, "--resume", str(out), "--budget-seconds", "900")
    assert done.returncode == 0, done.stderr[-3000:]
    again = json.loads((out / "proof.json").read_text())
    steps = again["steps"]
    assert len(again["calls"]) == 2 and again["calls"][1]["resume"] is True
    redone = ("environment", "sweep")
    assert {n: steps[n]["seconds"] for n in kept if n not in redone} == {
        n: s for n, s in kept.items() if n not in redone
    }  # what finished is kept
    models = {m["name"]: m for m in steps["bench"]["result"]["models"]}
    assert set(models) == MODELS and all(m["status"] == "done" for m in models.values())
    for name in ("environment", "correctness", "bench", "fused", "epoch", "training", "sweep"):
        assert steps[name]["status"] == "ok", (name, steps[name])
    assert steps["correctness"]["result"]["all_within_tolerance"] is True
    assert steps["training"]["result"]["compiled"]["graph_breaks"] == 0
    assert steps["training"]["result"]["compiled"]["per_step"]["ops"] > 0
    fused = steps["fused"]["result"]
    assert fused["all_within_tolerance"] is True
    assert {"4", "8"} == set(fused["preact_resnet110"]["groups"])
    epoch = steps["epoch"]["result"]
    assert epoch["checkpoint_written"] and "metrics.json" in epoch["files"]
    assert epoch["metrics"]["status"] == "completed"
    assert set(steps["sweep"]["result"]["seconds_per_epoch"]) >= MODELS - {"wrn28_10"}
    assert "in 2 calls" in (out / "proof.md").read_text()


def test_a_small_budget_skips_steps_and_says_so(tmp_path: Path) -> None:
    done = _proof(tmp_path, "--budget-seconds", "3")
    assert done.returncode == 0, done.stderr[-3000:]
    steps = json.loads((tmp_path / "proof.json").read_text())["steps"]
    assert steps["environment"]["status"] == "ok"
    for name in ("correctness", "bench", "fused", "epoch", "training"):
        assert steps[name]["status"] == "skipped" and "of the budget left" in steps[name]["why"]
    assert steps["sweep"]["status"] == "skipped"


def test_resume_refuses_a_folder_without_a_proof(tmp_path: Path) -> None:
    (tmp_path / "proof.json").write_text("[1, 2")
    done = _proof(tmp_path, "--resume", str(tmp_path))
    assert done.returncode == 2
    assert "is not a proof report" in done.stderr and "without --resume" in done.stderr


def test_a_deadline_stops_the_unit_even_where_a_library_swallows_it() -> None:
    t0 = time.monotonic()
    swallowed = 0
    with pytest.raises(DeadlineError), deadline(0.3):
        try:  # a library that catches every exception (Inductor's cache writer does)
            while time.monotonic() - t0 < 10:
                sum(range(10_000))
        except Exception:
            swallowed += 1
        while time.monotonic() - t0 < 10:  # the work goes on after it
            sum(range(10_000))
    assert swallowed == 1 and time.monotonic() - t0 < 5


def test_deadlines_nest_and_an_inner_one_leaves_the_outer_armed() -> None:
    t0 = time.monotonic()
    with pytest.raises(DeadlineError), deadline(1.0):
        with pytest.raises(DeadlineError), deadline(0.1):
            while True:
                pass
        inner_done = time.monotonic() - t0
        while True:
            pass
    assert inner_done < 0.9 <= time.monotonic() - t0 < 5


def test_an_error_raised_from_a_deadline_counts_as_the_deadline() -> None:
    try:
        try:
            raise DeadlineError("deadline reached")
        except DeadlineError as err:
            raise RuntimeError("backend compiler failed") from err
    except RuntimeError as wrapped:
        assert caused_by_deadline(wrapped)
    assert not caused_by_deadline(RuntimeError("other"))
