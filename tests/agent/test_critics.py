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


def _quantile_huber_reference(q, g, kappa):
    """The quantile-Huber loss of one sample from its formula, in floats."""
    n = len(q)
    total = 0.0
    for i, qi in enumerate(q):
        tau, u = (2 * i + 1) / (2 * n), g - qi
        h = u * u / 2 if abs(u) <= kappa else kappa * (abs(u) - kappa / 2)
        total += abs(tau - (u < 0)) * h / kappa
    return total / n


def test_mean_anchored_loss_matches_its_formula_and_splits_the_gradient():
    """``(G - m)^2 + QH(m + d)``: the value equals the formula; the gradient's component along
    the mean, ``sum_i dL/dq_i``, is the squared error's ``2 (m - G)`` alone (the quantile-Huber
    term moves only the deviations), and that term's gradient is the plain loss's, centred."""
    torch.manual_seed(0)
    q = torch.randn(3, 5, requires_grad=True)
    g = torch.tensor([0.4, -2.0, 3.0])
    loss = C.mean_anchored_quantile_loss(q, g, kappa=0.5)
    for b in range(3):
        qb = q[b].tolist()
        m = sum(qb) / 5
        assert loss[b].item() == pytest.approx((g[b].item() - m) ** 2 + _quantile_huber_reference(qb, g[b].item(), 0.5))
    loss.sum().backward()
    m = q.detach().mean(-1)
    assert torch.allclose(q.grad.sum(-1), 2 * (m - g), atol=1e-5)
    plain = q.detach().clone().requires_grad_(True)
    C.quantile_huber_loss(plain, g, 0.5).sum().backward()
    centred = plain.grad - plain.grad.mean(-1, keepdim=True)
    assert torch.allclose(q.grad - (2 * (m - g) / 5).unsqueeze(-1), centred, atol=1e-6)


def test_mean_anchored_loss_with_one_quantile_learns_by_the_squared_error():
    """One quantile has no deviation: the gradient is exactly Stable-Baselines3's squared error's."""
    v = torch.tensor([[0.3], [-2.0], [5.0]], requires_grad=True)
    g = torch.tensor([1.0, 4.0, -40.0])
    C.mean_anchored_quantile_loss(v, g, kappa=0.03).sum().backward()
    assert torch.equal(v.grad[:, 0], 2 * (v.detach()[:, 0] - g))


@pytest.mark.parametrize("n_quantiles, kappa", [(32, 0.03), (5, 0.5), (1, 0.03), (8, 100.0)])
def test_batch_loss_equals_the_reference_and_its_gradient(n_quantiles, kappa):
    """The closed-form loss (one autograd node) against the autograd reference, in float64:
    each critic's batch mean and the gradient of a weighted sum of critics, with and without a
    mask (the recurrent agent's padding)."""
    torch.manual_seed(n_quantiles)
    taus = C.quantile_taus(n_quantiles, dtype=torch.float64)
    q = (0.7 * torch.randn(2, 40, n_quantiles, dtype=torch.float64)).requires_grad_(True)
    g = torch.randn(40, dtype=torch.float64)
    mask = torch.rand(40) < 0.6
    scale = torch.tensor([0.5, 1.5], dtype=torch.float64)
    for m in (None, mask):
        per_sample = C.mean_anchored_quantile_loss(q, g, kappa, taus)
        expected = per_sample.mean(-1) if m is None else per_sample[:, m].mean(-1)
        (expected_grad,) = torch.autograd.grad((expected * scale).sum(), q)
        got = C.batch_mean_anchored_quantile_loss(q, g, kappa, taus, m)
        (got_grad,) = torch.autograd.grad((got * scale).sum(), q)
        assert torch.allclose(got, expected, rtol=1e-12, atol=1e-14)
        assert torch.allclose(got_grad, expected_grad, rtol=1e-10, atol=1e-15)
        if m is not None:
            assert torch.all(got_grad[:, ~m] == 0)


def test_batch_loss_rejects_bad_shapes_and_kappa():
    q = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="huber_kappa must be > 0, got 0"):
        C.batch_mean_anchored_quantile_loss(q, torch.zeros(3), 0.0, C.quantile_taus(4))
    with pytest.raises(ValueError, match=r"targets \[B\], got \(2, 3, 4\) and \(4,\)"):
        C.batch_mean_anchored_quantile_loss(q, torch.zeros(4), 1.0, C.quantile_taus(4))


def test_mean_anchored_loss_clips_the_mean_and_the_quantiles():
    """PPO's value clipping: the mean's squared error is the max of the clipped and unclipped
    ones (Stable-Baselines3's rule), each quantile's Huber term likewise."""
    old = torch.tensor([[0.0, 1.0]])
    new = torch.tensor([[1.0, 2.0]], requires_grad=True)  # the mean moved 1.0 up, clip 0.25
    g = torch.tensor([3.0])
    loss = C.mean_anchored_quantile_loss(new, g, 1.0, old_quantiles=old, clip_range=0.25)
    clipped_mean = 0.5 + 0.25
    unclipped_mean = 1.5
    mean_term = max((3 - clipped_mean) ** 2, (3 - unclipped_mean) ** 2)
    n = 2
    taus = [0.25, 0.75]
    per = []
    for i, (o, a) in enumerate(zip([0.0, 1.0], [1.0, 2.0])):
        c = o + max(-0.25, min(0.25, a - o))
        vals = []
        for x in (a, c):
            u = 3.0 - x
            h = u * u / 2 if abs(u) <= 1.0 else abs(u) - 0.5
            vals.append(abs(taus[i] - (u < 0)) * h)
        per.append(max(vals))
    shape_term = sum(per) / n
    assert loss.item() == pytest.approx(mean_term + shape_term)
    with pytest.raises(ValueError, match="old_quantiles"):
        C.mean_anchored_quantile_loss(new, g, 1.0, clip_range=0.25)


def test_quantile_mean_loss_is_validated():
    kwargs = dict(critic="quantile", n_quantiles=4, huber_kappa=1.0, n_atoms=51, v_min=-1.0, v_max=1.0,
                  categorical_projection="two_hot", value_aggregation="min", cvar_alpha=None)
    C.validate_distributional_args(**kwargs, quantile_mean_loss="quantile_huber")
    with pytest.raises(ValueError, match=r"quantile_mean_loss='l2' is not supported.*'squared_error', 'quantile_huber'"):
        C.validate_distributional_args(**kwargs, quantile_mean_loss="l2")


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
