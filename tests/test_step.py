"""The compiled training step (``train.step: compiled``) follows the eager one.

Every run trains a tiny model of each family through the project's real Trainer (SGD, LR
0.02, momentum 0.9) for 3 epochs of 8 full batches of 16 plus a partial batch of 5 (27 steps,
the partial batch on its eager path), from the same initial weights and the same batches.
Tolerance at every step::

    |loss_compiled - loss_eager| <= 0.01 + 0.01 * |loss_eager|

Backends: ``aot_eager`` (Dynamo capture + AOTAutograd, no code generation: the graphs the
step compiles, fast) for every family; Inductor (the real code generation, ~35 s per model on
2 CPU cores) for the pre-act ResNet in the slow set. The compiled update (foreach, LR in a
float32 tensor) rounds differently from eager's per-tensor loop and training amplifies such
rounding step by step. Calibration on this project's 2-core x86 CPU (torch 2.15), max gap over
the 27 steps with aot_eager: pre-act basic 0.00053, bottleneck 0.0027, WRN 0.00021, DenseNet-BC
0.00008 (the tolerance is 0.02-0.03 there). Negative control: other initial weights exceed the
tolerance by 0.28-0.45.

Resume: a compiled run checkpointed after epoch 2 and continued in a fresh Trainer (new
compiled graphs) gives the uninterrupted compiled run's third epoch exactly (aot_eager) or
within the tolerance (Inductor).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from kdecay.checks import ConfigError
from kdecay.config import TrainOptions
from kdecay.train import Runtime, Trainer, runtime_for
from tiny_runs import epoch_losses, learnable_data, outside, tiny_trainer, trajectory

BATCH, FULL_BATCHES, PARTIAL, EPOCHS, LR = 16, 8, 5, 3, 0.02
ABS_TOL = REL_TOL = 0.01

FAMILIES: dict[str, dict[str, Any]] = {
    "preact_basic": {"family": "preact_resnet", "depth": 8},
    "preact_bottleneck": {"family": "preact_resnet", "depth": 11, "bottleneck": True},
    "wide_resnet": {"family": "wide_resnet", "depth": 10, "widen_factor": 2},
    "densenet_bc": {"family": "densenet_bc", "depth": 10, "growth_rate": 4},
}


def _trainer(family: str, step: str, backend: str = "aot_eager", seed: int = 0) -> Trainer:
    runtime = Runtime(torch.device("cpu"), None, False, step=step, compile_backend=backend)
    data = learnable_data(BATCH * FULL_BATCHES + PARTIAL, n_test=12)  # eval: 8 + partial 4
    return tiny_trainer(
        FAMILIES[family], runtime, lr=LR, batch=BATCH, data=data, seed=seed, eval_batch_size=8
    )


def _trajectory(trainer: Trainer, epochs: int = EPOCHS) -> torch.Tensor:
    return trajectory(trainer, epochs)


def _outside(fast: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return outside(fast, ref, ABS_TOL, REL_TOL)


def _resumed_last_epoch(family: str, backend: str) -> torch.Tensor:
    """Compiled run checkpointed after epoch EPOCHS-1, continued in a new Trainer."""
    first = _trainer(family, "compiled", backend)
    _trajectory(first, EPOCHS - 1)
    state = first.state()
    buf = first.optimizer.state[next(first.model.parameters())]["momentum_buffer"].clone()
    second = _trainer(family, "compiled", backend, seed=1)  # other weights, then the state
    second.load_state(state)
    assert torch.equal(
        second.optimizer.state[next(second.model.parameters())]["momentum_buffer"], buf
    )
    assert second.step.lr_tensor() is not None  # the LR is still the device tensor
    return torch.stack(epoch_losses(second)).float()


@pytest.mark.slow  # torch.compile: minutes with a cold compile cache
@pytest.mark.parametrize("family", list(FAMILIES))
def test_compiled_step_follows_eager(family: str) -> None:
    eager = _trainer(family, "eager")
    compiled = _trainer(family, "compiled")
    ref, fast = _trajectory(eager), _trajectory(compiled)
    assert len(ref) == EPOCHS * (FULL_BATCHES + 1)
    assert ref[-1] < ref[0] - 0.3, f"the reference run should learn: {ref.tolist()}"
    assert (_outside(fast, ref) <= 0).all(), (fast - ref).abs().tolist()
    # the schedule wrote the device tensor every step: it holds the LR of the next iteration
    lr = compiled.step.lr_tensor()
    assert lr is not None and float(lr) == pytest.approx(compiled.schedule(len(ref)))
    assert eager.step.lr_tensor() is None  # eager keeps a Python float
    # evaluation: the compiled forward (full eval batch) gives the eager forward's logits
    compiled.model.eval()
    x, _ = next(iter(compiled.test_loader))
    assert len(x) == compiled.step.eval_batch
    with torch.no_grad():
        torch.testing.assert_close(compiled.step.logits(x), compiled.model(x), rtol=1e-4, atol=1e-4)
    assert compiled.evaluate()[1] == pytest.approx(eager.evaluate()[1], abs=100 / 12 + 1e-9)


@pytest.mark.slow  # torch.compile: minutes with a cold compile cache
@pytest.mark.parametrize("family", ["preact_bottleneck", "densenet_bc"])
def test_compiled_step_resumes_mid_run(family: str) -> None:
    uninterrupted = _trajectory(_trainer(family, "compiled"))
    resumed = _resumed_last_epoch(family, "aot_eager")
    torch.testing.assert_close(resumed, uninterrupted[-len(resumed) :], rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # torch.compile: minutes with a cold compile cache
def test_tolerance_rejects_a_different_run() -> None:
    ref = _trajectory(_trainer("preact_basic", "eager"))
    other = _trajectory(_trainer("preact_basic", "compiled", seed=1))
    assert (_outside(other, ref) > 0).any(), (other - ref).abs().tolist()


@pytest.mark.slow
def test_inductor_step_follows_eager_and_resumes() -> None:
    """The real code generation (Inductor's C++ kernels on the CPU), with a resume."""
    ref = _trajectory(_trainer("preact_basic", "eager"))
    fast = _trajectory(_trainer("preact_basic", "compiled", "inductor"))
    assert (_outside(fast, ref) <= 0).all(), (fast - ref).abs().tolist()
    resumed = _resumed_last_epoch("preact_basic", "inductor")
    tail = ref[-len(resumed) :]
    assert (_outside(resumed, tail) <= 0).all(), (resumed - tail).abs().tolist()


def test_step_forms_resolve_per_device() -> None:
    auto = runtime_for(TrainOptions.read({"device": "cpu"}))
    assert auto.step == "eager" and auto.conv_precision == "fp32"
    forced = runtime_for(TrainOptions.read({"device": "cpu", "step": "compiled"}))
    assert forced.step == "compiled"
    with pytest.raises(ConfigError, match=r"train.step: graph .* needs a CUDA device"):
        runtime_for(TrainOptions.read({"device": "cpu", "step": "graph"}))
    with pytest.raises(ConfigError, match=r"train.step"):
        TrainOptions.read({"step": "fast"})
    with pytest.raises(ConfigError, match=r"unknown key train.compile"):
        TrainOptions.read({"compile": True})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("form", ["compiled", "graph"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_cuda_step_follows_fp32_eager(form: str, family: str) -> None:
    """On a GPU, every family: bf16 + channels_last + the compiled/graphed step, with TF32 and
    cudnn.benchmark set as training sets them (``runtime_for``), against fp32 eager."""
    from kdecay.config import TrainOptions
    from kdecay.train import runtime_for

    data = learnable_data(BATCH * FULL_BATCHES + PARTIAL, n_test=12)
    runs = []
    for options in (
        TrainOptions(device="cuda", precision="fp32", channels_last=False, step="eager"),
        TrainOptions(device="cuda", precision="bf16", channels_last=True, step=form),
    ):
        runtime = runtime_for(options)
        model = FAMILIES[family]
        trainer = tiny_trainer(model, runtime, lr=LR, batch=BATCH, data=data, eval_batch_size=8)
        runs.append(_trajectory(trainer))
    ref, fast = runs
    gap = (fast - ref).abs()  # the bf16 tolerance of test_fast_path
    assert (gap <= 0.02 + 0.02 * ref.abs()).all(), gap.tolist()


@pytest.mark.parametrize(
    ("momentum", "nesterov", "weight_decay"),
    [(0.9, False, 5e-4), (0.9, True, 1e-4), (0.0, False, 0.0), (0.9, True, 0.0)],
    ids=["momentum-wd", "nesterov-wd", "plain", "nesterov"],
)
def test_the_functional_update_equals_torch_sgd(
    momentum: float, nesterov: bool, weight_decay: float
) -> None:
    from kdecay.train.step import sgd_update

    torch.manual_seed(0)
    params = [torch.randn(5, 3, requires_grad=True), torch.randn(7, requires_grad=True)]
    ref = [p.detach().clone().requires_grad_() for p in params]
    opt = torch.optim.SGD(
        ref, lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
    )
    bufs = [torch.zeros_like(p) for p in params]
    lr = torch.tensor(0.1)
    for step in range(6):  # the LR changes, as a schedule changes it
        grads = [torch.randn_like(p) for p in params]
        for mine, theirs, g in zip(params, ref, grads, strict=True):
            mine.grad, theirs.grad = g.clone(), g.clone()
        lr.fill_(0.1 * 0.7**step)
        opt.param_groups[0]["lr"] = float(lr)
        sgd_update(params, [p.grad for p in params], bufs, lr, momentum, weight_decay, nesterov)
        opt.step()
    for mine, theirs in zip(params, ref, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-7)


def test_the_compiled_step_is_one_graph_that_keeps_its_addresses() -> None:
    """Dynamo traces forward, backward and update as ONE graph with no graph break; the
    gradients are values inside it (no ``.grad`` is accumulated outside the graph); and every
    step, the epoch's partial batch included, updates the same parameter and momentum tensors:
    a CUDA graph of the step never sees a new address."""
    from torch._dynamo.utils import counters

    counters.clear()
    trainer = _trainer("preact_basic", "compiled", backend="eager")  # Dynamo only: fast
    params = list(trainer.model.parameters())
    addresses = []
    for _ in range(2):  # two epochs, each ending with its partial batch
        for loss in epoch_losses(trainer):
            assert torch.isfinite(loss)
            momentum = [trainer.optimizer.state[p]["momentum_buffer"] for p in params]
            addresses.append(tuple(t.data_ptr() for t in [*params, *momentum]))
    assert len(addresses) == 2 * (FULL_BATCHES + 1) and len(set(addresses)) == 1
    assert all(p.grad is None for p in params)
    assert sum(counters["graph_break"].values()) == 0, dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] == 1  # the whole step, once
