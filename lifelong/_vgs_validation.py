"""Argument validation of the variance gradient scaler (constructor, ``step`` and state dicts).

Every check raises ``ValueError`` naming the argument, the bad value and what was expected.
"""
from __future__ import annotations

import math
import numbers
from typing import Any


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN, got {value!r}")
    return value


def _check_alpha(value: Any) -> float:
    v = _real("alpha", value)
    if not (0.0 <= v < math.inf):
        raise ValueError(f"alpha must be a finite number >= 0, got {value!r}")
    return v


def _check_beta(value: Any) -> float:
    v = _real("beta", value)
    if not (0.0 < v < 1.0):
        raise ValueError(f"beta must be in the open interval (0, 1), got {value!r}")
    return v


def _check_eps(value: Any) -> float:
    v = _real("eps", value)
    if not (0.0 < v < math.inf):
        raise ValueError(f"eps must be a finite number > 0, got {value!r}")
    return v


def _check_quantile(value: Any) -> float:
    v = _real("quantile", value)
    if not (0.0 <= v <= 1.0):
        raise ValueError(f"quantile must be in the closed interval [0, 1], got {value!r}")
    return v


def _check_warmup(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"warmup_steps must be an integer >= 0, got {value!r}")
    v = int(value)
    if v < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0, got {value!r}")
    return v


def _check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def _check_max_grad_norm(value: Any) -> float | None:
    if value is None:
        return None
    v = _real("max_grad_norm", value)
    if not v > 0.0:
        raise ValueError(f"max_grad_norm must be None or a number > 0, got {value!r}")
    return v


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"state_dict[{name!r}] must be an integer >= 0, got {value!r}")
    return int(value)
