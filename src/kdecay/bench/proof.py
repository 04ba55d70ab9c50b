"""``kdecay proof``: one command that proves the CUDA path and measures every model, made to
fit one call of a GPU machine lent for minutes (``--budget-seconds``, 540 on CUDA: compile
times included).

Made for a bare machine (no network, no install; PyTorch, numpy, pandas, scipy, matplotlib,
pyyaml and tqdm: nothing here imports dvc, ray or submitit). The steps, in order of value, each
under a hard deadline (:mod:`kdecay.bench.deadline`) that leaves the later steps their share;
the report (``proof.json``, and ``proof.md`` opening with its conclusions) is written after
every step and every model, so a call cut off still returns everything it finished:

1. ``environment``: GPU, driver, torch / CUDA / cuDNN versions;
2. ``correctness``: per model family, the fast path against fp32 eager through a resume
   (:func:`kdecay.bench.proof_checks.correctness`), at most 60 s;
3. ``bench``: every model by its share of the plan's GPU-hours (:mod:`.proof_bench`);
4. ``fused``: the thin rows fused at G = 4 and 8 on the device against their runs alone;
5. ``epoch``: one full epoch of ``kdecay train`` with evaluation and checkpoint
   (:mod:`.proof_runs`);
6. ``training``: a tiny run per step form with graph breaks, graphs, CUDA-graph events and
   kernels per step;
7. ``shared``: two processes of each thin model on one GPU (CUDA only);
8. ``sweep``: the seconds per epoch for ``params.yaml`` and the plan's GPU-hours at them.

``--resume DIR`` continues a stopped proof: the steps (and bench models) that finished are
kept, the rest run with a fresh budget. ``--device cpu`` runs the same sequence with the smoke
models (``make test`` does), so the kit cannot rot before a GPU appears.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kdecay.bench.deadline import caused_by_deadline, deadline
from kdecay.bench.proof_checks import StepSkippedError
from kdecay.bench.proof_report import render
from kdecay.checks import ConfigError

__all__ = [
    "DEFAULT_BUDGET",
    "MIN_SECONDS",
    "STEPS",
    "Proof",
    "read_report",
    "run_steps",
    "write_report",
]

Log = Callable[[str], None]
Body = Callable[[dict[str, Any]], Any]
STEPS = ("environment", "correctness", "bench", "fused", "epoch", "training", "shared", "sweep")
DEFAULT_BUDGET = {"cuda": 540.0, "cpu": 240.0}
# per step (CUDA, CPU): the most seconds it may take (None: what the later steps leave)
CAPS: dict[str, tuple[float | None, float | None]] = {
    "environment": (30, 30),
    "correctness": (60, 60),
    "bench": (None, None),
    "fused": (60, 40),
    "epoch": (75, 40),
    "training": (45, 30),
    "shared": (None, 5),
    "sweep": (30, 30),
}
MIN_SECONDS = {"cuda": 10.0, "cpu": 3.0}  # a step given less is skipped


FINAL_IN_CALL = ("stopped", "crashed", "failed", "skipped")
"""A step (or bench model) that ended so in this call is not tried again in it."""


class Proof:
    """The report of the current call, as a worker builds it; written after every step (and
    every bench model), atomically, for the supervisor (:mod:`.proof_supervisor`) to read."""

    def __init__(self, out: Path, report: dict[str, Any]) -> None:
        self.out, self.report = out, report
        self.device, self.budget = report["device"], float(report["budget_seconds"])
        self.call = len(report["calls"]) - 1

    def left(self) -> float:
        """Seconds of the call's budget left (wall clock: a restarted worker counts on)."""
        return self.budget - (time.time() - self.report["calls"][-1]["started_unix"])

    def allowed(self, name: str) -> float:
        """The step's deadline: its cap, scaled up with a budget above the default (earlier
        steps come first); a step without a cap
        (bench, shared) gets what leaves every later step still to run its cap, and at least
        60% of the time left."""
        col = 0 if self.device == "cuda" else 1
        scale = max(1.0, self.budget / DEFAULT_BUDGET[self.device])  # a larger budget: larger caps
        cap = CAPS[name][col]
        if cap is not None:
            return min(cap * scale, self.left())
        later = STEPS[STEPS.index(name) + 1 :]
        steps = self.report["steps"]
        reserve = scale * sum(
            CAPS[s][col] or 0 for s in later if steps.get(s, {}).get("status") != "ok"
        )
        return self.left() - min(reserve, 0.4 * self.left())

    def _kept(self, name: str) -> bool:
        old = self.report["steps"].get(name, {})
        if old.get("call") == self.call and old.get("status") in FINAL_IN_CALL:
            return True  # stopped, crashed or failed in this call: not again in it
        if name in ("environment", "sweep"):  # what ran, and the sum of it: redone each call
            return old.get("call") == self.call and old.get("status") == "ok"
        return old.get("status") == "ok" and (old.get("result") or {}).get("complete", True)

    def step(self, name: str, body: Body, log: Log) -> Any:
        """Run one step under its deadline (or keep it from earlier in the report)."""
        old = self.report["steps"].get(name, {})
        if self._kept(name):
            log(f"[proof] {name}: {old['status']}, kept from earlier")
            return old.get("result")
        # the environment always: it says what the other steps ran on
        allowed = CAPS[name][0] if name == "environment" else self.allowed(name)
        result: dict[str, Any] = dict(old.get("result") or {}) if name == "bench" else {}
        entry: dict[str, Any] = {"status": "running", "call": self.call}
        if allowed < MIN_SECONDS[self.device]:
            entry |= {"status": "skipped", "why": f"{self.left():.0f} s of the budget left"}
        else:
            log(f"[proof] {name} (at most {allowed:.0f} s) ...")
            entry |= {"deadline_seconds": round(allowed, 1), "started_unix": time.time()}
            entry["result"] = result
            self.report["steps"][name] = entry
            self.write()
            entry |= _run(body, result, allowed)
        self.report["steps"][name] = entry
        self.write()
        why = f" ({entry['why']})" if "why" in entry else ""
        log(f"[proof] {name}: {entry['status']}{why}")
        return entry.get("result")

    def write(self) -> None:
        """``proof.json`` and ``proof.md``, each replaced atomically."""
        write_report(self.out, self.report)


def write_report(out: Path, report: dict[str, Any]) -> None:
    """Write ``out/proof.json`` and ``out/proof.md`` (atomically), the elapsed time updated."""
    call = report["calls"][-1]
    call["elapsed_seconds"] = round(time.time() - call["started_unix"], 1)
    report["elapsed_seconds"] = round(sum(c.get("elapsed_seconds", 0) for c in report["calls"]), 1)
    for name, text in (
        ("proof.json", json.dumps(report, indent=2, default=str) + "\n"),
        ("proof.md", render(report)),
    ):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)


def _run(body: Body, result: dict[str, Any], allowed: float) -> dict[str, Any]:
    """The step's outcome: ok, stopped at its deadline (partial result kept), skipped or
    failed (with the error; the next steps still run)."""
    t0 = time.monotonic()
    try:
        with deadline(allowed):
            out = body(result)
        entry: dict[str, Any] = {"status": "ok", "result": out if out is not None else result}
    except StepSkippedError as why:
        entry = {"status": "skipped", "why": str(why)}
    except Exception as err:
        if caused_by_deadline(err):
            why = f"stopped at its deadline of {allowed:.0f} s; partial figures kept"
            return {"status": "stopped", "why": why, "result": result,
                    "seconds": round(time.monotonic() - t0, 1)}  # fmt: skip
        entry = {"status": "failed", "error": f"{type(err).__name__}: {err}", "result": result,
                 "traceback": traceback.format_exc()[-4000:]}  # fmt: skip
    entry["seconds"] = round(time.monotonic() - t0, 1)
    return entry


def read_report(out: Path) -> dict[str, Any]:
    """The report in ``out`` (``proof.json``), checked."""
    path = out / "proof.json"
    try:
        report = json.loads(path.read_text())
        if not isinstance(report.get("steps"), dict) or not isinstance(report.get("calls"), list):
            raise ValueError("no steps or calls")
    except (OSError, ValueError, RecursionError) as err:
        raise ConfigError(
            f"kdecay proof --resume {out}: {path} is not a proof report ({err}); run the "
            "proof without --resume to start a new one"
        ) from err
    return report


def run_steps(out: Path, params: Path, log: Log = print) -> dict[str, Any]:
    """The worker: every step not yet done, in order, into the report in ``out``."""
    from kdecay.bench import proof_checks as checks
    from kdecay.bench import proof_runs as runs
    from kdecay.bench.proof_bench import bench_models, measured_plan

    proof = Proof(out, read_report(out))
    device = proof.device
    fast = checks.proof_runtime(device, "compiled", fast=True)
    fp32 = checks.proof_runtime(device, "eager", fast=False)
    kw = {"warmup": 1, "passes": 2, "steps": 20 if device == "cuda" else 2}
    steps: dict[str, Body] = {
        "environment": lambda r: checks.environment(device),
        "correctness": lambda r: checks.correctness(device, r),
        "bench": lambda r: bench_models(params, fast, kw, r, proof, log),
        "fused": lambda r: runs.fused_groups(params, fp32, kw["steps"] // 2, r, log),
        "epoch": lambda r: runs.full_epoch(params, device, r, log),
        "training": lambda r: checks.training_forms(device, r),
        "shared": lambda r: checks.shared(params, device),
        "sweep": lambda r: measured_plan(params, proof.report),
    }
    for name in STEPS:
        proof.step(name, steps[name], log)
    return proof.report
