"""Tests for kdecay.models: registry, architectures' sizes and costs, training/eval passes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from kdecay.models import (
    MODEL_NAMES,
    build_from_spec,
    build_model,
    count_params,
    densenet_bc,
    forward_macs,
    preact_resnet,
    wide_resnet,
)
from kdecay.models.densenet import DenseBlock

# Reference sizes (num_classes=10): parameters and multiply-adds of one 3x32x32 image.
EXPECTED = {
    "preact_resnet110": (1.728e6, 0.253e9),  # option-A shortcuts: no projection weights
    "preact_resnet164": (1.70e6, 0.2445e9),  # stride on the first 1x1 conv
    "wrn16_8": (10.96e6, 1.55e9),
    "wrn28_10": (36.48e6, 5.24e9),
    "densenet_bc100_k12": (0.77e6, 0.288e9),
}

# Number of weighted layers (convolutions + the classifier) matching the names' depths.
# WRN depth counts the three 1x1 shortcut convolutions but not the classifier.
EXPECTED_CONVS = {
    "preact_resnet110": 109,  # 1 + 3*18*2 convs; option-A shortcuts have no convolution
    "preact_resnet164": 163 + 3,  # 1 + 3*18*3 convs + 3 projection shortcuts
    "wrn16_8": 16,
    "wrn28_10": 28,
    "densenet_bc100_k12": 99,  # 1 + 3*16*2 + 2 transitions
}

TINY_SPECS = {
    "preact_basic": {"family": "preact_resnet", "depth": 8},
    "preact_bottleneck": {"family": "preact_resnet", "depth": 11, "bottleneck": True},
    "wide_resnet": {"family": "wide_resnet", "depth": 10, "widen_factor": 2, "dropout": 0.3},
    "densenet_bc": {"family": "densenet_bc", "depth": 10, "growth_rate": 4, "dropout": 0.2},
}


@pytest.fixture(scope="module")
def big_models() -> dict[str, nn.Module]:
    """The five registered models, built once for the module."""
    torch.manual_seed(0)
    return {name: build_model(name, num_classes=10) for name in MODEL_NAMES}


@pytest.fixture(scope="module")
def big_stats(big_models: dict[str, nn.Module]) -> dict[str, tuple[int, int]]:
    """(params, MACs) of each registered model."""
    return {name: (count_params(m), forward_macs(m)) for name, m in big_models.items()}


def _n_convs(model: nn.Module) -> int:
    return sum(isinstance(m, nn.Conv2d) for m in model.modules())


# ---------------------------------------------------------------- registry and sizes


def test_model_names() -> None:
    assert isinstance(MODEL_NAMES, tuple)
    assert set(MODEL_NAMES) == set(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_param_count(name: str, big_stats: dict[str, tuple[int, int]]) -> None:
    params, _ = big_stats[name]
    expected, _ = EXPECTED[name]
    assert abs(params - expected) / expected < 0.01, f"{name}: {params} params"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_forward_macs(name: str, big_stats: dict[str, tuple[int, int]]) -> None:
    _, macs = big_stats[name]
    _, expected = EXPECTED[name]
    assert abs(macs - expected) / expected < 0.02, f"{name}: {macs} MACs"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_depth_structure(name: str, big_models: dict[str, nn.Module]) -> None:
    model = big_models[name]
    assert _n_convs(model) == EXPECTED_CONVS[name]
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 1
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_num_classes_changes_only_head(big_models: dict[str, nn.Module]) -> None:
    for name, model10 in big_models.items():
        model100 = build_model(name, num_classes=100)
        sd10, sd100 = model10.state_dict(), model100.state_dict()
        assert sd10.keys() == sd100.keys()
        differing = {k for k in sd10 if sd10[k].shape != sd100[k].shape}
        assert differing == {"fc.weight", "fc.bias"}, name
        assert sd100["fc.weight"].shape == (100, model10.fc.in_features)
        assert count_params(model100) - count_params(model10) == 90 * (model10.fc.in_features + 1)


def test_densenet_channel_plan() -> None:
    model = densenet_bc(100, 12)
    assert model.conv1.out_channels == 24
    assert model.block1.out_channels == 24 + 16 * 12 == 216
    assert model.trans1.conv.out_channels == 108
    assert model.block2.out_channels == 108 + 192 == 300
    assert model.trans2.conv.out_channels == 150
    assert model.block3.out_channels == 150 + 192 == 342
    assert model.fc.in_features == 342


def test_resnet_widths() -> None:
    basic = preact_resnet(20)
    assert basic.fc.in_features == 64
    bottleneck = preact_resnet(29, bottleneck=True)
    assert bottleneck.fc.in_features == 256
    # The first bottleneck unit goes 16 -> 64 channels: projection shortcut at stride 1.
    assert bottleneck.stage1[0].shortcut.out_channels == 64
    assert bottleneck.stage1[1].shortcut is None
    wrn = wide_resnet(16, 8)
    assert [g[0].conv1.out_channels for g in (wrn.group1, wrn.group2, wrn.group3)] == [
        128,
        256,
        512,
    ]
    assert wide_resnet(10, 1).group1[0].shortcut is None


# ------------------------------------------------------------------- counting helpers


def test_count_params_only_trainable() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    assert count_params(model) == 16 + 10
    model[0].weight.requires_grad_(False)
    assert count_params(model) == 4 + 10


def test_forward_macs_linear_and_conv() -> None:
    lin = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 5))
    assert forward_macs(lin) == 3 * 32 * 32 * 5
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert forward_macs(conv) == 8 * 3 * 9 * 32 * 32


def test_forward_macs_restores_state() -> None:
    model = build_from_spec(TINY_SPECS["wide_resnet"])
    model.train()
    model.group1.eval()  # mixed modes must be restored exactly
    before = copy.deepcopy(model.state_dict())
    forward_macs(model)
    assert model.training and not model.group1.training and model.group2.training
    assert all(m.training for m in model.group2.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    model.eval()
    forward_macs(model)
    assert not any(m.training for m in model.modules())


# ----------------------------------------------------------- forward / backward passes


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("spec_name", list(TINY_SPECS))
def test_tiny_train_and_eval(spec_name: str, channels_last: bool) -> None:
    torch.manual_seed(0)
    num_classes = 7
    model = build_from_spec(TINY_SPECS[spec_name], num_classes=num_classes)
    x = torch.randn(4, 3, 32, 32)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    model.train()
    out = model(x)
    assert out.shape == (4, num_classes)
    assert torch.isfinite(out).all()
    out.logsumexp(dim=1).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    model.eval()
    with torch.no_grad():
        out_eval = model(x)
        out_eval2 = model(x)
    assert out_eval.shape == (4, num_classes)
    assert torch.isfinite(out_eval).all()
    assert torch.equal(out_eval, out_eval2)  # eval mode is deterministic (no dropout)


def test_channels_last_matches_contiguous() -> None:
    torch.manual_seed(0)
    model = build_from_spec(TINY_SPECS["densenet_bc"]).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
        out = model_cl(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_dense_block_keeps_channels_last() -> None:
    block = DenseBlock(num_layers=3, in_channels=8, growth_rate=4)
    block = block.to(memory_format=torch.channels_last)
    x = torch.randn(2, 8, 16, 16).contiguous(memory_format=torch.channels_last)
    out = block(x)
    assert out.shape == (2, 8 + 3 * 4, 16, 16)
    assert out.is_contiguous(memory_format=torch.channels_last)
    # also when only the input is channels_last
    out = DenseBlock(num_layers=2, in_channels=8, growth_rate=4)(x)
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow  # torch.compile: minutes with a cold compile cache
@pytest.mark.parametrize("spec_name", ["preact_bottleneck", "wide_resnet", "densenet_bc"])
def test_torch_compile_matches_eager(spec_name: str) -> None:
    torch.manual_seed(0)
    model = build_from_spec(TINY_SPECS[spec_name], num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        compiled = torch.compile(model, fullgraph=True)  # fullgraph: no graph breaks
        out = compiled(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.slow  # torch.compile: minutes with a cold compile cache
def test_torch_compile_train_step_matches_eager() -> None:
    """A compiled train-mode forward + backward gives the eager loss and gradients.

    Uses the ``aot_eager`` backend (Dynamo capture without graph breaks + AOTAutograd
    functionalisation of forward and backward, incl. BN buffer updates) since Inductor's CPU
    code generation for the backward graph is slow on small CI machines; the Inductor forward
    is covered by ``test_torch_compile_matches_eager``.
    """
    torch.manual_seed(0)
    model = build_from_spec(TINY_SPECS["densenet_bc"] | {"dropout": 0.0}).train()
    model_c = copy.deepcopy(model)
    x = torch.randn(4, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 3])
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    compiled = torch.compile(model_c, backend="aot_eager", fullgraph=True)
    loss_c = nn.functional.cross_entropy(compiled(x), y)
    loss_c.backward()
    torch.testing.assert_close(loss_c, loss, rtol=1e-4, atol=1e-5)
    for (name, p), p_c in zip(model.named_parameters(), model_c.parameters(), strict=True):
        torch.testing.assert_close(p_c.grad, p.grad, rtol=1e-3, atol=1e-5, msg=name)
    # BN running statistics were updated identically.
    torch.testing.assert_close(model_c.bn_final.running_mean, model.bn_final.running_mean)


# ------------------------------------------------------------------------- errors


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises((ValueError, KeyError)) as excinfo:
        build_model("resnet9000")
    for name in MODEL_NAMES:
        assert name in str(excinfo.value)


@pytest.mark.parametrize(
    ("builder", "kwargs"),
    [
        (preact_resnet, {"depth": 100}),
        (preact_resnet, {"depth": 62, "bottleneck": True}),
        (preact_resnet, {"depth": 2}),
        (wide_resnet, {"depth": 27, "widen_factor": 10}),
        (wide_resnet, {"depth": 4, "widen_factor": 1}),
        (densenet_bc, {"depth": 99, "growth_rate": 12}),
        (densenet_bc, {"depth": 100.0, "growth_rate": 12}),
    ],
)
def test_bad_depth(builder, kwargs) -> None:
    with pytest.raises(ValueError, match="depth"):
        builder(**kwargs)


@pytest.mark.parametrize(
    ("builder", "kwargs", "arg"),
    [
        (wide_resnet, {"depth": 16, "widen_factor": 0}, "widen_factor"),
        (densenet_bc, {"depth": 100, "growth_rate": -1}, "growth_rate"),
        (densenet_bc, {"depth": 100, "growth_rate": 12, "compression": 0.0}, "compression"),
        (wide_resnet, {"depth": 16, "widen_factor": 8, "dropout": 1.0}, "dropout"),
        (preact_resnet, {"depth": 110, "num_classes": 0}, "num_classes"),
    ],
)
def test_bad_widths(builder, kwargs, arg: str) -> None:
    with pytest.raises(ValueError, match=arg):
        builder(**kwargs)


def test_build_from_spec_name_and_family() -> None:
    model = build_from_spec("densenet_bc100_k12", num_classes=100)
    assert model.fc.out_features == 100
    model = build_from_spec({"family": "wide_resnet", "depth": 10, "widen_factor": 1}, 10)
    assert isinstance(model, nn.Module)
    assert model.fc.out_features == 10


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ({"family": "vgg", "depth": 16}, "preact_resnet"),
        ({"depth": 16}, "family"),
        ({"family": "wide_resnet", "depth": 10, "width": 1}, "widen_factor"),
        ({"family": "wide_resnet", "depth": 10}, "widen_factor"),
        ({"family": "densenet_bc", "depth": 10, "growth_rate": 4, "num_classes": 10}, "num_cl"),
        ({"family": "preact_resnet", "depth": 12}, "depth"),
        ("not_a_model", "wrn28_10"),
        (42, "family"),
    ],
)
def test_build_from_spec_errors(spec, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        build_from_spec(spec, num_classes=10)


def test_base_width_builds_thinner_versions_and_is_validated():
    from kdecay.models import preact_resnet, wide_resnet

    assert count_params(preact_resnet(8, base_width=8)) < count_params(preact_resnet(8)) / 3
    assert count_params(wide_resnet(10, 1, base_width=8)) < count_params(wide_resnet(10, 1)) / 3
    assert count_params(build_model("wrn16_8")) == count_params(wide_resnet(16, 8, base_width=16))
    with pytest.raises(ValueError, match="base_width"):
        preact_resnet(8, base_width=0)
    with pytest.raises(ValueError, match="base_width"):
        wide_resnet(10, 1, base_width=-4)


def test_unit_module_order_fixes_the_seeded_initialisation() -> None:
    """he_init_ draws in module order; bn1, the branch, then the shortcut (as before the
    basic units were merged), so a seed gives the same initial weights as always."""
    from kdecay.models.layers import BasicUnit, BottleneckUnit

    names = [n for n, _ in BasicUnit(4, 8, stride=2, dropout=0.1).named_children()]
    assert names == ["bn1", "conv1", "bn2", "dropout", "conv2", "shortcut"]
    names = [n for n, _ in BottleneckUnit(4, 8, stride=2).named_children()]
    assert names == ["bn1", "conv1", "bn2", "conv2", "bn3", "conv3", "shortcut"]


def test_preact_resnet110_follows_he_et_al_2016_and_fb_resnet_torch() -> None:
    """Option-A shortcuts (1,727,962 parameters, the count of the reference), the first unit
    of every stage sharing its BN-ReLU with the shortcut."""
    from kdecay.models.layers import ZeroPadShortcut

    model = build_model("preact_resnet110")
    assert count_params(model) == 1_727_962
    assert model.stage1[0].preact_shortcut and not model.stage1[1].preact_shortcut
    assert isinstance(model.stage2[0].shortcut, ZeroPadShortcut)
    assert model.stage1[0].shortcut is None  # identity, on the pre-activated input


def test_first_unit_shortcut_carries_the_preactivated_input() -> None:
    """With the residual branch zeroed, a unit returns its shortcut: relu(bn1(x)) for the
    first unit of a stage, x itself elsewhere."""
    from kdecay.models.layers import BasicUnit

    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8)
    for preact in (True, False):
        unit = BasicUnit(4, 4, preact_shortcut=preact).eval()
        torch.nn.init.zeros_(unit.conv2.weight)
        with torch.no_grad():
            out = unit(x)
            expected = torch.relu(unit.bn1(x)) if preact else x
        assert torch.equal(out, expected)


def test_option_a_shortcut_subsamples_and_zero_pads() -> None:
    from kdecay.models.layers import ZeroPadShortcut

    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    y = ZeroPadShortcut(3, 5, 2)(x)
    assert y.shape == (2, 5, 2, 2)
    assert torch.equal(y[:, :3], x[:, :, ::2, ::2]) and not y[:, 3:].any()


def test_preact_resnet164_strides_on_the_first_1x1_conv() -> None:
    model = build_model("preact_resnet164")
    unit = model.stage2[0]
    assert unit.conv1.stride == (2, 2) and unit.conv2.stride == (1, 1)
    assert forward_macs(model) == pytest.approx(244.5e6, rel=0.002)


@pytest.mark.parametrize(
    ("name", "mode", "bn_ones"),
    [("wrn16_8", "fan_in", False), ("preact_resnet110", "fan_out", True),
     ("densenet_bc100_k12", "fan_out", True)],
)  # fmt: skip
def test_initialisation_follows_each_reference_code(name: str, mode: str, bn_ones: bool) -> None:
    """WRN's MSRinit uses fan-in and keeps Torch's BN reset (weights uniform in (0, 1));
    fb.resnet.torch / resnet-pre-act.lua and DenseNet's code use fan-out and BN weight 1."""
    torch.manual_seed(0)
    model = build_model(name)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    conv = max(  # fan-in and fan-out differ (by 2x) where a stage widens
        (m for m in convs if m.in_channels != m.out_channels), key=lambda m: m.weight.numel()
    )
    k = conv.kernel_size[0] * conv.kernel_size[1]
    fan = k * (conv.in_channels if mode == "fan_in" else conv.out_channels)
    assert conv.weight.std().item() == pytest.approx((2 / fan) ** 0.5, rel=0.05)
    weights = torch.cat([m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
    if bn_ones:
        assert (weights == 1).all()
    else:
        assert weights.min() >= 0 and weights.max() <= 1 and 0.45 < weights.mean() < 0.55
