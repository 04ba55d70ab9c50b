"""One SGD training step in the three forms of ``train.step``: eager, compiled, graph.

All three compute the same arithmetic: forward under the runtime's autocast, mean
cross-entropy, backward, one SGD update at the learning rate of the current iteration, and the
batch's misclassified count.

* ``eager``: PyTorch's op-by-op execution; SGD fused on CUDA, and on the CPU torch's default
  (a loop over the parameters: ``foreach`` is a CUDA default); the LR is a
  Python float in the optimizer's param group.
* ``compiled``: ``torch.compile(dynamic=False)`` of ONE function, :meth:`TrainStep._whole_step`:
  forward under autocast, mean cross-entropy, the gradients by ``torch.func.grad_and_value``
  over ``functional_call`` of the model (values inside the graph: no ``.grad`` is accumulated
  outside it, no AccumulateGrad kernel per parameter), and the SGD update in place, written as
  foreach tensor ops (:func:`sgd_update`: torch's SGD arithmetic without its ``step()``
  machinery). One graph per step, no graph break (tests/test_step.py counts them). The LR
  lives in a 0-dim tensor on the device that the schedule writes in place (``fill_``), so a
  new LR never recompiles and never syncs. Inductor folds the autocast weight casts, the BN
  statistics updates and the update into its kernels.
* ``graph``: the compiled step with ``mode="reduce-overhead"``: recorded once as a CUDA graph
  and replayed (CUDA only); the tensors it updates in place (parameters, BN buffers, momentum,
  LR) are marked static addresses, so the CUDA graph is not skipped for mutating its inputs.

Static shapes and static addresses: the step is compiled for the full batch only; an epoch's
last, partial batch (80 images at batch 128 on CIFAR) runs the same function eagerly, so it
never adds a dynamic-shape graph. The parameters, buffers and momentum are updated in place,
never reallocated, so every step sees the same tensors. The momentum buffers are created as
zeros before the first step (``0 * momentum + g = g`` exactly, as SGD's own first step), so the
step is traced once, not twice. A process holds one compiled step at a time: building one
drops the graphs compiled before (``torch.compiler.reset``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad_and_value

from kdecay.train.runtime import Runtime

__all__ = ["TrainStep", "functional_sgd_step", "sgd_update"]

StepOut = tuple[torch.Tensor, torch.Tensor]


def _make_optimizer(
    model: torch.nn.Module, runtime: Runtime, lr: float, hyper: dict[str, Any]
) -> torch.optim.SGD:
    """SGD of the recipe; a device-tensor LR for the compiled forms."""
    if runtime.step == "eager":
        fused = True if runtime.cuda else None
        return torch.optim.SGD(model.parameters(), lr=lr, fused=fused, foreach=None, **hyper)
    lr_tensor = torch.tensor(lr, dtype=torch.float32, device=runtime.device)
    return torch.optim.SGD(model.parameters(), lr=lr_tensor, foreach=True, **hyper)


def sgd_update(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    bufs: list[torch.Tensor],
    lr: torch.Tensor | list[torch.Tensor],
    momentum: float,
    weight_decay: float,
    nesterov: bool,
) -> None:
    """``torch.optim.SGD``'s update (dampening 0, no maximize) in foreach ops, as its foreach
    path computes it with a tensor LR:

        g = grad + weight_decay * p;  b = momentum * b + g;  d = g + momentum * b (Nesterov)
        or d = b;  p = p - lr * d

    (``b`` starts at zeros, which equals SGD's first-step ``b = g``). ``lr``: one 0-dim tensor,
    or one tensor per parameter that broadcasts over it (the fused step's per-member LRs).
    Pure tensor operations: Dynamo traces it whole, with no graph break. ``grads``: the
    parameters' gradients (``p.grad``, or those ``torch.func.grad`` returns)."""
    with torch.no_grad():
        if weight_decay:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
        if momentum:
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_add_(bufs, grads)
            grads = torch._foreach_add(grads, bufs, alpha=momentum) if nesterov else bufs
        torch._foreach_add_(params, torch._foreach_mul(grads, lr), alpha=-1)


def functional_sgd_step(
    loss_of: Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], Any],
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    bufs: list[torch.Tensor],
    lr: torch.Tensor | list[torch.Tensor],
    hyper: tuple[float, float, bool],
) -> Any:
    """One whole SGD step as tensor functions: ``loss_of(params, buffers) -> (loss, aux)``
    differentiated by ``torch.func.grad_and_value`` (the gradients are values, nothing is
    accumulated in ``.grad``; ``buffers``, the BN statistics, are passed in and updated in
    place), then :func:`sgd_update` of ``params`` and ``bufs`` in place; returns ``aux``.
    Traced by Dynamo into one graph, no break."""
    grads, (_, aux) = grad_and_value(loss_of, has_aux=True)(params, buffers)
    sgd_update(list(params.values()), list(grads.values()), bufs, lr, *hyper)
    return aux


class TrainStep:
    """Callable ``step(x, y) -> (loss, misclassified)`` that also updates the weights.

    Args:
        model: the network, already on the runtime's device and memory format.
        runtime: device, autocast and ``step`` form (``eager``, ``compiled``, ``graph``).
        lr: initial learning rate (the schedule overwrites it every iteration).
        hyper: the remaining SGD arguments (momentum, nesterov, weight_decay).
        full_batch: the batch size the compiled training step is specialised to.
        eval_batch: the batch size the compiled evaluation forward is specialised to.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        runtime: Runtime,
        lr: float,
        hyper: dict[str, Any],
        full_batch: int,
        eval_batch: int,
    ) -> None:
        self.model, self.runtime = model, runtime
        self.full_batch, self.eval_batch = int(full_batch), int(eval_batch)
        self.optimizer = _make_optimizer(model, runtime, lr, hyper)
        self.compiled = runtime.step != "eager"
        self._state_ready = False  # momentum made once, not per step (a host-side loop)
        self._whole: Callable[..., StepOut] = self._whole_step
        self._logits: Callable[[torch.Tensor], torch.Tensor] = self._eval_logits
        if self.compiled:
            # Dynamo keys its cache on the code of these methods and guards on ``self``: beyond
            # 8 instances it would silently run eager. One compiled step per process at a time.
            torch.compiler.reset()
            mode = "reduce-overhead" if runtime.step == "graph" else None
            backend = runtime.compile_backend
            compile_kw: dict[str, Any] = {"dynamic": False, "backend": backend}
            if backend == "inductor":
                compile_kw["mode"] = mode
            group = self.optimizer.param_groups[0]
            self._params = {n: p for n, p in model.named_parameters() if p.requires_grad}
            self._buffers = dict(model.named_buffers())
            self._bufs: list[torch.Tensor] = []
            self._hyper = (group["momentum"], group["weight_decay"], group["nesterov"])
            self._whole = torch.compile(self._whole_step, **compile_kw)
            self._logits = torch.compile(self._eval_logits, **compile_kw)

    def _forward_loss(self, x: torch.Tensor, y: torch.Tensor) -> StepOut:
        with self.runtime.autocast():
            out = self.model(x)
            loss = F.cross_entropy(out, y)
        return loss, (out.detach().argmax(1) != y).sum()

    def _whole_step(
        self,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        bufs: list[torch.Tensor],
        lr: torch.Tensor,
        x: torch.Tensor,
        y: torch.Tensor,
    ) -> StepOut:
        """Forward, backward (``torch.func.grad_and_value``: the gradients are values of the
        graph, no ``.grad`` is accumulated outside it) and the SGD update in place, as one
        function: compiled, one graph per step."""

        def loss_of(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> Any:
            with self.runtime.autocast():
                out = functional_call(self.model, (p, b), (x,))
                loss = F.cross_entropy(out, y)
            return loss, (loss.detach(), (out.detach().argmax(1) != y).sum())

        return functional_sgd_step(loss_of, params, buffers, bufs, lr, self._hyper)

    def _init_state(self) -> None:
        """Zero momentum buffers where SGD would create them lazily (compiled forms only); the
        update reads them from the optimizer's state, so checkpoints keep their format. In
        ``graph``, the tensors the step updates in place are static addresses."""
        if self._hyper[0]:
            for p in self._params.values():
                state = self.optimizer.state[p]
                if state.get("momentum_buffer") is None:
                    state["momentum_buffer"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format
                    )
            self._bufs = [self.optimizer.state[p]["momentum_buffer"] for p in self._params.values()]
        if self.runtime.step == "graph":
            lr = self.optimizer.param_groups[0]["lr"]
            for t in [*self._params.values(), *self._buffers.values(), *self._bufs, lr]:
                torch._dynamo.mark_static_address(t)
        # the update bypasses optimizer.step(), whose wrapper tells torch's LRScheduler that
        # the optimizer stepped (else it warns that the schedule skips a value: ours does not,
        # LRSchedule computes the LR from its own counter)
        self.optimizer._opt_called = True  # type: ignore[attr-defined]

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> StepOut:
        """One step on the batch ``(x, y)``; returns detached (loss, misclassified count)."""
        if not self.compiled:
            loss, wrong = self._forward_loss(x, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            return loss.detach(), wrong
        if not self._state_ready:
            self._init_state()
            self._state_ready = True
        # the full batch runs the compiled step; an epoch's partial batch the same function
        # eagerly (never a second, dynamic-shape graph)
        whole = self._whole if len(y) == self.full_batch else self._whole_step
        lr = self.optimizer.param_groups[0]["lr"]
        return whole(self._params, self._buffers, self._bufs, lr, x, y)

    def _eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        with self.runtime.autocast():
            return self.model(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluation logits of ``x`` under the runtime's autocast (no_grad and eval mode are
        the caller's); compiled for the full evaluation batch, eager for a partial one."""
        return (self._logits if len(x) == self.eval_batch else self._eval_logits)(x)

    def optimizer_kind(self) -> str:
        """How the SGD update runs: ``SGD fused``/``SGD foreach`` (eager) or compiled."""
        if self.compiled:
            return f"SGD (foreach ops), torch.compile ({self.runtime.step}), LR in a device tensor"
        return "SGD fused" if self.runtime.cuda else "SGD (PyTorch's CPU default)"

    def lr_tensor(self) -> torch.Tensor | None:
        """The device tensor holding the LR (compiled forms), else None."""
        lr = self.optimizer.param_groups[0]["lr"]
        return lr if isinstance(lr, torch.Tensor) else None

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        """Load an optimizer state (saved by any form) keeping this form's LR representation:
        the compiled forms keep writing the same device tensor."""
        lr_tensor = self.lr_tensor()
        self.optimizer.load_state_dict(state)
        self._state_ready = False  # the loaded state may lack buffers
        for group in self.optimizer.param_groups:
            value = float(group["lr"])
            if lr_tensor is None:
                group["lr"] = value
            else:
                lr_tensor.fill_(value)
                group["lr"] = lr_tensor
