"""The flat fast path: equal to the per-tensor reference to float rounding, its state is the
per-parameter views of one flat buffer per group, exact resume, fallback where it cannot apply."""
from __future__ import annotations

import io

import pytest
import torch

from lifelong import UPGD, UPGDW, AdaptiveUPGD
from lifelong.optim import flat

CLASSES = [UPGD, AdaptiveUPGD, UPGDW]
MECHANISMS = [
    {},
    {"gate": "layer"},
    {"gate_temperature": 0.1},
    {"utility": "unit"},
    {"l2_init": 0.5},
    {"gate": "layer", "gate_temperature": 0.3, "utility": "unit", "l2_init": 0.1},
]


def assert_close(actual, expected, rtol, atol):
    if not torch.allclose(actual, expected, rtol=rtol, atol=atol):
        diff = (actual - expected).abs().max().item()
        raise AssertionError(f"not close: max abs diff {diff:.3e} (rtol={rtol}, atol={atol})")


def model(large: bool, dtype=torch.float32, seed=0):
    """Linear layers' shapes; ``large`` adds a 400x400 weight so that the group is above
    flat.GATHER_LIMIT (the non-gathering variant of the fast path)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(16, 8), (16,), (4, 16), (4,), (), (2, 3, 2, 2)] + ([(400, 400)] if large else [])
    return [torch.randn(s, generator=gen, dtype=dtype).mul_(0.5).requires_grad_() for s in shapes]


def grads(params, step):
    gen = torch.Generator().manual_seed(1000 + step)
    return [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]


def train(cls, params, steps, start=0, opt=None, **kwargs):
    if opt is None:
        opt = cls([{"params": params[:3]}, {"params": params[3:], "lr": 0.02, "sigma": 0.05}],
                  lr=0.01, sigma=0.01, generator=torch.Generator().manual_seed(7), **kwargs)
    for step in range(start, start + steps):
        for p, g in zip(params, grads(params, step)):
            p.grad = g
        opt.step()
    return opt


@pytest.mark.parametrize("large", [False, True])
@pytest.mark.parametrize("mechanism", MECHANISMS, ids=lambda m: ",".join(m) or "paper")
@pytest.mark.parametrize("cls", CLASSES)
def test_fast_path_equals_reference(cls, mechanism, large):
    assert (sum(p.numel() for p in model(large)[3:]) > flat.GATHER_LIMIT) == large
    runs = []
    for foreach in (None, False):
        params = model(large)
        opt = train(cls, params, 5, foreach=foreach, **mechanism)
        runs.append((params, opt))
    (pa, oa), (pb, ob) = runs
    assert oa._layouts and not ob._layouts  # the fast path ran, the reference did not use it
    for a, b in zip(pa, pb):
        assert_close(a, b, rtol=1e-6, atol=1e-6)
    for p, q in zip(pa, pb):
        for name, value in oa.state[p].items():
            other = ob.state[q][name]
            if torch.is_tensor(value):
                assert_close(value, other, rtol=1e-5, atol=1e-7)
            else:
                assert value == other


@pytest.mark.parametrize("cls", CLASSES)
def test_state_entries_are_views_of_one_flat_buffer(cls):
    params = model(False)
    opt = train(cls, params, 2, l2_init=0.1)
    for group in opt.param_groups:
        storages = {opt.state[p][name].untyped_storage().data_ptr()
                    for p in group["params"] for name in ("utility", "initial")}
        assert len(storages) == 2  # one buffer per state kind per group
    # a write through the public per-parameter view is what the next step uses
    first = params[0]
    opt.state[first]["utility"].fill_(5.0)
    layout = opt._layouts[0]
    assert layout.buffers["utility"][: first.numel()].eq(5.0).all()


@pytest.mark.parametrize("mechanism", [{}, {"utility": "unit", "l2_init": 0.2, "gate": "layer"}],
                         ids=["paper", "mechanisms"])
@pytest.mark.parametrize("large", [False, True])
@pytest.mark.parametrize("cls", CLASSES)
def test_save_load_continue_is_bit_identical(cls, large, mechanism):
    params = model(large)
    opt = train(cls, params, 3, **mechanism)
    buffer = io.BytesIO()
    torch.save({"params": [p.detach() for p in params], "optim": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    clones = [p.clone().requires_grad_() for p in saved["params"]]
    restored = cls([{"params": clones[:3]}, {"params": clones[3:], "lr": 0.02, "sigma": 0.05}],
                   lr=0.01, sigma=0.01, generator=torch.Generator().manual_seed(99), **mechanism)
    restored.load_state_dict(saved["optim"])
    train(cls, params, 3, start=3, opt=opt)
    train(cls, clones, 3, start=3, opt=restored)
    for a, b in zip(params, clones):
        assert torch.equal(a, b)
    for p, q in zip(params, clones):
        for name, value in opt.state[p].items():
            other = restored.state[q][name]
            assert torch.equal(value, other) if torch.is_tensor(value) else value == other


@pytest.mark.parametrize("cls", CLASSES)
def test_parameter_without_gradient_falls_back_and_is_untouched(cls):
    params = model(False)
    opt = train(cls, params, 2)
    skipped = params[1]
    before = skipped.detach().clone()
    state_before = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in opt.state[skipped].items()}
    for p, g in zip(params, grads(params, 2)):
        p.grad = g
    skipped.grad = None
    opt.step()
    assert torch.equal(skipped, before)
    for name, value in state_before.items():
        now = opt.state[skipped][name]
        assert torch.equal(now, value) if torch.is_tensor(value) else now == value
    assert opt.state[params[0]]["step"] == 3 and opt.state[skipped]["step"] == 2
    # the group now has mixed step counts: it keeps taking the per-tensor path, correctly
    reference = model(False)
    ref = train(cls, reference, 2, foreach=False)
    for p, g in zip(reference, grads(reference, 2)):
        p.grad = g
    reference[1].grad = None
    ref.step()
    train(cls, params, 2, start=3, opt=opt)
    train(cls, reference, 2, start=3, opt=ref)
    for a, b in zip(params, reference):
        assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_layout_rebuilt_after_load_state_dict_uses_loaded_values():
    params = model(False)
    opt = train(AdaptiveUPGD, params, 2)
    other_params = [p.detach().clone().requires_grad_() for p in params]
    other = train(AdaptiveUPGD, other_params, 4)
    opt.load_state_dict(other.state_dict())
    assert opt.state[params[0]]["step"] == 4
    train(AdaptiveUPGD, params, 1, start=4, opt=opt)
    layout = opt._layouts[0]
    assert opt.state[params[0]]["utility"].untyped_storage().data_ptr() == \
        layout.buffers["utility"].untyped_storage().data_ptr()
    assert opt.state[params[0]]["step"] == 5


def test_mixed_dtype_group_falls_back_cleanly():
    params = [torch.randn(4, 3, requires_grad=True),
              torch.randn(5, dtype=torch.float64, requires_grad=True)]
    opt = AdaptiveUPGD(params, lr=0.01)
    for _ in range(2):
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    assert not opt._layouts
    assert all(torch.isfinite(p).all() for p in params)


@pytest.mark.parametrize("mechanism", [{"gate": "layer"}, {"gate": "layer", "utility": "unit"}],
                         ids=["layer", "layer-unit"])
def test_layer_gate_with_an_empty_parameter(mechanism):
    """An empty tensor has no maximum: the fast path takes its per-tensor loop for the gate."""
    runs = []
    for foreach in (None, False):
        params = model(False) + [torch.zeros(0, 3, requires_grad=True)]
        train(AdaptiveUPGD, params, 3, foreach=foreach, **mechanism)
        runs.append(params)
    for a, b in zip(*runs):
        assert_close(a, b, rtol=1e-6, atol=1e-6)
