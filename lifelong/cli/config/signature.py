"""Config defaults read from a constructor's signature (with :mod:`inspect`)."""
from __future__ import annotations

import inspect
from typing import Mapping

__all__ = ["signature_defaults"]


def signature_defaults(params: Mapping[str, inspect.Parameter], exclude=()) -> dict:
    """{name: default} of the named parameters, in order, except ``exclude`` and ``*args``/
    ``**kwargs``; defaults are made YAML-able (see :func:`_jsonable_default`)."""
    out = {}
    for name, p in params.items():
        if name in exclude or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        out[name] = _jsonable_default(p.default)
    return out


def _jsonable_default(d):
    if d is inspect.Parameter.empty:
        return None
    if isinstance(d, (bool, int, float, str)) or d is None:
        return d
    if isinstance(d, (list, tuple)):
        return [_jsonable_default(x) for x in d]
    if isinstance(d, dict):
        return {k: _jsonable_default(v) for k, v in d.items()}
    to_dict = getattr(d, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return None
