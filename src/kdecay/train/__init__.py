"""The training stage: one run end to end (``run``), the trainer and its step (``trainer``),
the device/precision decision (``runtime``), resumable checkpoints (``checkpoint``), and G runs
of one row trained as one fused network (``fused``: the step; ``group``: the runs)."""

from kdecay.train.checkpoint import checkpoint_path
from kdecay.train.run import train_run
from kdecay.train.runtime import Runtime, runtime_for
from kdecay.train.trainer import Trainer

__all__ = ["Runtime", "Trainer", "checkpoint_path", "runtime_for", "train_run"]
