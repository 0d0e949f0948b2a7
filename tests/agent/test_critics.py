"""Distributional value heads: hand-computed examples for every pure function in lifelong.agent.critics."""
import math

import pytest
import torch

from lifelong.agent import critics as C


def test_quantile_taus_are_midpoints():
    assert torch.allclose(C.quantile_taus(4), torch.tensor([0.125, 0.375, 0.625, 0.875]))
    assert torch.allclose(C.quantile_taus(1), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="n_quantiles"):
        C.quantile_taus(0)


def test_quantile_huber_loss_hand_computed():
    q = torch.tensor([[0.0, 2.0]])  # taus 0.25, 0.75
    # target 1: u = [1, -1], huber = 0.5 each, weights |0.25 - 0| = 0.25, |0.75 - 1| = 0.25
    assert C.quantile_huber_loss(q, torch.tensor([1.0]), 1.0).item() == pytest.approx(0.125)
    # target 3: u = [3, 1]; huber = [1*(3-0.5), 0.5] = [2.5, 0.5]; weights [0.25, 0.75]
    assert C.quantile_huber_loss(q, torch.tensor([3.0]), 1.0).item() == pytest.approx((0.625 + 0.375) / 2)
    # kappa 2: huber = [2*(3-1), 0.5] / 2 = [2, 0.25]; weights [0.25, 0.75] -> [0.5, 0.1875]
    el = C.quantile_huber_loss(q, torch.tensor([3.0]), 2.0, reduce=False)
    assert torch.allclose(el, torch.tensor([[0.5, 0.1875]]))
    with pytest.raises(ValueError, match="huber_kappa"):
        C.quantile_huber_loss(q, torch.tensor([3.0]), 0.0)


def test_quantile_huber_loss_broadcasts_over_critics():
    q = torch.randn(2, 5, 8)
    t = torch.randn(5)
    both = C.quantile_huber_loss(q, t, 1.0)
    assert both.shape == (2, 5)
    assert torch.allclose(both[1], C.quantile_huber_loss(q[1], t, 1.0))


def test_quantile_regression_recovers_quantiles():
    torch.manual_seed(0)
    samples = torch.linspace(0, 1, 201)
    q = torch.zeros(4, requires_grad=True)
    opt = torch.optim.Adam([q], lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        C.quantile_huber_loss(q.unsqueeze(0), samples, kappa=0.01).mean().backward()
        opt.step()
    assert torch.allclose(q.detach(), C.quantile_taus(4), atol=0.02)


def test_two_hot_hand_computed():
    # atoms -1, -0.5, 0, 0.5, 1
    out = C.two_hot(torch.tensor([0.2, 1.0, -3.0, 0.0, -1.0]), -1.0, 1.0, 5)
    expected = torch.tensor(
        [
            [0, 0, 0.6, 0.4, 0],
            [0, 0, 0, 0, 1],
            [1, 0, 0, 0, 0],
            [0, 0, 1, 0, 0],
            [1, 0, 0, 0, 0],
        ]
    )
    assert torch.allclose(out, expected, atol=1e-6)


def test_two_hot_preserves_the_mean_inside_the_support():
    support = C.categorical_support(-10, 10, 51)
    t = torch.linspace(-9.99, 9.99, 997)
    p = C.two_hot(t, -10, 10, 51)
    assert torch.allclose(p.sum(-1), torch.ones_like(t))
    assert torch.allclose(p @ support, t, atol=1e-5)


def test_hl_gauss_is_a_normalised_near_unbiased_distribution():
    support = C.categorical_support(-10, 10, 51)
    t = torch.tensor([0.0, 1.23, -4.5])
    p = C.hl_gauss(t, -10, 10, 51)
    assert torch.allclose(p.sum(-1), torch.ones(3))
    assert (p >= 0).all()
    assert torch.allclose(p @ support, t, atol=1e-3)
    # symmetric around a target on an atom
    p0 = p[0]
    assert torch.allclose(p0, p0.flip(0), atol=1e-6)
    # sigma = 0.75 * dz: mass on the target's atom = P(|X| < dz/2) = erf(0.5 / (0.75 sqrt 2))
    assert p0[25].item() == pytest.approx(math.erf(0.5 / (0.75 * math.sqrt(2))), rel=1e-4)


def test_project_categorical_dispatch():
    t = torch.tensor([0.3])
    assert torch.equal(C.project_categorical(t, -1, 1, 5, "two_hot"), C.two_hot(t, -1, 1, 5))
    assert torch.equal(C.project_categorical(t, -1, 1, 5, "hl_gauss"), C.hl_gauss(t, -1, 1, 5))
    with pytest.raises(ValueError, match="categorical_projection"):
        C.project_categorical(t, -1, 1, 5, "nearest")


def test_categorical_cross_entropy_expectation_and_std():
    logits = torch.zeros(1, 4)
    target = torch.tensor([[0.0, 0.5, 0.5, 0.0]])
    assert C.categorical_cross_entropy(logits, target).item() == pytest.approx(math.log(4))
    support = torch.tensor([-3.0, -1.0, 1.0, 3.0])
    assert C.categorical_expectation(logits, support).item() == pytest.approx(0.0)
    assert C.categorical_std(logits, support).item() == pytest.approx(math.sqrt(5.0))
    sharp = torch.tensor([[0.0, 0.0, 50.0, 0.0]])
    assert C.categorical_expectation(sharp, support).item() == pytest.approx(1.0)


def test_categorical_support_validation():
    assert torch.allclose(C.categorical_support(-1, 1, 3), torch.tensor([-1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="n_atoms"):
        C.categorical_support(-1, 1, 1)
    with pytest.raises(ValueError, match="v_min"):
        C.categorical_support(1, 1, 5)


def test_aggregate_min_and_mean():
    v = torch.tensor([[1.0, 5.0], [3.0, 2.0]])
    assert torch.equal(C.aggregate(v, "min"), torch.tensor([1.0, 2.0]))
    assert torch.equal(C.aggregate(v, "mean"), torch.tensor([2.0, 3.5]))
    assert torch.equal(C.aggregate(v[:1], "min"), v[0])
    with pytest.raises(ValueError, match="value_aggregation"):
        C.aggregate(v, "max")


def test_aggregate_quantiles_sorts_each_critic_first():
    q = torch.tensor([[[3.0, 1.0, 2.0]], [[0.0, 5.0, 4.0]]])  # [2 critics, 1 sample, 3]
    assert torch.equal(C.aggregate_quantiles(q, "min"), torch.tensor([[0.0, 2.0, 3.0]]))
    assert torch.equal(C.aggregate_quantiles(q, "mean"), torch.tensor([[0.5, 3.0, 4.0]]))


def test_cvar_hand_computed():
    q = torch.tensor([4.0, 1.0, 3.0, 2.0])  # sorted 1, 2, 3, 4, each covering 1/4
    assert C.cvar_from_quantiles(q, 1.0).item() == pytest.approx(2.5)
    assert C.cvar_from_quantiles(q, 0.5).item() == pytest.approx(1.5)
    assert C.cvar_from_quantiles(q, 0.25).item() == pytest.approx(1.0)
    # alpha = 0.375: 1 * 0.25 + 2 * 0.125 = 0.5, / 0.375
    assert C.cvar_from_quantiles(q, 0.375).item() == pytest.approx(0.5 / 0.375)
    batch = torch.tensor([[1.0, 2.0], [10.0, 0.0]])
    assert torch.allclose(C.cvar_from_quantiles(batch, 0.5), torch.tensor([1.0, 0.0]))
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="cvar_alpha"):
            C.cvar_from_quantiles(q, bad)


def _learned_quantiles_on_a_skewed_target(kappa, steps=3000, lr=3e-3, batch=256, n=32):
    """Quantile regression of N free quantiles on the standardised exponential ``E - 1`` (mean 0,
    sd 1, skewness 2): (mean bias, spread ratio) of the quantiles averaged over the last 500 steps
    against the true midpoint quantiles ``-log(1 - tau) - 1``."""
    gen = torch.Generator().manual_seed(0)
    taus = C.quantile_taus(n)
    q = torch.zeros(n, requires_grad=True)
    opt = torch.optim.Adam([q], lr=lr)
    avg = torch.zeros(n)
    for t in range(steps):
        x = -torch.log1p(-torch.rand(batch, generator=gen)) - 1.0
        opt.zero_grad()
        C.quantile_huber_loss(q.unsqueeze(0), x, kappa, taus).mean().backward()
        opt.step()
        if t >= steps - 500:
            avg += q.detach() / 500
    true = -torch.log1p(-taus.double()).float() - 1.0
    return (avg.mean() - true.mean()).item(), (avg.std() / true.std()).item()


def test_default_huber_kappa_learns_unbiased_quantiles_of_a_skewed_return():
    """The agent's default ``huber_kappa`` (normalised units) gives the value (mean of the quantiles)
    within 0.02 sd and the spread within 8% on a skewed target; kappa=1 does not (Huber quantiles
    are pulled toward the mean and narrowed)."""
    import inspect

    from lifelong import DistributionalPPO

    kappa = inspect.signature(DistributionalPPO.__init__).parameters["huber_kappa"].default
    bias, spread = _learned_quantiles_on_a_skewed_target(kappa)
    assert abs(bias) < 0.02 and spread > 0.92, (kappa, bias, spread)
    bias1, spread1 = _learned_quantiles_on_a_skewed_target(1.0)
    assert bias1 > 0.03 and spread1 < 0.85, (bias1, spread1)
