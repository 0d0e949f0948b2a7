"""A short, seeded CartPole run: the default agent (twin quantile critics, AdaptiveUPGD, VGS)
must raise its deterministic evaluation return well above the untrained policy's."""
import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from lifelong import DistributionalPPO


def test_cartpole_return_rises():
    env = make_vec_env("CartPole-v1", n_envs=8, seed=0)
    # rl-zoo's CartPole settings (constant learning rate), defaults for everything distributional
    model = DistributionalPPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
                              n_epochs=20, learning_rate=1e-3, seed=0)
    eval_env = Monitor(gym.make("CartPole-v1"))
    eval_env.reset(seed=0)
    before, _ = evaluate_policy(model, eval_env, n_eval_episodes=5, deterministic=True)
    model.learn(4096)
    after, _ = evaluate_policy(model, eval_env, n_eval_episodes=5, deterministic=True)
    assert after >= before + 50 and after >= 80, (before, after)
    for c in (0, 1):  # both critics explain the returns
        assert model.logger.name_to_value[f"train/critic{c}_explained_variance"] > 0.2
