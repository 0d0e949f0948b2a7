"""DistributionalPPO: construction, critics that learn, action/observation spaces, optimizer,
hyperparameters, logging and Stable-Baselines3 compatibility. Tiny rollouts throughout."""
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.env_util import make_vec_env

from lifelong import DistributionalPPO
from lifelong.agent import critics as C
from lifelong.agent.update import critic_losses
from lifelong.optim import AdaptiveUPGD, UPGD
from lifelong.agent.schedules import Constant, Linear

TINY = dict(n_steps=32, batch_size=16, n_epochs=2, seed=0, policy_kwargs=dict(net_arch=[16, 16]))


class SpaceEnv(gym.Env):
    """Random observations of any space; reward depends on the action so there is a signal."""

    def __init__(self, observation_space, action_space, horizon=20):
        self.observation_space = observation_space
        self.action_space = action_space
        self.horizon = horizon
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self.t += 1
        reward = float(np.mean(np.asarray(action, dtype=np.float64)))
        return self.observation_space.sample(), reward, False, self.t >= self.horizon, {}


def box(n=3):
    return spaces.Box(-1.0, 1.0, (n,), dtype=np.float32)


def make(env="CartPole-v1", policy="MlpPolicy", **kw):
    args = dict(TINY)
    args.update(kw)
    return DistributionalPPO(policy, env, **args)


def snapshot(model):
    return [p.detach().clone() for p in model.policy.parameters()]


# ------------------------------------------------------------------ critics learn
@pytest.mark.parametrize("critic", ["quantile", "categorical"])
def test_both_critics_trunk_and_head_change(critic):
    model = make(critic=critic, n_epochs=1)
    ens = model.policy.critics
    before = [[t.detach().clone() for t in ens.member_parameters(k)] for k in range(2)]
    model.learn(64)
    for k in range(2):
        after = ens.member_parameters(k)
        for i, (b, a) in enumerate(zip(before[k], after)):
            assert not torch.equal(b, a), f"critic {k} tensor {i} (layer {i // 2}) did not change"
    # independent parameters: the two members differ
    assert not torch.equal(ens.weights[0][0], ens.weights[0][1])


def test_single_critic_trunk_and_head_change():
    model = make(twin_critics=False, n_epochs=1)
    ens = model.policy.critics
    assert ens.n_members == 1
    before = [t.detach().clone() for t in ens.member_parameters(0)]
    model.learn(64)
    assert all(not torch.equal(b, a) for b, a in zip(before, ens.member_parameters(0)))
    assert "train/critic1_loss" not in model.logger.name_to_value


def test_critic_gradients_are_independent():
    model = make()
    obs = torch.randn(5, 4)
    out = model.policy.critic_outputs(obs)
    out[0].sum().backward()
    ens = model.policy.critics
    for w in ens.weights:
        assert w.grad[0].abs().sum() > 0
        assert w.grad[1].abs().sum() == 0


@pytest.mark.parametrize("aggregation", ["min", "mean"])
def test_predict_values_aggregates_critic_values(aggregation):
    model = make(value_aggregation=aggregation)
    model.learn(64)
    obs = torch.randn(7, 4)
    with torch.no_grad():
        per_critic = model.policy.critic_values(obs)
        agg = model.policy.predict_values(obs)
    assert per_critic.shape == (2, 7) and agg.shape == (7, 1)
    expected = per_critic.min(0).values if aggregation == "min" else per_critic.mean(0)
    assert torch.allclose(agg.squeeze(1), expected, atol=1e-5)


def test_cvar_value_is_cvar_of_aggregated_quantiles():
    model = make(cvar_alpha=0.25)
    obs = torch.randn(6, 4)
    with torch.no_grad():
        q = model.policy.critic_outputs(obs)
        expected = model.return_normalizer.denormalize(C.cvar_from_quantiles(C.aggregate_quantiles(q, "min"), 0.25))
        assert torch.allclose(model.policy.predict_values(obs).squeeze(1), expected, atol=1e-5)
        assert (expected <= model.policy.critic_values(obs).min(0).values + 1e-5).all()
    model.learn(64)


def test_return_normaliser_tracks_returns_and_values_are_denormalised():
    model = make(n_steps=64)
    model.learn(128)
    norm = model.return_normalizer
    assert norm is model.policy.return_normalizer
    assert norm.count.item() == 128
    assert norm.mean.item() > 1.0  # CartPole returns are positive
    obs = torch.randn(3, 4)
    with torch.no_grad():
        raw = model.policy.expected_outputs(model.policy.critic_outputs(obs))
        assert torch.allclose(model.policy.critic_values(obs), raw * norm.std + norm.mean, atol=1e-5)
    assert "return_normalizer.mean" in model.policy.state_dict()


def test_normalize_returns_false_is_identity():
    model = make(normalize_returns=False)
    model.learn(64)
    assert model.return_normalizer.count.item() == 0
    obs = torch.randn(3, 4)
    with torch.no_grad():
        raw = model.policy.expected_outputs(model.policy.critic_outputs(obs))
        assert torch.allclose(model.policy.critic_values(obs), raw)


@pytest.mark.parametrize("critic,mean_loss", [("quantile", "squared_error"), ("quantile", "quantile_huber"),
                                               ("categorical", "squared_error")])
def test_value_clipping_runs_and_logs(critic, mean_loss):
    model = make(critic=critic, clip_range_vf=0.1, quantile_mean_loss=mean_loss)
    model.learn(64)
    assert model.logger.name_to_value["train/clip_range_vf"] == pytest.approx(0.1)


@pytest.mark.parametrize("mean_loss", ["squared_error", "quantile_huber"])
def test_quantile_critics_train_on_the_configured_mean_loss(mean_loss):
    """Each critic's loss in training is the configured one: the mean-anchored loss by default,
    the plain quantile-Huber loss with ``quantile_mean_loss="quantile_huber"``."""
    model = make(quantile_mean_loss=mean_loss, n_quantiles=8)
    assert model.quantile_mean_loss == model.policy.quantile_mean_loss == mean_loss
    torch.manual_seed(0)
    outputs, targets = torch.randn(2, 6, 8), torch.randn(6)
    losses = critic_losses(model.policy, outputs, targets, None, None, None, None)
    taus = C.quantile_taus(8)
    if mean_loss == "squared_error":
        expected = C.mean_anchored_quantile_loss(outputs, targets, model.huber_kappa, taus).mean(-1)
    else:
        expected = C.quantile_huber_loss(outputs, targets, model.huber_kappa, taus).mean(-1)
    assert torch.allclose(losses, expected)


def test_categorical_value_clipping_stops_gradient_outside_range():
    model = make(critic="categorical", clip_range_vf=0.01)
    logits = torch.zeros(2, 1, 51, requires_grad=True)  # mean 0
    old_means = torch.full((2, 1), -1.0)  # moved by +1 >> 0.01
    support = model.policy.support
    targets = torch.tensor([2.0])  # pulls further out: gated
    probs = C.two_hot(targets, -10, 10, 51)
    critic_losses(model.policy, logits, targets, probs, None, old_means, 0.01).sum().backward()
    assert logits.grad.abs().sum() == 0
    logits.grad = None
    targets = torch.tensor([-2.0])  # pulls back toward the old value: not gated
    probs = C.two_hot(targets, -10, 10, 51)
    critic_losses(model.policy, logits, targets, probs, None, old_means, 0.01).sum().backward()
    assert logits.grad.abs().sum() > 0
    assert support.shape == (51,)


def test_hl_gauss_projection_trains():
    model = make(critic="categorical", categorical_projection="hl_gauss")
    model.learn(64)


# ------------------------------------------------------------------ spaces
SPACES = {
    "discrete": (box(), spaces.Discrete(3)),
    "box": (box(), spaces.Box(-2.0, 2.0, (2,), dtype=np.float32)),
    "multidiscrete": (box(), spaces.MultiDiscrete([3, 2])),
    "multibinary": (box(), spaces.MultiBinary(3)),
}


@pytest.mark.parametrize("name", list(SPACES))
def test_action_spaces_learn(name):
    obs_space, act_space = SPACES[name]
    model = make(SpaceEnv(obs_space, act_space), n_steps=64)
    before = snapshot(model)
    model.learn(256)
    assert any(not torch.equal(b, a) for b, a in zip(before, model.policy.parameters()))
    action, _ = model.predict(obs_space.sample(), deterministic=True)
    assert act_space.contains(np.asarray(action, dtype=act_space.dtype).reshape(act_space.shape))
    assert np.isfinite(model.logger.name_to_value["train/loss"])


def test_dict_observations_with_multi_input_policy():
    obs_space = spaces.Dict({"pos": box(2), "vel": box(3)})
    model = make(SpaceEnv(obs_space, spaces.Discrete(2)), policy="MultiInputPolicy", n_steps=64, diagnostics_every=1)
    model.learn(128)
    assert 0.0 <= model.logger.name_to_value["plasticity/dormant_fraction"] <= 1.0
    obs = obs_space.sample()
    model.predict(obs)
    tensor_obs, _ = model.policy.obs_to_tensor(obs)
    assert model.policy.critic_values(tensor_obs).shape == (2, 1)


def test_pendulum_box_actions():
    model = make("Pendulum-v1", n_steps=64)
    model.learn(128)
    assert "train/std" in model.logger.name_to_value


def test_gsde_and_shared_trunk_and_separate_extractors():
    model = make(
        "Pendulum-v1",
        use_sde=True,
        policy_kwargs=dict(net_arch=dict(pi=[16], vf=[8, 8]), share_critic_trunk=True, share_features_extractor=False),
    )
    model.learn(64)
    ens = model.policy.critics
    assert ens.weights[0].shape[0] == 1 and ens.weights[-1].shape[0] == 2


# ------------------------------------------------------------------ optimizer
@pytest.mark.parametrize("name,cls", [("adam", torch.optim.Adam), ("upgd", UPGD), ("adaptive_upgd", AdaptiveUPGD)])
def test_optimizer_holds_exactly_the_policy_parameters(name, cls):
    model = make(optimizer=name)
    opt = model.policy.optimizer
    assert type(opt) is cls
    opt_params = [p for g in opt.param_groups for p in g["params"]]
    policy_params = list(model.policy.parameters())
    assert len(opt_params) == len(policy_params)
    assert all(a is b for a, b in zip(opt_params, policy_params))


def test_default_optimizer_and_vgs():
    model = make()
    opt = model.policy.optimizer
    # Adam, as Stable-Baselines3 builds it: the UPGD family's gate cost return on rl-zoo's
    # CartPole-v1 (docs/agent.md); the class and defaults rebuild it for another network
    assert type(opt) is torch.optim.Adam and opt.defaults["eps"] == 1e-5
    from lifelong import VarianceGradientScaler

    assert model.vgs is None  # off by default (no benchmark showed it helps)
    assert isinstance(make(vgs=True).vgs, VarianceGradientScaler)


def test_default_adam_is_fused_unless_the_user_chooses_and_a_loaded_state_keeps_its_own():
    assert make().policy.optimizer.defaults["fused"] is True
    chosen = make(optimizer_kwargs={"foreach": True}).policy.optimizer.defaults
    assert chosen["foreach"] is True and not chosen["fused"]
    assert make(optimizer_kwargs={"fused": False}).policy.optimizer.defaults["fused"] is False
    # a state written by the per-tensor loop (an older checkpoint) resumes with that loop
    looped = torch.optim.Adam(make().policy.parameters(), eps=1e-5)
    model = make()
    model.policy.optimizer.load_state_dict(looped.state_dict())
    assert model.policy.optimizer.param_groups[0]["fused"] is None
    model.learn(64)


def test_optimizer_class_and_kwargs():
    model = make(optimizer=torch.optim.SGD, optimizer_kwargs=dict(momentum=0.9))
    assert type(model.policy.optimizer) is torch.optim.SGD
    assert model.policy.optimizer.param_groups[0]["momentum"] == 0.9
    model.learn(32)


def test_optimizer_kwargs_lr_is_the_learning_rate():
    model = make(optimizer="adaptive_upgd", optimizer_kwargs=dict(lr=1.5e-3, sigma=0.0))
    assert all(g["lr"] == 1.5e-3 for g in model.policy.optimizer.param_groups)
    assert model.policy.optimizer.param_groups[0]["sigma"] == 0.0
    model.learn(64)
    assert all(g["lr"] == 1.5e-3 for g in model.policy.optimizer.param_groups)
    assert model.get_hyperparameters()["learning_rate"] == 1.5e-3
    assert "lr" not in model.get_constructor_kwargs()["optimizer_kwargs"]


@pytest.mark.parametrize("lr", [3e-4, 1e-3, Constant(1e-3)])
def test_learning_rate_and_optimizer_kwargs_lr_conflict(lr):
    with pytest.raises(ValueError, match="learning_rate"):
        make(learning_rate=lr, optimizer_kwargs=dict(lr=1e-3))


def test_optimizer_groups_give_the_matched_parameters_their_own_arguments():
    model = make(optimizer="adaptive_upgd", optimizer_kwargs=dict(sigma=0.0, weight_decay=0.0),
                 optimizer_groups={"action_net.*": {"reset_every": 7}, "critics.*.2": {"l2_init": 0.3, "sigma": 0.1}})
    names = {p: n for n, p in model.policy.named_parameters()}
    groups = model.policy.optimizer.param_groups
    assert [[names[p] for p in g["params"]] for g in groups] == [
        ["mlp_extractor.policy_net.0.weight", "mlp_extractor.policy_net.0.bias", "mlp_extractor.policy_net.2.weight",
         "mlp_extractor.policy_net.2.bias", "critics.weights.0", "critics.weights.1", "critics.biases.0", "critics.biases.1"],
        ["action_net.weight", "action_net.bias"],
        ["critics.weights.2", "critics.biases.2"],
    ]
    # a group's arguments over optimizer_kwargs, for its parameters only
    assert [(g["reset_every"], g["l2_init"], g["sigma"]) for g in groups] == [(0, 0.0, 0.0), (7, 0.0, 0.0), (0, 0.3, 0.1)]
    # the class and defaults are still the agent's default optimizer's (the groups are extra)
    assert model.policy.optimizer.defaults["reset_every"] == 0
    assert model.get_constructor_kwargs()["optimizer_groups"] == {
        "action_net.*": {"reset_every": 7}, "critics.*.2": {"l2_init": 0.3, "sigma": 0.1}}
    model.learn(64)
    assert all(g["lr"] == model.lr_schedule(0) for g in groups)  # the learning rate stays the agent's


def test_optimizer_groups_reset_only_the_output_layer_every_n_steps():
    """With ``reset_every=N`` on ``action_net`` only: after exactly N optimizer steps (2 updates of
    2 epochs x 2 minibatches = 8) the actor's output layer is back at its first values, every
    other parameter has moved."""
    model = make(optimizer="adaptive_upgd", optimizer_kwargs=dict(gate="none", sigma=0.0, weight_decay=0.0),
                 optimizer_groups={"action_net.*": {"reset_every": 8}})
    before = {n: p.detach().clone() for n, p in model.policy.named_parameters()}
    model.learn(64)
    assert model._n_updates == 4  # SB3 counts epochs: 2 updates x 2 epochs
    for name, p in model.policy.named_parameters():
        if name.startswith("action_net."):
            assert torch.equal(p, before[name]), name
        else:
            assert not torch.equal(p, before[name]), name
    state = model.policy.optimizer.state[model.policy.action_net.weight]
    assert int(state["step"]) == 0 and not state["exp_avg"].any()


@pytest.mark.parametrize(
    "groups,match",
    [
        (["action_net.*"], "optimizer_groups must be a dict"),
        ({"": {}}, "pattern '' is invalid"),
        ({"action_net.*": 0.1}, r"optimizer_groups\['action_net.\*'\] must be a dict"),
        ({"action_net.*": {"lr": 1e-3}}, r"must not set \['lr'\]"),
        ({"actor.*": {}}, "pattern 'actor.*' matches no parameter.*action_net.weight"),
        ({"*": {}, "action_net.*": {}}, "'action_net.weight' matches more than one pattern"),
        ({"action_net.*": {"betaz": (0.9, 0.9)}}, r"\['betaz'\] are not arguments of Adam"),
        ({"action_net.*": {"betas": (1.5, 0.9)}}, "beta parameter"),
    ],
)
def test_bad_optimizer_groups_raise_value_error(groups, match):
    with pytest.raises(ValueError, match=match):
        make(optimizer_groups=groups)


def test_bad_optimizer_group_values_of_the_upgd_family_are_refused():
    with pytest.raises(ValueError, match=r"optimizer_groups\['action_net.\*'\]: reset_every"):
        make(optimizer="adaptive_upgd", optimizer_groups={"action_net.*": {"reset_every": -1}})


def test_each_minibatch_ends_with_vgs_step(monkeypatch):
    model = make(vgs=True)
    calls = []
    original = model.vgs.step

    def spy(optimizer, max_grad_norm=None):
        calls.append((optimizer, max_grad_norm))
        return original(optimizer, max_grad_norm)

    monkeypatch.setattr(model.vgs, "step", spy)
    model.learn(32)
    assert len(calls) == 2 * 2  # n_epochs * (32 / 16)
    assert all(o is model.policy.optimizer and m == 0.5 for o, m in calls)
    assert model.logger.name_to_value["train/vgs_factor"] == 1.0  # warm-up


# ------------------------------------------------------------------ hyperparameters
def test_set_hyperparameters_applies_everywhere_and_sticks():
    model = make(learning_rate=Linear(1e-3, 0.0), n_steps=32, vgs=True, optimizer="adaptive_upgd")
    model.learn(32)
    new = dict(
        learning_rate=2e-4, ent_coef=0.01, vf_coef=0.7, clip_range=0.3, gamma=0.95, gae_lambda=0.9,
        max_grad_norm=1.0, n_epochs=3, batch_size=8, sigma=0.01, vgs_alpha=0.05,
    )
    got = model.set_hyperparameters(**new)
    assert got == pytest.approx(new)
    assert model.get_hyperparameters() == pytest.approx(new)
    groups = model.policy.optimizer.param_groups
    assert all(g["lr"] == 2e-4 and g["sigma"] == 0.01 for g in groups)
    assert model.rollout_buffer.gamma == 0.95 and model.rollout_buffer.gae_lambda == 0.9
    assert model.vgs.alpha == 0.05
    n_updates = model._n_updates
    model.learn(64, reset_num_timesteps=False)
    assert model._n_updates - n_updates == 2 * 3  # n_epochs=3 per update
    assert all(g["lr"] == 2e-4 for g in model.policy.optimizer.param_groups)  # the schedule did not overwrite it
    assert model.logger.name_to_value["train/learning_rate"] == 2e-4
    assert model.logger.name_to_value["train/clip_range"] == 0.3
    assert model.get_hyperparameters() == pytest.approx(new)


def test_set_hyperparameters_rejects_bad_input_atomically():
    model = make()
    before = model.get_hyperparameters()
    for bad in (dict(gamma=1.5), dict(learning_rate=-1.0), dict(n_epochs=0), dict(batch_size=1),
                dict(batch_size=33), dict(nope=1), dict(ent_coef=0.1, clip_range=0.0), dict(n_epochs=2.5)):
        with pytest.raises(ValueError):
            model.set_hyperparameters(**bad)
    assert model.get_hyperparameters() == before
    with pytest.raises(ValueError, match="sigma"):
        make(optimizer="adam").set_hyperparameters(sigma=0.1)
    with pytest.raises(ValueError, match="vgs_alpha"):
        make(vgs=False).set_hyperparameters(vgs_alpha=0.1)
    assert make(optimizer="adam", vgs=False).get_hyperparameters()["sigma"] is None


def test_tunable_names_match():
    from lifelong.agent.hyperparameters import TUNABLE

    assert set(make().get_hyperparameters()) == set(TUNABLE)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(critic="gaussian"), "critic"),
        (dict(value_aggregation="max"), "value_aggregation"),
        (dict(optimizer="sgdx"), "optimizer"),
        (dict(optimizer=object), "optimizer"),
        (dict(n_quantiles=0), "n_quantiles"),
        (dict(n_atoms=1), "n_atoms"),
        (dict(v_min=1.0, v_max=1.0), "v_min"),
        (dict(huber_kappa=0.0), "huber_kappa"),
        (dict(quantile_mean_loss="huber"), "quantile_mean_loss='huber'.*squared_error"),
        (dict(quantile_mean_loss="quantile_huber", critic="categorical"), "quantile_mean_loss.*critic='quantile' only"),
        (dict(cvar_alpha=0.0), "cvar_alpha"),
        (dict(cvar_alpha=1.5), "cvar_alpha"),
        (dict(cvar_alpha=0.5, critic="categorical"), "cvar_alpha"),
        (dict(batch_size=1), "batch_size"),
        (dict(batch_size=64), "batch_size"),
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(gamma=2.0), "gamma"),
        (dict(policy_kwargs=dict(optimizer_class=torch.optim.SGD)), "optimizer_class"),
        (dict(diagnostics_every=-1), "diagnostics_every"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


def test_bad_spaces_raise_value_error():
    with pytest.raises(ValueError, match="action space"):
        make(SpaceEnv(box(), spaces.Tuple([spaces.Discrete(2), spaces.Discrete(2)])))
    with pytest.raises(ValueError, match="MultiInputPolicy"):
        make(SpaceEnv(spaces.Dict({"a": box()}), spaces.Discrete(2)), policy="MlpPolicy")
    with pytest.raises(ValueError, match="Dict observation"):
        make(policy="MultiInputPolicy")
    with pytest.raises(ValueError, match="policy"):
        make(policy="TransformerPolicy")
    model = make()
    with pytest.raises(ValueError):
        model.set_env(gym.make("Pendulum-v1"))


# ------------------------------------------------------------------ logging
def test_logger_keys_every_update():
    model = make(diagnostics_every=1, vgs=True, optimizer="adaptive_upgd")
    model.learn(32)
    keys = set(model.logger.name_to_value)
    expected = {
        "train/policy_gradient_loss", "train/entropy_loss", "train/value_loss", "train/critic0_loss",
        "train/critic1_loss", "train/explained_variance", "train/critic0_explained_variance",
        "train/critic1_explained_variance", "train/quantile_spread", "train/approx_kl", "train/clip_fraction",
        "train/loss", "train/learning_rate", "train/clip_range", "train/n_updates", "train/vgs_factor",
        "train/vgs_ratio", "train/upgd_gate_mean", "train/upgd_utility_mean", "train/upgd_utility_max",
        "plasticity/dormant_fraction", "plasticity/effective_rank", "plasticity/weight_norm",
    }
    assert expected <= keys, expected - keys
    assert all(np.isfinite(model.logger.name_to_value[k]) for k in expected if k != "train/vgs_ratio")


@pytest.mark.parametrize("kwargs", [{}, {"clip_range_vf": 0.2}, {"critic": "categorical", "clip_range_vf": 0.2}])
def test_critic_statistics_are_the_rollout_s_predictions(kwargs):
    """Each critic's explained variance and the quantile spread are those of the critics'
    predictions on the rollout, before the update (the rollout's own pass, or a pass in train()
    where value clipping needs one): recomputed here from the buffer and the pre-update
    parameters, they agree to float rounding; a second train() on the same buffer computes them
    itself."""
    from stable_baselines3.common.utils import explained_variance

    model = DistributionalPPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=4, seed=2), n_steps=64, batch_size=64,
                              n_epochs=2, seed=2, device="cpu", **kwargs)
    model.learn(256)
    callback = CallbackList([])
    callback.init_callback(model)
    model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    buffer, policy = model.rollout_buffer, model.policy
    obs = torch.as_tensor(buffer.observations.reshape(-1, 4))
    with torch.no_grad():
        outputs = policy.critic_outputs(obs)
        values = policy.return_normalizer.denormalize(policy.expected_outputs(outputs)).numpy()
        spread = float(policy.return_normalizer.scale(policy.spread_outputs(outputs)).mean())
    returns = buffer.returns.reshape(-1)
    want = [explained_variance(v, returns) for v in values]
    for _ in range(2):  # the second train() on the same buffer, after the update: its own pass
        model.train()
        logged = model.logger.name_to_value
        got = [logged[f"train/critic{k}_explained_variance"] for k in range(2)]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(logged["train/quantile_spread"], spread, rtol=1e-5)
        with torch.no_grad():
            outputs = policy.critic_outputs(obs)
            values = policy.return_normalizer.denormalize(policy.expected_outputs(outputs)).numpy()
            spread = float(policy.return_normalizer.scale(policy.spread_outputs(outputs)).mean())
        want = [explained_variance(v, returns) for v in values]


def test_diagnostics_every_zero_disables():
    model = make(diagnostics_every=0)
    model.learn(32)
    assert "plasticity/dormant_fraction" not in model.logger.name_to_value


# ------------------------------------------------------------------ constructor kwargs
def test_constructor_kwargs_are_json_and_rebuild_the_model():
    model = make(learning_rate=Linear(1e-3, 1e-4), clip_range_vf=0.5, critic="categorical",
                 policy_kwargs=dict(net_arch=dict(pi=[8], vf=[8]), activation_fn=torch.nn.ReLU))
    model.set_hyperparameters(ent_coef=0.02)
    kwargs = json.loads(json.dumps(model.get_constructor_kwargs()))
    assert kwargs["learning_rate"] == {"type": "linear", "start": 1e-3, "end": 1e-4}
    assert kwargs["ent_coef"] == 0.02 and kwargs["optimizer"] == "adam"
    rebuilt = DistributionalPPO(DistributionalPPO.decode_policy(model.get_policy_name()), "CartPole-v1", **kwargs)
    assert rebuilt.policy.activation_fn is torch.nn.ReLU
    assert [p.shape for p in rebuilt.policy.parameters()] == [p.shape for p in model.policy.parameters()]
    assert rebuilt.get_constructor_kwargs() == kwargs


def test_arbitrary_callable_schedule_trains_but_cannot_be_described():
    model = make(learning_rate=lambda p: 1e-3 * p)
    model.learn(32)
    with pytest.raises(ValueError, match="learning_rate"):
        model.get_constructor_kwargs()
    with pytest.raises(ValueError, match="learning_rate"):
        model.save("/tmp/never-written")


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_fast_paths_match_sb3_distributions(env):
    model = make(env)
    policy = model.policy
    obs = torch.randn(64, policy.observation_space.shape[0])
    with torch.no_grad():
        torch.manual_seed(0)
        actions, _, log_prob = policy(obs)
        dist = policy.get_distribution(obs)
        assert torch.allclose(log_prob, dist.log_prob(actions.reshape(dist.get_actions().shape)), atol=1e-5)
        lp, ent, _ = policy.evaluate_actions_distributional(obs, actions)
        assert torch.allclose(lp, log_prob, atol=1e-5)
        assert torch.allclose(ent, dist.entropy(), atol=1e-5)
        det, _, _ = policy(obs, deterministic=True)
        assert torch.allclose(det.float(), dist.get_actions(deterministic=True).float().reshape(det.shape))


@pytest.mark.parametrize("n_noise", [1, 64])
def test_gsde_fast_path_is_sb3s_distribution_to_the_bit(n_noise):
    """gSDE (one exploration matrix, or one per sample): actions, log-probabilities and entropy
    of the rollout's and the loss's paths equal those of SB3's StateDependentNoiseDistribution."""
    model = make("Pendulum-v1", use_sde=True)
    policy = model.policy
    torch.manual_seed(1)
    policy.reset_noise(n_noise)
    obs = torch.randn(64, policy.observation_space.shape[0])
    dist = policy.get_distribution(obs)
    actions, log_prob = policy.act(obs)
    assert torch.equal(actions, dist.get_actions().reshape(actions.shape))
    assert torch.equal(log_prob, dist.log_prob(actions))
    lp, ent, _ = policy.evaluate_actions_distributional(obs, actions)
    assert torch.equal(lp, dist.log_prob(actions)) and torch.equal(ent, dist.entropy())
    det, det_lp = policy.act(obs, deterministic=True)
    assert torch.equal(det, dist.get_actions(deterministic=True)) and torch.equal(det_lp, dist.log_prob(det))
    # gradients reach the same parameters (log_std, the actor; not the latent, learn_features=False)
    lp.sum().backward()
    assert policy.log_std.grad is not None and policy.action_net.weight.grad is not None


def test_cnn_policy_on_images():
    obs_space = spaces.Box(0, 255, (36, 36, 1), dtype=np.uint8)
    model = make(SpaceEnv(obs_space, spaces.Discrete(2)), policy="CnnPolicy", n_steps=16, batch_size=8, n_epochs=1,
                 policy_kwargs=dict(features_extractor_kwargs=dict(features_dim=16)))
    model.learn(16)
    assert model.policy.critic_values(model.policy.obs_to_tensor(obs_space.sample())[0]).shape == (2, 1)


# ------------------------------------------------------------------ non-stationary phases
def test_phase_tracker_counts_episodes_per_phase():
    from lifelong.agent.metrics import PhaseTracker
    tracker, logged = PhaseTracker(), {}
    tracker.log(logged.__setitem__)
    assert logged == {}                                       # a stationary env logs nothing
    tracker.update([{"phase": 0, "episode": {"r": 10.0}}, {"phase": 0}], np.array([True, False]))
    tracker.update([{"phase": 1, "episode": {"r": 30.0}}, {"phase": 1, "episode": {"r": 50.0}}],
                   np.array([True, True]))
    tracker.update([{"phase": 1, "episode": {"r": 99.0}}], np.array([False]))  # not done
    tracker.log(logged.__setitem__)
    assert logged == {"rollout/phase": 1, "rollout/phase_episodes": 2, "rollout/phase_ep_rew_mean": 40.0}
    logged.clear()
    tracker.log(logged.__setitem__)                          # a new window: no episode yet
    assert logged == {"rollout/phase": 1, "rollout/phase_episodes": 0}


def test_agent_logs_phase_and_gate_histogram_on_a_nonstationary_env():
    import lifelong  # noqa: F401  (registers the environments)
    env = gym.make("lifelong/PermutedCartPole-v0", every_steps=20, seed=3)
    model = DistributionalPPO("MlpPolicy", env, optimizer="adaptive_upgd", diagnostics_every=1, **TINY)
    model.learn(64)                       # two rollouts of 32 steps: the second ends in phase 3
    logged = model.logger.name_to_value
    assert logged["rollout/phase"] == 3
    hist = [logged[f"plasticity/gate_hist/{k}"] for k in range(10)]
    assert sum(hist) == pytest.approx(1.0) and min(hist) >= 0.0
    from lifelong import diagnostics as D
    assert hist == pytest.approx(D.upgd_gate_histogram(model.policy.optimizer))
    # Adam: no gate, no histogram; a stationary env: no phase
    model = DistributionalPPO("MlpPolicy", "CartPole-v1", optimizer="adam", diagnostics_every=1, **TINY)
    model.learn(32)
    assert not any(k.startswith("plasticity/gate_hist/") or k.startswith("rollout/phase")
                   for k in model.logger.name_to_value)
