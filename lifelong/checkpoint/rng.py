"""Random states: capture and restore of Python's, NumPy's, torch's and the spaces' generators."""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def _space_rng(space: spaces.Space) -> Any:
    """The space's generator state (``None`` if it never drew), recursively for Dict/Tuple."""
    own = None if space._np_random is None else space._np_random.bit_generator.state
    if isinstance(space, spaces.Dict):
        return {"own": own, "children": {k: _space_rng(s) for k, s in space.spaces.items()}}
    if isinstance(space, spaces.Tuple):
        return {"own": own, "children": [_space_rng(s) for s in space.spaces]}
    return {"own": own}


def _python_rng() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _numpy_rng() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}


def _set_space_rng(space: spaces.Space, saved: Any) -> None:
    own = saved.get("own")
    if own is not None:
        name = own.get("bit_generator")
        if name not in _BIT_GENERATORS:
            raise ValueError(f"unknown numpy bit generator {name!r}")
        if space._np_random is None or type(space._np_random.bit_generator).__name__ != name:
            space._np_random = np.random.Generator(getattr(np.random, name)())
        space._np_random.bit_generator.state = own
    children = saved.get("children")
    if isinstance(space, spaces.Dict) and isinstance(children, dict):
        for key, sub in space.spaces.items():
            if key in children:
                _set_space_rng(sub, children[key])
    elif isinstance(space, spaces.Tuple) and isinstance(children, list):
        for sub, child in zip(space.spaces, children):
            _set_space_rng(sub, child)


def _restore_rng(meta: dict, tensors: dict) -> None:
    version, internal, gauss = meta["rng"]["python"]
    random.setstate((version, tuple(internal), gauss))
    n = meta["rng"]["numpy"]
    np.random.set_state((n["name"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(tensors["torch"])
    cuda = tensors.get("cuda") or []
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)
