"""The two training pipelines of ``kdecay bench``, on CIFAR-shaped random ``uint8`` images.

* **ours**: the real training path, a :class:`kdecay.train.Trainer` (device-resident
  :class:`kdecay.data.loader.GpuLoader`, on-device crop/flip, fused SGD on CUDA, per-iteration
  LR schedule) on the :class:`kdecay.train.Runtime` that ``train_run`` would use;
* **standard**: the textbook PyTorch recipe: an in-memory torchvision-style dataset of HWC
  ``uint8`` arrays turned into PIL images -> ``RandomCrop(32, padding=4)`` +
  ``RandomHorizontalFlip()`` + ``ToTensor()`` + ``Normalize`` in ``DataLoader`` worker processes
  (``pin_memory`` on CUDA, persistent workers), fp32, contiguous memory, ``torch.optim.SGD``
  (foreach) with the row's momentum / Nesterov / weight decay.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kdecay.bench.timing import cycle, time_calls
from kdecay.config import RunSpec
from kdecay.data.datasets import DATASETS
from kdecay.data.prepare import PreparedData
from kdecay.models import build_from_spec
from kdecay.train import Runtime, Trainer

__all__ = ["EPOCH_IMAGES", "InMemoryCifar", "bench_ours", "bench_standard", "synthetic_data"]

EPOCH_IMAGES = DATASETS["cifar10"].train_images
"""Images in one CIFAR training epoch; seconds per epoch are quoted for this many."""

# CIFAR-10 statistics; the images are random, so any plausible values do.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
_N_TEST = 64  # the Trainer builds an EvalLoader; the benchmark never evaluates


def synthetic_data(n_train: int, num_classes: int, seed: int = 0) -> PreparedData:
    """CIFAR-shaped random ``uint8`` images with random labels, on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    return PreparedData(
        train_images=torch.randint(0, 256, (n_train, 3, 32, 32), dtype=torch.uint8, generator=gen),
        train_labels=torch.randint(0, num_classes, (n_train,), generator=gen),
        test_images=torch.randint(0, 256, (_N_TEST, 3, 32, 32), dtype=torch.uint8, generator=gen),
        test_labels=torch.randint(0, num_classes, (_N_TEST,), generator=gen),
        classes=[str(i) for i in range(num_classes)],
        mean=MEAN,
        std=STD,
    )


def n_train_images(device: torch.device, batch_size: int, warmup: int, steps: int) -> int:
    """Whole batches only (no odd last batch, no recompile under ``torch.compile``): 50,000
    rounded down to a multiple of the batch on CUDA; on the CPU just enough batches for the
    run (at most one epoch), so that it stays fast."""
    full = max(1, EPOCH_IMAGES // batch_size)
    n_batches = full if device.type == "cuda" else min(full, max(1, warmup + steps))
    return n_batches * batch_size


def ours_trainer(spec: RunSpec, runtime: Runtime, n_train: int) -> Trainer:
    """The training path of ``train_run`` on synthetic data."""
    torch.manual_seed(spec.seed)
    model = build_from_spec(spec.model, spec.num_classes)
    return Trainer(spec, synthetic_data(n_train, spec.num_classes), model, runtime)


def _peak_memory(device: torch.device) -> int | None:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def _result(
    spec: RunSpec, steps: int, seconds: float, loss: torch.Tensor, device: torch.device
) -> dict[str, Any]:
    return {
        "images_per_s": steps * spec.batch_size / seconds,
        "timed_seconds": seconds,
        "last_loss": float(loss),
        "peak_memory_bytes": _peak_memory(device),
    }


def bench_ours(spec: RunSpec, runtime: Runtime, warmup: int, steps: int) -> dict[str, Any]:
    """Time ``steps`` training steps of our pipeline after ``warmup`` untimed ones."""
    device = runtime.device
    if runtime.cuda:
        torch.cuda.reset_peak_memory_stats(device)
    n_train = n_train_images(device, spec.batch_size, warmup, steps)
    trainer = ours_trainer(spec, runtime, n_train)
    trainer.model.train()
    batches = cycle(trainer.train_loader)

    def step() -> torch.Tensor:
        return trainer.train_step(*next(batches))[0]

    seconds, loss = time_calls(step, warmup, steps, device)
    return {
        **_result(spec, steps, seconds, loss, device),
        "train_images": n_train,
        "precision": runtime.precision,
        "channels_last": runtime.channels_last,
        "compile": runtime.compile,
        "optimizer": "SGD fused" if runtime.cuda else "SGD foreach",
        "loader": "GpuLoader (device-resident uint8, on-device crop/flip)",
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


def bench_standard(spec: RunSpec, device: torch.device, warmup: int, steps: int) -> dict[str, Any]:
    """Time ``steps`` steps of the standard pipeline (fp32, contiguous, foreach SGD)."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    n_train = n_train_images(device, spec.batch_size, warmup, steps)
    workers = standard_workers(device)
    data = synthetic_data(n_train, spec.num_classes)
    batches = cycle(standard_loader(data, spec.batch_size, workers, cuda, "zeros"))
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

    def step() -> torch.Tensor:
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    seconds, loss = time_calls(step, warmup, steps, device)
    return {
        **_result(spec, steps, seconds, loss, device),
        "train_images": n_train,
        "precision": "fp32",
        "channels_last": False,
        "compile": False,
        "optimizer": "SGD foreach (default)",
        "loader": f"DataLoader(num_workers={workers}, pin_memory={cuda}, persistent_workers)"
        " + torchvision transforms on PIL images",
    }
