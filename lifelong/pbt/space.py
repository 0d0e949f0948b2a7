"""Search-space distributions for PBT: sample, perturb within bounds, describe as JSON.

Every distribution is immutable, picklable and validated at construction:

- ``Uniform(low, high)``      floats, perturbed by multiplication, clipped to ``[low, high]``
- ``LogUniform(low, high)``   floats sampled uniformly in log space, perturbed by
                              multiplication (= an additive step in log space), clipped
- ``IntUniform(low, high)``   integers in ``[low, high]`` (both inclusive), perturbed by
                              multiplication then rounding; a perturbation that rounds back
                              to the same value moves one step in the factor's direction
- ``Choice(values)``          one of a list; perturbation moves to a neighbouring value
                              (index +/- 1) without wrap-around: at either end the only
                              neighbour is taken

``sample(rng)`` and ``perturb(value, rng, factors)`` take a ``numpy.random.Generator`` so that
a seeded population is reproducible.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np

__all__ = ["Distribution", "Uniform", "LogUniform", "IntUniform", "Choice", "from_dict"]


def _check_number(cls: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{cls}: {name}={value!r} is not a number; expected a finite real number")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{cls}: {name}={value!r} is not finite; expected a finite real number")
    return value


def _check_factors(factors: Sequence[float]) -> tuple[float, ...]:
    try:
        out = tuple(float(f) for f in factors)
    except TypeError as exc:
        raise ValueError(f"perturb_factors={factors!r} is not a sequence of numbers") from exc
    if not out or any(not math.isfinite(f) or f <= 0 for f in out):
        raise ValueError(
            f"perturb_factors={factors!r}: expected a non-empty sequence of finite positive numbers"
        )
    return out


class Distribution:
    """Base class: ``sample``, ``perturb``, ``contains``, ``to_dict`` and the bounds to validate."""

    def sample(self, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def perturb(self, value: Any, rng: np.random.Generator, factors: Sequence[float] = (0.8, 1.2)) -> Any:
        raise NotImplementedError

    def contains(self, value: Any) -> bool:
        raise NotImplementedError

    def endpoints(self) -> list[Any]:
        """The values ``lifelong.agent.hyperparameters.validate`` must accept for the space to be valid."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))


class _Range(Distribution):
    _log = False

    def __init__(self, low: float, high: float) -> None:
        cls = type(self).__name__
        low = _check_number(cls, "low", low)
        high = _check_number(cls, "high", high)
        if not low < high:
            raise ValueError(
                f"{cls}(low={low!r}, high={high!r}): empty or inverted range; expected low < high"
            )
        if self._log and low <= 0:
            raise ValueError(f"{cls}(low={low!r}, high={high!r}): expected 0 < low < high")
        self.low = low
        self.high = high

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.low!r}, {self.high!r})"

    def contains(self, value: Any) -> bool:
        return isinstance(value, numbers.Real) and self.low <= float(value) <= self.high

    def endpoints(self) -> list[Any]:
        return [self.low, self.high]

    def to_dict(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "low": self.low, "high": self.high}

    def _clip(self, value: float) -> float:
        return float(min(max(value, self.low), self.high))


class Uniform(_Range):
    """Floats uniform in ``[low, high]``."""

    def sample(self, rng: np.random.Generator) -> float:
        return self._clip(float(rng.uniform(self.low, self.high)))

    def perturb(self, value: Any, rng: np.random.Generator, factors: Sequence[float] = (0.8, 1.2)) -> float:
        factors = _check_factors(factors)
        factor = factors[int(rng.integers(len(factors)))]
        return self._clip(float(value) * factor)


class LogUniform(_Range):
    """Floats whose logarithm is uniform in ``[log(low), log(high)]``; requires ``0 < low``."""

    _log = True

    def sample(self, rng: np.random.Generator) -> float:
        return self._clip(float(math.exp(rng.uniform(math.log(self.low), math.log(self.high)))))

    def perturb(self, value: Any, rng: np.random.Generator, factors: Sequence[float] = (0.8, 1.2)) -> float:
        factors = _check_factors(factors)
        factor = factors[int(rng.integers(len(factors)))]
        value = float(value)
        if value <= 0:  # outside the space: start again from the lower bound
            return self.low
        return self._clip(value * factor)  # = a step of log(factor) in log space


class IntUniform(_Range):
    """Integers uniform in ``[low, high]``, both inclusive."""

    def __init__(self, low: int, high: int) -> None:
        for name, v in (("low", low), ("high", high)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise ValueError(f"IntUniform: {name}={v!r} is not an integer; expected an int")
        super().__init__(low, high)
        self.low = int(low)
        self.high = int(high)

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, numbers.Integral)
            and not isinstance(value, bool)
            and self.low <= int(value) <= self.high
        )

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high + 1))

    def perturb(self, value: Any, rng: np.random.Generator, factors: Sequence[float] = (0.8, 1.2)) -> int:
        factors = _check_factors(factors)
        factor = factors[int(rng.integers(len(factors)))]
        value = int(value)
        new = int(round(value * factor))
        if new == value and factor != 1.0:
            # A small integer times 0.8 or 1.2 rounds back to itself: step one unit instead.
            direction = 1 if (factor > 1.0) == (value >= 0) else -1
            new = value + direction
        return int(min(max(new, self.low), self.high))


class Choice(Distribution):
    """One of a fixed, ordered list of JSON scalars (numbers, strings, booleans, None)."""

    def __init__(self, values: Sequence[Any]) -> None:
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ValueError(f"Choice(values={values!r}): expected a list of values")
        values = list(values)
        if not values:
            raise ValueError("Choice(values=[]): empty choice; expected at least one value")
        for v in values:
            if not (v is None or isinstance(v, (str, bool, numbers.Real))):
                raise ValueError(
                    f"Choice: value {v!r} of type {type(v).__name__} is not a JSON scalar; "
                    "expected numbers, strings, booleans or None"
                )
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"Choice: value {v!r} is not finite")
        for i, v in enumerate(values):
            if any(type(v) is type(w) and v == w for w in values[:i]):
                raise ValueError(f"Choice: value {v!r} appears twice in {values!r}")
        self.values = values

    def __repr__(self) -> str:
        return f"Choice({self.values!r})"

    def _index(self, value: Any) -> int:
        for i, v in enumerate(self.values):
            if v == value and (isinstance(v, bool) == isinstance(value, bool)):
                return i
        raise ValueError(f"Choice: {value!r} is not one of {self.values!r}")

    def contains(self, value: Any) -> bool:
        try:
            self._index(value)
        except ValueError:
            return False
        return True

    def endpoints(self) -> list[Any]:
        return list(self.values)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]

    def perturb(self, value: Any, rng: np.random.Generator, factors: Sequence[float] = (0.8, 1.2)) -> Any:
        _check_factors(factors)
        i = self._index(value)
        n = len(self.values)
        step = -1 if rng.random() < 0.5 else 1
        j = i + step
        if not 0 <= j < n:  # no wrap-around: at an end the only neighbour is the other side
            j = i - step
        if not 0 <= j < n:  # a single value
            j = i
        return self.values[j]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "Choice", "values": list(self.values)}


_TYPES = {"Uniform": Uniform, "LogUniform": LogUniform, "IntUniform": IntUniform}


def from_dict(d: dict[str, Any]) -> Distribution:
    """Inverse of ``Distribution.to_dict`` (used by config files and ``state.json``)."""
    if not isinstance(d, dict) or "type" not in d:
        raise ValueError(f"search-space entry {d!r}: expected a dict with a 'type' key")
    kind = d["type"]
    if kind == "Choice":
        return Choice(d.get("values", []))
    if kind in _TYPES:
        extra = set(d) - {"type", "low", "high"}
        if extra or "low" not in d or "high" not in d:
            raise ValueError(f"search-space entry {d!r}: expected keys type, low, high")
        return _TYPES[kind](d["low"], d["high"])
    raise ValueError(
        f"search-space entry type {kind!r} is unknown; expected one of "
        f"{sorted([*_TYPES, 'Choice'])}"
    )
