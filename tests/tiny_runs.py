"""Tiny training runs shared by the trajectory tests (test_fast_path, test_step): a one-row
params dict for a given model spec and a learnable synthetic CIFAR-shaped set."""

from __future__ import annotations

from typing import Any

import torch

from kdecay.data.prepare import PreparedData


def tiny_params(model: dict[str, Any], lr: float, batch: int, **train: Any) -> dict[str, Any]:
    """params.yaml content with one row ``tiny`` (step schedule, milestone at epoch 9)."""
    return {
        "data": {"cifar10": {"url": "unused", "md5": "unused"}},
        "datasets": ["cifar10"],
        "seeds": [0],
        "rows": {
            "tiny": {
                "model": model,
                "epochs": 10,
                "batch_size": batch,
                "optimizer": {"lr": lr, "momentum": 0.9, "nesterov": False, "weight_decay": 5e-4},
                "padding": "zeros",
                "original": {"schedule": "step", "milestones": [9], "gamma": 0.1},
            }
        },
        "kdecay": {"schedule": "poly", "power": 2.0, "lr_end": 0.0, "ks": [1]},
        "train": {"device": "cpu", **train},
    }


def learnable_data(n: int, classes: int = 10, n_test: int = 8) -> PreparedData:
    """Learnable synthetic CIFAR: each class has a mean colour, plus Gaussian pixel noise."""
    g = torch.Generator().manual_seed(123)
    colors = torch.randint(0, 256, (classes, 3, 1, 1), generator=g).float()
    labels = torch.randint(0, classes, (n,), generator=g)
    noise = torch.randn((n, 3, 32, 32), generator=g) * 40
    images = (colors[labels] + noise).round().clamp(0, 255).to(torch.uint8)
    return PreparedData(
        train_images=images,
        train_labels=labels,
        test_images=images[:n_test].clone(),
        test_labels=labels[:n_test].clone(),
        classes=[str(i) for i in range(classes)],
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )
