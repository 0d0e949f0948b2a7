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


def space_from_dict(data: dict) -> spaces.Space:
    """Inverse of :func:`space_to_dict`. Malformed data raises ``ValueError``."""
    try:
        kind = data["type"]
        if kind == "Box":
            shape = tuple(int(v) for v in data["shape"])
            dtype = np.dtype(data["dtype"])
            low = _array_from_json(data["low"], shape, dtype)
            high = _array_from_json(data["high"], shape, dtype)
            return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
        if kind == "Discrete":
            return spaces.Discrete(int(data["n"]), start=int(data["start"]), dtype=np.dtype(data["dtype"]).type)
        if kind == "MultiDiscrete":
            dtype = np.dtype(data["dtype"])
            return spaces.MultiDiscrete(
                np.asarray(data["nvec"], dtype=dtype), dtype=dtype.type, start=np.asarray(data["start"], dtype=dtype)
            )
        if kind == "MultiBinary":
            n = data["n"]
            return spaces.MultiBinary(int(n) if isinstance(n, int) else [int(v) for v in n])
        if kind == "Dict":
            return spaces.Dict({str(key): space_from_dict(sub) for key, sub in data["spaces"]})
        if kind == "Tuple":
            return spaces.Tuple([space_from_dict(sub) for sub in data["spaces"]])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed space description {data!r}: {exc}") from exc
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
