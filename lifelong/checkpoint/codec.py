"""Python values as tagged JSON, and the one registry of classes a file may name.

No pickle and no import: a checkpoint (or a saved configuration) can only name classes that
this registry already holds, or that the caller passes back through ``custom_objects``.

Plain JSON values are stored as they are. Other values are tagged objects:

- ``{"__tuple__": [...]}``            a tuple (e.g. Adam's ``betas``)
- ``{"__float__": "inf"}``           a non-finite float (strict JSON has none)
- ``{"__schedule__": {...}}``        a :mod:`lifelong.agent.schedules` schedule (its ``to_dict()``)
- ``{"__class__": "module:Name"}``   a class (activation function, features extractor, optimizer)
- ``{"__ndarray__": [...], "dtype": "<f4"}``  a small numeric numpy array (e.g. in episode infos)

The registry
------------
A class name ``"module:Qualname"`` resolves only to a class in :func:`registry`: the public
``torch.nn`` module classes (activations, layers), the ``torch.optim`` optimizers, the UPGD
family, Stable-Baselines3's policies, features extractors and buffers, and the classes lifelong
registers for itself (its agents and policies, with :func:`register_classes`). The registry is
built from modules that are already imported; a name that is not in it is refused whatever it
names, so a file can never cause an import. Any other class (a custom features extractor or
policy) must be passed back by the caller through ``custom_objects``, as in Stable-Baselines3.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import stable_baselines3.common.buffers as sb3_buffers
import stable_baselines3.common.policies as sb3_policies
import stable_baselines3.common.torch_layers as sb3_layers
import stable_baselines3.ppo.policies as sb3_ppo_policies
import torch

import lifelong.optim as lifelong_optim
from lifelong.agent.schedules import from_dict, is_data_schedule

_REGISTERED: dict[str, type] = {}


def class_name(cls: type) -> str:
    """The name a file stores for ``cls``: ``"module:Qualname"``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def _public_classes(module: Any, base: type | tuple[type, ...]) -> list[type]:
    return [obj for name, obj in vars(module).items()
            if not name.startswith("_") and isinstance(obj, type) and issubclass(obj, base)]


def _builtin_classes() -> list[type]:
    sb3_bases = (sb3_policies.BasePolicy, sb3_layers.BaseFeaturesExtractor, sb3_buffers.BaseBuffer, torch.nn.Module)
    return (
        _public_classes(torch.nn, torch.nn.Module)
        + _public_classes(torch.optim, torch.optim.Optimizer)
        + _public_classes(lifelong_optim, torch.optim.Optimizer)
        + [cls for module in (sb3_policies, sb3_layers, sb3_buffers, sb3_ppo_policies)
           for cls in _public_classes(module, sb3_bases)]
    )


def register_classes(*classes: type) -> None:
    """Allow files to name ``classes`` (lifelong's own agents and policies register themselves)."""
    for cls in classes:
        if not isinstance(cls, type):
            raise TypeError(f"register_classes takes classes, got {cls!r}")
        _REGISTERED[class_name(cls)] = cls


def registry() -> dict[str, type]:
    """Every class a file may name, by its stored name."""
    table = {class_name(cls): cls for cls in _builtin_classes()}
    table.update(_REGISTERED)
    return table


def resolve_class(name: str, custom_objects: dict[str, Any] | None = None, what: str = "class") -> type:
    """The class stored as ``name``: from ``custom_objects`` (any value that is a class of that
    name), else from :func:`registry`; ``ValueError`` naming it otherwise. Never imports."""
    if not isinstance(name, str):
        raise ValueError(f"{what}: a class reference must be a 'module:Name' string, got {name!r}")
    for obj in (custom_objects or {}).values():
        if isinstance(obj, type) and class_name(obj) == name:
            return obj
    cls = registry().get(name)
    if cls is None:
        raise ValueError(
            f"the checkpoint names {what} {name!r}, which is not a class lifelong loads from a file "
            f"(torch.nn, torch.optim, Stable-Baselines3 policies/extractors/buffers, lifelong's own); "
            f"pass the class itself in custom_objects (e.g. custom_objects={{'{what}': TheClass}})"
        )
    return cls


def to_json(value: Any, where: str = "value") -> Any:
    """Encode ``value`` as tagged JSON; ``ValueError`` naming ``where`` for what cannot be stored."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isfinite(value):
            return value
        return {"__float__": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"__ndarray__": to_json(value.tolist(), where), "dtype": value.dtype.str}
    if is_data_schedule(value):
        return {"__schedule__": value.to_dict()}
    if isinstance(value, type):
        return {"__class__": class_name(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"cannot save {where}: dict key {key!r} is not a string")
            out[key] = to_json(item, f"{where}[{key!r}]")
        return out
    if callable(value):
        raise ValueError(
            f"cannot save {where}={value!r}: an arbitrary callable cannot be stored without pickle; "
            "use a number or lifelong.agent.schedules.Constant / Linear"
        )
    raise ValueError(f"cannot save {where}: {type(value).__qualname__} {value!r} is not plain data")


def from_json(value: Any, custom_objects: dict[str, Any] | None = None, where: str = "value") -> Any:
    """Inverse of :func:`to_json`; classes through :func:`resolve_class`."""
    if isinstance(value, list):
        return [from_json(v, custom_objects, where) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"__ndarray__", "dtype"}:
        dtype = np.dtype(value["dtype"])
        if dtype.kind not in "biuf" or dtype.itemsize > 16:
            raise ValueError(f"{where}: numpy dtype {dtype.str!r} is not a numeric dtype a file may name")
        return np.asarray(from_json(value["__ndarray__"], custom_objects, where), dtype=dtype)
    if len(value) == 1:
        (tag, inner), = value.items()
        if tag == "__tuple__":
            return tuple(from_json(v, custom_objects, where) for v in inner)
        if tag == "__float__":
            if inner not in ("nan", "inf", "-inf"):
                raise ValueError(f"invalid float tag {inner!r} in {where}")
            return float(inner)
        if tag == "__schedule__":
            return from_dict(inner)
        if tag == "__class__":
            return resolve_class(inner, custom_objects, where)
    return {k: from_json(v, custom_objects, f"{where}[{k!r}]") for k, v in value.items()}
