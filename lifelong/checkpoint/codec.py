"""Constructor arguments and other Python values as tagged JSON (no pickle, no arbitrary imports).

Plain JSON values are stored as they are. Other values are tagged objects:

- ``{"__tuple__": [...]}``            a tuple (e.g. Adam's ``betas``)
- ``{"__float__": "inf"}``           a non-finite float (strict JSON has none)
- ``{"__schedule__": {...}}``        a :mod:`lifelong.schedules` schedule (its ``to_dict()``)
- ``{"__class__": "module:Name"}``   a class (activation function, features extractor, optimizer)
- ``{"__ndarray__": [...], "dtype": "<f4"}``  a small numeric numpy array (e.g. in episode infos)

A class is rebuilt only when it lives in torch, stable_baselines3 or lifelong and is a
``torch.nn.Module``, ``torch.optim.Optimizer``, or a Stable-Baselines3 policy or buffer subclass; any other
class must be passed back by the caller through ``custom_objects`` (lifelong never imports code
named by a file). An arbitrary callable (a lambda schedule) cannot be stored: ``ValueError``.
"""
from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np

TRUSTED_PACKAGES = ("torch", "stable_baselines3", "lifelong")


def class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _allowed_bases() -> tuple[type, ...]:
    import torch
    from stable_baselines3.common.buffers import BaseBuffer
    from stable_baselines3.common.policies import BasePolicy

    return (torch.nn.Module, torch.optim.Optimizer, BasePolicy, BaseBuffer)


def resolve_class(name: str, custom_objects: dict[str, Any] | None = None, what: str = "class") -> type:
    """Rebuild a class stored as ``module:Qualname``; see the module docstring for the rules."""
    for obj in (custom_objects or {}).values():
        if isinstance(obj, type) and class_name(obj) == name:
            return obj
    module_name, _, qualname = name.partition(":")
    if module_name.split(".")[0] not in TRUSTED_PACKAGES or not qualname:
        raise ValueError(
            f"the checkpoint names {what} {name!r}, which lifelong does not import from a file; "
            f"pass the class itself in custom_objects (e.g. custom_objects={{'{what}': TheClass}})"
        )
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"the checkpoint names {what} {name!r}, which cannot be found ({exc})") from exc
    if not isinstance(obj, type) or not issubclass(obj, _allowed_bases()):
        raise ValueError(
            f"the checkpoint names {what} {name!r}, which is not a module, optimizer or policy class; "
            "pass it in custom_objects if you trust it"
        )
    return obj


def to_json(value: Any, where: str = "value") -> Any:
    """Encode ``value`` as tagged JSON; ``ValueError`` naming ``where`` for what cannot be stored."""
    from lifelong.schedules import is_data_schedule

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
            "use a number or lifelong.schedules.Constant / Linear"
        )
    raise ValueError(f"cannot save {where}: {type(value).__qualname__} {value!r} is not plain data")


def from_json(value: Any, custom_objects: dict[str, Any] | None = None, where: str = "value") -> Any:
    """Inverse of :func:`to_json`."""
    from lifelong.schedules import from_dict

    if isinstance(value, list):
        return [from_json(v, custom_objects, where) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"__ndarray__", "dtype"}:
        return np.asarray(from_json(value["__ndarray__"], custom_objects, where), dtype=np.dtype(value["dtype"]))
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
            return resolve_class(str(inner), custom_objects, where)
    return {k: from_json(v, custom_objects, f"{where}[{k!r}]") for k, v in value.items()}
