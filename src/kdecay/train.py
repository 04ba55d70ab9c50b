"""One training run end to end: the row's model, SGD, an LR schedule stepped per iteration.

The k-decay runs keep everything of the row but the schedule. The reported error is the test
error after the last epoch (the convention of the model papers); the best error and its epoch
are recorded too. Runs resume from an atomic checkpoint keyed by the config hash, and a
NaN/inf loss ends the run with status "diverged" (exit 0, so a sweep goes on).
"""

from __future__ import annotations

import contextlib
import math
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from kdecay import __version__
from kdecay.config import ConfigError, RunSpec, build_schedule
from kdecay.loader import EvalLoader, GpuLoader
from kdecay.models import build_from_spec, count_params, forward_macs
from kdecay.prepare import PreparedData, load_prepared, prepared_path
from kdecay.runio import load_checkpoint, save_checkpoint, write_history, write_json
from kdecay.schedules import LRSchedule

# Optimistic multiply-add rate of a many-core CPU training in fp32; only used to estimate how
# long a run would take without a GPU before refusing it (DESIGN.md, "Reliability").
CPU_MACS_PER_SECOND = 1.0e11


def select_device(option: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if option == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "train.device is 'cuda' but no CUDA device is visible; use train.device: auto or cpu"
        )
    if option == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def estimated_cpu_hours(macs_per_image: int, images_per_epoch: int, epochs: int) -> float:
    """Forward + backward ~ 3 x forward MACs per image, at :data:`CPU_MACS_PER_SECOND`."""
    return 3 * macs_per_image * images_per_epoch * epochs / CPU_MACS_PER_SECOND / 3600


def code_version() -> dict[str, Any]:
    """Commit of the checkout this package runs from, and whether its tracked files differ."""
    here = str(Path(__file__).resolve().parent)

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", "-C", here, *args], capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip()

    try:
        return {
            "git_commit": git("rev-parse", "HEAD"),
            "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        }
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": None}


def _fmt_seconds(s: float) -> str:
    s = round(s)
    return f"{s // 3600}h{(s % 3600) // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Trainer:
    """Holds one run's model, optimizer, schedule and loaders; trains epoch by epoch."""

    def __init__(
        self,
        spec: RunSpec,
        device: torch.device,
        data: PreparedData,
        model: torch.nn.Module,
        *,
        amp_dtype: torch.dtype | None,
        channels_last: bool,
        compile_model: bool,
    ) -> None:
        self.spec, self.device = spec, device
        self.amp_dtype, self.channels_last = amp_dtype, channels_last
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
        )
        self.test_loader = EvalLoader(
            data.test_images,
            data.test_labels,
            mean=data.mean,
            std=data.std,
            device=device,
            batch_size=spec.train.eval_batch_size,
            channels_last=channels_last,
        )

        self.model = model
        self.params = count_params(model)
        self.model.to(device)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.forward: Callable[[torch.Tensor], torch.Tensor] = (
            torch.compile(self.model) if compile_model else self.model
        )
        cuda = device.type == "cuda"
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=spec.lr,
            momentum=spec.momentum,
            nesterov=spec.nesterov,
            weight_decay=spec.weight_decay,
            fused=True if cuda else None,
            foreach=None,
        )
        self.iters_per_epoch = len(self.train_loader)
        self.schedule = build_schedule(spec, self.iters_per_epoch)
        self.lr_schedule = LRSchedule(self.optimizer, self.schedule)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step and one schedule step; returns (loss, misclassified count) tensors."""
        with self._autocast():
            out = self.forward(x)
            loss = F.cross_entropy(out, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.lr_schedule.step()
        return loss.detach(), (out.detach().argmax(1) != y).sum()

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
            with self._autocast():
                out = self.forward(x)
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
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["schedule"])
        self.train_loader.load_state_dict(state["loader"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)


def checkpoint_path(spec: RunSpec) -> Path:
    """``<checkpoint_dir>/<config hash>/checkpoint.pt``: a changed config never resumes."""
    return Path(spec.train.checkpoint_dir) / spec.config_hash() / "checkpoint.pt"


def train_run(spec: RunSpec, out_dir: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train one run, writing ``out_dir/metrics.json`` and ``out_dir/history.csv``."""
    device = select_device(spec.train.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    amp = torch.bfloat16 if (cuda and spec.train.precision == "bf16") else None
    path = prepared_path(spec.dataset, Path(spec.prepared_dir))
    if not path.is_file():
        raise ConfigError(
            f"prepared data {path} is missing: run `kdecay download --dataset {spec.dataset}` "
            f"then `kdecay prepare --dataset {spec.dataset}` (or `dvc repro "
            f"prepare@{spec.dataset}`)"
        )
    data = load_prepared(path)
    if len(data.classes) != spec.num_classes:
        raise ConfigError(
            f"{path} has {len(data.classes)} classes, expected "
            f"{spec.num_classes} for {spec.dataset}"
        )
    torch.manual_seed(spec.seed)
    model = build_from_spec(spec.model, spec.num_classes)
    macs = forward_macs(model)
    if not cuda and spec.train.device == "auto":
        hours = estimated_cpu_hours(macs, int(data.train_labels.numel()), spec.epochs)
        if hours > spec.train.cpu_max_hours:
            raise ConfigError(
                f"{spec.label}: no CUDA device, and this full-size run would take about "
                f"{hours:.0f} hours on a CPU (> train.cpu_max_hours = "
                f"{spec.train.cpu_max_hours:g}). Run on a GPU, try `make smoke` for the "
                f"CPU-sized pipeline, or set train.device: cpu to force the CPU."
            )
    trainer = Trainer(
        spec,
        device,
        data,
        model,
        amp_dtype=amp,
        channels_last=cuda and spec.train.channels_last,
        compile_model=spec.train.compile,
    )

    ckpt_file = checkpoint_path(spec)
    history: list[dict[str, Any]] = []
    start_epoch, wall, train_seconds = 0, 0.0, 0.0
    ckpt = load_checkpoint(ckpt_file)
    if ckpt is not None:
        trainer.load_state(ckpt["trainer"])
        history, start_epoch = list(ckpt["history"]), int(ckpt["epoch"])
        wall, train_seconds = float(ckpt["wall_seconds"]), float(ckpt["train_seconds"])
        log(f"[{spec.label}] resuming from {ckpt_file} after epoch {start_epoch}")

    base = {
        "dataset": spec.dataset,
        "row": spec.row,
        "method": spec.method,
        "k": spec.k,
        "seed": spec.seed,
        "model": spec.model if isinstance(spec.model, str) else dict(spec.model),
        "schedule": spec.schedule["kind"],
        "params": trainer.params,
        "forward_macs": macs,
        "epochs": spec.epochs,
        "batch_size": spec.batch_size,
        "iterations_per_epoch": trainer.iters_per_epoch,
        "device": torch.cuda.get_device_name(device)
        if cuda
        else f"cpu ({platform.processor() or platform.machine()})",
        "precision": "bf16-autocast" if amp is not None else "fp32",
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "kdecay_version": __version__,
        **code_version(),
        "config_hash": spec.config_hash(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    log(
        f"[{spec.label}] {trainer.params / 1e6:.2f}M params, {spec.epochs} epochs x "
        f"{trainer.iters_per_epoch} it, schedule {spec.schedule['kind']}, device {base['device']}"
    )

    status, diverged_epoch, session_seconds = "completed", None, 0.0
    for epoch in range(start_epoch, spec.epochs):
        t0 = time.perf_counter()
        lr = trainer.schedule(epoch * trainer.iters_per_epoch)
        train_loss, train_err = trainer.train_epoch()
        if cuda:
            torch.cuda.synchronize(device)
        t_train = time.perf_counter() - t0
        if not math.isfinite(train_loss):
            status, diverged_epoch = "diverged", epoch + 1
            history.append(
                {
                    "epoch": epoch + 1,
                    "lr": lr,
                    "train_loss": train_loss,
                    "train_error": train_err,
                    "seconds": round(t_train, 3),
                }
            )
            log(
                f"[{spec.label}] DIVERGED at epoch {epoch + 1}: training loss is {train_loss}; "
                "status 'diverged' recorded, no error rate reported"
            )
            break
        last = epoch + 1 == spec.epochs
        test_loss = test_err = None
        if last or (epoch + 1) % spec.train.eval_every == 0:
            test_loss, test_err = trainer.evaluate()
        seconds = time.perf_counter() - t0
        wall += seconds
        train_seconds += t_train
        history.append(
            {
                "epoch": epoch + 1,
                "lr": lr,
                "train_loss": train_loss,
                "train_error": train_err,
                "test_loss": test_loss,
                "test_error": test_err,
                "seconds": round(seconds, 3),
            }
        )
        session_epochs = epoch + 1 - start_epoch
        session_seconds += seconds
        eta = (spec.epochs - epoch - 1) * session_seconds / session_epochs
        test_txt = (
            f"test loss {test_loss:.4f} err {test_err:.2f}%" if test_err is not None else "test -"
        )
        log(
            f"[{spec.label}] epoch {epoch + 1}/{spec.epochs} lr {lr:.5f} train loss "
            f"{train_loss:.4f} err {train_err:.2f}% {test_txt} {seconds:.1f}s "
            f"ETA {_fmt_seconds(eta)}"
        )
        write_history(out_dir / "history.csv", history)
        if not last and (epoch + 1) % spec.train.checkpoint_every == 0:
            save_checkpoint(
                ckpt_file,
                {
                    "trainer": trainer.state(),
                    "history": history,
                    "epoch": epoch + 1,
                    "wall_seconds": wall,
                    "train_seconds": train_seconds,
                    "config_hash": spec.config_hash(),
                },
            )

    write_history(out_dir / "history.csv", history)
    evaluated = [h for h in history if h.get("test_error") is not None]
    best = min(evaluated, key=lambda h: h["test_error"]) if evaluated else None
    done = status == "completed"
    metrics = {
        **base,
        "status": status,
        "diverged_epoch": diverged_epoch,
        "epochs_completed": len(history) if done else len(history) - 1,
        "final_test_error": history[-1]["test_error"] if done else None,
        "final_test_loss": history[-1]["test_loss"] if done else None,
        "final_train_loss": history[-1]["train_loss"] if done else None,
        "final_train_error": history[-1]["train_error"] if done else None,
        "best_test_error": best["test_error"] if best else None,
        "best_epoch": best["epoch"] if best else None,
        "wall_seconds": round(wall, 3),
        "images_per_second": (
            round(trainer.n_train * len(history) / train_seconds, 1)
            if done and train_seconds > 0
            else None
        ),
    }
    if done and spec.train.save_weights:
        torch.save(trainer.model.state_dict(), out_dir / "model.pt")
    write_json(out_dir / "metrics.json", metrics)
    shutil.rmtree(ckpt_file.parent, ignore_errors=True)
    if done:
        log(
            f"[{spec.label}] done: final test error {metrics['final_test_error']:.2f}% "
            f"(best {metrics['best_test_error']:.2f}% at epoch {metrics['best_epoch']}), "
            f"wall {_fmt_seconds(wall)}"
        )
    return metrics
