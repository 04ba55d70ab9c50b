"""The fused step (:mod:`kdecay.train.fused`): G runs of one architecture as one network give
each member the trajectory it has when trained alone.

Each family's tiny model (as in ``test_step.py``) is trained as G = 3 members, each from its
own initial weights, with its own loader (own order, crops and flips) and its own learning
rate, for 2 epochs of 8 full batches of 16 plus a partial batch of 5, the LRs changed after
the first epoch; the same three runs are trained alone through the project's eager Trainer
step on the same batches. Tolerance at every step (``test_step.py``'s, for the same reason:
the fused update is foreach ops with a tensor LR, eager CPU SGD a per-tensor loop):

    |loss_fused - loss_alone| <= 0.01 + 0.01 * |loss_alone|
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from kdecay.models import build_from_spec
from kdecay.train import Runtime, Trainer
from kdecay.train.fused import FusedLoader, FusedStep
from test_step import BATCH, FAMILIES, FULL_BATCHES, PARTIAL
from tiny_runs import learnable_data, outside, tiny_trainer

G, EPOCHS = 3, 2
LRS = [[0.02, 0.01, 0.03], [0.01, 0.005, 0.002]]  # per epoch, per member
TOL = 0.01


def _members(family: str) -> list[Trainer]:
    """The G runs alone: weights from seed g, loader seed 10 + g, eager CPU step."""
    runtime = Runtime(torch.device("cpu"), None, False, step="eager")
    data = learnable_data(BATCH * FULL_BATCHES + PARTIAL, n_test=12)
    return [
        tiny_trainer(
            FAMILIES[family],
            runtime,
            lr=LRS[0][g],
            batch=BATCH,
            data=data,
            seed=g,
            run_seed=10 + g,
            eval_batch_size=8,
        )
        for g in range(G)
    ]


def _fused(trainers: list[Trainer], form: str = "eager", backend: str = "aot_eager") -> FusedStep:
    spec = trainers[0].spec
    hyper = spec.sgd_hyper()
    models = []
    for t in trainers:  # the members' own initial weights, in plain models of their own
        model = build_from_spec(spec.model, spec.num_classes)
        model.load_state_dict(t.model.state_dict())
        models.append(model)
    runtime = dataclasses.replace(trainers[0].runtime, step=form, compile_backend=backend)
    return FusedStep(models, runtime, LRS[0], hyper, full_batch=BATCH)


def _train(
    family: str, nan_member: int | None = None, form: str = "eager", backend: str = "aot_eager"
) -> dict[str, Any]:
    """Both ways, step by step on the same batches; the losses ``[steps, G]`` of each. The
    fused step in ``form`` (eager, or compiled with ``backend``)."""
    alone, fused_alone = _members(family), _members(family)  # the second: fused's loaders
    fused = _fused(alone, form, backend)
    loader = FusedLoader([t.train_loader for t in fused_alone])
    ref, got = [], []
    for epoch in range(EPOCHS):
        fused.lr.copy_(torch.tensor(LRS[epoch]))
        if nan_member is not None:
            fused.lr[nan_member] = 1e9  # drives that member to inf/NaN at once
        for t, lr in zip(alone, LRS[epoch], strict=True):
            t.optimizer.param_groups[0]["lr"] = lr
            t.model.train()
        for (x, y), *batches in zip(loader, *(t.train_loader for t in alone), strict=True):
            for g, (xg, yg) in enumerate(batches):  # each member's own batch, both ways
                assert torch.equal(x[g], xg) and torch.equal(y[g], yg)
            steps = zip(alone, batches, strict=True)
            ref.append(torch.stack([t.step(xg, yg)[0] for t, (xg, yg) in steps]))
            got.append(fused(x, y)[0])
    return {"alone": alone, "fused": fused, "ref": torch.stack(ref), "got": torch.stack(got)}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_fused_member_follows_its_run_alone(family: str) -> None:
    run = _train(family)
    assert run["got"].shape == (EPOCHS * (FULL_BATCHES + 1), G)
    excess = outside(run["got"], run["ref"], TOL, TOL)
    assert excess.max() <= 0, f"{family}: max excess {excess.max():.4g}"
    # the members really differ (own weights, data and LR): the test compares G runs, not one
    assert (run["ref"][:, 0] - run["ref"][:, 1]).abs().max() > 10 * TOL
    # evaluation: member g's logits are its run's, and its split weights in the plain model
    # give exactly the fused logits
    x = next(iter(run["alone"][0].test_loader))[0]
    fused_logits = run["fused"].logits(x)
    plain = build_from_spec(run["alone"][0].spec.model, 10).eval()
    for g, t in enumerate(run["alone"]):
        t.model.eval()
        with torch.no_grad():
            assert torch.allclose(fused_logits[g], t.model(x), atol=0.05, rtol=0.05)
            plain.load_state_dict(run["fused"].member_state_dict(g))
            assert torch.allclose(fused_logits[g], plain(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["preact_basic", "densenet_bc"])
def test_a_diverging_member_leaves_the_others_untouched(family: str) -> None:
    normal, broken = _train(family), _train(family, nan_member=1)
    assert not torch.isfinite(broken["got"][1:, 1]).all()  # member 1 diverged
    for g in (0, 2):  # bit for bit what they were beside a healthy member 1
        assert torch.equal(broken["got"][:, g], normal["got"][:, g]), g
