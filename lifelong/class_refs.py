"""Constructor data as JSON: classes are encoded as ``{"__class__": "module:Name"}`` and are
resolved back only from allow-listed modules (torch.nn, torch.optim, stable_baselines3 and
lifelong), so a saved configuration never imports arbitrary code.
"""
from __future__ import annotations

import importlib
from typing import Any

import numpy as np

__all__ = ["_ALLOWED_CLASS_MODULES", "_import_ref", "_class_ref", "_encode_json", "_decode_json"]

# Modules from which an encoded class reference ({"__class__": "module:Name"}) may be resolved.
_ALLOWED_CLASS_MODULES = ("torch.nn", "torch.optim", "stable_baselines3.", "lifelong.")


def _import_ref(ref: str) -> Any:
    module, _, name = ref.partition(":")
    if not name or not (module.startswith(_ALLOWED_CLASS_MODULES) or module in ("torch.nn", "torch.optim")):
        raise ValueError(f"class reference {ref!r} is not allowed: expected 'module:Name' from {_ALLOWED_CLASS_MODULES}")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _class_ref(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _encode_json(value: Any, where: str) -> Any:
    """JSON-able form of constructor data; classes become {"__class__": "module:Name"}."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_encode_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError(f"{where}: only string keys can be saved, got {list(value)}")
        return {k: _encode_json(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, type):
        ref = _class_ref(value)
        _import_ref(ref)  # fails now, not at load, when it could not be resolved
        return {"__class__": ref}
    raise ValueError(f"{where}={value!r} cannot be saved as JSON (numbers, strings, lists, dicts and classes only)")


def _decode_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_json(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__class__"} and isinstance(value["__class__"], str):
            return _import_ref(value["__class__"])
        return {k: _decode_json(v) for k, v in value.items()}
    return value

