"""The agent's small parts: schedules as data, hyperparameter validation, the return normaliser."""
import json

import numpy as np
import pytest
import torch

from lifelong.agent.hyperparameters import TUNABLE, validate
from lifelong.agent.normalization import ReturnNormalizer
from lifelong.agent.schedules import Constant, Linear, as_schedule, from_dict


def test_schedules_roundtrip_and_values():
    lin = Linear(1e-3, 1e-4)
    assert lin(1.0) == 1e-3 and lin(0.0) == pytest.approx(1e-4) and lin(0.5) == pytest.approx(5.5e-4)
    for s in (Constant(0.2), lin):
        d = json.loads(json.dumps(s.to_dict()))
        assert from_dict(d) == s
    assert as_schedule(0.1) == Constant(0.1)
    assert as_schedule({"type": "linear", "start": 1.0, "end": 0.0}) == Linear(1.0, 0.0)
    f = lambda p: p  # noqa: E731
    assert as_schedule(f) is f
    for bad in ({"type": "cosine"}, {"type": "constant"}, {"type": "constant", "value": 1, "x": 2}, "x"):
        with pytest.raises(ValueError):
            from_dict(bad) if isinstance(bad, dict) else as_schedule(bad)
    with pytest.raises(ValueError):
        Constant(float("nan"))


def test_validate_hyperparameters():
    assert set(TUNABLE) == {"learning_rate", "ent_coef", "vf_coef", "clip_range", "gamma", "gae_lambda",
                            "max_grad_norm", "n_epochs", "batch_size", "sigma", "vgs_alpha"}
    assert validate("gamma", np.float32(0.5)) == 0.5
    assert validate("n_epochs", 3.0) == 3 and isinstance(validate("n_epochs", np.int64(3)), int)
    assert validate("ent_coef", 0) == 0.0
    for name, bad in [("gamma", 1.01), ("gamma", -0.1), ("learning_rate", 0.0), ("clip_range", 0.0),
                      ("n_epochs", 0), ("n_epochs", 1.5), ("batch_size", 1), ("sigma", -1e-3),
                      ("vgs_alpha", float("inf")), ("ent_coef", True), ("vf_coef", "1"), ("nope", 1)]:
        with pytest.raises(ValueError, match=name):
            validate(name, bad)


def test_return_normalizer_merges_like_numpy():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(5.0, 3.0, size=n) for n in (10, 100, 37)]
    norm = ReturnNormalizer()
    for c in chunks:
        norm.update(c)
    allx = np.concatenate(chunks)
    assert norm.count.item() == allx.size
    assert norm.mean.item() == pytest.approx(allx.mean(), rel=1e-5)
    assert norm.var.item() == pytest.approx(allx.var(), rel=1e-5)
    x = torch.tensor([1.0, 5.0, 9.0])
    assert torch.allclose(norm.denormalize(norm.normalize(x)), x, atol=1e-5)
    assert torch.allclose(norm.normalize(x), (x - allx.mean()) / allx.std(), atol=1e-4)


def test_return_normalizer_state_and_disabled():
    a = ReturnNormalizer()
    a.update(torch.tensor([1.0, 2.0, 3.0]))
    b = ReturnNormalizer()
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.mean, a.mean) and torch.equal(b.count, a.count)
    off = ReturnNormalizer(enabled=False)
    off.update(np.array([100.0, 200.0]))
    x = torch.tensor([3.0])
    assert torch.equal(off.normalize(x), x) and torch.equal(off.denormalize(x), x)
    const = ReturnNormalizer()
    const.update(np.zeros(5))
    assert torch.isfinite(const.normalize(torch.tensor([1.0]))).all()  # std floored


def test_return_normalizer_horizon_is_the_stated_mixture():
    """With ``horizon=H`` batch k merges with rate r_k = max(n/(count+n), 1/H): the statistics are
    the mixture of the batches with weights w_k = r_k * prod_{j>k} (1 - r_j)."""
    rng = np.random.default_rng(1)
    batches = [rng.normal(rng.uniform(-5, 5), rng.uniform(0.5, 3), size=64) for _ in range(9)]
    norm = ReturnNormalizer(horizon=3)
    for b in batches:
        norm.update(b)
    rates = np.array([max(1.0 / (k + 1), 1.0 / 3) for k in range(len(batches))])
    weights = np.array([rates[k] * np.prod(1 - rates[k + 1:]) for k in range(len(batches))])
    assert weights.sum() == pytest.approx(1.0)
    mean = sum(w * b.mean() for w, b in zip(weights, batches))
    second = sum(w * (b.var() + b.mean() ** 2) for w, b in zip(weights, batches))
    assert norm.mean.item() == pytest.approx(mean, rel=1e-5)
    assert norm.var.item() == pytest.approx(second - mean**2, rel=1e-5)
    # up to H equal batches it is exactly count-weighted
    a, b = ReturnNormalizer(horizon=3), ReturnNormalizer()
    for x in batches[:3]:
        a.update(x)
        b.update(x)
    assert a.mean.item() == pytest.approx(b.mean.item(), rel=1e-6)
    assert a.var.item() == pytest.approx(b.var.item(), rel=1e-6)


def test_return_normalizer_horizon_follows_a_changed_reward_scale():
    rng = np.random.default_rng(2)
    ema, count = ReturnNormalizer(horizon=10), ReturnNormalizer()
    for scale, n_batches in ((1.0, 200), (100.0, 40)):
        for _ in range(n_batches):
            x = rng.normal(0.0, scale, size=256)
            ema.update(x)
            count.update(x)
    assert 90 < ema.std.item() < 110          # 4 horizons after the change
    assert count.std.item() < 50               # count-weighted: sqrt(40/240) * 100 ~ 41


@pytest.mark.parametrize("bad", [0, 0.5, -3, float("nan"), float("inf"), True, "10"])
def test_return_normalizer_horizon_is_validated(bad):
    with pytest.raises(ValueError, match="horizon"):
        ReturnNormalizer(horizon=bad)
    from lifelong import DistributionalPPO
    with pytest.raises(ValueError, match=r"normalize_returns_horizon=.*None.*>= 1"):
        DistributionalPPO("MlpPolicy", "CartPole-v1", normalize_returns_horizon=bad)


def _surrogate_reference(log_prob, old_log_prob, advantages, clip_range, mask):
    """PPO's clipped objective and statistics as Stable-Baselines3 writes them (autograd)."""
    if mask is not None:
        log_prob, old_log_prob, advantages = log_prob[mask], old_log_prob[mask], advantages[mask]
    ratio = torch.exp(log_prob - old_log_prob)
    loss = -torch.min(advantages * ratio, advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)).mean()
    with torch.no_grad():
        log_ratio = log_prob - old_log_prob
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clip_fraction = (torch.abs(ratio - 1) > clip_range).to(ratio.dtype).mean()
    return loss, approx_kl, clip_fraction


def test_clipped_surrogate_equals_ppo_objective_and_its_gradient():
    """The one-node surrogate against the autograd formula (float64): loss, statistics and the
    gradient in all four regions (advantage sign x ratio inside/outside the clip range), at
    ratio exactly 1 (the first minibatch of an update, where min's two terms tie) and with a mask."""
    from lifelong.agent.update import clipped_surrogate

    torch.manual_seed(0)
    old = torch.randn(64, dtype=torch.float64)
    shift = torch.cat([torch.zeros(16, dtype=torch.float64), 0.6 * torch.randn(48, dtype=torch.float64)])
    advantages = torch.randn(64, dtype=torch.float64)
    mask = torch.rand(64) < 0.7
    for m in (None, mask):
        lp_ref = (old + shift).requires_grad_(True)
        lp = (old + shift).requires_grad_(True)
        expected = _surrogate_reference(lp_ref, old, advantages, 0.2, m)
        got = clipped_surrogate(lp, old, advantages, 0.2, m)
        for e, g in zip(expected, got):
            assert torch.allclose(g, e, rtol=1e-12, atol=1e-15)
        (expected_grad,) = torch.autograd.grad(3.0 * expected[0], lp_ref)
        (grad,) = torch.autograd.grad(3.0 * got[0], lp)
        assert torch.allclose(grad, expected_grad, rtol=1e-12, atol=1e-15)
        assert (grad != 0).sum() > 16 and (grad == 0).sum() > 4  # clipped samples carry no gradient
        assert not got[1].requires_grad and not got[2].requires_grad


def test_clipped_surrogate_gradient_is_nan_where_autograd_s_is():
    """A NaN log-probability must not vanish from the gradient (autograd's would be NaN)."""
    from lifelong.agent.update import clipped_surrogate

    log_prob = torch.tensor([0.1, float("nan"), -0.2], requires_grad=True)
    loss, _, _ = clipped_surrogate(log_prob, torch.zeros(3), torch.tensor([1.0, 1.0, -1.0]), 0.2)
    (grad,) = torch.autograd.grad(loss, log_prob)
    assert torch.isnan(loss) and torch.isnan(grad[1]) and torch.isfinite(grad[[0, 2]]).all()
