"""Argument and environment checks of :class:`~lifelong.ppo.DistributionalPPO`'s constructor:
``ValueError`` naming the argument, the bad value and what is accepted (where Stable-Baselines3
would assert or fail later).
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np
from gymnasium import spaces

from lifelong.hyperparams import validate

__all__ = ["check_ppo_args", "check_spaces"]

_SUPPORTED_ACTION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
_SUPPORTED_OBS_SPACES = (spaces.Box, spaces.Dict, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
_POLICY_OWNED_KWARGS = (
    "optimizer_class", "optimizer_kwargs", "critic", "n_quantiles", "huber_kappa", "n_atoms", "v_min", "v_max",
    "categorical_projection", "n_critics", "value_aggregation", "cvar_alpha", "normalize_returns",
)


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def check_ppo_args(
    *,
    vgs_kwargs: Any,
    twin_critics: Any,
    vgs: Any,
    diagnostics_every: Any,
    n_steps: Any,
    ent_coef: Any,
    vf_coef: Any,
    gamma: Any,
    gae_lambda: Any,
    max_grad_norm: Any,
    n_epochs: Any,
    batch_size: Any,
    normalize_advantage: Any,
    clip_range: Any,
    clip_range_vf: Any,
    target_kl: Any,
) -> None:
    """The constructor's checks of its scalar arguments, in the constructor's order."""
    if vgs_kwargs is not None and not isinstance(vgs_kwargs, dict):
        raise ValueError(f"vgs_kwargs must be a dict or None, got {vgs_kwargs!r}")
    if not isinstance(twin_critics, (bool, np.bool_)):
        raise ValueError(f"twin_critics must be True or False, got {twin_critics!r}")
    if not isinstance(vgs, (bool, np.bool_)):
        raise ValueError(f"vgs must be True or False, got {vgs!r}")
    if not _is_int(diagnostics_every) or diagnostics_every < 0:
        raise ValueError(f"diagnostics_every={diagnostics_every!r} is invalid: expected an integer >= 0 (0 disables)")
    # ---- PPO arguments
    if not _is_int(n_steps) or n_steps < 1:
        raise ValueError(f"n_steps={n_steps!r} is invalid: expected an integer >= 1")
    for name, value in (("ent_coef", ent_coef), ("vf_coef", vf_coef), ("gamma", gamma), ("gae_lambda", gae_lambda),
                        ("max_grad_norm", max_grad_norm), ("n_epochs", n_epochs)):
        validate(name, value)
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid: expected an integer >= 1")
    if normalize_advantage and batch_size < 2:
        raise ValueError(f"batch_size={batch_size!r} is invalid: must be > 1 when normalize_advantage=True")
    if isinstance(clip_range, Real):
        validate("clip_range", clip_range)
    if clip_range_vf is not None and isinstance(clip_range_vf, Real) and not (
        math.isfinite(float(clip_range_vf)) and clip_range_vf > 0
    ):
        raise ValueError(f"clip_range_vf={clip_range_vf!r} is invalid: expected a positive number or None")
    if target_kl is not None and not (isinstance(target_kl, Real) and target_kl > 0):
        raise ValueError(f"target_kl={target_kl!r} is invalid: expected a positive number or None")


def check_spaces(policy: Any, observation_space: spaces.Space, action_space: spaces.Space) -> None:
    """The env's spaces are supported (and match ``policy``: ``MultiInputPolicy`` iff ``Dict``)."""
    if not isinstance(action_space, _SUPPORTED_ACTION_SPACES):
        raise ValueError(
            f"env has action space {action_space}, which DistributionalPPO does not support: accepted action spaces "
            f"are {[s.__name__ for s in _SUPPORTED_ACTION_SPACES]}"
        )
    if isinstance(action_space, spaces.Box) and not np.all(np.isfinite(np.array([action_space.low, action_space.high]))):
        raise ValueError(f"env has action space {action_space} with infinite bounds: a Box action space must be bounded")
    if not isinstance(observation_space, _SUPPORTED_OBS_SPACES):
        raise ValueError(
            f"env has observation space {observation_space}, which DistributionalPPO does not support: accepted "
            f"observation spaces are {[s.__name__ for s in _SUPPORTED_OBS_SPACES]}"
        )
    is_dict = isinstance(observation_space, spaces.Dict)
    if policy in ("MlpPolicy", "CnnPolicy") and is_dict:
        raise ValueError(f"policy={policy!r} does not accept a Dict observation space: use policy='MultiInputPolicy'")
    if policy == "MultiInputPolicy" and not is_dict:
        raise ValueError(
            f"policy='MultiInputPolicy' needs a Dict observation space, got {observation_space}: use policy='MlpPolicy'"
        )
