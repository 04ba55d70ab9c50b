"""``kdecay proof``'s supervisor: the proof's steps run in a worker process
(:func:`kdecay.bench.proof.run_steps`) that this process watches.

A step or bench model that runs past its deadline although the worker's own deadline
(``SIGALRM``, :mod:`kdecay.bench.deadline`) should have stopped it (a library can swallow the
exception, or sit in C code), and a worker that dies (a crash in a CUDA library, say), cost
that step alone: the supervisor stops the worker, records the step as ``stopped`` or
``crashed`` with its partial figures, and starts a new worker for the steps after it, all
within the call's budget. Ctrl-C stops the worker too. The worker never imports dvc, ray or
submitit (the GPU machines have none of them).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kdecay.bench.proof import DEFAULT_BUDGET, MIN_SECONDS, STEPS, read_report, write_report
from kdecay.checks import ConfigError, check_number
from kdecay.fileio import check_writable

__all__ = ["run_proof"]

Log = Callable[[str], None]
WORKER = (
    "import sys\n"
    "from pathlib import Path\n"
    "for name in ('dvc', 'ray', 'submitit'):\n"
    "    sys.modules[name] = None  # the GPU machines have none of them\n"
    "from kdecay.bench.proof import run_steps\n"
    "run_steps(Path(sys.argv[1]), Path(sys.argv[2]))\n"
)
GRACE_S = 15.0  # past a deadline before the supervisor stops the worker
POLL_S = 0.5


def _running(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries (steps and bench models) marked running, with a deadline."""
    entries = [e for e in report["steps"].values() if e.get("status") == "running"]
    bench = (report["steps"].get("bench") or {}).get("result") or {}
    entries += [m for m in bench.get("models", []) if m.get("status") == "running"]
    return [e for e in entries if "started_unix" in e and "deadline_seconds" in e]


def _overdue(out: Path) -> bool:
    """Whether a running step or model of the report is past its deadline and the grace."""
    try:
        report = read_report(out)
    except ConfigError:
        return False  # being replaced right now
    now = time.time()
    return any(e["started_unix"] + e["deadline_seconds"] + GRACE_S < now for e in _running(report))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the worker and everything it started (its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _run_worker(out: Path, params: Path) -> str | None:
    """One worker over the steps left; None when it got through them, else what happened."""
    cmd = [sys.executable, "-c", WORKER, str(out), str(params)]
    proc = subprocess.Popen(cmd, start_new_session=True)
    try:
        while proc.poll() is None:
            time.sleep(POLL_S)
            if _overdue(out):
                _stop(proc)
                return f"stopped past its deadline (+{GRACE_S:g} s) by stopping its process"
    except BaseException:  # Ctrl-C: the worker goes too
        _stop(proc)
        raise
    _stop(proc)  # what the worker left running (a stopped step's processes) goes with it
    if proc.returncode == 0:
        return None
    code = proc.returncode
    how = f"signal {-code}" if code < 0 else f"exit code {code}"
    return f"crashed: its process died ({how}); the next steps ran in a new process"


def _mark(report: dict[str, Any], what: str) -> None:
    """Close the entries the stopped worker left running. A bench model stopped or crashed
    ends alone: the bench step goes on with the next model in the next worker."""
    running = _running(report)
    models = [e for e in running if "rows" in e]
    for entry in models or running:
        entry["status"] = "stopped" if what.startswith("stopped") else "crashed"
        entry["why"] = what + "; partial figures kept"
        entry["seconds"] = round(time.time() - entry["started_unix"], 1)
    if models:
        report["steps"]["bench"]["status"] = "interrupted"


def _new_call(out: Path, device: str, budget: float, resume: bool) -> dict[str, Any]:
    """The report with this call added (a new one, or the stopped proof's)."""
    if resume:
        report = read_report(out)
        if report.get("device") != device:
            raise ConfigError(
                f"kdecay proof --resume {out}: that proof ran on {report.get('device')}, not "
                f"{device}; give --device {report.get('device')}"
            )
    else:
        report = {"device": device, "steps": {}, "calls": []}
    report["command"] = f"kdecay proof --out {out} --device {device} --budget-seconds {budget:g}"
    report["budget_seconds"] = budget
    now = dt.datetime.now(dt.UTC)
    report["calls"].append(
        {"started": now.isoformat(timespec="seconds"), "started_unix": now.timestamp(),
         "resume": resume}
    )  # fmt: skip
    return report


def run_proof(
    out_dir: Path,
    device: str = "cuda",
    budget_seconds: float | None = None,
    params_file: Path | None = None,
    log: Log = print,
    resume: bool = False,
) -> dict[str, Any]:
    """Run the proof's steps on ``device`` within ``budget_seconds`` (default
    :data:`kdecay.bench.proof.DEFAULT_BUDGET`), in worker processes; returns the report."""
    import torch

    budget = check_number(
        budget_seconds if budget_seconds is not None else DEFAULT_BUDGET[device],
        "--budget-seconds", low=0, low_open=True, error=ConfigError,
    )  # fmt: skip
    out = Path(out_dir)
    check_writable(out, "proof's report folder (kdecay proof --out)")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "kdecay proof --device cuda: no CUDA device is visible here; --device cpu runs "
            "the same sequence with tiny sizes"
        )
    root = Path(__file__).resolve().parents[3]
    params = params_file or root / ("params.yaml" if device == "cuda" else "params.smoke.yaml")
    out.mkdir(parents=True, exist_ok=True)
    report = _new_call(out, device, budget, resume)
    write_report(out, report)
    while (what := _run_worker(out, params)) is not None:
        report = read_report(out)
        _mark(report, what)
        log(f"[proof] the worker {what}")
        left = budget - (time.time() - report["calls"][-1]["started_unix"])
        if left < MIN_SECONDS[device]:
            for name in STEPS:
                entry = report["steps"].get(name)
                if entry is None or entry.get("call") != len(report["calls"]) - 1:
                    report["steps"][name] = {"status": "skipped", "why": "no budget left",
                                             "call": len(report["calls"]) - 1}  # fmt: skip
            write_report(out, report)
            break
        write_report(out, report)
    return read_report(out)
