"""The fast path stays correct: bf16 autocast + channels_last (+ torch.compile) training through
the project's real :class:`kdecay.train.Trainer` follows the fp32 / contiguous loss trajectory.

Set-up (CPU, which supports bf16 autocast): a tiny model (pre-act ResNet-8; DenseNet-BC-10 too,
for its concatenations under channels_last) trains for 12 steps at batch 32 on a learnable
synthetic set (class = mean colour + noise; the loss falls from ~2.3 to ~0.9-1.6). Every run
starts from the same initial weights (``torch.manual_seed(0)``) and sees exactly the same
batches (the Trainer's GpuLoader is seeded by the spec's seed, identical in every run).

Tolerance for bf16 (+channels_last, +compile) vs fp32, at every step::

    |loss_fast - loss_fp32| <= 0.02 + 0.02 * |loss_fp32|

Calibration (measured on this project's 2-core x86 CPU, torch 2.15): bf16 + channels_last
max gap 0.0025 (pre-act ResNet-8) and 0.0022 (DenseNet-BC-10), i.e. ~15-25x inside the
tolerance (~0.04-0.07). Negative controls that must fall outside it: other initial weights
(seed 1) max gap 0.25 / 0.15, a 10x learning rate 0.92 / 0.98. channels_last alone in fp32:
the first forward's logits agree to <= 5e-7 (asserted <= 1e-4), the first 3 step losses to
<= 2e-5 (asserted <= 1e-4), and the 12-step trajectory to <= 1.4e-3 as float rounding
differences grow through training (asserted <= 5e-3).

torch.compile (inductor, C++ codegen with gcc) works on the CPU and stays inside the same
tolerance (max gap 0.0033), but one compiled run took ~100 s with a cold inductor cache on this
shared 2-core machine (~30 s warm), over the ~90 s budget, so that test is left out of the
default run: set ``KDECAY_TEST_COMPILE=1`` to include it.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch
from torch import nn

from kdecay.train import Runtime, Trainer
from tiny_runs import learnable_data, outside, tiny_trainer, trajectory

BATCH, STEPS = 32, 12
ABS_TOL, REL_TOL = 0.02, 0.02
CL_FORWARD_TOL, CL_EARLY_TOL, CL_TRAJ_TOL, CL_EARLY_STEPS = 1e-4, 1e-4, 5e-3, 3

MODELS: dict[str, dict[str, Any]] = {
    "preact_resnet8": {"family": "preact_resnet", "depth": 8},
    "densenet_bc10": {"family": "densenet_bc", "depth": 10, "growth_rate": 6},
}


def _trainer(
    model: str,
    *,
    amp: torch.dtype | None,
    channels_last: bool,
    step: str = "eager",
    seed: int = 0,
    lr: float = 0.05,
) -> Trainer:
    runtime = Runtime(torch.device("cpu"), amp, channels_last, step)
    data = learnable_data(BATCH * STEPS)
    return tiny_trainer(MODELS[model], runtime, lr=lr, batch=BATCH, data=data, seed=seed)


def _run(model: str, **kwargs: Any) -> torch.Tensor:
    """Losses of one epoch (= STEPS steps)."""
    losses = trajectory(_trainer(model, **kwargs))
    assert len(losses) == STEPS
    return losses


def _outside(fast: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-step excess over the tolerance (> 0 where a step is outside it)."""
    return outside(fast, ref, ABS_TOL, REL_TOL)


_REFERENCE: dict[str, torch.Tensor] = {}


def _reference(model: str) -> torch.Tensor:
    """fp32, contiguous trajectory (computed once per model)."""
    if model not in _REFERENCE:
        _REFERENCE[model] = _run(model, amp=None, channels_last=False)
    return _REFERENCE[model]


@pytest.mark.parametrize("model", list(MODELS))
def test_bf16_channels_last_follows_fp32(model: str) -> None:
    ref = _reference(model)
    assert torch.isfinite(ref).all()
    assert ref[-1] < ref[0] - 0.3, f"the reference run should learn: {ref.tolist()}"

    trainer = _trainer(model, amp=torch.bfloat16, channels_last=True)
    # the fast path is really taken: channels_last batches and weights, bf16 matmuls
    conv = next(m for m in trainer.model.modules() if isinstance(m, nn.Conv2d))
    head = [m for m in trainer.model.modules() if isinstance(m, nn.Linear)][-1]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    inputs_cl: list[bool] = []
    head_dtypes: list[torch.dtype] = []
    hooks = [
        conv.register_forward_pre_hook(
            lambda _m, i: inputs_cl.append(i[0].is_contiguous(memory_format=torch.channels_last))
        ),
        head.register_forward_hook(lambda _m, _i, out: head_dtypes.append(out.dtype)),
    ]
    fast = trajectory(trainer)
    for h in hooks:
        h.remove()
    assert len(inputs_cl) == STEPS and all(inputs_cl)
    assert len(head_dtypes) == STEPS and all(d == torch.bfloat16 for d in head_dtypes)

    excess = _outside(fast, ref)
    assert (excess <= 0).all(), (
        f"bf16+channels_last leaves the fp32 trajectory: gaps {(fast - ref).abs().tolist()}"
    )


def test_tolerance_rejects_a_different_run() -> None:
    """The tolerance can fail: other initial weights, or a 10x LR, fall outside it."""
    ref = _reference("preact_resnet8")
    other_init = _run("preact_resnet8", amp=None, channels_last=False, seed=1)
    assert (_outside(other_init, ref) > 0).any(), (other_init - ref).abs().tolist()
    big_lr = _run("preact_resnet8", amp=None, channels_last=False, lr=0.5)
    assert (_outside(big_lr, ref) > 0).any(), (big_lr - ref).abs().tolist()


@pytest.mark.parametrize("model", list(MODELS))
def test_channels_last_fp32_matches_contiguous(model: str) -> None:
    ref = _reference(model)
    contiguous = _trainer(model, amp=None, channels_last=False)
    cl = _trainer(model, amp=None, channels_last=True)
    x, _ = next(iter(contiguous.train_loader))
    contiguous.model.eval()
    cl.model.eval()
    with torch.no_grad():
        a = contiguous.model(x)
        b = cl.model(x.contiguous(memory_format=torch.channels_last))
    assert (a - b).abs().max() <= CL_FORWARD_TOL

    traj = _run(model, amp=None, channels_last=True)
    gap = (traj - ref).abs()
    assert (gap[:CL_EARLY_STEPS] <= CL_EARLY_TOL).all(), gap.tolist()
    assert (gap <= CL_TRAJ_TOL).all(), gap.tolist()


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("KDECAY_TEST_COMPILE") != "1",
    reason="torch.compile on the CPU takes ~100 s cold; set KDECAY_TEST_COMPILE=1 to run it",
)
def test_compiled_bf16_channels_last_follows_fp32() -> None:
    """torch.compile (inductor on the CPU) + bf16 + channels_last: same tolerance.

    Measured max gap 0.0033 (pre-act ResNet-8); ~100 s cold / ~30 s warm, mostly compilation.
    """
    ref = _reference("preact_resnet8")
    fast = _run("preact_resnet8", amp=torch.bfloat16, channels_last=True, step="compiled")
    assert (_outside(fast, ref) <= 0).all(), (fast - ref).abs().tolist()
