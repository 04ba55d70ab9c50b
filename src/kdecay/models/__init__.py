"""CIFAR networks used in the k-decay experiments (arXiv:2004.05909), with a name registry.

Registered models (``num_classes=10`` figures, MACs of one 3x32x32 image):

===================== ================================================= ======= ========
name                  architecture                                      params  MACs
===================== ================================================= ======= ========
``preact_resnet110``  pre-act ResNet-110, basic units (He et al. 2016)  1.73M   0.253G
``preact_resnet164``  pre-act ResNet-164, bottlenecks (He et al. 2016)  1.70M   0.2445G
``wrn16_8``           WRN-16-8 (Zagoruyko & Komodakis 2016)             10.96M  1.55G
``wrn28_10``          WRN-28-10 (Zagoruyko & Komodakis 2016)            36.48M  5.24G
``densenet_bc100_k12`` DenseNet-BC-100, k = 12 (Huang et al. 2017)      0.77M   0.288G
===================== ================================================= ======= ========
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from kdecay.models.counting import count_params, forward_macs
from kdecay.models.densenet import DenseNetBC, densenet_bc
from kdecay.models.preact_resnet import PreActResNet, preact_resnet
from kdecay.models.wide_resnet import WideResNet, wide_resnet

__all__ = [
    "FAMILIES",
    "MODEL_NAMES",
    "DenseNetBC",
    "PreActResNet",
    "WideResNet",
    "build_from_spec",
    "build_model",
    "count_params",
    "densenet_bc",
    "forward_macs",
    "preact_resnet",
    "wide_resnet",
]

_REGISTRY: dict[str, tuple[Callable[..., nn.Module], dict[str, Any]]] = {
    "preact_resnet110": (preact_resnet, {"depth": 110, "bottleneck": False}),
    "preact_resnet164": (preact_resnet, {"depth": 164, "bottleneck": True}),
    "wrn16_8": (wide_resnet, {"depth": 16, "widen_factor": 8}),
    "wrn28_10": (wide_resnet, {"depth": 28, "widen_factor": 10}),
    "densenet_bc100_k12": (densenet_bc, {"depth": 100, "growth_rate": 12}),
}

MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)
"""Names accepted by :func:`build_model`."""

FAMILIES: dict[str, Callable[..., nn.Module]] = {
    "preact_resnet": preact_resnet,
    "wide_resnet": wide_resnet,
    "densenet_bc": densenet_bc,
}
"""Parametric builders accepted as ``spec["family"]`` by :func:`build_from_spec`."""


def build_model(name: str, num_classes: int = 10) -> nn.Module:
    """Build the registered model ``name`` (one of :data:`MODEL_NAMES`) for ``num_classes``.

    Raises:
        ValueError: if ``name`` is not registered (the message lists the known names) or
            ``num_classes`` is not a positive int.
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown model name {name!r}; known names: {', '.join(MODEL_NAMES)}")
    builder, kwargs = _REGISTRY[name]
    return builder(num_classes=num_classes, **kwargs)


def _family_params(builder: Callable[..., nn.Module]) -> tuple[list[str], list[str]]:
    """(all keyword names except ``num_classes``, required ones) of a family builder."""
    params = [p for p in inspect.signature(builder).parameters.values() if p.name != "num_classes"]
    required = [p.name for p in params if p.default is inspect.Parameter.empty]
    return [p.name for p in params], required


def build_from_spec(spec: str | Mapping[str, Any], num_classes: int = 10) -> nn.Module:
    """Build a model from a registry name or a family spec.

    ``spec`` is either a name from :data:`MODEL_NAMES` or a mapping
    ``{"family": <one of FAMILIES>, **builder_kwargs}``, for example
    ``{"family": "wide_resnet", "depth": 10, "widen_factor": 1}``,
    ``{"family": "preact_resnet", "depth": 11, "bottleneck": True}`` or
    ``{"family": "densenet_bc", "depth": 10, "growth_rate": 4}``.  ``num_classes`` is given
    separately, never inside the spec.

    Raises:
        ValueError: unknown name or family, unknown / missing keys (the message lists the
            allowed ones), or invalid values (raised by the family builder).
    """
    if isinstance(spec, str):
        return build_model(spec, num_classes=num_classes)
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"model spec must be a model name ({', '.join(MODEL_NAMES)}) or a mapping with a "
            f"'family' key, got {type(spec).__name__}"
        )
    family = spec.get("family")
    if family not in FAMILIES:
        raise ValueError(
            f"unknown model family {family!r} in spec; allowed families: {', '.join(FAMILIES)}"
        )
    builder = FAMILIES[family]
    allowed, required = _family_params(builder)
    kwargs = {k: v for k, v in spec.items() if k != "family"}
    unknown = sorted(str(k) for k in kwargs if k not in allowed)
    if unknown:
        hint = " (pass num_classes separately)" if "num_classes" in unknown else ""
        raise ValueError(
            f"unknown key(s) {', '.join(unknown)} for model family {family!r}{hint}; "
            f"allowed keys: family, {', '.join(allowed)}"
        )
    missing = [k for k in required if k not in kwargs]
    if missing:
        raise ValueError(
            f"missing key(s) {', '.join(missing)} for model family {family!r}; "
            f"required keys: family, {', '.join(required)}"
        )
    return builder(num_classes=num_classes, **kwargs)
