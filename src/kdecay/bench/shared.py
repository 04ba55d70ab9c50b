"""N concurrent training processes of one thin model sharing a GPU (``kdecay bench --shared``):
total images/s against one process, the measurement behind the sweep's GPU fractions."""

from __future__ import annotations

import queue as queue_mod
import time
from typing import Any

from kdecay.bench.pipelines import bench_images, ours_trainer
from kdecay.bench.targets import BenchTarget
from kdecay.bench.timing import cycle
from kdecay.config import RunSpec

__all__ = ["bench_shared"]


def _shared_worker(
    device: str,
    spec: RunSpec,
    warmup: int,
    steps: int,
    step: str,
    barrier: Any,
    queue: Any,
) -> None:
    """One of N concurrent ours-pipelines (spawned): warm up, wait for all, time, report."""
    from kdecay.train import runtime_for

    try:
        runtime = runtime_for(spec.train, device, step)
        trainer = ours_trainer(spec, runtime, bench_images(spec.batch_size, steps))
        trainer.model.train()
        batches = cycle(trainer.train_loader)
        for _ in range(warmup):
            trainer.train_step(*next(batches))
        runtime.sync()
        barrier.wait(timeout=900)
        t0 = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes on Linux
        images = 0
        for _ in range(steps):
            x, y = next(batches)
            trainer.train_step(x, y)
            images += len(y)
        runtime.sync()
        queue.put(("ok", t0, time.perf_counter(), images))
    except Exception as err:  # reported to the parent, which records it
        barrier.abort()
        queue.put(("error", f"{type(err).__name__}: {err}", None, 0))


def _collect(procs: list[Any], barrier: Any, queue: Any) -> list[tuple[str, Any, Any, int]]:
    """The workers' reports; a worker that died without one is reported as an error."""
    n, got = len(procs), []
    try:
        while len(got) < n:
            try:
                got.append(queue.get(timeout=5))
            except queue_mod.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    barrier.abort()  # release the others instead of letting them wait
                if len(dead) + len(got) >= n:  # crashed without reporting
                    got += [("error", f"worker exited with code {c}", None, 0) for c in dead]
                    break
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
    return got


def bench_shared(
    target: BenchTarget,
    n_max: int,
    warmup: int,
    steps: int,
    step: str,
    device: str = "cuda",
) -> dict[str, Any]:
    """Total images/s of 1..``n_max`` concurrent processes training ``target`` with the
    ``step`` form (the same Trainer and step as training; ``warmup`` untimed steps first)."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    results: list[dict[str, Any]] = []
    for n in range(1, n_max + 1):
        barrier, queue = ctx.Barrier(n), ctx.Queue()
        args = (device, target.spec, warmup, steps, step, barrier, queue)
        procs = [ctx.Process(target=_shared_worker, args=args) for _ in range(n)]
        for p in procs:
            p.start()
        got = _collect(procs, barrier, queue)
        errors = [g[1] for g in got if g[0] != "ok"]
        if errors:
            return {"model": target.name, "runs": results, "error": "; ".join(errors)}
        spans = [(g[1], g[2], g[3]) for g in got]
        wall = max(e for _, e, _ in spans) - min(s for s, _, _ in spans)
        results.append(
            {
                "processes": n,
                "total_images_per_s": sum(i for _, _, i in spans) / wall,
                "per_process_images_per_s": [i / (e - s) for s, e, i in spans],
            }
        )
    one = results[0]["total_images_per_s"]
    for r in results:
        r["speedup_vs_one"] = r["total_images_per_s"] / one
    return {"model": target.name, "batch_size": target.spec.batch_size, "runs": results}
