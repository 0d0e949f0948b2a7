"""The constructor arguments of :class:`~lifelong.agent.ppo.DistributionalPPO`, both ways:
checking them (``ValueError`` naming the argument, the bad value and what is accepted, where
Stable-Baselines3 would assert or fail later) and recording them (the JSON-able ``policy``
argument and keyword arguments that rebuild a model from a checkpoint).
"""
from __future__ import annotations

import inspect
import math
from numbers import Real
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer

from lifelong.agent.hyperparameters import validate
from lifelong.agent.optimizer import OPTIMIZERS
from lifelong.agent.schedules import Constant, is_data_schedule
from lifelong.checkpoint.codec import to_json

__all__ = ["check_ppo_args", "check_spaces", "policy_name", "constructor_kwargs", "schedule_to_json"]


SUPPORTED_ACTION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
SUPPORTED_OBS_SPACES = (spaces.Box, spaces.Dict, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
_POLICY_OWNED_KWARGS = (
    "optimizer_class", "optimizer_kwargs", "optimizer_groups", "critic", "n_quantiles", "huber_kappa", "quantile_mean_loss", "n_atoms", "v_min", "v_max",
    "categorical_projection", "n_critics", "value_aggregation", "cvar_alpha", "normalize_returns",
    "normalize_returns_horizon",
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
    if not isinstance(action_space, SUPPORTED_ACTION_SPACES):
        raise ValueError(
            f"env has action space {action_space}, which the distributional agents do not support: accepted action spaces "
            f"are {[s.__name__ for s in SUPPORTED_ACTION_SPACES]}"
        )
    if isinstance(action_space, spaces.Box) and not np.all(np.isfinite(np.array([action_space.low, action_space.high]))):
        raise ValueError(f"env has action space {action_space} with infinite bounds: a Box action space must be bounded")
    if not isinstance(observation_space, SUPPORTED_OBS_SPACES):
        raise ValueError(
            f"env has observation space {observation_space}, which the distributional agents do not support: accepted "
            f"observation spaces are {[s.__name__ for s in SUPPORTED_OBS_SPACES]}"
        )
    if not isinstance(policy, str):
        return
    is_dict = isinstance(observation_space, spaces.Dict)
    multi_input = policy.startswith("MultiInput")  # MultiInputPolicy, MultiInputLstmPolicy
    if is_dict and not multi_input:
        raise ValueError(
            f"policy={policy!r} does not accept a Dict observation space: use policy={'MultiInput' + policy[3:]!r}"
        )
    if multi_input and not is_dict:
        raise ValueError(
            f"policy={policy!r} needs a Dict observation space, got {observation_space}: use policy={'Mlp' + policy[10:]!r}"
        )



def policy_name(model: Any) -> str | dict[str, str]:
    """See :meth:`lifelong.agent.ppo.DistributionalPPO.get_policy_name`."""
    for alias, cls in model.policy_aliases.items():
        if model.policy_class is cls:
            return alias
    return to_json(model.policy_class, "policy")


def schedule_to_json(value: Any, name: str) -> Any:
    """A schedule argument as JSON: a number (``Constant``), ``to_dict()`` or ``None``."""
    if value is None:
        return None
    if isinstance(value, Constant):
        return value.value
    if is_data_schedule(value):
        return value.to_dict()
    if isinstance(value, Real):
        return float(value)
    raise ValueError(
        f"{name}={value!r} is an arbitrary callable and cannot be saved: use a number or "
        "lifelong.agent.schedules.Constant / Linear"
    )


def constructor_kwargs(model: Any) -> dict[str, Any]:
    """See :meth:`lifelong.agent.ppo.DistributionalPPO.get_constructor_kwargs`."""
    optimizer: Any = next((n for n, cls in OPTIMIZERS.items() if cls is model.optimizer_class), None)
    if optimizer is None:
        optimizer = to_json(model.optimizer_class, "optimizer")
    all_kwargs: dict[str, Any] = {
        "learning_rate": schedule_to_json(model.lr_schedule, "learning_rate"),
        "n_steps": int(model.n_steps),
        "batch_size": int(model.batch_size),
        "n_epochs": int(model.n_epochs),
        "gamma": float(model.gamma),
        "gae_lambda": float(model.gae_lambda),
        "clip_range": schedule_to_json(model.clip_range, "clip_range"),
        "clip_range_vf": schedule_to_json(model.clip_range_vf, "clip_range_vf"),
        "normalize_advantage": bool(model.normalize_advantage),
        "ent_coef": float(model.ent_coef),
        "vf_coef": float(model.vf_coef),
        "max_grad_norm": float(model.max_grad_norm),
        "use_sde": bool(model.use_sde),
        "sde_sample_freq": int(model.sde_sample_freq),
        "rollout_buffer_class": None
        if model.rollout_buffer_class in (None, RolloutBuffer, DictRolloutBuffer)
        else to_json(model.rollout_buffer_class, "rollout_buffer_class"),
        "rollout_buffer_kwargs": to_json(model.rollout_buffer_kwargs, "rollout_buffer_kwargs"),
        "target_kl": model.target_kl,
        "stats_window_size": int(model._stats_window_size),
        "policy_kwargs": to_json(model.policy_kwargs, "policy_kwargs"),
        "verbose": int(model.verbose),
        "seed": model.seed,
        "critic": model.critic,
        "n_quantiles": model.n_quantiles,
        "huber_kappa": model.huber_kappa,
        "quantile_mean_loss": model.quantile_mean_loss,
        "n_atoms": model.n_atoms,
        "v_min": model.v_min,
        "v_max": model.v_max,
        "categorical_projection": model.categorical_projection,
        "twin_critics": model.twin_critics,
        "value_aggregation": model.value_aggregation,
        "optimizer": optimizer,
        "optimizer_kwargs": to_json(model.optimizer_kwargs, "optimizer_kwargs"),
        "optimizer_groups": to_json(model.optimizer_groups, "optimizer_groups"),
        "vgs": model.use_vgs,
        "vgs_kwargs": to_json(model.vgs_kwargs, "vgs_kwargs"),
        "collapse_reset": model.collapse_reset is not None,
        "collapse_reset_kwargs": None if model.collapse_reset is None else model.collapse_reset.kwargs(),
        "normalize_returns": model.normalize_returns,
        "normalize_returns_horizon": model.normalize_returns_horizon,
        "cvar_alpha": model.cvar_alpha,
        "diagnostics_every": model.diagnostics_every,
    }
    # only the arguments this algorithm's constructor takes (the recurrent agent, as sb3-contrib's
    # RecurrentPPO, has no rollout_buffer_class / rollout_buffer_kwargs)
    accepted = inspect.signature(type(model).__init__).parameters
    return {name: value for name, value in all_kwargs.items() if name in accepted}
