"""Validation of the UPGD family's per-group hyperparameters.

Every value is checked where it enters (constructor, ``add_param_group``, ``load_state_dict``)
and a bad one is a ``ValueError`` naming the argument, the value and the accepted range.
"""
from __future__ import annotations

import math
from typing import Any

from torch import Tensor

#: the mechanisms beyond the paper and the value of each that gives the paper's rule exactly;
#: a param group saved before a mechanism existed is read with that value
MECHANISMS_OFF = {"gate": "global", "gate_temperature": 1.0, "utility": "weight", "l2_init": 0.0,
                  "reset_after": 0, "reset_every": 0}
GATES = ("global", "layer", "none")
UTILITIES = ("weight", "unit")


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, Tensor) and value.numel() == 1 and not value.requires_grad:
            value = value.item()
        else:
            raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _non_negative(name: str, value: Any) -> float:
    value = _real(name, value)
    if value < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def _positive(name: str, value: Any) -> float:
    value = _real(name, value)
    if value <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def _unit_interval(name: str, value: Any) -> float:
    value = _real(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def _count(name: str, value: Any) -> int:
    """A whole number >= 0 (an int, or a float or one-element tensor holding one)."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.requires_grad:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer() \
            or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return int(value)


def _choice(name: str, value: Any, accepted: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in accepted:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, accepted))}, got {value!r}")
    return value


def validate_group(group: dict[str, Any], adaptive: bool) -> None:
    """Check (and normalise to floats) the hyperparameters of one param group, in place."""
    required = ("lr", "weight_decay", "sigma", "beta_utility", "foreach", *MECHANISMS_OFF)
    for key in required + (("betas", "eps") if adaptive else ()):
        if key not in group:
            raise ValueError(f"param group lacks the hyperparameter {key!r} "
                             f"(has {sorted(k for k in group if k != 'params')})")
    group["lr"] = _non_negative("lr", group["lr"])
    group["weight_decay"] = _non_negative("weight_decay", group["weight_decay"])
    group["sigma"] = _non_negative("sigma", group["sigma"])
    group["beta_utility"] = _unit_interval("beta_utility", group["beta_utility"])
    group["gate"] = _choice("gate", group["gate"], GATES)
    group["gate_temperature"] = _positive("gate_temperature", group["gate_temperature"])
    group["utility"] = _choice("utility", group["utility"], UTILITIES)
    group["l2_init"] = _non_negative("l2_init", group["l2_init"])
    group["reset_after"] = _count("reset_after", group["reset_after"])
    group["reset_every"] = _count("reset_every", group["reset_every"])
    if adaptive:
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = (_unit_interval("betas[0]", betas[0]), _unit_interval("betas[1]", betas[1]))
        group["eps"] = _positive("eps", group["eps"])
    if group["foreach"] not in (None, True, False):
        raise ValueError(f"foreach must be None, True or False, got {group['foreach']!r}")
