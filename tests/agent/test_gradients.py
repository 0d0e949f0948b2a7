"""The train loop's gradient helpers compute exactly what torch's functions compute."""
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from lifelong import AdaptiveUPGD
from lifelong.agent.gradients import clip_grad_norm, take_step, zero_grad


def _model_with_grads(seed):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    frozen = torch.nn.Linear(3, 3)  # parameters without a gradient are skipped
    net(torch.randn(8, 5)).square().sum().backward()
    return net, frozen


@pytest.mark.parametrize("max_norm", [1e-3, 0.5, 1e6])
def test_clip_grad_norm_is_torchs_to_the_bit(max_norm):
    a, fa = _model_with_grads(0)
    b, fb = _model_with_grads(0)
    opt = torch.optim.Adam([*a.parameters(), *fa.parameters()])
    total = clip_grad_norm(opt, max_norm)
    want = torch.nn.utils.clip_grad_norm_([*b.parameters(), *fb.parameters()], max_norm)
    assert torch.equal(total, want)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p.grad, q.grad)


def test_clip_grad_norm_mixed_dtypes_falls_back_to_torch():
    a, _ = _model_with_grads(1)
    b, _ = _model_with_grads(1)
    a[2].double(); b[2].double()
    for m in (a, b):
        m[2].weight.grad = torch.ones_like(m[2].weight)
    total = clip_grad_norm(torch.optim.SGD(a.parameters(), lr=0.1), 0.1)
    want = torch.nn.utils.clip_grad_norm_(list(b.parameters()), 0.1)
    assert torch.equal(total, want)


def test_zero_grad_sets_none_and_respects_overrides():
    net, _ = _model_with_grads(2)
    opt = torch.optim.Adam(net.parameters())
    zero_grad(opt)
    assert all(p.grad is None for p in net.parameters())

    class Counting(torch.optim.SGD):
        calls = 0

        def zero_grad(self, set_to_none=True):
            Counting.calls += 1
            super().zero_grad(set_to_none)

    net, _ = _model_with_grads(3)
    zero_grad(Counting(net.parameters(), lr=0.1))
    assert Counting.calls == 1 and all(p.grad is None for p in net.parameters())
    net, _ = _model_with_grads(4)
    zero_grad(AdaptiveUPGD(net.parameters()))
    assert all(p.grad is None for p in net.parameters())


def _adam_pair(seed, **kwargs):
    """Two identical networks with fused Adam; the second (frozen) layer never gets a gradient."""
    nets = []
    for _ in range(2):
        torch.manual_seed(seed)
        nets.append(torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3),
                                        torch.nn.Linear(3, 3)))
    opts = [torch.optim.Adam([{"params": n[0].parameters()}, {"params": [*n[2].parameters(), *n[3].parameters()],
                                                               "lr": 3e-3}], fused=True, **kwargs) for n in nets]
    return nets, opts


def _backward(net, step):
    torch.manual_seed(100 + step)
    net.zero_grad(set_to_none=True)
    net[:3](torch.randn(8, 5)).square().sum().backward()  # net[3] gets no gradient


@pytest.mark.parametrize("kwargs", [{}, {"weight_decay": 0.1, "betas": (0.8, 0.95), "eps": 1e-5}])
def test_take_step_is_adam_step_to_the_bit(kwargs):
    (a, b), (opt_a, opt_b) = _adam_pair(0, **kwargs)
    for step in range(6):
        if step == 3:  # a learning-rate change between steps (SB3's schedules set group["lr"])
            for opt in (opt_a, opt_b):
                opt.param_groups[0]["lr"] = 1e-2
        _backward(a, step)
        _backward(b, step)
        take_step(opt_a)
        opt_b.step()
        for p, q in zip(a.parameters(), b.parameters()):
            assert torch.equal(p, q)
        assert all(torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
                   for sa, sb in zip(opt_a.state.values(), opt_b.state.values())
                   for x, y in zip(sa.values(), sb.values()))
    assert not opt_a.state.get(a[3].weight)  # a parameter without a gradient is untouched
    assert int(opt_a.state[a[0].weight]["step"]) == 6


def test_take_step_with_a_transposed_gradient_steps_as_the_foreach_adam():
    """torch 2.13's fused CPU Adam reads a gradient in its parameter's memory order, so a
    transposed gradient assigned to ``.grad`` updates the wrong weights (shown here with
    ``Adam(fused=True).step()`` itself); ``take_step`` gives the kernel a contiguous copy and
    steps as the ``foreach`` Adam does."""
    weights = [torch.nn.Parameter(torch.randn(4, 6, generator=torch.Generator().manual_seed(0))) for _ in range(3)]
    fused = torch.optim.Adam([weights[0]], lr=1e-2, fused=True)
    torch_fused = torch.optim.Adam([weights[1]], lr=1e-2, fused=True)
    reference = torch.optim.Adam([weights[2]], lr=1e-2, foreach=True)
    for step in range(4):
        grad = torch.randn(6, 4, generator=torch.Generator().manual_seed(10 + step)).t()  # not contiguous
        for w in weights:
            w.grad = grad.clone() if w is weights[2] else grad
        take_step(fused)
        torch_fused.step()
        reference.step()
    torch.testing.assert_close(weights[0], weights[2], rtol=1e-6, atol=1e-7)
    assert (weights[1] - weights[2]).abs().max() > 1e-3  # torch's own fused step: other weights moved


def test_take_step_calls_the_real_step_when_something_would_observe_it():
    calls = []

    # step hooks on the optimizer, global step hooks, a scheduler's instance wrapper, a subclass,
    # non-fused Adam, amsgrad: each must see (or run) torch's own step
    (net, _), (opt, _) = _adam_pair(1)
    _backward(net, 0)
    opt.step()  # the state exists from here on
    handle = opt.register_step_post_hook(lambda *args: calls.append("post"))
    _backward(net, 1)
    take_step(opt)
    assert calls == ["post"]
    handle.remove()
    handle = register_optimizer_step_pre_hook(lambda *args: calls.append("global"))
    try:
        take_step(opt)
    finally:
        handle.remove()
    assert calls == ["post", "global"]
    torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    opt._opt_called = False
    take_step(opt)
    assert opt._opt_called  # the scheduler's wrapper saw the step

    class Counting(torch.optim.Adam):
        def step(self, closure=None):
            calls.append("subclass")
            return super().step(closure)

    (net, _), _ = _adam_pair(2)
    counting = Counting(net.parameters(), fused=True)
    _backward(net, 0)
    take_step(counting)
    take_step(counting)
    assert calls[-2:] == ["subclass", "subclass"]

    for kwargs in ({"fused": False}, {"amsgrad": True}, {"maximize": True}):
        (a, b), _ = _adam_pair(3)
        opt_a, opt_b = (torch.optim.Adam(n.parameters(), **{"fused": True, **kwargs}) for n in (a, b))
        for step in range(3):
            _backward(a, step)
            _backward(b, step)
            take_step(opt_a)
            opt_b.step()
        for p, q in zip(a.parameters(), b.parameters()):
            assert torch.equal(p, q), kwargs


def test_prepared_fused_adam_calls_step_as_adam_while_gradients_are_written_in_place():
    """The train loop's pattern: new gradients written into the same .grad tensors at every
    step, the checks of take_step's direct path done once (fused_adam_calls), then
    step_fused_adam with those lists: bitwise Adam.step(), learning-rate changes included."""
    from lifelong.agent.gradients import fused_adam_calls, step_fused_adam

    (a, b), (opt_a, opt_b) = _adam_pair(3, weight_decay=0.05)
    calls = None
    for step in range(6):
        if step == 4:
            for opt in (opt_a, opt_b):
                opt.param_groups[1]["lr"] = 5e-4
        torch.manual_seed(100 + step)
        x = torch.randn(8, 5)
        for net in (a, b):
            grads = torch.autograd.grad(net[:3](x).square().sum(), list(net[:3].parameters()))
            for p, g in zip(net[:3].parameters(), grads):
                if p.grad is None:
                    p.grad = g.clone()
                else:
                    p.grad.copy_(g)  # in place: the tensors listed in `calls` see it
        if calls is None:
            take_step(opt_a)  # the first step creates the state
            calls = fused_adam_calls(opt_a)
            assert calls is not None and [len(c[1]) for c in calls] == [2, 2]
        else:
            step_fused_adam(calls)
        opt_b.step()
        for p, q in zip(a.parameters(), b.parameters()):
            assert torch.equal(p, q)
    assert int(opt_a.state[a[0].weight]["step"]) == 6


def test_fused_adam_calls_is_none_where_take_step_would_call_the_real_step():
    from lifelong.agent.gradients import fused_adam_calls

    (net, _), (opt, _) = _adam_pair(4)
    _backward(net, 0)
    assert fused_adam_calls(opt) is None  # no state yet
    opt.step()
    assert fused_adam_calls(opt) is not None
    handle = opt.register_step_pre_hook(lambda *args: None)
    assert fused_adam_calls(opt) is None
    handle.remove()
    (net, _), (amsgrad, _) = _adam_pair(5, amsgrad=True)
    _backward(net, 0)
    amsgrad.step()
    assert fused_adam_calls(amsgrad) is None
    upgd = AdaptiveUPGD(net.parameters())
    assert fused_adam_calls(upgd) is None


def test_clip_listed_is_clip_grad_norm_on_the_optimizer_s_gradients():
    from lifelong.agent.gradients import clip_listed, fused_adam_calls

    (a, b), (opt_a, opt_b) = _adam_pair(6)
    for net in (a, b):
        _backward(net, 0)
    take_step(opt_a), take_step(opt_b)  # the state, so that fused_adam_calls lists the gradients
    for net in (a, b):
        _backward(net, 1)
    grads = [g for call in fused_adam_calls(opt_a) for g in call[2]]
    total_a = clip_listed(grads, 0.05)
    total_b = clip_grad_norm(opt_b, 0.05)
    assert torch.equal(total_a, total_b) and float(total_a) > 0.05  # the clip binds
    for p, q in zip(a.parameters(), b.parameters()):
        assert (p.grad is None) == (q.grad is None)
        if p.grad is not None:
            assert torch.equal(p.grad, q.grad)
