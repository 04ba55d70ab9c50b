"""The compiled fused step and the fused step's precision (:mod:`kdecay.train.fused`,
:mod:`kdecay.train.fused_precision`).

* ``compiled``: forward, backward and the per-member SGD update of G = 3 members traced into
  ONE graph with no graph break (torch's own Dynamo counters), over two epochs whose LRs
  change, with the partial batch (run eagerly: never a second graph). Every member follows its
  run alone within ``test_fused``'s tolerance, and the eager fused step within 1e-5 (Dynamo +
  AOTAutograd without Inductor's code generation: the same operators, so the same numbers);
  with Inductor (one family: its compile takes ~30 s here) within 0.005 + 0.5%.
* a fused group stopped after one epoch and stacked again from its members' state (what a
  resume does) goes on exactly as the uninterrupted group.
* bf16: every layer of a fused member (autocast does not reach ``vmap``) outputs the dtype
  its run alone outputs under autocast, and the members' losses follow their runs alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from torch._dynamo.utils import counters

from kdecay.models import build_from_spec
from kdecay.train import Runtime
from kdecay.train.fused import FusedStep
from test_fused import LRS, TOL, _train
from test_step import FAMILIES
from tiny_runs import outside

G = 3


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_compiled_fused_step_is_one_graph_and_follows_eager_and_alone(family: str) -> None:
    counters.clear()
    run = _train(family, form="compiled")
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert counters["stats"]["calls_captured"] > 100  # the whole step was traced, not a piece
    assert outside(run["got"], run["ref"], TOL, TOL).max() <= 0
    eager = _train(family)
    assert (run["got"] - eager["got"]).abs().max() <= 1e-5


def test_the_inductor_compiled_fused_step_follows_the_eager_one() -> None:
    counters.clear()
    compiled = _train("preact_basic", form="compiled", backend="inductor")
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]
    eager = _train("preact_basic")
    # Inductor reorders float sums: the gap grows over the 18 steps (1.5e-3 at a loss of 1.8
    # measured here), far inside the tolerance against runs alone
    assert outside(compiled["got"], eager["got"], 0.005, 0.005).max() <= 0


def _group(form: str) -> FusedStep:
    models = []
    for g in range(G):
        torch.manual_seed(g)
        models.append(build_from_spec(FAMILIES["wide_resnet"], 10))
    runtime = Runtime(torch.device("cpu"), None, False, step=form, compile_backend="aot_eager")
    hyper = {"momentum": 0.9, "weight_decay": 5e-4, "nesterov": True}
    return FusedStep(models, runtime, LRS[0], hyper, full_batch=8)


def _epoch(step: FusedStep, batches: list[Any], lrs: list[float]) -> list[torch.Tensor]:
    step.lr.copy_(torch.tensor(lrs))
    return [step(x, y)[0] for x, y in batches]


def test_a_compiled_group_restacked_mid_way_goes_on_as_the_uninterrupted_one() -> None:
    torch.manual_seed(7)
    batches = [(torch.randn(G, 8, 3, 32, 32), torch.randint(0, 10, (G, 8))) for _ in range(3)]
    batches.append((torch.randn(G, 3, 3, 32, 32), torch.randint(0, 10, (G, 3))))
    whole = _group("compiled")
    ref = _epoch(whole, batches, LRS[0]) + _epoch(whole, batches, LRS[1])
    first = _group("compiled")
    got = _epoch(first, batches, LRS[0])
    models = []  # the members' state as their checkpoints hold it, stacked anew
    for g in range(G):
        model = build_from_spec(FAMILIES["wide_resnet"], 10)
        model.load_state_dict(first.member_state_dict(g))
        models.append(model)
    hyper = {"momentum": 0.9, "weight_decay": 5e-4, "nesterov": True}
    resumed = FusedStep(models, first.runtime, LRS[0], hyper, full_batch=8)
    for mine, saved in zip(resumed.momentum, first.momentum, strict=True):
        mine.copy_(saved)
    got += _epoch(resumed, batches, LRS[1])
    assert torch.equal(torch.stack(got), torch.stack(ref))


def _leaf_dtypes(model: torch.nn.Module, run: Any) -> dict[str, torch.dtype]:
    seen: dict[str, torch.dtype] = {}

    def record(name: str) -> Any:
        def hook(_m: Any, _i: Any, out: torch.Tensor) -> None:  # None: the output unchanged
            seen.setdefault(name, out.dtype)

        return hook

    hooks = [
        m.register_forward_hook(record(name))
        for name, m in model.named_modules()
        if not list(m.children())
    ]
    run()
    for h in hooks:
        h.remove()
    return seen


def _bf16_pair(family: str) -> tuple[list[torch.nn.Module], FusedStep]:
    alone = []
    for g in range(G):
        torch.manual_seed(g)
        alone.append(build_from_spec(FAMILIES[family], 10))
    copies = [build_from_spec(FAMILIES[family], 10) for _ in range(G)]
    for c, a in zip(copies, alone, strict=True):
        c.load_state_dict(a.state_dict())
    runtime = Runtime(torch.device("cpu"), torch.bfloat16, False, step="eager")
    hyper = {"momentum": 0.9, "weight_decay": 5e-4, "nesterov": True}
    return alone, FusedStep(copies, runtime, LRS[0], hyper, full_batch=8)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_fused_member_computes_in_the_dtypes_of_its_run_alone_under_bf16(family: str) -> None:
    alone, fused = _bf16_pair(family)
    torch.manual_seed(3)
    x, y = torch.randn(G, 8, 3, 32, 32), torch.randint(0, 10, (G, 8))

    def run_alone() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            alone[0](x[0])

    want = _leaf_dtypes(alone[0], run_alone)
    got = _leaf_dtypes(fused.base, lambda: fused(x, y))
    assert want and got == want
    assert torch.bfloat16 in want.values()  # the run alone does compute in bf16
    # and the numbers: each member's first losses are its run alone's (bf16 rounding apart)
    losses_fused = torch.stack([fused(x, y)[0] for _ in range(3)])
    fused_first = losses_fused  # steps 2-4 of the fused group (step 1 was the dtype probe)
    ref = []
    for g, model in enumerate(alone):
        opt = torch.optim.SGD(
            model.parameters(), lr=LRS[0][g], momentum=0.9, nesterov=True, weight_decay=5e-4
        )
        per_step = []
        for _ in range(4):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = torch.nn.functional.cross_entropy(model(x[g]).float(), y[g])
            opt.zero_grad()
            loss.backward()
            opt.step()
            per_step.append(loss.detach())
        ref.append(torch.stack(per_step[1:]))
    gap = (fused_first - torch.stack(ref, 1)).abs()
    assert (gap <= 0.05 + 0.05 * torch.stack(ref, 1).abs()).all(), gap.tolist()


def test_bf16_under_the_compiled_fused_step_is_one_graph() -> None:
    _, fused = _bf16_pair("preact_basic")
    fused = FusedStep(
        [build_from_spec(FAMILIES["preact_basic"], 10) for _ in range(G)],
        dataclasses.replace(fused.runtime, step="compiled", compile_backend="aot_eager"),
        LRS[0],
        {"momentum": 0.9, "weight_decay": 5e-4, "nesterov": True},
        full_batch=8,
    )
    counters.clear()
    x, y = torch.randn(G, 8, 3, 32, 32), torch.randint(0, 10, (G, 8))
    losses = [fused(x, y)[0] for _ in range(3)]
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]
    assert all(torch.isfinite(v).all() for v in losses)
