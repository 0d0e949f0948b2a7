"""Non-finite gradients stay confined to their own weight, as in torch's Adam; finite input,
however extreme, never produces NaN or Inf (weights, state, gating_stats)."""
from __future__ import annotations

import math

import pytest
import torch

from lifelong import UPGD, UPGDW, AdaptiveUPGD

CLASSES = [UPGD, AdaptiveUPGD, UPGDW]
BASE = {UPGD: torch.optim.SGD, AdaptiveUPGD: torch.optim.Adam, UPGDW: torch.optim.AdamW}
BAD = [(0, (1, 2), float("nan")), (0, (3, 0), float("inf")), (1, (4,), -float("inf"))]


def setup(seed=0):
    gen = torch.Generator().manual_seed(seed)
    weights = [torch.randn(5, 6, generator=gen), torch.randn(7, generator=gen)]
    grads = [torch.randn(5, 6, generator=gen), torch.randn(7, generator=gen)]
    return weights, grads


def poisoned(grads, value_override=None):
    out = [g.clone() for g in grads]
    for tensor, index, value in BAD:
        out[tensor][index] = value if value_override is None else value_override
    return out


def run(cls, weights, grad_steps, foreach=None, **kwargs):
    params = [w.clone().requires_grad_() for w in weights]
    if cls in BASE.values():
        opt = cls(params, lr=0.01, **kwargs)
    else:
        opt = cls(params, lr=0.01, foreach=foreach, generator=torch.Generator().manual_seed(1),
                  **kwargs)
    for grads in grad_steps:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
    return [p.detach() for p in params], opt


@pytest.mark.parametrize("foreach", [None, False])
@pytest.mark.parametrize("cls", CLASSES)
def test_non_finite_gradient_is_confined_like_torch(cls, foreach):
    """One NaN and two Inf gradient elements: exactly the weights torch's SGD/Adam/AdamW turn
    non-finite turn non-finite, after the bad step and after clean steps that follow."""
    weights, grads = setup()
    clean = [setup(seed)[1] for seed in (5, 6, 7)]
    steps = [poisoned(grads)] + clean
    for n in (1, len(steps)):
        ours, _ = run(cls, weights, steps[:n], foreach)
        base, _ = run(BASE[cls], weights, steps[:n])
        for a, b in zip(ours, base):
            assert torch.equal(~torch.isfinite(a), ~torch.isfinite(b))
        assert sum(int((~torch.isfinite(a)).sum()) for a in ours) == len(BAD)


@pytest.mark.parametrize("foreach", [None, False])
@pytest.mark.parametrize("cls", CLASSES)
def test_other_weights_step_as_if_the_bad_elements_had_zero_gradient(cls, foreach):
    """eta is the max over finite utilities only: every other weight's update (gate, noise,
    moments) is bit-identical to a run where the bad elements had gradient 0."""
    weights, grads = setup()
    ours, opt = run(cls, weights, [poisoned(grads)], foreach, sigma=0.01)
    zero, _ = run(cls, weights, [poisoned(grads, 0.0)], foreach, sigma=0.01)
    for a, b in zip(ours, zero):
        finite = torch.isfinite(a)
        assert torch.equal(a[finite], b[finite])
    stats = opt.gating_stats()
    assert all(math.isfinite(v) for v in stats.values())


@pytest.mark.parametrize("foreach", [None, False])
@pytest.mark.parametrize("cls", CLASSES)
def test_utility_state_never_nan_or_positive_infinite(cls, foreach):
    weights, grads = setup()
    _, opt = run(cls, weights, [poisoned(grads), grads, grads], foreach)
    for state in opt.state.values():
        u = state["utility"]
        assert not torch.isnan(u).any() and not (u == math.inf).any()


@pytest.mark.parametrize("foreach", [None, False])
@pytest.mark.parametrize("cls", CLASSES)
def test_alternating_overflows_of_finite_input_stay_finite(cls, foreach):
    """|g * w| beyond float32's range with alternating signs (the trace would compute
    inf - inf): weights, state and gating_stats stay finite."""
    w = torch.tensor([3e38, -3e38, 1e-40, 0.0, 1.0, -2.0])
    params = [w.clone().requires_grad_()]
    opt = cls(params, lr=1e-3, sigma=1e-3, foreach=foreach, beta_utility=0.5,
              generator=torch.Generator().manual_seed(0))
    for step in range(8):
        sign = 1.0 if step % 2 == 0 else -1.0
        params[0].grad = torch.tensor([1e30, -1e30, 1e-40, 3e38, -1.0, 1.0]) * sign
        opt.step()
        assert torch.isfinite(params[0]).all()
        for value in opt.state[params[0]].values():
            if torch.is_tensor(value):
                assert not torch.isnan(value).any()
        stats = opt.gating_stats()
        assert all(math.isfinite(v) for v in stats.values()), stats


@pytest.mark.parametrize("cls", CLASSES)
def test_gating_stats_finite_for_extreme_finite_input(cls):
    """weights 3e38, gradients 1e30 (issue: a NaN mean was returned)."""
    w = torch.full((4, 3), 3e38, requires_grad=True)
    opt = cls([w], lr=1e-3)
    for _ in range(3):
        w.grad = torch.full((4, 3), 1e30)
        opt.step()
        stats = opt.gating_stats()
        assert stats and all(math.isfinite(v) for v in stats.values()), stats
        assert torch.isfinite(w).all()
