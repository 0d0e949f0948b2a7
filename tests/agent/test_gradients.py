"""The train loop's gradient helpers compute exactly what torch's functions compute."""
import pytest
import torch

from lifelong import AdaptiveUPGD
from lifelong.agent.gradients import clip_grad_norm, zero_grad


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
