"""Gymnasium spaces as JSON data (no pickle): Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces


def _float_to_json(x: float) -> float | str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _float_from_json(x: float | str) -> float:
    if isinstance(x, str):
        if x not in ("nan", "inf", "-inf"):
            raise ValueError(f"invalid float {x!r}")
        return float(x)
    return float(x)


def _array_to_json(arr: np.ndarray) -> Any:
    """A Box bound: one scalar when uniform (images stay small), else a nested list."""
    arr = np.asarray(arr)
    flat = arr.reshape(-1)
    if flat.size and (np.all(flat == flat[0]) or np.all(np.isnan(flat))):
        value = flat[0].item()
        return {"fill": _float_to_json(float(value)) if arr.dtype.kind == "f" else value}
    if arr.dtype.kind == "f":
        return {"values": [_float_to_json(float(v)) for v in flat.tolist()]}
    return {"values": flat.tolist()}


def _array_from_json(data: dict, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    conv = _float_from_json if dtype.kind == "f" else int
    if "fill" in data:
        return np.full(shape, conv(data["fill"]), dtype=dtype)
    values = [conv(v) for v in data["values"]]
    return np.asarray(values, dtype=dtype).reshape(shape)


def space_to_dict(space: spaces.Space) -> dict:
    """Describe ``space`` as JSON data. Unsupported space types raise ``ValueError``."""
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": np.dtype(space.dtype).str,
            "low": _array_to_json(space.low),
            "high": _array_to_json(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start), "dtype": np.dtype(space.dtype).str}
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": np.asarray(space.nvec).tolist(),
            "start": np.asarray(space.start).tolist(),
            "dtype": np.dtype(space.dtype).str,
        }
    if isinstance(space, spaces.MultiBinary):
        n = space.n
        return {"type": "MultiBinary", "n": int(n) if isinstance(n, (int, np.integer)) else [int(v) for v in n]}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": [[key, space_to_dict(sub)] for key, sub in space.spaces.items()]}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_dict(sub) for sub in space.spaces]}
    raise ValueError(
        f"cannot store space {space!r} in a checkpoint: supported spaces are Box, Discrete, "
        "MultiDiscrete, MultiBinary, Dict and Tuple"
    )


#: the most elements a space read from a file may declare (a 4096 x 4096 RGB image is 5e7)
MAX_SPACE_ELEMENTS = 1 << 26


def _bounded_shape(values: Any) -> tuple[int, ...]:
    shape = tuple(int(v) for v in values)
    if len(shape) > 32 or any(n < 0 for n in shape) or math.prod(shape) > MAX_SPACE_ELEMENTS:
        raise ValueError(f"shape {shape} is not a plausible space shape (at most 32 non-negative dimensions, "
                         f"{MAX_SPACE_ELEMENTS:,} elements)")
    return shape


def _numeric_dtype(text: Any) -> np.dtype:
    dtype = np.dtype(text)
    if dtype.kind not in "biuf" or dtype.itemsize > 16:
        raise ValueError(f"dtype {dtype.str!r} is not a numeric dtype")
    return dtype


def space_from_dict(data: dict) -> spaces.Space:
    """Inverse of :func:`space_to_dict`. Malformed data, or a space of more than
    :data:`MAX_SPACE_ELEMENTS` elements, raises ``ValueError``."""
    try:
        kind = data["type"]
        if kind == "Box":
            shape = _bounded_shape(data["shape"])
            dtype = _numeric_dtype(data["dtype"])
            low = _array_from_json(data["low"], shape, dtype)
            high = _array_from_json(data["high"], shape, dtype)
            return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
        if kind == "Discrete":
            return spaces.Discrete(int(data["n"]), start=int(data["start"]), dtype=_numeric_dtype(data["dtype"]).type)
        if kind == "MultiDiscrete":
            dtype = _numeric_dtype(data["dtype"])
            _bounded_shape(np.shape(data["nvec"]))
            return spaces.MultiDiscrete(
                np.asarray(data["nvec"], dtype=dtype), dtype=dtype.type, start=np.asarray(data["start"], dtype=dtype)
            )
        if kind == "MultiBinary":
            n = data["n"]
            _bounded_shape([n] if isinstance(n, int) else n)
            return spaces.MultiBinary(int(n) if isinstance(n, int) else [int(v) for v in n])
        if kind == "Dict":
            return spaces.Dict({str(key): space_from_dict(sub) for key, sub in data["spaces"]})
        if kind == "Tuple":
            return spaces.Tuple([space_from_dict(sub) for sub in data["spaces"]])
    except (KeyError, TypeError, ValueError, OverflowError, IndexError, AttributeError, RecursionError) as exc:
        raise ValueError(f"malformed space description {str(data)[:200]}: {type(exc).__name__}: {exc}") from exc
    raise ValueError(f"unknown space type {data.get('type')!r} in checkpoint")


def spaces_equal(a: spaces.Space, b: spaces.Space) -> bool:
    """Structural equality, bounds compared exactly (NaN == NaN), key order of Dict ignored."""
    if type(a) is not type(b):
        return False
    if isinstance(a, spaces.Box):
        return (
            a.shape == b.shape
            and a.dtype == b.dtype
            and np.array_equal(a.low, b.low, equal_nan=True)
            and np.array_equal(a.high, b.high, equal_nan=True)
        )
    if isinstance(a, spaces.Dict):
        return set(a.spaces) == set(b.spaces) and all(spaces_equal(a.spaces[k], b.spaces[k]) for k in a.spaces)
    if isinstance(a, spaces.Tuple):
        return len(a.spaces) == len(b.spaces) and all(spaces_equal(x, y) for x, y in zip(a.spaces, b.spaces))
    return bool(a == b)
