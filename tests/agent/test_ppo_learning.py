"""A short, seeded CartPole run: the default agent (twin quantile critics, Adam, no scaler)
must raise its deterministic evaluation return well above the untrained policy's, and both
critics must learn to explain the returns."""
import statistics

import gymnasium as gym
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from lifelong import DistributionalPPO


class ExplainedVariance(BaseCallback):
    """Each critic's explained variance as logged by every update (read at the next rollout)."""

    def __init__(self):
        super().__init__()
        self.history = {0: [], 1: []}

    def _on_rollout_start(self) -> None:
        for c in self.history:
            value = self.model.logger.name_to_value.get(f"train/critic{c}_explained_variance")
            if value is not None:
                self.history[c].append(value)

    def _on_step(self) -> bool:
        return True


def _train(seed, callback=None):
    """rl-zoo's CartPole settings (constant learning rate), defaults for everything distributional;
    the deterministic evaluation return before and after 8,192 steps."""
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = DistributionalPPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
                              n_epochs=20, learning_rate=1e-3, seed=seed)
    eval_env = Monitor(gym.make("CartPole-v1"))
    eval_env.reset(seed=seed)
    before, _ = evaluate_policy(model, eval_env, n_eval_episodes=5, deterministic=True)
    model.learn(8192, callback=callback)
    after, _ = evaluate_policy(model, eval_env, n_eval_episodes=5, deterministic=True)
    return before, after


def test_cartpole_return_rises():
    # Three seeds, judged by their median: one short run is chaotic in the last bits of its
    # arithmetic, which differ between CPUs (seed 0 reached 64.6 on one 2-core machine and more
    # than 80 on another; seeds 1-2 reached 242 and 351 there).
    ev = ExplainedVariance()
    runs = [_train(seed, ev if seed == 0 else None) for seed in (0, 1, 2)]
    for before, after in runs:
        assert after >= before + 50, runs
    assert statistics.median(after for _, after in runs) >= 150, runs
    # A single update's explained variance is noisy (256-step rollouts) and falls while the
    # returns grow quickly: over seeds 0-25 (and with the loss's rounding changed) the median of
    # the last eight updates ranged from 0.19 to 0.99. Each critic must reach a high explained
    # variance and keep a clearly positive one through the second half of the run (seed 0).
    for c, values in ev.history.items():
        assert max(values) > 0.8, (c, values)
        assert statistics.median(values[len(values) // 2 :]) > 0.2, (c, values)
