"""(De)construction of :class:`~lifelong.ppo.DistributionalPPO`: the JSON-able ``policy`` argument
and keyword arguments that rebuild a model (``DistributionalPPO.get_policy_name`` and
``get_constructor_kwargs`` delegate here).
"""
from __future__ import annotations

from numbers import Real
from typing import Any

from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer

from lifelong.class_refs import _encode_json, _import_ref
from lifelong.ppo_optim import OPTIMIZERS
from lifelong.schedules import Constant, is_data_schedule

__all__ = ["policy_name", "constructor_kwargs", "schedule_to_json"]


def policy_name(model: Any) -> str | dict[str, str]:
    """See :meth:`lifelong.ppo.DistributionalPPO.get_policy_name`."""
    for alias, cls in model.policy_aliases.items():
        if model.policy_class is cls:
            return alias
    return _encode_json(model.policy_class, "policy")


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
        "lifelong.schedules.Constant / Linear"
    )


def constructor_kwargs(model: Any) -> dict[str, Any]:
    """See :meth:`lifelong.ppo.DistributionalPPO.get_constructor_kwargs`."""
    optimizer: Any = next((n for n, ref in OPTIMIZERS.items() if _import_ref(ref) is model.optimizer_class), None)
    if optimizer is None:
        optimizer = _encode_json(model.optimizer_class, "optimizer")
    kwargs: dict[str, Any] = {
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
        else _encode_json(model.rollout_buffer_class, "rollout_buffer_class"),
        "rollout_buffer_kwargs": _encode_json(model.rollout_buffer_kwargs, "rollout_buffer_kwargs"),
        "target_kl": model.target_kl,
        "stats_window_size": int(model._stats_window_size),
        "policy_kwargs": _encode_json(model.policy_kwargs, "policy_kwargs"),
        "verbose": int(model.verbose),
        "seed": model.seed,
        "critic": model.critic,
        "n_quantiles": model.n_quantiles,
        "huber_kappa": model.huber_kappa,
        "n_atoms": model.n_atoms,
        "v_min": model.v_min,
        "v_max": model.v_max,
        "categorical_projection": model.categorical_projection,
        "twin_critics": model.twin_critics,
        "value_aggregation": model.value_aggregation,
        "optimizer": optimizer,
        "optimizer_kwargs": _encode_json(model.optimizer_kwargs, "optimizer_kwargs"),
        "vgs": model.use_vgs,
        "vgs_kwargs": _encode_json(model.vgs_kwargs, "vgs_kwargs"),
        "normalize_returns": model.normalize_returns,
        "cvar_alpha": model.cvar_alpha,
        "diagnostics_every": model.diagnostics_every,
    }
    return kwargs
