"""DistributionalPPO inside the Stable-Baselines3 ecosystem: evaluate_policy, callbacks,
VecNormalize, predict, set_env, get_parameters/set_parameters, save/load delegation."""
import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from lifelong import DistributionalPPO

TINY = dict(n_steps=32, batch_size=16, n_epochs=2, seed=0, policy_kwargs=dict(net_arch=[16, 16]))


def test_evaluate_policy_and_predict():
    model = DistributionalPPO("MlpPolicy", "CartPole-v1", **TINY)
    model.learn(32)
    mean, std = evaluate_policy(model, Monitor(gym.make("CartPole-v1")), n_eval_episodes=2, deterministic=True)
    assert mean > 0 and np.isfinite(std)
    obs = np.zeros((3, 4), dtype=np.float32)
    actions, state = model.predict(obs, deterministic=True)
    assert actions.shape == (3,) and state is None


def test_eval_and_checkpoint_callbacks(tmp_path):
    model = DistributionalPPO("MlpPolicy", "CartPole-v1", **TINY)
    eval_cb = EvalCallback(Monitor(gym.make("CartPole-v1")), n_eval_episodes=2, eval_freq=32,
                           best_model_save_path=str(tmp_path / "best"), verbose=0)
    ckpt_cb = CheckpointCallback(save_freq=32, save_path=str(tmp_path / "ckpt"), name_prefix="m")
    model.learn(64, callback=[eval_cb, ckpt_cb])
    assert eval_cb.best_mean_reward > -np.inf and eval_cb.last_mean_reward > 0
    saved = sorted((tmp_path / "ckpt").glob("*.zip"))
    assert saved, "CheckpointCallback wrote nothing"
    assert (tmp_path / "best" / "best_model.zip").exists()
    loaded = DistributionalPPO.load(saved[-1])
    obs = torch.randn(4, 4)
    with torch.no_grad():
        assert torch.allclose(loaded.policy.critic_values(obs), model.policy.critic_values(obs)) or len(saved) > 1


def test_save_load_roundtrip_values(tmp_path):
    model = DistributionalPPO("MlpPolicy", "CartPole-v1", **TINY)
    model.learn(64)
    path = tmp_path / "model"
    model.save(path)
    loaded = DistributionalPPO.load(path.with_suffix(".zip"), env=make_vec_env("CartPole-v1", n_envs=1))
    obs = torch.randn(5, 4)
    with torch.no_grad():
        assert torch.equal(loaded.policy.predict_values(obs), model.policy.predict_values(obs))
    assert loaded.return_normalizer.count.item() == model.return_normalizer.count.item()
    assert loaded.get_hyperparameters() == model.get_hyperparameters()
    loaded.learn(32)


def test_vec_normalize_and_multiple_envs():
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=0), norm_reward=True)
    model = DistributionalPPO("MlpPolicy", env, **TINY)
    model.learn(128)
    assert model.get_vec_normalize_env() is env
    assert model.rollout_buffer.n_envs == 2
    assert model.return_normalizer.count.item() == 128  # 2 rollouts x 32 steps x 2 envs


def test_set_env_and_parameters():
    model = DistributionalPPO("MlpPolicy", "CartPole-v1", **TINY)
    model.learn(32)
    other = DistributionalPPO("MlpPolicy", "CartPole-v1", **dict(TINY, seed=1))
    params = model.get_parameters()
    assert set(params) == {"policy", "policy.optimizer"}
    other.set_parameters(params, exact_match=True)
    obs = torch.randn(3, 4)
    with torch.no_grad():
        assert torch.equal(other.policy.predict_values(obs), model.policy.predict_values(obs))
    model.set_env(DummyVecEnv([lambda: gym.make("CartPole-v1")]))
    model.learn(32)
    with pytest.raises(ValueError):
        model.set_env(DummyVecEnv([lambda: gym.make("Acrobot-v1")]))


def test_env_id_string_and_policy_class():
    from lifelong.agent.policy import DistributionalActorCriticPolicy

    model = DistributionalPPO(DistributionalActorCriticPolicy, "CartPole-v1", **TINY)
    assert model.get_policy_name() == "MlpPolicy"
    model.learn(32)


def test_pre_1_8_net_arch_list_of_one_dict_is_accepted_with_sb3s_warning():
    """SB3 2.x still takes ``net_arch=[dict(pi=..., vf=...)]`` (its first dict), with a warning."""
    with pytest.warns(UserWarning, match="shared layers in the mlp_extractor are removed"):
        old = DistributionalPPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, seed=0,
                                policy_kwargs=dict(net_arch=[dict(pi=[12], vf=[6])]))
    new = DistributionalPPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, seed=0,
                            policy_kwargs=dict(net_arch=dict(pi=[12], vf=[6])))
    shapes = {k: tuple(v.shape) for k, v in old.policy.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in new.policy.state_dict().items()}
    assert shapes["mlp_extractor.policy_net.0.weight"] == (12, 4)
    old.learn(16)


class _DiscreteObservations(gym.Env):
    """Integer observations (a Discrete observation space), as SB3's DummySuccessEnv has."""
    observation_space = gym.spaces.Discrete(5)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return 0, {}

    def step(self, action):
        self.t += 1
        return self.t % 5, float(action), self.t >= 10, False, {}


def test_discrete_observation_spaces_train_with_plasticity_diagnostics():
    """The diagnostics read the rollout buffer's [n, 1] entries as train() does."""
    model = DistributionalPPO("MlpPolicy", _DiscreteObservations(), n_steps=20, batch_size=20,
                              n_epochs=1, seed=0, diagnostics_every=1)
    model.learn(40)
    assert 0.0 <= model.plasticity_diagnostics()["plasticity/dormant_fraction"] <= 1.0


def test_tensorboard_run_folders_are_named_after_the_class(tmp_path):
    """Documented in docs/agent.md: DistributionalPPO_1, ... (SB3's PPO writes PPO_1)."""
    model = DistributionalPPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, n_epochs=1,
                              seed=0, tensorboard_log=str(tmp_path))
    model.learn(16)
    model.learn(16, tb_log_name="PPO")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DistributionalPPO_1", "PPO_1"]
