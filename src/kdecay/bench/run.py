"""``kdecay bench``: seconds per epoch of the training step, against standard PyTorch pipelines.

For every benchmarked architecture (:mod:`kdecay.bench.targets`) the four pipelines of
:mod:`kdecay.bench.pipelines` (standard fp32, standard bf16 + channels_last, ours eager, ours
with the compiled/graphed step) train the same architecture on the same device, in the same
process, on synthetic CIFAR-shaped ``uint8`` images with random labels. Each runs ``warmup``
untimed then ``repeats`` timed passes of ``steps`` full batches plus the partial batch an epoch
ends with; seconds per 50,000-image epoch = full batches x seconds per full step + the partial
step (median over the passes, with min and max). The report gives images/s, the ratio to the
standard pipeline, MFU against a matmul peak *measured in the same run*, peak device memory,
one evaluation pass, and the device-hours of the default sweep (:mod:`kdecay.bench.report`).
With ``shared=N`` (CUDA only) it also runs 1..N concurrent processes of each selected model
(:mod:`kdecay.bench.shared`); with ``fuse=G``, G runs of each model fused in one network
against the same G runs one after another (:mod:`kdecay.bench.fused`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from kdecay import __version__
from kdecay.bench.fused import bench_fused, fused_vs_one_by_one
from kdecay.bench.pipelines import (
    EPOCH_IMAGES,
    PIPELINES,
    bench_ours,
    bench_standard,
    standard_workers,
)
from kdecay.bench.report import render_markdown, sweep_estimate
from kdecay.bench.shared import bench_shared
from kdecay.bench.targets import BenchTarget, select_targets
from kdecay.bench.timing import free, measure_peak_flops
from kdecay.checks import ConfigError, check_int
from kdecay.config import load_config
from kdecay.fileio import write_json
from kdecay.models import build_from_spec, count_params, forward_macs
from kdecay.train import Runtime, runtime_for
from kdecay.train.runtime import resolve_step

__all__ = ["run_bench"]

Log = Callable[[str], None]


def _print(msg: str) -> None:
    print(msg, flush=True)


def _columns(t: BenchTarget, runtime: Runtime, kw: dict[str, int]) -> dict[str, dict[str, Any]]:
    """The four pipelines on one target, each in a clean device state."""
    eager = dataclasses.replace(runtime, step="eager")
    runs = {
        "standard": lambda: bench_standard(t.spec, runtime.device, **kw),
        "standard_amp": lambda: bench_standard(t.spec, runtime.device, **kw, amp=True),
        "ours_eager": lambda: bench_ours(t.spec, eager, **kw),
        "ours_step": lambda: bench_ours(t.spec, runtime, **kw),
    }
    out = {}
    for name in PIPELINES:
        out[name] = runs[name]()
        torch.compiler.reset()  # drop compiled graphs (and the model they hold)
        free(runtime.device)  # the pipeline's tensors (and the loader's workers) die with it
    return out


def _bench_fused(
    t: BenchTarget, runtime: Runtime, kw: dict[str, int], fuse: int, cols: dict[str, Any], log: Log
) -> dict[str, Any]:
    """``fuse`` fused runs of the target against the columns' one-by-one runs."""
    fused = bench_fused(t.spec, runtime, fuse, kw["warmup"], kw["passes"], kw["steps"])
    free(runtime.device)
    fused_vs_one_by_one(fused, cols)
    log(
        f"[bench] {t.name}: {fused['members']} fused: "
        f"{fused['eager']['seconds_per_member_epoch']:.2f} s per member-epoch eager, "
        f"{fused['vs_ours_eager']:.2f}x the same runs one by one; "
        f"{fused['seconds_per_member_epoch']:.2f} {runtime.step}, "
        f"{fused['vs_ours_step']:.2f}x one by one"
    )
    return fused


def _bench_target(
    t: BenchTarget, runtime: Runtime, kw: dict[str, int], peak: float, log: Log, fuse: int = 0
) -> dict[str, Any]:
    """The four pipelines on one target (and ``fuse`` runs fused, if any); the report entry."""
    probe = build_from_spec(t.spec.model, t.spec.num_classes)
    macs, n_params = forward_macs(probe), count_params(probe)
    del probe
    cols = _columns(t, runtime, kw)
    std = cols["standard"]["images_per_s"]
    for r in cols.values():
        r["mfu"] = 3 * macs * 2 * r["images_per_s"] / peak
        r["vs_standard"] = r["images_per_s"] / std
    log(
        f"[bench] {t.name}: s/epoch "
        + ", ".join(f"{k} {v['seconds_per_epoch']:.2f}" for k, v in cols.items())
        + f"; ours_step/standard {cols['ours_step']['vs_standard']:.2f}x"
    )
    return {
        "name": t.name,
        "rows": t.rows,
        "model": t.spec.model,
        "batch_size": t.spec.batch_size,
        "num_classes": t.spec.num_classes,
        "params": n_params,
        "forward_macs": macs,
        **cols,
        "ratio": cols["ours_step"]["vs_standard"],
        "fused": _bench_fused(t, runtime, kw, fuse, cols, log) if fuse else None,
    }


def _run_shared(
    targets: list[BenchTarget], runtime: Runtime, n: int, warmup: int, steps: int, log: Log
) -> list[dict[str, Any]] | dict[str, str] | None:
    """1..n concurrent training processes of each selected target on one GPU."""
    if not n:
        return None
    if not runtime.cuda:
        out = {"skipped": "shared-GPU test needs CUDA; not run on the CPU"}
        log(f"[bench] {out['skipped']}")
        return out
    results = []
    for target in targets:
        log(f"[bench] shared GPU: 1..{n} processes of {target.name} ...")
        out = bench_shared(target, n, max(warmup, 1) * steps, steps, runtime.step)
        for r in out.get("runs", []):
            log(
                f"[bench] shared {target.name} x{r['processes']}: "
                f"{r['total_images_per_s']:.1f} img/s total ({r['speedup_vs_one']:.2f}x)"
            )
        results.append(out)
    return results


def _environment(runtime: Runtime) -> dict[str, Any]:
    return {
        "type": runtime.device.type,
        "name": runtime.device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if runtime.cuda else None,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "kdecay": __version__,
    }


def _pipelines(runtime: Runtime) -> dict[str, str]:
    layout = "channels_last" if runtime.channels_last else "contiguous"
    ours = (
        f"kdecay Trainer + GpuLoader (uint8 set on the device, per-epoch crops), "
        f"{runtime.conv_precision}, {layout}"
    )
    standard = (
        f"torchvision transforms on PIL images in a DataLoader "
        f"({standard_workers(runtime.device)} workers{', pin_memory' if runtime.cuda else ''}, "
        "persistent), torch.optim.SGD (foreach)"
    )
    return {
        "standard": f"{standard}, fp32, contiguous",
        "standard_amp": f"{standard}, bf16 autocast, channels_last",
        "ours_eager": f"{ours}, eager step",
        "ours_step": f"{ours}, {runtime.step} step (torch.compile, dynamic=False"
        + (", CUDA graphs)" if runtime.step == "graph" else ")"),
    }


def _step_form(runtime: Runtime, step: str | None) -> str:
    """The form of the ``ours_step`` column: ``--step``, else what ``train.step`` runs on this
    device, and ``compiled`` where that is eager (the CPU) so that the column means something."""
    form = resolve_step(step, runtime.cuda) if step else runtime.step
    return "compiled" if form == "eager" else form


def run_bench(
    models: list[str] | None,
    device: str | None,
    steps: int,
    warmup: int,
    out_dir: Path,
    params_file: Path,
    *,
    step: str | None = None,
    repeats: int = 3,
    shared: int = 0,
    fuse: int = 0,
    log: Log | None = None,
) -> dict[str, Any]:
    """Benchmark the four pipelines for each target; write ``bench.json``/``bench.md``.

    Args:
        models: row or registry model names; ``None`` = every distinct architecture of the rows.
        device: ``"auto"``, ``"cuda"``, ``"cpu"`` or ``None`` (params ``train.device``).
        steps: full batches per timed pass (>= 1); a pass also runs the epoch's partial batch.
        warmup: untimed passes before the timed ones (>= 0; compilation happens there).
        out_dir: folder for ``bench.json`` and ``bench.md``.
        params_file: params YAML (rows, kdecay.ks, seeds, datasets, train options).
        step: form of the ``ours_step`` column (``compiled`` or ``graph``); ``None`` = what
            ``train.step`` runs on this device (``compiled`` on the CPU).
        repeats: timed passes per pipeline (>= 1); the median is reported with min and max.
        shared: on CUDA, also run 1..``shared`` concurrent ours-processes of the thinnest
            model (0 = skip).
        fuse: also train this many runs of each model fused in one network (0 = skip; else
            >= 2), against the same runs one after another.
        log: progress sink (one line per finished model); default: print, flushed.

    Returns:
        The report written to ``bench.json``.

    Raises:
        ConfigError: bad option, unknown model/row name, bad params.
    """
    log = log or _print
    kw = {
        "steps": check_int(steps, "--steps", low=1, error=ConfigError),
        "warmup": check_int(warmup, "--warmup", low=0, error=ConfigError),
        "passes": check_int(repeats, "--repeats", low=1, error=ConfigError),
    }
    shared = check_int(shared, "--shared", low=0, error=ConfigError)
    fuse = check_int(fuse, "--fuse", low=0, error=ConfigError)
    if fuse == 1:
        raise ConfigError("--fuse 1 fuses nothing: give G >= 2 runs to fuse, or leave it out")
    config = load_config(params_file)
    targets = select_targets(config, models)
    runtime = runtime_for(targets[0].spec.train, device)
    runtime = dataclasses.replace(runtime, step=_step_form(runtime, step))
    log(f"[bench] device {runtime.device_name()}; measuring peak matmul rate ...")
    peak = measure_peak_flops(runtime.device)
    log(f"[bench] peak {peak['flops'] / 1e12:.3f} TFLOP/s ({peak['method']})")
    results = [_bench_target(t, runtime, kw, peak["flops"], log, fuse) for t in targets]
    shared_out = _run_shared(targets, runtime, shared, kw["warmup"], kw["steps"], log)
    settings = {
        "models": models,
        "device": device,
        **kw,
        "step": runtime.step,
        "shared": shared,
        "fuse": fuse,
        "params_file": str(params_file),
        "out_dir": str(out_dir),
        "argv": sys.argv,
    }
    report: dict[str, Any] = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": settings,
        "device": _environment(runtime),
        "pipelines": _pipelines(runtime),
        "peak": peak,
        "epoch_images": EPOCH_IMAGES,
        "models": results,
        "sweep": sweep_estimate(config, targets, results, runtime.device),
        "shared": shared_out,
    }
    _write(report, Path(out_dir), log)
    return report


def _write(report: dict[str, Any], out_dir: Path, log: Log) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    md = render_markdown(report)
    write_json(out_dir / "bench.json", report)
    (out_dir / "bench.md").write_text(md)
    log(md)
    log(f"[bench] wrote {out_dir / 'bench.json'} and {out_dir / 'bench.md'}")
