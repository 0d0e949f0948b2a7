"""The configuration error type and the helpers every message is built with."""
from __future__ import annotations

import difflib
from typing import Mapping

__all__ = ["ConfigError", "suggest"]


class ConfigError(ValueError):
    """A configuration value is wrong; the message starts with the key's dotted path."""


def _show(value) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return f"a list {list(value)!r}" if len(str(value)) < 60 else "a list"
    return repr(value)


def _fail(path: str, expected: str, value) -> None:
    raise ConfigError(f"{path}: expected {expected}, got {_show(value)}")


def suggest(name: str, options) -> str:
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""
