"""VarianceGradientScaler: formulas, warm-up, step-scaling, lr restore, clipping, state, layout."""
from __future__ import annotations

import copy
import gc
import io
import math
import pickle
import weakref

import pytest
import torch
from torch import nn

from lifelong.vgs import VarianceGradientScaler


# ----------------------------------------------------------------------------- helpers
def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def set_grads(model: nn.Module, step: int, noise: float = 1.0, signal: float = 1.0) -> None:
    """Deterministic gradients: a fixed signal plus step-dependent noise."""
    gen = torch.Generator().manual_seed(1000 + step)
    for k, p in enumerate(model.parameters()):
        base = torch.full_like(p, signal * (1.0 + 0.1 * k))
        p.grad = base + noise * torch.randn(p.shape, generator=gen).to(p.device)


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


class SpySGD(torch.optim.SGD):
    """SGD that records, at each step, every group's lr and the total gradient norm."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen_lrs: list[list] = []
        self.seen_norms: list[float] = []

    def step(self, closure=None):
        self.seen_lrs.append([g["lr"] for g in self.param_groups])
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        self.seen_norms.append(float(torch.linalg.vector_norm(torch.stack([x.norm() for x in grads]))))
        return super().step(closure)


class RaisingSGD(SpySGD):
    def step(self, closure=None):
        super().step(closure)
        raise RuntimeError("boom")


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"beta": 0.0}, "beta"),
        ({"beta": 1.0}, "beta"),
        ({"beta": -0.5}, "beta"),
        ({"beta": float("nan")}, "beta"),
        ({"alpha": -0.1}, "alpha"),
        ({"alpha": float("inf")}, "alpha"),
        ({"alpha": "0.1"}, "alpha"),
        ({"eps": 0.0}, "eps"),
        ({"eps": -1e-8}, "eps"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"warmup_steps": 1.5}, "warmup_steps"),
        ({"warmup_steps": True}, "warmup_steps"),
        ({"quantile": -0.01}, "quantile"),
        ({"quantile": 1.01}, "quantile"),
        ({"skip_nonfinite": 1}, "skip_nonfinite"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        VarianceGradientScaler(**kwargs)


def test_boundary_values_are_accepted():
    VarianceGradientScaler(alpha=0.0, quantile=0.0, warmup_steps=0)
    VarianceGradientScaler(quantile=1.0, beta=0.5, eps=1e-30)


def test_alpha_is_a_validated_settable_property():
    vgs = VarianceGradientScaler(alpha=0.1)
    vgs.alpha = 2
    assert vgs.alpha == 2.0 and isinstance(vgs.alpha, float)
    with pytest.raises(ValueError, match="alpha"):
        vgs.alpha = -1.0
    assert vgs.alpha == 2.0
    with pytest.raises(AttributeError):
        vgs.beta = 0.5  # only alpha is settable


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_invalid_max_grad_norm(bad):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    set_grads(model, 0)
    before = flat(model)
    with pytest.raises(ValueError, match="max_grad_norm"):
        VarianceGradientScaler().step(opt, max_grad_norm=bad)
    assert torch.equal(flat(model), before)


# ----------------------------------------------------------------------------- formula
def test_ratio_by_hand_one_scalar():
    # beta = 0.5, gradients 1 then 3:
    #   step 1: m = 0.5, s = 0.5, c = 0.5 -> m^ = 1, s^ = 1, r = 0
    #   step 2: m = 1.75, s = 4.75, c = 0.75 -> m^ = 7/3, s^ = 19/3,
    #           r = (19/3 - 49/9) / (49/9) = 8/49, factor (alpha = 1) = 49/57
    w = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=1.0)
    vgs = VarianceGradientScaler(alpha=1.0, beta=0.5, warmup_steps=0, eps=1e-12, quantile=0.5)
    w.grad = torch.tensor([1.0])
    f1 = vgs.step(opt)
    assert vgs.last_stats["ratio"] == pytest.approx(0.0, abs=1e-6)
    assert f1 == pytest.approx(1.0, abs=1e-6)
    w.grad = torch.tensor([3.0])
    f2 = vgs.step(opt)
    assert vgs.last_stats["ratio"] == pytest.approx(8 / 49, rel=1e-6)
    assert f2 == pytest.approx(49 / 57, rel=1e-6)
    # SGD step with lr * factor: w = -1 * f1 - 3 * f2
    assert w.item() == pytest.approx(-(1.0 * f1 + 3.0 * f2), rel=1e-6)


def reference_ratios(grads_per_step, beta, eps):
    """Element-wise EMAs in float64, exactly as the DESIGN formula reads."""
    n = len(grads_per_step[0])
    m = [None] * n
    s = [None] * n
    t = [0] * n
    for grads in grads_per_step:
        for i, g in enumerate(grads):
            if g is None:
                continue
            g = g.double()
            if m[i] is None:
                m[i] = torch.zeros_like(g)
                s[i] = torch.zeros_like(g)
            m[i] = beta * m[i] + (1 - beta) * g
            s[i] = beta * s[i] + (1 - beta) * g * g
            t[i] += 1
    ratios = []
    for i in range(n):
        if t[i] == 0:
            ratios.append(math.nan)
            continue
        c = 1 - beta ** t[i]
        mh, sh = m[i] / c, s[i] / c
        num = torch.clamp((sh - mh * mh).sum(), min=0.0)
        ratios.append(float(num / ((mh * mh).sum() + eps)))
    return ratios


@pytest.mark.parametrize("q", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_ratio_formula_matches_elementwise_reference(q):
    torch.manual_seed(3)
    shapes = [(2,), (3, 2), (4,), (1,)]
    params = [nn.Parameter(torch.zeros(s)) for s in shapes]
    opt = torch.optim.SGD(params, lr=0.01)
    beta, eps, alpha = 0.7, 1e-8, 0.5
    vgs = VarianceGradientScaler(alpha=alpha, beta=beta, warmup_steps=2, eps=eps, quantile=q)
    history = []
    for step in range(6):
        grads = []
        for i, p in enumerate(params):
            # tensor 2 has no gradient on steps 1 and 4; tensor 3 only from step 3 on
            missing = (i == 2 and step in (1, 4)) or (i == 3 and step < 3)
            g = None if missing else torch.randn(p.shape) * (i + 1) + 0.5
            p.grad = None if g is None else g.clone()
            grads.append(g)
        history.append(grads)
        factor = vgs.step(opt)
        ref = reference_ratios(history, beta, eps)
        got = vgs.last_stats["ratios"]
        assert len(got) == len(ref)
        for a, b in zip(got, ref):
            if math.isnan(b):
                assert math.isnan(a)
            else:
                assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
        r_ref = float(torch.quantile(torch.tensor([r for r in ref if not math.isnan(r)], dtype=torch.float64), q))
        assert vgs.last_stats["ratio"] == pytest.approx(r_ref, rel=1e-5, abs=1e-6)
        if step < 2:
            assert factor == 1.0
        else:
            assert factor == pytest.approx(1 / (1 + alpha * r_ref), rel=1e-5)


# ----------------------------------------------------------------------------- warm-up
def test_warmup_is_exactly_one_then_below_one():
    model = make_model()
    opt = SpySGD(model.parameters(), lr=0.01)
    vgs = VarianceGradientScaler(alpha=10.0, warmup_steps=5)
    factors = []
    for step in range(8):
        set_grads(model, step, noise=3.0)
        factors.append(vgs.step(opt))
    assert factors[:5] == [1.0] * 5
    assert all(0.0 < f < 1.0 for f in factors[5:])
    assert [lrs[0] for lrs in opt.seen_lrs[:5]] == [0.01] * 5
    for lrs, f in zip(opt.seen_lrs[5:], factors[5:]):
        assert lrs[0] == 0.01 * f
    assert vgs.steps == 8 and vgs.factor == factors[-1]
    # the ratio is reported during warm-up too
    assert vgs.last_stats["ratio"] > 0


def test_warmup_counts_calls_not_per_tensor_observations():
    # A tensor that gets its first gradient after warm-up still gets scaled steps at once:
    # warm-up counts calls of step(); bias correction is per tensor.
    a, b = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([a, b], lr=0.1)
    vgs = VarianceGradientScaler(alpha=1.0, warmup_steps=3, quantile=1.0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        a.grad = torch.randn(3, generator=gen)
        assert vgs.step(opt) == 1.0
    a.grad = torch.randn(3, generator=gen)
    b.grad = torch.ones(3)
    assert vgs.step(opt) < 1.0
    st = vgs.state_dict()
    assert st["counts"] == [4, 1]


# ----------------------------------------------------------------------------- behaviour
def run_factor(noise: float, signal: float, steps: int = 60) -> float:
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    vgs = VarianceGradientScaler(alpha=0.1, beta=0.9, warmup_steps=10)
    for step in range(steps):
        set_grads(model, step, noise=noise, signal=signal)
        vgs.step(opt)
    return vgs.factor


def test_quiet_gradients_keep_factor_near_one_noisy_lower_it():
    quiet = run_factor(noise=0.0, signal=1.0)
    some = run_factor(noise=0.5, signal=1.0)
    noisy = run_factor(noise=5.0, signal=0.1)
    assert quiet == pytest.approx(1.0, abs=1e-5)
    assert 0.0 < noisy < some < quiet <= 1.0
    assert noisy < 0.5


def test_never_nan_never_above_one_for_extreme_inputs():
    w = nn.Parameter(torch.zeros(5))
    opt = torch.optim.SGD([w], lr=1e-30)
    vgs = VarianceGradientScaler(alpha=1e6, beta=0.999, warmup_steps=0, eps=1e-300)
    gen = torch.Generator().manual_seed(1)
    for step in range(20):
        scale = [0.0, 1e-30, 1e15, 1.0][step % 4]
        w.grad = torch.randn(5, generator=gen) * scale
        f = vgs.step(opt)
        assert 0.0 < f <= 1.0 and not math.isnan(f)
        assert not math.isnan(vgs.last_stats["ratio"])
    assert torch.isfinite(w).all()


def test_zero_gradients_give_factor_one():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    vgs = VarianceGradientScaler(alpha=1.0, warmup_steps=0)
    for _ in range(3):
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        assert vgs.step(opt) == 1.0


def test_adam_step_is_smaller_with_large_alpha_while_gradient_scaling_would_not_be():
    model0 = make_model()
    plain_model = copy.deepcopy(model0)
    vgs_model = copy.deepcopy(model0)
    plain = torch.optim.Adam(plain_model.parameters(), lr=1e-3)
    scaled = torch.optim.Adam(vgs_model.parameters(), lr=1e-3)
    vgs = VarianceGradientScaler(alpha=10.0, warmup_steps=5)
    for step in range(20):
        before_plain, before_vgs = flat(plain_model), flat(vgs_model)
        set_grads(plain_model, step, noise=2.0)
        set_grads(vgs_model, step, noise=2.0)
        plain.step()
        factor = vgs.step(scaled)
        d_plain = (flat(plain_model) - before_plain).norm()
        d_vgs = (flat(vgs_model) - before_vgs).norm()
    # the last step is measurably smaller, by the factor (Adam's update is linear in lr)
    assert factor < 0.5
    assert d_vgs < 0.6 * d_plain
    # (both Adams saw identical gradients throughout; only the step size differed)

    # Gradient scaling by the same factor would NOT shrink Adam's step: Adam is invariant
    # to a constant scale of the gradient (up to eps).
    m_a, m_b = copy.deepcopy(model0), copy.deepcopy(model0)
    opt_a = torch.optim.Adam(m_a.parameters(), lr=1e-3)
    opt_b = torch.optim.Adam(m_b.parameters(), lr=1e-3)
    for step in range(20):
        set_grads(m_a, step, noise=2.0)
        set_grads(m_b, step, noise=2.0)
        for p in m_b.parameters():
            p.grad.mul_(factor)
        opt_a.step()
        opt_b.step()
    d_a = (flat(m_a) - flat(model0)).norm()
    d_b = (flat(m_b) - flat(model0)).norm()
    assert d_b == pytest.approx(float(d_a), rel=1e-3)


def test_step_equals_manual_lr_scaling_with_adam():
    # vgs.step == clip + Adam step with lr * factor, bit for bit
    model0 = make_model()
    a, b = copy.deepcopy(model0), copy.deepcopy(model0)
    opt_a = torch.optim.Adam(a.parameters(), lr=3e-4)
    opt_b = torch.optim.Adam(b.parameters(), lr=3e-4)
    vgs = VarianceGradientScaler(alpha=1.0, warmup_steps=2)
    for step in range(6):
        set_grads(a, step, noise=2.0)
        set_grads(b, step, noise=2.0)
        f = vgs.step(opt_a, max_grad_norm=0.5)
        torch.nn.utils.clip_grad_norm_(b.parameters(), 0.5)
        opt_b.param_groups[0]["lr"] = 3e-4 * f
        opt_b.step()
        opt_b.param_groups[0]["lr"] = 3e-4
        assert torch.equal(flat(a), flat(b))


# ----------------------------------------------------------------------------- lr restore
def test_lr_of_every_group_scaled_then_restored_exactly():
    model = make_model()
    lrs = [1e-3 / 3, 0.1 + 0.2]  # not exactly representable
    opt = SpySGD(
        [{"params": model[0].parameters(), "lr": lrs[0]}, {"params": model[2].parameters(), "lr": lrs[1]}],
        lr=0.5,
    )
    originals = [g["lr"] for g in opt.param_groups]
    vgs = VarianceGradientScaler(alpha=5.0, warmup_steps=0)
    for step in range(4):
        set_grads(model, step, noise=3.0)
        f = vgs.step(opt)
        for group, orig in zip(opt.param_groups, originals):
            assert group["lr"] is orig
    assert f < 1.0
    assert opt.seen_lrs[-1] == [lrs[0] * f, lrs[1] * f]


def test_lr_restored_when_optimizer_step_raises():
    model = make_model()
    opt = RaisingSGD(model.parameters(), lr=0.01 / 3)
    orig = opt.param_groups[0]["lr"]
    vgs = VarianceGradientScaler(alpha=5.0, warmup_steps=0)
    for step in range(3):
        set_grads(model, step, noise=3.0)
        with pytest.raises(RuntimeError, match="boom"):
            vgs.step(opt)
        assert opt.param_groups[0]["lr"] is orig
    assert opt.seen_lrs[-1][0] == orig * vgs.factor and vgs.factor < 1.0


def test_tensor_lr_is_restored_as_the_same_object():
    model = make_model()
    lr = torch.tensor(0.01)
    opt = SpySGD(model.parameters(), lr=lr)
    lr_obj = opt.param_groups[0]["lr"]
    vgs = VarianceGradientScaler(alpha=5.0, warmup_steps=0)
    for step in range(3):
        set_grads(model, step, noise=3.0)
        f = vgs.step(opt)
        assert opt.param_groups[0]["lr"] is lr_obj
        assert float(lr_obj) == pytest.approx(0.01)
    seen = opt.seen_lrs[-1][0]
    assert isinstance(seen, torch.Tensor) and float(seen) == pytest.approx(0.01 * f)


# ----------------------------------------------------------------------------- clipping
def test_clipping_happens_inside_the_call_after_observing_raw_gradients():
    model = make_model()
    opt = SpySGD(model.parameters(), lr=0.1)
    vgs = VarianceGradientScaler(alpha=1.0, warmup_steps=100, beta=0.9)
    set_grads(model, 0, noise=3.0)
    raw = [p.grad.clone() for p in model.parameters()]
    raw_norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in raw])))
    assert raw_norm > 1.0
    vgs.step(opt, max_grad_norm=0.5)
    assert opt.seen_norms[-1] == pytest.approx(0.5, rel=1e-4)  # the optimizer saw clipped grads
    assert vgs.last_stats["grad_norm"] == pytest.approx(raw_norm, rel=1e-6)  # pre-clip norm
    # the statistics saw the raw gradients: m = (1 - beta) * g_raw after one step
    for m, g in zip(vgs.state_dict()["grad_ema"], raw):
        assert torch.allclose(m, 0.1 * g, rtol=1e-6, atol=0)


@pytest.mark.parametrize("max_norm", [0.5, 1e6, None])
def test_warmup_step_is_bit_identical_to_clip_grad_norm_and_step(max_norm):
    model0 = make_model()
    a, b = copy.deepcopy(model0), copy.deepcopy(model0)
    opt_a = torch.optim.Adam(a.parameters(), lr=1e-3)
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-3)
    vgs = VarianceGradientScaler(warmup_steps=100)
    for step in range(5):
        set_grads(a, step, noise=3.0)
        set_grads(b, step, noise=3.0)
        assert vgs.step(opt_a, max_grad_norm=max_norm) == 1.0
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_(b.parameters(), max_norm)
        opt_b.step()
        for pa, pb in zip(a.parameters(), b.parameters()):
            assert torch.equal(pa.grad, pb.grad)
        assert torch.equal(flat(a), flat(b))


# ----------------------------------------------------------------------------- missing grads
def test_parameter_without_gradient_keeps_its_statistics():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    vgs = VarianceGradientScaler(alpha=1.0, warmup_steps=0)
    set_grads(model, 0)
    vgs.step(opt)
    before = vgs.state_dict()
    params = list(model.parameters())
    set_grads(model, 1)
    params[1].grad = None
    w1 = params[1].detach().clone()
    vgs.step(opt)
    after = vgs.state_dict()
    assert after["counts"] == [2, 1, 2, 2]
    assert torch.equal(after["grad_ema"][1], before["grad_ema"][1])
    assert after["grad_sq_norm_ema"][1] == before["grad_sq_norm_ema"][1]
    assert not torch.equal(after["grad_ema"][0], before["grad_ema"][0])
    assert torch.equal(params[1].detach(), w1)
    assert not math.isnan(vgs.last_stats["ratios"][1])  # still part of the quantile


def test_no_gradients_at_all_is_a_plain_step():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    vgs = VarianceGradientScaler(warmup_steps=0)
    before = flat(model)
    assert vgs.step(opt, max_grad_norm=0.5) == 1.0
    assert torch.equal(flat(model), before)
    assert all(math.isnan(r) for r in vgs.last_stats["ratios"])


# ----------------------------------------------------------------------------- non-finite
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_gradient_raises_before_touching_anything(bad):
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    vgs = VarianceGradientScaler(alpha=1.0, warmup_steps=0)
    for step in range(3):
        set_grads(model, step)
        vgs.step(opt, max_grad_norm=0.5)
    weights, state, opt_state = flat(model), vgs.state_dict(), copy.deepcopy(opt.state_dict())
    set_grads(model, 3)
    params = list(model.parameters())
    params[2].grad[1, 3] = bad
    grads_before = [p.grad.clone() for p in params]
    with pytest.raises(FloatingPointError, match=r"parameter 2 .*param_groups\[0\]\['params'\]\[2\]"):
        vgs.step(opt, max_grad_norm=0.5)
    assert torch.equal(flat(model), weights)
    after = vgs.state_dict()
    assert after["counts"] == state["counts"] and after["steps"] == state["steps"]
    assert after["grad_sq_norm_ema"] == state["grad_sq_norm_ema"]
    assert all(torch.equal(x, y) for x, y in zip(after["grad_ema"], state["grad_ema"]))
    assert opt.state_dict()["state"][0]["step"] == opt_state["state"][0]["step"]
    for p, g in zip(params, grads_before):  # not clipped either
        assert torch.equal(p.grad, g) or (torch.isnan(g).any() and torch.equal(torch.isnan(p.grad), torch.isnan(g)))


@pytest.mark.parametrize("value", [1e19, 1e20, 1e30, 3e38])
def test_finite_gradients_whose_norm_overflows_are_finite(value):
    # ||g||^2 overflows float32 but every element is finite: finiteness is decided by isfinite,
    # so the step happens; norms are taken in float64 and clipping scales to max_grad_norm.
    w = nn.Parameter(torch.zeros(4))
    opt = torch.optim.SGD([w], lr=0.1)
    w.grad = torch.full((4,), value)
    vgs = VarianceGradientScaler(warmup_steps=0)
    assert vgs.step(opt, max_grad_norm=0.5) > 0.0
    assert vgs.skipped_steps == 0 and math.isclose(vgs.last_stats["grad_norm"], 2 * value, rel_tol=1e-6)
    torch.testing.assert_close(w.detach(), torch.full((4,), -0.1 * 0.25 * vgs.last_stats["factor"]))
    w.grad = torch.full((4,), value)  # without clipping: the raw (finite) gradient is applied
    before = w.detach().clone()
    factor = vgs.step(opt)
    assert torch.isfinite(w).all() and torch.allclose(w.detach(), before - 0.1 * factor * value)


def test_nonfinite_names_group_and_index():
    a, b, c = (nn.Parameter(torch.zeros(2)) for _ in range(3))
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b, c]}], lr=0.1)
    a.grad, b.grad, c.grad = torch.ones(2), torch.ones(2), torch.tensor([1.0, float("nan")])
    with pytest.raises(FloatingPointError, match=r"parameter 2 .*param_groups\[1\]\['params'\]\[1\].*NaN"):
        VarianceGradientScaler().step(opt)


def test_skip_nonfinite_skips_step_and_keeps_statistics():
    model = make_model()
    opt = SpySGD(model.parameters(), lr=0.1)
    vgs = VarianceGradientScaler(alpha=1.0, warmup_steps=2, skip_nonfinite=True)
    for step in range(2):
        set_grads(model, step)
        vgs.step(opt)
    state, weights, n_opt_steps = vgs.state_dict(), flat(model), len(opt.seen_lrs)
    set_grads(model, 2)
    next(model.parameters()).grad[0, 0] = float("inf")
    assert vgs.step(opt, max_grad_norm=0.5) == 0.0
    assert vgs.skipped_steps == 1 and vgs.factor == 0.0
    assert len(opt.seen_lrs) == n_opt_steps  # optimizer.step() not called
    assert torch.equal(flat(model), weights)
    after = vgs.state_dict()
    assert after["skipped_steps"] == 1
    assert after["steps"] == state["steps"] == 2
    assert after["counts"] == state["counts"]
    assert all(torch.equal(x, y) for x, y in zip(after["grad_ema"], state["grad_ema"]))
    # a finite step afterwards carries on (and is the first after warm-up)
    set_grads(model, 3)
    f = vgs.step(opt)
    assert 0.0 < f < 1.0 and vgs.steps == 3
    restored = VarianceGradientScaler()
    restored.load_state_dict(vgs.state_dict())
    assert restored.skipped_steps == 1 and restored.skip_nonfinite


# ----------------------------------------------------------------------------- state
def _save_load(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_state_round_trip_continues_identically_on_a_copied_model():
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    vgs = VarianceGradientScaler(alpha=2.0, beta=0.9, warmup_steps=3, quantile=0.75)
    for step in range(6):
        set_grads(model, step, noise=2.0)
        vgs.step(opt, max_grad_norm=0.5)

    model2 = copy.deepcopy(model)
    opt2 = torch.optim.Adam(model2.parameters(), lr=1e-3)
    opt2.load_state_dict(_save_load(opt.state_dict()))
    vgs2 = VarianceGradientScaler()  # other hyperparameters: the state restores them
    vgs2.load_state_dict(_save_load(vgs.state_dict()))
    assert (vgs2.alpha, vgs2.beta, vgs2.warmup_steps, vgs2.quantile) == (2.0, 0.9, 3, 0.75)
    assert vgs2.factor == vgs.factor and vgs2.steps == vgs.steps
    assert vgs2.last_stats["ratio"] == vgs.last_stats["ratio"]

    for step in range(6, 12):
        set_grads(model, step, noise=2.0)
        set_grads(model2, step, noise=2.0)
        f1 = vgs.step(opt, max_grad_norm=0.5)
        f2 = vgs2.step(opt2, max_grad_norm=0.5)
        assert f1 == f2 and f1 < 1.0
        assert torch.equal(flat(model), flat(model2))
    assert vgs.last_stats == vgs2.last_stats


def test_state_dict_is_a_snapshot_of_tensors_and_numbers():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    vgs = VarianceGradientScaler()
    set_grads(model, 0)
    vgs.step(opt)
    sd = vgs.state_dict()
    m0 = sd["grad_ema"][0].clone()
    set_grads(model, 1)
    vgs.step(opt)
    assert torch.equal(sd["grad_ema"][0], m0)  # later steps do not change it

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                assert isinstance(k, str)
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        else:
            assert x is None or type(x) in (int, float, bool, torch.Tensor), type(x)

    walk(sd)


def test_fresh_state_round_trips():
    vgs = VarianceGradientScaler(alpha=0.3, warmup_steps=7)
    other = VarianceGradientScaler()
    other.load_state_dict(_save_load(vgs.state_dict()))
    assert other.state_dict() == vgs.state_dict()
    assert (other.alpha, other.warmup_steps, other.steps) == (0.3, 7, 0)


def test_load_state_dict_rejects_garbage():
    vgs = VarianceGradientScaler()
    with pytest.raises(ValueError, match="format"):
        vgs.load_state_dict({"format": 99})
    good = vgs.state_dict()
    bad = dict(good, beta=1.5)
    with pytest.raises(ValueError, match="beta"):
        vgs.load_state_dict(bad)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    set_grads(model, 0)
    vgs.step(opt)
    sd = vgs.state_dict()
    sd["counts"] = sd["counts"][:-1]
    with pytest.raises(ValueError, match="inconsistent"):
        VarianceGradientScaler().load_state_dict(sd)
    sd = vgs.state_dict()
    sd["grad_ema"][0] = torch.zeros(3)
    with pytest.raises(ValueError, match="shape"):
        VarianceGradientScaler().load_state_dict(sd)


def test_pickle_and_deepcopy_continue_identically():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    vgs = VarianceGradientScaler(alpha=1.0, warmup_steps=1)
    for step in range(3):
        set_grads(model, step, noise=2.0)
        vgs.step(opt)
    clones = [pickle.loads(pickle.dumps(vgs)), copy.deepcopy(vgs)]
    set_grads(model, 3, noise=2.0)
    grads = [p.grad.clone() for p in model.parameters()]
    weights = [p.detach().clone() for p in model.parameters()]
    f = vgs.step(opt)
    for c in clones:
        with torch.no_grad():
            for p, g, w in zip(model.parameters(), grads, weights):
                p.copy_(w)
                p.grad = g.clone()
        assert c.step(opt) == f


# ----------------------------------------------------------------------------- no references
def _reachable(root, limit=100_000):
    seen = {id(root)}
    stack = [root]
    out = []
    while stack and len(out) < limit:
        obj = stack.pop()
        out.append(obj)
        for ref in gc.get_referents(obj):
            if isinstance(ref, type) or id(ref) in seen:
                continue
            seen.add(id(ref))
            stack.append(ref)
    return out


def test_no_parameter_optimizer_or_grad_reference_is_kept():
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    vgs = VarianceGradientScaler(warmup_steps=1)
    for step in range(3):
        set_grads(model, step, noise=1.0)
        vgs.step(opt, max_grad_norm=0.5)
    forbidden = {id(p) for p in model.parameters()} | {id(p.grad) for p in model.parameters()}
    forbidden |= {id(opt), id(opt.param_groups), id(opt.state), id(model)}
    for obj in _reachable(vgs):
        assert id(obj) not in forbidden, type(obj)
        assert not isinstance(obj, (nn.Parameter, torch.optim.Optimizer, nn.Module))
    # buffers do not share memory with the parameters or their gradients
    ptrs = {p.data_ptr() for p in model.parameters()} | {p.grad.data_ptr() for p in model.parameters()}
    assert not ptrs & {m.data_ptr() for m in vgs.state_dict()["grad_ema"]}
    assert not ptrs & {m.data_ptr() for m in vgs._grad_ema if m is not None}
    # pickling does not drag a parameter along
    blob = pickle.dumps(vgs)
    assert b"_rebuild_parameter" not in blob and b"Optimizer" not in blob
    # nothing keeps the model or optimizer alive
    refs = [weakref.ref(p) for p in model.parameters()] + [weakref.ref(opt)]
    del model, opt
    gc.collect()
    assert all(r() is None for r in refs)
    assert vgs.steps == 3


# ----------------------------------------------------------------------------- layout
def test_layout_change_raises_value_error():
    vgs = VarianceGradientScaler()
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    set_grads(model, 0)
    vgs.step(opt)
    other = nn.Sequential(nn.Linear(4, 9), nn.Tanh(), nn.Linear(9, 3))  # same count, other shapes
    opt_other = torch.optim.SGD(other.parameters(), lr=0.1)
    set_grads(other, 0)
    before = flat(other)
    with pytest.raises(ValueError, match=r"layout changed.*\[8, 4\].*got.*\[9, 4\]"):
        vgs.step(opt_other)
    assert torch.equal(flat(other), before)
    fewer = torch.optim.SGD(list(model.parameters())[:2], lr=0.1)
    with pytest.raises(ValueError, match="4 tensors.*got 2 tensors"):
        vgs.step(fewer)
    # the same layout (a deep copy with a new optimizer) is fine
    copied = copy.deepcopy(model)
    set_grads(copied, 1)
    vgs.step(torch.optim.SGD(copied.parameters(), lr=0.1))


def test_layout_change_after_load_state_dict_raises_and_reset_clears():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    vgs = VarianceGradientScaler()
    set_grads(model, 0)
    vgs.step(opt)
    fresh = VarianceGradientScaler()
    fresh.load_state_dict(_save_load(vgs.state_dict()))
    other = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    opt_other = torch.optim.SGD(other.parameters(), lr=0.1)
    set_grads(other, 0)
    with pytest.raises(ValueError, match="layout"):
        fresh.step(opt_other)
    fresh.reset()
    assert fresh.step(opt_other) == 1.0 and fresh.steps == 1


def test_layout_includes_parameters_without_gradients_and_group_order():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(3))
    vgs = VarianceGradientScaler()
    a.grad = torch.ones(2)
    vgs.step(torch.optim.SGD([a, b], lr=0.1))  # b has no grad but is part of the layout
    b.grad = torch.ones(3)
    with pytest.raises(ValueError, match="layout"):
        vgs.step(torch.optim.SGD([b, a], lr=0.1))
    with pytest.raises(ValueError, match="layout"):
        vgs.step(torch.optim.SGD([a], lr=0.1))
    vgs.step(torch.optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1))  # same order: fine


# ----------------------------------------------------------------------------- UPGD
def test_with_adaptive_upgd():
    optim = pytest.importorskip("lifelong.optim")
    model0 = make_model()
    a, b = copy.deepcopy(model0), copy.deepcopy(model0)
    opt_a = optim.AdaptiveUPGD(a.parameters(), lr=1e-3, sigma=0.0)
    opt_b = optim.AdaptiveUPGD(b.parameters(), lr=1e-3, sigma=0.0)
    vgs = VarianceGradientScaler(alpha=5.0, warmup_steps=3)
    factors = []
    for step in range(10):
        set_grads(a, step, noise=2.0)
        set_grads(b, step, noise=2.0)
        f = vgs.step(opt_a, max_grad_norm=0.5)
        factors.append(f)
        torch.nn.utils.clip_grad_norm_(b.parameters(), 0.5)
        opt_b.param_groups[0]["lr"] = 1e-3 * f
        opt_b.step()
        opt_b.param_groups[0]["lr"] = 1e-3
        assert opt_a.param_groups[0]["lr"] == 1e-3
        assert torch.equal(flat(a), flat(b))
    assert factors[:3] == [1.0] * 3 and all(0.0 < f < 1.0 for f in factors[3:])
    assert torch.isfinite(flat(a)).all()
    # checkpoint round trip with the optimizer's own state
    c = copy.deepcopy(a)
    opt_c = optim.AdaptiveUPGD(c.parameters(), lr=1e-3, sigma=0.0)
    opt_c.load_state_dict(_save_load(opt_a.state_dict()))
    vgs_c = VarianceGradientScaler()
    vgs_c.load_state_dict(_save_load(vgs.state_dict()))
    for step in range(10, 13):
        set_grads(a, step, noise=2.0)
        set_grads(c, step, noise=2.0)
        assert vgs.step(opt_a, max_grad_norm=0.5) == vgs_c.step(opt_c, max_grad_norm=0.5)
        assert torch.equal(flat(a), flat(c))


def test_last_stats_shape_and_types():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    vgs = VarianceGradientScaler(warmup_steps=0)
    stats = vgs.last_stats
    assert stats["factor"] == 1.0 and stats["ratios"] == [] and math.isnan(stats["grad_norm"])
    set_grads(model, 0)
    vgs.step(opt)
    stats = vgs.last_stats
    assert set(stats) >= {"factor", "ratio", "ratios", "grad_norm", "steps", "skipped_steps"}
    assert all(type(stats[k]) is float for k in ("factor", "ratio", "grad_norm"))
    assert len(stats["ratios"]) == 4 and all(type(r) is float for r in stats["ratios"])
    stats["ratios"].append(1.0)  # a copy: mutating it does not touch the scaler
    assert len(vgs.last_stats["ratios"]) == 4


# ----------------------------------------------------------------------------- CUDA (device runs only)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
def test_cuda_matches_clip_and_manual_lr_scaling_and_moves_state_across_devices():
    dev = torch.device("cuda")
    model0 = make_model().to(dev)
    a, b = copy.deepcopy(model0), copy.deepcopy(model0)
    opt_a = torch.optim.Adam(a.parameters(), lr=1e-3)
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-3)
    vgs = VarianceGradientScaler(alpha=2.0, warmup_steps=3)
    for step in range(8):
        set_grads(a, step, noise=2.0)
        set_grads(b, step, noise=2.0)
        f = vgs.step(opt_a, max_grad_norm=0.5)
        torch.nn.utils.clip_grad_norm_(b.parameters(), 0.5)
        opt_b.param_groups[0]["lr"] = 1e-3 * f
        opt_b.step()
        opt_b.param_groups[0]["lr"] = 1e-3
        assert torch.equal(flat(a), flat(b))
    assert f < 1.0 and all(m.is_cuda for m in vgs._grad_ema)
    # a CUDA state loaded on CPU and used with a CPU copy of the model: buffers follow the grads
    buf = io.BytesIO()
    torch.save(vgs.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf, weights_only=True, map_location="cpu")
    cpu_model = copy.deepcopy(a).cpu()
    cpu_opt = torch.optim.Adam(cpu_model.parameters(), lr=1e-3)
    vgs_cpu = VarianceGradientScaler()
    vgs_cpu.load_state_dict(sd)
    vgs_gpu = VarianceGradientScaler()
    vgs_gpu.load_state_dict(sd)  # CPU tensors, GPU model
    gpu_model = copy.deepcopy(a)
    gpu_opt = torch.optim.Adam(gpu_model.parameters(), lr=1e-3)
    set_grads(cpu_model, 8, noise=2.0)
    set_grads(gpu_model, 8, noise=2.0)
    set_grads(a, 8, noise=2.0)
    f_ref = vgs.step(opt_a)
    assert vgs_gpu.step(gpu_opt) == f_ref
    assert vgs_cpu.step(cpu_opt) == pytest.approx(f_ref, rel=1e-4)
    assert all(not m.is_cuda for m in vgs_cpu._grad_ema)
    assert all(m.is_cuda for m in vgs_gpu._grad_ema)


@cuda
def test_cuda_mixed_devices_and_nonfinite():
    a = nn.Parameter(torch.zeros(3, device="cuda"))
    b = nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([a, b], lr=0.1)
    vgs = VarianceGradientScaler(alpha=1.0, warmup_steps=0)
    a.grad = torch.tensor([3.0, 0.0, 0.0], device="cuda")
    b.grad = torch.tensor([0.0, 4.0])
    vgs.step(opt, max_grad_norm=1.0)  # total norm 5 -> clipped to 1
    assert vgs.last_stats["grad_norm"] == pytest.approx(5.0)
    assert torch.allclose(a.detach().cpu(), torch.tensor([-0.06, 0.0, 0.0]))
    assert torch.allclose(b.detach(), torch.tensor([0.0, -0.08]))
    a.grad = torch.tensor([1.0, float("nan"), 0.0], device="cuda")
    b.grad = torch.tensor([0.0, 1.0])
    with pytest.raises(FloatingPointError, match="parameter 0"):
        vgs.step(opt)
