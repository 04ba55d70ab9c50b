"""The ``bench`` step of ``kdecay proof``: every model of the params, in order of its share of
the plan's GPU-hours (at ``sweep.seconds_per_epoch``), each under a hard deadline.

A model's columns run cheapest-first so that a model stopped at its deadline still leaves
figures: ``ours_eager`` (no compilation), then for the thin rows ``FUSE`` runs fused (eager
``vmap``), then ``ours_compiled`` (the sweep's step on CUDA), ``standard_amp``, ``standard``
and last ``ours_graph`` (CUDA; on the first H200, torch 2.11, the graphed step killed the
process with a segmentation fault: the supervisor records that and goes on). Each column is
written to the report as soon as it ends.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from kdecay.bench.deadline import DeadlineError, caused_by_deadline, deadline
from kdecay.bench.fused import bench_fused
from kdecay.bench.pipelines import bench_ours, bench_standard
from kdecay.bench.proof_checks import THIN, StepSkippedError
from kdecay.bench.targets import BenchTarget, select_targets
from kdecay.bench.timing import free, measure_peak_flops
from kdecay.config import Config, load_config
from kdecay.models import build_from_spec, count_params, forward_macs
from kdecay.train import Runtime

__all__ = ["FUSE", "bench_models", "by_plan_share", "measured_plan", "plan_hours"]

FUSE = 4
MIN_MODEL_S = 30.0  # a model is given at least this (or what is left), first models first


def plan_hours(config: Config, seconds_per_epoch: dict[str, float]) -> dict[str, float]:
    """GPU-hours per row of the plan's first look (``kdecay plan``'s runs) at the given
    seconds per epoch: runs x epochs x seconds / 3600."""
    from kdecay.sweep.plan import plan

    sweep = dataclasses.replace(config.sweep, seconds_per_epoch=dict(seconds_per_epoch))
    table = plan(dataclasses.replace(config, sweep=sweep)).dropna(subset=["gpu_hours"])
    return {str(r): float(h) for r, h in table.groupby("row")["gpu_hours"].sum().items()}


def by_plan_share(config: Config, targets: list[BenchTarget]) -> list[BenchTarget]:
    """``targets`` by their share of the plan's GPU-hours at the params' seconds per epoch,
    largest first (a row without a figure counts 0)."""
    hours = plan_hours(config, config.sweep.seconds_per_epoch)

    def share(t: BenchTarget) -> float:
        return sum(hours.get(row, 0.0) for row in t.rows)

    return sorted(targets, key=lambda t: -share(t))


def _columns(target: BenchTarget, runtime: Runtime, kw: dict[str, int]) -> list[tuple[str, Any]]:
    """The model's columns, cheapest first."""
    spec, eager = target.spec, dataclasses.replace(runtime, step="eager")
    cols: list[tuple[str, Callable[[], Any]]] = [
        ("ours_eager", lambda: bench_ours(spec, eager, **kw))
    ]
    if target.name in THIN:
        fuse = (kw["warmup"], kw["passes"], kw["steps"])
        # the compiled group on CUDA; the CPU dry run times the eager one only (Inductor's CPU
        # compile of a fused step takes minutes, and a CPU figure says nothing of a GPU's)
        form = runtime if runtime.cuda else eager
        cols.append(("fused", lambda: bench_fused(spec, form, FUSE, *fuse)))
    cols += [
        ("ours_compiled", lambda: bench_ours(spec, runtime, **kw)),
        ("standard_amp", lambda: bench_standard(spec, runtime.device, **kw, amp=True)),
        ("standard", lambda: bench_standard(spec, runtime.device, **kw)),
    ]
    if runtime.cuda:  # last: the graphed step crashed the process on the first H200
        graph = dataclasses.replace(runtime, step="graph")
        cols.append(("ours_graph", lambda: bench_ours(spec, graph, **kw)))
    return cols


def _finish_entry(entry: dict[str, Any], peak: float) -> None:
    """Ratios of the columns measured: MFU, against the standard pipelines, fused speed-ups."""
    for name in ("ours_eager", "ours_compiled", "ours_graph", "standard", "standard_amp"):
        col = entry.get(name)
        if col:
            col["mfu"] = 3 * entry["forward_macs"] * 2 * col["images_per_s"] / peak
    base = entry.get("standard_amp") or entry.get("standard")
    if base and entry.get("ours_compiled"):
        entry["ratio"] = base["seconds_per_epoch"] / entry["ours_compiled"]["seconds_per_epoch"]
    fused = entry.get("fused")
    if fused:
        pairs = (
            ("ours_eager", "vs_ours_eager", fused["eager"]),
            ("ours_compiled", "vs_ours_step", fused),
        )
        for name, key, form in pairs:  # eager fused vs eager alone; the step form vs compiled
            if entry.get(name):
                alone = fused["members"] * entry[name]["seconds_per_epoch"]
                fused[key] = alone / form["seconds_per_epoch"]


def bench_model(
    target: BenchTarget,
    runtime: Runtime,
    kw: dict[str, int],
    entry: dict[str, Any],
    proof: Any,
    log: Any,
) -> None:
    """Fill ``entry`` column by column (each one in a clean device state), the report
    written after each."""
    probe = build_from_spec(target.spec.model, target.spec.num_classes)
    entry |= {
        "name": target.name,
        "rows": target.rows,
        "model": target.spec.model,
        "batch_size": target.spec.batch_size,
        "params": count_params(probe),
        "forward_macs": forward_macs(probe),
        "status": "running",
    }
    del probe
    for name, run in _columns(target, runtime, kw):
        try:
            entry[name] = run()
        except Exception as err:  # one column failing leaves the others theirs
            if caused_by_deadline(err):
                raise DeadlineError(f"{name} stopped") from err
            entry.setdefault("errors", {})[name] = f"{type(err).__name__}: {str(err)[:500]}"
            log(f"[proof] {target.name}: {name} failed ({entry['errors'][name][:200]})")
            continue
        finally:
            torch.compiler.reset()  # drop compiled graphs (and the model they hold)
            free(runtime.device)
        seconds = entry[name].get("seconds_per_member_epoch", entry[name]["seconds_per_epoch"])
        log(f"[proof] {target.name}: {name} {seconds:.2f} s per (member-)epoch")
        proof.write()
    entry["status"] = "done"


def bench_models(
    params: Path,
    runtime: Runtime,
    kw: dict[str, int],
    report: dict[str, Any],
    proof: Any,
    log: Any,
) -> dict[str, Any]:
    """Every model of ``params`` by plan share into ``report["models"]`` (models already
    ``done`` there, from a stopped proof, are kept); each gets at most twice its fair share
    of the time left (at least ``MIN_MODEL_S``: the first models come first). A model that
    ended otherwise in this call (stopped, crashed) is not tried again in it."""
    config = load_config(params)
    report.setdefault("peak", measure_peak_flops(runtime.device))
    report["settings"] = kw
    report["targets"] = dict(config.sweep.seconds_per_epoch)
    models: list[dict[str, Any]] = report.setdefault("models", [])
    done = {m["name"] for m in models if m.get("status") == "done" or m.get("call") == proof.call}
    models[:] = [m for m in models if m["name"] in done]
    todo = [t for t in by_plan_share(config, select_targets(config, None)) if t.name not in done]
    report["order"] = [m["name"] for m in models] + [t.name for t in todo]
    for i, target in enumerate(todo):
        left = proof.left()
        allowed = min(left, max(2 * left / (len(todo) - i), MIN_MODEL_S))
        entry: dict[str, Any] = {
            "name": target.name,
            "rows": target.rows,
            "deadline_seconds": round(allowed, 1),
            "started_unix": time.time(),
            "call": proof.call,
        }
        models.append(entry)
        proof.write()
        if allowed < 5:
            entry["status"] = f"not reached: {proof.left():.0f} s of the budget left"
            continue
        t0 = time.monotonic()
        try:
            with deadline(allowed):
                bench_model(target, runtime, kw, entry, proof, log)
        except DeadlineError:
            entry["status"] = f"stopped at its deadline ({allowed:.0f} s); partial figures kept"
            log(f"[proof] {target.name}: {entry['status']}")
        entry["seconds"] = round(time.monotonic() - t0, 1)
        _finish_entry(entry, report["peak"]["flops"])
        proof.write()
    report["complete"] = all(m.get("status") == "done" for m in models)
    return report


def _row_speed(model: dict[str, Any]) -> tuple[float, str] | None:
    """A measured model's seconds per epoch for the sweep: its compiled step (what
    ``train.step: auto`` runs on CUDA), else its eager step; None if neither was measured."""
    for column in ("ours_compiled", "ours_eager"):
        if model.get(column):
            return float(model[column]["seconds_per_epoch"]), column
    return None


def measured_plan(params: Path, report: dict[str, Any]) -> dict[str, Any]:
    """The seconds per epoch the bench measured, per row (for ``sweep.seconds_per_epoch``),
    and the GPU-hours of the plan's first look at them (rows not measured at the params'
    figure), against the GPU-hours at the params' figures."""
    config = load_config(params)
    bench = (report["steps"].get("bench") or {}).get("result") or {}
    seconds, source = {}, {}
    for model in bench.get("models", []):
        speed = _row_speed(model)
        for row in model.get("rows", []) if speed else []:
            seconds[row], source[row] = round(speed[0], 3), speed[1]
    if not seconds:
        raise StepSkippedError("no model was measured")
    targets = dict(config.sweep.seconds_per_epoch)
    at_measured = plan_hours(config, targets | seconds)
    at_targets = plan_hours(config, targets)
    return {
        "unit": "GPU-hours" if report["device"] == "cuda" else "CPU-hours",
        "seconds_per_epoch": seconds,
        "measured_with": source,
        "rows_at_params_figure": sorted(set(config.rows) - set(seconds)),
        "plan_hours": sum(at_measured.values()),
        "plan_hours_at_params_figures": sum(at_targets.values()) if targets else None,
        "plan_hours_by_row": at_measured,
        "note": "training of the plan's first look (kdecay plan's runs): runs x epochs x "
        "seconds per 50,000-image epoch; evaluation not included",
    }
