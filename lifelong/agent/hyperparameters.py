"""The hyperparameters that can change while an agent trains: their validation, and reading and
setting them on a live model.

``TUNABLE`` lists the names ``DistributionalPPO.set_hyperparameters`` accepts (and PBT searches
over); :func:`validate` checks one value and returns it coerced to its Python type
(``float`` or ``int``), or raises ``ValueError`` naming the hyperparameter, the bad value and
the accepted range. Checks that need the model (``batch_size`` against the rollout size,
``sigma`` needing a UPGD optimizer, ``vgs_alpha`` needing a scaler) are made by
:func:`set_hyperparameters`, which applies every value to every live component at once (the
optimizer's param groups included).
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

from lifelong.agent.schedules import Constant

__all__ = ["TUNABLE", "RANGES", "validate", "get_hyperparameters", "set_hyperparameters"]

TUNABLE: tuple[str, ...] = (
    "learning_rate",
    "ent_coef",
    "vf_coef",
    "clip_range",
    "gamma",
    "gae_lambda",
    "max_grad_norm",
    "n_epochs",
    "batch_size",
    "sigma",
    "vgs_alpha",
)

# name -> (type, low, high, low_inclusive, high_inclusive); None bound = unbounded
RANGES: dict[str, tuple[type, float | None, float | None, bool, bool]] = {
    "learning_rate": (float, 0.0, None, False, False),
    "ent_coef": (float, 0.0, None, True, False),
    "vf_coef": (float, 0.0, None, True, False),
    "clip_range": (float, 0.0, None, False, False),
    "gamma": (float, 0.0, 1.0, True, True),
    "gae_lambda": (float, 0.0, 1.0, True, True),
    "max_grad_norm": (float, 0.0, None, False, False),
    "n_epochs": (int, 1, None, True, False),
    "batch_size": (int, 2, None, True, False),
    "sigma": (float, 0.0, None, True, False),
    "vgs_alpha": (float, 0.0, None, True, False),
}


def _describe(name: str) -> str:
    typ, lo, hi, lo_inc, hi_inc = RANGES[name]
    left = "(-inf" if lo is None else ("[" if lo_inc else "(") + f"{lo:g}"
    right = "inf)" if hi is None else f"{hi:g}" + ("]" if hi_inc else ")")
    kind = "an integer" if typ is int else "a finite number"
    return f"{kind} in {left}, {right}"


def validate(name: str, value: Any) -> float | int:
    """Return ``value`` coerced for hyperparameter ``name``; ``ValueError`` if unknown or out of range."""
    if name not in RANGES:
        raise ValueError(f"unknown hyperparameter {name!r}; accepted names: {', '.join(TUNABLE)}")
    typ, lo, hi, lo_inc, hi_inc = RANGES[name]
    bad = f"{name}={value!r} is invalid: expected {_describe(name)}"
    if isinstance(value, bool):
        raise ValueError(bad)
    if typ is int:
        if isinstance(value, Integral):
            v: float | int = int(value)
        elif isinstance(value, Real) and math.isfinite(float(value)) and float(value).is_integer():
            v = int(value)
        else:
            raise ValueError(bad)
    else:
        if not isinstance(value, Real) or not math.isfinite(float(value)):
            raise ValueError(bad)
        v = float(value)
    if lo is not None and (v < lo or (v == lo and not lo_inc)):
        raise ValueError(bad)
    if hi is not None and (v > hi or (v == hi and not hi_inc)):
        raise ValueError(bad)
    return v


def get_hyperparameters(model: Any) -> dict[str, Any]:
    """See :meth:`lifelong.agent.ppo.DistributionalPPO.get_hyperparameters`."""
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
    """See :meth:`lifelong.agent.ppo.DistributionalPPO.set_hyperparameters`."""
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
