"""UPGD, AdaptiveUPGD, UPGDW: the update against the formula, noise, paths, state, bad input."""
from __future__ import annotations

import copy
import io
import math
import pickle

import pytest
import torch

from lifelong import UPGD, UPGDW, AdaptiveUPGD

CLASSES = [UPGD, AdaptiveUPGD, UPGDW]


def assert_close(actual, expected, rtol, atol):
    """torch.allclose with a useful message (torch.testing's first call takes seconds)."""
    actual, expected = actual.detach(), expected.detach()
    if not torch.allclose(actual, expected, rtol=rtol, atol=atol):
        diff = (actual - expected).abs().max().item()
        raise AssertionError(f"not close: max abs diff {diff:.3e} (rtol={rtol}, atol={atol})")
ADAPTIVE = (AdaptiveUPGD, UPGDW)


# ---------------------------------------------------------------------------------------------
# a reference written from the formula (docs/optimizers.md), float64, sigma = 0
# ---------------------------------------------------------------------------------------------
def reference_step(params, groups, state, adaptive):
    """One step over ``params`` (list of (tensor, grad or None, group index)); updates in place."""
    stepping = [(i, w, g, groups[k]) for i, (w, g, k) in enumerate(params) if g is not None]
    corrected = {}
    for i, w, g, hp in stepping:
        st = state.setdefault(i, {"t": 0, "u": torch.zeros_like(w), "m": torch.zeros_like(w),
                                  "v": torch.zeros_like(w)})
        st["t"] += 1
        b = hp["beta_utility"]
        st["u"] = b * st["u"] + (1 - b) * (-g * w)
        corrected[i] = st["u"] / (1 - b ** st["t"])
        if adaptive:
            b1, b2 = hp["betas"]
            st["m"] = b1 * st["m"] + (1 - b1) * g
            st["v"] = b2 * st["v"] + (1 - b2) * g * g
    eta = max(max(u.max().item() for u in corrected.values()), torch.finfo(torch.float64).tiny)
    for i, w, g, hp in stepping:
        st = state[i]
        s = torch.sigmoid(corrected[i] / eta)
        d = g
        if adaptive:
            b1, b2 = hp["betas"]
            m_hat = st["m"] / (1 - b1 ** st["t"])
            v_hat = st["v"] / (1 - b2 ** st["t"])
            d = m_hat / (v_hat.sqrt() + hp["eps"])
        w.mul_(1 - hp["lr"] * hp["weight_decay"]).sub_(2 * hp["lr"] * d * (1 - s))


def make_params(dtype=torch.float64, seed=0, large=False):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(7, 5), (5,), (3, 7), (3,)] + ([(300, 300)] if large else [])
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_() for s in shapes]


def grads_for(step, params, seed=1):
    """Deterministic gradients; parameter 3 has a gradient only on even steps."""
    gen = torch.Generator().manual_seed(seed * 1000 + step)
    out = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    if step % 2 == 1:
        out[3] = None
    return out


def two_groups(params, cls):
    extra = {"betas": (0.8, 0.99), "eps": 1e-6} if cls in ADAPTIVE else {}
    return [{"params": params[:2]},
            {"params": params[2:], "lr": 0.05, "weight_decay": 0.1, "beta_utility": 0.9, **extra}]


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("cls", CLASSES)
def test_update_matches_formula(cls, foreach):
    params = make_params(large=True)  # the 300x300 tensor takes the foreach path's workspace
    ref = [p.detach().clone() for p in params]
    opt = cls(two_groups(params, cls), lr=0.01, sigma=0.0, foreach=foreach)
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    index = [0, 0, 1, 1, 1]
    state: dict = {}
    for step in range(6):
        grads = grads_for(step, params)
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        reference_step([(w, g, k) for w, g, k in zip(ref, grads, index)], groups, state,
                       cls in ADAPTIVE)
        for p, r in zip(params, ref):
            assert_close(p, r, rtol=1e-12, atol=1e-14)
    assert opt.state[params[3]]["step"] == 3 and opt.state[params[0]]["step"] == 6


def test_defaults():
    p = [torch.zeros(2, requires_grad=True)]
    g = UPGD(p).param_groups[0]
    assert (g["lr"], g["weight_decay"], g["beta_utility"], g["sigma"]) == (1e-5, 0.001, 0.999, 0.001)
    g = AdaptiveUPGD(p).param_groups[0]
    assert (g["lr"], g["betas"], g["eps"], g["weight_decay"], g["beta_utility"], g["sigma"]) == (
        3e-4, (0.9, 0.999), 1e-8, 0.001, 0.999, 0.001)
    g = UPGDW(p).param_groups[0]
    assert (g["lr"], g["weight_decay"]) == (1e-3, 0.01)
    assert isinstance(UPGDW(p), AdaptiveUPGD) and isinstance(UPGD(p), torch.optim.Optimizer)


# ---------------------------------------------------------------------------------------------
# fast path == per-tensor path where a group falls back (a parameter without a gradient)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
def test_fast_path_with_fallback_group_matches_per_tensor(cls):
    """Group 2 has a parameter without a gradient on odd steps: it takes the per-tensor path
    there, the flat path on even steps; group 1 always the flat path. Same result as the
    per-tensor path everywhere, to float rounding (see tests/optim/test_flat.py)."""
    results = []
    for foreach in (None, False):
        params = make_params(torch.float32, large=True)
        gen = torch.Generator().manual_seed(123)
        opt = cls(two_groups(params, cls), lr=0.01, sigma=0.01, generator=gen, foreach=foreach)
        for step in range(4):
            for p, g in zip(params, grads_for(step, params)):
                p.grad = g
            opt.step()
        results.append(([p.detach().clone() for p in params], opt.state_dict()))
    (pa, sa), (pb, sb) = results
    for a, b in zip(pa, pb):
        assert_close(a, b, rtol=1e-6, atol=1e-7)
    for k in sa["state"]:
        for name, value in sa["state"][k].items():
            other = sb["state"][k][name]
            if torch.is_tensor(value):
                assert_close(value, other, rtol=1e-6, atol=1e-9)
            else:
                assert value == other


# ---------------------------------------------------------------------------------------------
# noise: standard deviation and gating by (1 - s), measured on a large tensor
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [UPGD, AdaptiveUPGD])
def test_noise_std_and_gating(cls):
    n = 200_000
    sigma, lr = 0.1, 0.5
    w = torch.ones(n, dtype=torch.float64, requires_grad=True)
    g = torch.ones(n, dtype=torch.float64)
    g[: n // 2] = -1.0  # utility -g*w = +1 (protected) on the first half, -1 on the second
    w.grad = g
    before = w.detach().clone()
    opt = cls([w], lr=lr, sigma=sigma, weight_decay=0.0, generator=torch.Generator().manual_seed(0))
    opt.step()
    # eta = 1 -> s = sigmoid(+-1); adaptive direction at step 1 is g / (|g| + eps) = sign(g)
    gate = torch.where(g < 0, 1 - torch.sigmoid(torch.tensor(1.0)), 1 - torch.sigmoid(torch.tensor(-1.0)))
    direction = g if cls is UPGD else g / (g.abs() + 1e-8)
    xi = (before - w.detach()) / (2 * lr * gate.double()) - direction
    for half in (xi[: n // 2], xi[n // 2:]):
        assert abs(half.std().item() / sigma - 1) < 0.02
        assert abs(half.mean().item()) < 0.01 * sigma
    stats = opt.gating_stats()
    assert stats["utility_max"] == pytest.approx(1.0)
    assert stats["gate_mean"] == pytest.approx(0.5, abs=1e-9)  # (0.2689 + 0.7311) / 2


def test_noise_uses_global_rng_without_generator():
    w = torch.zeros(1000, requires_grad=True)
    out = []
    for _ in range(2):
        with torch.no_grad():
            w.zero_()
        w.grad = torch.zeros(1000)
        torch.manual_seed(7)
        UPGD([w], lr=1.0, sigma=1.0, weight_decay=0.0).step()
        out.append(w.detach().clone())
    assert torch.equal(out[0], out[1]) and out[0].std() > 0.3


# ---------------------------------------------------------------------------------------------
# state: state_dict round trip, schedulers, deepcopy, pickle, closure, zero_grad
# ---------------------------------------------------------------------------------------------
def run(opt, params, steps, start=0):
    for step in range(start, start + steps):
        for p, g in zip(params, grads_for(step, params)):
            p.grad = g
        opt.step()


@pytest.mark.parametrize("cls", CLASSES)
def test_state_dict_round_trip_continues_bit_identically(cls):
    params = make_params(torch.float32)
    opt = cls(two_groups(params, cls), lr=0.01, sigma=0.05,
              generator=torch.Generator().manual_seed(5))
    run(opt, params, 3)
    buffer = io.BytesIO()
    torch.save({"params": [p.detach() for p in params], "optim": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert saved["optim"]["generator_state"].dtype == torch.uint8

    clones = [p.clone().requires_grad_() for p in saved["params"]]
    restored = cls(two_groups(clones, cls), lr=0.01, sigma=0.05,
                   generator=torch.Generator().manual_seed(999))
    restored.load_state_dict(saved["optim"])
    run(opt, params, 3, start=3)
    run(restored, clones, 3, start=3)
    for a, b in zip(params, clones):
        assert torch.equal(a, b)


def test_load_state_dict_does_not_share_memory():
    params = make_params(torch.float32)
    opt = AdaptiveUPGD(params, sigma=0.0)
    run(opt, params, 2)
    other = AdaptiveUPGD([p.detach().clone().requires_grad_() for p in params], sigma=0.0)
    other.load_state_dict(opt.state_dict())
    before = opt.state[params[0]]["utility"].clone()
    run(other, other.param_groups[0]["params"], 1)
    assert torch.equal(opt.state[params[0]]["utility"], before)


def test_load_state_dict_of_other_family_is_a_value_error():
    params = make_params(torch.float32)
    upgd = UPGD(params)
    run(upgd, params, 1)
    with pytest.raises(ValueError, match="betas"):
        AdaptiveUPGD(params).load_state_dict(upgd.state_dict())


@pytest.mark.parametrize("cls", CLASSES)
def test_step_lr_drives_the_step(cls):
    def train(use_scheduler):
        params = make_params()
        opt = cls(params, lr=0.1, sigma=0.0)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1) if use_scheduler else None
        lrs = []
        for step in range(5):
            if not use_scheduler:
                opt.param_groups[0]["lr"] = 0.1 * 0.1 ** (step // 2)
            lrs.append(opt.param_groups[0]["lr"])
            run(opt, params, 1, start=step)
            if sched is not None:
                sched.step()
        return params, lrs

    (pa, la), (pb, lb) = train(True), train(False)
    assert la == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    assert la == pytest.approx(lb)
    for a, b in zip(pa, pb):
        assert_close(a, b, rtol=1e-12, atol=0)


@pytest.mark.parametrize("cls", CLASSES)
def test_deepcopy_and_pickle(cls):
    params = make_params(torch.float32)
    opt = cls(params, sigma=0.05, generator=torch.Generator().manual_seed(3))
    run(opt, params, 2)
    twin_params, twin = copy.deepcopy((params, opt))
    pickled_params, pickled = pickle.loads(pickle.dumps((params, opt)))
    for other in (twin, pickled):
        assert other.generator is not opt.generator
        assert torch.equal(other.generator.get_state(), opt.generator.get_state())
        assert other.state_dict()["state"][0]["step"] == 2
    run(opt, params, 2, start=2)
    run(twin, twin_params, 2, start=2)
    run(pickled, pickled_params, 2, start=2)
    for a, b, c in zip(params, twin_params, pickled_params):
        assert torch.equal(a, b) and torch.equal(a, c)
    plain = pickle.loads(pickle.dumps(cls(make_params())))
    assert plain.generator is None


def test_closure_and_zero_grad():
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    opt = UPGD([w], lr=0.1, sigma=0.0)

    def closure():
        opt.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(5.0)
    assert not torch.equal(w.detach(), torch.tensor([1.0, -2.0]))
    opt.zero_grad()
    assert w.grad is None
    before = w.detach().clone()
    opt.step()  # nothing has a gradient: nothing changes, no step counted
    assert torch.equal(w.detach(), before) and opt.state[w]["step"] == 1


def test_gating_stats():
    params = make_params(torch.float32)
    opt = AdaptiveUPGD(params)
    assert opt.gating_stats() == {}
    run(opt, params, 2)
    stats = opt.gating_stats()
    assert set(stats) == {"gate_mean", "utility_mean", "utility_max", "utility_min"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in stats.values())
    assert 0 < stats["gate_mean"] < 1
    assert stats["utility_min"] <= stats["utility_mean"] <= stats["utility_max"]


def test_gating_stats_against_the_formula_skipping_non_finite_utilities():
    """gate_mean, utility_mean/min/max from the state by the formula, over the finite bias-corrected
    utilities only: a weight whose utility is not finite counts in none of them."""
    params = make_params(torch.float64)
    opt = AdaptiveUPGD(params, beta_utility=0.9, gate_temperature=0.5)
    run(opt, params, 3)
    opt.state[params[0]]["utility"][0, :2] = torch.tensor([torch.nan, torch.inf])
    corrected = [opt.state[p]["utility"] / (1 - 0.9 ** opt.state[p]["step"]) for p in params]
    finite = torch.cat([u.flatten() for u in corrected])
    finite = finite[torch.isfinite(finite)]
    eta = max(finite.max().item(), torch.finfo(torch.float64).tiny)
    gates = torch.sigmoid(-finite / (eta * 0.5))
    stats = opt.gating_stats()
    assert stats["utility_max"] == pytest.approx(finite.max().item(), rel=1e-12)
    assert stats["utility_min"] == pytest.approx(finite.min().item(), rel=1e-12)
    assert stats["utility_mean"] == pytest.approx(finite.mean().item(), rel=1e-12)
    assert stats["gate_mean"] == pytest.approx(gates.mean().item(), rel=1e-12)
    for p in params:  # nothing finite at all: no summary
        opt.state[p]["utility"].fill_(torch.nan)
    assert opt.gating_stats() == {}


def test_sigma_can_be_changed_per_group():
    params = make_params(torch.float32)
    opt = UPGD(params, lr=1.0, weight_decay=0.0, sigma=0.0)
    for group in opt.param_groups:
        group["sigma"] = 0.5
    for p in params:
        p.grad = torch.zeros_like(p)
    before = [p.detach().clone() for p in params]
    opt.step()
    assert all(not torch.equal(a, b.detach()) for a, b in zip(before, params))


# ---------------------------------------------------------------------------------------------
# degenerate inputs: never NaN or Inf from finite input
# ---------------------------------------------------------------------------------------------
def all_finite(params):
    return all(torch.isfinite(p).all() for p in params)


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("cls", CLASSES)
def test_zero_gradients_on_first_step(cls, foreach):
    params = make_params(torch.float32, large=True)
    before = [p.detach().clone() for p in params]
    opt = cls(params, sigma=0.0, weight_decay=0.0, foreach=foreach)
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, params))
    assert math.isfinite(opt.gating_stats()["gate_mean"])


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("cls", CLASSES)
def test_all_zero_weights(cls, foreach):
    params = [torch.zeros(4, 3, requires_grad=True), torch.zeros(70_000, requires_grad=True)]
    opt = cls(params, foreach=foreach, generator=torch.Generator().manual_seed(0))
    for step in range(3):
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
        assert all_finite(params)


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("cls", CLASSES)
def test_all_negative_utilities_take_the_full_step(cls, foreach):
    # -g * w < 0 everywhere: eta is floored, s -> 0, the gate is 1 and the whole step 2 lr d is
    # taken (no inversion; twice the base optimizer's step, by the factor-2 convention)
    w = torch.full((10,), 2.0, requires_grad=True)
    w.grad = torch.full((10,), 3.0)
    opt = cls([w], lr=0.1, sigma=0.0, weight_decay=0.0, foreach=foreach)
    opt.step()
    direction = 3.0 if cls is UPGD else 3.0 / (3.0 + 1e-8)
    assert_close(w, torch.full((10,), 2.0 - 2 * 0.1 * direction), rtol=1.3e-6, atol=1e-5)


@pytest.mark.parametrize("cls", CLASSES)
def test_extreme_but_finite_values(cls):
    w = torch.tensor([3e38, -3e38, 1e-40, 0.0, 1.0], requires_grad=True)
    opt = cls([w], lr=1e-3, sigma=1e-3, generator=torch.Generator().manual_seed(0))
    for g in ([1e30, 1e30, 1e-40, 0.0, 1.0], [0.0] * 5, [-1e-45, 3e38, 0.0, 1.0, -1.0]):
        w.grad = torch.tensor(g)
        opt.step()
        assert all_finite([w])


@pytest.mark.parametrize("cls", CLASSES)
def test_parameter_with_gradient_on_some_steps_is_untouched(cls):
    a = torch.randn(5, requires_grad=True)
    b = torch.randn(5, requires_grad=True)
    opt = cls([a, b], lr=0.01)
    b_before = b.detach().clone()
    for _ in range(3):
        a.grad = torch.randn(5)
        opt.step()
    assert torch.equal(b, b_before) and b not in opt.state
    b.grad = torch.randn(5)
    a.grad = None
    opt.step()
    assert opt.state[b]["step"] == 1 and opt.state[a]["step"] == 3
    assert all_finite([a, b])


@pytest.mark.parametrize("cls", CLASSES)
def test_sparse_gradient_is_a_clear_error_and_changes_nothing(cls):
    w = torch.ones(3, requires_grad=True)
    emb = torch.nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    w.grad = torch.ones(3)
    opt = cls([w, *emb.parameters()])
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()
    assert torch.equal(w, torch.ones(3)) and not opt.state


def test_complex_parameter_is_a_clear_error():
    z = torch.ones(2, dtype=torch.complex64, requires_grad=True)
    z.grad = torch.ones(2, dtype=torch.complex64)
    with pytest.raises(RuntimeError, match="complex"):
        UPGD([z]).step()


def test_empty_parameter():
    e = torch.zeros(0, requires_grad=True)
    w = torch.ones(3, requires_grad=True)
    opt = AdaptiveUPGD([e, w])
    e.grad, w.grad = torch.zeros(0), torch.ones(3)
    opt.step()
    e.grad, w.grad = torch.zeros(0), None
    opt.step()
    assert all_finite([w]) and opt.state[e]["step"] == 2


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------
BAD = [
    ("lr", -1e-3), ("lr", float("nan")), ("lr", float("inf")), ("lr", "0.1"),
    ("sigma", -0.1), ("sigma", float("inf")), ("weight_decay", -1.0),
    ("beta_utility", 1.0), ("beta_utility", -0.1), ("beta_utility", float("nan")),
]
BAD_ADAPTIVE = [("betas", (1.0, 0.999)), ("betas", (0.9, -0.5)), ("betas", (0.9,)),
                ("eps", 0.0), ("eps", -1e-8), ("eps", float("nan"))]


@pytest.mark.parametrize("cls,name,value",
                         [(c, n, v) for c in CLASSES for n, v in BAD]
                         + [(c, n, v) for c in ADAPTIVE for n, v in BAD_ADAPTIVE])
def test_invalid_hyperparameters(cls, name, value):
    p = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match=name.split("[")[0]):
        cls(p, **{name: value})
    opt = cls(p)
    with pytest.raises(ValueError, match=name.split("[")[0]):
        opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], name: value})


def test_invalid_generator_and_foreach():
    p = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match="generator"):
        UPGD(p, generator=42)
    with pytest.raises(ValueError, match="foreach"):
        UPGD(p, foreach="yes")


@pytest.mark.parametrize("cls", CLASSES)
def test_mixed_dtypes_in_one_group(cls):
    results = []
    for foreach in (True, False):
        torch.manual_seed(0)
        params = [torch.randn(4, 3, requires_grad=True),
                  torch.randn(5, dtype=torch.float64, requires_grad=True),
                  torch.randn(6, dtype=torch.bfloat16, requires_grad=True)]
        opt = cls(params, lr=0.01, foreach=foreach, generator=torch.Generator().manual_seed(1))
        for _ in range(3):
            for p in params:
                p.grad = torch.randn_like(p)
            opt.step()
        assert all_finite(params)
        results.append([p.detach().clone() for p in params])
    assert all(torch.equal(a, b) for a, b in zip(*results))


# ---------------------------------------------------------------------------------------------
# step convention: with no utility information (s = 1/2) the step is the base optimizer's
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("cls, base, kwargs", [
    (UPGD, torch.optim.SGD, {"lr": 0.1}),
    (AdaptiveUPGD, torch.optim.Adam, {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8}),
    (UPGDW, torch.optim.AdamW, {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}),
])
def test_neutral_utility_step_equals_base_optimizer(cls, base, kwargs, foreach):
    """Zero weights give utility -g*w = 0 everywhere, so s = 1/2 and the gate 1 - s = 1/2: the
    factor 2 makes the first step exactly SGD's / Adam's / AdamW's at the same lr."""
    gen = torch.Generator().manual_seed(3)
    grad = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    w_upgd = torch.zeros(4, 6, dtype=torch.float64, requires_grad=True)
    w_base = torch.zeros(4, 6, dtype=torch.float64, requires_grad=True)
    wd = kwargs.pop("weight_decay", 0.0)
    opt = cls([w_upgd], sigma=0.0, weight_decay=wd, foreach=foreach, **kwargs)
    ref = base([w_base], weight_decay=wd, **kwargs)
    w_upgd.grad, w_base.grad = grad.clone(), grad.clone()
    opt.step()
    ref.step()
    assert opt.gating_stats()["gate_mean"] == pytest.approx(0.5)
    assert_close(w_upgd, w_base, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("key, value, message", [
    ("exp_avg", torch.zeros(3), r"'exp_avg' has shape \(3,\), expected \(4, 3\)"),
    ("zero_steps", torch.zeros(2, 2, dtype=torch.int32), r"'zero_steps' has shape \(2, 2\), expected \(4, 3\)"),
    ("initial", torch.zeros(4), r"'initial' has shape \(4,\), expected \(4, 3\)"),
    ("utility", torch.zeros(4), r"'utility' has shape \(4,\), expected \(4, 3\)"),
    ("step", -1, "'step' must be a non-negative integer, got -1"),
    ("step", 2.5, "'step' must be a non-negative integer, got 2.5"),
    ("exp_avg", [0.0] * 12, "'exp_avg' must be a tensor, got list"),
])
def test_load_state_dict_refuses_state_that_does_not_fit_the_parameter(key, value, message):
    """A foreign or edited state dict fails at load with the parameter and key named, not inside
    a later step (where a wrong-shaped tensor would broadcast or fail deep in the arithmetic)."""
    w = torch.nn.Parameter(torch.randn(4, 3))
    opt = AdaptiveUPGD([w], gate="none", sigma=0.0, l2_init=0.1, reset_after=5)
    w.grad = torch.randn(4, 3)
    opt.step()
    sd = opt.state_dict()
    sd["state"][0][key] = value
    fresh = AdaptiveUPGD([torch.nn.Parameter(w.detach().clone())], gate="none", sigma=0.0, l2_init=0.1, reset_after=5)
    with pytest.raises(ValueError, match=r"parameter 0 of its group: " + message):
        fresh.load_state_dict(sd)


@pytest.mark.parametrize("edit,message", [
    (lambda sd: sd["state"][0].__setitem__("exp_avg", torch.zeros(3)), r"'exp_avg' has shape \(3,\)"),
    (lambda sd: sd["param_groups"][0].__setitem__("sigma", -1.0), "sigma"),
    (lambda sd: sd["param_groups"].append({**sd["param_groups"][0], "params": []}), r"sizes \[1, 0\], this optimizer's \[1\]"),
    (lambda sd: sd.__setitem__("generator_state", [1, 2]), "generator_state must be a uint8 tensor"),
])
def test_a_refused_load_leaves_the_optimizer_as_it_was(edit, message):
    """``check_state_dict`` runs before anything is loaded: after a refused ``load_state_dict``
    the optimizer's state, groups and generator are those it had, and it steps as before."""
    def trained(seed):
        w = torch.nn.Parameter(torch.randn(5, generator=torch.Generator().manual_seed(seed)))
        opt = AdaptiveUPGD([w], sigma=0.1, generator=torch.Generator().manual_seed(seed))
        for _ in range(3):
            w.grad = torch.randn(5, generator=torch.Generator().manual_seed(seed + 10))
            opt.step()
        return w, opt
    w, opt = trained(0)
    _, other = trained(1)
    sd = other.state_dict()
    edit(sd)
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(sd)
    with pytest.raises(ValueError, match=message):
        opt.check_state_dict(sd)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    assert all(torch.equal(after["state"][0][k], v) for k, v in before["state"][0].items() if torch.is_tensor(v))
    assert torch.equal(after["generator_state"], before["generator_state"])


def test_load_state_dict_checks_the_unit_utility_shape():
    w = torch.nn.Parameter(torch.randn(4, 3))
    opt = UPGD([w], utility="unit")
    w.grad = torch.randn(4, 3)
    opt.step()
    sd = opt.state_dict()
    assert tuple(sd["state"][0]["utility"].shape) == (4,)
    UPGD([torch.nn.Parameter(w.detach().clone())], utility="unit").load_state_dict(sd)  # fits
    sd["state"][0]["utility"] = torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r"'utility' has shape \(4, 3\), expected \(4,\)"):
        UPGD([torch.nn.Parameter(w.detach().clone())], utility="unit").load_state_dict(sd)
