"""Throughput of :class:`kdecay.data.loader.GpuLoader` against the usual torchvision pipeline.

Both produce augmented, normalised training batches of the same synthetic CIFAR-10 images:

* ``GpuLoader``: the ``uint8`` set lives on the device, crop/flip/normalise are a few tensor ops;
* torchvision: ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()`` + ``ToTensor()`` +
  ``Normalize`` on PIL images, through a ``torch.utils.data.DataLoader`` with worker processes
  (batches moved to the device, as a training loop would).

Each side gets a warm-up (worker start-up excluded), then the time for ``--batches`` batches is
measured; batches per second and the ratio are printed. Not a test::

    .venv/bin/python benchmarks/loader_bench.py            # CPU here, CUDA where available
    .venv/bin/python benchmarks/loader_bench.py --device cpu --batches 300 --workers 2
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Iterator
from typing import Any

import torch

from kdecay.bench.pipelines import standard_loader
from kdecay.bench.timing import cycle, sync
from kdecay.data.loader import GpuLoader
from kdecay.data.prepare import PreparedData, channel_stats
from kdecay.data.synth import generate


def _time_batches(batches: Iterator[Any], n: int, warmup: int, device: torch.device) -> float:
    """Batches per second over ``n`` batches after ``warmup`` batches."""
    for x, y in itertools.islice(batches, warmup):
        _ = (x.to(device, non_blocking=True), y.to(device, non_blocking=True))
    sync(device)
    start = time.perf_counter()
    for x, y in itertools.islice(batches, n):
        _ = (x.to(device, non_blocking=True), y.to(device, non_blocking=True))
    sync(device)
    return n / (time.perf_counter() - start)


def run(
    device: torch.device,
    n_train: int,
    batch_size: int,
    batches: int,
    warmup: int,
    workers: int,
    padding_mode: str,
    channels_last: bool,
) -> dict[str, float]:
    """Measure both pipelines; returns batches/s of each and their ratio."""
    data = generate("cifar10", n_train=n_train, n_test=10, seed=0)
    images = torch.from_numpy(data.train_images)
    labels = torch.from_numpy(data.train_labels)
    mean, std = channel_stats(images)

    gpu_loader = GpuLoader(
        images,
        labels,
        batch_size,
        mean,
        std,
        device=device,
        seed=0,
        padding_mode=padding_mode,
        channels_last=channels_last,
    )
    ours = _time_batches(cycle(gpu_loader), batches, warmup, device)
    prepared = PreparedData(images, labels, images[:1], labels[:1], [], mean, std)
    loader = standard_loader(prepared, batch_size, workers, device.type == "cuda", padding_mode)
    theirs = _time_batches(cycle(loader), batches, warmup, device)
    return {"gpu_loader": ours, "torchvision": theirs, "ratio": ours / theirs}


def main(argv: list[str] | None = None) -> None:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device)
    parser.add_argument("--n-train", type=int, default=10_000, help="synthetic training images")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=200, help="timed batches per pipeline")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--padding-mode", choices=("zeros", "reflect"), default="zeros")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    result = run(
        device,
        n_train=args.n_train,
        batch_size=args.batch_size,
        batches=args.batches,
        warmup=args.warmup,
        workers=args.workers,
        padding_mode=args.padding_mode,
        channels_last=args.channels_last,
    )
    print(
        f"device {device}, batch {args.batch_size}, {args.batches} timed batches, "
        f"torch threads {torch.get_num_threads()}, DataLoader workers {args.workers}"
    )
    print(f"GpuLoader:                       {result['gpu_loader']:9.1f} batches/s")
    print(f"torchvision transforms+DataLoader: {result['torchvision']:7.1f} batches/s")
    print(f"ratio GpuLoader / torchvision:   {result['ratio']:9.1f}x")


if __name__ == "__main__":
    main()
