"""``kdecay bench``: training throughput of this project's path against a standard PyTorch one.

For every benchmarked architecture (:mod:`kdecay.bench.targets`) the two pipelines of
:mod:`kdecay.bench.pipelines` train the same architecture on the same device, in the same
process, on the same synthetic CIFAR-shaped ``uint8`` images with random labels. Both run
``warmup`` untimed steps then ``steps`` timed ones, with no host synchronisation inside the loop
and a device synchronisation before each clock read; batch fetching is timed for both. The
report gives images/s, the ratio ours/standard, seconds per 50,000-image epoch, model-FLOP
utilisation against a matmul peak *measured in the same run*, peak device memory, parameters,
and the device-hours of the default sweep (:mod:`kdecay.bench.report`). With ``shared=N`` (CUDA
only) it also runs 1..N concurrent processes of the thinnest model (:mod:`kdecay.bench.shared`).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from kdecay import __version__
from kdecay.bench.pipelines import (
    EPOCH_IMAGES,
    bench_ours,
    bench_standard,
    standard_workers,
)
from kdecay.bench.report import render_markdown, sweep_estimate
from kdecay.bench.shared import bench_shared
from kdecay.bench.targets import BenchTarget, select_targets
from kdecay.bench.timing import free, measure_peak_flops
from kdecay.checks import ConfigError, check_int
from kdecay.config import load_params
from kdecay.fileio import write_json
from kdecay.models import build_from_spec, count_params, forward_macs
from kdecay.train import Runtime, runtime_for

__all__ = ["run_bench"]

Log = Callable[[str], None]


def _print(msg: str) -> None:
    print(msg, flush=True)


def _bench_target(
    t: BenchTarget, runtime: Runtime, warmup: int, steps: int, peak: float, log: Log
) -> dict[str, Any]:
    """Both pipelines on one target; the report entry."""
    probe = build_from_spec(t.spec.model, t.spec.num_classes)
    macs, n_params = forward_macs(probe), count_params(probe)
    del probe
    ours = bench_ours(t.spec, runtime, warmup, steps)
    if runtime.compile:
        torch.compiler.reset()  # drop the compiled graphs (and the model they hold)
    free(runtime.device)  # the pipeline's tensors (and the loader's workers) die with its frame
    std = bench_standard(t.spec, runtime.device, warmup, steps)
    free(runtime.device)
    for r in (ours, std):
        r["seconds_per_epoch"] = EPOCH_IMAGES / r["images_per_s"]
        r["mfu"] = 3 * macs * 2 * r["images_per_s"] / peak
    entry = {
        "name": t.name,
        "rows": t.rows,
        "model": t.spec.model,
        "batch_size": t.spec.batch_size,
        "num_classes": t.spec.num_classes,
        "params": n_params,
        "forward_macs": macs,
        "ours": ours,
        "standard": std,
        "ratio": ours["images_per_s"] / std["images_per_s"],
    }
    log(
        f"[bench] {t.name}: ours {ours['images_per_s']:.1f} img/s, standard "
        f"{std['images_per_s']:.1f} img/s, ratio {entry['ratio']:.2f}x, "
        f"{ours['seconds_per_epoch']:.1f} vs {std['seconds_per_epoch']:.1f} s/epoch"
    )
    return entry


def _run_shared(
    targets: list[BenchTarget], results: list[dict[str, Any]], runtime: Runtime, n: int, **kw: Any
) -> dict[str, Any] | None:
    log: Log = kw.pop("log")
    if not n:
        return None
    if not runtime.cuda:
        out = {"skipped": "shared-GPU test needs CUDA; not run on the CPU"}
        log(f"[bench] {out['skipped']}")
        return out
    thin = min(results, key=lambda r: r["forward_macs"])
    target = next(t for t in targets if t.name == thin["name"])
    log(f"[bench] shared GPU: 1..{n} processes of {target.name} ...")
    out = bench_shared(target, n, kw["warmup"], kw["steps"], runtime.compile)
    for r in out.get("runs", []):
        log(
            f"[bench] shared {r['processes']} process(es): "
            f"{r['total_images_per_s']:.1f} img/s total ({r['speedup_vs_one']:.2f}x)"
        )
    return out


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
    ours = "kdecay Trainer + GpuLoader (uint8 set on the device, on-device crop/flip), "
    if runtime.cuda:
        ours += (
            f"{'bf16 autocast' if runtime.amp_dtype is not None else 'fp32'}, "
            f"{'channels_last' if runtime.channels_last else 'contiguous'}, fused SGD"
        )
    else:
        ours += "fp32, contiguous, foreach SGD (CPU: as train_run)"
    ours += ", torch.compile" if runtime.compile else ""
    standard = (
        f"torchvision transforms on PIL images in a DataLoader "
        f"({standard_workers(runtime.device)} workers{', pin_memory' if runtime.cuda else ''}, "
        "persistent), fp32, contiguous, torch.optim.SGD (foreach)"
    )
    return {"ours_pipeline": ours, "standard_pipeline": standard}


def run_bench(
    models: list[str] | None,
    device: str | None,
    steps: int,
    warmup: int,
    out_dir: Path,
    params_file: Path,
    *,
    compile_model: bool | None = None,
    shared: int = 0,
    log: Log | None = None,
) -> dict[str, Any]:
    """Benchmark ours vs standard training for each target; write ``bench.json``/``bench.md``.

    Args:
        models: row or registry model names; ``None`` = every distinct architecture of the rows.
        device: ``"auto"``, ``"cuda"``, ``"cpu"`` or ``None`` (params ``train.device``).
        steps: timed training steps per pipeline (>= 1).
        warmup: untimed steps before them (>= 0).
        out_dir: folder for ``bench.json`` and ``bench.md``.
        params_file: params YAML (rows, kdecay.ks, seeds, datasets, train options).
        compile_model: ``torch.compile`` ours; ``None`` = params ``train.compile``.
        shared: on CUDA, also run 1..``shared`` concurrent ours-processes of the thinnest
            model (0 = skip).
        log: progress sink (one line per finished model); default: print, flushed.

    Returns:
        The report written to ``bench.json``.

    Raises:
        ConfigError: bad option, unknown model/row name, bad params.
    """
    log = log or _print
    steps = check_int(steps, "--steps", low=1, error=ConfigError)
    warmup = check_int(warmup, "--warmup", low=0, error=ConfigError)
    shared = check_int(shared, "--shared", low=0, error=ConfigError)
    params = load_params(params_file)
    targets = select_targets(params, models)
    runtime = runtime_for(targets[0].spec.train, device, compile_model)
    log(f"[bench] device {runtime.device_name()}; measuring peak matmul rate ...")
    peak = measure_peak_flops(runtime.device)
    log(f"[bench] peak {peak['flops'] / 1e12:.3f} TFLOP/s ({peak['method']})")
    results = [_bench_target(t, runtime, warmup, steps, peak["flops"], log) for t in targets]
    spe = {m["name"]: {k: m[k]["seconds_per_epoch"] for k in ("ours", "standard")} for m in results}
    shared_out = _run_shared(targets, results, runtime, shared, warmup=warmup, steps=steps, log=log)
    settings = {
        "models": models,
        "device": device,
        "steps": steps,
        "warmup": warmup,
        "compile": runtime.compile,
        "shared": shared,
        "params_file": str(params_file),
        "out_dir": str(out_dir),
        "argv": sys.argv,
    }
    report: dict[str, Any] = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": settings,
        "device": _environment(runtime),
        **_pipelines(runtime),
        "peak": peak,
        "epoch_images": EPOCH_IMAGES,
        "models": results,
        "sweep": sweep_estimate(params, targets, spe, runtime.device),
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
