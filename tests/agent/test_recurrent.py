"""DistributionalRecurrentPPO: RecurrentPPO's arguments and API, LSTM policies, bad input, the
optimizer over the live parameters, both critics learning, critic targets vs. advantages, and
the masked (padded-sequence) loss. Tiny rollouts throughout."""
import inspect

import numpy as np
import pytest
import torch
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.env_util import make_vec_env

from lifelong import DistributionalPPO, DistributionalRecurrentPPO
from lifelong.agent import update
from lifelong.agent.lstm_policy import DistributionalLstmPolicy
from lifelong.agent.policy import DistributionalActorCriticPolicy
from lifelong.agent.rollout import gae

from tests.agent.test_ppo import SpaceEnv, box

TINY = dict(n_steps=16, batch_size=16, n_epochs=2, seed=0, diagnostics_every=0,
            policy_kwargs=dict(lstm_hidden_size=8, net_arch=[8]))


def make(env=None, policy="MlpLstmPolicy", **kw):
    args = dict(TINY)
    args.update(kw)
    return DistributionalRecurrentPPO(policy, env if env is not None else make_vec_env("CartPole-v1", n_envs=2, seed=0),
                                      **args)


# ------------------------------------------------------------------ RecurrentPPO's arguments
def test_takes_recurrent_ppos_arguments_and_defaults():
    ours = inspect.signature(DistributionalRecurrentPPO.__init__).parameters
    theirs = inspect.signature(RecurrentPPO.__init__).parameters
    assert set(theirs) <= set(ours)
    for name, p in theirs.items():
        if p.default is not inspect.Parameter.empty:
            assert ours[name].default == p.default, name
    # the distributional arguments (DistributionalPPO's beyond SB3's PPO) are all here, with its
    # defaults; the policies' critic settings default to the same values
    from stable_baselines3 import PPO

    from lifelong.agent.critics import CRITIC_SPEC_FIELDS
    from lifelong.agent.lstm_policy import DistributionalLstmPolicy
    from lifelong.agent.policy import DistributionalActorCriticPolicy

    ppo = inspect.signature(DistributionalPPO.__init__).parameters
    distributional = set(ppo) - set(inspect.signature(PPO.__init__).parameters)
    assert {"critic", "quantile_mean_loss", "twin_critics", "optimizer", "vgs"} <= distributional
    for name in distributional - {"collapse_reset"}:
        assert ours[name].default == ppo[name].default, name
    # the one documented exception: the collapse reset is off on the recurrent agent (measured on
    # the feed-forward agent only)
    assert (ours["collapse_reset"].default, ppo["collapse_reset"].default) == (False, True)
    for policy_class in (DistributionalActorCriticPolicy, DistributionalLstmPolicy):
        policy = inspect.signature(policy_class.__init__).parameters
        for name in CRITIC_SPEC_FIELDS:
            assert name not in policy or policy[name].default == ppo[name].default, (policy_class, name)


def test_policy_aliases_and_lstm_arguments():
    assert set(DistributionalRecurrentPPO.policy_aliases) == {"MlpLstmPolicy", "CnnLstmPolicy", "MultiInputLstmPolicy"}
    model = make(policy_kwargs=dict(lstm_hidden_size=12, n_lstm_layers=2, net_arch=[8]))
    policy = model.policy
    assert isinstance(policy, DistributionalLstmPolicy)
    assert policy.lstm_actor.hidden_size == 12 and policy.lstm_actor.num_layers == 2
    assert policy.lstm_critic is not None and policy.critic_projection is None
    assert model._last_lstm_states.pi[0].shape == (2, 2, 12)  # (layers, n_envs, hidden)


@pytest.mark.parametrize("policy, match", [
    ("MlpPolicy", "MlpPolicy"),
    (DistributionalActorCriticPolicy, "DistributionalLstmPolicy"),
])
def test_unknown_alias_or_non_recurrent_policy_is_a_value_error(policy, match):
    with pytest.raises(ValueError, match=match):
        make(policy=policy)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lstm_hidden_size=0), "lstm_hidden_size=0"),
    (dict(n_lstm_layers=0), "n_lstm_layers=0"),
    (dict(shared_lstm=True, enable_critic_lstm=True), "shared_lstm=True together with enable_critic_lstm=True"),
])
def test_bad_lstm_arguments_are_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(policy_kwargs=dict(net_arch=[8], **kwargs))


def test_dict_observations_need_the_multi_input_alias():
    env = SpaceEnv(spaces.Dict({"a": box(3), "b": box(2)}), spaces.Discrete(2))
    with pytest.raises(ValueError, match="MultiInputLstmPolicy"):
        make(env=env)
    model = make(env=env, policy="MultiInputLstmPolicy")
    model.learn(32)
    assert model.num_timesteps == 32


# ------------------------------------------------------------------ invariants
@pytest.mark.parametrize("lstm", [dict(), dict(shared_lstm=True, enable_critic_lstm=False),
                                  dict(enable_critic_lstm=False)])
def test_optimizer_covers_exactly_the_live_parameters(lstm):
    model = make(policy_kwargs=dict(lstm_hidden_size=8, net_arch=[8], **lstm))
    model.learn(32)
    in_optimizer = [p for g in model.policy.optimizer.param_groups for p in g["params"]]
    live = list(model.policy.parameters())
    assert len(in_optimizer) == len(live)
    assert {id(p) for p in in_optimizer} == {id(p) for p in live}
    assert not hasattr(model.policy, "value_net")  # the distributional critics replace it


def test_both_critics_learn_and_stay_different():
    model = make(n_epochs=1)
    critics = model.policy.critics
    before = [[t.detach().clone() for t in critics.member_parameters(k)] for k in range(2)]
    lstm_before = [p.detach().clone() for p in model.policy.lstm_critic.parameters()]
    model.learn(64)
    for k in range(2):
        assert all(not torch.equal(a, b) for a, b in zip(before[k], critics.member_parameters(k)))
    assert not torch.equal(critics.member_parameters(0)[0], critics.member_parameters(1)[0])
    assert any(not torch.equal(a, b) for a, b in zip(lstm_before, model.policy.lstm_critic.parameters()))
    for c in range(2):
        assert np.isfinite(model.logger.name_to_value[f"train/critic{c}_loss"])


def test_continuous_actions_with_gsde():
    model = make(env=make_vec_env("Pendulum-v1", n_envs=2, seed=0), use_sde=True, sde_sample_freq=4)
    model.learn(32)
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())


def test_set_hyperparameters_reaches_the_optimizer():
    model = make()
    model.set_hyperparameters(learning_rate=1e-3, clip_range=0.1)
    assert all(g["lr"] == 1e-3 for g in model.policy.optimizer.param_groups)
    model.learn(32)
    assert model.logger.name_to_value["train/clip_range"] == pytest.approx(0.1)


# ------------------------------------------------------------------ predict and memory
def test_predict_carries_the_lstm_state_and_resets_it_at_episode_start():
    model = make()
    obs = np.zeros((1, 4), dtype=np.float32)
    action, state = model.predict(obs, state=None, episode_start=np.ones(1, dtype=bool), deterministic=True)
    assert action.shape == (1,) and state[0].shape == (1, 1, 8)
    _, state2 = model.predict(obs + 1, state=state, episode_start=np.zeros(1, dtype=bool), deterministic=True)
    assert not np.allclose(state2[0], state[0])  # memory moves
    _, fresh = model.predict(obs, state=state2, episode_start=np.ones(1, dtype=bool), deterministic=True)
    np.testing.assert_allclose(fresh[0], state[0], rtol=0, atol=0)  # an episode start forgets


# ------------------------------------------------------------------ critic targets vs advantages
def reference_gae(rewards, values, starts, last_values, last_dones, gamma, lam):
    """GAE written from its definition: A_t = sum_l (gamma lam)^l delta_{t+l}, cut at episode ends."""
    T, E = rewards.shape
    out = np.zeros((T, E))
    for e in range(E):
        for t in range(T):
            total, discount = 0.0, 1.0
            for u in range(t, T):
                next_v, next_alive = (values[u + 1, e], 1 - starts[u + 1, e]) if u + 1 < T else (last_values[e], 1 - last_dones[e])
                delta = rewards[u, e] + gamma * next_v * next_alive - values[u, e]
                total += discount * delta
                if not next_alive:
                    break
                discount *= gamma * lam
            out[t, e] = total
    return out


def test_lambda_returns_match_their_definition():
    rng = np.random.default_rng(0)
    T, E = 7, 3
    rewards, values = rng.normal(size=(T, E)).astype(np.float32), rng.normal(size=(T, E)).astype(np.float32)
    starts = (rng.random((T, E)) < 0.3).astype(np.float32)
    last_values, last_dones = rng.normal(size=E).astype(np.float32), np.array([True, False, False])
    ours = gae(rewards, values, starts, last_values, last_dones, 0.9, 0.8) + values
    ref = reference_gae(rewards, values, starts, last_values, last_dones, 0.9, 0.8) + values
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def collect(model):
    _, callback = model._setup_learn(model.n_steps * model.n_envs, None)
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    return model.rollout_buffer


def test_critics_bootstrap_from_their_mean_and_advantages_from_the_aggregate():
    model = make(value_aggregation="min")
    buffer = collect(model)
    policy = model.policy
    outputs = torch.as_tensor(buffer.critic_outputs)  # [T, E, n_critics, K]
    with torch.no_grad():
        each = policy.return_normalizer.denormalize(policy.expected_outputs(outputs)).numpy()  # [T, E, n]
    mean, minimum = each.mean(-1), each.min(-1)
    np.testing.assert_allclose(buffer.values, minimum, rtol=1e-6, atol=1e-6)
    assert (mean - minimum).max() > 0  # the twins disagree, so the two targets differ
    with torch.no_grad():  # the values of the observation after the rollout
        last = policy.critic_outputs(torch.as_tensor(model._last_obs), model._last_lstm_states.vf,
                                     torch.as_tensor(model._last_episode_starts, dtype=torch.float32))
        last_each = policy.return_normalizer.denormalize(policy.expected_outputs(last)).numpy()  # [n, E]
    dones = model._last_episode_starts.astype(np.float32)
    args = (buffer.rewards, buffer.episode_starts, dones, model.gamma, model.gae_lambda)

    def ref(values, last_values):
        rewards, starts, last_dones, gamma, lam = args
        return reference_gae(rewards, values, starts, last_values, last_dones, gamma, lam)

    # advantages from the aggregate (min); the critics' targets: lambda-returns from the mean
    np.testing.assert_allclose(buffer.advantages, ref(minimum, last_each.min(0)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(buffer.returns, ref(mean, last_each.mean(0)) + mean, rtol=1e-4, atol=1e-4)
    assert not np.allclose(buffer.returns, buffer.advantages + buffer.values)


def test_with_one_critic_targets_are_advantages_plus_values():
    model = make(twin_critics=False)
    buffer = collect(model)
    np.testing.assert_allclose(buffer.returns, buffer.advantages + buffer.values, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ the masked loss
def test_padded_samples_count_in_no_mean():
    model = make(twin_critics=True)
    torch.manual_seed(0)
    B, n, K = 6, 2, model.policy.n_quantiles
    mask = torch.tensor([True, True, False, True, False, True])
    args = dict(log_prob=torch.randn(B), entropy=torch.rand(B), outputs=torch.randn(n, B, K),
                old_log_prob=torch.randn(B), advantages=torch.randn(B), targets=torch.randn(B))
    masked = update.minibatch_loss(model, args["log_prob"], args["entropy"], args["outputs"], args["old_log_prob"],
                                   args["advantages"], args["targets"], None, None, None, 0.2, None, mask)
    valid = update.minibatch_loss(model, args["log_prob"][mask], args["entropy"][mask], args["outputs"][:, mask],
                                  args["old_log_prob"][mask], args["advantages"][mask], args["targets"][mask], None,
                                  None, None, 0.2, None)
    torch.testing.assert_close(masked.loss, valid.loss)
    torch.testing.assert_close(masked.stats, valid.stats)
    torch.testing.assert_close(masked.approx_kl, valid.approx_kl)


def test_plasticity_diagnostics_run_on_the_stored_lstm_states():
    model = make()
    collect(model)  # buffer not yet flattened
    before = model.plasticity_diagnostics(n_obs=8)
    model.learn(32)  # flattened by train()
    after = model.plasticity_diagnostics(n_obs=8)
    for d in (before, after):
        assert set(d) == {"plasticity/dormant_fraction", "plasticity/effective_rank", "plasticity/weight_norm"}
        assert all(np.isfinite(v) for v in d.values()) and d["plasticity/effective_rank"] > 0


# ------------------------------------------------------------------ sequence processing
@pytest.mark.parametrize("layers", [1, 2])
def test_process_sequence_computes_sb3_contribs_loop(layers):
    """One LSTM call per batch of sequences whose episodes start only at their first step (every
    training minibatch) gives sb3-contrib's step-by-step loop, outputs, states and gradients;
    a start inside a sequence takes the loop itself; one step (the rollout) is bit-identical."""
    from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy

    from lifelong.agent.lstm_policy import process_sequence

    reference = RecurrentActorCriticPolicy._process_sequence
    g = torch.Generator().manual_seed(0)
    lstm = torch.nn.LSTM(5, 8, num_layers=layers)
    n_seq, steps = 6, 7
    states = (torch.randn(layers, n_seq, 8, generator=g), torch.randn(layers, n_seq, 8, generator=g))
    first = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    cases = {"first steps only": torch.zeros(n_seq, steps), "inside": torch.zeros(n_seq, steps)}
    cases["first steps only"][:, 0] = first
    cases["inside"][:, 0], cases["inside"][3, 4] = first, 1.0
    for name, starts in cases.items():
        x = torch.randn(n_seq * steps, 5, generator=g)
        outs = []
        for fn in (process_sequence, reference):
            lstm.zero_grad()
            xg = x.clone().requires_grad_(True)
            out, (h, c) = fn(xg, states, starts.flatten(), lstm)
            (out.square().sum() + h.sum() + c.sum()).backward()
            outs.append([out.detach(), h.detach(), c.detach(), xg.grad] + [p.grad.clone() for p in lstm.parameters()])
        for a, b in zip(*outs):
            assert torch.allclose(a, b, atol=1e-6, rtol=1e-5), name
    x = torch.randn(n_seq, 5, generator=g)  # one step per environment
    for a, b in zip(process_sequence(x, states, first, lstm), reference(x, states, first, lstm)):
        assert all(torch.equal(u, v) for u, v in zip(a, b)) if isinstance(a, tuple) else torch.equal(a, b)
