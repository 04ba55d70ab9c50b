"""Throughput of :class:`kdecay.loader.GpuLoader` against the usual torchvision pipeline.

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
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

from kdecay.loader import GpuLoader
from kdecay.prepare import channel_stats
from kdecay.synth import generate


class PilDataset(torch.utils.data.Dataset):
    """CIFAR-style dataset: ``uint8`` HWC arrays -> PIL image -> ``transform``."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, transform: Any) -> None:
        self.images = images_hwc
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def _forever(loader: Iterable[Any]) -> Iterator[Any]:
    while True:
        yield from loader


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_batches(batches: Iterator[Any], n: int, warmup: int, device: torch.device) -> float:
    """Batches per second over ``n`` batches after ``warmup`` batches."""
    for x, y in itertools.islice(batches, warmup):
        _ = (x.to(device, non_blocking=True), y.to(device, non_blocking=True))
    _sync(device)
    start = time.perf_counter()
    for x, y in itertools.islice(batches, n):
        _ = (x.to(device, non_blocking=True), y.to(device, non_blocking=True))
    _sync(device)
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
    ours = _time_batches(_forever(gpu_loader), batches, warmup, device)

    tv_padding = "constant" if padding_mode == "zeros" else "reflect"
    transform = T.Compose(
        [
            T.RandomCrop(32, padding=4, padding_mode=tv_padding),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )
    dataset = PilDataset(
        data.train_images.transpose(0, 2, 3, 1).copy(), data.train_labels, transform
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        drop_last=False,
    )
    theirs = _time_batches(_forever(loader), batches, warmup, device)
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
