"""``kdecay proof``: one command that proves the CUDA path and measures every model.

Made for a bare GPU machine lent for minutes (no network, no install; PyTorch, numpy, pandas,
scipy, matplotlib, pyyaml and tqdm: nothing here imports dvc, ray or submitit). Steps, in order
of value, each written to ``proof.json`` and ``proof.md`` as soon as it ends, so a run cut off
by its time limit still returns everything it finished:

1. ``environment``: GPU, driver, torch / CUDA / cuDNN versions;
2. ``correctness``: per model family, the fast path (bf16 + channels_last + the compiled step,
   and the graphed step on CUDA, TF32 and cudnn.benchmark set as training sets them) follows
   fp32 eager within the bf16 tolerance, through a resume (:mod:`kdecay.bench.proof_checks`);
3. ``training``: a smoke-sized run per step form, with its graph breaks, compiled graphs and
   CUDA-graph counters;
4. ``bench``: each model of the params at its row's batch: every column of ``kdecay bench``
   plus ``ours_graph`` on CUDA, compile seconds apart from steady seconds per epoch, and for
   the thin rows 4 runs fused in one network against the same runs one by one (``--fuse 4``);
5. ``shared``: two processes of each thin model on one GPU (CUDA only);
6. ``sweep``: the sweep's device-hours from the measured seconds per epoch.

A step that would not fit the remaining ``--budget-seconds`` is listed as skipped, never
silently dropped. ``--device cpu`` runs the same sequence with tiny sizes (the smoke params),
which ``make test`` does, so the kit cannot rot before a GPU appears.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kdecay.bench.proof_checks import StepSkippedError
from kdecay.bench.report import fused_lines
from kdecay.checks import ConfigError, check_number
from kdecay.fileio import check_writable

__all__ = ["STEPS", "run_proof"]

STEPS = ("environment", "correctness", "training", "bench", "shared", "sweep")
# the seconds each step needs at least (CUDA, CPU): a step is skipped when less is left
NEEDS = {
    "environment": (0, 0),  # always: it says what the other steps ran on
    "correctness": (90, 60),
    "training": (60, 30),
    "bench": (60, 30),
    "shared": (60, 1),
    "sweep": (1, 1),
}


class Proof:
    """The report being built; written after every step."""

    def __init__(self, out: Path, device: str, budget: float) -> None:
        self.out, self.device, self.budget, self.start = out, device, budget, time.monotonic()
        self.report: dict[str, Any] = {
            "command": f"kdecay proof --out {out} --device {device} --budget-seconds {budget:g}",
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "device": device,
            "budget_seconds": budget,
            "steps": {},
        }
        out.mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start)

    def step(self, name: str, run: Callable[[], Any], log: Callable[[str], None]) -> Any:
        """Run one step (or skip it) and write the report; returns its result or None."""
        need = NEEDS[name][0 if self.device == "cuda" else 1]
        if self.left() < need:
            entry: dict[str, Any] = {
                "status": "skipped",
                "why": f"{self.left():.0f} s of the budget left, the step needs about {need} s",
            }
            result = None
        else:
            log(f"[proof] {name} ...")
            t0 = time.monotonic()
            try:
                result = run()
                entry = {"status": "ok", "result": result}
            except StepSkippedError as why:
                result, entry = None, {"status": "skipped", "why": str(why)}
            except Exception as err:  # a failed step is reported; the next ones still run
                result = None
                entry = {"status": "failed", "error": f"{type(err).__name__}: {err}",
                         "traceback": traceback.format_exc()[-4000:]}  # fmt: skip
            entry["seconds"] = round(time.monotonic() - t0, 1)
        self.report["steps"][name] = entry
        self.write()
        log(
            f"[proof] {name}: {entry['status']}"
            + (f" ({entry.get('why')})" if "why" in entry else "")
        )
        return result

    def write(self) -> None:
        self.report["elapsed_seconds"] = round(time.monotonic() - self.start, 1)
        (self.out / "proof.json").write_text(json.dumps(self.report, indent=2, default=str) + "\n")
        (self.out / "proof.md").write_text(render(self.report))


def render(report: dict[str, Any]) -> str:
    """The report as Markdown: a line per step, then each step's result."""
    lines = [f"# kdecay proof ({report['device']})", "", f"`{report['command']}`", ""]
    lines += ["| step | status | seconds |", "|---|---|--:|"]
    for name in STEPS:
        entry = report["steps"].get(name, {"status": "not reached"})
        lines.append(
            f"| {name} | {entry['status']} {entry.get('why', '')} | {entry.get('seconds', '')} |"
        )
    for name, entry in report["steps"].items():
        if entry["status"] != "skipped":
            body = entry.get("result", entry.get("error"))
            lines += [
                "",
                f"## {name}",
                "",
                "```",
                json.dumps(body, indent=1, default=str)[:6000],
                "```",
            ]
            if name == "bench" and isinstance(body, dict):
                lines += fused_lines(body.get("models", []))
    return "\n".join(lines) + "\n"


def run_proof(
    out_dir: Path,
    device: str = "cuda",
    budget_seconds: float = 480,
    params_file: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the proof's steps on ``device`` within ``budget_seconds``; returns the report."""
    import torch

    from kdecay.bench import proof_checks as checks

    budget = check_number(
        budget_seconds, "--budget-seconds", low=0, low_open=True, error=ConfigError
    )
    check_writable(Path(out_dir), "proof's report folder (kdecay proof --out)")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "kdecay proof --device cuda: no CUDA device is visible here; --device cpu runs "
            "the same sequence with tiny sizes"
        )
    root = Path(__file__).resolve().parents[3]
    params = params_file or root / ("params.yaml" if device == "cuda" else "params.smoke.yaml")
    proof = Proof(Path(out_dir), device, budget)
    proof.step("environment", lambda: checks.environment(device), log)
    proof.step("correctness", lambda: checks.correctness(device), log)
    proof.step("training", lambda: checks.training_forms(device), log)
    bench = proof.step("bench", lambda: checks.bench_models(params, device, proof, log), log)
    proof.step("shared", lambda: checks.shared(params, device), log)
    proof.step("sweep", lambda: checks.sweep_hours(params, device, bench), log)
    return proof.report
