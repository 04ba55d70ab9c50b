"""``kdecay bench``: training throughput of this project's path against a standard PyTorch one.

For every benchmarked architecture (by default the distinct (model, batch size) pairs of the
params rows: ``wrn28_10_sgdr`` shares ``wrn28_10``'s model and batch, so it is timed once) two
pipelines train the same architecture on the same device, in the same process, on the same
synthetic CIFAR-shaped ``uint8`` images with random labels:

* **ours** -- the real training path: a :class:`kdecay.train.Trainer` (device-resident
  :class:`kdecay.loader.GpuLoader` with on-device crop/flip, SGD fused on CUDA, per-iteration LR
  schedule), with the options :func:`kdecay.train.train_run` would use: bf16 autocast and
  channels_last on CUDA when params ask for them (fp32, contiguous on the CPU), optional
  ``torch.compile``;
* **standard** -- the textbook PyTorch recipe: an in-memory torchvision-style dataset of HWC
  ``uint8`` arrays turned into PIL images -> ``RandomCrop(32, padding=4)`` +
  ``RandomHorizontalFlip()`` + ``ToTensor()`` + ``Normalize`` in ``DataLoader`` worker
  processes (``pin_memory`` on CUDA, persistent workers), fp32, contiguous memory,
  ``torch.optim.SGD`` (foreach) with the row's momentum / Nesterov / weight decay, and
  ``x.to(device, non_blocking=True)``.

Both run ``warmup`` untimed steps then ``steps`` timed ones, with no host synchronisation inside
the loop (no ``.item()``) and a device synchronisation before each clock read. Batch fetching is
inside the timed region for both. The report gives images/s, the ratio ours/standard, seconds
per 50,000-image epoch, model-FLOP utilisation against a matmul peak *measured in the same run*,
peak device memory, parameters, and the device-hours of the default sweep (every run of
:func:`kdecay.aggregate.expected_runs`, epochs x seconds per epoch of its model; evaluation
excluded).

With ``shared=N`` (CUDA only) it also runs 1..N concurrent processes of the ours pipeline on the
thinnest benchmarked model and reports the total images/s, to show whether several thin runs
sharing one GPU raise total throughput.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kdecay import __version__
from kdecay.aggregate import expected_runs
from kdecay.config import ConfigError, RunSpec, load_params, resolve_run, row_names
from kdecay.models import build_from_spec, count_params, forward_macs
from kdecay.prepare import PreparedData
from kdecay.runio import write_json
from kdecay.train import Trainer

__all__ = ["EPOCH_IMAGES", "BenchTarget", "measure_peak_flops", "run_bench", "select_targets"]

EPOCH_IMAGES = 50_000
"""Images in one CIFAR training epoch; seconds per epoch are quoted for this many."""

# CIFAR-10 statistics; the images are random, so any plausible values do.
_MEAN = (0.4914, 0.4822, 0.4465)
_STD = (0.2470, 0.2435, 0.2616)
_N_TEST = 64  # the Trainer builds an EvalLoader; the benchmark never evaluates


@dataclass
class BenchTarget:
    """One architecture to benchmark: a (model spec, batch size) pair and the rows using it."""

    name: str
    rows: list[str]
    spec: RunSpec  # resolved spec of the first row (model, batch, optimizer, padding)
    key: str = field(repr=False)


def _group_key(model: Any, batch_size: int) -> str:
    return json.dumps({"model": model, "batch_size": batch_size}, sort_keys=True, default=str)


def select_targets(params: dict[str, Any], models: Sequence[str] | None) -> list[BenchTarget]:
    """The architectures to benchmark, from row names or registry model names.

    ``None`` selects every distinct (model, batch size) pair of the rows, in row order. A row
    name selects its row's pair; a registry model name selects every pair whose row uses that
    model. Raises :class:`ConfigError` for an unknown name, listing the known rows and models.
    """
    datasets = params.get("datasets") or ["cifar10"]
    if not isinstance(datasets, list):
        raise ConfigError("datasets must be a list of dataset names")
    groups: dict[str, BenchTarget] = {}
    row_key: dict[str, str] = {}
    for row in row_names(params):
        spec = resolve_run(params, datasets[0], row, "original", None, 0)
        key = _group_key(spec.model, spec.batch_size)
        row_key[row] = key
        if key in groups:
            groups[key].rows.append(row)
        else:
            name = spec.model if isinstance(spec.model, str) else row
            groups[key] = BenchTarget(name=name, rows=[row], spec=spec, key=key)
    if models is None:
        return list(groups.values())

    model_names = sorted({g.spec.model for g in groups.values() if isinstance(g.spec.model, str)})
    chosen: list[str] = []
    for name in models:
        if name in row_key:
            keys = [row_key[name]]
        else:
            keys = [k for k, g in groups.items() if g.spec.model == name]
        if not keys:
            known = ", ".join(row_key)
            extra = f"; models: {', '.join(model_names)}" if model_names else ""
            raise ConfigError(f"unknown model/row {name!r} for bench: rows are {known}{extra}")
        chosen += [k for k in keys if k not in chosen]
    return [groups[k] for k in chosen]


# ---------------------------------------------------------------------------------------------
# device helpers


def _resolve_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cuda", "cpu"):
        raise ConfigError(f"--device must be cuda or cpu, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda but no CUDA device is visible; use --device cpu")
    return torch.device(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure_peak_flops(device: torch.device) -> dict[str, Any]:
    """Measured dense matmul rate of ``device``, the denominator of the MFU.

    CUDA: bf16 ``8192 x 8192 @ 8192 x 8192`` (tensor cores), best of 5 timed bursts of 10.
    CPU: fp32 ``1024^3`` (a CPU has no bf16 matrix units worth the name; the CPU pipelines
    train in fp32), best of 5 single products. Returns ``flops`` (FLOP/s) and a description.
    """
    if device.type == "cuda":
        n, dtype, reps, trials = 8192, torch.bfloat16, 10, 5
    else:
        n, dtype, reps, trials = 1024, torch.float32, 1, 5
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    for _ in range(3):
        c = a @ b
    _sync(device)
    best = math.inf
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(reps):
            c = a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    del a, b, c
    _free(device)
    flops = 2 * n**3 * reps / best
    kind = "bf16" if dtype == torch.bfloat16 else "fp32"
    note = "" if device.type == "cuda" else " (CPU: fp32, since the CPU pipelines run in fp32)"
    return {
        "flops": flops,
        "dtype": kind,
        "matmul_size": n,
        "method": f"{kind} matmul {n}x{n} @ {n}x{n}, best of {trials} timed runs{note}",
    }


# ---------------------------------------------------------------------------------------------
# synthetic data


def synthetic_data(n_train: int, num_classes: int, seed: int = 0) -> PreparedData:
    """CIFAR-shaped random ``uint8`` images with random labels, on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    return PreparedData(
        train_images=torch.randint(0, 256, (n_train, 3, 32, 32), dtype=torch.uint8, generator=gen),
        train_labels=torch.randint(0, num_classes, (n_train,), generator=gen),
        test_images=torch.randint(0, 256, (_N_TEST, 3, 32, 32), dtype=torch.uint8, generator=gen),
        test_labels=torch.randint(0, num_classes, (_N_TEST,), generator=gen),
        classes=[str(i) for i in range(num_classes)],
        mean=_MEAN,
        std=_STD,
    )


def _n_train(device: torch.device, batch_size: int, warmup: int, steps: int) -> int:
    """Whole batches only (no odd last batch, no recompile under ``torch.compile``): 50,000
    rounded down to a multiple of the batch on CUDA; on the CPU just enough batches for the
    run (at most one epoch), so that it stays fast."""
    full = max(1, EPOCH_IMAGES // batch_size)
    n_batches = full if device.type == "cuda" else min(full, max(1, warmup + steps))
    return n_batches * batch_size


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    while True:
        yield from loader


# ---------------------------------------------------------------------------------------------
# the two pipelines


def _time_steps(
    step: Callable[[], torch.Tensor], warmup: int, steps: int, device: torch.device
) -> tuple[float, torch.Tensor]:
    """Run ``warmup`` then ``steps`` calls of ``step``; seconds of the timed ones, last loss."""
    loss = torch.zeros(())
    for _ in range(warmup):
        loss = step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    _sync(device)
    return time.perf_counter() - t0, loss


def _ours_trainer(
    spec: RunSpec, device: torch.device, n_train: int, compile_model: bool
) -> Trainer:
    cuda = device.type == "cuda"
    amp = torch.bfloat16 if (cuda and spec.train.precision == "bf16") else None
    torch.manual_seed(spec.seed)
    model = build_from_spec(spec.model, spec.num_classes)
    return Trainer(
        spec,
        device,
        synthetic_data(n_train, spec.num_classes),
        model,
        amp_dtype=amp,
        channels_last=cuda and spec.train.channels_last,
        compile_model=compile_model,
    )


def _bench_ours(
    spec: RunSpec, device: torch.device, warmup: int, steps: int, compile_model: bool
) -> dict[str, Any]:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    n_train = _n_train(device, spec.batch_size, warmup, steps)
    trainer = _ours_trainer(spec, device, n_train, compile_model)
    trainer.model.train()
    batches = _cycle(trainer.train_loader)

    def step() -> torch.Tensor:
        x, y = next(batches)
        return trainer.train_step(x, y)[0]

    seconds, loss = _time_steps(step, warmup, steps, device)
    out = {
        "images_per_s": steps * spec.batch_size / seconds,
        "timed_seconds": seconds,
        "last_loss": float(loss),
        "peak_memory_bytes": torch.cuda.max_memory_allocated(device)
        if device.type == "cuda"
        else None,
        "train_images": n_train,
        "precision": "bf16-autocast" if trainer.amp_dtype is not None else "fp32",
        "channels_last": trainer.channels_last,
        "compile": compile_model,
        "optimizer": "SGD fused" if device.type == "cuda" else "SGD foreach",
        "loader": "GpuLoader (device-resident uint8, on-device crop/flip)",
    }
    return out


class InMemoryCifar(torch.utils.data.Dataset):
    """torchvision-``CIFAR10``-like dataset over in-memory HWC ``uint8`` arrays (PIL per item)."""

    def __init__(self, data: np.ndarray, targets: list[int], transform: Callable[[Any], Any]):
        self.data, self.targets, self.transform = data, targets, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.data[index])), self.targets[index]


def _standard_workers(device: torch.device) -> int:
    return min(4, os.cpu_count() or 1) if device.type == "cuda" else 2


def _bench_standard(spec: RunSpec, device: torch.device, warmup: int, steps: int) -> dict[str, Any]:
    from torchvision import transforms

    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    n_train = _n_train(device, spec.batch_size, warmup, steps)
    data = synthetic_data(n_train, spec.num_classes)
    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(_MEAN, _STD),
        ]
    )
    dataset = InMemoryCifar(
        data.train_images.permute(0, 2, 3, 1).contiguous().numpy(),
        data.train_labels.tolist(),
        transform,
    )
    workers = _standard_workers(device)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=spec.batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=cuda,
        persistent_workers=workers > 0,
    )
    torch.manual_seed(spec.seed)
    model = build_from_spec(spec.model, spec.num_classes).to(device)
    model.train()
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=spec.lr,
        momentum=spec.momentum,
        nesterov=spec.nesterov,
        weight_decay=spec.weight_decay,
    )
    batches = _cycle(loader)

    def step() -> torch.Tensor:
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    seconds, loss = _time_steps(step, warmup, steps, device)
    out = {
        "images_per_s": steps * spec.batch_size / seconds,
        "timed_seconds": seconds,
        "last_loss": float(loss),
        "peak_memory_bytes": torch.cuda.max_memory_allocated(device) if cuda else None,
        "train_images": n_train,
        "precision": "fp32",
        "channels_last": False,
        "compile": False,
        "optimizer": "SGD foreach (default)",
        "loader": f"DataLoader(num_workers={workers}, pin_memory={cuda}, persistent_workers)"
        " + torchvision transforms on PIL images",
    }
    return out


# ---------------------------------------------------------------------------------------------
# several processes sharing one GPU


def _shared_worker(
    device_type: str,
    spec: RunSpec,
    warmup: int,
    steps: int,
    compile_model: bool,
    barrier: Any,
    queue: Any,
) -> None:
    """One of N concurrent ours-pipelines (spawned): warm up, wait for all, time, report."""
    try:
        device = torch.device(device_type)
        torch.backends.cudnn.benchmark = True
        n_train = _n_train(device, spec.batch_size, 0, 0)
        trainer = _ours_trainer(spec, device, n_train, compile_model)
        trainer.model.train()
        batches = _cycle(trainer.train_loader)
        for _ in range(warmup):
            trainer.train_step(*next(batches))
        _sync(device)
        barrier.wait(timeout=900)
        t0 = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes on Linux
        for _ in range(steps):
            trainer.train_step(*next(batches))
        _sync(device)
        queue.put(("ok", t0, time.perf_counter()))
    except Exception as err:  # reported to the parent, which records it
        barrier.abort()
        queue.put(("error", f"{type(err).__name__}: {err}", None))


def _bench_shared(
    target: BenchTarget,
    n_max: int,
    warmup: int,
    steps: int,
    compile_model: bool,
    device_type: str = "cuda",
) -> dict[str, Any]:
    import queue as queue_mod

    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    images = steps * target.spec.batch_size
    results: list[dict[str, Any]] = []
    for n in range(1, n_max + 1):
        barrier, queue = ctx.Barrier(n), ctx.Queue()
        procs = [
            ctx.Process(
                target=_shared_worker,
                args=(device_type, target.spec, warmup, steps, compile_model, barrier, queue),
            )
            for _ in range(n)
        ]
        for p in procs:
            p.start()
        got: list[tuple[str, Any, Any]] = []
        try:
            while len(got) < n:
                try:
                    got.append(queue.get(timeout=5))
                except queue_mod.Empty:
                    dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                    if dead:
                        barrier.abort()  # release the others instead of letting them wait
                    if len(dead) + len(got) >= n:  # crashed without reporting
                        got += [("error", f"worker exited with code {c}", None) for c in dead]
                        break
        finally:
            for p in procs:
                p.join(timeout=60)
                if p.is_alive():
                    p.terminate()
        errors = [g[1] for g in got if g[0] != "ok"]
        if errors:
            return {"model": target.name, "runs": results, "error": "; ".join(errors)}
        spans = [(g[1], g[2]) for g in got]
        wall = max(e for _, e in spans) - min(s for s, _ in spans)
        results.append(
            {
                "processes": n,
                "total_images_per_s": n * images / wall,
                "per_process_images_per_s": [images / (e - s) for s, e in spans],
            }
        )
    one = results[0]["total_images_per_s"]
    for r in results:
        r["speedup_vs_one"] = r["total_images_per_s"] / one
    return {"model": target.name, "batch_size": target.spec.batch_size, "runs": results}


# ---------------------------------------------------------------------------------------------
# sweep estimate and report


def sweep_estimate(
    params: dict[str, Any],
    targets: Sequence[BenchTarget],
    seconds_per_epoch: dict[str, dict[str, float]],
    device: torch.device,
) -> dict[str, Any]:
    """Device-hours of every run the pipeline trains: epochs x seconds/epoch of its model.

    ``seconds_per_epoch`` maps a target name to ``{"ours": s, "standard": s}``. Runs whose row
    was not benchmarked are left out (``complete`` is then false). Evaluation is excluded.
    """
    datasets = params.get("datasets") or ["cifar10"]
    by_row = {row: t for t in targets for row in t.rows}
    epochs = {
        row: resolve_run(params, datasets[0], row, "original", None, 0).epochs
        for row in row_names(params)
    }
    runs = expected_runs(params)
    covered = [r for r in runs if r["row"] in by_row]
    hours = {
        kind: sum(
            epochs[r["row"]] * seconds_per_epoch[by_row[r["row"]].name][kind] for r in covered
        )
        / 3600
        for kind in ("ours", "standard")
    }
    unit = "GPU-hours" if device.type == "cuda" else "CPU-hours"
    return {
        "unit": unit,
        "measured_on": device.type,
        "runs_total": len(runs),
        "runs_covered": len(covered),
        "complete": len(covered) == len(runs),
        "rows_missing": sorted({r["row"] for r in runs} - set(by_row)),
        "epochs_covered": sum(epochs[r["row"]] for r in covered),
        "ours_hours": hours["ours"],
        "standard_hours": hours["standard"],
        "row_epochs": epochs,
        "row_target": {row: t.name for row, t in by_row.items()},
        "note": "sum over expected runs of epochs x seconds per 50,000-image epoch of the "
        "run's model; test-set evaluation, checkpointing and start-up excluded",
    }


def _fmt_mem(b: int | None) -> str:
    return "n/a" if b is None else f"{b / 2**30:.2f} GiB"


def _fmt_mfu(x: float) -> str:
    return f"{100 * x:.1f}%" if x >= 0.001 else f"{100 * x:.3f}%"


def render_markdown(report: dict[str, Any]) -> str:
    """The human-readable report (``bench.md``)."""
    dev, cmd, peak, sweep = report["device"], report["settings"], report["peak"], report["sweep"]
    lines = [
        "# Training throughput: kdecay vs a standard PyTorch pipeline",
        "",
        f"- device: **{dev['name']}** ({dev['type']}), torch {dev['torch']}, "
        f"CUDA {dev['cuda'] or 'n/a'}, measured {report['timestamp']}",
        f"- settings: steps {cmd['steps']} (timed), warmup {cmd['warmup']}, compile "
        f"{cmd['compile']}, params `{cmd['params_file']}`; synthetic CIFAR-shaped uint8 images, "
        "random labels",
        f"- ours: {report['ours_pipeline']}",
        f"- standard: {report['standard_pipeline']}",
        f"- peak (measured): **{peak['flops'] / 1e12:.3f} TFLOP/s**, {peak['method']}",
        "",
        "| model | rows | batch | params | ours img/s | standard img/s | ours/standard "
        "| ours s/epoch | standard s/epoch | ours MFU | standard MFU | ours peak mem "
        "| standard peak mem |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for m in report["models"]:
        o, s = m["ours"], m["standard"]
        lines.append(
            f"| {m['name']} | {', '.join(m['rows'])} | {m['batch_size']} "
            f"| {m['params'] / 1e6:.2f}M | {o['images_per_s']:.1f} | {s['images_per_s']:.1f} "
            f"| {m['ratio']:.2f}x | {o['seconds_per_epoch']:.1f} | {s['seconds_per_epoch']:.1f} "
            f"| {_fmt_mfu(o['mfu'])} | {_fmt_mfu(s['mfu'])} "
            f"| {_fmt_mem(o['peak_memory_bytes'])} | {_fmt_mem(s['peak_memory_bytes'])} |"
        )
    unit = sweep["unit"]
    cpu_note = (
        " **Measured on a CPU: these are CPU-hours, not GPU-hours.**"
        if sweep["measured_on"] != "cuda"
        else ""
    )
    scope = (
        f"all {sweep['runs_total']} runs"
        if sweep["complete"]
        else f"{sweep['runs_covered']} of {sweep['runs_total']} runs (rows not benchmarked: "
        f"{', '.join(sweep['rows_missing'])})"
    )
    lines += [
        "",
        f"**Sweep estimate ({unit})**: {scope}, {sweep['epochs_covered']} epochs in total -> "
        f"ours **{sweep['ours_hours']:.2f} {unit}**, standard "
        f"**{sweep['standard_hours']:.2f} {unit}**.{cpu_note} Training only: "
        "epochs x seconds per 50,000-image epoch; evaluation, checkpoints and start-up "
        "excluded.",
        "",
        "MFU = 3 x forward MACs x 2 FLOP x images/s / measured peak (the peak of the row above "
        "for both pipelines). Seconds per epoch = 50,000 / images/s. Peak memory includes the "
        "device-resident training set of ours.",
    ]
    shared = report.get("shared")
    if shared:
        lines.append("")
        if "skipped" in shared:
            lines.append(f"Shared-GPU test: skipped ({shared['skipped']}).")
        elif "error" in shared:
            lines.append(f"Shared-GPU test on {shared['model']}: failed ({shared['error']}).")
        else:
            lines += [
                f"Shared GPU, {shared['model']} (batch {shared['batch_size']}), ours pipeline in "
                "N concurrent processes:",
                "",
                "| processes | total img/s | vs one | per process img/s |",
                "|--:|--:|--:|---|",
            ]
            for r in shared["runs"]:
                per = ", ".join(f"{v:.0f}" for v in r["per_process_images_per_s"])
                lines.append(
                    f"| {r['processes']} | {r['total_images_per_s']:.1f} "
                    f"| {r['speedup_vs_one']:.2f}x | {per} |"
                )
    return "\n".join(lines) + "\n"


def _print(msg: str) -> None:
    print(msg, flush=True)


def _check_int(value: Any, option: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{option} must be an integer >= {low}, got {value!r}")
    return value


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
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Benchmark ours vs standard training for each target; write ``bench.json``/``bench.md``.

    Args:
        models: row or registry model names; ``None`` = every distinct architecture of the rows.
        device: ``"cuda"``, ``"cpu"`` or ``None`` (CUDA when available).
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
    steps = _check_int(steps, "--steps", 1)
    warmup = _check_int(warmup, "--warmup", 0)
    shared = _check_int(shared, "shared", 0)
    params = load_params(params_file)
    targets = select_targets(params, models)
    dev = _resolve_device(device)
    if compile_model is None:
        compile_model = targets[0].spec.train.compile
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True  # for both pipelines, as train_run does

    log(f"[bench] device {_device_name(dev)}; measuring peak matmul rate ...")
    peak = measure_peak_flops(dev)
    log(f"[bench] peak {peak['flops'] / 1e12:.3f} TFLOP/s ({peak['method']})")

    results: list[dict[str, Any]] = []
    spe: dict[str, dict[str, float]] = {}
    for t in targets:
        probe = build_from_spec(t.spec.model, t.spec.num_classes)
        macs, n_params = forward_macs(probe), count_params(probe)
        del probe
        ours = _bench_ours(t.spec, dev, warmup, steps, compile_model)
        if compile_model:
            torch.compiler.reset()  # drop the compiled graphs (and the model they hold)
        _free(dev)  # the pipeline's tensors (and the loader's workers) die with its frame
        std = _bench_standard(t.spec, dev, warmup, steps)
        _free(dev)
        for r in (ours, std):
            r["seconds_per_epoch"] = EPOCH_IMAGES / r["images_per_s"]
            r["mfu"] = 3 * macs * 2 * r["images_per_s"] / peak["flops"]
        spe[t.name] = {"ours": ours["seconds_per_epoch"], "standard": std["seconds_per_epoch"]}
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
        results.append(entry)
        log(
            f"[bench] {t.name}: ours {ours['images_per_s']:.1f} img/s, standard "
            f"{std['images_per_s']:.1f} img/s, ratio {entry['ratio']:.2f}x, "
            f"{ours['seconds_per_epoch']:.1f} vs {std['seconds_per_epoch']:.1f} s/epoch"
        )

    sweep = sweep_estimate(params, targets, spe, dev)

    shared_out: dict[str, Any] | None = None
    if shared:
        if not cuda:
            shared_out = {"skipped": "shared-GPU test needs CUDA; not run on the CPU"}
            log(f"[bench] {shared_out['skipped']}")
        else:
            thin = min(results, key=lambda r: r["forward_macs"])
            target = next(t for t in targets if t.name == thin["name"])
            log(f"[bench] shared GPU: 1..{shared} processes of {target.name} ...")
            shared_out = _bench_shared(target, shared, warmup, steps, compile_model)
            for r in shared_out.get("runs", []):
                log(
                    f"[bench] shared {r['processes']} process(es): "
                    f"{r['total_images_per_s']:.1f} img/s total ({r['speedup_vs_one']:.2f}x)"
                )

    cfg = targets[0].spec.train
    report: dict[str, Any] = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": {
            "models": models,
            "device": device,
            "steps": steps,
            "warmup": warmup,
            "compile": compile_model,
            "shared": shared,
            "params_file": str(params_file),
            "out_dir": str(out_dir),
            "argv": sys.argv,
        },
        "device": {
            "type": dev.type,
            "name": _device_name(dev),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "kdecay": __version__,
        },
        "ours_pipeline": (
            "kdecay Trainer + GpuLoader (uint8 set on the device, on-device crop/flip), "
            + (
                f"{'bf16 autocast' if cfg.precision == 'bf16' else 'fp32'}, "
                f"{'channels_last' if cfg.channels_last else 'contiguous'}, fused SGD"
                if cuda
                else "fp32, contiguous, foreach SGD (CPU: as train_run)"
            )
            + (", torch.compile" if compile_model else "")
        ),
        "standard_pipeline": (
            f"torchvision transforms on PIL images in a DataLoader ({_standard_workers(dev)} "
            f"workers{', pin_memory' if cuda else ''}, persistent), fp32, contiguous, "
            "torch.optim.SGD (foreach)"
        ),
        "peak": peak,
        "epoch_images": EPOCH_IMAGES,
        "models": results,
        "sweep": sweep,
        "shared": shared_out,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = render_markdown(report)
    write_json(out_dir / "bench.json", report)
    (out_dir / "bench.md").write_text(md)
    log(md)
    log(f"[bench] wrote {out_dir / 'bench.json'} and {out_dir / 'bench.md'}")
    return report
