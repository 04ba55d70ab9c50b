"""G runs of one architecture trained as one network: the horizontally fused SGD step.

The runs of one row differ only in their learning-rate schedule and seed (same architecture,
batch size, data, optimizer settings). Their G models are stacked (``torch.func``'s
``stack_module_state``: every parameter and buffer gets a leading member axis) and run under
``torch.func.vmap`` of ``functional_call``: each kernel does the work of G members at the
launch cost of one (HFTA, Wang et al., MLSys 2021, fuse such runs with hand-written fused
operators; ``vmap`` derives the same batched operators from the plain model). Member ``g``
keeps what makes it its own run:

* its batch: ``x[g]``, ``y[g]`` from its own loader (own data order, crops and flips);
* its forward, loss and batch norm statistics: ``vmap`` maps every operation over the member
  axis, batch norm's running mean and variance included (the stacked buffers are updated in
  place, member by member), so nothing mixes members;
* its gradient: the loss is ``sum_g loss_g``, and ``d(sum_g loss_g)/d(theta_g)`` is exactly
  member ``g``'s own gradient;
* its precision: the dtypes its run alone computes in under bf16 autocast
  (:mod:`kdecay.train.fused_precision`: autocast does not reach ``vmap``);
* its learning rate: ``lr[g]`` of a ``[G]`` tensor on the device, which the caller writes
  every iteration; the update is torch's SGD (:func:`kdecay.train.step.sgd_update`) with that
  LR broadcast over each member's slice.

A member whose loss turns NaN/inf stays NaN alone: no operation reduces over the member axis.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from kdecay.data.loader import GpuLoader
from kdecay.train.fused_precision import cast_like_autocast
from kdecay.train.runtime import Runtime
from kdecay.train.step import functional_sgd_step

__all__ = ["FusedLoader", "FusedStep"]

FusedOut = tuple[torch.Tensor, torch.Tensor]
"""Per member: (loss ``[G]``, misclassified count ``[G]``)."""


class FusedStep:
    """Callable ``step(x, y) -> (loss[G], misclassified[G])`` over G stacked models, which
    also applies each member's SGD update at its own learning rate (``self.lr[g]``).

    The whole step is one function of tensors (:meth:`_step`): ``torch.func.grad_and_value``
    of the summed member losses under ``vmap`` of ``functional_call``, then
    :func:`~kdecay.train.step.sgd_update` in place with the per-member LR. ``runtime.step``
    chooses how it runs, as for a run alone:

    * ``eager``: called as it is (``vmap`` batches each operation over the members);
    * ``compiled``: ``torch.compile(dynamic=False)`` of that function, traced once into one
      graph (forward, backward and update; 0 graph breaks). The LR lives in a ``[G]`` device
      tensor written in place, so a new LR (schedule, warm-up, milestones) never recompiles;
      an epoch's partial batch runs the same function eagerly, never a second graph;
    * ``graph``: the compiled function with ``mode="reduce-overhead"`` (CUDA graphs); the
      stacked parameters, buffers, momentum and LR are marked static addresses, the tensors
      it updates in place at every step.

    Args:
        models: the G members' plain models (same architecture), already initialised each
            from its own seed; their weights are copied into the stacked state.
        runtime: device, autocast dtype (applied by :func:`cast_like_autocast`, autocast does
            not reach ``vmap``) and step form.
        lrs: the members' initial learning rates.
        hyper: the shared SGD arguments (momentum, nesterov, weight_decay).
        full_batch: the batch size the compiled step is specialised to (default: the first
            batch's).
    """

    def __init__(
        self,
        models: Sequence[torch.nn.Module],
        runtime: Runtime,
        lrs: Sequence[float],
        hyper: dict[str, Any],
        full_batch: int | None = None,
    ) -> None:
        if len(models) != len(lrs) or not models:
            raise ValueError(f"{len(models)} models but {len(lrs)} learning rates")
        self.runtime, self.members, self.full_batch = runtime, len(models), full_batch
        device = runtime.device
        params, buffers = stack_module_state([m.to(device) for m in models])
        self.params = {k: v.detach() for k, v in params.items()}
        self.buffers = buffers
        base = copy.deepcopy(models[0]).to("meta")  # the architecture, no storage
        self.base = cast_like_autocast(base, runtime.amp_dtype)
        self.lr = torch.tensor(list(lrs), dtype=torch.float32, device=device)
        self._hyper = (float(hyper["momentum"]), float(hyper["weight_decay"]), hyper["nesterov"])
        self.momentum = [torch.zeros_like(p) for p in self.params.values()]
        self._compiled = self._step
        if runtime.step != "eager":
            self._compiled = self._compile()

    def _compile(self) -> Any:
        """The step compiled once (one compiled object per process, as for a run alone)."""
        torch.compiler.reset()
        kw: dict[str, Any] = {"dynamic": False, "backend": self.runtime.compile_backend}
        if self.runtime.compile_backend == "inductor" and self.runtime.step == "graph":
            kw["mode"] = "reduce-overhead"
        if self.runtime.step == "graph":
            state = [*self.params.values(), *self.buffers.values(), *self.momentum, self.lr]
            for t in state:
                torch._dynamo.mark_static_address(t)
        return torch.compile(self._step, **kw)

    def _member_loss(
        self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: Any, y: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = functional_call(self.base, (params, buffers), (x,))
        return F.cross_entropy(out.float(), y), (out.detach().argmax(1) != y).sum()

    def _step(
        self,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        momentum: list[torch.Tensor],
        lr: torch.Tensor,
        x: torch.Tensor,
        y: torch.Tensor,
    ) -> FusedOut:
        """Forward, backward and SGD update of every member: ``d(sum_g loss_g)/d(theta_g)``
        is member ``g``'s own gradient; the update writes ``params`` and ``momentum``."""

        def total(
            p: dict[str, torch.Tensor], b: dict[str, torch.Tensor]
        ) -> tuple[torch.Tensor, FusedOut]:
            loss, wrong = vmap(self._member_loss)(p, b, x, y)  # b: BN statistics, in place
            return loss.sum(), (loss.detach(), wrong)

        lr_views = [lr.view(-1, *([1] * (p.dim() - 1))) for p in params.values()]
        return functional_sgd_step(total, params, buffers, momentum, lr_views, self._hyper)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> FusedOut:
        """One step on ``x [G, B, C, H, W]``, ``y [G, B]``; returns detached per-member
        (loss, misclassified count)."""
        self.base.train()
        if self.full_batch is None:
            self.full_batch = y.shape[1]
        step = self._compiled if y.shape[1] == self.full_batch else self._step
        return step(self.params, self.buffers, self.momentum, self.lr, x, y)

    def _member_logits(
        self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: Any
    ) -> torch.Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluation logits ``[G, N, classes]`` of the same images ``x [N, C, H, W]`` under
        every member (eval mode: running statistics; eager: evaluation is a small share)."""
        self.base.eval()
        return vmap(self._member_logits, in_dims=(0, 0, None))(self.params, self.buffers, x)

    def member_state_dict(self, g: int) -> dict[str, torch.Tensor]:
        """Member ``g``'s weights and buffers, the ``state_dict`` of its plain model."""
        state = {k: v[g].clone() for k, v in self.params.items()}
        return state | {k: v[g].clone() for k, v in self.buffers.items()}


class FusedLoader:
    """The G members' own loaders in step: yields ``(x [G, B, ...], y [G, B])``, member
    ``g``'s batch from loader ``g`` (same size, same number of batches: one training set)."""

    def __init__(self, loaders: Sequence[GpuLoader]) -> None:
        sizes = {(loader.num_samples, loader.batch_size) for loader in loaders}
        if len(sizes) != 1:
            raise ValueError(f"fused loaders must share set and batch size, got {sizes}")
        self.loaders = list(loaders)

    def __len__(self) -> int:
        return len(self.loaders[0])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batches in zip(*self.loaders, strict=True):
            yield torch.stack([x for x, _ in batches]), torch.stack([y for _, y in batches])
