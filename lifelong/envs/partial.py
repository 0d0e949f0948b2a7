"""Partially observed environments: velocities hidden, so a policy needs memory.

:class:`HideVelocities` zeroes chosen entries of a vector observation (rl-zoo's ``NoVel``
environments do the same: same shape and space, the masked entries are always 0). The
registered ``lifelong/CartPoleNoVel-v1`` hides CartPole's cart velocity and pole angular
velocity (entries 1 and 3); ``lifelong/PendulumNoVel-v1`` hides Pendulum's angular velocity
(entry 2), leaving ``cos(theta), sin(theta)``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["HideVelocities", "VELOCITY_ENTRIES"]

#: Gymnasium id -> the observation entries that are velocities
VELOCITY_ENTRIES: dict[str, tuple[int, ...]] = {
    "CartPole-v1": (1, 3),
    "Pendulum-v1": (2,),
}


class HideVelocities(gym.ObservationWrapper):
    """Zero the observation entries ``hidden`` (default: the env's velocities, from
    :data:`VELOCITY_ENTRIES`); the observation space is unchanged."""

    def __init__(self, env: gym.Env, hidden: Sequence[int] | None = None) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"HideVelocities needs a 1-D Box observation space, got {space}")
        if hidden is None:
            env_id = env.spec.id if env.spec is not None else None
            if env_id not in VELOCITY_ENTRIES:
                raise ValueError(
                    f"HideVelocities does not know the velocities of env {env_id!r}: pass hidden=[...] "
                    f"(known envs: {sorted(VELOCITY_ENTRIES)})"
                )
            hidden = VELOCITY_ENTRIES[env_id]
        hidden = [int(i) for i in hidden]
        bad = [i for i in hidden if not 0 <= i < space.shape[0]]
        if bad:
            raise ValueError(f"hidden={hidden!r} is invalid: entries {bad} are outside 0..{space.shape[0] - 1}")
        self.hidden = tuple(hidden)
        self._mask = np.ones(space.shape, dtype=space.dtype)
        self._mask[list(self.hidden)] = 0

    def observation(self, observation: Any) -> np.ndarray:
        return observation * self._mask
