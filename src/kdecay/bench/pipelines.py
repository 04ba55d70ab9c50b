"""The four training pipelines of ``kdecay bench``, on CIFAR-shaped random ``uint8`` images.

Each column isolates one cause of speed:

* ``standard``: the textbook PyTorch recipe: an in-memory torchvision-style dataset of HWC
  ``uint8`` arrays turned into PIL images -> ``RandomCrop(32, padding=4)`` +
  ``RandomHorizontalFlip()`` + ``ToTensor()`` + ``Normalize`` in ``DataLoader`` worker processes
  (``pin_memory`` on CUDA, persistent workers), fp32, contiguous memory, ``torch.optim.SGD``
  (foreach) with the row's momentum / Nesterov / weight decay;
* ``standard_amp``: the same with bf16 autocast and channels_last (what the usual "turn on
  mixed precision" advice gives);
* ``ours_eager``: the real training path, a :class:`kdecay.train.Trainer` (device-resident
  :class:`kdecay.data.loader.GpuLoader`, per-epoch crops, per-iteration LR schedule) with the
  eager step on the runtime ``train_run`` uses;
* ``ours_step``: the same Trainer with the compiled or graphed step (``--step``).

Every pipeline trains on a set of ``steps`` full batches plus the partial batch a 50,000-image
epoch ends with (``50,000 mod batch``), so that a pass over it has an epoch's shape.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kdecay.bench.timing import sync, time_passes
from kdecay.config import RunSpec
from kdecay.data.datasets import DATASETS
from kdecay.data.prepare import PreparedData
from kdecay.models import build_from_spec
from kdecay.train import Runtime, Trainer
from kdecay.train.runtime import set_tf32

__all__ = [
    "EPOCH_IMAGES",
    "PIPELINES",
    "InMemoryCifar",
    "bench_images",
    "bench_ours",
    "bench_standard",
    "epoch_seconds",
    "peak_memory",
    "reset_peak",
    "synthetic_data",
]

EPOCH_IMAGES = DATASETS["cifar10"].train_images
"""Images in one CIFAR training epoch; seconds per epoch are quoted for this many."""
TEST_IMAGES = DATASETS["cifar10"].test_images
"""Images of one evaluation pass; evaluation seconds are quoted for this many."""

# CIFAR-10 statistics; the images are random, so any plausible values do.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
PIPELINES = ("standard", "standard_amp", "ours_eager", "ours_step")
"""The benchmark's columns, in the order of the table."""


def synthetic_data(n_train: int, num_classes: int, seed: int = 0, n_test: int = 64) -> PreparedData:
    """CIFAR-shaped random ``uint8`` images with random labels, on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    return PreparedData(
        train_images=torch.randint(0, 256, (n_train, 3, 32, 32), dtype=torch.uint8, generator=gen),
        train_labels=torch.randint(0, num_classes, (n_train,), generator=gen),
        test_images=torch.randint(0, 256, (n_test, 3, 32, 32), dtype=torch.uint8, generator=gen),
        test_labels=torch.randint(0, num_classes, (n_test,), generator=gen),
        classes=[str(i) for i in range(num_classes)],
        mean=MEAN,
        std=STD,
    )


def bench_images(batch_size: int, steps: int) -> int:
    """``steps`` full batches plus the partial batch that ends a 50,000-image epoch."""
    return steps * batch_size + EPOCH_IMAGES % batch_size


def epoch_seconds(passes: list[tuple[float, float]], batch_size: int) -> dict[str, Any]:
    """Seconds per 50,000-image epoch from timed passes: full batches x seconds per full step
    + the partial step; the median over passes and its spread (min, max)."""
    per_pass = sorted((EPOCH_IMAGES // batch_size) * full + part for full, part in passes)
    median = statistics.median(per_pass)
    return {
        "seconds_per_epoch": median,
        "seconds_per_epoch_min": per_pass[0],
        "seconds_per_epoch_max": per_pass[-1],
        "images_per_s": EPOCH_IMAGES / median,
        "passes": [{"seconds_per_full_step": f, "seconds_partial_step": p} for f, p in passes],
    }


def ours_trainer(spec: RunSpec, runtime: Runtime, n_train: int, n_test: int = 64) -> Trainer:
    """The training path of ``train_run`` on synthetic data."""
    torch.manual_seed(spec.seed)
    model = build_from_spec(spec.model, spec.num_classes)
    return Trainer(spec, synthetic_data(n_train, spec.num_classes, n_test=n_test), model, runtime)


def peak_memory(device: torch.device) -> int | None:
    """Peak allocated device memory since :func:`reset_peak` (CUDA), else None."""
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _eval_seconds(trainer: Trainer, device: torch.device) -> float:
    """Seconds of one evaluation pass, scaled to CIFAR's 10,000 test images."""
    trainer.evaluate()  # compiles the evaluation graph where the step is compiled
    sync(device)
    t0 = time.perf_counter()
    trainer.evaluate()
    sync(device)
    n_test = trainer.test_loader.num_samples
    return (time.perf_counter() - t0) * TEST_IMAGES / n_test


def bench_ours(
    spec: RunSpec, runtime: Runtime, warmup: int, passes: int, steps: int
) -> dict[str, Any]:
    """Time our training path (the step form of ``runtime``) over ``passes`` epoch-shaped
    passes after ``warmup`` untimed ones; also one evaluation pass."""
    device = runtime.device
    reset_peak(device)
    if runtime.cuda:  # a standard column before this one set TF32 off in this process
        set_tf32(runtime.tf32)
    n_test = TEST_IMAGES if runtime.cuda else spec.train.eval_batch_size
    trainer = ours_trainer(spec, runtime, bench_images(spec.batch_size, steps), n_test)
    trainer.model.train()
    timed, (loss, _), warm_s = time_passes(
        trainer.train_loader, trainer.train_step, spec.batch_size, warmup, passes, device
    )
    eval_s = _eval_seconds(trainer, device)
    n_full = trainer.train_loader.num_samples // spec.batch_size
    pass_s = sum(full * n_full + part for full, part in timed) / len(timed)
    return {
        **epoch_seconds(timed, spec.batch_size),
        # the untimed passes minus as many steady ones: compilation and first-use costs
        "compile_seconds": max(0.0, warm_s - warmup * pass_s),
        "eval_seconds": eval_s,
        "last_loss": float(loss),
        "peak_memory_bytes": peak_memory(device),
        "precision": runtime.conv_precision,
        "channels_last": runtime.channels_last,
        "step": runtime.step,
        "optimizer": trainer.step.optimizer_kind(),
        "loader": "GpuLoader (device-resident uint8, per-epoch crops on the device)",
    }


class InMemoryCifar(torch.utils.data.Dataset):
    """torchvision-``CIFAR10``-like dataset over in-memory HWC ``uint8`` arrays (PIL per item)."""

    def __init__(
        self, data: np.ndarray, targets: Sequence[int], transform: Callable[[Any], Any]
    ) -> None:
        self.data, self.targets, self.transform = data, targets, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.data[index])), int(self.targets[index])


def standard_loader(
    data: PreparedData, batch_size: int, workers: int, pin_memory: bool, padding_mode: str
) -> torch.utils.data.DataLoader:
    """torchvision ``RandomCrop(32, padding=4)`` + flip + ``ToTensor`` + ``Normalize`` on PIL
    images in a ``DataLoader`` with ``workers`` persistent worker processes."""
    from torchvision import transforms

    transform = transforms.Compose(
        [
            transforms.RandomCrop(
                32, padding=4, padding_mode="constant" if padding_mode == "zeros" else "reflect"
            ),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(data.mean, data.std),
        ]
    )
    images = data.train_images.permute(0, 2, 3, 1).contiguous().numpy()
    dataset = InMemoryCifar(images, data.train_labels.tolist(), transform)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
    )


def standard_workers(device: torch.device) -> int:
    """DataLoader workers of the standard pipeline: up to 4 on CUDA, 2 on the CPU."""
    return min(4, os.cpu_count() or 1) if device.type == "cuda" else 2


def bench_standard(
    spec: RunSpec, device: torch.device, warmup: int, passes: int, steps: int, amp: bool = False
) -> dict[str, Any]:
    """Time the standard pipeline: fp32 contiguous, or (``amp``) bf16 autocast + channels_last."""
    cuda = device.type == "cuda"
    reset_peak(device)
    if cuda:
        set_tf32(False)  # fp32 means fp32 here too (PyTorch's cuDNN default would be TF32)
    workers = standard_workers(device)
    data = synthetic_data(bench_images(spec.batch_size, steps), spec.num_classes)
    loader = standard_loader(data, spec.batch_size, workers, cuda, "zeros")
    torch.manual_seed(spec.seed)
    model = build_from_spec(spec.model, spec.num_classes).to(device)
    fmt = torch.channels_last if amp else torch.contiguous_format
    model = model.to(memory_format=fmt)
    model.train()
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=spec.lr,
        momentum=spec.momentum,
        nesterov=spec.nesterov,
        weight_decay=spec.weight_decay,
    )

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    timed, loss, _ = time_passes(loader, step, spec.batch_size, warmup, passes, device)
    return {
        **epoch_seconds(timed, spec.batch_size),
        "last_loss": float(loss),
        "peak_memory_bytes": peak_memory(device),
        "precision": "bf16" if amp else "fp32",
        "channels_last": amp,
        "step": "eager",
        "optimizer": "SGD foreach (default)",
        "loader": f"DataLoader(num_workers={workers}, pin_memory={cuda}, persistent_workers)"
        " + torchvision transforms on PIL images",
    }
