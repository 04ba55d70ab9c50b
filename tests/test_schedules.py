"""The k-decay schedules: formulas, edge values, monotonicity, validation, torch adapter."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdecay.schedules import (
    LRSchedule,
    cosine,
    exponential,
    kdecay_factor,
    poly,
    sgdr,
    step,
    warmup,
)

lrs = st.floats(min_value=1e-4, max_value=1.0)
ks = st.floats(min_value=0.1, max_value=8.0)
totals = st.integers(min_value=1, max_value=100_000)
powers = st.floats(min_value=0.1, max_value=5.0)
fracs = st.floats(min_value=0.0, max_value=1.0)


@given(lr0=lrs, frac_end=fracs, power=powers, total=totals, u=fracs)
def test_k1_poly_is_plain_polynomial(lr0, frac_end, power, total, u):
    lr_end, t = lr0 * frac_end, u * total
    expected = (lr0 - lr_end) * (1 - t / total) ** power + lr_end
    assert poly(lr0, lr_end, power, 1.0, total)(t) == pytest.approx(expected, rel=1e-12, abs=0)


@given(lr0=lrs, frac_end=fracs, total=totals, u=fracs)
def test_k1_cosine_is_plain_cosine(lr0, frac_end, total, u):
    lr_end, t = lr0 * frac_end, u * total
    expected = lr_end + (lr0 - lr_end) * (1 + math.cos(math.pi * t / total)) / 2
    assert cosine(lr0, lr_end, 1.0, total)(t) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@given(lr0=lrs, frac_end=fracs, rate=st.floats(0, 1e-2), total=totals, u=fracs)
def test_k1_exponential_is_plain_exponential(lr0, frac_end, rate, total, u):
    lr_end, t = lr0 * frac_end, u * total
    expected = lr_end + (lr0 - lr_end) * math.exp(-rate * t)
    got = exponential(lr0, lr_end, rate, 1.0, total)(t)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-15)


@given(lr0=lrs, frac_end=fracs, power=powers, k=ks, total=totals)
def test_endpoints(lr0, frac_end, power, k, total):
    lr_end = lr0 * frac_end
    for f in (poly(lr0, lr_end, power, k, total), cosine(lr0, lr_end, k, total)):
        assert f(0) == pytest.approx(lr0, rel=1e-12)
        assert f(total) == pytest.approx(lr_end, rel=1e-12, abs=1e-15)
        assert f(total + 17) == f(total)  # beyond T the LR stays at its final value
    assert exponential(lr0, lr_end, 1e-3, k, total)(0) == pytest.approx(lr0)


def _grid(total: int, n: int = 64) -> list[float]:
    return [total * i / n for i in range(n + 1)]


@settings(max_examples=50)
@given(lr0=lrs, frac_end=fracs, power=powers, k=ks, total=totals)
def test_monotone_non_increasing(lr0, frac_end, power, k, total):
    lr_end = lr0 * frac_end
    for f in (
        poly(lr0, lr_end, power, k, total),
        cosine(lr0, lr_end, k, total),
        exponential(lr0, lr_end, 1e-3, k, total),
    ):
        values = [f(t) for t in _grid(total)]
        assert all(b <= a + 1e-15 for a, b in itertools.pairwise(values))


@settings(max_examples=50)
@given(lr0=lrs, frac_end=fracs, power=powers, k=st.floats(1.0, 8.0), total=totals, u=fracs)
def test_k_above_one_keeps_the_rate_higher(lr0, frac_end, power, k, total, u):
    """The paper's point: for k > 1 the LR is never below the k = 1 LR at the same t."""
    lr_end, t = lr0 * frac_end, u * total
    assert poly(lr0, lr_end, power, k, total)(t) >= poly(lr0, lr_end, power, 1.0, total)(t) - 1e-15
    assert cosine(lr0, lr_end, k, total)(t) >= cosine(lr0, lr_end, 1.0, total)(t) - 1e-15
    rate = 1e-3
    assert (
        exponential(lr0, lr_end, rate, k, total)(t)
        >= exponential(lr0, lr_end, rate, 1.0, total)(t) - 1e-15
    )


def test_matches_timm_k_decay_formula_by_hand():
    """timm PolyLRScheduler: lr_min + (lr_max - lr_min) * (1 - t^k / T^k) ** power;
    CosineLRScheduler: lr_min + 0.5 (lr_max - lr_min) (1 + cos(pi t^k / T^k)). Hand values."""
    # (1 - 5^3/10^3)^2 * 0.1 = 0.875^2 * 0.1
    assert poly(0.1, 0.0, 2.0, 3.0, 10)(5) == pytest.approx(0.0765625, rel=1e-12)
    # 0.01 + 0.09 * (1 + cos(pi/4)) / 2
    assert cosine(0.1, 0.01, 2.0, 10)(5) == pytest.approx(0.0868198051533946, rel=1e-12)
    # poly with lr_min: 0.001 + 0.099 * (1 - (3/4)^1.5)^1 = 0.001 + 0.099 * 0.350480947161671
    assert poly(0.1, 0.001, 1.0, 1.5, 4)(3) == pytest.approx(0.035697613769005, rel=1e-9)


def test_kdecay_factor():
    assert kdecay_factor(5, 10, 2) == 0.25
    assert kdecay_factor(20, 10, 2) == 1.0
    assert kdecay_factor(-1, 10, 2) == 0.0


def test_step_schedule_he_et_al():
    f = warmup(step(0.1, milestones=[32000, 48000], gamma=0.1), 400, 0.01)
    assert f(0) == f(399) == 0.01
    assert f(400) == f(31999) == 0.1
    assert f(32000) == pytest.approx(0.01)
    assert f(48000) == pytest.approx(0.001)
    assert f(10**9) == pytest.approx(0.001)
    g = step(0.1, milestones=[60, 120, 160], gamma=0.2)
    assert [round(g(t), 10) for t in (0, 59, 60, 120, 160)] == [0.1, 0.1, 0.02, 0.004, 0.0008]


def test_sgdr_restarts_at_10_30_70_150_epochs():
    ipe = 391  # iterations per epoch for batch 128 on 50k images
    f = sgdr(0.05, 0.0, t0=10 * ipe, t_mult=2, k=1.0, total=200 * ipe)
    values = [f(t) for t in range(200 * ipe)]
    jumps = [t for t in range(1, len(values)) if values[t] > values[t - 1] + 1e-12]
    assert jumps == [e * ipe for e in (10, 30, 70, 150)]
    for e in (0, 10, 30, 70, 150):
        assert f(e * ipe) == pytest.approx(0.05)
    # the 150-epoch run of the table ends at the end of its fourth cycle: LR = lr_min
    g = sgdr(0.05, 0.0, t0=10 * ipe, t_mult=2, k=1.0, total=150 * ipe)
    assert g(150 * ipe) == pytest.approx(0.0, abs=1e-15)
    assert g(150 * ipe - 1) > 0
    assert g(10**9) == g(150 * ipe)


def test_sgdr_k_decay_inside_each_cycle():
    ipe = 10
    f1 = sgdr(0.05, 0.0, t0=10 * ipe, t_mult=2, k=1.0, total=150 * ipe)
    f3 = sgdr(0.05, 0.0, t0=10 * ipe, t_mult=2, k=3.0, total=150 * ipe)
    # halfway through the second cycle (epochs 10..30): position 100 of 200 iterations
    assert f3(200) == pytest.approx(0.025 * (1 + math.cos(math.pi * 0.5**3)))
    assert f1(200) == pytest.approx(0.025)
    assert all(f3(t) >= f1(t) - 1e-15 for t in range(0, 1500, 7))


@pytest.mark.parametrize(
    ("factory", "kwargs", "name"),
    [
        (poly, dict(lr0=0.1, lr_end=0.0, power=2.0, k=0.0, total=10), "k"),
        (poly, dict(lr0=0.1, lr_end=0.0, power=-1.0, k=1.0, total=10), "power"),
        (poly, dict(lr0=0.1, lr_end=0.0, power=1.0, k=1.0, total=0), "total"),
        (poly, dict(lr0=0.1, lr_end=0.2, power=1.0, k=1.0, total=10), "lr_end"),
        (poly, dict(lr0=0.1, lr_end=-0.1, power=1.0, k=1.0, total=10), "lr_end"),
        (cosine, dict(lr0=-0.1, lr_end=0.0, k=1.0, total=10), "lr0"),
        (cosine, dict(lr0=0.1, lr_end=0.0, k=float("nan"), total=10), "k"),
        (exponential, dict(lr0=0.1, lr_end=0.0, rate=-1.0, k=1.0, total=10), "rate"),
        (step, dict(lr0=0.1, milestones=[5, 5], gamma=0.1), "milestones"),
        (step, dict(lr0=0.1, milestones=[5, 3], gamma=0.1), "milestones"),
        (step, dict(lr0=0.1, milestones=[0], gamma=0.1), "milestones"),
        (step, dict(lr0=0.1, milestones=[5], gamma=0.0), "gamma"),
        (
            warmup,
            dict(schedule=step(0.1, [5], 0.1), warmup_iters=-1, warmup_lr=0.1),
            "warmup_iters",
        ),
        (warmup, dict(schedule=step(0.1, [5], 0.1), warmup_iters=4, warmup_lr=None), "warmup_lr"),
        (sgdr, dict(lr_max=0.05, lr_min=0.0, t0=0, t_mult=2, k=1.0, total=10), "t0"),
        (sgdr, dict(lr_max=0.05, lr_min=0.0, t0=5, t_mult=0.5, k=1.0, total=10), "t_mult"),
        (sgdr, dict(lr_max=0.05, lr_min=0.0, t0=5, t_mult=2, k=-2, total=10), "k"),
    ],
)
def test_invalid_arguments_name_the_argument(factory, kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} "):
        factory(**kwargs)


def test_negative_iteration_is_rejected():
    with pytest.raises(ValueError, match="iteration t"):
        poly(0.1, 0.0, 1.0, 1.0, 10)(-1)


def _sgd() -> torch.optim.SGD:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=123.0, momentum=0.9)


def test_lr_schedule_sets_lr_every_iteration_and_resumes():
    f = poly(0.1, 0.0, 2.0, 3.0, 50)
    opt = _sgd()
    sched = LRSchedule(opt, f)
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([f(t) for t in range(20)], rel=1e-15)
    state = sched.state_dict()
    torch.save(state, buf := __import__("io").BytesIO())
    buf.seek(0)
    restored_state = torch.load(buf, weights_only=True)

    opt2 = _sgd()
    sched2 = LRSchedule(opt2, f)
    sched2.load_state_dict(restored_state)
    assert opt2.param_groups[0]["lr"] == pytest.approx(f(20), rel=1e-15)
    for t in range(20, 30):
        assert opt2.param_groups[0]["lr"] == pytest.approx(f(t), rel=1e-15)
        assert opt.param_groups[0]["lr"] == pytest.approx(f(t), rel=1e-15)
        opt.step()
        opt2.step()
        sched.step()
        sched2.step()
