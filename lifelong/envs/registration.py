"""Entry points of the registered environments: the non-stationary ``lifelong/...-v0`` ids and
the partially observed ``lifelong/CartPoleNoVel-v1`` and ``lifelong/PendulumNoVel-v1``.

Each builds ``CartPole-v1`` (with its 500-step time limit) and wraps it; keyword arguments of
``gymnasium.make`` reach the wrapper (``every_steps``, ``seed``, ...), ``render_mode`` reaches
CartPole. The registered ids default to ``seed=0`` so that every copy of a vectorised
environment sees the same task sequence; pass ``seed=k`` for another sequence.
"""
from __future__ import annotations

import gymnasium as gym

from lifelong.envs.partial import HideVelocities
from lifelong.envs.wrappers import (
    ChangingDynamics,
    PermuteActions,
    PermuteObservations,
    ScaleRewards,
)

DEFAULT_EVERY_STEPS = 20_000

#: id -> (entry point name, default kwargs)
REGISTERED = {
    "lifelong/PermutedCartPole-v0": ("make_permuted_cartpole", {}),
    "lifelong/PermutedActionsCartPole-v0": ("make_permuted_actions_cartpole", {}),
    "lifelong/ChangingCartPole-v0": ("make_changing_cartpole", {}),
    "lifelong/ScaledRewardsCartPole-v0": ("make_scaled_rewards_cartpole", {}),
}

#: the partially observed ids (stationary, velocities hidden): id -> entry point name
PARTIALLY_OBSERVED = {
    "lifelong/CartPoleNoVel-v1": "make_cartpole_no_velocities",
    "lifelong/PendulumNoVel-v1": "make_pendulum_no_velocities",
}


def _cartpole(render_mode=None) -> gym.Env:
    return gym.make("CartPole-v1", render_mode=render_mode)


def make_permuted_cartpole(every_steps: int = DEFAULT_EVERY_STEPS, seed: int | None = 0,
                           identity_first: bool = True, render_mode=None) -> gym.Env:
    """CartPole whose 4 observation entries are permuted anew every ``every_steps`` steps."""
    return PermuteObservations(_cartpole(render_mode), every_steps, seed=seed,
                               identity_first=identity_first)


def make_permuted_actions_cartpole(every_steps: int = DEFAULT_EVERY_STEPS, seed: int | None = 0,
                                   identity_first: bool = True, render_mode=None) -> gym.Env:
    """CartPole whose left/right actions swap every ``every_steps`` steps."""
    return PermuteActions(_cartpole(render_mode), every_steps, seed=seed,
                          identity_first=identity_first)


def make_changing_cartpole(every_steps: int = DEFAULT_EVERY_STEPS, params=None,
                           seed: int | None = 0, order: str = "cycle",
                           render_mode=None) -> gym.Env:
    """CartPole whose pole length and cart mass cycle through
    ``{"length": [0.5, 1.0, 0.25], "masscart": [1.0, 2.0, 0.5]}`` (by default)."""
    return ChangingDynamics(_cartpole(render_mode), every_steps, params=params, seed=seed,
                            order=order)


def make_scaled_rewards_cartpole(every_steps: int = DEFAULT_EVERY_STEPS,
                                 factors=(1.0, 10.0, 0.1), seed: int | None = 0,
                                 order: str = "cycle", render_mode=None) -> gym.Env:
    """CartPole whose reward is multiplied by 1, 10, 0.1, 1, ... (by default) per phase."""
    return ScaleRewards(_cartpole(render_mode), every_steps, factors=factors, seed=seed,
                        order=order)


def make_cartpole_no_velocities(render_mode=None) -> gym.Env:
    """CartPole-v1 with the cart and pole velocities hidden (rl-zoo's CartPoleNoVel-v1)."""
    return HideVelocities(_cartpole(render_mode))


def make_pendulum_no_velocities(render_mode=None) -> gym.Env:
    """Pendulum-v1 (200-step limit) with the angular velocity hidden (rl-zoo's PendulumNoVel-v1)."""
    return HideVelocities(gym.make("Pendulum-v1", render_mode=render_mode))


def register_envs() -> None:
    """Register the ids above with Gymnasium (idempotent)."""
    for env_id, (fn, kwargs) in REGISTERED.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=f"lifelong.envs.registration:{fn}",
                         kwargs=dict(kwargs), max_episode_steps=None)
    for env_id, fn in PARTIALLY_OBSERVED.items():
        if env_id not in gym.registry:  # the inner env keeps its own time limit
            gym.register(id=env_id, entry_point=f"lifelong.envs.registration:{fn}", max_episode_steps=None)
