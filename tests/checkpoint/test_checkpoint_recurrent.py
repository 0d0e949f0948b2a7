"""Checkpoints of DistributionalRecurrentPPO: the LSTM states in the file, bit-identical exact
resume, PBT exploit (save_state / load_state) moving them, and the wrong agent class refused."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env

from lifelong import CheckpointError, DistributionalPPO, DistributionalRecurrentPPO
from lifelong.checkpoint import load_state, read_archive, save_state
from lifelong.checkpoint.members import ENV_STATE

from tests.checkpoint.test_checkpoint_model import tensors_equal

N_STEPS, N_ENVS = 16, 2
ROLLOUT = N_STEPS * N_ENVS


def make(seed=0, **kwargs):
    env = make_vec_env("CartPole-v1", n_envs=N_ENVS, seed=seed)
    options = dict(n_steps=N_STEPS, batch_size=16, n_epochs=2, seed=seed, device="cpu", diagnostics_every=0,
                   policy_kwargs=dict(lstm_hidden_size=8, net_arch=[8]), vgs_kwargs=dict(warmup_steps=2))
    options.update(kwargs)
    return env, DistributionalRecurrentPPO("MlpLstmPolicy", env, **options)


def states_equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip((*a.pi, *a.vf), (*b.pi, *b.vf)))


@pytest.mark.parametrize("config", [dict(), dict(optimizer="adaptive_upgd", optimizer_groups={
    "lstm_actor.*": {"reset_every": 3, "l2_init": 0.1}})], ids=["default", "optimizer-groups"])
def test_exact_resume_is_bit_identical(tmp_path, config):
    _, straight = make(**config)
    straight.learn(2 * ROLLOUT)
    straight.learn(2 * ROLLOUT, reset_num_timesteps=False)

    env, first = make(**config)
    first.learn(2 * ROLLOUT)
    path = first.save(tmp_path / "model")
    assert not all(torch.count_nonzero(t) == 0 for t in first._last_lstm_states.pi)  # mid-episode memory
    resumed = DistributionalRecurrentPPO.load(path, env=env, force_reset=False)
    assert states_equal(resumed._last_lstm_states, first._last_lstm_states)
    resumed.learn(2 * ROLLOUT, reset_num_timesteps=False)

    assert tensors_equal(straight.policy.state_dict(), resumed.policy.state_dict())
    assert tensors_equal(straight.policy.optimizer.state_dict(), resumed.policy.optimizer.state_dict())
    assert states_equal(straight._last_lstm_states, resumed._last_lstm_states)
    assert straight.num_timesteps == resumed.num_timesteps


def test_the_file_holds_the_lstm_states(tmp_path):
    _, model = make()
    model.learn(ROLLOUT)
    members = read_archive(model.save(tmp_path / "m"))
    saved = members[ENV_STATE]["lstm_states"]
    for key in ("pi", "vf"):
        for live, stored in zip(getattr(model._last_lstm_states, key), saved[key]):
            assert torch.equal(live, stored)


def test_pbt_exploit_moves_the_lstm_states_and_keeps_the_live_parameters():
    _, donor = make(seed=1)
    donor.learn(ROLLOUT)
    _, recipient = make(seed=2)
    recipient.learn(ROLLOUT)
    live = list(recipient.policy.parameters())
    load_state(recipient, save_state(donor))
    assert states_equal(recipient._last_lstm_states, donor._last_lstm_states)
    assert tensors_equal(recipient.policy.state_dict(), donor.policy.state_dict())
    assert [p for g in recipient.policy.optimizer.param_groups for p in g["params"]] == live  # same objects
    recipient.learn(ROLLOUT, reset_num_timesteps=False)  # and it trains on


def test_lstm_states_that_do_not_fit_are_a_checkpoint_error():
    _, donor = make(policy_kwargs=dict(lstm_hidden_size=8, net_arch=[8]))
    donor.learn(ROLLOUT)
    state = save_state(donor)
    state[ENV_STATE]["lstm_states"]["pi"] = [torch.zeros(1, N_ENVS, 3), torch.zeros(1, N_ENVS, 3)]
    _, recipient = make()
    before = [p.detach().clone() for p in recipient.policy.parameters()]
    with pytest.raises(CheckpointError, match="LSTM states"):
        load_state(recipient, state)
    assert all(torch.equal(a, b) for a, b in zip(before, recipient.policy.parameters()))  # nothing changed


def test_loading_into_the_wrong_agent_class_names_both(tmp_path):
    _, recurrent = make()
    recurrent_path = recurrent.save(tmp_path / "recurrent")
    ppo = DistributionalPPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=N_ENVS, seed=0), n_steps=N_STEPS,
                            batch_size=16, policy_kwargs=dict(net_arch=[8]))
    ppo_path = ppo.save(tmp_path / "ppo")
    with pytest.raises(CheckpointError, match="DistributionalRecurrentPPO checkpoint.*DistributionalPPO cannot"):
        DistributionalPPO.load(recurrent_path)
    with pytest.raises(CheckpointError, match="DistributionalPPO checkpoint.*DistributionalRecurrentPPO cannot"):
        DistributionalRecurrentPPO.load(ppo_path)
    with pytest.raises(CheckpointError, match="DistributionalPPO checkpoint.*DistributionalRecurrentPPO cannot"):
        load_state(recurrent, save_state(ppo))


def test_load_onto_an_env_of_another_size_starts_from_zero_states(tmp_path):
    _, model = make()
    model.learn(ROLLOUT)
    path = model.save(tmp_path / "m")
    wider = make_vec_env("CartPole-v1", n_envs=2 * N_ENVS, seed=3)
    loaded = DistributionalRecurrentPPO.load(path, env=wider)  # force_reset=True: new episodes
    assert loaded._last_lstm_states.pi[0].shape == (1, 2 * N_ENVS, 8)
    assert all(torch.count_nonzero(t) == 0 for t in (*loaded._last_lstm_states.pi, *loaded._last_lstm_states.vf))
    loaded.learn(2 * ROLLOUT)
    with pytest.raises(ValueError, match="n_envs"):
        DistributionalRecurrentPPO.load(path, env=make_vec_env("CartPole-v1", n_envs=2 * N_ENVS), force_reset=False)


class ImageEnv(gym.Env):
    """36x36 grey images drawn from the env's own seeded generator (so that two copies seeded
    alike give the same stream); reward 1 when the action says whether the image is bright."""

    observation_space = spaces.Box(0, 255, (36, 36, 1), dtype=np.uint8)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.obs = self.np_random.integers(0, 256, (36, 36, 1), dtype=np.uint8)
        return self.obs, {}

    def step(self, action):
        reward = float(int(action) == int(self.obs.mean() > 127.5))
        self.t += 1
        self.obs = self.np_random.integers(0, 256, (36, 36, 1), dtype=np.uint8)
        return self.obs, reward, False, self.t >= 10, {}


def test_cnn_lstm_policy_trains_predicts_and_resumes_bit_identically(tmp_path):
    """The image alias end to end: sb3-contrib's CnnLstmPolicy machinery (NatureCNN features,
    then the LSTM) under the distributional critics, predict with the carried state, and exact
    resume."""
    def build():
        env = make_vec_env(ImageEnv, n_envs=N_ENVS, seed=0)
        return env, DistributionalRecurrentPPO(
            "CnnLstmPolicy", env, n_steps=N_STEPS, batch_size=16, n_epochs=1, seed=0, device="cpu",
            diagnostics_every=0, policy_kwargs=dict(lstm_hidden_size=8, features_extractor_kwargs=dict(features_dim=16)))

    _, straight = build()
    assert type(straight.policy.features_extractor).__name__ == "NatureCNN"
    straight.learn(2 * ROLLOUT)
    straight.learn(ROLLOUT, reset_num_timesteps=False)

    env, first = build()
    first.learn(2 * ROLLOUT)
    resumed = DistributionalRecurrentPPO.load(first.save(tmp_path / "cnn"), env=env, force_reset=False)
    resumed.learn(ROLLOUT, reset_num_timesteps=False)
    assert tensors_equal(straight.policy.state_dict(), resumed.policy.state_dict())
    assert tensors_equal(straight.policy.optimizer.state_dict(), resumed.policy.optimizer.state_dict())
    assert states_equal(straight._last_lstm_states, resumed._last_lstm_states)

    obs = np.stack([ImageEnv.observation_space.sample() for _ in range(N_ENVS)])
    action, state = resumed.predict(obs, state=None, episode_start=np.ones(N_ENVS, dtype=bool))
    again, state2 = resumed.predict(obs, state=state, episode_start=np.zeros(N_ENVS, dtype=bool))
    assert action.shape == again.shape == (N_ENVS,)
    assert state[0].shape == (1, N_ENVS, 8) and not np.array_equal(state[0], state2[0])  # the memory moved on
