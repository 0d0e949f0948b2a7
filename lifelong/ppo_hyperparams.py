"""Live hyperparameters of :class:`~lifelong.ppo.DistributionalPPO`: reading and setting every
name in :data:`lifelong.hyperparams.TUNABLE` on the model's components at once
(``get_hyperparameters`` and ``set_hyperparameters`` delegate here).
"""
from __future__ import annotations

from typing import Any

from lifelong.hyperparams import validate
from lifelong.schedules import Constant

__all__ = ["get_hyperparameters", "set_hyperparameters"]


def get_hyperparameters(model: Any) -> dict[str, Any]:
    """See :meth:`lifelong.ppo.DistributionalPPO.get_hyperparameters`."""
    progress = model._current_progress_remaining
    groups = model.policy.optimizer.param_groups
    return {
        "learning_rate": float(model.lr_schedule(progress)),
        "ent_coef": float(model.ent_coef),
        "vf_coef": float(model.vf_coef),
        "clip_range": float(model.clip_range(progress)),  # type: ignore[operator]
        "gamma": float(model.gamma),
        "gae_lambda": float(model.gae_lambda),
        "max_grad_norm": float(model.max_grad_norm),
        "n_epochs": int(model.n_epochs),
        "batch_size": int(model.batch_size),
        "sigma": float(groups[0]["sigma"]) if "sigma" in groups[0] else None,
        "vgs_alpha": float(model.vgs.alpha) if model.vgs is not None else None,
    }


def set_hyperparameters(model: Any, values: dict[str, Any]) -> dict[str, Any]:
    """See :meth:`lifelong.ppo.DistributionalPPO.set_hyperparameters`."""
    clean = {name: validate(name, value) for name, value in values.items()}
    groups = model.policy.optimizer.param_groups
    if "batch_size" in clean:
        buffer_size = model.n_steps * model.n_envs
        if clean["batch_size"] > buffer_size:
            raise ValueError(
                f"batch_size={clean['batch_size']} is invalid: expected at most n_steps * n_envs = {buffer_size}"
            )
    if "sigma" in clean and not all("sigma" in g for g in groups):
        raise ValueError(
            f"sigma can only be set with a UPGD optimizer (param groups with 'sigma'); this model uses "
            f"{type(model.policy.optimizer).__name__}"
        )
    if "vgs_alpha" in clean and model.vgs is None:
        raise ValueError("vgs_alpha can only be set when the model was built with vgs=True")
    for name, value in clean.items():
        if name == "learning_rate":
            model.learning_rate = value
            model.lr_schedule = Constant(value)
            for g in groups:
                g["lr"] = value
        elif name == "clip_range":
            model.clip_range = Constant(value)
        elif name in ("gamma", "gae_lambda"):
            setattr(model, name, value)
            if getattr(model, "rollout_buffer", None) is not None:
                setattr(model.rollout_buffer, name, value)
        elif name == "sigma":
            for g in groups:
                g["sigma"] = value
        elif name == "vgs_alpha":
            model.vgs.alpha = value  # type: ignore[union-attr]
        else:
            setattr(model, name, value)
    return model.get_hyperparameters()
