"""How often the global gradient-norm clip binds: Stable-Baselines3 PPO vs DistributionalPPO with
normalised and with raw returns, at rl-baselines3-zoo's CartPole-v1 settings.

Why: ``max_grad_norm`` clips the norm of the *whole* gradient, policy and critics together. When
the critics regress raw returns (SB3), their gradient is large while the value error is, so the
clip binds and scales the policy's step by a factor that follows the value error. With
normalised returns (the agent's default) the critics' gradient is of order one and the clip
rarely binds. This script records, for every minibatch step, the total gradient norm before
clipping and reports the fraction of steps where it exceeded ``max_grad_norm`` (docs/agent.md,
the CartPole-v1 bullet of the suite's results).

    python benchmarks/clip_binding.py --steps 30000 --seed 4 --seed 7 --seed 0

It is a diagnostic (a few seeds, short runs), not a benchmark of learning.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

torch.set_num_threads(1)

import stable_baselines3.ppo.ppo as sb3_ppo_module  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402

import lifelong.agent.update as update_module  # noqa: E402
from lifelong import DistributionalPPO  # noqa: E402
from lifelong.agent.schedules import Linear  # noqa: E402

#: rl-zoo3 2.9.2 hyperparams/ppo.yml, CartPole-v1 (8 environments)
ZOO_CARTPOLE = dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                    learning_rate=Linear(1e-3, 0.0), clip_range=Linear(0.2, 0.0))
AGENTS = ("sb3", "ours-normalised", "ours-raw")


def gradient_norms(agent: str, seed: int, steps: int) -> np.ndarray:
    """Train ``agent`` for ``steps`` and return the total gradient norm of every minibatch step."""
    norms: list[float] = []
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    if agent == "sb3":
        torch_clip = torch.nn.utils.clip_grad_norm_

        def recording_clip(parameters, max_norm, *args, **kwargs):
            parameters = list(parameters)
            total = torch_clip(parameters, max_norm, *args, **kwargs)  # the norm before clipping
            norms.append(float(total))
            return total

        sb3_ppo_module.th.nn.utils.clip_grad_norm_ = recording_clip
        try:
            PPO("MlpPolicy", env, seed=seed, device="cpu", **ZOO_CARTPOLE).learn(steps)
        finally:
            sb3_ppo_module.th.nn.utils.clip_grad_norm_ = torch_clip
    else:
        # the agent clips through clip_grad_norm, or clip_listed once its Adam step is prepared
        agent_clip, agent_clip_listed = update_module.clip_grad_norm, update_module.clip_listed

        def recording_agent_clip(optimizer, max_norm):
            total = agent_clip(optimizer, max_norm)
            norms.append(float(total))
            return total

        def recording_agent_clip_listed(grads, max_norm):
            total = agent_clip_listed(grads, max_norm)
            norms.append(float(total))
            return total

        update_module.clip_grad_norm = recording_agent_clip
        update_module.clip_listed = recording_agent_clip_listed
        try:
            DistributionalPPO("MlpPolicy", env, seed=seed, device="cpu", normalize_returns=agent == "ours-normalised",
                              **ZOO_CARTPOLE).learn(steps)
        finally:
            update_module.clip_grad_norm, update_module.clip_listed = agent_clip, agent_clip_listed
    env.close()
    return np.asarray(norms)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30_000, help="training steps per run (default 30000)")
    p.add_argument("--seed", type=int, action="append", help="seed (repeatable; default 0)")
    a = p.parse_args(argv)
    if a.steps < 256:
        p.error(f"--steps must be >= 256 (one rollout), got {a.steps}")
    max_norm = 0.5  # PPO's default max_grad_norm, the zoo's for CartPole
    print("| seed | agent | minibatch steps | clip binds | median norm |")
    print("|---|---|---|---|---|")
    for seed in a.seed or [0]:
        for agent in AGENTS:
            norms = gradient_norms(agent, seed, a.steps)
            print(f"| {seed} | {agent} | {norms.size} | {np.mean(norms > max_norm):.0%} | {np.median(norms):.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
