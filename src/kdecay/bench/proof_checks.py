"""The steps of ``kdecay proof`` (:mod:`kdecay.bench.proof`): what each measures or checks."""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from kdecay.bench.ops import kernel_profile, ops_per_step
from kdecay.bench.pipelines import synthetic_data
from kdecay.bench.timing import cycle
from kdecay.config import Config, TrainOptions, load_config
from kdecay.models import build_from_spec
from kdecay.train import Runtime, Trainer, runtime_for

__all__ = [
    "FAMILIES",
    "THIN",
    "StepSkippedError",
    "checked",
    "correctness",
    "environment",
    "proof_runtime",
    "shared",
    "training_forms",
]

FAMILIES: dict[str, dict[str, Any]] = {  # a tiny member of every model family
    "preact_basic": {"family": "preact_resnet", "depth": 8, "base_width": 8},
    "preact_bottleneck": {
        "family": "preact_resnet",
        "depth": 11,
        "bottleneck": True,
        "base_width": 4,
    },
    "wide_resnet": {"family": "wide_resnet", "depth": 10, "widen_factor": 2, "base_width": 4},
    "densenet_bc": {"family": "densenet_bc", "depth": 10, "growth_rate": 6},
}
BATCH, FULL_BATCHES, PARTIAL, EPOCHS = 16, 8, 5, 3
THIN = ("preact_resnet110", "preact_resnet164", "densenet_bc100_k12")
"""The launch-bound rows: several runs share a GPU, or train fused."""


class StepSkippedError(Exception):
    """A step that does not apply on this device; the message says why."""


def environment(device: str) -> dict[str, Any]:
    """What ran: GPU, driver, torch / CUDA / cuDNN versions, the host."""
    out: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "host_cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        out |= {
            "gpu": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "cudnn": torch.backends.cudnn.version(),
        }
        try:
            smi = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
            out["driver"] = subprocess.run(
                smi, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            out["driver"] = "nvidia-smi not available"
    return out


def _trainer(model: dict[str, Any], runtime: Runtime, seed: int = 0) -> Trainer:
    """A one-row tiny run (step schedule, LR change at epoch 2) on random CIFAR-shaped data
    with a partial last batch, built as training builds its runs."""
    raw = {
        "data": {"cifar10": {"md5": "0" * 32}},
        "datasets": ["cifar10"],
        "seeds": [0],
        "rows": {"tiny": {
            "model": model, "epochs": EPOCHS, "batch_size": BATCH,
            "optimizer": {"lr": 0.02, "momentum": 0.9, "nesterov": False, "weight_decay": 5e-4},
            "original": {"schedule": "step", "milestones": [2], "gamma": 0.1},
        }},
        "kdecay": {"schedule": "poly", "power": 2.0, "lr_end": 0.0, "ks": [1]},
        "train": {"eval_batch_size": 8},
    }  # fmt: skip
    spec = Config.from_mapping(raw).run_spec("cifar10", "tiny", "original", None, seed)
    data = synthetic_data(BATCH * FULL_BATCHES + PARTIAL, 10, seed=1, n_test=12)
    torch.manual_seed(seed)
    return Trainer(spec, data, build_from_spec(spec.model, spec.num_classes), runtime)


def _epoch(trainer: Trainer) -> list[float]:
    trainer.model.train()
    return [float(trainer.train_step(x, y)[0]) for x, y in trainer.train_loader]


def proof_runtime(device: str, step: str, fast: bool) -> Runtime:
    """The runtime training would use (TF32, cudnn.benchmark set as training sets them)."""
    cuda = device == "cuda"
    options = TrainOptions(
        device=device,
        precision="bf16" if fast and cuda else "fp32",
        channels_last=fast and cuda,
        step=step,
    )
    runtime = runtime_for(options)
    if not cuda and step != "eager":  # the CPU proves the graphs, not Inductor's C++ speed
        runtime = dataclasses.replace(runtime, compile_backend="aot_eager")
    return runtime


def correctness(device: str, out: dict[str, Any]) -> dict[str, Any]:
    """Per family and fast form: the loss trajectory over three epochs (a resume into a fresh
    Trainer after epoch 2) against fp32 eager; within ``0.02 + 2% |loss|`` (bf16 + TF32) on
    CUDA, ``0.01 + 1%`` (fp32) on the CPU. Every family in the compiled form (the sweep's
    step on CUDA) first, then in the graphed form (CUDA); ``out`` is filled check by check."""
    forms = ("compiled", "graph") if device == "cuda" else ("compiled",)
    abs_tol = rel_tol = 0.02 if device == "cuda" else 0.01
    out["planned"] = [f"{family}/{form}" for form in forms for family in FAMILIES]
    refs: dict[str, list[float]] = {}
    for form, (family, model) in ((f, fm) for f in forms for fm in FAMILIES.items()):
        if family not in refs:
            ref_trainer = _trainer(model, proof_runtime(device, "eager", fast=False))
            refs[family] = [loss for _ in range(EPOCHS) for loss in _epoch(ref_trainer)]
        ref = refs[family]
        first = _trainer(model, proof_runtime(device, form, fast=True))
        fast = [loss for _ in range(EPOCHS - 1) for loss in _epoch(first)]
        resumed = _trainer(model, proof_runtime(device, form, fast=True), seed=1)
        resumed.load_state(first.state())  # other initial weights, then the checkpoint
        fast += _epoch(resumed)
        gaps = [abs(a - b) - (abs_tol + rel_tol * abs(b)) for a, b in zip(fast, ref, strict=True)]
        out[f"{family}/{form}"] = {
            "steps": len(ref),
            "max_abs_gap": max(abs(a - b) for a, b in zip(fast, ref, strict=True)),
            "within_tolerance": max(gaps) <= 0,
            "tolerance": f"{abs_tol} + {rel_tol} x |loss|",
        }
        out["all_within_tolerance"] = all(out[c]["within_tolerance"] for c in checked(out))
    return out


def checked(out: dict[str, Any]) -> list[str]:
    """The correctness checks that ran (of ``out["planned"]``)."""
    return [c for c in out.get("planned", []) if c in out]


def training_forms(device: str, out: dict[str, Any]) -> dict[str, Any]:
    """A smoke-sized run (two epochs with their partial batches) per step form, with what
    Dynamo and Inductor counted (graph breaks, graphs compiled, CUDA-graph events: a skipped
    CUDA graph shows as ``cudagraph_skips``) and the kernels one step launches."""
    from torch._dynamo.utils import counters

    forms = ("eager", "compiled", "graph") if device == "cuda" else ("eager", "compiled")
    for form in forms:
        counters.clear()
        trainer = _trainer(FAMILIES["preact_basic"], proof_runtime(device, form, fast=True))
        t0 = time.perf_counter()
        with kernel_profile():  # Inductor's CPU kernels visible to the profiler
            losses = _epoch(trainer) + _epoch(trainer)
        out[form] = {
            "seconds": round(time.perf_counter() - t0, 2),
            "final_loss": losses[-1],
            "graph_breaks": sum(counters["graph_break"].values()),
            "graphs_compiled": counters["stats"].get("unique_graphs", 0),
            "cudagraph_events": {k: v for k, v in counters["inductor"].items() if "cudagraph" in k},
            "per_step": ops_per_step(trainer.train_step, cycle(trainer.train_loader)),
        }
    return out


def shared(params: Path, device: str) -> Any:
    """Two processes of each thin model on one GPU (``kdecay bench --shared 2``)."""
    if device != "cuda":
        raise StepSkippedError("several processes on one GPU: CUDA only")
    from kdecay.bench.shared import bench_shared
    from kdecay.bench.targets import select_targets

    targets = select_targets(load_config(params), list(THIN))
    return [bench_shared(t, 2, 5, 20, "compiled") for t in targets]
