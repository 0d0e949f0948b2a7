"""Schedules as data: callables of Stable-Baselines3's ``progress_remaining`` (1 -> 0).

Stable-Baselines3 accepts any callable as a schedule, which cannot be saved without pickle.
These two classes are plain data: ``to_dict()`` gives a JSON-able dict and :func:`from_dict`
rebuilds the schedule, so a checkpoint can store them safely.

>>> Linear(3e-4, 0.0)(1.0), Linear(3e-4, 0.0)(0.5), Linear(3e-4, 0.0)(0.0)
(0.0003, 0.00015, 0.0)
>>> from_dict(Constant(0.2).to_dict())
Constant(0.2)

:func:`as_schedule` turns what a user may pass (a number, a schedule, its dict, or any callable)
into a callable; an arbitrary callable is kept as is (it trains, but ``model.save`` refuses it).
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any, Callable

__all__ = ["Constant", "Linear", "from_dict", "as_schedule", "is_data_schedule"]


def _finite_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


class Constant:
    """The same value at every point of training."""

    def __init__(self, value: float) -> None:
        self.value = _finite_float("Constant.value", value)

    def __call__(self, progress_remaining: float) -> float:
        return self.value

    def to_dict(self) -> dict[str, Any]:
        return {"type": "constant", "value": self.value}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Constant) and other.value == self.value

    def __hash__(self) -> int:
        return hash(("constant", self.value))

    def __repr__(self) -> str:
        return f"Constant({self.value!r})"


class Linear:
    """``start`` at the beginning of training (progress_remaining=1), ``end`` at its end (0)."""

    def __init__(self, start: float, end: float) -> None:
        self.start = _finite_float("Linear.start", start)
        self.end = _finite_float("Linear.end", end)

    def __call__(self, progress_remaining: float) -> float:
        p = min(max(float(progress_remaining), 0.0), 1.0)
        return self.end + (self.start - self.end) * p

    def to_dict(self) -> dict[str, Any]:
        return {"type": "linear", "start": self.start, "end": self.end}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Linear) and (other.start, other.end) == (self.start, self.end)

    def __hash__(self) -> int:
        return hash(("linear", self.start, self.end))

    def __repr__(self) -> str:
        return f"Linear({self.start!r}, {self.end!r})"


_TYPES = {"constant": (Constant, ("value",)), "linear": (Linear, ("start", "end"))}


def from_dict(d: dict[str, Any]) -> Constant | Linear:
    """Rebuild a schedule from ``to_dict()`` output; anything else is a ``ValueError``."""
    if not isinstance(d, dict) or d.get("type") not in _TYPES:
        raise ValueError(f"schedule dict must have 'type' in {sorted(_TYPES)}, got {d!r}")
    cls, keys = _TYPES[d["type"]]
    extra = set(d) - set(keys) - {"type"}
    missing = [k for k in keys if k not in d]
    if extra or missing:
        raise ValueError(f"schedule dict of type {d['type']!r} needs keys {list(keys)}, got {sorted(d)}")
    return cls(*(d[k] for k in keys))


def is_data_schedule(value: Any) -> bool:
    """True when ``value`` is a :class:`Constant` or :class:`Linear` (savable)."""
    return isinstance(value, (Constant, Linear))


def as_schedule(value: Any, name: str = "schedule") -> Callable[[float], float]:
    """A number -> :class:`Constant`; a schedule stays; a schedule dict -> :func:`from_dict`;
    any other callable is returned unchanged (usable for training, refused by ``save``)."""
    if is_data_schedule(value):
        return value
    if isinstance(value, dict):
        return from_dict(value)
    if isinstance(value, Real) and not isinstance(value, bool):
        return Constant(_finite_float(name, value))
    # SB3's FloatSchedule(ConstantSchedule(x)) -> unwrap to data when possible
    inner = getattr(value, "value_schedule", None)
    if inner is not None and type(inner).__name__ == "ConstantSchedule":
        return Constant(inner.val)
    if callable(value):
        return value
    raise ValueError(f"{name} must be a number, a lifelong.agent.schedules schedule (or its dict) or a callable, got {value!r}")
