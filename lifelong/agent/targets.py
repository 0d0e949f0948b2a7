"""Critic targets vs. advantages: the critics bootstrap from their *mean*, the policy's advantages
from the aggregate.

With twin critics (or a CVaR), the value used for the policy's advantages is an aggregate
``V_agg`` (``min``, ``mean`` or the CVaR of the critics' distributions), which is pessimistic.
Bootstrapping the critics' own targets on it would compound that bias over the horizon (about
``-gamma (1 - lambda) / (1 - gamma)`` times the gap between the critics), and the critics would stop
learning the return distribution. So one rollout gives two GAE(lambda) computations::

    advantages = GAE(r + gamma * b_agg,  V_agg)                 (what the policy loss uses)
    returns    = GAE(r + gamma * b_mean, V_mean) + V_mean       (what every critic regresses on)

where ``V_mean`` is the mean over critics of each critic's expected value, and ``b`` is the value
of the terminal observation of an episode cut by a time limit (0 elsewhere), from the same
value. With one critic, ``value_aggregation="mean"`` and no CVaR, both use the same value.

``GAE(r, V)_t = sum_l (gamma lambda)^l delta_{t+l}``, ``delta_t = r_t + gamma V_{t+1} (1 - d_{t+1}) - V_t``,
as Stable-Baselines3's ``RolloutBuffer.compute_returns_and_advantage`` (same recursion, same dtypes).
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["gae", "set_targets_and_advantages"]


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    episode_starts: np.ndarray,
    last_values: np.ndarray,
    last_dones: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> np.ndarray:
    """GAE(lambda) advantages ``[n_steps, n_envs]`` (see the module docstring)."""
    advantages = np.zeros_like(values)
    last_gae_lam = 0
    n_steps = values.shape[0]
    for step in reversed(range(n_steps)):
        if step == n_steps - 1:
            next_non_terminal = 1.0 - last_dones.astype(np.float32)
            next_values = last_values
        else:
            next_non_terminal = 1.0 - episode_starts[step + 1]
            next_values = values[step + 1]
        delta = rewards[step] + gamma * next_values * next_non_terminal - values[step]
        last_gae_lam = delta + gamma * gae_lambda * next_non_terminal * last_gae_lam
        advantages[step] = last_gae_lam
    return advantages


def set_targets_and_advantages(
    buffer: Any,
    mean_values: np.ndarray,
    last_mean: np.ndarray,
    last_aggregate: np.ndarray,
    bootstrap_mean: np.ndarray,
    bootstrap_aggregate: np.ndarray,
    last_dones: np.ndarray,
) -> None:
    """Fill ``buffer.advantages`` (from ``buffer.values``, the aggregate) and ``buffer.returns``
    (the critics' targets, from ``mean_values``) for a full rollout buffer. ``buffer.rewards``
    are the env's rewards; ``bootstrap_*`` are ``gamma * V(terminal obs)`` of time-limit cuts."""
    gamma, lam = buffer.gamma, buffer.gae_lambda
    starts = buffer.episode_starts
    buffer.advantages = gae(buffer.rewards + bootstrap_aggregate, buffer.values, starts, last_aggregate, last_dones, gamma, lam)
    buffer.returns = gae(buffer.rewards + bootstrap_mean, mean_values, starts, last_mean, last_dones, gamma, lam) + mean_values
