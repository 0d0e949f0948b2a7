"""Hyperparameter validation of the UPGD optimizers' param groups."""
from __future__ import annotations

import math
from typing import Any

from torch import Tensor


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


def _unit_interval(name: str, value: Any) -> float:
    value = _real(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def _validate_group(group: dict[str, Any], adaptive: bool) -> None:
    """Check (and normalise to floats) the hyperparameters of one param group, in place."""
    required = ("lr", "weight_decay", "sigma", "beta_utility", "foreach")
    for key in required + (("betas", "eps") if adaptive else ()):
        if key not in group:
            raise ValueError(f"param group lacks the hyperparameter {key!r} "
                             f"(has {sorted(k for k in group if k != 'params')})")
    group["lr"] = _non_negative("lr", group["lr"])
    group["weight_decay"] = _non_negative("weight_decay", group["weight_decay"])
    group["sigma"] = _non_negative("sigma", group["sigma"])
    group["beta_utility"] = _unit_interval("beta_utility", group["beta_utility"])
    if adaptive:
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = (_unit_interval("betas[0]", betas[0]), _unit_interval("betas[1]", betas[1]))
        eps = _real("eps", group["eps"])
        if eps <= 0.0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        group["eps"] = eps
    if group["foreach"] not in (None, True, False):
        raise ValueError(f"foreach must be None, True or False, got {group['foreach']!r}")
