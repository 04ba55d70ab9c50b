"""One training run end to end: the row's model, SGD, an LR schedule stepped per iteration.

The k-decay runs keep everything of the row but the schedule. The reported error is the test
error after the last epoch (the convention of the model papers); the best error and its epoch
are recorded too. Runs resume from an atomic checkpoint keyed by the config hash, and a
NaN/inf loss ends the run with status "diverged" (exit 0, so a sweep goes on).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from kdecay.checks import ConfigError
from kdecay.config import RunSpec
from kdecay.data.datasets import DATASETS
from kdecay.data.prepare import PreparedData, load_prepared, prepared_path
from kdecay.fileio import check_writable, exclusive_lock, remove_stale_temps, write_history
from kdecay.models import build_from_spec, forward_macs
from kdecay.train.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from kdecay.train.outputs import Progress, evaluates, final_metrics, write_outputs
from kdecay.train.provenance import estimated_cpu_hours, fmt_seconds, provenance
from kdecay.train.runtime import Runtime, runtime_for
from kdecay.train.trainer import Trainer

__all__ = [
    "check_cpu_budget",
    "load_run_data",
    "log_epoch",
    "save_progress",
    "train_run",
]

Log = Callable[[str], None]
LOCK_WAIT_S = 15.0  # how long a second trainer of a run waits for the first to let go


def load_run_data(spec: RunSpec) -> PreparedData:
    """The run's prepared dataset, checked (a missing file names the commands that make it)."""
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
    return data


def check_cpu_budget(spec: RunSpec, runtime: Runtime, macs: int, n_train: int) -> None:
    """With ``device: auto`` and no CUDA, refuse a run longer than ``train.cpu_max_hours``."""
    if runtime.cuda or spec.train.device != "auto":
        return
    hours = estimated_cpu_hours(macs, n_train, spec.epochs)
    if hours > spec.train.cpu_max_hours:
        raise ConfigError(
            f"{spec.label}: no CUDA device, and this full-size run would take about "
            f"{hours:.0f} hours on a CPU (> train.cpu_max_hours = "
            f"{spec.train.cpu_max_hours:g}). Run on a GPU, try `make smoke` for the "
            f"CPU-sized pipeline, or set train.device: cpu to force the CPU."
        )


def _resume(trainer: Trainer, spec: RunSpec, ckpt_file: Path, log: Log) -> Progress:
    found = load_checkpoint(ckpt_file, spec.config_hash(), lambda msg: log(f"[{spec.label}] {msg}"))
    if found is None:
        return Progress()
    ckpt, used = found
    trainer.load_state(ckpt["trainer"])
    progress = Progress.from_checkpoint(ckpt)
    if progress.epoch == spec.epochs or progress.status != "completed":
        log(f"[{spec.label}] already trained ({used}): writing its outputs again, no training")
    else:
        log(f"[{spec.label}] resuming from {used} after epoch {progress.epoch}")
    return progress


def _run_epoch(trainer: Trainer, spec: RunSpec, progress: Progress) -> dict[str, Any]:
    """Train (and maybe evaluate) one epoch; append its history line and return it."""
    epoch = progress.epoch
    t0 = time.perf_counter()
    lr = trainer.schedule(epoch * trainer.iters_per_epoch)
    train_loss, train_err = trainer.train_epoch()
    trainer.runtime.sync()
    t_train = time.perf_counter() - t0
    record: dict[str, Any] = {
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": train_loss,
        "train_error": train_err,
    }
    if not math.isfinite(train_loss):
        progress.diverge(record, t_train)
        return record
    test = trainer.evaluate() if evaluates(spec, epoch + 1) else None
    progress.complete(record, t_train, time.perf_counter() - t0, test)
    return record


def log_epoch(spec: RunSpec, record: dict[str, Any], eta: float, log: Log) -> None:
    """The one progress line of a finished epoch (losses, errors, seconds, ETA)."""
    test_txt = (
        f"test loss {record['test_loss']:.4f} err {record['test_error']:.2f}%"
        if record["test_error"] is not None
        else "test -"
    )
    log(
        f"[{spec.label}] epoch {record['epoch']}/{spec.epochs} lr {record['lr']:.5f} train "
        f"loss {record['train_loss']:.4f} err {record['train_error']:.2f}% {test_txt} "
        f"{record['seconds']:.1f}s ETA {fmt_seconds(eta)}"
    )


def _train_epochs(
    trainer: Trainer, spec: RunSpec, progress: Progress, out_dir: Path, log: Log
) -> None:
    """The epoch loop: history after every epoch, a checkpoint every checkpoint_every."""
    ckpt_file, start, session_seconds = checkpoint_path(spec), progress.epoch, 0.0
    while progress.epoch < spec.epochs and progress.status == "completed":
        record = _run_epoch(trainer, spec, progress)
        if progress.status == "diverged":
            log(
                f"[{spec.label}] DIVERGED at epoch {record['epoch']}: training loss is "
                f"{record['train_loss']}; status 'diverged' recorded, no error rate reported"
            )
            return
        session_seconds += record["seconds"]
        eta = (spec.epochs - progress.epoch) * session_seconds / (progress.epoch - start)
        log_epoch(spec, record, eta, log)
        write_history(out_dir / "history.csv", progress.history)
        if progress.epoch < spec.epochs and progress.epoch % spec.train.checkpoint_every == 0:
            save_progress(ckpt_file, progress, trainer, spec)


def save_progress(path: Path, progress: Progress, trainer: Trainer, spec: RunSpec) -> None:
    """A checkpoint; a full disk or a read-only folder is one line naming the path."""
    try:
        save_checkpoint(path, progress.checkpoint(trainer, spec))
    except OSError as err:
        raise ConfigError(
            f"could not write the checkpoint {path} ({err.strerror or err}): free space there "
            "or set train.checkpoint_dir to a writable folder; rerunning resumes from the last "
            "checkpoint written"
        ) from err
    progress.checkpointed_epoch = progress.epoch


def _interrupted(spec: RunSpec, progress: Progress) -> str:
    """The one line printed on Ctrl-C: what was kept and how to resume."""
    where = f"{spec.label} stopped in epoch {progress.epoch + 1}/{spec.epochs}"
    if progress.checkpointed_epoch is None:
        return (
            f"{where}; no checkpoint yet (the first comes after epoch "
            f"{spec.train.checkpoint_every}): rerunning `dvc repro` starts this run again"
        )
    return (
        f"{where}; kept the checkpoint after epoch {progress.checkpointed_epoch} "
        f"({checkpoint_path(spec)}): rerun `dvc repro` to resume from it"
    )


def train_run(spec: RunSpec, out_dir: Path, log: Log = print) -> dict[str, Any]:
    """Train one run, writing ``metrics.json`` (the numbers), ``run.json`` (provenance) and
    ``history.csv`` (per epoch) into ``out_dir``; returns the metrics.

    Raises:
        KeyboardInterrupt: on Ctrl-C, with a one-line message saying which checkpoint was
            kept and how to resume.
    """
    runtime = runtime_for(spec.train)
    torch.manual_seed(spec.seed)
    try:  # the model spec is checked before any data is loaded
        model = build_from_spec(spec.model, spec.num_classes)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"rows.{spec.row}.model: {err}") from err
    macs = forward_macs(model)
    # before any data is read: a CPU user learns of the GPU refusal before downloading CIFAR
    check_cpu_budget(spec, runtime, macs, DATASETS[spec.dataset].train_images)
    data = load_run_data(spec)
    trainer = Trainer(spec, data, model, runtime)
    check_writable(out_dir, "run's output folder")
    check_writable(checkpoint_path(spec).parent, "checkpoint folder (train.checkpoint_dir)")
    lock = checkpoint_path(spec).parent / "train.lock"
    # one trainer per run; a requeued job may start while the job it replaces still exits
    with exclusive_lock(lock, f"the training of {spec.label}", wait_s=LOCK_WAIT_S):
        remove_stale_temps(out_dir)  # a killed write's leftovers
        progress = _resume(trainer, spec, checkpoint_path(spec), log)
        run_info = provenance(spec, trainer, macs)
        if progress.epoch < spec.epochs and progress.status == "completed":
            progress.made_by = {}  # trained on here: this trainer's provenance
        run_info |= progress.made_by  # finished by a fused group: it stays recorded so
        log(
            f"[{spec.label}] {trainer.params / 1e6:.2f}M params, {spec.epochs} epochs x "
            f"{trainer.iters_per_epoch} it, schedule {spec.schedule['kind']}, "
            f"device {run_info['device']}"
        )
        try:
            _train_epochs(trainer, spec, progress, out_dir, log)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(_interrupted(spec, progress)) from None
        if progress.checkpointed_epoch != progress.epoch or progress.status != "completed":
            save_progress(
                checkpoint_path(spec), progress, trainer, spec
            )  # kept until it is recorded
        metrics = final_metrics(progress, trainer)
        write_outputs(out_dir, spec, progress, trainer, (run_info, metrics))
    if progress.status == "completed":
        log(
            f"[{spec.label}] done: final test error {metrics['final_test_error']:.2f}% "
            f"(best {metrics['best_test_error']:.2f}% at epoch {metrics['best_epoch']}), "
            f"wall {fmt_seconds(metrics['wall_seconds'])}"
        )
    return metrics
