"""The hyperparameters that can change while an agent trains, and their validation.

``TUNABLE`` lists the names ``DistributionalPPO.set_hyperparameters`` accepts (and PBT searches
over); :func:`validate` checks one value and returns it coerced to its Python type
(``float`` or ``int``), or raises ``ValueError`` naming the hyperparameter, the bad value and
the accepted range. Checks that need the model (``batch_size`` against the rollout size,
``sigma`` needing a UPGD optimizer, ``vgs_alpha`` needing a scaler) are made by the model.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

__all__ = ["TUNABLE", "RANGES", "validate"]

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
