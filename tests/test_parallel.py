"""Unit tests of `kdecay parallel`'s parsing (the end-to-end run is in test_pipeline)."""

from __future__ import annotations

import pytest

from kdecay.config import ConfigError
from kdecay.sweep.parallel import parse_slots, stale_commands

DRY = """Stage 'download@cifar10' didn't change, skipping
Running stage 'train_kdecay@cifar10-wrn16_8-1.5-0':
> kdecay train --dataset cifar10 --row wrn16_8 --k 1.5 --seed 0 --out results/runs/x
Running stage 'train_original@cifar100-wrn16_8-0':
> kdecay train --dataset cifar100 --row wrn16_8 --original --seed 0 --out r/y
Running stage 'aggregate':
> kdecay aggregate --runs results/runs --out results/summary.csv
"""


def test_stale_commands_keeps_training_stages_only():
    assert stale_commands(DRY) == [
        (
            "train_kdecay@cifar10-wrn16_8-1.5-0",
            "kdecay train --dataset cifar10 --row wrn16_8 --k 1.5 --seed 0 --out results/runs/x",
        ),
        (
            "train_original@cifar100-wrn16_8-0",
            "kdecay train --dataset cifar100 --row wrn16_8 --original --seed 0 --out r/y",
        ),
    ]


def test_parse_slots():
    assert parse_slots("0,1", 2) == ["0", "0", "1", "1"]
    assert parse_slots("cpu", 3) == ["", "", ""]
    with pytest.raises(ConfigError, match="--gpus"):
        parse_slots("a,b", 1)
    with pytest.raises(ConfigError, match="--per-gpu"):
        parse_slots("0", 0)
