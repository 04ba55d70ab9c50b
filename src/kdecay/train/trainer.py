"""The trainer of one run: model, SGD, the per-iteration LR schedule and the loaders.

:meth:`Trainer.train_step` is one SGD step (:class:`kdecay.train.step.TrainStep`, eager,
compiled or graphed) and one schedule step; :meth:`Trainer.train_epoch` accumulates loss and
error on the device (no host synchronisation inside an epoch).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kdecay.config import RunSpec, build_schedule
from kdecay.data.loader import EvalLoader, GpuLoader
from kdecay.data.prepare import PreparedData
from kdecay.models import count_params
from kdecay.schedules import LRSchedule
from kdecay.train.runtime import Runtime
from kdecay.train.step import TrainStep

__all__ = ["Trainer"]


class Trainer:
    """Holds one run's model, optimizer, schedule and loaders; trains epoch by epoch."""

    def __init__(
        self,
        spec: RunSpec,
        data: PreparedData,
        model: torch.nn.Module,
        runtime: Runtime,
        share_data_with: Trainer | None = None,
    ) -> None:
        """``share_data_with``: a trainer of the same data on the same device whose device
        copy of the training images and whose test loader this one uses (a fused group holds
        one copy of the data, not one per member)."""
        self.spec, self.runtime, self.device = spec, runtime, runtime.device
        device, channels_last = runtime.device, runtime.channels_last
        self.n_train = int(data.train_labels.numel())
        self.train_loader = GpuLoader(
            data.train_images,
            data.train_labels,
            batch_size=spec.batch_size,
            mean=data.mean,
            std=data.std,
            device=device,
            seed=spec.seed,
            padding_mode=spec.padding,
            channels_last=channels_last,
            packed=share_data_with.train_loader.packed if share_data_with else None,
        )
        self.test_loader = (
            share_data_with.test_loader
            if share_data_with
            else EvalLoader(
                data.test_images,
                data.test_labels,
                mean=data.mean,
                std=data.std,
                device=device,
                batch_size=spec.train.eval_batch_size,
                channels_last=channels_last,
            )
        )

        self.model = model
        self.params = count_params(model)
        self.model.to(device)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.step = TrainStep(
            self.model,
            runtime,
            spec.lr,
            spec.sgd_hyper(),
            full_batch=spec.batch_size,
            eval_batch=spec.train.eval_batch_size,
        )
        self.optimizer = self.step.optimizer
        self.iters_per_epoch = len(self.train_loader)
        self.schedule = build_schedule(spec, self.iters_per_epoch)
        self.lr_schedule = LRSchedule(self.optimizer, self.schedule)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step and one schedule step; returns (loss, misclassified count) tensors."""
        loss, wrong = self.step(x, y)
        self.lr_schedule.step()
        return loss, wrong

    def train_epoch(self) -> tuple[float, float]:
        """One pass over the training set; returns (mean loss, error %). No host sync inside."""
        self.model.train()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        wrong = torch.zeros((), device=self.device, dtype=torch.int64)
        for x, y in self.train_loader:
            loss, wrong_batch = self.train_step(x, y)
            loss_sum += loss.double() * y.numel()
            wrong += wrong_batch
        return float(loss_sum) / self.n_train, 100.0 * float(wrong) / self.n_train

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """Test loss and error % (no augmentation, large batches)."""
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        wrong = torch.zeros((), device=self.device, dtype=torch.int64)
        n = 0
        for x, y in self.test_loader:
            out = self.step.logits(x)
            loss_sum += F.cross_entropy(out.float(), y, reduction="sum").double()
            wrong += (out.argmax(1) != y).sum()
            n += y.numel()
        return float(loss_sum) / n, 100.0 * float(wrong) / n

    def state(self) -> dict[str, Any]:
        """Everything needed to continue bit-exactly (CPU) after the current epoch."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.lr_schedule.state_dict(),
            "loader": self.train_loader.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state`."""
        self.model.load_state_dict(state["model"])
        self.step.load_optimizer_state(state["optimizer"])
        self.lr_schedule.load_state_dict(state["schedule"])
        self.train_loader.load_state_dict(state["loader"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
