"""Plasticity diagnostics against hand-built networks with known answers."""
import numpy as np
import pytest
import torch
from torch import nn

from lifelong import diagnostics as D


def net_with_dead_units(n_dead=3, width=8):
    """Linear(4, width) -> ReLU -> Linear(width, 2); the first n_dead units never activate."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 2))
    with torch.no_grad():
        net[0].weight[:n_dead] = 0.0
        net[0].bias[:n_dead] = -1.0
        net[0].bias[n_dead:] = 5.0        # the others are always active
    return net


def test_dormant_fraction_counts_dead_units():
    net = net_with_dead_units(3, 8)
    x = torch.randn(200, 4)
    fr = D.dormant_fraction(net, x, tau=0.0)
    assert fr == {"1": 3 / 8, "all": 3 / 8}
    acts = net[1](net[0](x))
    mask = D.dormant_units(acts, tau=0.0)
    assert mask.tolist() == [True] * 3 + [False] * 5
    assert D.dormant_fraction(acts, tau=0.0) == 3 / 8


def test_tau_dormant_score_is_relative_to_the_layer_mean():
    # unit means |h| = [1, 1, 1, 0.05]: layer mean 0.7625, scores [1.31, 1.31, 1.31, 0.066]
    acts = torch.tensor([[1.0, 1.0, 1.0, 0.05]]).repeat(10, 1)
    assert D.dormant_units(acts, tau=0.05).tolist() == [False, False, False, False]
    assert D.dormant_units(acts, tau=0.1).tolist() == [False, False, False, True]
    assert D.dormant_units(torch.zeros(5, 3), tau=0.0).all()          # all-zero layer: all dead
    conv = torch.zeros(2, 4, 3, 3)
    conv[:, 1:] = 1.0                                                  # channel 0 dead
    assert D.dormant_units(conv, tau=0.0).tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="tau"):
        D.dormant_units(acts, tau=-1.0)


def test_effective_rank_of_known_rank_features():
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(100, 100))
    orth = q[:, :5] @ torch.linalg.qr(torch.randn(5, 5))[0] * 3.0     # 5 equal singular values
    assert D.effective_rank(orth) == pytest.approx(5.0, rel=1e-9)
    assert D.effective_rank(orth, method="srank") == 5
    # rank-3 features in 20 columns: Roy's erank <= 3, srank == 3 for well-spread spectra
    low = torch.randn(200, 3) @ torch.randn(3, 20)
    assert 1.0 < D.effective_rank(low) <= 3.0 + 1e-9
    assert D.effective_rank(low, method="srank", delta=0.0) == 3
    # full rank, one dominant direction: srank 1 at delta=0.01 when the rest is tiny
    spiky = torch.diag(torch.tensor([1000.0, 1e-3, 1e-3]))
    assert D.effective_rank(spiky, method="srank") == 1
    assert D.effective_rank(torch.zeros(10, 4)) == 0.0
    assert D.effective_rank(np.eye(4)) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="method"):
        D.effective_rank(orth, method="entropy")


def test_weight_norms():
    net = nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.fill_(1.0)      # 6 ones: norm sqrt(6)
        net[0].bias.fill_(2.0)        # 2 twos
        net[2].weight.fill_(3.0)      # 2 threes: norm sqrt(18)
        net[2].bias.fill_(0.0)
    n = D.weight_norms(net)
    assert n["0"] == pytest.approx(6 ** 0.5)
    assert n["2"] == pytest.approx(18 ** 0.5)
    assert n["all"] == pytest.approx((6 + 8 + 18) ** 0.5)
    assert set(n) == {"0", "2", "all"}


def test_capture_activations_hooks_are_removed_and_repeats_named():
    act = nn.ReLU()
    net = nn.Sequential(nn.Linear(2, 2), act, nn.Linear(2, 2), act)   # one module used twice
    x = torch.randn(4, 2)
    with D.capture_activations(net) as acts:
        net(x)
    assert list(acts) == ["1", "1#1"]
    with D.capture_activations(net, repeat="first") as acts:
        net(x)
    assert list(acts) == ["1"]
    assert not net[1]._forward_hooks
    with pytest.raises(ValueError, match="no module"):
        with D.capture_activations(net, layers=["nope"]):
            pass
    # a model without activation modules: Linear outputs are used
    lin = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    assert set(D.dormant_fraction(lin, torch.randn(5, 3))) == {"0", "1", "all"}


def test_model_diagnostics_flat_dict_of_floats():
    net = net_with_dead_units(2, 8)
    d = D.model_diagnostics(net, torch.randn(64, 4), tau=0.0)
    assert d["plasticity/dormant_fraction"] == 2 / 8
    assert d["plasticity/dormant_fraction/1"] == 2 / 8
    assert d["plasticity/effective_rank"] == d["plasticity/effective_rank/1"]
    assert d["plasticity/weight_norm"] == pytest.approx(D.weight_norms(net)["all"])
    assert all(isinstance(v, float) for v in d.values())


class FakeUPGD(torch.optim.SGD):
    def gating_stats(self):
        return {"gate_mean": torch.tensor(0.25), "utility_max": 2}


def test_upgd_gate_stats():
    p = [nn.Parameter(torch.zeros(2))]
    assert D.upgd_gate_stats(torch.optim.Adam(p)) == {}
    assert D.upgd_gate_stats(FakeUPGD(p, lr=0.1)) == {"gate_mean": 0.25, "utility_max": 2.0}
    from lifelong.optim import UPGD
    opt = UPGD(p)
    assert D.upgd_gate_stats(opt) == {}
    p[0].grad = torch.ones(2)
    opt.step()
    stats = D.upgd_gate_stats(opt)
    assert {"gate_mean", "utility_mean", "utility_max", "utility_min"} <= set(stats)
    assert 0.0 < stats["gate_mean"] < 1.0


def test_policy_diagnostics_on_sb3_policy_and_rng_untouched():
    from stable_baselines3 import PPO
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, n_epochs=1, seed=0,
                device="cpu")
    model.learn(64)
    obs = D.observations_from_buffer(model.rollout_buffer, 32)
    assert obs.shape == (32, 4)
    state = torch.get_rng_state()
    d = D.policy_diagnostics(model.policy, obs)
    assert torch.equal(state, torch.get_rng_state())
    for key in ("plasticity/dormant_fraction", "plasticity/effective_rank",
                "plasticity/weight_norm"):
        assert key in d and np.isfinite(d[key])
    layers = [k for k in d if k.startswith("plasticity/dormant_fraction/")]
    assert len(layers) == 4          # 2 actor + 2 critic Tanh layers
    assert "plasticity/weight_norm/action_net" in d
    # effective rank aggregate = mean over the last layer of the actor and of the critic
    last = [d["plasticity/effective_rank/mlp_extractor.policy_net.3"],
            d["plasticity/effective_rank/mlp_extractor.value_net.3"]]
    assert d["plasticity/effective_rank"] == pytest.approx(np.mean(last))


def test_policy_diagnostics_on_distributional_ppo_matches_the_agent():
    """Twin critics are a batched ensemble: measured per member, as the agent does."""
    from lifelong.agent.ppo import DistributionalPPO
    model = DistributionalPPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, n_epochs=1,
                              seed=0, device="cpu", optimizer="adaptive_upgd")
    model.learn(64)
    obs = D.observations_from_buffer(model.rollout_buffer, 64)
    d = D.policy_diagnostics(model.policy, obs)
    for key, value in model.plasticity_diagnostics(n_obs=64).items():
        assert d[key] == pytest.approx(value, rel=1e-6)
    assert "plasticity/dormant_fraction/critics.member1.hidden1" in d
    assert "plasticity/upgd_gate_mean" in d           # a UPGD optimizer: its gate is measured


# ------------------------------------------------------------------------ gate histogram
def test_gate_histogram_bins_known_values():
    gates = torch.tensor([0.0, 0.05, 0.1, 0.55, 0.5, 0.999, 1.0, float("nan")])
    hist = D.gate_histogram(gates, bins=10)
    expected = np.zeros(10)
    for g in (0.0, 0.05, 0.1, 0.55, 0.5, 0.999, 1.0):
        expected[min(int(g * 10), 9)] += 1
    assert hist == pytest.approx((expected / expected.sum()).tolist())
    assert sum(hist) == pytest.approx(1.0)
    # a list of tensors is pooled; no finite value gives []
    assert D.gate_histogram([gates[:3], gates[3:]], bins=10) == pytest.approx(hist)
    assert D.gate_histogram(torch.tensor([float("nan")])) == []


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_gate_histogram_rejects_bad_bins(bad):
    with pytest.raises(ValueError, match="bins"):
        D.gate_histogram(torch.tensor([0.5]), bins=bad)


def test_gate_histogram_rejects_values_outside_unit_interval():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        D.gate_histogram(torch.tensor([0.5, 1.5]))


def test_upgd_gates_follow_the_paper_and_agree_with_gating_stats():
    from lifelong.optim import UPGD, AdaptiveUPGD
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    assert D.upgd_gates(torch.optim.Adam(net.parameters())) == []
    assert D.upgd_gate_histogram(torch.optim.Adam(net.parameters())) == []
    for cls in (UPGD, AdaptiveUPGD):
        opt = cls(net.parameters(), lr=1e-2, sigma=0.0, beta_utility=0.9)
        assert D.upgd_gates(opt) == []
        for _ in range(5):
            opt.zero_grad()
            net(torch.randn(16, 4)).pow(2).mean().backward()
            opt.step()
        gates = D.upgd_gates(opt)
        assert [g.shape for g in gates] == [p.shape for p in net.parameters()]
        # the formula, written out: 1 - s = 1 - sigmoid(u_hat / eta)
        u_hat = [opt.state[p]["utility"].double() / (1 - 0.9 ** 5) for p in net.parameters()]
        eta = max(float(u.max()) for u in u_hat)
        for g, u in zip(gates, u_hat):
            assert torch.allclose(g, 1 - torch.sigmoid(u / eta), atol=1e-12)
        flat = torch.cat([g.flatten() for g in gates])
        assert float(flat.mean()) == pytest.approx(opt.gating_stats()["gate_mean"], abs=1e-9)
        hist = D.upgd_gate_histogram(opt, bins=4)
        assert len(hist) == 4 and sum(hist) == pytest.approx(1.0)
        assert hist == pytest.approx(D.gate_histogram(flat, bins=4))


@pytest.mark.parametrize("mech", [dict(gate="layer", gate_temperature=0.3),
                                  dict(gate="global", utility="unit"),
                                  dict(gate="layer", utility="unit", gate_temperature=2.0),
                                  dict(gate="none", l2_init=0.1)])
def test_upgd_gates_follow_each_groups_gate_normalisation(mech):
    from lifelong.optim import AdaptiveUPGD
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = AdaptiveUPGD(net.parameters(), lr=1e-2, sigma=0.0, beta_utility=0.9, **mech)
    for _ in range(4):
        opt.zero_grad()
        net(torch.randn(16, 4)).pow(2).mean().backward()
        opt.step()
    gates = D.upgd_gates(opt)
    params = list(net.parameters())
    u_hat = [opt.state[p]["utility"].double() / (1 - 0.9 ** 4) for p in params]
    eta_all = max(float(u.max()) for u in u_hat)
    for p, g, u in zip(params, gates, u_hat):
        eta = max(float(u.max()) if mech["gate"] == "layer" else eta_all, np.finfo(np.float64).tiny)
        expected = torch.sigmoid(-u / (eta * mech.get("gate_temperature", 1.0)))
        if mech["gate"] == "none":                     # the gate off: 1/2 on every weight
            expected = torch.full(p.shape, 0.5, dtype=torch.float64)
        if mech.get("utility") == "unit":              # one gate per output unit (row)
            assert u.shape == (p.shape[0],)
            expected = expected.reshape(-1, *([1] * (p.dim() - 1))).expand(p.shape)
        assert g.shape == p.shape and torch.allclose(g, expected, atol=1e-12)
    flat = torch.cat([g.flatten() for g in gates])
    assert float(flat.mean()) == pytest.approx(opt.gating_stats()["gate_mean"], abs=1e-9)


# ------------------------------------------------------------------------ SB3 callback
@pytest.mark.parametrize("env_id", ["CartPole-v1", "FrozenLake-v1"])  # Box and Discrete observations
def test_plasticity_callback_logs_the_diagnostics_of_sb3_ppo(env_id, tmp_path):
    """On Stable-Baselines3's own PPO, every rollout with every_rollouts=1: the logged values are
    policy_diagnostics of the rollout's observations in the buffer's layout (a Discrete
    observation is stored as shape (1,), which the env-format obs_to_tensor refuses)."""
    import csv

    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.utils import obs_as_tensor

    model = PPO("MlpPolicy", env_id, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.set_logger(configure(str(tmp_path), ["csv"]))
    callback = D.PlasticityCallback(every_rollouts=1, n_obs=16)
    model.learn(128, callback=callback)
    with open(tmp_path / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert callback.rollouts == 2 and len(rows) == 2
    for row in rows:  # through the algorithm's logger, every rollout
        assert np.isfinite(float(row["plasticity/dormant_fraction"]))
        assert np.isfinite(float(row["plasticity/effective_rank"]))
    for key, value in callback.last.items():  # the last rollout's values are what was logged
        assert float(rows[-1][key]) == pytest.approx(value, rel=1e-5), key
    # on the buffer's observations in its own layout, the diagnostics run for any space
    obs = obs_as_tensor(D.observations_from_buffer(model.rollout_buffer, 16), model.device)
    assert np.isfinite(D.policy_diagnostics(model.policy, obs)["plasticity/dormant_fraction"])
