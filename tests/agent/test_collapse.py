"""The collapse reset (lifelong.agent.collapse): it fires exactly when the return has fallen back
and the policy is nearly deterministic, draws a fresh action head as Stable-Baselines3 builds one,
clears only that head's optimizer state, costs nothing when it does not fire, and its state
survives save, load and exact resume."""
from __future__ import annotations

import collections
import math

import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env

from lifelong import CheckpointError, DistributionalPPO, DistributionalRecurrentPPO
from lifelong.agent.collapse import DEFAULT_COLLAPSE_RESET_KWARGS, CollapseReset
from lifelong.checkpoint import load_state, save_state

N_STEPS, N_ENVS = 16, 2
ROLLOUT = N_STEPS * N_ENVS
#: thresholds at which the reset fires often in a short CartPole run (resets at steps 224, 256,
#: 320, ... of seed 0): every dip below the best level counts, any policy counts as collapsed
FIRING = dict(rho=0.99, eta=1.0, window=2)


def make(env_id="CartPole-v1", seed=0, cls=DistributionalPPO, **kwargs):
    env = make_vec_env(env_id, n_envs=N_ENVS, seed=seed)
    options = dict(n_steps=N_STEPS, batch_size=16, n_epochs=2, seed=seed, device="cpu", learning_rate=3e-3,
                   policy_kwargs=dict(net_arch=[16]), diagnostics_every=0)
    options.update(kwargs)
    return env, cls("MlpLstmPolicy" if cls is DistributionalRecurrentPPO else "MlpPolicy", env, **options)


def set_episodes(model, returns):
    model.ep_info_buffer = collections.deque(({"r": float(r), "l": 1, "t": 0.0} for r in returns), maxlen=100)


def set_entropy(model, nats):
    """Rollout log-probabilities whose mean is -nats."""
    model.rollout_buffer.log_probs[:] = -nats


def trained_once(**kwargs):
    """A model after one rollout and update (optimizer state exists for every parameter)."""
    env, model = make(**kwargs)
    model.learn(ROLLOUT)
    return model


def test_defaults_and_the_attribute():
    _, model = make()
    assert isinstance(model.collapse_reset, CollapseReset)
    assert model.collapse_reset.kwargs() == DEFAULT_COLLAPSE_RESET_KWARGS == {"rho": 0.25, "eta": 0.2, "window": 20}
    ctor = model.get_constructor_kwargs()
    assert ctor["collapse_reset"] is True and ctor["collapse_reset_kwargs"] == DEFAULT_COLLAPSE_RESET_KWARGS
    _, tuned = make(collapse_reset_kwargs={"rho": 0.5, "window": 3})
    assert tuned.get_constructor_kwargs()["collapse_reset_kwargs"] == {"rho": 0.5, "eta": 0.2, "window": 3}
    _, off = make(collapse_reset=False)
    assert off.collapse_reset is None and off.get_constructor_kwargs()["collapse_reset"] is False
    # the recurrent agent: off (measured on the feed-forward agent only)
    _, recurrent = make(cls=DistributionalRecurrentPPO)
    assert recurrent.collapse_reset is None


def test_fires_only_when_the_return_fell_back_and_the_policy_is_nearly_deterministic():
    model = trained_once(collapse_reset_kwargs=dict(window=4))
    reset = model.collapse_reset
    reset.restart()
    log2 = math.log(2)
    set_entropy(model, 0.1 * log2)  # deterministic enough (eta = 0.2)

    set_episodes(model, [10, 10, 10])  # fewer than `window` episodes: nothing
    assert not reset.after_rollout(model) and reset.initial_level is None
    set_episodes(model, [10, 10, 10, 10])  # the first level: R0 = 10
    assert not reset.after_rollout(model) and (reset.initial_level, reset.best_level) == (10.0, 10.0)
    set_episodes(model, [10, 10, 10, 10, 100, 100, 100, 100])  # the best level B = 100
    assert not reset.after_rollout(model) and reset.best_level == 100.0
    # fell to 40: above R0 + rho (B - R0) = 32.5, no reset
    set_episodes(model, [40] * 4)
    assert not reset.after_rollout(model)
    # fell to 30, but the policy still explores (entropy 0.3 log 2 >= 0.2 log 2): no reset
    set_episodes(model, [30] * 4)
    set_entropy(model, 0.3 * log2)
    assert not reset.after_rollout(model)
    assert reset.resets == []

    head = model.policy.action_net
    before = {name: p.detach().clone() for name, p in model.policy.named_parameters()}
    optimizer = model.policy.optimizer
    assert all(p in optimizer.state for p in model.policy.parameters())
    set_entropy(model, 0.1 * log2)
    torch.manual_seed(123)
    expected = torch.empty_like(head.weight)
    torch.nn.init.orthogonal_(expected, gain=0.01)  # Stable-Baselines3's action head
    torch.manual_seed(123)
    assert reset.after_rollout(model)
    assert reset.resets == [model.num_timesteps] and reset.best_level == 30.0  # B restarts from max(R, R0)
    assert torch.equal(head.weight, expected) and torch.equal(head.bias, torch.zeros_like(head.bias))
    for name, p in model.policy.named_parameters():
        if name.startswith("action_net."):
            assert p not in optimizer.state  # Adam starts afresh for the head
        else:
            assert torch.equal(p, before[name]) and p in optimizer.state  # the rest untouched
    # still collapsed at the next rollout (below R0 = 10, deterministic): reset again
    set_episodes(model, [5] * 4)
    assert reset.after_rollout(model) and len(reset.resets) == 2 and reset.best_level == 10.0
    # recovered above R0: no reset
    set_episodes(model, [12] * 4)
    assert not reset.after_rollout(model) and reset.best_level == 12.0
    # fallen back to R0 + rho (B - R0) = 10.5 after that: the normal test fires
    set_episodes(model, [10.5] * 4)
    assert reset.after_rollout(model) and len(reset.resets) == 3


def test_the_update_after_a_reset_is_skipped_and_training_goes_on_with_the_fresh_head():
    """train() after a reset changes nothing but the head (the rollout came from the collapsed
    policy); the next rollout's update trains every parameter, Adam's state for the head rebuilt."""
    model = trained_once(collapse_reset_kwargs=dict(window=4))
    reset = model.collapse_reset
    reset.initial_level, reset.best_level = 10.0, 100.0
    set_episodes(model, [10] * 4)
    set_entropy(model, 0.0)
    before = {name: p.detach().clone() for name, p in model.policy.named_parameters()}
    updates = model._n_updates
    model.train()
    assert len(reset.resets) == 1 and model._n_updates == updates
    for name, p in model.policy.named_parameters():
        assert torch.equal(p, before[name]) != name.startswith("action_net."), name
    set_episodes(model, [50] * 4)  # recovered: the next rollout trains
    model.learn(ROLLOUT, reset_num_timesteps=False)
    assert len(reset.resets) == 1 and model._n_updates > updates
    assert all(p in model.policy.optimizer.state for p in model.policy.parameters())


def test_without_orthogonal_init_the_head_takes_torchs_default_init():
    model = trained_once(policy_kwargs=dict(net_arch=[16], ortho_init=False), collapse_reset_kwargs=dict(window=1))
    head = model.policy.action_net
    torch.manual_seed(5)
    expected = torch.nn.Linear(head.in_features, head.out_features)
    reset = model.collapse_reset
    reset.initial_level, reset.best_level = 0.0, 100.0
    set_episodes(model, [0.0])
    set_entropy(model, 0.0)
    torch.manual_seed(5)
    assert reset.after_rollout(model)
    assert torch.equal(head.weight, expected.weight) and torch.equal(head.bias, expected.bias)


def test_inert_on_continuous_actions():
    model = trained_once(env_id="Pendulum-v1", collapse_reset_kwargs=dict(window=1))
    reset = model.collapse_reset
    reset.initial_level, reset.best_level = 0.0, 100.0
    set_episodes(model, [-1000.0])
    set_entropy(model, -100.0)
    before = [p.detach().clone() for p in model.policy.parameters()]
    assert not reset.after_rollout(model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.policy.parameters())) and reset.resets == []


def test_a_run_in_which_it_does_not_fire_is_the_run_without_it_bit_for_bit():
    _, on = make(collapse_reset_kwargs=dict(window=4))  # the test runs: the levels are measured
    on.learn(10 * ROLLOUT)
    _, off = make(collapse_reset=False)  # (construction seeds torch's global generator)
    off.learn(10 * ROLLOUT)
    assert on.collapse_reset.resets == [] and on.collapse_reset.initial_level is not None
    for a, b in zip(on.policy.parameters(), off.policy.parameters()):
        assert torch.equal(a, b)


def test_a_later_learn_call_keeps_the_levels_and_a_converged_policy_is_not_reset():
    """The levels describe the model's training: learn() again (SB3's default
    reset_num_timesteps=True, or a loaded model trained on) keeps R0, so a trained policy at its
    level is no collapse. Nor is a policy whose first measured level is its best: the return must
    have risen above R0 before a fall counts."""
    _, model = make(collapse_reset_kwargs=FIRING)
    model.learn(10 * ROLLOUT)
    state = model.collapse_reset.state_dict()
    assert state["resets"] and state["initial_level"] is not None
    model.learn(ROLLOUT)  # reset_num_timesteps=True: SB3 restarts its episode buffer, not our levels
    assert model.collapse_reset.initial_level == state["initial_level"]

    model = trained_once(collapse_reset_kwargs=dict(window=4))
    reset = model.collapse_reset
    reset.restart()
    set_entropy(model, 0.0)  # a deterministic policy
    for _ in range(5):  # at a capped level from its first measurement on (CartPole at 500)
        set_episodes(model, [500] * 4)
        assert not reset.after_rollout(model)
    assert reset.resets == [] and (reset.initial_level, reset.best_level) == (500.0, 500.0)


@pytest.mark.parametrize("cls", [DistributionalPPO, DistributionalRecurrentPPO])
def test_exact_resume_with_resets_on_both_sides_of_the_save_is_bit_identical(tmp_path, cls):
    extra = dict(collapse_reset=True, collapse_reset_kwargs=FIRING)
    if cls is DistributionalRecurrentPPO:
        # seed 3: resets at steps 224, 288 and 512
        extra.update(batch_size=N_STEPS * N_ENVS, policy_kwargs=dict(net_arch=[16], lstm_hidden_size=8), seed=3)
    n, m = 8 * ROLLOUT, 8 * ROLLOUT
    _, straight = make(cls=cls, **extra)
    straight.learn(n + m)

    env, first = make(cls=cls, **extra)
    first.learn(n)
    assert first.collapse_reset.resets, "the test needs a reset before the save"
    first.save(tmp_path / "ckpt")
    resumed = cls.load(tmp_path / "ckpt", env=env, force_reset=False, device="cpu")
    assert resumed.collapse_reset.state_dict() == first.collapse_reset.state_dict()
    resumed.learn(m, reset_num_timesteps=False)

    assert len(straight.collapse_reset.resets) > len(first.collapse_reset.resets), "and one after it"
    assert resumed.collapse_reset.state_dict() == straight.collapse_reset.state_dict()
    for a, b in zip(straight.policy.parameters(), resumed.policy.parameters()):
        assert torch.equal(a, b)


def test_a_pbt_exploit_keeps_the_recipients_own_levels():
    _, donor = make(collapse_reset_kwargs=FIRING)
    donor.learn(10 * ROLLOUT)
    _, recipient = make(seed=1, collapse_reset_kwargs=dict(window=2))
    recipient.learn(2 * ROLLOUT)
    own = recipient.collapse_reset.state_dict()
    assert own != donor.collapse_reset.state_dict()
    load_state(recipient, save_state(donor))  # exact=False: what an exploit does
    assert recipient.collapse_reset.state_dict() == own
    load_state(recipient, save_state(donor), exact=True)  # the episode buffer and the levels together
    assert recipient.collapse_reset.state_dict() == donor.collapse_reset.state_dict()


@pytest.mark.parametrize("bad", [
    {"initial_level": "x", "best_level": 1.0, "resets": []},
    {"initial_level": 1.0, "best_level": None, "resets": []},
    {"initial_level": 1.0, "best_level": 2.0, "resets": [-5]},
    {"initial_level": 1.0, "best_level": 2.0},
    {"initial_level": 1.0, "best_level": 2.0, "resets": [], "recovering": True},  # an unknown key
    {"initial_level": 2.0, "best_level": 1.0, "resets": []},  # B below R0
    {"initial_level": 10**400, "best_level": 10**400, "resets": []},  # float() overflows
    {"initial_level": 1.0, "best_level": float("inf"), "resets": []},
    [1, 2],
])
def test_a_malformed_state_in_a_checkpoint_is_a_checkpoint_error(bad):
    _, model = make()
    model.learn(ROLLOUT)
    state = save_state(model)
    state["model.json"]["collapse_reset"] = bad
    before = model.collapse_reset.state_dict()
    with pytest.raises(CheckpointError, match="collapse reset"):
        load_state(model, state, exact=True)
    assert model.collapse_reset.state_dict() == before


def test_a_checkpoint_without_the_state_starts_a_new_run():
    """A checkpoint written without the reset's state (collapse_reset off, or before it existed)
    loaded into a model with the reset: R0 is taken afresh."""
    _, off = make(collapse_reset=False)
    off.learn(2 * ROLLOUT)
    _, model = make(collapse_reset_kwargs=FIRING)
    model.learn(10 * ROLLOUT)
    load_state(model, save_state(off), exact=True)
    assert model.collapse_reset.state_dict() == {"initial_level": None, "best_level": None, "resets": []}


@pytest.mark.parametrize("kwargs, message", [
    (dict(collapse_reset=1), "collapse_reset must be True or False, got 1"),
    (dict(collapse_reset_kwargs=[0.1]), "collapse_reset_kwargs must be a dict or None"),
    (dict(collapse_reset_kwargs={"rh": 0.1}), r"unknown keyword\(s\) \['rh'\]"),
    (dict(collapse_reset_kwargs={"rho": 1.0}), r"rho=1.0 is invalid: expected a number in \[0, 1\)"),
    (dict(collapse_reset_kwargs={"rho": float("nan")}), "rho=nan is invalid"),
    (dict(collapse_reset_kwargs={"eta": 0.0}), r"eta=0.0 is invalid: expected a number in \(0, 1\]"),
    (dict(collapse_reset_kwargs={"window": 0}), "window=0 is invalid: expected an integer >= 1"),
    (dict(collapse_reset_kwargs={"window": 2.0}), "window=2.0 is invalid"),
    (dict(collapse_reset_kwargs={"window": 101}), "window=101 is invalid: expected at most stats_window_size=100"),
    # checked also when off: a typo does not wait for the day it is switched on
    (dict(collapse_reset=False, collapse_reset_kwargs={"rh": 0.1}), "unknown keyword"),
])
def test_bad_arguments_are_value_errors_naming_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_levels_and_resets_round_trip_through_state_dict():
    reset = CollapseReset(rho=0.5, eta=0.5, window=3)
    reset.load_state_dict({"initial_level": 1.5, "best_level": 9.0, "resets": [64, 128]})
    assert reset.state_dict() == {"initial_level": 1.5, "best_level": 9.0, "resets": [64, 128]}
    assert (reset.rho, reset.eta, reset.window) == (0.5, 0.5, 3)
    assert np.isfinite(reset.best_level)


@pytest.mark.parametrize("optimizer", ["adaptive_upgd", "upgd"])
def test_with_the_upgd_family_the_head_gets_fresh_state_and_resume_stays_exact(tmp_path, optimizer):
    """The head's entries leave optimizer.state; the UPGD optimizers' flat fast path notices it
    (its cached layout is no longer the state) and the head starts afresh at step 0 (before the
    fix it kept stepping its detached old state, and a resumed run diverged); a checkpoint taken
    after it resumes bit for bit."""
    extra = dict(optimizer=optimizer, collapse_reset_kwargs=FIRING)
    n, m = 8 * ROLLOUT, 8 * ROLLOUT
    _, straight = make(**extra)
    straight.learn(n + m)
    env, first = make(**extra)
    first.learn(n)
    assert first.collapse_reset.resets
    opt = first.policy.optimizer
    head = list(first.policy.action_net.parameters())
    rest = [p for p in first.policy.parameters() if all(p is not q for q in head)]
    steps = {opt.state[p]["step"] for p in head}, {opt.state[p]["step"] for p in rest}
    assert max(steps[0]) < min(steps[1])  # the head restarted after its reset
    first.save(tmp_path / "ckpt")
    resumed = DistributionalPPO.load(tmp_path / "ckpt", env=env, force_reset=False, device="cpu")
    resumed.learn(m, reset_num_timesteps=False)
    assert resumed.collapse_reset.state_dict() == straight.collapse_reset.state_dict()
    for a, b in zip(straight.policy.parameters(), resumed.policy.parameters()):
        assert torch.equal(a, b)
